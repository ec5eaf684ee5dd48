"""Seeding, snapshots of state, reset and the request log."""

# --8<-- [start:seed]
from fakeserver import FakeLXD
from pytest_lxd import Client

fake = FakeLXD(preseed="preseed.yaml").start()  # YAML text, a path or a dict
client = Client(fake.socket_path)
print(client.profiles.get("web").devices["root"]["pool"])  # fast
print(client.projects.exists("staging"))  # True

fake.seed({"profiles": [{"name": "db", "config": {"limits.cpu": "2"}}]})  # more, now
print(client.profiles.exists("db"))  # True
# --8<-- [end:seed]

# --8<-- [start:reset]
fake.reset()  # back to the baseline and the constructor's preseed
print(client.profiles.exists("db"), client.profiles.exists("web"))  # False True
# --8<-- [end:reset]

# --8<-- [start:snapshot]
saved = fake.snapshot()
client.profiles.get("web").delete()
fake.restore(saved)
print(client.profiles.exists("web"))  # True
# --8<-- [end:snapshot]

# --8<-- [start:log]
fake.reset()  # also empties the request log
client.profiles.get("nope") if client.profiles.exists("nope") else None
for request in fake.requests:
    print(request)  # GET /1.0/profiles/nope -> 404 (unix)
print(fake.handler_errors)  # []
# --8<-- [end:log]

client.close()
fake.close()
