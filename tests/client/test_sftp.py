"""``Instance.sftp()``: a raw SFTP connection to an instance, over the unix socket and HTTPS,
on both backends (the SFTP protocol itself is tested in tests/fakeserver/test_instance_sftp.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_lxd import exceptions
from pytest_lxd.models import Instance
from tests import sftpwire as w
from tests.tlsutil import self_signed

from .conftest import HTTPSEnv, LXDEnv
from .instance_helpers import make


def roundtrip(sock: object, path: str, data: bytes) -> bytes:
    """Write ``data`` to ``path`` over SFTP and read it back."""
    client = w.SFTP(sock)
    version = client.init()
    assert version.type == w.VERSION and version.version == 3
    client.put(path, data)
    return client.get(path)


def test_sftp_over_the_unix_socket(lxd: LXDEnv) -> None:
    inst = make(lxd)
    with inst.sftp() as sock:
        assert roundtrip(sock, "/srv/hello.txt", b"over sftp\n") == b"over sftp\n"
    assert inst.files.get("/srv/hello.txt") == b"over sftp\n"


def test_sftp_over_https(https: HTTPSEnv, lxd: LXDEnv) -> None:
    inst = make(lxd)
    remote = https.client(verify=https.server_cert_file).instances.get(inst.name)
    with remote.sftp() as sock:
        assert roundtrip(sock, "/srv/tls.txt", b"x" * 70000) == b"x" * 70000
    assert inst.files.get("/srv/tls.txt") == b"x" * 70000


def test_sftp_refusals(lxd: LXDEnv, https: HTTPSEnv, tmp_path: Path) -> None:
    inst = make(lxd)
    missing = Instance(lxd.client, name=lxd.unique("missing"))
    with pytest.raises(exceptions.NotFound) as refused:
        missing.sftp()
    assert refused.value.error_code == 404
    assert str(refused.value) == "Instance not found"
    stranger = self_signed(tmp_path, "stranger")
    untrusted = https.client(cert=stranger.pair, verify=https.server_cert_file)
    with pytest.raises(exceptions.Forbidden) as forbidden:
        Instance(untrusted, name=inst.name).sftp()
    assert (forbidden.value.error_code, str(forbidden.value)) == (403, "not authorized")
