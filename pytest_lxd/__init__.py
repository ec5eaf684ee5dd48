"""pytest-lxd: an LXD client, a fake LXD server and a pytest plugin."""

__version__ = "0.1.0"
