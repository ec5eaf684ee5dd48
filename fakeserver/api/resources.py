"""``/1.0/resources``: the host's hardware, in LXD's ``Resources`` shape.

The fake describes the machine it runs on, read cheaply from ``/proc`` and ``/sys`` (once, then
cached; memory usage is re-read per request) with static fallbacks where those files are
missing. ``/1.0/storage-pools/{p}/resources`` lives with the storage pools.
"""

from __future__ import annotations

import functools
import os
import platform
from pathlib import Path
from typing import Any

from werkzeug.wrappers import Response

from .. import responses
from ..app import Ctx
from ..responses import LXDError
from . import route

SYS = Path("/sys")


def _read(path: Path | str, default: str = "") -> str:
    try:
        return Path(path).read_text().strip()
    except (OSError, UnicodeDecodeError):
        return default


def _int(text: str, default: int = 0) -> int:
    try:
        return int(text)
    except ValueError:
        return default


def _link_name(path: Path) -> str:
    try:
        return os.path.basename(os.readlink(path))
    except OSError:
        return ""


def _size(text: str) -> int:
    """``32K`` / ``1024K`` / ``32M`` from sysfs cache sizes, in bytes."""
    units = {"K": 1024, "M": 1024**2, "G": 1024**3}
    if text and text[-1] in units:
        return _int(text[:-1]) * units[text[-1]]
    return _int(text)


def _driver_version(device: Path) -> str:
    """The driver module's version, or the kernel release for a built-in driver."""
    return _read(device / "driver/module/version") or platform.release()


def _numa(path: Path) -> int:
    return max(_int(_read(path / "numa_node", "0")), 0)


def _cpu() -> dict[str, Any]:
    procs: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in _read("/proc/cpuinfo").splitlines() + [""]:
        if not line.strip():
            if current:
                procs.append(current)
            current = {}
            continue
        key, _, value = line.partition(":")
        current[key.strip()] = value.strip()
    if not procs:
        procs = [{"processor": str(i)} for i in range(os.cpu_count() or 1)]
    cache = []
    for index in sorted((SYS / "devices/system/cpu/cpu0/cache").glob("index*")):
        cache.append({"level": _int(_read(index / "level")), "type": _read(index / "type"),
                      "size": _size(_read(index / "size"))})
    sockets: dict[int, dict[str, Any]] = {}
    for proc in procs:
        thread_id = _int(proc.get("processor", "0"))
        socket_id = _int(proc.get("physical id", "0"))
        socket = sockets.setdefault(socket_id, {
            "name": proc.get("model name", ""), "vendor": proc.get("vendor_id", ""),
            "socket": socket_id, "cache": cache, "cores": []})
        core_id = _int(proc.get("core id", str(thread_id)))
        core = next((c for c in socket["cores"] if c["core"] == core_id), None)
        if core is None:
            core = {"core": core_id, "die": 0, "threads": []}
            socket["cores"].append(core)
        core["threads"].append({"id": thread_id, "numa_node": 0, "thread": len(core["threads"]),
                                "online": True, "isolated": False})
    return {"architecture": platform.machine() or "x86_64",
            "sockets": [sockets[k] for k in sorted(sockets)], "total": len(procs)}


def _memory() -> dict[str, Any]:
    info: dict[str, int] = {}
    for line in _read("/proc/meminfo").splitlines():
        key, _, value = line.partition(":")
        parts = value.split()
        if parts:
            info[key] = _int(parts[0]) * (1024 if parts[1:] == ["kB"] else 1)
    total = info.get("MemTotal", 4 * 1024**3)
    used = total - info.get("MemAvailable", info.get("MemFree", total))
    huge_total = info.get("HugePages_Total", 0)
    huge_used = huge_total - info.get("HugePages_Free", 0)
    return {
        "nodes": [{"numa_node": 0, "hugepages_used": huge_used, "hugepages_total": huge_total,
                   "used": used, "total": total}],
        "hugepages_total": huge_total, "hugepages_used": huge_used,
        "hugepages_size": info.get("Hugepagesize", 2 * 1024**2), "used": used, "total": total,
    }


def _pci_address(device: Path) -> str:
    """The PCI address above a sysfs device (virtio devices hang off a PCI function)."""
    try:
        resolved = device.resolve()
    except OSError:
        return ""
    for part in reversed(resolved.parts):
        if part.count(":") == 2 and "." in part:
            return part
    return ""


def _network() -> dict[str, Any]:
    cards = []
    for iface in sorted((SYS / "class/net").glob("*")):
        device = iface / "device"
        if not device.exists():
            continue
        driver = _link_name(device / "driver")
        pci = _pci_address(device)
        pci_dir = SYS / "bus/pci/devices" / pci
        ids = device if (device / "vendor").exists() else pci_dir
        cards.append({
            "driver": driver, "driver_version": _driver_version(device),
            "ports": [{"id": iface.name, "address": _read(iface / "address"), "port": 0,
                       "protocol": "ethernet", "port_type": "other",
                       "transceiver_type": "internal", "auto_negotiation": False,
                       "link_detected": _read(iface / "carrier") == "1"}],
            "numa_node": _numa(pci_dir), "pci_address": pci,
            "vendor_id": _read(ids / "vendor").removeprefix("0x"),
            "product_id": _read(ids / "device").removeprefix("0x"),
        })
    return {"cards": cards, "total": len(cards)}


def _storage() -> dict[str, Any]:
    disks: list[dict[str, Any]] = []
    for block in sorted((SYS / "block").glob("*")):
        if not (block / "device").exists():
            continue
        name = block.name
        disks.append({
            "id": name, "device": _read(block / "dev"),
            "type": "virtio" if name.startswith("vd") else "scsi",
            "read_only": _read(block / "ro") == "1",
            "size": _int(_read(block / "size")) * 512,
            "removable": _read(block / "removable") == "1", "numa_node": 0, "block_size": 0,
            "rpm": 1 if _read(block / "queue/rotational") == "1" else 0, "device_id": "",
            "partitions": [], "pci_address": _pci_address(block / "device"),
        })
    return {"disks": disks, "total": len(disks)}


def _pci() -> dict[str, Any]:
    devices = []
    for device in sorted((SYS / "bus/pci/devices").glob("*")):
        driver = _link_name(device / "driver")
        devices.append({
            "driver": driver, "driver_version": _driver_version(device) if driver else "",
            "numa_node": _numa(device), "pci_address": device.name, "vendor": "",
            "vendor_id": _read(device / "vendor").removeprefix("0x"), "product": "",
            "product_id": _read(device / "device").removeprefix("0x"),
            "iommu_group": _int(_link_name(device / "iommu_group")), "vpd": {},
        })
    return {"devices": devices, "total": len(devices)}


def _system() -> dict[str, Any]:
    dmi = SYS / "class/dmi/id"
    fields = {"uuid": "product_uuid", "vendor": "sys_vendor", "product": "product_name",
              "family": "product_family", "version": "product_version", "sku": "product_sku",
              "serial": "product_serial"}
    out: dict[str, Any] = {key: _read(dmi / name) for key, name in fields.items()}
    out["type"] = "physical" if dmi.exists() else "container"
    out.update({"firmware": None, "chassis": None, "motherboard": None})
    return out


@functools.lru_cache(maxsize=1)
def _static() -> dict[str, Any]:
    """Everything but memory, read once per process."""
    return {"cpu": _cpu(), "gpu": {"cards": [], "total": 0}, "network": _network(),
            "storage": _storage(), "usb": {"devices": [], "total": 0}, "pci": _pci(),
            "system": _system()}


def resources() -> dict[str, Any]:
    """The ``Resources`` object, keys in LXD's order."""
    static = _static()
    return {"cpu": static["cpu"], "memory": _memory(), "gpu": static["gpu"],
            "network": static["network"], "storage": static["storage"], "usb": static["usb"],
            "pci": static["pci"], "system": static["system"]}


@route("/1.0/resources", "GET")
def get_resources(ctx: Ctx) -> Response:
    if ctx.request.args.get("target"):
        raise LXDError(404, "Cluster member not found")
    return responses.sync(resources())
