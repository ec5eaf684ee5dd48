# --8<-- [start:seed]
import pytest


@pytest.fixture(scope="session")
def lxd_fake_seed():
    """Every test on the fake starts with this (an `lxd init --preseed`) on its baseline."""
    return {"storage_pools": [{"name": "tank", "driver": "zfs"}]}
# --8<-- [end:seed]
