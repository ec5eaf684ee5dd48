"""``/`` and ``/1.0``: server information, environment and server configuration."""

from __future__ import annotations

import os
import platform
import socket
from typing import Any

from werkzeug.wrappers import Response

from .. import responses
from ..app import Ctx
from ..extensions import API_EXTENSIONS
from ..responses import LXDError
from ..schema import MAP_ANY, Struct, patch_config
from ..state import State
from . import route

CLUSTER_KEYS = {
    "backups.compression_algorithm", "cluster.offline_threshold",
    "cluster.images_minimal_replica", "cluster.join_token_expiry", "cluster.max_voters",
    "cluster.max_standby", "core.metrics_authentication", "core.bgp_asn",
    "core.https_allowed_headers", "core.https_allowed_methods", "core.https_allowed_origin",
    "core.https_allowed_credentials", "core.https_trusted_proxy", "core.proxy_http",
    "core.proxy_https", "core.proxy_ignore_hosts", "core.remote_token_expiry",
    "core.shutdown_timeout", "core.trust_password", "core.trust_ca_certificates",
    "candid.api.key", "candid.api.url", "candid.domains", "candid.expiry",
    "images.auto_update_cached", "images.auto_update_interval", "images.compression_algorithm",
    "images.default_architecture", "images.remote_cache_expiry", "maas.api.key",
    "maas.api.url", "rbac.agent.url", "rbac.agent.username", "rbac.agent.private_key",
    "rbac.agent.public_key", "rbac.api.expiry", "rbac.api.key", "rbac.api.url",
    "network.ovn.integration_bridge", "network.ovn.northbound_connection",
}
MEMBER_KEYS = {
    "core.https_address", "cluster.https_address", "core.bgp_address", "core.bgp_routerid",
    "core.debug_address", "core.dns_address", "core.metrics_address", "maas.machine",
    "storage.backups_volume", "storage.images_volume",
}
HIDDEN_KEYS = {"core.trust_password", "maas.api.key", "candid.api.key"}

SERVER_PUT = Struct("ServerPut", config=MAP_ANY)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def rendered_config(state: State) -> dict[str, Any]:
    """The config as LXD dumps it: a set hidden key shows as the boolean ``true``."""
    return {key: (True if key in HIDDEN_KEYS else value)
            for key, value in sorted(state.config.items())}


def _go_kind(value: Any) -> str:
    """``reflect.Kind`` of a decoded JSON value, as LXD names it in type errors."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "float64"
    return "slice" if isinstance(value, list) else "map"


def _validated(state: State, config: dict[str, Any], api: bool = False) -> dict[str, str]:
    """Check every key; ``true`` for a set hidden key keeps its stored value.

    Over the API (``api``) LXD 5.0.2 takes a string or ``null`` (unset) only: any other
    value is ``invalid type <kind>``, checked before the key is. ``user.*`` keys are free.
    """
    out: dict[str, str] = {}
    for key, value in config.items():
        if key in HIDDEN_KEYS and value is True and key in state.config:
            out[key] = state.config[key]
            continue
        if api and value is not None and not isinstance(value, str) and not (
                key in HIDDEN_KEYS and isinstance(value, bool)):
            raise LXDError(400, f"cannot set '{key}': invalid type {_go_kind(value)}")
        text = _text(value)
        if key not in CLUSTER_KEYS and key not in MEMBER_KEYS and not key.startswith("user."):
            raise LXDError(400, f"cannot set '{key}' to '{text}': unknown key")
        out[key] = text
    return out


def seed_config(state: State, config: dict[str, Any]) -> None:
    """Preseed: merge ``config`` into the server config."""
    patch_config(state.config, _validated(state, config))


def environment(ctx: Ctx) -> dict[str, Any]:
    tls = ctx.server.tls
    address = ctx.state.config.get("core.https_address")
    return {
        "addresses": [address] if address else [],
        "architectures": [platform.machine() or "x86_64"] + (
            ["i686"] if platform.machine() == "x86_64" else []),
        "certificate": tls.certificate_pem,
        "certificate_fingerprint": tls.fingerprint,
        "driver": "lxc",
        "driver_version": "5.0.2",
        "firewall": "xtables",
        "kernel": "Linux",
        "kernel_architecture": platform.machine() or "x86_64",
        "kernel_features": {"idmapped_mounts": "true", "netnsid_getifaddrs": "false",
                            "seccomp_listener": "true", "seccomp_listener_continue": "true",
                            "shiftfs": "false", "uevent_injection": "true",
                            "unpriv_fscaps": "true"},
        "kernel_version": platform.release(),
        "lxc_features": {"cgroup2": "true", "devpts_fd": "true", "pidfd": "true",
                         "seccomp_notify": "true"},
        "os_name": "Debian GNU/Linux",
        "os_version": "12",
        "project": ctx.project,
        "server": "lxd",
        "server_clustered": False,
        "server_event_mode": "full-mesh",
        "server_name": socket.gethostname(),
        "server_pid": os.getpid(),
        "server_version": "5.0.2",
        "storage": "dir",
        "storage_version": "1",
        "storage_supported_drivers": [{"Name": "dir", "Version": "1", "Remote": False}],
    }


def _check_target(ctx: Ctx) -> None:
    if ctx.request.args.get("target"):
        raise LXDError(404, "Cluster member not found")


@route("/", "GET", untrusted=True)
def get_root(ctx: Ctx) -> Response:
    return responses.sync(["/1.0"])


@route("/1.0", "GET", untrusted=True)
def get_server(ctx: Ctx) -> Response:
    _check_target(ctx)
    common = {"api_extensions": list(API_EXTENSIONS), "api_status": "stable",
              "api_version": "1.0"}
    if not ctx.trusted:
        return responses.sync({**common, "auth": "untrusted", "public": False,
                               "auth_methods": ["tls"]})
    with ctx.state.lock:  # a restricted client certificate sees no config (and ETag of null)
        config = rendered_config(ctx.state) if ctx.restricted is None else None
    meta = {"config": config, **common, "auth": "trusted", "public": False,
            "auth_methods": ["tls"], "environment": environment(ctx)}
    return responses.sync(meta, etag=responses.etag_of(config))


@route("/1.0", "PUT", "PATCH")
def update_server(ctx: Ctx) -> Response:
    _check_target(ctx)
    body = ctx.body(SERVER_PUT)
    with ctx.state.lock:
        ctx.check_etag(responses.etag_of(rendered_config(ctx.state)))
        if ctx.request.method == "PATCH" and "config" not in body.present:
            return responses.empty()
        changes = _validated(ctx.state, body["config"], api=True)
        if ctx.request.method == "PUT":
            ctx.state.config = {k: v for k, v in changes.items() if v != ""}
        else:
            seed_config(ctx.state, changes)
    ctx.lifecycle("config-updated", "/1.0")
    return responses.empty()


@route("/1.0/metrics", "GET", untrusted=True)
def get_metrics(ctx: Ctx) -> Response:
    """OpenMetrics text. Divergence: the fake has no cgroup counters, so it always answers
    what LXD 5.0.2 answers with no instance running (``# EOF``)."""
    with ctx.state.lock:
        open_metrics = ctx.state.config.get("core.metrics_authentication", "true") == "false"
    outside = ctx.restricted is not None and ctx.project not in ctx.restricted
    if (not ctx.trusted and not open_metrics) or outside:
        raise responses.forbidden()  # a restricted certificate: its projects' metrics only
    _check_target(ctx)
    reply = Response("# EOF\n")
    reply.headers["Content-Type"] = "text/plain"  # no charset, as LXD
    return reply
