"""Instances from lxd_image, exec on both backends, and exec handlers on the fake."""


# --8<-- [start:image]
def test_exec_in_a_container(lxd_client, lxd_image):
    """Runs on every selected backend: a busybox container that really runs on a real host."""
    container = lxd_client.containers.create(
        {"name": "c1", "source": {"type": "image", "alias": lxd_image}}, wait=True)
    container.start(wait=True)
    container.files.put("/root/motd", "hello\n")
    assert container.execute(["sh", "-c", "cat /root/motd | wc -l"]) == (0, "1\n", "")
    # No cleanup: the instance and the image go with the test's project.
# --8<-- [end:image]


# --8<-- [start:handler]
def deploy(container):
    """The code under test: installs and starts nginx in a container."""
    exit_code, _, stderr = container.execute(["apt-get", "install", "-y", "nginx"])
    if exit_code:
        raise RuntimeError(f"apt-get failed: {stderr}")
    return container.execute(["systemctl", "is-active", "nginx"]).stdout.strip()


def test_deploy(lxd_client, lxd_fake, lxd_image):
    """lxd_fake keeps the test on the fake: there, apt-get and systemctl are handlers."""
    @lxd_fake.exec_handler("apt-get")
    def apt_get(argv, env, cwd, stdin, instance):
        instance.write_file("/usr/sbin/nginx", "#!/bin/sh\n", mode=0o755)
        return 0, "Setting up nginx\n", ""

    @lxd_fake.exec_handler("systemctl")
    def systemctl(argv, env, cwd, stdin, instance):
        return 0, "active\n" if instance.exists("/usr/sbin/nginx") else "inactive\n", ""

    container = lxd_client.containers.create(
        {"name": "web", "source": {"type": "image", "alias": lxd_image}}, wait=True)
    container.start(wait=True)
    assert deploy(container) == "active"
# --8<-- [end:handler]
