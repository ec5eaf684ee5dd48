"""Driving the fake itself: start/stop, reset, snapshot/restore, the request log, bug reports.

Only the fake has these controls. Their speed is measured by
``benchmarks/bench_fake_control.py``, not here.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import requests

from fakeserver import FakeLXD
from fakeserver.api import Route
from tests.support import API, unique

pytestmark = pytest.mark.fake_only


def connects(path: str) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError:
        return False
    finally:
        probe.close()
    return True


def test_start_stop_restart_keeps_state(tmp_path: Path) -> None:
    fake = FakeLXD(tmp_path / "lxd")
    assert not fake.running and not os.path.exists(fake.socket_path)
    assert fake.start() is fake and fake.running
    assert fake.start() is fake  # starting twice is harmless
    api = API.unix("fake", fake.socket_path)
    assert api.post("/1.0/profiles", {"name": "kept"}).status == 201

    fake.stop()
    assert not fake.running
    assert not os.path.exists(fake.socket_path) and not connects(fake.socket_path)
    fake.stop()  # stopping twice is harmless

    fake.start()
    assert api.get("/1.0/profiles/kept").status == 200  # state survives a restart
    fake.close()
    assert not os.path.exists(fake.socket_path)
    assert (tmp_path / "lxd").is_dir()  # a directory we gave is not removed


def test_context_manager_and_own_directory() -> None:
    with FakeLXD(https=True) as fake:
        directory = fake.directory
        assert fake.running and connects(fake.socket_path)
        host, port = fake.https_address or ("", 0)
        assert host == "127.0.0.1" and port > 0  # port 0 picked a free port
        assert fake.https_url == f"https://127.0.0.1:{port}"
        assert Path(fake.ca_file).is_file()
    assert not fake.running
    assert not directory.exists()  # the fake's own temporary directory is removed


def test_https_on_a_given_port_and_a_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        fake = FakeLXD(tmp_path / "a", https=f"127.0.0.1:{port}")
        with pytest.raises(OSError) as err:  # an error, not werkzeug's sys.exit
            fake.start()
        assert "in use" in str(err.value)
        assert not fake.running and not os.path.exists(fake.socket_path)  # nothing half-up
    with FakeLXD(tmp_path / "b", https=f"127.0.0.1:{port}") as fake:
        assert fake.https_address == ("127.0.0.1", port)
    no_https = FakeLXD(tmp_path / "c")
    assert no_https.https_url is None


def test_two_fakes_at_once(tmp_path: Path) -> None:
    with FakeLXD(tmp_path / "one") as one, FakeLXD(tmp_path / "two") as two:
        assert one.socket_path != two.socket_path
        api_one, api_two = API.unix("fake", one.socket_path), API.unix("fake", two.socket_path)
        assert api_one.post("/1.0/profiles", {"name": "only-one"}).status == 201
        assert api_one.get("/1.0/profiles/only-one").status == 200
        assert api_two.get("/1.0/profiles/only-one").status == 404
        one.stop()
        assert api_two.get("/1.0").status == 200  # stopping one leaves the other serving


def test_reset_returns_to_the_baseline(fake: FakeLXD) -> None:
    api = API.unix("fake", fake.socket_path)
    baseline = api.get("/1.0/profiles", params={"recursion": 1}).metadata
    config = api.get("/1.0").metadata["config"]
    name = unique("p")
    assert api.post("/1.0/profiles", {"name": name}).status == 201
    assert api.patch("/1.0/profiles/default", {"config": {"user.k": "v"}}).status == 200
    assert api.patch("/1.0", {"config": {"images.auto_update_interval": "3"}}).status == 200
    project = unique("pj")
    assert api.post("/1.0/projects", {"name": project}).status == 201
    reply = api.post(f"/1.0/projects/{project}", {"name": unique("pj")})  # an operation
    assert reply.status == 202
    operation = reply.body["operation"]
    api.wait(reply)
    assert fake.requests

    fake.reset()
    assert fake.requests == [] and fake.handler_errors == []
    assert api.get(operation).status == 404  # operations are forgotten
    assert api.get("/1.0/operations").metadata == {}
    assert api.get("/1.0/profiles", params={"recursion": 1}).metadata == baseline
    assert api.get("/1.0").metadata["config"] == config
    assert api.get("/1.0/projects").metadata == ["/1.0/projects/default"]


def test_snapshot_and_restore(fake: FakeLXD) -> None:
    api = API.unix("fake", fake.socket_path)
    assert api.post("/1.0/profiles", {"name": "before"}).status == 201
    snap = fake.snapshot()
    assert api.post("/1.0/profiles", {"name": "after"}).status == 201
    assert api.patch("/1.0/profiles/before", {"config": {"user.k": "v"}}).status == 200

    fake.restore(snap)
    assert api.get("/1.0/profiles/after").status == 404
    assert api.get("/1.0/profiles/before").metadata["config"] == {}
    # The snapshot is a copy: changes after a restore do not leak into it.
    assert api.patch("/1.0/profiles/before", {"config": {"user.k": "w"}}).status == 200
    fake.restore(snap)
    assert api.get("/1.0/profiles/before").metadata["config"] == {}


def test_reset_to_a_snapshot(fake: FakeLXD) -> None:
    """``reset(snapshot)``: the snapshot's state (one copy, what the plugin does before each
    test), and the operations, log and exec handlers forgotten as by a plain reset."""
    api = API.unix("fake", fake.socket_path)
    assert api.post("/1.0/profiles", {"name": "kept"}).status == 201
    snap = fake.snapshot()
    assert api.post("/1.0/profiles", {"name": "dropped"}).status == 201
    fake.exec_handler("hello", lambda *args: (0, b"", b""))
    fake.reset(snap)
    assert fake.requests == []
    assert fake.exec_handlers.find("hello") is None
    assert api.get("/1.0/profiles/kept").status == 200
    assert api.get("/1.0/profiles/dropped").status == 404
    assert api.patch("/1.0/profiles/kept", {"config": {"user.k": "v"}}).status == 200
    fake.reset(snap)  # the snapshot itself was not changed through the state
    assert api.get("/1.0/profiles/kept").metadata["config"] == {}
    fake.reset()
    assert api.get("/1.0/profiles/kept").status == 404


def test_request_log(fake: FakeLXD) -> None:
    api = API.unix("fake", fake.socket_path)
    api.get("/1.0/profiles", params={"recursion": "1"})
    api.post("/1.0/profiles", {"name": ""})
    api.get("/1.0/nowhere")
    log = fake.requests
    assert [(r.method, r.path, r.query, r.status, r.protocol) for r in log] == [
        ("GET", "/1.0/profiles", "recursion=1", 200, "unix"),
        ("POST", "/1.0/profiles", "", 400, "unix"),
        ("GET", "/1.0/nowhere", "", 404, "unix"),
    ]
    assert str(log[0]) == "GET /1.0/profiles?recursion=1 -> 200 (unix)"
    assert log[0].at <= log[1].at <= log[2].at
    assert log[1].body == b""  # bodies only with log_bodies=True
    log.clear()  # a copy: the fake's own log is untouched
    assert len(fake.requests) == 3


def test_request_log_with_bodies(tmp_path: Path) -> None:
    with FakeLXD(tmp_path / "lxd", log_bodies=True) as fake:
        api = API.unix("fake", fake.socket_path)
        api.post("/1.0/profiles", {"name": "x"})
        assert fake.requests[0].body == b'{"name": "x"}'


def test_handler_errors_are_recorded_and_answered_500(tmp_path: Path) -> None:
    def broken(ctx: object) -> None:
        raise RuntimeError("boom")

    with FakeLXD(tmp_path / "lxd") as fake:
        app = fake.app
        app.routes = list(app.routes)  # this fake only
        index = next(i for i, r in enumerate(app.routes)
                     if r.path == "/1.0" and "GET" in r.methods)
        old = app.routes[index]
        app.routes[index] = Route(old.path, old.methods, broken, old.untrusted)
        api = API.unix("fake", fake.socket_path)
        reply = api.get("/1.0")
        assert reply.status == 500
        assert reply.body["type"] == "error" and reply.error == "Internal error in the fake: boom"
        assert len(fake.handler_errors) == 1
        assert "RuntimeError: boom" in fake.handler_errors[0]
        assert "Traceback" not in reply.raw.decode()
        fake.reset()
        assert fake.handler_errors == []


def test_https_on_the_ipv6_loopback(tmp_path: Path) -> None:
    with FakeLXD(tmp_path / "lxd", https="::1:0") as fake:
        host, port = fake.https_address or ("", 0)
        assert host == "::1" and port > 0
        assert fake.https_url == f"https://[::1]:{port}"
        reply = requests.get(fake.https_url + "/1.0", verify=fake.ca_file, timeout=10)
        assert reply.json()["metadata"]["auth"] == "untrusted"
