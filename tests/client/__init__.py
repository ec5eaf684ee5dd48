"""Tests of the pytest_lxd client library, run on the fake and on a real LXD."""
