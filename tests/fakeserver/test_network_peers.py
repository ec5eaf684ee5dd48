"""Network peers: LXD 5.0.2 peers OVN networks only, so on the host the fake mirrors (bridges,
no OVN) every peer request that reaches a network is refused; the same answers on both.

Order of LXD's checks (probed): ``?target=`` (not on the list GET), the project, the body (POST
only), the managed network, its driver. Nothing is created on the real host.
"""

from __future__ import annotations

from typing import Any

from tests.support import API, unique

NO_PEERING = 'Network driver "bridge" does not support peering'
NO_NETWORK = "Failed loading network: Network not found"
ITEM_METHODS = ("GET", "PUT", "PATCH", "DELETE")


def error(reply: Any) -> tuple[int, str]:
    return reply.status, reply.error


def peers(network: str, peer: str = "") -> str:
    base = f"/1.0/networks/{network}/peers"
    return f"{base}/{peer}" if peer else base


def test_a_bridge_takes_no_peers(api: API) -> None:
    assert error(api.get(peers("lxdbr0"))) == (400, NO_PEERING)
    assert error(api.get(peers("lxdbr0"), params={"recursion": "1"})) == (400, NO_PEERING)
    body = {"name": "p1", "target_network": "x", "target_project": "default"}
    assert error(api.post(peers("lxdbr0"), body)) == (400, NO_PEERING)
    for method in ITEM_METHODS:
        # no peer lookup: a missing peer, a bad body, all the same
        assert error(api.request(method, peers("lxdbr0", unique("p")), json_body={})) == (
            400, NO_PEERING)
        assert error(api.request(method, peers("lxdbr0", "p"), data=b"{bad")) == (
            400, NO_PEERING)


def test_missing_or_unmanaged_network(api: API) -> None:
    for network in (unique("nonet"), "lo"):
        assert error(api.get(peers(network))) == (404, NO_NETWORK)
        assert error(api.post(peers(network), {"name": "p1"})) == (404, NO_NETWORK)
        for method in ITEM_METHODS:
            assert error(api.request(method, peers(network, "p1"), json_body={})) == (
                404, NO_NETWORK)


def test_post_decodes_the_body_before_the_network(api: API) -> None:
    bad_json = (400, "invalid character 'b' looking for beginning of object key string")
    for network in ("lxdbr0", unique("nonet")):
        assert error(api.post(peers(network), data=b"{bad")) == bad_json
        assert error(api.post(peers(network), data=b"")) == (400, "EOF")
        assert error(api.post(peers(network), {"name": 5})) == (
            400, "json: cannot unmarshal number into Go struct field NetworkPeersPost.name of "
                 "type string")


def test_no_rename(api: API) -> None:
    for network in ("lxdbr0", unique("nonet")):
        assert error(api.post(peers(network, "p1"), {"name": "p2"})) == (501, "not implemented")


def test_projects_and_targets(api: API) -> None:
    missing = 'Failed to load project "nope-pl": Project not found'
    assert error(api.get(peers("lxdbr0"), params={"project": "nope-pl"})) == (404, missing)
    assert error(api.post(peers("lxdbr0"), data=b"{bad", params={"project": "nope-pl"})) == (
        404, missing)
    own = unique("pp")
    api.delete_later(f"/1.0/projects/{own}")
    assert api.post("/1.0/projects", {"name": own, "config": {
        "features.networks": "true"}}).status == 201
    shared = unique("pp")
    api.delete_later(f"/1.0/projects/{shared}")
    assert api.post("/1.0/projects", {"name": shared}).status == 201
    assert error(api.get(peers("lxdbr0"), params={"project": own})) == (404, NO_NETWORK)
    assert error(api.get(peers("lxdbr0"), params={"project": shared})) == (400, NO_PEERING)
    # ?target= is checked first on every request but the list
    target = {"target": "foo"}
    assert error(api.get(peers("lxdbr0"), params=target)) == (400, NO_PEERING)
    assert error(api.post(peers("lxdbr0"), {}, params=target)) == (
        404, "Cluster member not found")
    for method in ITEM_METHODS:
        assert error(api.request(method, peers(unique("nonet"), "p1"), json_body={},
                                 params={**target, "project": "nope-pl"})) == (
            404, "Cluster member not found")
