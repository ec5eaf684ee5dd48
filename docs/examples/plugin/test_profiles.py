"""A downstream project's tests: they run on the fake, and on a real LXD when asked."""

import pytest

from pytest_lxd.exceptions import OperationFailed


# --8<-- [start:client]
def test_profile_lifecycle(lxd_client):
    """Runs on every selected backend, in an LXD project of its own."""
    profile = lxd_client.profiles.create("web", config={"limits.cpu": "1"})
    profile.config["limits.cpu"] = "2"
    profile.save()
    assert lxd_client.profiles.get("web").config == {"limits.cpu": "2"}
    # No cleanup needed: the project and everything in it go away after the test.
# --8<-- [end:client]


# --8<-- [start:backend]
def test_backend(lxd_backend, lxd_client):
    assert lxd_backend.name in ("fake", "real")
    assert lxd_backend.server_version.startswith("5.")
    assert lxd_client.project == lxd_backend.project  # pytest-lxd-<worker>-<hex>
# --8<-- [end:backend]


# --8<-- [start:fake]
def test_snapshot_failure_is_reported(lxd_client, lxd_fake):
    """Asking for lxd_fake keeps the test on the fake: faults exist only there."""
    lxd_fake.operations.fail("disk full", kind="Creating storage volume snapshot")
    pool = lxd_client.storage_pools.get("default")
    volume = pool.volumes.create({"name": "data", "config": {}})
    with pytest.raises(OperationFailed, match="disk full"):
        volume.snapshots.create("snap0")
# --8<-- [end:fake]


# --8<-- [start:markers]
@pytest.mark.lxd_requires_extension("storage_api_volume_snapshots")
def test_volume_snapshots(lxd_client):
    volume = lxd_client.storage_pools.get("default").volumes.create({"name": "v", "config": {}})
    volume.snapshots.create("first")
    assert volume.snapshots.all() == ["first"]


@pytest.mark.lxd_real_only
def test_on_the_real_host_only(lxd_backend):
    assert lxd_backend.fake is None
# --8<-- [end:markers]
