"""Instances through the client: the typed managers, power actions, the save lifecycle
(``volatile.*`` keys, ETags, background PUTs), rename, copy, publish, console, logs and
projects. Busybox instances on both backends (see ``instance_helpers``)."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from pytest_lxd import Client, exceptions
from pytest_lxd.models import Container, Image, Instance, InstanceState, Operation

from .conftest import LXDEnv
from .instance_helpers import delete_image_later, make, remove_later, with_busybox


def count_requests(client: Client) -> list[str]:
    seen: list[str] = []

    def hook(response: requests.Response, *args: Any, **kwargs: Any) -> None:
        seen.append(f"{response.request.method} {response.request.path_url}")

    client.transport.session.hooks["response"].append(hook)
    return seen


def test_create_get_exists_all_delete(lxd: LXDEnv) -> None:
    client = lxd.client
    inst = make(lxd, description="made by a test", config={"user.k": "v"})
    assert type(inst) is Container and isinstance(inst, Instance)
    assert (inst.status, inst.status_code, inst.type) == ("Stopped", 102, "container")
    assert inst.description == "made by a test" and inst.config["user.k"] == "v"
    assert inst.config["image.os"] == "busybox" and inst.profiles == ["default"]
    assert inst.expanded_devices["root"]["type"] == "disk"
    assert inst.etag and len(inst.etag) == 64 and not inst.dirty
    assert type(client.instances.get(inst.name)) is Container
    assert type(client.containers.get(inst.name)) is Container
    assert client.instances.exists(inst.name) and client.containers.exists(inst.name)
    assert inst in client.instances.all() and inst in client.containers.all()
    assert inst.name in [i.name for i in client.instances.all(recursion=1)]
    loaded = {i.name: i for i in client.containers.all(recursion=1)}[inst.name]
    assert type(loaded) is Container and loaded.config["user.k"] == "v"
    # The typed managers return only their own kind (pylxd listed containers as VMs).
    assert inst.name not in [i.name for i in client.virtual_machines.all()]
    assert inst.name not in [i.name for i in client.virtual_machines.all(recursion=1)]
    assert not client.virtual_machines.exists(inst.name)
    with pytest.raises(exceptions.NotFound, match="Instance not found"):
        client.virtual_machines.get(inst.name)
    assert inst.delete(wait=True) is not None
    assert not client.instances.exists(inst.name)
    with pytest.raises(exceptions.NotFound, match="Instance not found"):
        client.instances.get(inst.name)


def test_all_is_sparse_and_loads_on_first_use(lxd: LXDEnv) -> None:
    inst = make(lxd, description="lazy")
    client = lxd.new_client()
    seen = count_requests(client)
    sparse = {i.name: i for i in client.instances.all()}[inst.name]
    assert seen == ["GET /1.0/instances"]
    assert sparse.description == "lazy" and sparse.status == "Stopped"
    assert seen[1:] == [f"GET /1.0/instances/{inst.name}"]
    assert not sparse.dirty


def test_create_without_a_name_and_through_containers(lxd: LXDEnv) -> None:
    with_busybox(lxd)
    seen = count_requests(lxd.client)
    inst = lxd.client.containers.create({"source": {"type": "image", "alias": "busybox"}},
                                        wait=True)
    remove_later(lxd, inst.name)
    assert inst.name and inst.status == "Stopped" and type(inst) is Container
    assert seen[0] == "POST /1.0/containers"


def test_create_errors(lxd: LXDEnv) -> None:
    with_busybox(lxd)
    client = lxd.client
    name = lxd.unique("i")
    remove_later(lxd, name)
    with pytest.raises(exceptions.NotFound, match="Image alias not found"):
        client.instances.create({"name": name, "source": {"type": "image",
                                                          "alias": lxd.unique("nope")}})
    with pytest.raises(exceptions.OperationFailed,
                       match="Image not provided for instance creation") as info:
        client.instances.create({"name": name, "source": {"type": "image",
                                                          "fingerprint": "deadbeef"}})
    assert info.value.error_code == 400 and info.value.operation is not None
    inst = make(lxd)
    with pytest.raises(exceptions.LXDAPIException, match="already exists"):
        client.instances.create({"name": inst.name,
                                 "source": {"type": "image", "alias": "busybox"}})


def test_power_actions_refresh_status_and_status_code(lxd: LXDEnv) -> None:
    inst = make(lxd)
    assert inst.start(wait=True) is not None
    assert (inst.status, inst.status_code) == ("Running", 103)  # pylxd kept 102
    state = inst.state()
    assert isinstance(state, InstanceState)
    assert (state.status, state.status_code) == ("Running", 103)
    assert state.pid > 0 and state["pid"] == state.pid and state.processes >= 1
    assert isinstance(state.memory, dict) and isinstance(state.network, dict)
    inst.freeze(wait=True)
    assert (inst.status, inst.status_code) == ("Frozen", 110)
    inst.unfreeze(wait=True)
    assert inst.status == "Running"
    inst.restart(wait=True)
    assert (inst.status, inst.status_code) == ("Running", 103)
    op = inst.stop()
    assert isinstance(op, Operation) and op.description == "Stopping instance"
    op.wait()
    assert inst.status == "Running"  # not waited on: the object was not refreshed
    inst.sync()
    assert (inst.status, inst.status_code) == ("Stopped", 102)
    assert inst.state().network is None
    with pytest.raises(exceptions.OperationFailed,
                       match="The instance is already stopped") as info:
        inst.stop(wait=True)
    assert info.value.error_code == 400


def test_graceful_stop(lxd: LXDEnv) -> None:
    inst = make(lxd, start=True)
    inst.stop(force=False, timeout=30, wait=True)
    assert (inst.status, inst.status_code) == ("Stopped", 102)


def test_ephemeral_instance_goes_away_when_stopped(lxd: LXDEnv) -> None:
    inst = make(lxd, ephemeral=True, start=True)
    inst.stop(wait=True)
    assert inst.status == "Stopped"
    assert not lxd.client.instances.exists(inst.name)


def test_save_lifecycle(lxd: LXDEnv) -> None:
    inst = make(lxd)
    inst.config["user.a"] = "1"
    inst.description = "edited"
    assert inst.dirty and set(inst.dirty_fields) == {"config", "description"}
    inst.rollback()
    assert not inst.dirty and "user.a" not in inst.config and inst.description == ""
    inst.config["user.a"] = "1"
    inst.devices["d1"] = {"type": "disk", "path": "/mnt", "source": "/srv"}
    assert inst.save(wait=True) is not None  # LXD updates instances in the background
    assert not inst.dirty
    got = lxd.client.instances.get(inst.name)
    assert got.config["user.a"] == "1" and got.devices["d1"]["path"] == "/mnt"
    assert got.etag == inst.etag
    assert inst.save(wait=True) is None  # not dirty: nothing sent


def test_save_sends_back_the_volatile_keys(lxd: LXDEnv) -> None:
    """LXD's PUT replaces the config and refuses to drop its idmap keys; a config replaced
    wholesale still saves, and its volatile keys survive."""
    inst = make(lxd)
    volatile = {k: v for k, v in inst.config.items() if k.startswith("volatile.")}
    assert "volatile.idmap.base" in volatile
    inst.config = {"user.only": "yes"}
    inst.save(wait=True)
    got = lxd.client.instances.get(inst.name)
    assert got.config["user.only"] == "yes" and "image.os" not in got.config
    assert {k: v for k, v in got.config.items() if k.startswith("volatile.")} == volatile
    # Without the client's help LXD refuses, as pylxd users found out.
    body = {**got.marshall(), "config": {"user.only": "yes"}}
    op = got.raw_put(body)
    assert isinstance(op, Operation)
    with pytest.raises(exceptions.OperationFailed,
                       match="Volatile idmap keys can't be deleted by the user"):
        op.wait()


def test_save_refuses_to_overwrite_a_concurrent_change(lxd: LXDEnv) -> None:
    inst = make(lxd)
    other = lxd.client.instances.get(inst.name)
    other.config["user.theirs"] = "1"
    other.save(wait=True)
    inst.config["user.mine"] = "1"
    with pytest.raises(exceptions.ETagMismatch):
        inst.save(wait=True)
    assert "user.mine" not in lxd.client.instances.get(inst.name).config
    inst.sync()
    assert inst.config["user.theirs"] == "1" and not inst.dirty


def test_save_without_wait_returns_the_operation(lxd: LXDEnv) -> None:
    inst = make(lxd)
    inst.config["user.bg"] = "1"
    op = inst.save()
    assert isinstance(op, Operation) and op.description == "Updating instance"
    op.wait()
    assert lxd.client.instances.get(inst.name).config["user.bg"] == "1"
    inst.config["limits.cpu"] = "not-a-number"
    with pytest.raises(exceptions.OperationFailed, match="Invalid CPU limit syntax"):
        inst.save(wait=True)


def test_power_action_keeps_unsaved_edits(lxd: LXDEnv) -> None:
    inst = make(lxd)
    inst.config["user.pending"] = "1"
    inst.start(wait=True)
    assert inst.status == "Running" and inst.config["user.pending"] == "1" and inst.dirty
    assert inst.config["volatile.last_state.power"] == "RUNNING"
    inst.save(wait=True)  # the ETag after the start is the one LXD checks
    got = lxd.client.instances.get(inst.name)
    assert got.config["user.pending"] == "1" and got.status == "Running"


def test_rename(lxd: LXDEnv) -> None:
    inst = make(lxd)
    old, new = inst.name, lxd.unique("i")
    remove_later(lxd, new)
    inst.description = "pending"
    assert inst.rename(new) is inst
    assert inst.name == new and lxd.client.instances.exists(new)
    assert not lxd.client.instances.exists(old)
    assert inst.description == "pending" and inst.dirty  # unsaved edits survive a rename
    inst.description = "renamed"
    inst.save(wait=True)  # no false conflict from LXD's own changes during the rename
    assert lxd.client.instances.get(new).description == "renamed"
    other = lxd.client.instances.get(new)
    with pytest.raises(exceptions.Conflict, match="already in use"):
        other.rename(new)


def test_rename_gives_a_new_cloud_init_instance_id(lxd: LXDEnv) -> None:
    inst = make(lxd)
    before = inst.config["volatile.cloud-init.instance-id"]
    new = lxd.unique("i")
    remove_later(lxd, new)
    inst.rename(new)
    assert inst.config["volatile.cloud-init.instance-id"] != before
    assert inst.config["volatile.apply_template"] == "create"  # not run yet: kept
    inst.start(wait=True)
    inst.stop(wait=True, force=True)
    assert "volatile.apply_template" not in inst.config
    newer = lxd.unique("i")
    remove_later(lxd, newer)
    inst.rename(newer)
    assert inst.config["volatile.apply_template"] == "rename"


def test_rename_of_a_running_instance_fails(lxd: LXDEnv) -> None:
    inst = make(lxd, start=True)
    new = lxd.unique("i")
    remove_later(lxd, new)
    with pytest.raises(exceptions.OperationFailed, match="Renaming of running"):
        inst.rename(new)
    assert inst.name != new


def test_delete_of_a_running_instance_fails(lxd: LXDEnv) -> None:
    inst = make(lxd, start=True)
    with pytest.raises(exceptions.LXDAPIException, match="Instance is running") as info:
        inst.delete(wait=True)
    assert info.value.error_code == 400


def test_copy(lxd: LXDEnv) -> None:
    inst = make(lxd, config={"user.origin": "1"})
    inst.files.put("/root/marker", b"copied")
    new = lxd.unique("c")
    remove_later(lxd, new)
    copied = inst.copy(new, wait=True)
    assert type(copied) is Container and copied.name == new
    assert copied.config["user.origin"] == "1" and copied.status == "Stopped"
    assert copied.config["volatile.base_image"] == inst.config["volatile.base_image"]
    assert copied.files.get("/root/marker") == b"copied"
    # pylxd's way: create with a copy source (and the profiles: LXD 5.0.2 gives a copy
    # none by default, so it would have no root disk).
    other = lxd.unique("c")
    remove_later(lxd, other)
    source = {"type": "copy", "source": inst.name}
    with pytest.raises(exceptions.OperationFailed, match="No root device could be found"):
        lxd.client.instances.create({"name": other, "source": source})
    made = lxd.client.instances.create({"name": other, "source": source,
                                        "profiles": ["default"]}, wait=True)
    assert made.name == other and made.config["user.origin"] == "1"


def unique_rootfs(lxd: LXDEnv, inst: Instance) -> None:
    """Publishing is deterministic on LXD 5.0.2 (same files, same image): make it ours."""
    inst.files.put("/root/test-id", lxd.unique("id").encode())


def test_publish(lxd: LXDEnv) -> None:
    inst = make(lxd)
    unique_rootfs(lxd, inst)
    alias = lxd.unique("pub")
    lxd.delete_later(f"/1.0/images/aliases/{alias}")
    image = inst.publish(wait=True, aliases=[alias], properties={"os": "published"})
    delete_image_later(lxd, image)
    assert isinstance(image, Image) and len(image.fingerprint) == 64
    assert image.properties["os"] == "published"
    assert [a["name"] for a in image.aliases] == [alias]
    assert lxd.client.images.get_by_alias(alias) == image
    unique_rootfs(lxd, inst)
    op = inst.publish()
    assert isinstance(op, Operation) and op.description == "Downloading image"
    op.wait()
    assert op.metadata is not None
    delete_image_later(lxd, op.metadata["fingerprint"])
    second = lxd.client.images.get(op.metadata["fingerprint"])
    assert second != image and second.aliases == []


def test_publishing_an_unchanged_instance_again_fails(lxd: LXDEnv) -> None:
    inst = make(lxd)
    unique_rootfs(lxd, inst)
    first = inst.publish(wait=True)
    delete_image_later(lxd, first)
    with pytest.raises(exceptions.OperationFailed,
                       match=f"^The image already exists: {first.fingerprint}$"):
        inst.publish(wait=True)


def test_console_log_and_logs(lxd: LXDEnv) -> None:
    inst = make(lxd)
    with pytest.raises(exceptions.LXDAPIException, match="console.log: no such file"):
        inst.console_log()  # never started
    inst.start(wait=True)
    names = inst.logs.all()
    assert "lxc.log" in names and "lxc.conf" in names
    assert f"lxc.uts.name = {inst.name}" in inst.logs.get("lxc.conf").decode()
    with pytest.raises(exceptions.LXDAPIException, match="may not be deleted"):
        inst.logs.delete("lxc.log")
    inst.stop(wait=True)
    assert isinstance(inst.console_log(), str)
    assert inst.get_console_log() == inst.console_log()
    inst.clear_console_log()
    assert inst.console_log() == ""


def test_recursion_2_keeps_state_and_snapshots_apart(lxd: LXDEnv) -> None:
    inst = make(lxd, start=True)
    inst.snapshots.create("s1", wait=True)
    full = {i.name: i for i in lxd.client.instances.all(recursion=2)}[inst.name]
    state = full.embedded_state
    assert state is not None and state.status == "Running" and state.pid > 0
    assert callable(full.state) and full.state().status == "Running"  # pylxd lost state()
    embedded = full.embedded_snapshots
    assert embedded is not None and [s.name for s in embedded] == ["s1"]
    assert [s.name for s in full.snapshots.all()] == ["s1"]  # still the manager
    assert "state" not in full.extra and "snapshots" not in full.extra


def test_instances_in_a_project_have_plain_names(lxd: LXDEnv) -> None:
    """pylxd returned ``name?project=p`` from ``all()`` in a project."""
    project = lxd.unique("prj")
    lxd.client.projects.create(project, config={"features.images": "false",
                                                "features.profiles": "false"})
    lxd.delete_later(f"/1.0/projects/{project}")
    scoped = lxd.new_client(project=project)
    inst = make(lxd, client=scoped)
    assert [i.name for i in scoped.instances.all()] == [inst.name]
    assert [i.name for i in scoped.containers.all(recursion=1)] == [inst.name]
    assert inst.project == project
    assert not lxd.client.instances.exists(inst.name)
    inst.start(wait=True)
    assert inst.execute(["hostname"]).stdout.strip() == inst.name
    assert "lxc.log" in inst.logs.all()
    inst.stop(wait=True)
