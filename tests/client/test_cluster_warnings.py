"""``client.cluster`` on a standalone server, and ``client.warnings`` (new: pylxd has none)."""

from __future__ import annotations

import pytest

from pytest_lxd import exceptions

from .conftest import LXDEnv


def test_standalone_cluster(lxd: LXDEnv) -> None:
    cluster = lxd.client.cluster.get()
    assert (cluster.server_name, cluster.enabled) == ("", False)
    assert cluster.member_config[0]["entity"] == "storage-pool"
    assert not cluster.dirty
    assert lxd.client.server_clustered is False
    with pytest.raises(exceptions.LXDAPIException, match="Server is not clustered") as info:
        lxd.client.cluster.members.all()
    assert info.value.error_code == 500
    with pytest.raises(exceptions.LXDAPIException, match="Server is not clustered"):
        cluster.members.all()


def test_warnings(lxd: LXDEnv) -> None:
    """Read-only on the real host: its warnings are not ours to acknowledge."""
    warnings = lxd.client.warnings.all()
    for warning in warnings:
        assert warning.uuid and warning.status in ("new", "acknowledged")
    loaded = lxd.client.warnings.all(recursion=1)
    assert {w.uuid for w in loaded} == {w.uuid for w in warnings}
    if loaded:
        first = lxd.client.warnings.get(loaded[0].uuid)
        assert first.last_message == loaded[0].last_message
        assert first.severity in ("low", "moderate", "high")
    missing = "00000000-0000-0000-0000-000000000000"
    assert not lxd.client.warnings.exists(missing)
    with pytest.raises(exceptions.NotFound, match="Warning not found"):
        lxd.client.warnings.get(missing)


@pytest.mark.fake_only  # raising a warning is only possible on the fake
def test_acknowledge_and_delete_a_warning(lxd: LXDEnv) -> None:
    from fakeserver.api.warnings import add_warning

    assert lxd.fake is not None
    uuid = add_warning(lxd.fake.state, "Couldn't find the CGroup blkio.weight",
                       "disk priority will be ignored")
    warning = lxd.client.warnings.get(uuid)
    assert (warning.status, warning.count) == ("new", 1)
    assert warning.last_message == "disk priority will be ignored"
    warning.acknowledge()
    assert lxd.client.warnings.get(uuid).status == "acknowledged"
    assert not warning.dirty
    warning.delete()
    assert not lxd.client.warnings.exists(uuid)
