"""The fake in-process, driven by unmodified pylxd."""

# --8<-- [start:pylxd]
import pylxd

from fakeserver import FakeLXD

with FakeLXD() as fake:  # a temporary directory, unix socket only
    client = pylxd.Client(endpoint=fake.socket_path)
    client.profiles.create("web", config={"limits.cpu": "1"})
    print(sorted(p.name for p in client.profiles.all()))  # ['default', 'web']
    print(fake.requests[-1])  # GET /1.0/profiles -> 200 (unix)
# --8<-- [end:pylxd]
