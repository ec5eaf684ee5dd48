"""Seeding the fake from an ``lxd init --preseed`` document, as LXD 5.0.2 applies one.

The document is decoded like Go's strict YAML decoder decodes it into ``api.InitPreseed``:
unknown fields and wrongly typed values are errors, a string field keeps the scalar's source
text (``yes`` stays ``"yes"``), and server ``config`` values are formatted with ``%v``.

It is applied in ``lxd init``'s order: ``config``, ``storage_pools``, ``networks`` of the
default project, ``projects``, the other projects' ``networks``, then ``profiles``. A missing
object is created (with the checks of a POST); an existing one is updated the way ``lxd init``
does: a non-empty description replaces the old one, config keys are merged (an empty value
removes the key), a profile's devices are merged key by key, and a storage pool must keep its
driver. If anything fails, the state is left as it was and :class:`PreseedError` says why with
LXD's message.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .state import State

# A freshly installed LXD before ``lxd init``: the default project and an empty default profile.
FRESH: dict[str, Any] = {
    "projects": [{"name": "default", "description": "Default LXD project", "config": {}}],
    "profiles": [{"name": "default", "description": "Default LXD profile"}],
    "unmanaged_networks": [{"name": "lo", "type": "loopback"},
                           {"name": "eth0", "type": "physical"}],
}

# The host that ``scripts/lxd-host`` sets up.
BASELINE: dict[str, Any] = {
    "storage_pools": [{"name": "default", "driver": "dir", "config": {}}],
    "networks": [{"name": "lxdbr0", "type": "bridge",
                  "config": {"ipv4.address": "none", "ipv6.address": "none"}}],
    "profiles": [{"name": "default",
                  "devices": {"root": {"path": "/", "pool": "default", "type": "disk"}}}],
}

# The keys of a preseed (``api.InitPreseed`` in LXD 5.0.2).
KEYS = ("config", "networks", "storage_pools", "profiles", "projects", "cluster")


class PreseedError(ValueError):
    """A preseed document the fake cannot apply; the message is LXD's (one line)."""


# -- decoding: YAML nodes into the Go structs of ``lxd init`` -----------------------------------

STR, BOOL, ANY, MAP_STR, MAP_ANY, DEVICES = (
    "string", "bool", "interface {}", "map[string]string", "map[string]interface {}",
    "map[string]map[string]string")


@dataclass(frozen=True)
class GoStruct:
    name: str
    fields: dict[str, Any]


@dataclass(frozen=True)
class GoList:
    item: Any

    @property
    def name(self) -> str:
        return f"[]{_type_name(self.item)}"


PROFILE = GoStruct("api.ProfilesPost", {"config": MAP_STR, "description": STR,
                                        "devices": DEVICES, "name": STR})
NETWORK = GoStruct("api.InitNetworksProjectPost", {"config": MAP_STR, "description": STR,
                                                   "name": STR, "type": STR, "project": STR})
POOL = GoStruct("api.StoragePoolsPost", {"config": MAP_STR, "description": STR, "name": STR,
                                         "driver": STR})
PROJECT = GoStruct("api.ProjectsPost", {"config": MAP_STR, "description": STR, "name": STR})
MEMBER_CONFIG = GoStruct("api.ClusterMemberConfigKey", {
    "entity": STR, "name": STR, "key": STR, "value": STR, "description": STR})
CLUSTER = GoStruct("api.InitClusterPreseed", {
    "server_name": STR, "enabled": BOOL, "member_config": GoList(MEMBER_CONFIG),
    "cluster_address": STR, "cluster_certificate": STR, "server_address": STR,
    "cluster_password": STR, "cluster_certificate_path": STR, "cluster_token": STR})
PRESEED = GoStruct("api.InitPreseed", {
    "config": MAP_ANY, "networks": GoList(NETWORK), "storage_pools": GoList(POOL),
    "profiles": GoList(PROFILE), "projects": GoList(PROJECT), "cluster": CLUSTER})

_TAGS = {"str": "!!str", "int": "!!int", "float": "!!float", "bool": "!!bool",
         "null": "!!null", "timestamp": "!!timestamp", "binary": "!!binary"}
_CONSTRUCT = yaml.constructor.SafeConstructor()


def _type_name(kind: Any) -> str:
    return kind.name if isinstance(kind, GoStruct | GoList) else str(kind)


def _short_tag(node: Node) -> str:
    if isinstance(node, MappingNode):
        return "!!map"
    if isinstance(node, SequenceNode):
        return "!!seq"
    tag = node.tag.rsplit(":", 1)[-1]
    return _TAGS.get(tag, node.tag)


def _is_null(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == "tag:yaml.org,2002:null"


class _Decoder:
    """Collects Go's ``unmarshal errors`` while turning nodes into plain Python values."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def fail(self, node: Node, kind: Any) -> None:
        what = _short_tag(node)
        if isinstance(node, ScalarNode):
            text = node.value if len(node.value) <= 10 else node.value[:7] + "..."
            what += f" `{text}`"
        self.errors.append(f"line {node.start_mark.line + 1}: cannot unmarshal {what} "
                           f"into {_type_name(kind)}")

    def decode(self, node: Node, kind: Any) -> Any:
        if kind == ANY:
            return _go_text(node)  # interface{} formatted with %v (null is "<nil>")
        if _is_null(node):
            return None
        if isinstance(kind, GoStruct):
            return self.struct(node, kind)
        if isinstance(kind, GoList):
            if not isinstance(node, SequenceNode):
                return self.fail(node, kind)
            return [self.decode(item, kind.item) or {} for item in node.value]
        if kind in (MAP_STR, MAP_ANY, DEVICES):
            return self.mapping(node, kind)
        if kind == STR:
            if not isinstance(node, ScalarNode):
                return self.fail(node, kind)
            return node.value
        if kind == BOOL:
            if not isinstance(node, ScalarNode) or _short_tag(node) != "!!bool":
                return self.fail(node, kind)
            return bool(_CONSTRUCT.construct_yaml_bool(node))
        raise AssertionError(f"no decoder for {kind}")

    def struct(self, node: Node, kind: GoStruct) -> dict[str, Any] | None:
        if not isinstance(node, MappingNode):
            return self.fail(node, kind)
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, ScalarNode) else None
            if key not in kind.fields:
                shown = key if key is not None else _short_tag(key_node)
                self.errors.append(f"line {key_node.start_mark.line + 1}: field {shown} "
                                   f"not found in type {kind.name}")
                continue
            out[key] = self.decode(value_node, kind.fields[key])
        return out

    def mapping(self, node: Node, kind: str) -> dict[str, Any] | None:
        if not isinstance(node, MappingNode):
            return self.fail(node, kind)
        value_kind = {MAP_STR: STR, MAP_ANY: ANY, DEVICES: MAP_STR}[kind]
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                self.fail(key_node, "string")
                continue
            value = self.decode(value_node, value_kind)
            if value is None:
                value = {} if value_kind == MAP_STR else ""
            out[key_node.value] = value
        return out


def _go_float(value: float) -> str:
    """Go's ``%v`` for a float64: the shortest digits, exponent form outside [1e-4, 1e6)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "-0" if math.copysign(1, value) < 0 else "0"
    number = Decimal(repr(value)).normalize()
    sign, digits, exp = number.as_tuple()
    assert isinstance(exp, int)
    exponent = len(digits) - 1 + exp
    if exponent < -4 or exponent >= 6:
        text = "".join(map(str, digits))
        head = text[0] + ("." + text[1:] if len(text) > 1 else "")
        return f"{'-' if sign else ''}{head}e{'-' if exponent < 0 else '+'}{abs(exponent):02d}"
    return format(number, "f")


def _go_text(node: Node) -> str:
    """A scalar of an ``interface{}`` value as LXD formats it with ``%v``."""
    if isinstance(node, MappingNode):
        pairs = sorted(f"{_go_text(k)}:{_go_text(v)}" for k, v in node.value)
        return "map[" + " ".join(pairs) + "]"
    if isinstance(node, SequenceNode):
        return "[" + " ".join(_go_text(item) for item in node.value) + "]"
    tag = _short_tag(node)
    if tag == "!!bool":
        return "true" if _CONSTRUCT.construct_yaml_bool(node) else "false"
    if tag == "!!int":
        return str(_CONSTRUCT.construct_yaml_int(node))
    if tag == "!!float":
        return _go_float(_CONSTRUCT.construct_yaml_float(node))
    if tag == "!!null":
        return "<nil>"
    if tag == "!!str" and isinstance(node, ScalarNode) and node.style is None:
        return _go_plain(node.value)
    return str(node.value)


_GO_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
_GO_BOOLS = {"y": "true", "Y": "true", "n": "false", "N": "false"}


def _go_plain(text: str) -> str:
    """A plain scalar PyYAML left as a string but Go's YAML resolves (``1e6``, ``y``)."""
    if text in _GO_BOOLS:
        return _GO_BOOLS[text]
    if not text or text[0] not in "+-.0123456789":
        return text
    plain = text.replace("_", "")
    try:
        return str(int(plain, 0))
    except ValueError:
        pass
    if _GO_FLOAT.match(plain):
        return _go_float(float(plain))
    return text


def parse(text: str) -> dict[str, Any]:
    """Decode preseed YAML ``text`` into plain values (strings, lists, dicts)."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = exc.problem or exc.context or "invalid YAML"
        raise PreseedError(f"Failed to parse the preseed: yaml: {where}{problem}") from None
    except yaml.YAMLError as exc:
        raise PreseedError(f"Failed to parse the preseed: yaml: {exc}") from None
    if node is None:
        return {}
    decoder = _Decoder()
    data = decoder.decode(node, PRESEED)
    if decoder.errors:
        raise PreseedError("Failed to parse the preseed: yaml: unmarshal errors: "
                           + "; ".join(decoder.errors))
    return data or {}


def load(source: Any) -> dict[str, Any]:
    """A preseed from YAML text, a path to a YAML file, or a dict (checked the same way)."""
    if isinstance(source, dict):
        try:
            text = yaml.safe_dump(source, sort_keys=False)
        except yaml.YAMLError as exc:
            raise PreseedError(f"cannot write the preseed as YAML: {exc}") from None
        return parse(text)
    if isinstance(source, Path) or (isinstance(source, str) and "\n" not in source
                                    and source.strip().endswith((".yaml", ".yml"))):
        try:
            return parse(Path(source).read_text())
        except OSError as exc:
            raise PreseedError(f"cannot read preseed {os.fspath(source)}: "
                               f"{exc.strerror or exc}") from None
    if isinstance(source, str):
        if "\n" not in source and os.path.isfile(source):
            return parse(Path(source).read_text())
        return parse(source)
    if isinstance(source, bytes):
        return parse(source.decode())
    raise PreseedError(f"cannot read a preseed from {type(source).__name__}")


# -- applying ------------------------------------------------------------------------------------

def _merge_config(current: dict[str, str], update: dict[str, Any]) -> dict[str, str]:
    merged = dict(current)
    for key, value in update.items():
        merged[key] = str(value)
    return {k: v for k, v in merged.items() if v != ""}


def _message(exc: Exception) -> str:
    return str(getattr(exc, "message", None) or exc)


class _Applier:
    """Applies one decoded document to ``state``; each step names what failed as LXD does."""

    def __init__(self, state: State) -> None:
        from .api import networks, profiles, projects, server, storage

        self.state = state
        self.seed_config: Callable[..., None] = server.seed_config
        self.seed_projects: Callable[..., None] = projects.seed
        self.seed_pools: Callable[..., None] = storage.seed
        self.seed_unmanaged: Callable[..., None] = networks.seed_unmanaged
        self.seed_networks: Callable[..., None] = networks.seed
        self.seed_profiles: Callable[..., None] = profiles.seed

    def run(self, data: dict[str, Any]) -> None:
        if data.get("config"):
            try:
                self.seed_config(self.state, dict(data["config"]))
            except Exception as exc:  # noqa: BLE001 - any failure is the preseed's
                raise PreseedError(f"Failed to update server configuration: "
                                   f"{_message(exc)}") from exc
        for pool in data.get("storage_pools") or []:
            self.pool(pool)
        if data.get("unmanaged_networks"):
            self.seed_unmanaged(self.state, data["unmanaged_networks"])
        networks = [{**n, "project": n.get("project") or "default"}
                    for n in data.get("networks") or []]
        for network in networks:
            if network["project"] == "default":
                self.network(network)
        for project in data.get("projects") or []:
            self.project(project)
        for network in networks:
            if network["project"] != "default":
                self.network(network)
        for profile in data.get("profiles") or []:
            self.profile(profile)

    def _seed(self, seeder: Callable[..., None], item: dict[str, Any], failure: str) -> None:
        try:
            seeder(self.state, [item])
        except PreseedError:
            raise
        except Exception as exc:  # noqa: BLE001 - LXDError, Invalid, and seeder bugs alike
            raise PreseedError(f"{failure}: {_message(exc)}") from exc

    @staticmethod
    def _updated(current: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
        """``item`` laid over ``current`` as ``lxd init`` does, as a whole new object."""
        out = {**item, "name": current.get("name", item.get("name", ""))}
        out["description"] = item.get("description") or current.get("description", "")
        out["config"] = _merge_config(current.get("config") or {}, item.get("config") or {})
        return out

    @staticmethod
    def _created(item: dict[str, Any]) -> dict[str, Any]:
        out = dict(item)
        out["name"] = str(item.get("name") or "")
        out["description"] = str(item.get("description") or "")
        out["config"] = {k: str(v) for k, v in (item.get("config") or {}).items()
                         if str(v) != ""}
        return out

    def _drop_unset(self, current: dict[str, Any], item: dict[str, Any]) -> None:
        """Remove keys the preseed empties (a seeder may merge rather than replace)."""
        for key, value in (item.get("config") or {}).items():
            if str(value) == "":
                (current.get("config") or {}).pop(key, None)

    def _create_or_update(self, seeder: Callable[..., None], current: dict[str, Any] | None,
                          item: dict[str, Any], what: str) -> None:
        """Create ``item`` (``Failed to create <what>: ...``) or lay it over ``current``."""
        if current is None:
            self._seed(seeder, self._created(item), f"Failed to create {what}")
            return
        self._drop_unset(current, item)
        self._seed(seeder, self._updated(current, item), f"Failed to update {what}")

    def pool(self, item: dict[str, Any]) -> None:
        name = str(item.get("name") or "")
        current = self.state.family("storage_pools").get(name)
        driver = str(item.get("driver") or "")
        if current is not None and current.get("driver") != driver:
            raise PreseedError(f'Storage pool "{name}" is of type "{current.get("driver")}" '
                               f'instead of "{driver}"')
        self._create_or_update(self.seed_pools, current, item, f'storage pool "{name}"')

    def network(self, item: dict[str, Any]) -> None:
        name, project = str(item.get("name") or ""), item["project"]
        owner = self.state.owner("networks", project)
        current = self.state.families["networks"].get(owner, {}).get(name)
        if not self.state.has_project(project):
            raise PreseedError(f'Failed to create local member network "{name}" in project '
                               f'"{project}": Failed to load project "{project}": '
                               "Project not found")
        self._create_or_update(self.seed_networks, current, item,
                               f'local member network "{name}" in project "{project}"')

    def project(self, item: dict[str, Any]) -> None:
        name = str(item.get("name") or "")
        current = self.state.family("projects").get(name)
        self._create_or_update(self.seed_projects, current, item,
                               f'local member project "{name}"')

    def profile(self, item: dict[str, Any]) -> None:
        name = str(item.get("name") or "")
        project = item.get("project") or "default"  # internal seeding only: not in a preseed
        owner = self.state.owner("profiles", project)
        current = self.state.families["profiles"].get(owner, {}).get(name)
        if current is None:
            created = self._created(item)
            created["devices"] = {k: {a: str(b) for a, b in (v or {}).items()}
                                  for k, v in (item.get("devices") or {}).items()}
            self._seed(self.seed_profiles, created, f'Failed to create profile "{name}"')
            return
        self._drop_unset(current, item)
        updated = self._updated(current, item)
        devices = {k: dict(v) for k, v in (current.get("devices") or {}).items()}
        for dev_name, dev in (item.get("devices") or {}).items():
            if dev_name in devices:
                devices[dev_name].update({k: str(v) for k, v in (dev or {}).items()})
            else:
                devices[dev_name] = {k: str(v) for k, v in (dev or {}).items()}
        updated["devices"] = devices
        self._seed(self.seed_profiles, updated, f'Failed to update profile "{name}"')


def apply(state: State, data: dict[str, Any]) -> None:
    """Create or update everything ``data`` names, in ``lxd init``'s order; all or nothing."""
    cluster = data.get("cluster") or {}
    if cluster.get("enabled"):
        raise PreseedError("The fake LXD cannot be clustered: remove 'cluster' from the preseed")
    with state.lock:
        before = state.snapshot()
        try:
            _Applier(state).run(data)
        except BaseException:
            state.restore(before)
            raise
