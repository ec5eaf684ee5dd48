def test_seeded_pool(lxd_client, lxd_fake):
    """Storage pools are global: the seeded one is seen from the test's project."""
    assert lxd_client.storage_pools.get("tank").driver == "zfs"
