"""The fuzzers' world: a fake with one object of every kind, and the route table to aim at.

Routes come from the fake's own table (``fakeserver.api.load()``), so a route added to the fake
is fuzzed without touching these tests. Each URL argument is filled either with the name of an
object that exists in the world (to reach deep into the handler) or with an odd name.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

from fakeserver import FakeLXD
from fakeserver import api as fake_api
from fakeserver.api import warnings as fake_warnings
from fakeserver.schema import Struct
from tests import instancefixtures
from tests.support import API

#: How many examples each hypothesis strategy runs (CI size; raise it to fuzz harder).
EXAMPLES = int(os.environ.get("PYTEST_LXD_FUZZ_EXAMPLES", "200"))

ARG = re.compile(r"<(?:(\w+):)?(\w+)>")


@dataclass(frozen=True)
class Endpoint:
    """One (route, method) of the fake."""

    template: str
    method: str
    module: str
    untrusted: bool
    args: tuple[tuple[str, str], ...]  # (argument, family of the objects it names)
    structs: tuple[Struct, ...]  # request bodies declared in the route's module

    @property
    def id(self) -> str:
        return f"{self.method} {self.template}"

    @property
    def writes(self) -> bool:
        return self.method in ("POST", "PUT", "PATCH", "DELETE")

    def fill(self, values: dict[str, str]) -> str:
        """The template with ``values`` (already encoded for the request target)."""
        return ARG.sub(lambda m: values[m.group(2)], self.template)


_FAMILY_AFTER = {
    "profiles": "profile", "projects": "project", "networks": "network",
    "storage-pools": "pool", "volumes": "vtype", "instances": "instance",
    "containers": "instance", "virtual-machines": "instance", "images": "image",
    "aliases": "alias", "certificates": "certificate", "operations": "operation",
    "warnings": "warning", "members": "member", "groups": "group", "logs": "logfile",
    "network-acls": "acl",
    "network-zones": "zone", "records": "record", "peers": "peer",
    "backups": "backup",
}


def _families(template: str) -> tuple[tuple[str, str], ...]:
    parts = template.strip("/").split("/")
    out: list[tuple[str, str]] = []
    for index, part in enumerate(parts):
        match = ARG.fullmatch(part)
        if not match:
            continue
        before = parts[index - 1] if index else ""
        if before == "snapshots" or (ARG.fullmatch(before) and out and out[-1][1] == "volume"):
            family = "volume-snapshot" if "storage-pools" in template else "instance-snapshot"
        elif ARG.fullmatch(before) and out and out[-1][1] == "vtype":
            family = "volume"
        else:
            family = _FAMILY_AFTER.get(before, "other")
        out.append((match.group(2), family))
    return tuple(out)


def _structs(module: str) -> tuple[Struct, ...]:
    import importlib

    mod = importlib.import_module(module)
    return tuple(v for v in vars(mod).values() if isinstance(v, Struct))


def endpoints() -> list[Endpoint]:
    """Every (route, method) the fake serves, in table order."""
    out = []
    for item in fake_api.load():
        module = getattr(item.handler, "__module__", "") or ""
        if module == "functools":  # a functools.partial: its function's module
            module = getattr(getattr(item.handler, "func", None), "__module__", module)
        for method in item.methods:
            out.append(Endpoint(item.path, method, module, item.untrusted,
                                _families(item.path), _structs(module)))
    return out


class World:
    """A running fake with one object of each kind; ``snap`` is its state to go back to.

    (A plain class: hypothesis prints a dataclass argument field by field.)"""

    def __init__(self, fake: FakeLXD, names: dict[str, list[str]], token_op: str = "") -> None:
        self.fake = fake
        self.names = names
        self.token_op = token_op
        self.snap: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"World({self.fake.socket_path})"

    def restore(self) -> None:
        """Back to the world's state (a cheap comparison first: most requests change
        nothing)."""
        if not self.unchanged():
            self.fake.restore(self.snap)

    def unchanged(self) -> bool:
        """Whether the live state equals the world's, up to empty dicts (see :func:`pruned`)."""
        state = self.fake.state
        with state.lock:
            if state.config != self.snap["config"]:
                return False
            for name, family in state.families.items():
                before = self.snap["families"][name]
                if family != before and pruned(family) != pruned(before):
                    return False
            return True


def pruned(value: Any) -> Any:
    """``value`` without dict entries whose value is an empty dict, recursively.

    Such an entry is a container made on demand, not a change: ``State.in_project()`` makes a
    project's bucket on a mere read, and handlers make per-object buckets (e.g. an instance's
    file ``mtimes``) the first time they look; nothing is rendered from an empty one.
    """
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            item = pruned(item)
            if item != {}:
                out[key] = item
        return out
    return value


def _ok(reply: Any, *codes: int) -> Any:
    assert reply.status in codes or (not codes and reply.status < 300), reply
    return reply


def build(fake: FakeLXD) -> World:
    """Populate ``fake`` (already started): project, profile, network, volume and snapshot,
    image and alias, instance and snapshot, certificate, warning, a token operation."""
    client = API.unix("fake", fake.socket_path)
    client.server = fake  # type: ignore[attr-defined]
    instancefixtures.with_busybox(client)
    _ok(client.post("/1.0/projects", {"name": "fzproj", "config": {
        "features.profiles": "true", "features.storage.volumes": "true"}}))
    _ok(client.post("/1.0/profiles", {"name": "fzprof", "config": {"user.x": "1"}}))
    _ok(client.post("/1.0/networks", {"name": "fznet", "type": "bridge", "config": {
        "ipv4.address": "none", "ipv6.address": "none"}}))
    _ok(client.post("/1.0/network-zones", {"name": "fzzone.example", "config": {"user.x": "1"}}))
    _ok(client.post("/1.0/network-zones/fzzone.example/records", {
        "name": "fzrec", "entries": [{"type": "A", "value": "192.0.2.1"}]}))
    _ok(client.post("/1.0/network-acls", {"name": "fzacl", "config": {"user.x": "1"},
                                           "ingress": [{"action": "allow", "state": "enabled",
                                                        "protocol": "tcp",
                                                        "destination_port": "22"}]}))
    _ok(client.post("/1.0/storage-pools/default/volumes/custom", {"name": "fzvol"}))
    vsnap = _ok(client.post("/1.0/storage-pools/default/volumes/custom/fzvol/snapshots",
                            {"name": "vsnap"}))
    if vsnap.status == 202:
        client.wait(vsnap)
    vbackup = client.post("/1.0/storage-pools/default/volumes/custom/fzvol/backups",
                          {"name": "fzbackup"})
    if vbackup.status == 202:
        client.wait(vbackup)
    images = client.get("/1.0/images").metadata
    fingerprint = images[0].rsplit("/", 1)[1]
    instances: list[str] = []
    isnaps: list[str] = []
    reply = client.post("/1.0/instances", {"name": "fzinst", "profiles": ["default", "fzprof"],
                                           "source": {"type": "image", "alias": "busybox"}})
    if reply.status == 202 and client.wait(reply)["status"] == "Success":
        instances.append("fzinst")
        snap = client.post("/1.0/instances/fzinst/snapshots", {"name": "isnap"})
        if snap.status == 202 and client.wait(snap)["status"] == "Success":
            isnaps.append("isnap")
        made = client.post("/1.0/instances/fzinst/backups", {"name": "fzbackup"})
        if made.status == 202:
            client.wait(made)
        started = client.put("/1.0/instances/fzinst/state", {"action": "start"})
        if started.status == 202:  # running, so that exec and files have work to do
            client.wait(started)
    token = _ok(client.post("/1.0/certificates", {"type": "client", "token": True,
                                                  "name": "fztoken"}), 202)
    warning = fake_warnings.add_warning(fake.state, "Fuzz warning", "seeded for the fuzzers")
    # Let background operations (snapshots, instance creation) settle before the snapshot.
    for op in fake.operations.all():
        if op.run is not None:
            op.done.wait(10)
    names = {
        "profile": ["default", "fzprof"], "project": ["default", "fzproj"],
        "network": ["lxdbr0", "fznet", "eth0"], "pool": ["default"],
        "zone": ["fzzone.example"], "record": ["fzrec"], "peer": ["fzpeer"],
        "vtype": ["custom", "container", "image", "virtual-machine"],
        "volume": ["fzvol"], "volume-snapshot": ["vsnap"],
        "instance": instances or ["fzinst"], "instance-snapshot": isnaps or ["isnap"],
        "backup": ["fzbackup"],
        "image": [fingerprint, fingerprint[:12]], "alias": ["busybox"],
        "certificate": [], "operation": [token.body["metadata"]["id"]],
        "warning": [warning], "member": ["none"], "group": ["default"],
        "logfile": ["lxc.log", "lxc.conf", "console.log"], "acl": ["fzacl"], "other": ["x"],
    }
    world = World(fake, names, token_op=token.body["metadata"]["id"])
    world.snap = fake.snapshot()
    return world
