"""Background operations on the fake: timing, faults, cancel."""

from fakeserver import FakeLXD
from pytest_lxd import Client
from pytest_lxd.exceptions import LXDAPIException, OperationFailed

fake = FakeLXD(https=True).start()  # trust tokens need an HTTPS listener
client = Client(fake.socket_path)
volume = client.storage_pools.get("default").volumes.create({"name": "data", "config": {}})

# --8<-- [start:manual]
SNAPSHOT = "Creating storage volume snapshot"  # an operation's kind is its description
fake.operations.set_timing("manual", kind=SNAPSHOT)

operation = volume.snapshots.create("snap0", wait=False)
print(operation.status)  # Running
print([op.description for op in fake.operations.held()])  # ['Creating storage volume snapshot']

fake.operations.release()  # all held operations (or: one, or those of a kind)
operation.wait()
print(operation.status, volume.snapshots.all())  # Success ['snap0']
# --8<-- [end:manual]

# --8<-- [start:delay]
fake.operations.set_timing(0.2, kind=SNAPSHOT)  # without kind: every operation
operation = volume.snapshots.create("snap1", wait=False)
print(operation.sync().status)  # Running
operation.wait()  # done 0.2 s later
fake.operations.set_timing("immediate", kind=SNAPSHOT)  # the default
# --8<-- [end:delay]

# --8<-- [start:faults]
fake.operations.fail("Failed creating snapshot: disk full", kind=SNAPSHOT)  # the next one
try:
    volume.snapshots.create("snap2")
except OperationFailed as exc:
    print(exc)  # Failed creating snapshot: disk full
print(volume.snapshots.all())  # ['snap0', 'snap1']
volume.snapshots.create("snap2")  # the fault was used up (count=1)
# --8<-- [end:faults]

# --8<-- [start:cancel]
reply = client.api.certificates.post(json={"type": "client", "token": True, "name": "ci"})
token = client.operations.get(reply.json()["operation"])  # a token operation: it waits
print(token.status, token.may_cancel)  # Running True
token.cancel()
print(token.status)  # Cancelled

fake.operations.set_timing("manual", kind=SNAPSHOT)
operation = volume.snapshots.create("snap3", wait=False)
try:
    operation.cancel()  # LXD cannot cancel this kind of operation, and says so
except LXDAPIException as exc:
    print(exc)  # This operation can't be cancelled
fake.operations.release()
operation.wait()
# --8<-- [end:cancel]

client.close()
fake.close()
