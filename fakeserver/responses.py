"""LXD's response envelope: sync, async and error replies, byte for byte as LXD writes them."""

from __future__ import annotations

import hashlib
import json
import re
import time
from typing import Any

from werkzeug.wrappers import Response

JSON = "application/json"


_SURROGATES = re.compile("[\ud800-\udfff]")


def dumps(value: Any) -> str:
    """Serialise like Go's json.Encoder in LXD: compact, UTF-8, no HTML escaping, and invalid
    UTF-8 (bytes kept as surrogates, lone surrogate escapes) as U+FFFD, as Go writes it."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = _SURROGATES.sub("\ufffd", text)
    return text


def go_time(ns: int | None = None) -> str:
    """An RFC 3339 timestamp with nanoseconds and no trailing zeros, as Go renders time.Time."""
    if ns is None:
        ns = time.time_ns()
    secs, frac = divmod(ns, 1_000_000_000)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    digits = f"{frac:09d}".rstrip("0")
    return f"{base}.{digits}Z" if digits else f"{base}Z"


ZERO_TIME = "0001-01-01T00:00:00Z"
EPOCH_TIME = "1970-01-01T00:00:00Z"


def etag_of(data: Any) -> str:
    """LXD's ETag: sha256 of the Go JSON of the object's ETag data plus a newline."""
    text = json.dumps(data, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return hashlib.sha256((text + "\n").encode()).hexdigest()


class LXDError(Exception):
    """An error reply: HTTP status equals ``error_code``; ``message`` is LXD's text."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def bad_request(message: str) -> LXDError:
    return LXDError(400, message)


def not_found(message: str = "not found") -> LXDError:
    return LXDError(404, message)


def forbidden(message: str = "not authorized") -> LXDError:
    return LXDError(403, message)


def conflict(message: str) -> LXDError:
    return LXDError(409, message)


def internal(message: str) -> LXDError:
    return LXDError(500, message)


def _envelope(kind: str, status: str, status_code: int, operation: str, error_code: int,
              error: str, metadata: Any) -> dict[str, Any]:
    return {
        "type": kind,
        "status": status,
        "status_code": status_code,
        "operation": operation,
        "error_code": error_code,
        "error": error,
        "metadata": metadata,
    }


def sync(metadata: Any, *, etag: str | None = None, status: int = 200,
         headers: dict[str, str] | None = None) -> Response:
    """A sync reply (HTTP 200 by default); ``etag`` adds a quoted ETag header."""
    body = dumps(_envelope("sync", "Success", 200, "", 0, "", metadata)) + "\n"
    resp = Response(body, status=status, content_type=JSON)
    if etag is not None:
        resp.headers["ETag"] = f'"{etag}"'
    for key, value in (headers or {}).items():
        resp.headers[key] = value
    return resp


def empty() -> Response:
    """LXD's EmptySyncResponse: 200 with ``metadata: {}``."""
    return sync({})


def created(location: str) -> Response:
    """LXD's SyncResponseLocation: 201, a Location header and ``metadata: null``."""
    return sync(None, status=201, headers={"Location": location})


def operation(op_json: dict[str, Any], url: str) -> Response:
    """An async reply: 202 with the operation embedded and a Location header."""
    body = dumps(_envelope("async", "Operation created", 100, url, 0, "", op_json)) + "\n"
    resp = Response(body, status=202, content_type=JSON)
    resp.headers["Location"] = url
    return resp


def error(code: int, message: str) -> Response:
    """An error reply; LXD ends these bodies with two newlines and escapes ``<>&`` in them."""
    body = dumps(_envelope("error", "", 0, "", code, message, None))
    body = body.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    body += "\n\n"
    resp = Response(body, status=code, content_type=JSON)
    resp.headers["X-Content-Type-Options"] = "nosniff"
    return resp


def drop_connection(environ: dict[str, Any], message: str) -> Response:
    """Where a handler of LXD 5.0.2 panics, Go's HTTP server recovers and closes the
    connection without an answer: so does the fake (a 500 ``message`` where it cannot)."""
    import socket

    hijack = environ.get("fakeserver.hijack")
    if hijack is None:
        raise LXDError(500, message)
    conn, _ = hijack()
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    return Response(status=500)  # never sent
