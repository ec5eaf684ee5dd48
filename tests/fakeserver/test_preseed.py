"""Seeding from ``lxd init --preseed`` documents.

Where it is safe, a document is applied to both backends (``lxd init --preseed`` on the real
host, ``FakeLXD.seed()`` on the fake) and the results and errors compared; documents that would
change shared objects of the real host (its pool, bridge, server config, clustering) are
fake-only.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from fakeserver import FakeLXD
from fakeserver.preseed import PreseedError, load, parse
from tests.compat import socket_path
from tests.support import API, unique


def preseed(api: API, document: str, home: Path) -> str | None:
    """Apply ``document`` to the backend; LXD's error message (one line), or None."""
    if api.is_fake:
        try:
            api.server.seed(document)  # type: ignore[attr-defined]
        except PreseedError as exc:
            return str(exc)
        return None
    assert "cluster" not in document  # never cluster the shared real host
    lxd = shutil.which("lxd")
    assert lxd, "no lxd binary to run 'lxd init --preseed' with"
    env = {**os.environ, "LXD_DIR": os.path.dirname(socket_path(api)), "HOME": str(home)}
    done = subprocess.run([lxd, "init", "--preseed"], input=document, env=env,
                          capture_output=True, text=True, timeout=120)
    if done.returncode == 0:
        return None
    message = done.stderr.strip().removeprefix("Error: ")
    return message.replace(":\n  ", ": ").replace("\n  ", "; ")


def test_create_and_update_profiles_and_projects(api: API, tmp_path: Path) -> None:
    profile, project = unique("p"), unique("pj")
    api.delete_later(f"/1.0/projects/{project}")
    api.delete_later(f"/1.0/profiles/{profile}")
    first = f"""
projects:
- name: {project}
  description: first
  config:
    features.profiles: false
    user.a: 1
profiles:
- name: {profile}
  description: first
  config:
    user.a: 1
    user.b: yes
    user.c: 2001-12-14
    user.d: 1.50
    user.e: ~
  devices:
    d1:
      type: none
"""
    assert preseed(api, first, tmp_path) is None
    got = api.get(f"/1.0/profiles/{profile}").metadata
    assert got["description"] == "first"
    # String fields keep the YAML source text; a null value is no value at all.
    assert got["config"] == {"user.a": "1", "user.b": "yes", "user.c": "2001-12-14",
                             "user.d": "1.50"}
    assert got["devices"] == {"d1": {"type": "none"}}
    proj = api.get(f"/1.0/projects/{project}").metadata
    assert proj["description"] == "first"
    assert proj["config"]["features.profiles"] == "false"
    assert proj["config"]["user.a"] == "1"

    second = f"""
projects:
- name: {project}
  description: ""
  config:
    user.a: ""
    user.b: 2
profiles:
- name: {profile}
  description: ""
  config:
    user.a: ""
    user.z: z
  devices:
    d1:
      user.k: v
    d2:
      type: none
"""
    assert preseed(api, second, tmp_path) is None
    got = api.get(f"/1.0/profiles/{profile}").metadata
    assert got["description"] == "first"  # an empty description keeps the old one
    assert got["config"] == {"user.b": "yes", "user.c": "2001-12-14", "user.d": "1.50",
                             "user.z": "z"}  # merged; an empty value removes the key
    assert got["devices"] == {"d1": {"type": "none", "user.k": "v"},  # merged key by key
                              "d2": {"type": "none"}}
    proj = api.get(f"/1.0/projects/{project}").metadata
    assert proj["description"] == "first"
    assert "user.a" not in proj["config"] and proj["config"]["user.b"] == "2"
    assert proj["config"]["features.profiles"] == "false"


@pytest.mark.parametrize("document, message", [
    ("bogus: 1\nprofiles: []",
     "Failed to parse the preseed: yaml: unmarshal errors: "
     "line 1: field bogus not found in type api.InitPreseed"),
    ("storage_volumes: []",
     "Failed to parse the preseed: yaml: unmarshal errors: "
     "line 1: field storage_volumes not found in type api.InitPreseed"),
    ("- a\n- b",
     "Failed to parse the preseed: yaml: unmarshal errors: "
     "line 1: cannot unmarshal !!seq into api.InitPreseed"),
    ("profiles:\n- name: x\n  project: default\n  bogus: 1",
     "Failed to parse the preseed: yaml: unmarshal errors: "
     "line 3: field project not found in type api.ProfilesPost; "
     "line 4: field bogus not found in type api.ProfilesPost"),
    ("networks:\n- name: x\n  bogus: 1",
     "Failed to parse the preseed: yaml: unmarshal errors: "
     "line 3: field bogus not found in type api.InitNetworksProjectPost"),
    ("projects:\n- name: x\n  bogus: 1",
     "Failed to parse the preseed: yaml: unmarshal errors: "
     "line 3: field bogus not found in type api.ProjectsPost"),
    ("storage_pools:\n- name: x\n  bogus: 1",
     "Failed to parse the preseed: yaml: unmarshal errors: "
     "line 3: field bogus not found in type api.StoragePoolsPost"),
    ("profiles:\n- name: x\n  config: [1]",
     "Failed to parse the preseed: yaml: unmarshal errors: "
     "line 3: cannot unmarshal !!seq into map[string]string"),
    ("config: [1]",
     "Failed to parse the preseed: yaml: unmarshal errors: "
     "line 1: cannot unmarshal !!seq into map[string]interface {}"),
    ("profiles: {a: 1}",
     "Failed to parse the preseed: yaml: unmarshal errors: "
     "line 1: cannot unmarshal !!map into []api.ProfilesPost"),
    ("profiles:\n- just-a-name",
     "Failed to parse the preseed: yaml: unmarshal errors: "
     "line 2: cannot unmarshal !!str `just-a-...` into api.ProfilesPost"),
    ("profiles:\n- description: x", 'Failed to create profile "": No name provided'),
    ("profiles:\n- null", 'Failed to create profile "": No name provided'),
    ("storage_pools:\n- name: default", 'Storage pool "default" is of type "dir" instead of ""'),
    ("storage_pools:\n- name: default\n  driver: zfs",
     'Storage pool "default" is of type "dir" instead of "zfs"'),
    ("networks:\n- name: n1\n  project: nope-pl0\n  type: bridge",
     'Failed to create local member network "n1" in project "nope-pl0": '
     'Failed to load project "nope-pl0": Project not found'),
    ("config:\n  foo.bar: 1",
     "Failed to update server configuration: cannot set 'foo.bar' to '1': unknown key"),
])
def test_bad_documents(api: API, tmp_path: Path, document: str, message: str) -> None:
    before = api.get("/1.0/profiles/default").metadata, api.get("/1.0").metadata["config"]
    assert preseed(api, document, tmp_path) == message
    assert (api.get("/1.0/profiles/default").metadata,
            api.get("/1.0").metadata["config"]) == before


def test_bad_profile_config(api: API, tmp_path: Path) -> None:
    name = unique("p")
    api.delete_later(f"/1.0/profiles/{name}")
    message = preseed(api, f"profiles:\n- name: {name}\n  config:\n    foo.bar: 1", tmp_path)
    assert message == f'Failed to create profile "{name}": Unknown configuration key: foo.bar'


def test_a_failure_reverts_what_the_document_created(api: API, tmp_path: Path) -> None:
    good, bad = unique("p"), unique("p")
    api.delete_later(f"/1.0/profiles/{good}")
    api.delete_later(f"/1.0/profiles/{bad}")
    document = (f"profiles:\n- name: {good}\n  config: {{user.a: 1}}\n"
                f"- name: {bad}\n  config: {{limits.cpu: abc}}\n")
    message = preseed(api, document, tmp_path)
    assert message == f'Failed to create profile "{bad}": Invalid CPU limit syntax'
    assert api.get(f"/1.0/profiles/{good}").status == 404


def test_empty_documents_change_nothing(api: API, tmp_path: Path) -> None:
    before = api.get("/1.0/profiles/default").metadata, api.get("/1.0").metadata["config"]
    for document in ["", "config:\nprofiles:\nnetworks: null\n", "profiles: []\nprojects: []"]:
        assert preseed(api, document, tmp_path) is None
    assert (api.get("/1.0/profiles/default").metadata,
            api.get("/1.0").metadata["config"]) == before


# -- fake only: every key, the constructor, and what the real host must not be used for ----------

@pytest.mark.fake_only
def test_every_key_on_a_fresh_fake(tmp_path: Path) -> None:
    document = """
config:
  core.https_address: 127.0.0.1:9999
  images.auto_update_interval: 15
storage_pools:
- name: data
  driver: dir
  description: the data pool
  config:
    user.x: 1
networks:
- name: br1
  type: bridge
  description: a bridge
  config:
    ipv4.address: none
    ipv6.address: none
- name: br2
  type: bridge
  project: other
  config:
    ipv4.address: none
    ipv6.address: none
projects:
- name: other
  description: another project
  config:
    features.networks: true
    features.profiles: true
profiles:
- name: default
  devices:
    root:
      path: /
      pool: data
      type: disk
- name: web
  description: web servers
  config:
    limits.cpu: 2
  devices:
    eth0:
      name: eth0
      network: br1
      type: nic
"""
    path = tmp_path / "preseed.yaml"
    path.write_text(document)
    with FakeLXD(tmp_path / "lxd", preseed=str(path), baseline=False) as fake:
        api = API.unix("fake", fake.socket_path)
        config = api.get("/1.0").metadata["config"]
        assert config == {"core.https_address": "127.0.0.1:9999",
                          "images.auto_update_interval": "15"}
        profiles = {p["name"]: p for p in
                    api.get("/1.0/profiles", params={"recursion": 1}).metadata}
        assert set(profiles) == {"default", "web"}
        assert profiles["default"]["devices"] == {
            "root": {"path": "/", "pool": "data", "type": "disk"}}
        assert profiles["web"]["config"] == {"limits.cpu": "2"}
        assert profiles["web"]["description"] == "web servers"
        assert profiles["web"]["devices"]["eth0"]["network"] == "br1"
        project = api.get("/1.0/projects/other").metadata
        assert project["description"] == "another project"
        assert project["config"]["features.networks"] == "true"
        state = fake.state
        with state.lock:
            pool = state.family("storage_pools")["data"]
            assert (pool["driver"], pool["description"]) == ("dir", "the data pool")
            assert pool["config"]["user.x"] == "1"
            assert state.in_project("networks", "default")["br1"]["description"] == "a bridge"
            assert "br2" in state.in_project("networks", "other")
            assert "br2" not in state.in_project("networks", "default")
            assert "lxdbr0" not in state.in_project("networks", "default")  # no baseline
        assert not fake.handler_errors


@pytest.mark.fake_only
def test_constructor_preseed_is_part_of_the_baseline(tmp_path: Path) -> None:
    with FakeLXD(preseed={"profiles": [{"name": "seeded", "config": {"user.a": 1}}]}) as fake:
        api = API.unix("fake", fake.socket_path)
        assert api.get("/1.0/profiles/seeded").metadata["config"] == {"user.a": "1"}
        assert api.delete("/1.0/profiles/seeded").status == 200
        fake.seed("profiles:\n- name: later\n")
        fake.reset()
        assert api.get("/1.0/profiles/seeded").status == 200  # back with the baseline
        assert api.get("/1.0/profiles/later").status == 404  # seed() is not the baseline
        # The scripts/lxd-host baseline is under the preseed.
        assert api.get("/1.0/profiles/default").metadata["devices"]["root"]["pool"] == "default"


@pytest.mark.fake_only
def test_baseline_and_fresh(fake: FakeLXD) -> None:
    with FakeLXD(baseline=False) as fresh:
        api = API.unix("fake", fresh.socket_path)
        assert api.get("/1.0/profiles/default").metadata["devices"] == {}
        with fresh.state.lock:
            assert fresh.state.family("storage_pools") == {}
    api = API.unix("fake", fake.socket_path)
    assert api.get("/1.0/profiles/default").metadata["devices"] == {
        "root": {"path": "/", "pool": "default", "type": "disk"}}
    with fake.state.lock:
        assert fake.state.family("storage_pools")["default"]["driver"] == "dir"
        assert fake.state.in_project("networks", "default")["lxdbr0"]["config"][
            "ipv4.address"] == "none"


@pytest.mark.fake_only
def test_updates_of_the_baseline_objects(fake: FakeLXD) -> None:
    fake.seed("""
config:
  images.auto_update_interval: 6
storage_pools:
- name: default
  driver: dir
  description: pool
  config:
    user.k: v
networks:
- name: lxdbr0
  description: bridge
  config:
    user.k: v
""")
    with fake.state.lock:
        pool = fake.state.family("storage_pools")["default"]
        assert (pool["description"], pool["config"]["user.k"]) == ("pool", "v")
        net = fake.state.in_project("networks", "default")["lxdbr0"]
        assert net["description"] == "bridge"
        assert net["config"]["user.k"] == "v" and net["config"]["ipv4.address"] == "none"
        assert fake.state.config["images.auto_update_interval"] == "6"
    fake.seed("config:\n  images.auto_update_interval: ''\n")
    with fake.state.lock:
        assert "images.auto_update_interval" not in fake.state.config


@pytest.mark.fake_only
def test_server_config_values_are_formatted_like_go() -> None:
    data = parse("config:\n  a: 15\n  b: yes\n  c: 1.5e6\n  d: 0x10\n  e: ~\n  f: text\n  i: y\n"
                 "  g: 2.50\n  h: 100000.0\n")
    assert data["config"] == {"a": "15", "b": "true", "c": "1.5e+06", "d": "16", "e": "<nil>",
                              "f": "text", "g": "2.5", "h": "100000", "i": "true"}


@pytest.mark.fake_only
def test_clustering_is_refused(fake: FakeLXD) -> None:
    fake.seed("cluster: null")
    fake.seed("cluster:\n  enabled: false\n  server_name: x")
    with pytest.raises(PreseedError, match="cannot be clustered"):
        fake.seed("cluster:\n  enabled: true\n  server_name: x")
    with pytest.raises(PreseedError, match="field bogus not found in type "
                                           "api.InitClusterPreseed"):
        fake.seed("cluster:\n  bogus: 1")


@pytest.mark.fake_only
def test_sources(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("profiles:\n- name: a\n")
    assert load(path) == load(str(path)) == load("profiles:\n- name: a\n") == {
        "profiles": [{"name": "a"}]}
    assert load({"profiles": [{"name": "a"}]}) == {"profiles": [{"name": "a"}]}
    assert load(b"profiles: []") == {"profiles": []}
    with pytest.raises(PreseedError, match="cannot read preseed .*missing.yaml"):
        load(str(tmp_path / "missing.yaml"))
    with pytest.raises(PreseedError, match="cannot read a preseed from int"):
        load(42)
    with pytest.raises(PreseedError, match=r"^Failed to parse the preseed: yaml: line 2: "):
        load("profiles: [\n")
    with pytest.raises(PreseedError, match="field bogus"):
        FakeLXD(tmp_path / "d", preseed={"bogus": 1})
