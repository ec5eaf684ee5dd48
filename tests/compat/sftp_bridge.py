"""Relay stdin/stdout to an instance's SFTP session on an LXD unix socket (stdlib only).

``python sftp_bridge.py SOCKET INSTANCE [PROJECT]`` sends ``GET /1.0/instances/INSTANCE/sftp``
with ``Upgrade: sftp``, checks the ``101`` and then copies bytes both ways until either side
ends: what OpenSSH's ``sftp -D`` needs of a "local sftp server".
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import urllib.parse


def main(argv: list[str]) -> int:
    if len(argv) not in (3, 4):
        sys.stderr.write("usage: sftp_bridge.py SOCKET INSTANCE [PROJECT]\n")
        return 2
    path, name = argv[1], argv[2]
    target = f"/1.0/instances/{urllib.parse.quote(name, safe='')}/sftp"
    if len(argv) == 4:
        target += "?project=" + urllib.parse.quote(argv[3], safe="")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    sock.sendall(f"GET {target} HTTP/1.1\r\nHost: lxd\r\nConnection: Upgrade\r\n"
                 "Upgrade: sftp\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(65536)
        if not chunk:
            break
        head += chunk
    head, _, rest = head.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0]
    if b" 101 " not in status + b" ":
        sys.stderr.write(f"upgrade refused: {head.decode('latin-1')}\n{rest.decode('latin-1')}")
        return 1
    out = sys.stdout.buffer.fileno()
    if rest:
        os.write(out, rest)

    def upstream() -> None:
        """stdin to the socket; at EOF the socket's write side is shut."""
        while True:
            data = os.read(sys.stdin.buffer.fileno(), 65536)
            if not data:
                break
            sock.sendall(data)
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    threading.Thread(target=upstream, daemon=True).start()
    while True:
        data = sock.recv(65536)
        if not data:
            break
        view = memoryview(data)
        while view:
            view = view[os.write(out, view):]
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
