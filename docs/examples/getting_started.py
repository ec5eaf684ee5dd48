"""The "Getting started" page, in one script (tests/docs runs it against the fake)."""

# --8<-- [start:connect]
from pytest_lxd import Client

client = Client()  # the local unix socket: $LXD_DIR/unix.socket, else the usual paths
print(client.host_info["environment"]["server_version"])  # 5.0.2
assert client.trusted  # the unix socket is always trusted
# --8<-- [end:connect]

# --8<-- [start:managers]
print([profile.name for profile in client.profiles.all()])  # ['default']
print(client.networks.exists("lxdbr0"))  # True

profile = client.profiles.get("default")
print(profile.devices["root"])  # {'path': '/', 'pool': 'default', 'type': 'disk'}

pool = client.storage_pools.get("default")
print(pool.driver)  # dir
# --8<-- [end:managers]

# --8<-- [start:create]
web = client.profiles.create(
    "web",
    config={"limits.memory": "256MB"},
    devices={"root": {"type": "disk", "path": "/", "pool": "default"}},
)
assert web.config == {"limits.memory": "256MB"}
# --8<-- [end:create]

# --8<-- [start:errors]
from pytest_lxd.exceptions import LXDAPIException, NotFound

try:
    client.profiles.get("no-such-profile")
except NotFound as exc:
    print(exc.response.status_code, exc)  # 404 Fetch profile: Profile not found

try:
    client.profiles.create("web")
except LXDAPIException as exc:  # a 500 from LXD 5.0.2 here (Conflict is raised for 409s)
    print(exc)  # Error inserting "web" into database: The profile already exists

try:
    client.profiles.create("bad", config={"no.such.key": "1"})
except LXDAPIException as exc:
    print(exc.response.status_code, exc)  # 400 Unknown configuration key: no.such.key
# --8<-- [end:errors]

# --8<-- [start:lifecycle]
web.config["limits.cpu"] = "2"  # in-place edits count
web.description = "web servers"
print(web.dirty, sorted(web.dirty_fields))  # True ['config', 'description']

web.rollback()  # back to the last loaded state, without a request
assert not web.dirty and "limits.cpu" not in web.config

web.description = "web servers"
web.save()  # PUT with If-Match: the object's ETag
assert not web.dirty

other = client.profiles.get("web")  # another copy of the same profile
other.description = "changed elsewhere"
other.save()

web.sync()  # reload: local changes are forgotten, the new ETag is kept
print(web.description)  # changed elsewhere
# --8<-- [end:lifecycle]

# --8<-- [start:etag]
from pytest_lxd.exceptions import ETagMismatch

stale = client.profiles.get("web")
other.config["limits.cpu"] = "4"
other.save()  # the server's profile (and its ETag) changes
stale.description = "lost update"
try:
    stale.save()
except ETagMismatch:
    stale.sync()  # nothing was written; reload and apply the change again
# --8<-- [end:etag]

# --8<-- [start:operations]
volume = pool.volumes.create({"name": "data", "config": {}})  # waits
operation = volume.snapshots.create("first", wait=False)  # runs in the background
print(operation.description)  # Creating storage volume snapshot
operation.wait()  # raises OperationFailed if it failed
print(operation.status)  # Success
print(volume.snapshots.all())  # ['first']

volume.snapshots.get("first").delete(wait=True)  # wait=True: return once it is done
# --8<-- [end:operations]

# --8<-- [start:operations-list]
project = client.projects.create("staging")
operation = client.api.projects["staging"].post(json={"name": "testing"}).json()["operation"]
client.operations.wait_for_operation(operation)
print(client.projects.exists("testing"))  # True
# --8<-- [end:operations-list]

# --8<-- [start:image]
from pytest_lxd.busybox import busybox_image

if not client.images.aliases.exists("busybox"):
    # A tiny image that boots, made from the host's static busybox (busybox-static).
    image = client.images.create(busybox_image(), aliases=["busybox"])
    print(image.properties["os"])  # busybox
# --8<-- [end:image]

# --8<-- [start:instances]
config = {"name": "my-container", "source": {"type": "image", "alias": "busybox"}}
container = client.containers.create(config, wait=True)
print(container.status)  # Stopped
container.start(wait=True)
print(container.status)  # Running
print(client.containers.exists("my-container"))  # True
# --8<-- [end:instances]

# --8<-- [start:execute]
result = container.execute(["echo", "hello"])
print(result)  # ExecuteResult(exit_code=0, stdout='hello\n', stderr='')

exit_code, stdout, stderr = container.execute(
    ["sh", "-c", "read name; echo hi $name from $(pwd); echo oops >&2; exit 3"],
    stdin_payload="Ada\n", cwd="/tmp", environment={"LANG": "C"})
print(exit_code, repr(stdout), repr(stderr))  # 3 'hi Ada from /tmp\n' 'oops\n'

print(container.execute(["no-such-command"]).exit_code)  # 127
# --8<-- [end:execute]

# --8<-- [start:files]
container.files.put("/root/hello.txt", "hello\n")  # str or bytes; mode=, uid=, gid=
print(container.files.get("/root/hello.txt"))  # b'hello\n'
print(container.files.listdir("/root"))  # ['hello.txt']
print(container.execute(["cat", "/root/hello.txt"]).stdout.strip())  # hello
# --8<-- [end:files]

# --8<-- [start:snapshots]
container.snapshots.create("clean", wait=True)
print([snapshot.name for snapshot in container.snapshots.all()])  # ['clean']

container.files.put("/root/hello.txt", "changed\n")
container.restore_snapshot("clean", wait=True)
print(container.files.get("/root/hello.txt"))  # b'hello\n'
# --8<-- [end:snapshots]

# --8<-- [start:stop]
container.stop(wait=True)  # pylxd's default: force=True (kill); force=False shuts down
print(container.status)  # Stopped
container.delete(wait=True)
print(client.containers.exists("my-container"))  # False
# --8<-- [end:stop]

# --8<-- [start:cleanup]
volume.delete()
web.delete()
client.projects.get("testing").delete()
client.close()
# --8<-- [end:cleanup]
