"""Names, instance/profile config keys and devices, checked with LXD's messages."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .gourl import go_quote
from .responses import LXDError


class Invalid(Exception):
    """A validation failure; handlers turn it into the status code LXD uses there."""


def _bool(value: str) -> None:
    if value.lower() not in ("true", "false", "1", "0", "yes", "no", "on", "off", ""):
        raise Invalid(f'Invalid value for a boolean {go_quote(value)}')


def _int(value: str) -> None:
    if value == "":
        return
    try:
        int(value)
    except ValueError:
        raise Invalid(f'Invalid value for an integer {go_quote(value)}') from None


def _uint(value: str) -> None:
    _int(value)
    if value and int(value) < 0:
        raise Invalid(f'Invalid value for an integer {go_quote(value)}')


def _priority(value: str) -> None:
    _int(value)
    if value and not 0 <= int(value) <= 10:
        raise Invalid(f'Invalid value for a limit {go_quote(value)}. Must be between 0 and 10')


def _cpu(value: str) -> None:
    if value == "":
        return
    if re.fullmatch(r"\d+", value):
        return
    if re.fullmatch(r"\d+(-\d+)?(,\d+(-\d+)?)*", value):
        return
    raise Invalid("Invalid CPU limit syntax")


_SIZE = re.compile(r"\d+(\.\d+)?\s*(B|[kKMGTPE](i?B)?)?")


def _memory(value: str) -> None:
    if value == "" or re.fullmatch(r"\d+(\.\d+)?%", value) or _SIZE.fullmatch(value):
        return
    raise Invalid(f'Invalid value {go_quote(value)} for "limits.memory"')


def _any(value: str) -> None:
    return None


Checker = Callable[[str], None]

INSTANCE_KEYS: dict[str, Checker] = {
    "boot.autostart": _bool, "boot.autostart.delay": _int, "boot.autostart.priority": _int,
    "boot.stop.priority": _int, "boot.host_shutdown_timeout": _int,
    "cloud-init.network-config": _any, "cloud-init.user-data": _any,
    "cloud-init.vendor-data": _any, "cluster.evacuate": _any,
    "limits.cpu": _cpu, "limits.cpu.allowance": _any, "limits.cpu.priority": _priority,
    "limits.disk.priority": _priority, "limits.memory": _memory,
    "limits.memory.enforce": _any, "limits.memory.swap": _bool,
    "limits.memory.swap.priority": _priority, "limits.network.priority": _priority,
    "limits.processes": _int,
    "linux.kernel_modules": _any, "migration.incremental.memory": _bool,
    "migration.incremental.memory.goal": _uint, "migration.incremental.memory.iterations": _uint,
    "migration.stateful": _bool, "nvidia.driver.capabilities": _any, "nvidia.runtime": _bool,
    "nvidia.require.cuda": _any, "nvidia.require.driver": _any,
    "raw.apparmor": _any, "raw.idmap": _any, "raw.lxc": _any, "raw.qemu": _any,
    "raw.qemu.conf": _any, "raw.seccomp": _any,
    "security.devlxd": _bool, "security.devlxd.images": _bool, "security.idmap.base": _uint,
    "security.idmap.isolated": _bool, "security.idmap.size": _uint, "security.nesting": _bool,
    "security.privileged": _bool, "security.protection.delete": _bool,
    "security.protection.shift": _bool, "security.secureboot": _bool, "security.csm": _bool,
    "security.agent.metrics": _bool, "security.syscalls.allow": _any,
    "security.syscalls.deny": _any, "security.syscalls.deny_compat": _bool,
    "security.syscalls.deny_default": _bool, "security.syscalls.blacklist": _any,
    "security.syscalls.blacklist_compat": _bool, "security.syscalls.blacklist_default": _bool,
    "security.syscalls.whitelist": _any,
    "snapshots.schedule": _any, "snapshots.schedule.stopped": _bool,
    "snapshots.pattern": _any, "snapshots.expiry": _any,
    "agent.nic_config": _bool, "user.user-data": _any, "user.vendor-data": _any,
    "user.network-config": _any, "user.meta-data": _any,
}
INSTANCE_PREFIXES: dict[str, Checker] = {
    "user.": _any, "environment.": _any, "image.": _any, "volatile.": _any,
    "limits.kernel.": _any, "limits.hugepages.": _any, "linux.sysctl.": _any,
    "security.syscalls.intercept.": _bool,
}


def check_instance_config(config: dict[str, str]) -> None:
    """Raise :class:`Invalid` with LXD's message for the first bad key or value."""
    for key, value in config.items():
        checker = INSTANCE_KEYS.get(key)
        if checker is None:
            checker = next((c for p, c in INSTANCE_PREFIXES.items() if key.startswith(p)), None)
        if checker is None:
            raise Invalid(f"Unknown configuration key: {key}")
        checker(value)


DEVICE_TYPES = {"none", "nic", "disk", "unix-char", "unix-block", "usb", "gpu", "infiniband",
                "proxy", "unix-hotplug", "tpm", "pci"}


class DeviceNotFound(Invalid):
    """A device names something that does not exist (LXD answers 404 on an update)."""


NIC_TYPES = {"physical", "bridged", "macvlan", "ipvlan", "p2p", "routed", "sriov", "ovn"}
NIC_NEEDS_PARENT = {"physical", "bridged", "macvlan", "ipvlan", "sriov"}
DISK_KEYS = {"type", "path", "source", "pool", "readonly", "size", "size.state", "recursive",
             "propagation", "limits.read", "limits.write", "limits.max", "required", "shift",
             "raw.mount.options", "ceph.cluster_name", "ceph.user_name", "boot.priority",
             "io.cache"}
DISK_BOOLEANS = ("readonly", "required", "recursive", "shift")


def check_devices(devices: dict[str, dict[str, str]],
                  networks: tuple[str, set[str]] | None = None) -> None:
    """LXD's device checks that do not depend on the host (the common ``nic`` and ``disk``
    rules; other types are checked for their type only).

    ``networks`` is ``(project, names of its managed networks)`` to look NIC networks up in
    (without it they are not looked up).
    """
    for name, device in devices.items():
        failed = f"Device validation failed for {go_quote(name)}: "
        loading = f"Failed loading device {go_quote(name)}: "
        dev_type = device.get("type", "")
        if not dev_type:
            raise Invalid(failed + loading + "Missing device type in config")
        if dev_type not in DEVICE_TYPES:
            raise Invalid(failed + loading + "Unsupported device type")
        try:
            if dev_type == "nic":
                _check_nic(device, loading, networks)
            elif dev_type == "disk":
                _check_disk(device)
        except DeviceNotFound as exc:
            raise DeviceNotFound(failed + str(exc)) from None
        except Invalid as exc:
            raise Invalid(failed + str(exc)) from None


def _check_nic(device: dict[str, str], loading: str,
               networks: tuple[str, set[str]] | None) -> None:
    nictype, net = device.get("nictype", ""), device.get("network", "")
    if net:
        for key in ("nictype", "parent"):
            if device.get(key):
                raise Invalid(f"Cannot use {go_quote(key)} property in conjunction with "
                              '"network" property')
        if networks is not None and net not in networks[1]:
            raise DeviceNotFound(f"{loading}Failed to load network {go_quote(net)} for project "
                                 f"{go_quote(networks[0])}: Network not found")
        return
    if nictype not in NIC_TYPES:
        raise Invalid(loading + "Unsupported device type")
    if nictype == "ovn":
        raise DeviceNotFound('Error loading network config for "": Network not found')
    if nictype in NIC_NEEDS_PARENT and not device.get("parent"):
        raise Invalid('Invalid value for device option "parent": Required value')
    mtu = device.get("mtu", "")
    if mtu and not mtu.isdigit():
        raise Invalid(f'Invalid value for device option "mtu": Invalid MTU {go_quote(mtu)}')


def _check_disk(device: dict[str, str]) -> None:
    for key in device:
        if key not in DISK_KEYS:
            raise Invalid(f"Invalid device option {go_quote(key)}")
    for key in DISK_BOOLEANS:
        if key in device:
            try:
                _bool(device[key])
            except Invalid as exc:
                raise Invalid(f"Invalid value for device option {go_quote(key)}: {exc}") \
                    from None
    source, path = device.get("source", ""), device.get("path", "")
    if path == "/":
        if not device.get("pool"):
            raise Invalid('Root disk entry must have a "pool" property set')
        if source:
            raise Invalid('Root disk entry may not have a "source" property set')
        return
    if not source:
        raise Invalid('Disk entry is missing the required "source" or "path" property')
    if not device.get("pool") and not source.startswith("/"):
        raise Invalid("Source path must be absolute for local sources")


def check_name(name: str, what: str) -> None:
    """The checks shared by profiles, networks, pools and projects (no empty, no slash)."""
    if not name:
        raise LXDError(400, "No name provided")
    if "/" in name:
        raise LXDError(400, f"{what} names may not contain slashes")


def as_error(exc: Invalid, code: int) -> LXDError:
    return LXDError(code, str(exc))


def strings(config: dict[str, Any]) -> dict[str, str]:
    return {str(k): "" if v is None else str(v) for k, v in config.items()}
