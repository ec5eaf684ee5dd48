"""Client work run in separate processes by test_concurrency.py (spawned: importable here).

Each worker opens its own connection (unix socket or TLS with its own certificate) and takes
part in rounds of racing ``If-Match`` updates synchronised by a barrier.
"""

from __future__ import annotations

import json
from typing import Any

from tests.support import API


def client_for(target: dict[str, Any]) -> API:
    if target["kind"] == "unix":
        return API.unix("fake", target["socket"])
    return API.https("fake", target["url"], tuple(target["cert"]), target["ca"])


def race_rounds(target: dict[str, Any], ident: str, path: str, rounds: int, barrier: Any,
                results: Any, method: str = "PUT", base: dict[str, str] | None = None) -> None:
    """Each round: read the ETag, wait for everyone, write with If-Match (``base`` config plus
    this writer's mark); report the status."""
    client = client_for(target)
    try:
        for round_no in range(rounds):
            etag = client.get(path, timeout=30).headers["ETag"]
            barrier.wait(timeout=60)
            config = {**(base or {}), "user.winner": ident, "user.round": str(round_no)}
            reply = client.request(method, path, json_body={"config": config},
                                   headers={"If-Match": etag}, timeout=30)
            results.put(json.dumps([round_no, ident, reply.status, reply.body.get("error", "")]))
            barrier.wait(timeout=60)  # nobody reads the next ETag before all have written
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which fails the test
        results.put(json.dumps([-1, ident, 0, repr(exc)]))
        barrier.abort()
