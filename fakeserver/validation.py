"""Names, instance/profile config keys and devices, checked with LXD's messages."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .gourl import go_quote
from .responses import LXDError


class Invalid(Exception):
    """A validation failure; handlers turn it into the status code LXD uses there."""


def each_item(value: str, check: Callable[[str], None], error: type[Exception] = Invalid,
              label: str = "Item") -> None:
    """LXD's ``validate.IsListOf``: ``check`` each comma-separated item (stripped); an
    ``error`` it raises comes back as ``<label> "<item>": <why>``."""
    for item in value.split(","):
        item = item.strip()
        try:
            check(item)
        except error as exc:
            raise error(f"{label} {go_quote(item)}: {exc}") from None


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


def _keys(checker: Checker, names: str) -> dict[str, Checker]:
    """``checker`` for each of the white-space separated key ``names``."""
    return dict.fromkeys(names.split(), checker)


INSTANCE_KEYS: dict[str, Checker] = {
    **_keys(_bool, """
        boot.autostart limits.memory.swap migration.incremental.memory migration.stateful
        nvidia.runtime security.devlxd security.devlxd.images security.idmap.isolated
        security.nesting security.privileged security.protection.delete
        security.protection.shift security.secureboot security.csm security.agent.metrics
        security.syscalls.deny_compat security.syscalls.deny_default
        security.syscalls.blacklist_compat security.syscalls.blacklist_default
        snapshots.schedule.stopped agent.nic_config
    """),
    **_keys(_int, """
        boot.autostart.delay boot.autostart.priority boot.stop.priority
        boot.host_shutdown_timeout limits.processes
    """),
    **_keys(_any, """
        cloud-init.network-config cloud-init.user-data cloud-init.vendor-data cluster.evacuate
        limits.cpu.allowance limits.memory.enforce linux.kernel_modules
        nvidia.driver.capabilities nvidia.require.cuda nvidia.require.driver raw.apparmor
        raw.idmap raw.lxc raw.qemu raw.qemu.conf raw.seccomp security.syscalls.allow
        security.syscalls.deny security.syscalls.blacklist security.syscalls.whitelist
        snapshots.schedule snapshots.pattern snapshots.expiry user.user-data user.vendor-data
        user.network-config user.meta-data
    """),
    **_keys(_cpu, "limits.cpu"),
    **_keys(_priority, """
        limits.cpu.priority limits.disk.priority limits.memory.swap.priority
        limits.network.priority
    """),
    **_keys(_memory, "limits.memory"),
    **_keys(_uint, """
        migration.incremental.memory.goal migration.incremental.memory.iterations
        security.idmap.base security.idmap.size
    """),
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
        _check_nic_acls(device)
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
    _check_nic_acls(device)


def _check_nic_acls(device: dict[str, str]) -> None:
    """Only OVN NICs take ``security.acls`` in LXD 5.0.2, and this host has no OVN: any other
    NIC refuses the key as an unknown option (after its known options are checked)."""
    if "security.acls" in device:
        raise Invalid('Invalid device option "security.acls"')


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
