"""Random lifecycles (profiles, projects, networks, custom volumes and their snapshots, disks
and NICs that tie them together) checked against a model after every step.

On the fake alone the model is the oracle. With the real host (``--lxd-backend=both`` or
``real``) every request goes to the real host and to a fresh fake in lockstep: the same status
codes, error messages and resulting objects, and both must agree with the model. Every name
carries a per-run prefix, and whatever a sequence leaves on the real host is removed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from fakeserver import FakeLXD
from tests.robustness.checks import FIGURES
from tests.robustness.world import EXAMPLES
from tests.support import API, Reply, unique

POOL = "default"
NAMES = st.sampled_from(["a", "b", "c"])
CONFIGS = st.sampled_from([{}, {"user.k": "1"}, {"limits.cpu": "2"},
                           {"user.k": "2", "security.nesting": "true"}])
STEPS = int(os.environ.get("PYTEST_LXD_STATEFUL_STEPS", "12"))


@dataclass
class Model:
    """What the backends must hold for this run's names."""

    profiles: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    projects: dict[str, bool] = field(default_factory=dict)  # name -> features.profiles
    volumes: dict[str, set[str]] = field(default_factory=dict)  # name -> snapshots
    networks: set[str] = field(default_factory=set)

    def profile_project(self, project: str) -> str:
        """Where ``project``'s profiles live (its own, or default's)."""
        return project if project == "default" or self.projects.get(project) else "default"

    def users_of_volume(self, volume: str) -> list[str]:
        return sorted(name for (project, name), p in self.profiles.items()
                      if project == "default" and any(
                          d.get("type") == "disk" and d.get("source") == volume
                          for d in p["devices"].values()))

    def users_of_network(self, network: str) -> list[str]:
        return sorted(name for (project, name), p in self.profiles.items()
                      if project == "default" and any(
                          d.get("type") == "nic" and d.get("network") == network
                          for d in p["devices"].values()))


class Lifecycle(RuleBasedStateMachine):
    """Profiles, projects, networks and volumes; ``clients`` is ``[fake]`` or
    ``[real, fake]`` (set by the test before the run)."""

    clients: list[API] = []
    label = "fake"

    def __init__(self) -> None:
        super().__init__()
        self.model = Model()
        self.prefix = unique("sm").replace("-", "")[:10]
        self.etags: dict[tuple[str, str], str] = {}

    # -- plumbing ---------------------------------------------------------------------------
    def n(self, short: str) -> str:
        return f"{self.prefix}{short}"

    def call(self, method: str, path: str, body: Any = None, *, expect: tuple[int, ...],
             headers: dict[str, str] | None = None) -> Reply:
        """Send to every backend; they must agree, and the first must answer ``expect``."""
        replies = []
        for client in self.clients:
            reply = client.request(method, path, json_body=body, headers=headers)
            if reply.status == 202:
                op = client.wait(reply)
                reply = Reply(200 if op["status"] == "Success" else 400, reply.headers,
                              reply.raw if op["status"] == "Success" else
                              b'{"error": %s}' % repr(op["err"]).encode())
            replies.append(reply)
        FIGURES.steps[self.label] += 1
        if len(replies) == 2:
            real, fake = replies
            assert real.status == fake.status, (method, path, body, real, fake)
            if real.status >= 400:
                assert real.error == fake.error, (method, path, body, real, fake)
        assert replies[0].status in expect, (method, path, body, replies[0])
        return replies[0]

    def get_all(self, path: str) -> list[Any]:
        """``GET path`` on every backend (they must agree on the status)."""
        out = []
        for client in self.clients:
            reply = client.get(path)
            out.append(reply)
        assert len({r.status for r in out}) == 1, (path, out)
        return out

    @initialize()
    def start(self) -> None:
        FIGURES.sequences[self.label] += 1

    # -- profiles ---------------------------------------------------------------------------
    @rule(short=NAMES, config=CONFIGS, in_project=st.sampled_from(["default", "a", "b"]))
    def create_profile(self, short: str, config: dict[str, str], in_project: str) -> None:
        project = "default" if in_project == "default" else self.n(in_project)
        name = self.n(short)
        if project != "default" and project not in self.model.projects:
            self.call("POST", f"/1.0/profiles?project={project}", {"name": name},
                      expect=(404,))
            return
        where = self.model.profile_project(project)
        exists = (where, name) in self.model.profiles
        reply = self.call("POST", f"/1.0/profiles?project={project}",
                          {"name": name, "config": config, "description": short},
                          expect=(500,) if exists else (201,))
        if reply.status == 201:
            self.model.profiles[(where, name)] = {"config": dict(config), "description": short,
                                                  "devices": {}}

    @rule(short=NAMES, config=CONFIGS, method=st.sampled_from(["PUT", "PATCH"]),
          stale=st.booleans())
    def update_profile(self, short: str, config: dict[str, str], method: str,
                       stale: bool) -> None:
        key = ("default", self.n(short))
        path = f"/1.0/profiles/{key[1]}"
        if key not in self.model.profiles:
            self.call(method, path, {"config": config}, expect=(404,))
            return
        headers = None
        if stale and key in self.etags:
            etag = self.clients[0].get(path).headers["ETag"]
            if etag != self.etags[key]:
                self.call(method, path, {"config": config}, expect=(412,),
                          headers={"If-Match": self.etags[key]})
                return
        if not stale:
            headers = {"If-Match": self.clients[0].get(path).headers["ETag"]}
            for client in self.clients[1:]:  # each backend checks its own ETag
                assert client.get(path).headers["ETag"] == headers["If-Match"]
        profile = self.model.profiles[key]
        body: dict[str, Any] = {"config": config}
        if method == "PUT":
            body.update(description=profile["description"], devices=profile["devices"])
        self.etags[key] = self.clients[0].get(path).headers["ETag"]
        self.call(method, path, body, expect=(200,), headers=headers)
        if method == "PUT":
            profile["config"] = dict(config)
        else:
            profile["config"].update(config)

    @rule(short=NAMES, new=NAMES)
    def rename_profile(self, short: str, new: str) -> None:
        old_key, new_key = ("default", self.n(short)), ("default", self.n(new))
        ok = old_key in self.model.profiles and new_key not in self.model.profiles
        self.call("POST", f"/1.0/profiles/{old_key[1]}", {"name": new_key[1]},
                  expect=(201,) if ok else (500,))
        if ok:
            self.model.profiles[new_key] = self.model.profiles.pop(old_key)
            self.etags.pop(old_key, None)

    @rule(short=NAMES)
    def delete_profile(self, short: str) -> None:
        key = ("default", self.n(short))
        self.call("DELETE", f"/1.0/profiles/{key[1]}",
                  expect=(200,) if key in self.model.profiles else (404,))
        self.model.profiles.pop(key, None)
        self.etags.pop(key, None)

    # -- devices tying profiles to volumes and networks -------------------------------------
    @rule(short=NAMES, volume=NAMES)
    def attach_volume(self, short: str, volume: str) -> None:
        key = ("default", self.n(short))
        device = {"type": "disk", "pool": POOL, "source": self.n(volume), "path": f"/mnt/{volume}"}
        path = f"/1.0/profiles/{key[1]}"
        if key not in self.model.profiles:
            self.call("PATCH", path, {"devices": {f"v{volume}": device}}, expect=(404,))
            return
        self.call("PATCH", path, {"devices": {f"v{volume}": device}}, expect=(200,))
        self.model.profiles[key]["devices"][f"v{volume}"] = device

    @rule(short=NAMES, network=NAMES)
    def attach_nic(self, short: str, network: str) -> None:
        key = ("default", self.n(short))
        device = {"type": "nic", "network": self.n(network), "name": f"eth{network}"}
        path = f"/1.0/profiles/{key[1]}"
        if key not in self.model.profiles:
            self.call("PATCH", path, {"devices": {f"n{network}": device}}, expect=(404,))
            return
        exists = device["network"] in self.model.networks
        self.call("PATCH", path, {"devices": {f"n{network}": device}},
                  expect=(200,) if exists else (404,))  # LXD looks the network up
        if exists:
            self.model.profiles[key]["devices"][f"n{network}"] = device

    @rule(short=NAMES)
    def detach_all(self, short: str) -> None:
        key = ("default", self.n(short))
        if key not in self.model.profiles:
            return
        profile = self.model.profiles[key]
        self.call("PUT", f"/1.0/profiles/{key[1]}",
                  {"config": profile["config"], "description": profile["description"],
                   "devices": {}}, expect=(200,))
        profile["devices"] = {}

    # -- projects ---------------------------------------------------------------------------
    @rule(short=NAMES, own_profiles=st.booleans())
    def create_project(self, short: str, own_profiles: bool) -> None:
        name = self.n(short)
        exists = name in self.model.projects
        config = {"features.profiles": "true" if own_profiles else "false",
                  "features.storage.volumes": "false", "features.images": "false",
                  "features.networks": "false"}
        self.call("POST", "/1.0/projects", {"name": name, "config": config},
                  expect=(409,) if exists else (201,))
        if not exists:
            self.model.projects[name] = own_profiles
            if own_profiles:
                self.model.profiles[(name, "default")] = {
                    "config": {}, "description": f"Default LXD profile for project {name}",
                    "devices": {}}

    @rule(short=NAMES)
    def delete_project(self, short: str) -> None:
        name = self.n(short)
        if name not in self.model.projects:
            self.call("DELETE", f"/1.0/projects/{name}", expect=(404,))
            return
        extra = [k for k in self.model.profiles if k[0] == name and k[1] != "default"]
        self.call("DELETE", f"/1.0/projects/{name}", expect=(500,) if extra else (200,))
        if not extra:
            del self.model.projects[name]
            self.model.profiles.pop((name, "default"), None)

    # -- networks ---------------------------------------------------------------------------
    @rule(short=NAMES)
    def create_network(self, short: str) -> None:
        name = self.n(short)
        exists = name in self.model.networks
        self.call("POST", "/1.0/networks",
                  {"name": name, "type": "bridge",
                   "config": {"ipv4.address": "none", "ipv6.address": "none"}},
                  expect=(400,) if exists else (201,))
        self.model.networks.add(name)

    @rule(short=NAMES)
    def delete_network(self, short: str) -> None:
        name = self.n(short)
        if name not in self.model.networks:
            self.call("DELETE", f"/1.0/networks/{name}", expect=(404,))
            return
        in_use = bool(self.model.users_of_network(name))
        self.call("DELETE", f"/1.0/networks/{name}", expect=(400,) if in_use else (200,))
        if not in_use:
            self.model.networks.discard(name)

    # -- custom volumes and snapshots --------------------------------------------------------
    @rule(short=NAMES)
    def create_volume(self, short: str) -> None:
        name = self.n(short)
        exists = name in self.model.volumes
        self.call("POST", f"/1.0/storage-pools/{POOL}/volumes/custom", {"name": name},
                  expect=(409,) if exists else (200,))
        self.model.volumes.setdefault(name, set())

    @rule(short=NAMES, snap=st.sampled_from(["s0", "s1"]))
    def snapshot_volume(self, short: str, snap: str) -> None:
        name = self.n(short)
        path = f"/1.0/storage-pools/{POOL}/volumes/custom/{name}/snapshots"
        if name not in self.model.volumes:
            self.call("POST", path, {"name": snap}, expect=(404,))
            return
        taken = snap in self.model.volumes[name]
        self.call("POST", path, {"name": snap}, expect=(409,) if taken else (200,))
        self.model.volumes[name].add(snap)

    @rule(short=NAMES, snap=st.sampled_from(["s0", "s1"]))
    def delete_snapshot(self, short: str, snap: str) -> None:
        name = self.n(short)
        path = f"/1.0/storage-pools/{POOL}/volumes/custom/{name}/snapshots/{snap}"
        exists = name in self.model.volumes and snap in self.model.volumes[name]
        self.call("DELETE", path, expect=(200,) if exists else (404,))
        if exists:
            self.model.volumes[name].discard(snap)

    @rule(short=NAMES)
    def delete_volume(self, short: str) -> None:
        name = self.n(short)
        path = f"/1.0/storage-pools/{POOL}/volumes/custom/{name}"
        if name not in self.model.volumes:
            self.call("DELETE", path, expect=(404,))
            return
        in_use = bool(self.model.users_of_volume(name))
        self.call("DELETE", path, expect=(400,) if in_use else (200,))
        if not in_use:
            del self.model.volumes[name]

    # -- what every backend must show -------------------------------------------------------
    @invariant()
    def backends_hold_the_model(self) -> None:
        prefix = self.prefix
        for client in self.clients:
            listed = client.get("/1.0/profiles", params={"recursion": "1"}).metadata
            mine = {p["name"]: p for p in listed if p["name"].startswith(prefix)}
            want = {n for (project, n) in self.model.profiles if project == "default"}
            assert set(mine) == want, (client.kind, set(mine), want)
            for name, profile in mine.items():
                model = self.model.profiles[("default", name)]
                assert (profile["config"], profile["devices"]) == \
                    (model["config"], model["devices"]), (client.kind, name, profile, model)
                assert profile["used_by"] == [], (client.kind, profile)
            projects = {p["name"]: p for p in client.get(
                "/1.0/projects", params={"recursion": "1"}).metadata
                if p["name"].startswith(prefix)}
            assert set(projects) == set(self.model.projects), (client.kind, projects)
            for name, project in projects.items():
                own = self.model.projects[name]
                assert project["config"]["features.profiles"] == str(own).lower()
                if own:
                    assert f"/1.0/profiles/default?project={name}" in project["used_by"]
            volumes = {v["name"]: v for v in client.get(
                f"/1.0/storage-pools/{POOL}/volumes/custom",
                params={"recursion": "1"}).metadata if v["name"].startswith(prefix)}
            want_volumes = set(self.model.volumes) | {
                f"{v}/{s}" for v, snaps in self.model.volumes.items() for s in snaps}
            assert set(volumes) == want_volumes, (client.kind, set(volumes), want_volumes)
            for name in self.model.volumes:
                users = sorted(u.rsplit("/", 1)[1] for u in volumes[name]["used_by"])
                assert users == self.model.users_of_volume(name), (client.kind, name, volumes)
            networks = {n["name"]: n for n in client.get(
                "/1.0/networks", params={"recursion": "1"}).metadata
                if n["name"].startswith(prefix)}
            assert set(networks) == self.model.networks, (client.kind, networks)
            for name, net in networks.items():
                users = sorted(u.rsplit("/", 1)[1] for u in net["used_by"] or [])
                assert users == self.model.users_of_network(name), (client.kind, name, net)

    def teardown(self) -> None:
        for client in self.clients:
            sweep(client, self.prefix)


def sweep(client: API, prefix: str) -> None:
    """Remove every object named ``prefix…`` (profiles first: they hold the devices)."""
    for project in [p.rsplit("/", 1)[1] for p in client.get("/1.0/projects").metadata]:
        if project != "default" and not project.startswith(prefix):
            continue
        for url in client.get("/1.0/profiles", params={"project": project}).metadata or []:
            name = url.split("?")[0].rsplit("/", 1)[1]
            if name.startswith(prefix):
                client.delete(f"/1.0/profiles/{name}", params={"project": project})
    for url in client.get(f"/1.0/storage-pools/{POOL}/volumes/custom").metadata or []:
        name = url.split("?")[0].rsplit("/", 1)[1]
        if name.startswith(prefix) and "/snapshots/" not in url:
            reply = client.delete(f"/1.0/storage-pools/{POOL}/volumes/custom/{name}")
            if reply.status == 202:
                client.wait(reply)
    for url in client.get("/1.0/networks").metadata or []:
        name = url.rsplit("/", 1)[1]
        if name.startswith(prefix):
            client.delete(f"/1.0/networks/{name}")
    for url in client.get("/1.0/projects").metadata or []:
        name = url.rsplit("/", 1)[1]
        if name.startswith(prefix):
            client.delete(f"/1.0/projects/{name}")


def _settings(count: int) -> settings:
    return settings(max_examples=count, stateful_step_count=STEPS, deadline=None,
                    database=None, suppress_health_check=list(HealthCheck))


@pytest.fixture
def fresh_fake() -> Iterator[API]:
    with FakeLXD() as fake:
        client = API.unix("fake", fake.socket_path)
        client.server = fake  # type: ignore[attr-defined]
        yield client
        assert not fake.handler_errors, fake.handler_errors[0]


def test_lifecycles_on_the_fake(fresh_fake: API) -> None:
    """``PYTEST_LXD_FUZZ_EXAMPLES`` / 4 sequences of ``PYTEST_LXD_STATEFUL_STEPS`` steps."""
    Lifecycle.clients = [fresh_fake]
    Lifecycle.label = "fake"
    run_state_machine_as_test(Lifecycle, settings=_settings(max(1, EXAMPLES // 4)))


REAL_SEQUENCES = int(os.environ.get("PYTEST_LXD_STATEFUL_REAL", "20"))


@pytest.mark.real_only
def test_lifecycles_agree_on_real_lxd(api: API, fresh_fake: API) -> None:
    """The same sequences on the real host and on a fresh fake, request by request."""
    prefixes: list[str] = []

    class Tracked(Lifecycle):
        def __init__(self) -> None:
            super().__init__()
            prefixes.append(self.prefix)

    api.later(lambda: [sweep(api, prefix) for prefix in prefixes])
    Tracked.clients = [api, fresh_fake]
    Tracked.label = "real+fake"
    run_state_machine_as_test(Tracked, settings=_settings(REAL_SEQUENCES))
