"""Warnings: LXD raises them itself, so the real host's list is whatever its daemon found.

Tests that change a warning's status or delete one run on the fake only: on the real host the
only warnings are the daemon's own (missing cgroup controllers and the like), which are not
ours to touch. Everything else, including the refusals on a real warning, runs on both.
"""

from __future__ import annotations

import json
import time
import urllib.parse
import uuid

import pytest

from fakeserver.api.warnings import add_warning, resolve_warning
from tests.support import API

KEYS = ["status", "uuid", "location", "project", "type", "count", "first_seen_at",
        "last_seen_at", "last_message", "severity", "entity_url"]


def some_warning(api: API) -> dict[str, object]:
    """A warning to read: the fake gets one raised, the real host has its daemon's own."""
    if api.is_fake:
        add_warning(api.server.state, "AppArmor support has been disabled",  # type: ignore[attr-defined]
                    "Disabled because of lack of kernel support")
    warnings = api.get("/1.0/warnings", params={"recursion": "1"}).metadata
    assert warnings, "the real host is expected to carry its daemon's own warnings"
    return dict(warnings[0])


def test_list_and_get(api: API) -> None:
    warning = some_warning(api)
    assert list(warning) == KEYS
    assert warning["status"] in ("new", "acknowledged", "resolved")
    assert warning["severity"] in ("low", "moderate", "high")
    assert warning["project"] == "" and warning["location"] == "none"
    urls = api.get("/1.0/warnings").metadata
    assert f"/1.0/warnings/{warning['uuid']}" in urls
    assert urls == sorted(urls)
    reply = api.get(f"/1.0/warnings/{warning['uuid']}")
    assert reply.status == 200
    assert reply.metadata == warning
    assert "ETag" not in reply.headers


def test_empty_results_are_null_without_recursion(api: API) -> None:
    params = {"project": f"nope-{uuid.uuid4().hex[:8]}"}
    assert api.get("/1.0/warnings", params=params).raw.count(b'"metadata":null') == 1
    assert api.get("/1.0/warnings", params={**params, "recursion": "1"}).metadata == []
    params = {"filter": "status eq zzz"}
    assert api.get("/1.0/warnings", params=params).metadata is None
    assert api.get("/1.0/warnings", params={**params, "recursion": "1"}).metadata == []


def test_empty_project_parameter_means_all(api: API) -> None:
    some_warning(api)
    assert api.get("/1.0/warnings", params={"project": ""}).metadata == \
        api.get("/1.0/warnings").metadata


@pytest.mark.parametrize(("text", "message"), [
    ("bogus", "clause has no operator"),
    ("status eq", "clause has no value"),
    ("status eq new xor type eq x", "invalid clause composition"),
    ("status eq new and", "unterminated compound clause"),
])
def test_bad_filters(api: API, text: str, message: str) -> None:
    reply = api.get("/1.0/warnings", params={"filter": text})
    assert (reply.status, reply.error) == (500, f"Failed to filter warnings: {message}")


def test_filter_matches(api: API) -> None:
    warning = some_warning(api)
    text = f"uuid eq {warning['uuid']}"
    assert api.get("/1.0/warnings", params={"filter": text}).metadata == [
        f"/1.0/warnings/{warning['uuid']}"]
    text = f"not uuid eq {warning['uuid']}"
    assert f"/1.0/warnings/{warning['uuid']}" not in (
        api.get("/1.0/warnings", params={"filter": text}).metadata or [])


def test_unknown_warning(api: API) -> None:
    for method in ("GET", "DELETE"):
        reply = api.request(method, "/1.0/warnings/nope")
        assert (reply.status, reply.error) == (404, "Warning not found"), method


def test_status_changes_of_an_unknown_warning_succeed(api: API) -> None:
    """5.0.2 runs an UPDATE that matches no row and answers 200 all the same."""
    for method in ("PUT", "PATCH"):
        for status in ("acknowledged", "new"):
            reply = api.request(method, "/1.0/warnings/nope", json_body={"status": status})
            assert (reply.status, reply.metadata) == (200, {}), (method, status)


def test_status_changes_emit_lifecycle_events_in_the_default_project(api: API) -> None:
    """Even for an unknown UUID: the handler emits after its (row-less) UPDATE."""
    from websockets.sync.client import unix_connect

    path = urllib.parse.unquote(api.base.removeprefix("http+unix://"))
    target = f"/1.0/warnings/{uuid.uuid4()}"
    with unix_connect(path, "ws://lxd/1.0/events?type=lifecycle") as ws:
        # Refused requests first: had they emitted anything, it would come first.
        assert api.put(target, {"status": "resolved"}).status == 403
        assert api.delete(target).status == 404
        assert api.put(target, {"status": "acknowledged"}).status == 200
        assert api.patch(target, {"status": "new"}).status == 200
        seen: list[dict[str, object]] = []
        deadline = time.monotonic() + 5
        while len(seen) < 2 and time.monotonic() < deadline:
            try:
                event = json.loads(ws.recv(timeout=0.2))
            except TimeoutError:
                continue
            if event["metadata"]["source"] == target:
                seen.append(event)
    assert [(e["metadata"]["action"], e["project"]) for e in seen] == [  # type: ignore[index]
        ("warning-acknowledged", "default"), ("warning-reset", "default")]


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
def test_status_validation(api: API, method: str) -> None:
    target = f"/1.0/warnings/{some_warning(api)['uuid']}"
    before = api.get(target).metadata
    for path in (target, "/1.0/warnings/nope"):
        for body, code, message in [
            ({"status": "bogus"}, 400, 'Invalid warning type "bogus"'),
            ({"status": "Acknowledged"}, 400, 'Invalid warning type "Acknowledged"'),
            ({}, 400, 'Invalid warning type ""'),
            ({"status": "resolved"}, 403, 'Status may only be set to "acknowledge" or "new"'),
        ]:
            reply = api.request(method, path, json_body=body)
            assert (reply.status, reply.error) == (code, message), (path, body)
        for raw, message in [(b"", "EOF"), (b"[", "unexpected EOF"),
                             (b'{"status":1}', "json: cannot unmarshal number into Go struct "
                                               "field WarningPut.status of type string")]:
            reply = api.request(method, path, data=raw)
            assert (reply.status, reply.error) == (400, message), (path, raw)
    assert api.get(target).metadata == before


def test_methods_not_allowed(api: API) -> None:
    assert api.post("/1.0/warnings", {}).status == 501
    assert api.post("/1.0/warnings/nope", {}).status == 501


# -- fake only: the fake's own warnings ------------------------------------------------------
@pytest.mark.fake_only
def test_fake_starts_without_warnings(api: API) -> None:
    assert api.get("/1.0/warnings").metadata is None
    assert api.get("/1.0/warnings", params={"recursion": "1"}).metadata == []


@pytest.mark.fake_only
def test_acknowledge_reset_and_delete(api: API) -> None:
    state = api.server.state  # type: ignore[attr-defined]
    listener = api.server.events.subscribe(frozenset({"lifecycle"}))  # type: ignore[attr-defined]
    uid = add_warning(state, "Instance type not operational", "vhost_vsock not loaded",
                      severity="moderate")
    path = f"/1.0/warnings/{uid}"
    assert api.put(path, {"status": "acknowledged"}).status == 200
    assert api.get(path).metadata["status"] == "acknowledged"
    assert api.patch(path, {"status": "new"}).status == 200
    assert api.get(path).metadata["status"] == "new"
    assert api.delete(path).status == 200
    assert api.get(path).status == 404
    events = [listener.get(1) for _ in range(3)]
    assert [(e["metadata"]["action"], e["metadata"]["source"], e["project"])
            for e in events if e] == [("warning-acknowledged", path, "default"),
                                      ("warning-reset", path, "default"),
                                      ("warning-deleted", path, "default")]


@pytest.mark.fake_only
def test_raising_again_counts_and_reopens(api: API) -> None:
    state = api.server.state  # type: ignore[attr-defined]
    uid = add_warning(state, "Couldn't find the CGroup blkio.weight", "first")
    first = api.get(f"/1.0/warnings/{uid}").metadata
    assert (first["count"], first["status"], first["last_message"]) == (1, "new", "first")
    assert first["first_seen_at"] == first["last_seen_at"]
    resolve_warning(state, uid)
    assert api.get(f"/1.0/warnings/{uid}").metadata["status"] == "resolved"
    assert add_warning(state, "Couldn't find the CGroup blkio.weight", "second") == uid
    again = api.get(f"/1.0/warnings/{uid}").metadata
    assert (again["count"], again["status"], again["last_message"]) == (2, "new", "second")
    assert again["first_seen_at"] == first["first_seen_at"]
    # Acknowledged stays acknowledged when the warning comes back.
    assert api.put(f"/1.0/warnings/{uid}", {"status": "acknowledged"}).status == 200
    add_warning(state, "Couldn't find the CGroup blkio.weight", "third")
    assert api.get(f"/1.0/warnings/{uid}").metadata["status"] == "acknowledged"


@pytest.mark.fake_only
def test_project_filter_and_status_filter(api: API) -> None:
    state = api.server.state  # type: ignore[attr-defined]
    server_wide = add_warning(state, "AppArmor support has been disabled", "m")
    in_project = add_warning(state, "Failed to load instance", "m", project="default",
                             entity_url="/1.0/instances/c1", severity="high")
    assert api.get("/1.0/warnings", params={"project": "default"}).metadata == [
        f"/1.0/warnings/{in_project}"]
    assert len(api.get("/1.0/warnings").metadata) == 2
    assert api.put(f"/1.0/warnings/{server_wide}", {"status": "acknowledged"}).status == 200
    got = api.get("/1.0/warnings", params={"filter": "status eq acknowledged",
                                           "recursion": "1"}).metadata
    assert [w["uuid"] for w in got] == [server_wide]
    got = api.get("/1.0/warnings", params={"filter": 'type eq "Failed to load instance"'})
    assert got.metadata == [f"/1.0/warnings/{in_project}"]
    warning = api.get(f"/1.0/warnings/{in_project}").metadata
    assert (warning["entity_url"], warning["severity"]) == ("/1.0/instances/c1", "high")


@pytest.mark.fake_only
def test_reset_forgets_warnings(api: API) -> None:
    add_warning(api.server.state, "x", "y")  # type: ignore[attr-defined]
    api.server.reset()  # type: ignore[attr-defined]
    assert api.get("/1.0/warnings").metadata is None


def test_add_warning_checks_severity() -> None:
    from fakeserver.state import State

    with pytest.raises(ValueError, match="severity"):
        add_warning(State(), "t", "m", severity="urgent")
