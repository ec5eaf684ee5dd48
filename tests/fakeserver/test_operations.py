"""``/1.0/operations``: the same requests and answers on the fake and on real LXD 5.0.2.

Real operations without instances: a project rename (``Renaming project``, a global task
operation), a custom volume snapshot (``Creating storage volume snapshot``, in its project) and
a certificate add token (``Executing operation``, a cancellable token in ``default``). The real
host is shared, so lists are only searched for this test's operations.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import trustme
from websockets.sync.client import ClientConnection, unix_connect

from fakeserver import FakeLXD
from tests.support import API, Reply, unique

ZERO = "00000000-0000-0000-0000-000000000000"
OP_KEYS = ["id", "class", "description", "created_at", "updated_at", "status", "status_code",
           "resources", "metadata", "may_cancel", "err", "location"]
# Any status an operation can have, lowercased (a shared host may list someone's Pending op)
STATUSES = {"pending", "running", "cancelling", "success", "failure", "cancelled"}

pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")


def make_project(api: API, **config: str) -> str:
    name = unique("opp")
    reply = api.post("/1.0/projects", {"name": name, "config": config})
    assert reply.status == 201, reply
    api.delete_later(f"/1.0/projects/{name}")
    return name


def rename(api: API) -> Reply:
    """Start a project rename: a global task operation."""
    name = make_project(api)
    api.delete_later(f"/1.0/projects/{name}r")
    reply = api.post(f"/1.0/projects/{name}", {"name": f"{name}r"})
    assert reply.status == 202, reply
    return reply


def token(api: API) -> Reply:
    """A certificate add token: a cancellable token operation that never ends by itself."""
    reply = api.post("/1.0/certificates", {"name": unique("opc"), "type": "client",
                                           "token": True})
    assert reply.status == 202, reply
    url = reply.body["operation"]
    api.later(lambda: api.delete(url))
    return reply


def volume_snapshot(api: API, project: str) -> Reply:
    """A custom volume snapshot in ``project``: a task operation of that project."""
    papi = api.in_project(project)
    volume = unique("opv")
    base = "/1.0/storage-pools/default/volumes/custom"
    reply = papi.post(base, {"name": volume, "config": {}})
    assert reply.status in (200, 201), reply
    papi.delete_later(f"{base}/{volume}")
    papi.delete_later(f"{base}/{volume}/snapshots/s1")
    reply = papi.post(f"{base}/{volume}/snapshots", {"name": "s1"})
    assert reply.status == 202, reply
    return reply


def listed(api: API, url: str, **params: Any) -> str | None:
    """The status key under which ``url`` is listed, or None."""
    reply = api.get("/1.0/operations", params=params)
    assert reply.status == 200, reply
    for status, urls in reply.metadata.items():
        if url in urls:
            return str(status)
    return None


@contextmanager
def op_events(api: API) -> Iterator[ClientConnection]:
    path = urllib.parse.unquote(api.base[len("http+unix://"):])
    with unix_connect(path, "ws://localhost/1.0/events?all-projects=true&type=operation,"
                      "lifecycle", open_timeout=10, close_timeout=2) as ws:
        yield ws


def events_until(ws: ClientConnection, op_id: str,
                 done: Callable[[list[dict[str, Any]]], bool],
                 timeout: float = 10) -> list[dict[str, Any]]:
    """The operation and lifecycle events about ``op_id``, until ``done(events)``."""
    mine: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while not done(mine):
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"events of {op_id} incomplete: {mine}")
        event = json.loads(ws.recv(timeout=left))
        meta = event["metadata"]
        if event["type"] == "operation" and meta["id"] == op_id:
            mine.append(event)
        elif event["type"] == "lifecycle" and meta.get("source") == f"/1.0/operations/{op_id}":
            mine.append(event)
    return mine


def has_status(status: str) -> Callable[[list[dict[str, Any]]], bool]:
    return lambda seen: any(e["metadata"].get("status") == status for e in seen)


# -- the async reply and the operation object ----------------------------------------------

def test_async_reply_embeds_the_running_operation(api: API) -> None:
    reply = rename(api)
    body = reply.body
    op = body["metadata"]
    url = f"/1.0/operations/{op['id']}"
    assert list(body) == ["type", "status", "status_code", "operation", "error_code", "error",
                          "metadata"]
    assert (body["type"], body["status"], body["status_code"]) == ("async",
                                                                    "Operation created", 100)
    assert body["operation"] == url and reply.headers["Location"] == url
    assert list(op) == OP_KEYS
    assert op["class"] == "task" and op["description"] == "Renaming project"
    # LXD renders the op right after Start(): Running (the fake always; real nearly always)
    assert (op["status"], op["status_code"]) == ("Running", 103)
    assert op["resources"] is None and op["metadata"] is None
    assert op["may_cancel"] is False and op["err"] == "" and op["location"] == "none"
    assert op["created_at"] == op["updated_at"]
    api.wait(reply)


def test_wait_gives_the_final_operation(api: API) -> None:
    reply = rename(api)
    url = reply.body["operation"]
    final = api.get(f"{url}/wait", params={"timeout": 30})
    assert final.status == 200 and final.body["type"] == "sync"
    op = final.metadata
    assert list(op) == OP_KEYS
    assert (op["status"], op["status_code"], op["err"]) == ("Success", 200, "")
    assert op["updated_at"] == op["created_at"], "status changes leave updated_at alone"
    got = api.get(url)
    assert got.status == 200 and got.metadata == op
    start = time.monotonic()
    again = api.get(f"{url}/wait", params={"timeout": 5})
    assert again.metadata == op and time.monotonic() - start < 1, "final: no waiting"


def test_failed_operation_is_a_200_with_err(api: API) -> None:
    taken = make_project(api)
    name = make_project(api)
    reply = api.post(f"/1.0/projects/{name}", {"name": taken})
    assert reply.status == 202, reply
    op = api.wait(reply)
    assert (op["status"], op["status_code"]) == ("Failure", 400)
    assert op["err"] == f'A project named "{taken}" already exists'


def test_operation_events_on_every_transition(api: API) -> None:
    with op_events(api) as ws:
        reply = rename(api)
        op_id = reply.body["metadata"]["id"]
        mine = events_until(ws, op_id, has_status("Success"))
    statuses = [e["metadata"]["status"] for e in mine]
    # LXD may deliver Running before Pending; all three are always there
    assert sorted(statuses) == ["Pending", "Running", "Success"]
    assert statuses[-1] == "Success"
    for event in mine:
        assert list(event) == ["type", "timestamp", "metadata", "location"], \
            "a global operation's events carry no project"
        assert list(event["metadata"]) == OP_KEYS


# -- lists -----------------------------------------------------------------------------------

def test_list_is_a_map_by_lowercase_status(api: API) -> None:
    reply = rename(api)
    url = reply.body["operation"]
    assert listed(api, url) in ("running", "success")
    api.wait(reply)
    listing = api.get("/1.0/operations")
    assert set(listing.metadata) <= STATUSES
    assert url in listing.metadata["success"]
    assert all(u.startswith("/1.0/operations/") for urls in listing.metadata.values()
               for u in urls)
    for recursion in ("1", "2", "-1"):
        full = api.get("/1.0/operations", params={"recursion": recursion}).metadata
        mine = [op for op in full["success"] if op["id"] == reply.body["metadata"]["id"]]
        assert len(mine) == 1 and list(mine[0]) == OP_KEYS, recursion
    plain = api.get("/1.0/operations", params={"recursion": "abc"}).metadata
    assert url in plain["success"]


def test_global_operations_are_listed_in_every_project(api: API) -> None:
    other = make_project(api)
    reply = rename(api)
    url = reply.body["operation"]
    api.wait(reply)
    assert listed(api, url) == "success"
    assert listed(api, url, project=other) == "success"
    assert listed(api, url, project="nope") == "success", "the project is not even checked"


def test_project_operations_are_listed_in_their_project_only(api: API) -> None:
    project = make_project(api)
    reply = volume_snapshot(api, project)
    url = reply.body["operation"]
    op = api.in_project(project).wait(reply)
    assert op["description"] == "Creating storage volume snapshot"
    assert listed(api, url, project=project) == "success"
    assert listed(api, url) is None
    # all-projects is not a thing for operations in 5.0.2: default's list, not everything
    assert listed(api, url, **{"all-projects": "true"}) is None
    assert listed(api, url, project=project, **{"all-projects": "true"}) == "success"
    assert api.get(url).status == 200, "an operation is found by id from any project"


@pytest.mark.fake_only
def test_no_operations_is_an_empty_map(fake: FakeLXD, api: API) -> None:
    """On a fresh fake; the shared real host always has someone's operations."""
    reply = api.get("/1.0/operations")
    assert reply.status == 200 and reply.metadata == {}
    assert reply.raw.endswith(b'"metadata":{}}\n')


# -- errors ----------------------------------------------------------------------------------

def test_unknown_operation(api: API) -> None:
    url = f"/1.0/operations/{ZERO}"
    for reply in (api.get(url), api.delete(url), api.get(f"{url}/wait"),
                  api.get(f"{url}/wait", params={"timeout": 1}),
                  api.get("/1.0/operations/not-a-uuid"),
                  api.get(f"{url}/websocket", params={"secret": "x"})):
        assert (reply.status, reply.error) == (404, "Operation not found"), reply
    reply = api.get(f"{url}/wait", params={"timeout": "abc"})
    assert (reply.status, reply.error) == (500, 'strconv.Atoi: parsing "abc": invalid syntax')
    reply = api.get(f"{url}/websocket")
    assert (reply.status, reply.error) == (400, "missing secret")
    assert (api.put(url, {}).status, api.post("/1.0/operations", {}).status) == (501, 501)


def test_wait_timeout_must_be_an_integer(api: API) -> None:
    reply = rename(api)
    url = reply.body["operation"]
    for bad in ("abc", "1.5", " 1", "1s"):
        got = api.get(f"{url}/wait", params={"timeout": bad})
        assert (got.status, got.error) == (500, f'strconv.Atoi: parsing "{bad}": invalid syntax')
    assert api.get(f"{url}/wait", params={"timeout": "+5"}).metadata["status"] == "Success"


def test_cancel_and_connect_a_finished_task(api: API) -> None:
    reply = rename(api)
    url = reply.body["operation"]
    api.wait(reply)
    got = api.delete(url)
    assert (got.status, got.error) == (400, "Only running operations can be cancelled")
    for params in ({}, {"secret": "x"}):
        got = api.get(f"{url}/websocket", params=params)
        assert (got.status, got.error) == (500, "Only websocket operations can be connected")


def test_wait_with_a_wrong_secret_is_refused_even_when_trusted(api: API) -> None:
    reply = rename(api)
    got = api.get(f"{reply.body['operation']}/wait", params={"secret": "nope"})
    assert (got.status, got.error) == (403, "not authorized")
    api.wait(reply)


def test_finished_operations_are_forgotten_after_five_seconds(api: API) -> None:
    reply = rename(api)
    url = reply.body["operation"]
    api.wait(reply)
    ended = time.monotonic()
    last_seen = ended
    while True:
        got = api.get(url)
        now = time.monotonic()
        if got.status == 404:
            break
        assert got.status == 200 and now - ended < 20, (got, now - ended)
        last_seen = now
        time.sleep(0.2)
    assert got.error == "Operation not found"
    assert last_seen - ended >= 4.5, "kept for 5 s after it ended"
    assert now - ended < 10


# -- token operations: running, waiting, cancelling ----------------------------------------

def test_token_operation_waits_out_its_timeout(api: API) -> None:
    reply = token(api)
    op = reply.body["metadata"]
    assert (op["class"], op["description"], op["may_cancel"]) == (
        "token", "Executing operation", True)
    assert op["resources"] is None and len(op["metadata"]["secret"]) == 64
    url = reply.body["operation"]
    start = time.monotonic()
    now = api.get(f"{url}/wait", params={"timeout": 0})
    assert now.status == 200 and now.metadata["status"] == "Running"
    assert time.monotonic() - start < 0.5
    start = time.monotonic()
    later = api.get(f"{url}/wait", params={"timeout": 1})
    assert later.status == 200 and later.metadata["status"] == "Running"
    assert 0.9 <= time.monotonic() - start < 3
    assert listed(api, url) == "running"
    other = make_project(api)
    assert listed(api, url, project=other) is None, "a token lives in the default project"
    got = api.get(f"{url}/websocket", params={"secret": op["metadata"]["secret"]})
    assert (got.status, got.error) == (500, "Only websocket operations can be connected")


def test_cancel_a_token(api: API) -> None:
    with op_events(api) as ws:
        reply = token(api)
        url = reply.body["operation"]
        op_id = reply.body["metadata"]["id"]
        got = api.delete(url)
        assert got.status == 200 and got.metadata == {}
        mine = events_until(ws, op_id, lambda seen: has_status("Cancelled")(seen) and any(
            e["type"] == "lifecycle" for e in seen))
    op = api.get(url).metadata
    assert (op["status"], op["status_code"]) == ("Cancelled", 401)
    assert op["updated_at"] == op["created_at"]
    again = api.delete(url)
    assert (again.status, again.error) == (400, "Only running operations can be cancelled")
    statuses = [e["metadata"]["status"] for e in mine if e["type"] == "operation"]
    assert statuses[-2:] == ["Cancelling", "Cancelled"]
    assert all(e["project"] == "default" for e in mine)
    lifecycle = [e for e in mine if e["type"] == "lifecycle"]
    assert lifecycle[0]["metadata"] == {
        "action": "operation-cancelled", "source": url,
        "requestor": {"username": "root", "protocol": "unix", "address": "@"}}


@pytest.fixture
def untrusted(api: API, tmp_path: Path) -> API:
    """The backend over HTTPS with a client certificate it does not trust."""
    ca = trustme.CA()
    leaf = ca.issue_cert("client.invalid")
    cert, key = tmp_path / "c.crt", tmp_path / "c.key"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))
    if api.is_fake:
        url = api.server.https_url  # type: ignore[attr-defined]
    else:
        url = "https://" + api.get("/1.0").metadata["config"]["core.https_address"]
    return API.https(api.kind, url, (str(cert), str(key)), False)


def test_untrusted_wait_needs_the_secret(api: API, untrusted: API) -> None:
    reply = token(api)
    url = reply.body["operation"]
    secret = reply.body["metadata"]["metadata"]["secret"]
    for params in ({"timeout": 0}, {"timeout": "abc"}, {"timeout": 0, "secret": "bad"}):
        got = untrusted.get(f"{url}/wait", params=params)
        assert (got.status, got.error) == (403, "not authorized"), params
    got = untrusted.get(f"{url}/wait", params={"timeout": 0, "secret": secret})
    assert got.status == 200 and got.metadata["id"] == reply.body["metadata"]["id"]
    got = untrusted.get(f"{url}/wait", params={"timeout": "abc", "secret": secret})
    assert (got.status, got.error) == (500, 'strconv.Atoi: parsing "abc": invalid syntax')
    got = untrusted.get(f"/1.0/operations/{ZERO}/wait", params={"secret": secret})
    assert (got.status, got.error) == (404, "Operation not found")
    for got in (untrusted.get(url), untrusted.get("/1.0/operations"), untrusted.delete(url)):
        assert (got.status, got.error) == (403, "not authorized")
    got = untrusted.get(f"{url}/websocket", params={"secret": secret})
    assert (got.status, got.error) == (500, "Only websocket operations can be connected")
