"""``/`` and ``/1.0``, the envelope, and unknown paths: fake and real alike."""

from __future__ import annotations

from fakeserver.extensions import API_EXTENSIONS
from tests.support import API


def test_root(api: API) -> None:
    reply = api.get("/")
    assert reply.status == 200 and reply.metadata == ["/1.0"]


def test_server_info_over_unix(api: API) -> None:
    reply = api.get("/1.0")
    meta = reply.metadata
    assert list(reply.body) == ["type", "status", "status_code", "operation", "error_code",
                                "error", "metadata"]
    assert list(meta) == ["config", "api_extensions", "api_status", "api_version", "auth",
                          "public", "auth_methods", "environment"]
    assert meta["auth"] == "trusted"
    assert meta["api_extensions"] == list(API_EXTENSIONS)
    env = meta["environment"]
    assert env["server_version"] == "5.0.2"
    assert env["server_clustered"] is False
    assert env["certificate"].startswith("-----BEGIN CERTIFICATE-----")
    assert len(env["certificate_fingerprint"]) == 64
    assert reply.raw.endswith(b"}\n") and not reply.raw.endswith(b"\n\n")
    assert reply.headers["Content-Type"] == "application/json"
    assert len(reply.headers["ETag"].strip('"')) == 64


def test_unknown_paths_and_methods(api: API) -> None:
    for path in ["/1.0/unknown-endpoint", "/2.0", "/1.0/", "/1.0/profiles/"]:
        reply = api.get(path)
        assert (reply.status, reply.error) == (404, "not found"), path
        assert reply.body["type"] == "error"
    reply = api.post("/1.0", {})
    assert (reply.status, reply.error) == (501, "not implemented")
    reply = api.delete("/1.0/profiles")
    assert (reply.status, reply.error) == (501, "not implemented")


def test_server_config_patch_unknown_key(api: API) -> None:
    reply = api.patch("/1.0", {"config": {"foo.bar": "1"}})
    assert (reply.status, reply.error) == (400, "cannot set 'foo.bar' to '1': unknown key")


def test_server_config_round_trip(api: API) -> None:
    before = api.get("/1.0").metadata["config"]
    api.later(lambda: api.put("/1.0", {"config": before}))
    assert api.patch("/1.0", {"config": {"images.auto_update_interval": "7"}}).status == 200
    assert api.get("/1.0").metadata["config"]["images.auto_update_interval"] == "7"
    assert api.patch("/1.0", {"config": {"images.auto_update_interval": ""}}).status == 200
    assert "images.auto_update_interval" not in api.get("/1.0").metadata["config"]
    assert api.patch("/1.0", {"config": None}).status == 200
    assert api.get("/1.0").metadata["config"] == before


def test_server_etag(api: API) -> None:
    reply = api.get("/1.0")
    etag = reply.headers["ETag"].strip('"')
    stale = api.put("/1.0", {"config": reply.metadata["config"]},
                    headers={"If-Match": '"stale"'})
    assert (stale.status, stale.error) == (412, f"ETag doesn't match: {etag} vs stale")


def test_unknown_target(api: API) -> None:
    reply = api.get("/1.0", params={"target": "nope"})
    assert (reply.status, reply.error) == (404, "Cluster member not found")


def test_metrics_over_unix(api: API) -> None:
    """OpenMetrics text, no charset. With no instance running (none of this test's, and the
    real suite runs one test at a time), LXD 5.0.2 has nothing to report but the end marker;
    the fake always answers that (see its ``get_metrics``)."""
    reply = api.get("/1.0/metrics")
    assert (reply.status, reply.headers["Content-Type"]) == (200, "text/plain")
    assert reply.raw.endswith(b"# EOF\n")
    if api.is_fake:
        assert reply.raw == b"# EOF\n"
    # A missing project is not looked up: it just has no instances.
    reply = api.get("/1.0/metrics", params={"project": "rbnx-p"})
    assert (reply.status, reply.raw) == (200, b"# EOF\n")
    reply = api.get("/1.0/metrics", params={"target": "nope"})
    assert (reply.status, reply.error) == (404, "Cluster member not found")
