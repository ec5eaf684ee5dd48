"""The contract suite: the lifecycle of every resource the fake serves, written once against
the plugin's ``lxd_client`` and run on the fake and on a real LXD host
(``--lxd-backend=both``). No cleanup code: the plugin deletes whatever a test created.
"""
