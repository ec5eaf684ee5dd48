"""``/1.0/resources``: the same shape on the fake and on real LXD (the values are the host's)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from tests.support import API


@pytest.fixture
def untrusted(api: API, tmp_path: Path) -> Iterator[API]:
    """The same backend over HTTPS with a client certificate it does not trust."""
    cert = trustme.CA().issue_cert("untrusted-client")
    cert_file, key_file = tmp_path / "client.crt", tmp_path / "client.key"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    if api.is_fake:
        url = api.server.https_url  # type: ignore[attr-defined]
    else:
        address = api.get("/1.0").metadata["config"].get("core.https_address", "")
        if not address:
            pytest.fail("the real host is expected to listen on HTTPS (core.https_address)")
        url = f"https://{address}"
    client = API.https(api.kind, url, (str(cert_file), str(key_file)), False)
    yield client
    client.session.close()


def test_sections_in_order(api: API) -> None:
    reply = api.get("/1.0/resources")
    assert reply.status == 200
    assert "ETag" not in reply.headers
    res = reply.metadata
    assert list(res) == ["cpu", "memory", "gpu", "network", "storage", "usb", "pci", "system"]
    assert list(res["gpu"]) == ["cards", "total"]
    assert list(res["usb"]) == ["devices", "total"]
    assert list(res["pci"]) == ["devices", "total"]
    for section, items in [("gpu", "cards"), ("network", "cards"), ("storage", "disks"),
                           ("usb", "devices"), ("pci", "devices")]:
        assert res[section]["total"] == len(res[section][items]), section


def test_cpu(api: API) -> None:
    cpu = api.get("/1.0/resources").metadata["cpu"]
    assert list(cpu) == ["architecture", "sockets", "total"]
    assert cpu["architecture"]
    threads = [t for s in cpu["sockets"] for c in s["cores"] for t in c["threads"]]
    assert cpu["total"] == len(threads) > 0
    socket = cpu["sockets"][0]
    assert list(socket)[:4] == ["name", "vendor", "socket", "cache"]
    assert all(set(c) == {"level", "type", "size"} for c in socket["cache"])
    assert list(socket["cores"][0]) == ["core", "die", "threads"]
    assert list(threads[0]) == ["id", "numa_node", "thread", "online", "isolated"]
    assert sorted(t["id"] for t in threads) == list(range(len(threads)))


def test_memory(api: API) -> None:
    memory = api.get("/1.0/resources").metadata["memory"]
    assert list(memory) == ["nodes", "hugepages_total", "hugepages_used", "hugepages_size",
                            "used", "total"]
    assert 0 < memory["used"] <= memory["total"]
    assert list(memory["nodes"][0]) == ["numa_node", "hugepages_used", "hugepages_total",
                                        "used", "total"]


def test_network_storage_pci_system(api: API) -> None:
    res = api.get("/1.0/resources").metadata
    for card in res["network"]["cards"]:
        assert list(card)[:3] == ["driver", "driver_version", "ports"]
        assert {"numa_node", "pci_address", "vendor_id", "product_id"} <= set(card)
        for port in card["ports"]:
            assert list(port)[:4] == ["id", "address", "port", "protocol"]
    for disk in res["storage"]["disks"]:
        assert list(disk)[:6] == ["id", "device", "type", "read_only", "size", "removable"]
        assert disk["size"] > 0
    for device in res["pci"]["devices"]:
        assert list(device) == ["driver", "driver_version", "numa_node", "pci_address",
                                "vendor", "vendor_id", "product", "product_id",
                                "iommu_group", "vpd"]
    assert list(res["system"]) == ["uuid", "vendor", "product", "family", "version", "sku",
                                   "serial", "type", "firmware", "chassis", "motherboard"]


def test_unknown_target(api: API) -> None:
    reply = api.get("/1.0/resources", params={"target": "foo"})
    assert (reply.status, reply.error) == (404, "Cluster member not found")


def test_untrusted_clients_are_refused(untrusted: API) -> None:
    for path in ("/1.0/resources", "/1.0/resources?target=foo", "/1.0/warnings",
                 "/1.0/warnings/nope", "/1.0/projects", "/1.0/projects/default",
                 "/1.0/projects/default/state"):
        reply = untrusted.get(path)
        assert (reply.status, reply.error) == (403, "not authorized"), path
