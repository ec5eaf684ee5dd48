"""Exec in fake instances: the built-in commands, and handlers that decide what a command does."""

# --8<-- [start:setup]
from fakeserver import FakeLXD
from pytest_lxd import Client
from pytest_lxd.busybox import placeholder_image

fake = FakeLXD().start()
client = Client(fake.socket_path)
client.images.create(placeholder_image(), aliases=["busybox"])  # the fake runs no binary
web = client.containers.create(
    {"name": "web", "source": {"type": "image", "alias": "busybox"}}, wait=True)
web.start(wait=True)
# --8<-- [end:setup]

# --8<-- [start:builtins]
result = web.execute(["sh", "-c", "echo $((6 * 7)) > /tmp/answer && cat /tmp/answer"])
print(result)  # ExecuteResult(exit_code=0, stdout='42\n', stderr='')
print(web.execute(["ls", "/nope"]).stderr.strip())  # ls: /nope: No such file or directory
print(web.execute(["apt-get", "update"]).exit_code)  # 127
# --8<-- [end:builtins]


# --8<-- [start:handler]
def apt_get(argv, env, cwd, stdin, instance):
    """Runs for every ``apt-get`` exec'd in an instance of this fake."""
    if argv[1:3] != ["install", "-y"]:
        return 100, "", "E: Invalid operation\n"
    for package in argv[3:]:  # leave a trace in the instance's filesystem
        instance.write_file(f"/usr/sbin/{package}", f"#!/bin/sh\necho {package} is up\n",
                            mode=0o755)
    return 0, f"Setting up {' '.join(argv[3:])}\n", ""


fake.exec_handler("apt-get", apt_get)

print(tuple(web.execute(["apt-get", "install", "-y", "nginx"])))  # (0, 'Setting up nginx\n', '')
print(web.execute(["apt-get", "upgrade"]).exit_code)  # 100
print(web.execute(["sh", "-c", "nginx && echo ok"]).stdout.split())  # ['nginx', 'is', 'up', 'ok']
# --8<-- [end:handler]


# --8<-- [start:decorator]
@fake.exec_handler("systemctl")
def systemctl(argv, env, cwd, stdin, instance):
    """A generator: its output is streamed as it is yielded, its return value is the exit
    code."""
    unit = argv[-1]
    if not instance.exists(f"/usr/sbin/{unit}"):
        yield 2, f"Unit {unit}.service could not be found.\n"  # (2, data) goes to stderr
        return 4
    yield "active\n"
    return 0


print(tuple(web.execute(["systemctl", "is-active", "nginx"])))  # (0, 'active\n', '')
print(web.execute(["systemctl", "is-active", "mysql"]).exit_code)  # 4
# --8<-- [end:decorator]

# --8<-- [start:pylxd]
import pylxd

instance = pylxd.Client(endpoint=fake.socket_path).instances.get("web")
exit_code, stdout, stderr = instance.execute(["systemctl", "is-active", "nginx"])
print(exit_code, stdout.strip())  # 0 active
# --8<-- [end:pylxd]

# --8<-- [start:reset]
fake.reset()  # forgets the handlers, with everything else
print("apt-get" in fake.exec_handlers)  # False
# --8<-- [end:reset]

client.close()
fake.close()
