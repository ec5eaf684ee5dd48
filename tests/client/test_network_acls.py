"""Network ACLs through the client (``client.network_acls``), on the fake and the real host."""

from __future__ import annotations

import uuid

import pytest

from pytest_lxd import exceptions
from pytest_lxd.models import NetworkACL

from .conftest import LXDEnv

ALLOW = {"action": "allow", "state": "enabled"}
NO_LOG = "Only OVN log entries may be retrieved at this time"


def acl_name() -> str:
    return f"acl-{uuid.uuid4().hex[:8]}"


def make(lxd: LXDEnv, name: str | None = None, **kwargs: object) -> NetworkACL:
    name = name or acl_name()
    lxd.delete_later(f"/1.0/network-acls/{name}")
    return lxd.client.network_acls.create(name, **kwargs)  # type: ignore[arg-type]


def test_create_get_all_exists(lxd: LXDEnv) -> None:
    acl = make(lxd, description="d", config={"user.a": "1"},
               ingress=[{**ALLOW, "protocol": "tcp", "destination_port": " 22 , 80"}],
               egress=[{"action": "drop", "state": "logged"}])
    assert isinstance(acl, NetworkACL)
    assert (acl.description, acl.config, acl.used_by) == ("d", {"user.a": "1"}, [])
    # Stored as LXD normalises it: trimmed, empty fields left out.
    assert acl.ingress == [{"action": "allow", "protocol": "tcp",
                            "destination_port": "22,80", "state": "enabled"}]
    assert acl.egress == [{"action": "drop", "state": "logged"}]
    assert acl.etag and not acl.dirty
    client = lxd.client
    assert client.network_acls.exists(acl.name)
    assert not client.network_acls.exists(acl_name())
    with pytest.raises(exceptions.NotFound, match="Network ACL not found"):
        client.network_acls.get(acl_name())
    sparse = [a for a in client.network_acls.all() if a.name == acl.name]
    assert sparse == [acl]
    assert sparse[0].description == "d"  # loads on first use
    loaded = {a.name: a for a in client.network_acls.all(recursion=1)}
    assert loaded[acl.name].ingress == acl.ingress
    bare = make(lxd)
    assert (bare.description, bare.config, bare.ingress, bare.egress) == ("", {}, [], [])


def test_create_errors(lxd: LXDEnv) -> None:
    acl = make(lxd)
    with pytest.raises(exceptions.LXDAPIException,
                       match="The network ACL already exists") as info:
        lxd.client.network_acls.create(acl.name)
    assert info.value.error_code == 400
    with pytest.raises(exceptions.LXDAPIException,
                       match="Invalid ingress rule 0: Action must be one of") as info:
        lxd.client.network_acls.create(acl_name(), ingress=[{"action": "deny"}])
    assert info.value.error_code == 500
    with pytest.raises(exceptions.LXDAPIException, match='Invalid config option "x"'):
        lxd.client.network_acls.create(acl_name(), config={"x": "1"})


def test_dirty_rollback_save(lxd: LXDEnv) -> None:
    acl = make(lxd, description="d", ingress=[ALLOW])
    acl.ingress.append({"action": "drop", "state": "enabled", "source": "10.0.0.0/8"})
    assert acl.dirty and acl.dirty_fields == ["ingress"]
    acl.rollback()
    assert not acl.dirty and acl.ingress == [ALLOW]
    acl.ingress[0]["state"] = "logged"  # an edit inside a rule
    assert acl.dirty
    acl.config["user.k"] = "v"
    acl.egress = [{"action": "reject", "state": "enabled", "protocol": "icmp4",
                   "icmp_type": " 8 "}]
    old_etag = acl.etag
    acl.save()
    assert not acl.dirty and acl.etag != old_etag
    got = lxd.client.network_acls.get(acl.name)
    assert got.ingress == [{"action": "allow", "state": "logged"}]
    assert got.egress == [{"action": "reject", "protocol": "icmp4", "icmp_type": "8",
                           "state": "enabled"}]
    assert (got.description, got.config) == ("d", {"user.k": "v"})
    assert acl.save() is None  # nothing to write
    acl.ingress = [ALLOW, ALLOW]
    with pytest.raises(exceptions.LXDAPIException, match="Duplicate of ingress rule 0"):
        acl.save()
    acl.sync()
    assert not acl.dirty and acl.ingress == [{"action": "allow", "state": "logged"}]


def test_save_refuses_a_concurrent_change(lxd: LXDEnv) -> None:
    acl = make(lxd, description="d")
    other = lxd.new_client().network_acls.get(acl.name)
    other.description = "theirs"
    other.save()
    acl.description = "mine"
    with pytest.raises(exceptions.ETagMismatch):
        acl.save()
    acl.sync()
    assert acl.description == "theirs" and not acl.dirty
    sparse = next(a for a in lxd.client.network_acls.all() if a.name == acl.name)
    sparse.description = "from a sparse object"
    sparse.save()
    assert lxd.client.network_acls.get(acl.name).description == "from a sparse object"


def test_rename_and_delete(lxd: LXDEnv) -> None:
    acl = make(lxd, description="d")
    user = make(lxd, ingress=[{**ALLOW, "source": acl.name}])
    assert acl.client.network_acls.get(acl.name).used_by == [f"/1.0/network-acls/{user.name}"]
    with pytest.raises(exceptions.LXDAPIException, match="Cannot rename an ACL that is in use"):
        acl.rename(acl_name())
    with pytest.raises(exceptions.LXDAPIException, match="Cannot delete an ACL that is in use"):
        acl.delete()
    user.ingress = []
    user.save()
    new = acl_name()
    lxd.delete_later(f"/1.0/network-acls/{new}")
    assert acl.rename(new) is acl
    assert acl.name == new
    assert not lxd.client.network_acls.exists(user.name + "x")
    acl.description = "after rename"
    acl.save()
    assert lxd.client.network_acls.get(new).description == "after rename"
    with pytest.raises(exceptions.LXDAPIException, match="An ACL by that name exists already"):
        acl.rename(user.name)
    acl.delete()
    assert not lxd.client.network_acls.exists(new)


def test_log_raises_the_servers_error(lxd: LXDEnv) -> None:
    acl = make(lxd)
    with pytest.raises(exceptions.LXDAPIException, match=NO_LOG) as info:
        acl.log()
    assert info.value.error_code == 500
    gone = NetworkACL(lxd.client, name=acl_name())
    with pytest.raises(exceptions.NotFound, match="Network ACL not found"):
        gone.log()


def test_project_clients(lxd: LXDEnv) -> None:
    """A project with ``features.networks`` has its own ACLs; one without uses default's."""
    own = lxd.unique("ap")
    shared = lxd.unique("ap")
    for name, config in ((own, {"features.networks": "true"}), (shared, {})):
        lxd.client.projects.create(name, config=config)
        lxd.delete_later(f"/1.0/projects/{name}")
    acl = make(lxd)
    in_shared = lxd.new_client(project=shared)
    assert in_shared.network_acls.get(acl.name).name == acl.name
    in_own = lxd.new_client(project=own)
    assert not in_own.network_acls.exists(acl.name)
    mine = in_own.network_acls.create(acl.name, description="project copy")
    lxd.delete_later(f"/1.0/network-acls/{acl.name}", project=own)
    assert [a.name for a in in_own.network_acls.all()] == [acl.name]
    assert mine.description == "project copy"
    assert lxd.client.network_acls.get(acl.name).description == ""
