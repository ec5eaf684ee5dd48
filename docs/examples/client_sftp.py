"""An instance's SFTP server through ``Instance.sftp()`` (tests/docs runs it against the fake)."""

import struct

from pytest_lxd import Client
from pytest_lxd.busybox import placeholder_image

client = Client()
client.images.create(placeholder_image(), aliases=["sftp-demo"])
box = client.instances.create(
    {"name": "sftp-demo", "source": {"type": "image", "alias": "sftp-demo"}}, wait=True)

# --8<-- [start:sftp]
def send(sock, kind, payload):
    sock.sendall(struct.pack(">IB", len(payload) + 1, kind) + payload)


def exactly(sock, size):
    data = b""
    while len(data) < size:
        data += sock.recv(size - len(data))
    return data


def receive(sock):
    data = exactly(sock, struct.unpack(">I", exactly(sock, 4))[0])
    return data[0], data[1:]  # the packet's type, its body


def text(value):
    return struct.pack(">I", len(value)) + value.encode()


with box.sftp() as sock:  # GET /1.0/instances/sftp-demo/sftp, Upgrade: sftp -> 101
    send(sock, 1, struct.pack(">I", 3))  # SSH_FXP_INIT, version 3
    kind, body = receive(sock)
    print(kind, struct.unpack(">I", body[:4])[0])  # 2 3
    send(sock, 14, struct.pack(">I", 1) + text("/srv/made-over-sftp") + bytes(4))  # MKDIR
    kind, body = receive(sock)
    print(kind, struct.unpack(">II", body[:8]))  # 101 (1, 0)

print(box.files.listdir("/srv"))  # ['made-over-sftp']
# --8<-- [end:sftp]

box.delete(wait=True)
client.images.get_by_alias("sftp-demo").delete(wait=True)
