"""Many clients at once on one fake: threads and processes, over the unix socket and TLS.

* racing ``If-Match`` updates: exactly one writer wins each round, the others get 412 (no
  lost update). The fake is stricter than LXD 5.0.2 here, on purpose: LXD checks If-Match
  outside the transaction that writes, so racing PUTs of a profile carrying the same ETag can
  all succeed on the real host (seen: 6 to 8 of 8); the fake checks and writes under one lock;
* creating, updating and deleting profiles, projects, volumes and snapshots from many threads,
  and starting, stopping and snapshotting instances: every operation ends, nothing deadlocks
  (every wait is bounded), and afterwards ``used_by``, expanded config, snapshot lists and
  project contents agree with what the clients did.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import queue
import random
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from fakeserver import FakeLXD
from tests import instancefixtures
from tests.robustness import workers
from tests.robustness.checks import FIGURES
from tests.support import API, unique
from tests.tlsutil import ClientCert, self_signed

pytestmark = [pytest.mark.fake_only, pytest.mark.timeout(120)]

THREADS = int(os.environ.get("PYTEST_LXD_CONCURRENCY_THREADS", "16"))
PROCESSES = int(os.environ.get("PYTEST_LXD_CONCURRENCY_PROCESSES", "4"))
ROUNDS = int(os.environ.get("PYTEST_LXD_CONCURRENCY_ROUNDS", "10"))
JOIN = 90.0  # seconds any group of clients may take; more is a deadlock


def _trust(api: API, cert: ClientCert) -> None:
    reply = api.post("/1.0/certificates", {"type": "client", "certificate": cert.b64})
    assert reply.status == 201, reply


@pytest.fixture
def targets(api: API, tmp_path: Path) -> list[dict[str, Any]]:
    """Ways in: the unix socket, and TLS with two different trusted certificates."""
    server: FakeLXD = api.server  # type: ignore[attr-defined]
    out: list[dict[str, Any]] = [{"kind": "unix", "socket": server.socket_path}]
    for name in ("c1", "c2"):
        cert = self_signed(tmp_path, name)
        _trust(api, cert)
        out.append({"kind": "tls", "url": server.https_url, "cert": list(cert.pair),
                    "ca": server.ca_file})
    return out


def run_threads(count: int, work: Callable[[int], Any]) -> list[Any]:
    """Run ``work(i)`` on ``count`` threads; fail on an error or on a thread still running
    after :data:`JOIN` seconds (a deadlock)."""
    results: list[Any] = [None] * count
    errors: list[BaseException] = []

    def wrap(index: int) -> None:
        try:
            results[index] = work(index)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=wrap, args=(i,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN)
    assert not [t for t in threads if t.is_alive()], "clients still running: a deadlock?"
    if errors:
        raise errors[0]
    return results


def _check_rounds(replies: list[tuple[int, str, int, str]], clients: int, rounds: int,
                  final: dict[str, Any]) -> None:
    by_round: dict[int, list[tuple[str, int, str]]] = {}
    for round_no, ident, status, err in replies:
        assert round_no >= 0, (ident, err)
        by_round.setdefault(round_no, []).append((ident, status, err))
    assert sorted(by_round) == list(range(rounds))
    winner = ""
    for round_no, got in sorted(by_round.items()):
        assert len(got) == clients, (round_no, got)
        statuses = Counter(status for _, status, _ in got)
        assert statuses == Counter({200: 1, 412: clients - 1}), (round_no, got)
        winner = next(ident for ident, status, _ in got if status == 200)
        for _, status, err in got:
            if status == 412:
                assert err.startswith("ETag doesn't match: "), err
    assert (final["user.winner"], final["user.round"]) == (winner, str(rounds - 1))


def _racy_object(api: API, kind: str) -> tuple[str, str, dict[str, str]]:
    """An object of ``kind`` to race on: its path, the method, the config every write keeps."""
    name = unique("race")
    if kind == "profile":
        assert api.post("/1.0/profiles", {"name": name}).status == 201
        return f"/1.0/profiles/{name}", "PUT", {}
    if kind == "project":
        features = {"features.profiles": "true", "features.images": "true",
                    "features.storage.volumes": "true", "features.networks": "false"}
        assert api.post("/1.0/projects", {"name": name, "config": features}).status == 201
        return f"/1.0/projects/{name}", "PUT", features
    if kind == "network":
        config = {"ipv4.address": "none", "ipv6.address": "none"}
        assert api.post("/1.0/networks", {"name": name[:15], "type": "bridge",
                                          "config": config}).status == 201
        return f"/1.0/networks/{name[:15]}", "PUT", config
    if kind == "volume":
        assert api.post("/1.0/storage-pools/default/volumes/custom",
                        {"name": name}).status == 200
        return f"/1.0/storage-pools/default/volumes/custom/{name}", "PUT", {}
    raise AssertionError(kind)


#: Instances are left out: PATCH /1.0/instances/<name> checks If-Match apart from the update
#: (fakeserver/api/instances.py), so racing writers can all pass. LXD 5.0.2 is not strict
#: either (two of sixteen racing PATCHes of an instance went through in about one round of
#: ten on the real host), so this is no divergence; it is reported as a wish.
KINDS = ["profile", "project", "network", "volume"]


@pytest.mark.parametrize("kind", KINDS)
def test_racing_etag_updates_from_threads(api: API, targets: list[dict[str, Any]],
                                          kind: str) -> None:
    """Threads on the unix socket and on TLS race ``If-Match`` writes: one winner a round."""
    path, method, base = _racy_object(api, kind)
    barrier = threading.Barrier(THREADS)
    replies: queue.Queue[str] = queue.Queue()

    def work(index: int) -> None:
        workers.race_rounds(targets[index % len(targets)], f"t{index}", path, ROUNDS, barrier,
                            replies, method, base)

    run_threads(THREADS, work)
    FIGURES.clients("threads (If-Match races)", THREADS)
    got = [tuple(json.loads(replies.get_nowait())) for _ in range(replies.qsize())]
    _check_rounds(got, THREADS, ROUNDS, api.get(path).metadata["config"])  # type: ignore[arg-type]


def test_racing_etag_updates_from_processes(api: API, targets: list[dict[str, Any]]) -> None:
    """Separate processes, each with its own client (unix socket or TLS certificate)."""
    name = unique("race")
    assert api.post("/1.0/profiles", {"name": name}).status == 201
    path = f"/1.0/profiles/{name}"
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(PROCESSES)
    replies = context.Queue()
    procs = [context.Process(target=workers.race_rounds,
                             args=(targets[i % len(targets)], f"p{i}", path, ROUNDS, barrier,
                                   replies), daemon=True)
             for i in range(PROCESSES)]
    for proc in procs:
        proc.start()
    got = []
    try:
        for _ in range(PROCESSES * ROUNDS):
            got.append(tuple(json.loads(replies.get(timeout=JOIN))))
            if got[-1][0] < 0:
                break
    finally:
        for proc in procs:
            proc.join(JOIN)
            if proc.is_alive():
                proc.kill()
    FIGURES.clients("processes (If-Match races)", PROCESSES)
    _check_rounds(got, PROCESSES, ROUNDS, api.get(path).metadata["config"])  # type: ignore[arg-type]


def test_many_clients_change_many_objects(api: API, targets: list[dict[str, Any]]) -> None:
    """Threads create, update and delete profiles, volumes (with snapshots) and projects, and
    tie profiles to volumes; afterwards every object shows what the survivors did."""
    prefix = unique("cc").replace("-", "")
    pool = "default"

    def work(index: int) -> dict[str, Any]:
        rng = random.Random(index)
        client = workers.client_for(targets[index % len(targets)])
        mine: dict[str, Any] = {"profiles": {}, "volumes": {}, "projects": set()}
        for step in range(25):
            what = rng.choice(["profile", "volume", "attach", "snapshot", "project", "delete"])
            tag = f"{prefix}{index}x{step}"
            if what == "profile":
                assert client.post("/1.0/profiles", {"name": tag, "config": {
                    "user.owner": str(index)}}).status == 201
                mine["profiles"][tag] = None
            elif what == "volume":
                reply = client.post(f"/1.0/storage-pools/{pool}/volumes/custom", {"name": tag})
                assert reply.status == 200, reply
                mine["volumes"][tag] = set()
            elif what == "attach" and mine["profiles"] and mine["volumes"]:
                profile = rng.choice(sorted(mine["profiles"]))
                volume = rng.choice(sorted(mine["volumes"]))
                reply = client.patch(f"/1.0/profiles/{profile}", {"devices": {"data": {
                    "type": "disk", "pool": pool, "source": volume, "path": "/data"}}})
                assert reply.status == 200, reply
                mine["profiles"][profile] = volume
            elif what == "snapshot" and mine["volumes"]:
                volume = rng.choice(sorted(mine["volumes"]))
                snap = f"s{step}"
                reply = client.post(f"/1.0/storage-pools/{pool}/volumes/custom/{volume}/"
                                    "snapshots", {"name": snap})
                assert reply.status == 202, reply
                assert client.wait(reply, timeout=30)["status"] == "Success"
                mine["volumes"][volume].add(snap)
            elif what == "project":
                assert client.post("/1.0/projects", {"name": tag, "config": {
                    "features.profiles": "true"}}).status == 201
                reply = client.post("/1.0/profiles", {"name": "extra"},
                                    params={"project": tag})
                assert reply.status == 201, reply
                mine["projects"].add(tag)
            elif what == "delete" and mine["profiles"]:
                profile = rng.choice(sorted(mine["profiles"]))
                assert client.delete(f"/1.0/profiles/{profile}").status == 200
                del mine["profiles"][profile]
        return mine

    results = run_threads(THREADS, work)
    FIGURES.clients("threads (mixed changes)", THREADS)
    profiles = {p["name"]: p for p in api.get("/1.0/profiles", params={"recursion": "1"})
                .metadata if p["name"].startswith(prefix)}
    volumes = {v["name"]: v for v in api.get(f"/1.0/storage-pools/{pool}/volumes/custom",
                                             params={"recursion": "1"}).metadata
               if v["name"].startswith(prefix)}
    want_profiles = {k: v for r in results for k, v in r["profiles"].items()}
    assert set(profiles) == set(want_profiles)
    want_volumes = {k: v for r in results for k, v in r["volumes"].items()}
    assert set(volumes) == set(want_volumes) | {f"{v}/{s}" for v, snaps in want_volumes.items()
                                                for s in snaps}
    for name, volume in want_profiles.items():
        disk = profiles[name]["devices"].get("data", {}).get("source")
        assert disk == volume, (name, profiles[name])
    for name in want_volumes:
        users = sorted(url.rsplit("/", 1)[1] for url in volumes[name]["used_by"])
        assert users == sorted(p for p, v in want_profiles.items() if v == name), name
        snaps = api.get(f"/1.0/storage-pools/{pool}/volumes/custom/{name}/snapshots").metadata
        assert sorted(u.rsplit("/", 1)[1] for u in snaps) == sorted(want_volumes[name])
    for project in {p for r in results for p in r["projects"]}:
        used_by = api.get(f"/1.0/projects/{project}").metadata["used_by"]
        assert sorted(used_by) == sorted([f"/1.0/profiles/default?project={project}",
                                          f"/1.0/profiles/extra?project={project}"])
    assert not api.server.operations.held()  # type: ignore[attr-defined]
    assert all(op.final for op in api.server.operations.all()  # type: ignore[attr-defined]
               if op.run is not None)


def test_instances_started_stopped_and_snapshotted_at_once(api: API) -> None:
    """Threads start, stop, restart and snapshot the same instances: every operation ends, in
    Success or LXD's refusal, and the instances end in a state their records agree with."""
    profile = unique("cp")
    assert api.post("/1.0/profiles", {"name": profile, "config": {"user.via": "profile"}}) \
        .status == 201
    names = [instancefixtures.make(api, profiles=["default", profile]) for _ in range(3)]
    snapshots: dict[str, set[str]] = {name: set() for name in names}
    lock = threading.Lock()

    def work(index: int) -> Counter[str]:
        rng = random.Random(index)
        seen: Counter[str] = Counter()
        for step in range(12):
            name = rng.choice(names)
            if rng.random() < 0.25:
                snap = f"s{index}x{step}"
                reply = api.post(f"/1.0/instances/{name}/snapshots", {"name": snap})
                op = api.wait(reply, timeout=30)
                if op["status"] == "Success":
                    with lock:
                        snapshots[name].add(snap)
            else:
                action = rng.choice(["start", "stop", "restart", "freeze", "unfreeze"])
                body: dict[str, Any] = {"action": action, "timeout": 5}
                if action in ("stop", "restart"):
                    body["force"] = True
                reply = api.put(f"/1.0/instances/{name}/state", body)
                if reply.status != 202:
                    assert reply.status == 400, reply
                    seen["refused"] += 1
                    continue
                op = api.wait(reply, timeout=30)
            assert op["status"] in ("Success", "Failure"), op
            seen[op["status"]] += 1
        return seen

    counts = run_threads(THREADS // 2, work)
    FIGURES.clients("threads (instance state)", THREADS // 2)
    assert sum(sum(c.values()) for c in counts) == (THREADS // 2) * 12
    server: FakeLXD = api.server  # type: ignore[attr-defined]
    assert all(op.final for op in server.operations.all() if op.run is not None)
    for name in names:
        inst = api.get(f"/1.0/instances/{name}").metadata
        state = api.get(f"/1.0/instances/{name}/state").metadata
        assert inst["status"] == state["status"]
        assert inst["status"] in ("Running", "Stopped", "Frozen")
        assert inst["expanded_config"]["user.via"] == "profile"
        listed = api.get(f"/1.0/instances/{name}/snapshots").metadata
        assert sorted(url.rsplit("/", 1)[1] for url in listed) == sorted(snapshots[name])
    used_by = api.get(f"/1.0/profiles/{profile}").metadata["used_by"]
    assert sorted(used_by) == sorted(f"/1.0/instances/{name}" for name in names)


@pytest.fixture
def stressed() -> Iterator[FakeLXD]:
    with FakeLXD() as fake:
        yield fake


def test_the_fake_keeps_answering_while_clients_hang(stressed: FakeLXD) -> None:
    """Clients that send half a request and wait hold no lock: others are still served."""
    import socket

    hung = []
    for _ in range(8):
        sock = socket.socket(socket.AF_UNIX)
        sock.connect(stressed.socket_path)
        sock.sendall(b"POST /1.0/profiles HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        hung.append(sock)
    client = API.unix("fake", stressed.socket_path)
    try:
        results = run_threads(THREADS, lambda i: client.get("/1.0/profiles", timeout=10).status)
        assert results == [200] * THREADS
        name = unique("h")
        assert client.post("/1.0/profiles", {"name": name}, timeout=10).status == 201
    finally:
        for sock in hung:
            sock.close()
    assert not stressed.handler_errors
