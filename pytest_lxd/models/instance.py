"""Instances: ``client.instances``, ``client.containers``, ``client.virtual_machines``.

An :class:`Instance` (:class:`Container` and :class:`VirtualMachine` are its typed kinds) has
power actions that refresh ``status`` *and* ``status_code`` after ``wait=True``, ``state()``,
``rename``, ``copy``, ``publish``, snapshots (``instance.snapshots``), files
(``instance.files``), logs (``instance.logs``), the console log, and ``execute()`` over
websockets (see :mod:`pytest_lxd.execute`). The typed managers only ever return their own
kind: LXD filters ``/1.0/containers`` and ``/1.0/virtual-machines`` itself (pylxd listed every
instance under both).
"""

from __future__ import annotations

import copy
import json
import os
import posixpath
import socket
import stat
import threading
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, ClassVar, Generic, Literal, TypeVar, cast, overload

from .. import exceptions
from .. import execute as _exec
from ..operations import handle_async
from .backup import BackupSource, InstanceBackup, InstanceBackupManager, import_backup
from .base import AttributeDict, Manager, Model, etag_of, name_from_url
from .image import Image
from .snapshot import Snapshot, SnapshotManager

if TYPE_CHECKING:
    import requests

    from ..client import APINode, Client
    from ..execute import ExecuteResult, InteractiveSession, StdinPayload
    from .operation import Operation

__all__ = ["Container", "ContainerManager", "FileStat", "Instance", "InstanceFiles",
           "InstanceLogManager", "InstanceManager", "InstanceState", "VirtualMachine",
           "VirtualMachineManager"]

VOLATILE = "volatile."


class InstanceState(AttributeDict):
    """``GET /1.0/instances/<name>/state``; keys also read as attributes."""

    @property
    def status(self) -> str:
        return str(self.get("status", ""))

    @property
    def status_code(self) -> int:
        return int(self.get("status_code") or 0)

    @property
    def pid(self) -> int:
        return int(self.get("pid") or 0)

    @property
    def processes(self) -> int:
        return int(self.get("processes") or 0)

    @property
    def cpu(self) -> dict[str, Any]:
        return dict(self.get("cpu") or {})

    @property
    def memory(self) -> dict[str, Any]:
        return dict(self.get("memory") or {})

    @property
    def disk(self) -> dict[str, Any]:
        return dict(self.get("disk") or {})

    @property
    def network(self) -> dict[str, Any] | None:
        """Interfaces by name (None while the instance is stopped, as LXD sends it)."""
        value = self.get("network")
        return dict(value) if value is not None else None


def _without_volatile(fields: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(fields)
    if isinstance(out.get("config"), dict):
        out["config"] = {k: v for k, v in out["config"].items() if not k.startswith(VOLATILE)}
    return out


class Instance(Model):
    """An instance (container or virtual machine).

    Writable: ``architecture``, ``config``, ``description``, ``devices``, ``ephemeral``,
    ``profiles``. ``save(wait=)`` PUTs them with ``If-Match``; LXD runs the update in the
    background, so ``wait=True`` waits for it and a refused update raises. LXD's PUT replaces
    the config and refuses to lose its ``volatile.*`` idmap keys: a ``volatile.*`` key missing
    from the local ``config`` is sent back unchanged (set it to ``""`` to really remove it).
    """

    name: str
    architecture: str
    config: dict[str, str]
    created_at: str
    description: str
    devices: dict[str, dict[str, str]]
    ephemeral: bool
    expanded_config: dict[str, str]
    expanded_devices: dict[str, dict[str, str]]
    last_used_at: str
    location: str
    profiles: list[str]
    project: str
    stateful: bool
    status: str
    status_code: int
    type: str

    _writable: ClassVar[tuple[str, ...]] = ("architecture", "config", "description", "devices",
                                            "ephemeral", "profiles")
    _embedded_keys: ClassVar[tuple[str, ...]] = ("state", "snapshots", "backups")

    def __init__(self, client: Client, **data: Any) -> None:
        object.__setattr__(self, "_embedded", {})
        super().__init__(client, **data)
        self.snapshots = SnapshotManager(client, self)
        self.backups = InstanceBackupManager(client, self)
        self.files = InstanceFiles(self)
        self.logs = InstanceLogManager(self)

    _embedded: dict[str, Any]

    def _normalize(self, data: dict[str, Any]) -> dict[str, Any]:
        # recursion=2 embeds state, snapshots and backups: kept aside, never shadowing the
        # state() method or the snapshots manager (pylxd's bug).
        for key in self._embedded_keys:
            if key in data:
                self._embedded[key] = data.pop(key)
        return data

    # -- identity --------------------------------------------------------------------------
    def _identity(self) -> tuple[Any, ...]:
        return ("Instance", self.client.project, self._data.get("name"))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Instance):
            return NotImplemented
        return other._identity() == self._identity()

    def __hash__(self) -> int:
        return hash(self._identity())

    @property
    def api(self) -> APINode:
        return self.client.api.instances[self.name]

    @property
    def embedded_state(self) -> InstanceState | None:
        """The state that came with ``all(recursion=2)`` (None otherwise); ``state()`` is
        always fresh."""
        value = self._embedded.get("state")
        return InstanceState(value) if isinstance(value, dict) else None

    @property
    def embedded_snapshots(self) -> list[Snapshot] | None:
        """The snapshots that came with ``all(recursion=2)`` (None otherwise)."""
        value = self._embedded.get("snapshots")
        if not isinstance(value, list):
            return None
        return [Snapshot._from_data(self.client, item, instance=self) for item in value]

    @property
    def embedded_backups(self) -> list[InstanceBackup] | None:
        """The backups that came with ``all(recursion=2)`` or a ``recursion=1`` GET (None
        otherwise, and when there are none: LXD sends ``null``)."""
        value = self._embedded.get("backups")
        if not isinstance(value, list):
            return None
        return [InstanceBackup._from_data(self.client, item, instance=self) for item in value]

    def marshall(self, skip_readonly: bool = True) -> dict[str, Any]:
        body = super().marshall(skip_readonly)
        config = body.get("config")
        if skip_readonly and isinstance(config, dict):
            for key, value in (self._synced.get("config") or {}).items():
                if key.startswith(VOLATILE) and key not in config:
                    config[key] = value
        return body

    def _refresh(self) -> None:
        """Reload after LXD changed the instance itself (a power action), keeping local edits.

        Without local edits this is ``sync()``. With some, the server's read-only fields and
        ``volatile.*`` keys are taken and the edits kept; the new ETag is adopted only if
        nobody else changed the writable fields meanwhile (so ``save()`` still detects that).
        """
        response = self.api.get()
        if not self.dirty:
            self._load(response.json()["metadata"], etag=etag_of(response), loaded=True)
            return
        edits = {name: copy.deepcopy(self._data[name]) for name in self.dirty_fields}
        old_synced, old_etag = copy.deepcopy(self._synced), self._etag
        self._load(response.json()["metadata"], etag=etag_of(response), loaded=True)
        if _without_volatile(old_synced) != _without_volatile(
                {k: v for k, v in self._synced.items() if k in old_synced}):
            self._synced, self._etag = old_synced, old_etag  # moved under us: save() refuses
        server_config = dict(self._data.get("config") or {})
        for name, value in edits.items():
            if name == "config" and isinstance(value, dict):
                value = {**{k: v for k, v in server_config.items() if k.startswith(VOLATILE)},
                         **{k: v for k, v in value.items() if not k.startswith(VOLATILE)}}
            self._data[name] = value

    # -- power --------------------------------------------------------------------------------
    def _set_state(self, action: str, timeout: int, force: bool, wait: bool,
                   stateful: bool) -> Operation | None:
        body: dict[str, Any] = {"action": action, "timeout": timeout, "force": force}
        if stateful:
            body["stateful"] = True
        op = handle_async(self.client, self.api.state.put(json=body), wait)
        if wait:
            try:
                self._refresh()
            except exceptions.NotFound:
                if not (action == "stop" and self._data.get("ephemeral")):
                    raise
                self._data["status"], self._data["status_code"] = "Stopped", 102  # deleted
        return op

    def start(self, timeout: int = 30, force: bool = True, wait: bool = False, *,
              stateful: bool = False) -> Operation | None:
        """Start the instance (``stateful``: from saved state). With ``wait``, waits and
        refreshes the object (``status`` and ``status_code``)."""
        return self._set_state("start", timeout, force, wait, stateful)

    def stop(self, timeout: int = 30, force: bool = True, wait: bool = False, *,
             stateful: bool = False) -> Operation | None:
        """Stop the instance. ``force=True`` (pylxd's default) kills it; ``force=False`` asks
        it to shut down and waits up to ``timeout`` seconds. An ephemeral instance is deleted
        by LXD when it stops."""
        return self._set_state("stop", timeout, force, wait, stateful)

    def restart(self, timeout: int = 30, force: bool = True, wait: bool = False
                ) -> Operation | None:
        return self._set_state("restart", timeout, force, wait, False)

    def freeze(self, timeout: int = 30, force: bool = True, wait: bool = False
               ) -> Operation | None:
        return self._set_state("freeze", timeout, force, wait, False)

    def unfreeze(self, timeout: int = 30, force: bool = True, wait: bool = False
                 ) -> Operation | None:
        return self._set_state("unfreeze", timeout, force, wait, False)

    def state(self) -> InstanceState:
        """``GET /state``: status, status_code, pid, processes, cpu, memory, disk, network."""
        return InstanceState(self.api.state.get().json()["metadata"])

    # -- identity changes, copies, images ------------------------------------------------
    def rename(self, name: str, wait: bool = False) -> Instance:
        """Rename the (stopped) instance; always waits. Returns this object, renamed and
        refreshed (LXD 5.0.2 gives it a new ``volatile.cloud-init.instance-id``); unsaved
        edits are kept."""
        self._rename({"name": name}, wait=True)
        self._refresh()
        return self

    def copy(self, new_name: str, wait: bool = False, *, instance_only: bool = False,
             **config: Any) -> Instance:
        """A local copy (``source: copy``) named ``new_name``, snapshots included unless
        ``instance_only``; ``config`` adds fields to the create request (``config``,
        ``devices``, ``ephemeral``...). The copy gets this instance's ``profiles`` unless
        given (LXD 5.0.2 applies none to a copy, so it would have no root disk). Returns the
        copy, loaded (always waits)."""
        body = {"profiles": list(self.profiles), **config, "name": new_name,
                "source": {"type": "copy", "source": self.name,
                           "instance_only": instance_only}}
        return self.client.instances.create(body, wait=True)

    @overload
    def publish(self, public: bool = False, wait: Literal[False] = False,
                compression_algorithm: str | None = None, *,
                aliases: list[str] | None = None,
                properties: dict[str, str] | None = None) -> Operation: ...

    @overload
    def publish(self, public: bool = False, *, wait: Literal[True],
                compression_algorithm: str | None = None,
                aliases: list[str] | None = None,
                properties: dict[str, str] | None = None) -> Image: ...

    @overload
    def publish(self, public: bool = False, wait: bool = False,
                compression_algorithm: str | None = None, *,
                aliases: list[str] | None = None,
                properties: dict[str, str] | None = None) -> Image | Operation: ...

    def publish(self, public: bool = False, wait: bool = False,
                compression_algorithm: str | None = None, *,
                aliases: list[str] | None = None,
                properties: dict[str, str] | None = None) -> Image | Operation:
        """Make an image of the (stopped) instance: the :class:`Image` with ``wait=True``, else
        the running :class:`Operation` (pylxd returned None)."""
        return publish(self.client, {"type": "instance", "name": self.name}, public, wait,
                       aliases, properties, compression_algorithm)

    def restore_snapshot(self, snapshot_name: str, wait: bool = False,
                         stateful: bool = False) -> Operation | None:
        """Restore a snapshot (``PUT {"restore": name}``); reloads the object after a wait."""
        body: dict[str, Any] = {"restore": snapshot_name}
        if stateful:
            body["stateful"] = True
        op = handle_async(self.client, self.api.put(json=body), wait)
        if wait:
            self.sync()
        return op

    # -- console and logs ------------------------------------------------------------------
    def console_log(self) -> str:
        """The console log (LXD 5.0.2 serves it only while the container is stopped)."""
        response = self.api.console.get(is_api=False)
        return response.content.decode("utf-8", errors="replace")

    get_console_log = console_log

    def clear_console_log(self) -> None:
        self.api.console.delete()

    # -- exec ------------------------------------------------------------------------------
    @overload
    def execute(self, commands: list[str], environment: Mapping[str, str] | None = None,
                encoding: str | None = None, decode: Literal[True] = True,
                stdin_payload: StdinPayload | None = None, stdin_encoding: str = "utf-8",
                stdout_handler: Callable[[str], Any] | None = None,
                stderr_handler: Callable[[str], Any] | None = None,
                stop_event: threading.Event | None = None, user: int | None = None,
                group: int | None = None, cwd: str | None = None,
                timeout: float | None = None) -> ExecuteResult[str]: ...

    @overload
    def execute(self, commands: list[str], environment: Mapping[str, str] | None = None,
                encoding: str | None = None, *, decode: Literal[False],
                stdin_payload: StdinPayload | None = None, stdin_encoding: str = "utf-8",
                stdout_handler: Callable[[bytes], Any] | None = None,
                stderr_handler: Callable[[bytes], Any] | None = None,
                stop_event: threading.Event | None = None, user: int | None = None,
                group: int | None = None, cwd: str | None = None,
                timeout: float | None = None) -> ExecuteResult[bytes]: ...

    @overload
    def execute(self, commands: list[str], environment: Mapping[str, str] | None = None,
                encoding: str | None = None, decode: bool = True,
                stdin_payload: StdinPayload | None = None, stdin_encoding: str = "utf-8",
                stdout_handler: Callable[[Any], Any] | None = None,
                stderr_handler: Callable[[Any], Any] | None = None,
                stop_event: threading.Event | None = None, user: int | None = None,
                group: int | None = None, cwd: str | None = None,
                timeout: float | None = None) -> ExecuteResult[Any]: ...

    def execute(self, commands: list[str], environment: Mapping[str, str] | None = None,
                encoding: str | None = None, decode: bool = True,
                stdin_payload: StdinPayload | None = None, stdin_encoding: str = "utf-8",
                stdout_handler: Callable[[Any], Any] | None = None,
                stderr_handler: Callable[[Any], Any] | None = None,
                stop_event: threading.Event | None = None, user: int | None = None,
                group: int | None = None, cwd: str | None = None,
                timeout: float | None = None) -> ExecuteResult[Any]:
        """Run ``commands`` (a list) in the running instance and return
        ``(exit_code, stdout, stderr)``.

        ``stdin_payload``: text (encoded with ``stdin_encoding``), bytes, a file or an
        iterable of chunks, followed by end of file. Output is decoded with ``encoding``
        (UTF-8 by default, undecodable bytes replaced) unless ``decode=False``; a handler
        gets each chunk as it arrives (and the result's stream is then empty). ``user``,
        ``group``, ``cwd``, ``environment`` as in LXD. ``timeout`` seconds: the command is
        killed and :class:`~pytest_lxd.execute.ExecuteTimeout` raised; setting
        ``stop_event`` kills it and returns normally (exit code 137). A missing or
        non-executable command returns 127/126 (pylxd raised). Other failures raise
        :class:`~pytest_lxd.exceptions.OperationFailed`.
        """
        return _exec.execute(self, commands, environment, encoding, decode, stdin_payload,
                             stdin_encoding, stdout_handler, stderr_handler, stop_event, user,
                             group, cwd, timeout)

    def raw_interactive_execute(self, commands: list[str],
                                environment: Mapping[str, str] | None = None,
                                user: int | None = None, group: int | None = None,
                                cwd: str | None = None) -> dict[str, str]:
        """pylxd's low-level interactive exec: websocket paths to connect yourself
        (see :func:`pytest_lxd.execute.raw_interactive_execute`)."""
        return _exec.raw_interactive_execute(self, commands, environment, user, group, cwd)

    def interactive_execute(self, commands: list[str],
                            environment: Mapping[str, str] | None = None,
                            user: int | None = None, group: int | None = None,
                            cwd: str | None = None, width: int = 80,
                            height: int = 24) -> InteractiveSession:
        """Run ``commands`` on a pty and return a connected
        :class:`~pytest_lxd.execute.InteractiveSession` (``send``, ``recv``, ``read_until``,
        ``resize``, ``signal``, ``wait``)."""
        return _exec.interactive_execute(self, commands, environment, user, group, cwd,
                                         width, height)

    def sftp(self, timeout: float | None = 30.0) -> socket.socket:
        """A connection to the instance's SFTP server (``GET .../sftp`` with ``Upgrade:
        sftp``, LXD's ``instance_sftp`` API): after the ``101`` it carries raw SFTP version 3,
        for any SFTP client that can use a socket. On HTTPS it is an ``ssl.SSLSocket`` made
        with the client's certificate and TLS rules. Refusals raise
        :class:`~pytest_lxd.exceptions.LXDAPIException` (:class:`NotFound` for a missing
        instance). The caller closes it."""
        return _sftp_connect(self.client, self.api.path + "/sftp", timeout)


def _sftp_connect(client: Client, path: str, timeout: float | None) -> socket.socket:
    transport = client.transport
    endpoint = transport.endpoint
    if transport.project is not None:
        path += "?" + urllib.parse.urlencode({"project": transport.project})
    sock: socket.socket | None = None
    try:
        if endpoint.kind == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            try:
                sock.connect(str(endpoint.socket_path))
            except BaseException:
                sock.close()
                raise
        else:
            host = str(endpoint.host)
            sock = socket.create_connection((host, int(endpoint.port or 0)), timeout=timeout)
            if transport.tls is not None:
                try:
                    sock = transport.tls.ssl_context(transport.cert).wrap_socket(
                        sock, server_hostname=host)
                    transport.tls.check_peer(sock)
                except BaseException:
                    sock.close()
                    raise
        host_header = "lxd" if endpoint.kind == "unix" else endpoint.url.split("://", 1)[1]
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host_header}\r\n"
                     "Connection: Upgrade\r\nUpgrade: sftp\r\n\r\n".encode())
        status, headers, body = _read_upgrade_reply(sock)
    except OSError as exc:
        if sock is not None:
            sock.close()
        raise exceptions.ClientConnectionFailed(
            f"cannot connect (sftp) to LXD at {endpoint}: {exc}") from None
    if status == 101:
        return sock
    sock.close()
    message = body.decode("utf-8", "replace").strip()
    try:
        data = json.loads(body)
        if isinstance(data, dict) and data.get("error"):
            message = str(data["error"])
    except ValueError:
        pass
    cls = {403: exceptions.Forbidden, 404: exceptions.NotFound}.get(
        status, exceptions.LXDAPIException)
    raise cls(None, message or f"sftp refused: HTTP {status}", error_code=status)


def _read_upgrade_reply(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """The reply's status, headers and (for a refusal) body; a 101's head is read byte by
    byte so that nothing of the SFTP stream after it is consumed."""
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        byte = sock.recv(1)
        if not byte:
            raise OSError(f"connection closed before the reply: {head!r}")
        head += byte
        if len(head) > 65536:
            raise OSError("reply head too long")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    headers = {}
    for line in lines[1:]:
        key, sep, value = line.partition(":")
        if sep:
            headers[key.strip().lower()] = value.strip()
    if status == 101:
        return status, headers, b""
    body = b""
    length = int(headers.get("content-length", "0") or 0)
    while len(body) < length:
        chunk = sock.recv(length - len(body))
        if not chunk:
            break
        body += chunk
    return status, headers, body


class Container(Instance):
    """A container (``type == "container"``)."""


class VirtualMachine(Instance):
    """A virtual machine (``type == "virtual-machine"``)."""


_KINDS: dict[str, type[Instance]] = {"container": Container, "virtual-machine": VirtualMachine}


def publish(client: Client, source: dict[str, Any], public: bool, wait: bool,
            aliases: list[str] | None, properties: dict[str, str] | None,
            compression_algorithm: str | None) -> Image | Operation:
    """``POST /1.0/images`` from an instance or snapshot ``source``."""
    body: dict[str, Any] = {"source": source, "public": public}
    if aliases:
        body["aliases"] = [{"name": a, "description": ""} if isinstance(a, str) else a
                           for a in aliases]
    if properties:
        body["properties"] = properties
    if compression_algorithm:
        body["compression_algorithm"] = compression_algorithm
    response = client.api.images.post(json=body)
    op = handle_async(client, response, wait)
    if op is not None and not wait:
        return op
    result = (op.metadata or {}) if op is not None else response.json()["metadata"]
    return client.images.get(str(result["fingerprint"]))


# -- files ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileStat:
    """What LXD says about a path: ``type`` (``file``/``directory``/``symlink``), ``mode``
    (permission bits), ``uid``, ``gid`` and ``modified`` (LXD's text, when sent)."""

    type: str
    mode: int
    uid: int
    gid: int
    modified: str | None = None

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> FileStat:
        return cls(type=headers.get("X-LXD-type", "file"),
                   mode=int(headers.get("X-LXD-mode", "0") or "0", 8),
                   uid=int(headers.get("X-LXD-uid", "0") or 0),
                   gid=int(headers.get("X-LXD-gid", "0") or 0),
                   modified=headers.get("X-LXD-modified"))


def _mode_header(mode: int | str) -> str:
    if isinstance(mode, bool):
        raise TypeError("mode must be an int (0o644) or an octal string ('0644')")
    if isinstance(mode, int):
        return "0" + format(mode & 0o7777, "o")
    if not isinstance(mode, str):
        raise TypeError("mode must be an int (0o644) or an octal string ('0644')")
    return mode if mode.startswith("0") else "0" + mode


def _headers(mode: int | str | None, uid: int | None, gid: int | None,
             kind: str | None = None) -> dict[str, str]:
    headers: dict[str, str] = {}
    if mode is not None:
        headers["X-LXD-mode"] = _mode_header(mode)
    if uid is not None:
        headers["X-LXD-uid"] = str(int(uid))
    if gid is not None:
        headers["X-LXD-gid"] = str(int(gid))
    if kind is not None:
        headers["X-LXD-type"] = kind
    return headers


class InstanceFiles:
    """``instance.files``: the instance's filesystem through ``/files?path=``.

    Paths are the instance's (absolute; LXD resolves relative ones from ``/``). Missing paths
    raise :class:`~pytest_lxd.exceptions.NotFound`.
    """

    def __init__(self, instance: Instance) -> None:
        self.instance = instance

    @property
    def _node(self) -> APINode:
        return self.instance.api.files

    def _get(self, path: str, stream: bool = False) -> requests.Response:
        return self._node.get(params={"path": path}, is_api=False, stream=stream)

    def get(self, filepath: str) -> bytes:
        """The content of a file (a symlink: its target). A directory raises
        ``IsADirectoryError`` (pylxd returned LXD's JSON envelope): use :meth:`listdir`."""
        response = self._get(filepath)
        if response.headers.get("X-LXD-type") == "directory":
            raise IsADirectoryError(f"{filepath} is a directory in instance "
                                    f"{self.instance.name}; use files.listdir()")
        return response.content

    def listdir(self, path: str) -> list[str]:
        """The names in a directory."""
        response = self._get(path)
        if response.headers.get("X-LXD-type") != "directory":
            raise NotADirectoryError(f"{path} is not a directory in instance "
                                     f"{self.instance.name}")
        return [str(name) for name in response.json().get("metadata") or []]

    def stat(self, path: str) -> FileStat:
        """Type, mode, owner and modification time of ``path`` (a HEAD when LXD has
        ``instance_file_head``)."""
        if self.instance.client.has_api_extension("instance_file_head"):
            response = self._node.head(params={"path": path})
        else:
            response = self._get(path, stream=True)
            response.close()
        return FileStat.from_headers(response.headers)

    def exists(self, path: str) -> bool:
        try:
            self.stat(path)
        except exceptions.NotFound:
            return False
        return True

    def put(self, filepath: str, data: bytes | str | IO[bytes], mode: int | str | None = None,
            uid: int | None = None, gid: int | None = None, *, append: bool = False) -> None:
        """Write a file (text is UTF-8 encoded; a binary file object is streamed).

        ``mode`` as ``0o644`` or ``"0644"`` (default ``0644``; LXD keeps an existing file's
        mode), ``uid``/``gid`` in the instance; ``append=True`` appends
        (``X-LXD-write: append``).
        """
        headers = _headers(mode, uid, gid, "file")
        if append:
            headers["X-LXD-write"] = "append"
        body = data.encode() if isinstance(data, str) else data
        self._node.post(params={"path": filepath}, data=body, headers=headers)

    def mk_dir(self, path: str, mode: int | str | None = None, uid: int | None = None,
               gid: int | None = None) -> None:
        """Create a directory (its parent must exist)."""
        self._node.post(params={"path": path}, data=b"",
                        headers=_headers(mode, uid, gid, "directory"))

    def symlink(self, path: str, target: str, uid: int | None = None,
                gid: int | None = None) -> None:
        """Create a symbolic link ``path`` → ``target`` (LXD 5.0.2 stores a relative
        ``target`` as an absolute one, from the link's directory)."""
        self._node.post(params={"path": path}, data=target.encode(),
                        headers=_headers(None, uid, gid, "symlink"))

    def delete_available(self) -> bool:
        """Whether LXD can delete files (the ``file_delete`` extension)."""
        return self.instance.client.has_api_extension("file_delete")

    def delete(self, filepath: str) -> None:
        """Delete a file, a symlink or an empty directory."""
        self.instance.client.assert_has_api_extension("file_delete")
        self._node.delete(params={"path": filepath})

    def recursive_put(self, src: str | os.PathLike[str], dst: str,
                      mode: int | str | bool | None = None, uid: int | None = None,
                      gid: int | None = None) -> None:
        """Copy the local directory ``src`` to ``dst`` in the instance (created if needed).

        Symlinks are recreated as symlinks (pylxd followed them into regular files); LXD
        makes a relative target absolute, from the link's directory.
        ``mode=True`` keeps each local entry's permission bits; an int/str applies to all.
        """
        root = os.path.normpath(os.fspath(src))
        if not os.path.isdir(root):
            raise NotADirectoryError(f"{root} is not a directory")

        def mode_of(local: str) -> int | str | None:
            if isinstance(mode, bool):
                return stat.S_IMODE(os.lstat(local).st_mode) if mode else None
            return mode

        self.mk_dir(dst, mode_of(root), uid, gid)  # LXD accepts an existing directory
        for current, dirs, files in os.walk(root):
            rel = os.path.relpath(current, root)
            remote_dir = dst if rel == "." else posixpath.join(dst, *rel.split(os.sep))
            for name in sorted(dirs):
                local, remote = os.path.join(current, name), posixpath.join(remote_dir, name)
                if os.path.islink(local):
                    self.symlink(remote, os.readlink(local), uid, gid)
                else:
                    self.mk_dir(remote, mode_of(local), uid, gid)
            for name in sorted(files):
                local, remote = os.path.join(current, name), posixpath.join(remote_dir, name)
                if os.path.islink(local):
                    self.symlink(remote, os.readlink(local), uid, gid)
                else:
                    with open(local, "rb") as handle:
                        self.put(remote, handle, mode_of(local), uid, gid)

    def recursive_get(self, remote_path: str, local_path: str | os.PathLike[str]) -> None:
        """Copy ``remote_path`` (a directory, file or symlink) to ``local_path``, keeping
        modes; symlinks are recreated. Entry names that could escape ``local_path`` are
        skipped."""
        response = self._get(remote_path)
        info = FileStat.from_headers(response.headers)
        local = os.fspath(local_path)
        if info.type == "directory":
            os.makedirs(local, exist_ok=True)
            for name in response.json().get("metadata") or []:
                if not name or name in (".", "..") or "/" in name or "\\" in name:
                    continue
                self.recursive_get(posixpath.join(remote_path, name), os.path.join(local, name))
            os.chmod(local, info.mode or 0o755)
        elif info.type == "symlink":
            os.symlink(response.content.decode(), local)
        else:
            fd = os.open(local, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, info.mode or 0o644)
            with os.fdopen(fd, "wb") as handle:
                handle.write(response.content)
            os.chmod(local, info.mode or 0o644)


class InstanceLogManager:
    """``instance.logs``: LXD's log files for the instance (``lxc.log``, ``exec_*``...)."""

    def __init__(self, instance: Instance) -> None:
        self.instance = instance

    def all(self) -> list[str]:
        """The log file names."""
        urls = self.instance.api.logs.get().json()["metadata"] or []
        return [name_from_url(url) for url in urls]

    def get(self, name: str) -> bytes:
        return self.instance.api.logs[name].get(is_api=False).content

    def delete(self, name: str) -> None:
        """Delete a log file (LXD refuses ``lxc.log`` and ``lxc.conf``)."""
        self.instance.api.logs[name].delete()


# -- managers ---------------------------------------------------------------------------------

I = TypeVar("I", bound=Instance)  # noqa: E741


class _InstanceManagerBase(Manager, Generic[I]):
    """The methods of every instance manager; ``I`` is the kind it returns."""

    _collection: ClassVar[str] = "instances"
    _type: ClassVar[str | None] = None
    _sparse: ClassVar[type[Instance]] = Instance

    @property
    def _node(self) -> APINode:
        return self.client.api[self._collection]

    def _make(self, data: dict[str, Any], etag: str | None) -> I:
        obj = _KINDS.get(str(data.get("type", "")), self._sparse)(self.client)
        obj._load(data, etag=etag, loaded=True)
        return cast(I, obj)

    def all(self, recursion: int = 0, fields: list[str] | None = None) -> list[I]:
        """The instances: sparse (names only; loaded on first use) with ``recursion=0``,
        loaded with 1; 2 adds ``embedded_state``/``embedded_snapshots`` (``fields``: only
        those state fields, with ``instances_state_selective_recursion``)."""
        if fields is not None:
            self.client.assert_has_api_extension("instances_state_selective_recursion")
            items = self._node.get(params={"recursion": f"2;fields={','.join(fields)}"})
        elif recursion:
            items = self._node.get(params={"recursion": recursion})
        else:
            urls = self._node.get().json()["metadata"] or []
            return [cast(I, self._sparse(self.client, name=name_from_url(url)))
                    for url in urls]
        return [self._make(item, None) for item in items.json()["metadata"] or []]

    def get(self, name: str) -> I:
        """The instance ``name`` (``NotFound`` if it is not of this manager's kind)."""
        response = self._node[name].get()
        return self._make(response.json()["metadata"], etag_of(response))

    def exists(self, name: str) -> bool:
        return self._exists(self.get, name)

    def create(self, config: dict[str, Any], wait: bool = False,
               target: str | None = None) -> I:
        """Create an instance from pylxd's ``config`` dict (``name``, ``source``,
        ``profiles``, ``config``, ``devices``, ``ephemeral``, ``type``...) and return it,
        loaded. Always waits for LXD (``wait`` is accepted for pylxd's sake); a failure
        raises :class:`~pytest_lxd.exceptions.OperationFailed`. Without a ``name`` LXD picks
        one. ``target``: the cluster member."""
        body = dict(config)
        if self._type is not None:
            body.setdefault("type", self._type)
        response = self._node.post(json=body, target=target)
        op = handle_async(self.client, response, True)
        name = body.get("name")
        if not name:
            urls = ((op.resources or {}) if op is not None else {}).get("instances") or []
            if not urls:
                raise exceptions.LXDAPIException(None, "LXD did not say which instance it "
                                                 "created")
            name = name_from_url(urls[0])
        return self.get(str(name))

    def create_from_backup(self, data: BackupSource, name: str | None = None,
                           pool: str | None = None, wait: bool = True) -> I:
        """Import a backup tarball (``lxc import``): ``data`` is its bytes, a binary file
        object or a path; ``name`` and ``pool`` override the backup's own. Returns the
        instance, loaded; always waits (a failed restore raises
        :class:`~pytest_lxd.exceptions.OperationFailed`)."""
        op = import_backup(self.client, self.client.api.instances, data,
                           {"X-LXD-name": name or "", "X-LXD-pool": pool or ""})
        urls = (op.resources or {}).get("instances") or []
        if not urls:
            raise exceptions.LXDAPIException(None, "LXD did not say which instance it "
                                             "restored")
        return self.get(name_from_url(urls[0]))


class InstanceManager(_InstanceManagerBase[Instance]):
    """``client.instances``: every kind; ``get()``/``all(recursion>=1)`` return
    :class:`Container` or :class:`VirtualMachine` objects (both are :class:`Instance`)."""


class ContainerManager(_InstanceManagerBase[Container]):
    """``client.containers``: containers only (``create`` adds ``"type": "container"``)."""

    _collection: ClassVar[str] = "containers"
    _type: ClassVar[str | None] = "container"
    _sparse: ClassVar[type[Instance]] = Container


class VirtualMachineManager(_InstanceManagerBase[VirtualMachine]):
    """``client.virtual_machines``: virtual machines only."""

    _collection: ClassVar[str] = "virtual-machines"
    _type: ClassVar[str | None] = "virtual-machine"
    _sparse: ClassVar[type[Instance]] = VirtualMachine
