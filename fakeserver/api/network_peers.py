"""``/1.0/networks/<network>/peers``: network peerings, which LXD 5.0.2 has for OVN only.

The host the fake mirrors runs no OVN, so every peer request that reaches a network answers
that the driver does not support peering (400), in LXD's order of checks (probed): ``?target=``
(not on the list GET), the project, the body (POST only), the managed network, its driver.
There is no peer lookup after the driver check, so a missing peer never shows. An OVN network
cannot be made on the fake; one seeded by hand answers 501 (the fake runs no OVN either).
"""

from __future__ import annotations

from typing import Any, NoReturn

from werkzeug.wrappers import Response

from ..app import Ctx
from ..gourl import go_quote
from ..responses import LXDError
from ..schema import MAP_STR, STR, Struct
from . import route
from .networks import _check_target, _managed, _owner

PEER_PUT = Struct("NetworkPeerPut", description=STR, config=MAP_STR)
PEERS_POST = PEER_PUT.extend("NetworkPeersPost", name=STR, target_project=STR,
                             target_network=STR)


def _refuse(ctx: Ctx, network: str) -> NoReturn:
    """The managed network's driver check: always raises on this host."""
    with ctx.state.lock:
        net: dict[str, Any] = _managed(ctx, ctx.state.owner("networks", ctx.project), network)
        driver = net["type"]
    if driver != "ovn":
        raise LXDError(400, f"Network driver {go_quote(driver)} does not support peering")
    raise LXDError(501, "not implemented")  # divergence: the fake has no OVN to peer with


@route("/1.0/networks/<network>/peers", "GET")
def list_peers(ctx: Ctx, network: str) -> Response:
    with ctx.state.lock:
        _owner(ctx)
    _refuse(ctx, network)


@route("/1.0/networks/<network>/peers", "POST")
def create_peer(ctx: Ctx, network: str) -> Response:
    _check_target(ctx)
    with ctx.state.lock:
        _owner(ctx)
    ctx.body(PEERS_POST)
    _refuse(ctx, network)


@route("/1.0/networks/<network>/peers/<peer>", "GET", "PUT", "PATCH", "DELETE")
def peer(ctx: Ctx, network: str, peer: str) -> Response:
    _check_target(ctx)
    with ctx.state.lock:
        _owner(ctx)
    _refuse(ctx, network)
