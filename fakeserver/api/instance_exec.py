"""``POST /1.0/instances/{name}/exec``: commands in an instance, as LXD 5.0.2 runs them.

``wait-for-websocket: true`` gives a ``websocket`` operation whose metadata holds the command,
the environment LXD computed (``PATH``, ``HOME``/``USER`` for root, ``LANG``, the instance's
``environment.*`` keys and the request's own), the fd secrets and ``interactive``. The client
connects each fd at ``/1.0/operations/{id}/websocket?secret=`` (see
:mod:`fakeserver.api.operations`, which calls :meth:`ExecSession.connect`); the command starts
once fds 0, 1 and 2 are connected (interactive: 0 and control), or the operation fails after
5 s with ``Timed out waiting for websockets to connect``.

Framing, as observed on LXD 5.0.2: a ``keepalive`` ping first (and every 10 s), output as
binary frames, and at the end an empty text frame on fds 1 and 2, then the connection is
dropped without a close frame (fds 0 and control are dropped too). Stdin ends with an empty
text frame or a close; closing control kills the command (SIGKILL, return 137), and so does
data sent on fd 1 or dropping it while control is not connected (data on fd 2 is ignored).
Control takes ``{"command": "signal", "signal": N}`` (return 128 + N) and ``window-resize``.
Interactive (a pty): output and echo on fd 0 with ``\\r\\n``, ``^C`` sends SIGINT, an empty
text frame hangs up (SIGHUP); after the end the empty frame goes out on fd 0,
control is dropped and the operation stays Running until the client closes fd 0.

The exit status lands in the metadata as ``return``; 127 ends the operation in Failure
``Command not found`` and 126 in ``Command not executable``. ``wait-for-websocket: false`` gives
a ``task`` operation with no stdin; with ``record-output`` the output goes to the instance's
``logs/exec_<id>.stdout|stderr`` and the metadata gets ``output``. A lifecycle event
``instance-exec`` (context ``command``, no requestor) marks the start.

Commands run on their own thread (not an operation worker) through :mod:`fakeserver.execution`.
Stopping the instance kills them (return 137, as LXD); a reset or a stopped server ends them
too. Divergence: freezing the instance does not pause them.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import threading
import time
import traceback
from typing import Any

from werkzeug.wrappers import Request, Response

from .. import responses, websocket
from ..app import Ctx
from ..events import Listener
from ..execution import DEFAULT_PATH, Handlers, Instance, Process, StreamReader
from ..operations import FAILURE, SUCCESS, Operation
from ..responses import LXDError
from ..schema import BOOL, INT_, LIST_STR, MAP_STR, STR, GoType, Struct, decode_value, unmarshal
from ..vfs import FS, FSError
from . import instances

UINT32 = GoType("uint32", "int")  # decoded as an integer, range-checked below
EXEC_POST = Struct("InstanceExecPost", command=LIST_STR, environment=MAP_STR,
                   interactive=BOOL, wait__for__websocket=BOOL, record__output=BOOL,
                   width=INT_, height=INT_, user=UINT32, group=UINT32, cwd=STR)
CONNECT_TIMEOUT = 5.0
FLUSH_TIMEOUT = 2.0
READ_GRACE = 0.05  # seconds the command waits for its readers (see ExecSession._await_readers)
_FALLBACK_HANDLERS = Handlers()
_NO_EVENTS = frozenset({"exec-session"})  # a listener that only hears the hub close


def handlers_of(server: Any) -> Handlers:
    found = getattr(server, "exec_handlers", None)
    return found if isinstance(found, Handlers) else _FALLBACK_HANDLERS


def _environment(config: dict[str, str], sent: dict[str, str], user: int,
                 has_snap: bool) -> dict[str, str]:
    """LXD's exec environment: instance ``environment.*``, the request's, then defaults."""
    env = {key[len("environment."):]: value for key, value in config.items()
           if key.startswith("environment.")}
    env.update(sent)
    if "PATH" not in env:
        env["PATH"] = DEFAULT_PATH + (":/snap/bin" if has_snap else "")
    if user == 0:
        env.setdefault("HOME", "/root")
        env.setdefault("USER", "root")
    env.setdefault("LANG", "C.UTF-8")
    return dict(sorted(env.items()))


def _working_directory(fs: FS, wanted: str) -> str:
    """Where the command starts: ``wanted`` (physically resolved), or ``/`` if that fails."""
    try:
        found = fs.stat(wanted if wanted.startswith("/") else "/" + wanted)
    except FSError:
        return "/"
    return found.path if found.entry is not None and found.entry.type == "directory" else "/"


def _uint32(body: dict[str, Any], name: str) -> int:
    value = int(body[name])
    if not 0 <= value < (1 << 32):
        raise LXDError(400, f"json: cannot unmarshal number {value} into Go struct field "
                            f"InstanceExecPost.{name} of type uint32")
    return value


# -- gorilla's handshake errors, as LXD's exec endpoint words them -----------------------------


def _tokens(value: str) -> list[str]:
    return [part.strip().lower() for part in value.split(",") if part.strip()]


def websocket_fd(ctx: Ctx, fds: dict[str, str]) -> tuple[str, Response | None]:
    """Which of an operation's ``fds`` a ``/websocket?secret=`` request is for (LXD's 500s
    for a missing or unknown secret), and gorilla's refusal of a bad upgrade, if any."""
    secret = ctx.request.args.get("secret", "")
    if not secret:
        raise LXDError(500, "missing secret")
    fd = next((key for key, value in fds.items() if value == secret), None)
    if fd is None:
        raise LXDError(500, "permission denied")
    return fd, handshake_error(ctx.request)


def handshake_error(request: Request) -> Response | None:
    """Gorilla's refusal of a bad upgrade, followed by the LXD error LXD writes after it."""
    headers = request.headers
    problem, status = "", 400
    if "upgrade" not in _tokens(headers.get("Connection", "")):
        problem = ("websocket: the client is not using the websocket protocol: 'upgrade' "
                   "token not found in 'Connection' header")
    elif "websocket" not in _tokens(headers.get("Upgrade", "")):
        problem = ("websocket: the client is not using the websocket protocol: 'websocket' "
                   "token not found in 'Upgrade' header")
    elif request.method != "GET":
        problem, status = ("websocket: the client is not using the websocket protocol: "
                           "request method is not GET"), 405
    elif "13" not in _tokens(headers.get("Sec-WebSocket-Version", "")):
        problem = "websocket: unsupported version: 13 not found in 'Sec-Websocket-Version' header"
    else:
        key = headers.get("Sec-WebSocket-Key", "").strip()
        try:
            valid = len(base64.b64decode(key, validate=True)) == 16
        except (binascii.Error, ValueError):
            valid = False
        if not valid:
            problem = ("websocket: not a websocket handshake: 'Sec-WebSocket-Key' header must "
                       "be Base64 encoded value of 16-byte length")
    if not problem:
        return None
    text = "Bad Request" if status == 400 else "Method Not Allowed"
    envelope = responses.dumps({"type": "error", "status": "", "status_code": 0,
                                "operation": "", "error_code": 500, "error": problem,
                                "metadata": None})
    resp = Response(f"{text}\n{envelope}\n\n", status=status,
                    content_type="text/plain; charset=utf-8")
    resp.headers["Sec-Websocket-Version"] = "13"
    resp.headers["X-Content-Type-Options"] = "nosniff"
    return resp


# -- one exec ---------------------------------------------------------------------------------


class ExecSession:
    """An exec operation: its websockets, its process, and the thread that runs it."""

    def __init__(self, ctx: Ctx, record: dict[str, Any], body: dict[str, Any],
                 env: dict[str, str], cwd: str, user: int, group: int) -> None:
        self.events = ctx.events
        self.ops = ctx.ops
        self.project = ctx.project
        self.name = record["name"]
        self.record = record
        self.lock = threading.Lock()
        self.argv = list(body["command"])
        self.environment = env
        self.interactive = bool(body["interactive"])
        self.websockets = bool(body["wait-for-websocket"])
        self.record_output = bool(body["record-output"]) and not self.websockets
        self.width, self.height = body["width"], body["height"]
        keys = ("0", "control") if self.interactive else ("0", "1", "2", "control")
        self.fds = {key: secrets.token_hex(32) for key in keys} if self.websockets else {}
        self.required = {"0", "control"} if self.interactive else {"0", "1", "2"}
        self.conns: dict[str, websocket.WebSocket] = {}
        self.claimed: set[str] = set()  # fds someone connected to (registered or about to be)
        self.strays: list[websocket.WebSocket] = []
        self.connected = threading.Event()
        self.changed = threading.Event()
        self.finished = False
        self.hungup = False  # interactive: the client ended stdin (empty text frame)
        self.op: Operation | None = None
        self.log_names: tuple[str, str] | None = None
        process_env = {"PATH": env.get("PATH", DEFAULT_PATH), "container": "lxc", **env}
        self.process = Process(Instance(record, ctx.state.lock, self.project),
                               handlers_of(ctx.server), self.argv, process_env, cwd,
                               uid=user, gid=group, stdout=self._out(1), stderr=self._out(2))
        self.process.interactive = self.interactive  # type: ignore[attr-defined]
        self.process.gone = self._gone
        self.stdin = StreamReader(self.process)
        if self.websockets:
            self.process.stdin = self.stdin
        self.state_lock = ctx.state.lock
        self.listener: Listener | None = None

    # -- metadata --------------------------------------------------------------------------
    def metadata(self) -> dict[str, Any] | None:
        if not self.websockets:
            return None
        return {"command": self.argv, "environment": self.environment,
                "fds": dict(sorted(self.fds.items())), "interactive": self.interactive}

    def start(self, op: Operation) -> None:
        self.op = op
        self.listener = self.events.subscribe(_NO_EVENTS, None, notify=self._hub_closed)
        if self.record_output:
            self.log_names = (f"exec_{op.id}.stdout", f"exec_{op.id}.stderr")
            with self.state_lock:
                logs = self.record.setdefault("logs", {})
                for log in self.log_names:
                    logs[log] = b""
        threading.Thread(target=self.main, name=f"lxd-fake-exec-{op.id[:8]}",
                         daemon=True).start()

    def _gone(self) -> bool:
        """The command must die: its operation ended (a reset) or the instance stopped."""
        return self.op is None or self.op.final or self.record.get("status") == "Stopped"

    def _hub_closed(self) -> None:
        """The server is stopping: end the command and its websockets now."""
        if self.finished:
            return
        self.process.kill(9)
        for ws in self._all_sockets():
            ws.abort()
        self.changed.set()

    def _all_sockets(self) -> list[websocket.WebSocket]:
        with self.lock:
            return [*self.conns.values(), *self.strays]

    # -- output ----------------------------------------------------------------------------
    def _out(self, stream: int) -> Any:
        def write(data: bytes) -> None:
            if not data:
                return
            if self.websockets:
                if self.interactive:
                    target = self.conns.get("0")
                    data = data.replace(b"\n", b"\r\n")
                else:
                    target = self.conns.get(str(stream))
                if target is not None:
                    target.send_binary(data)
            elif self.log_names is not None:
                name = self.log_names[stream - 1]
                with self.state_lock:
                    logs = self.record.setdefault("logs", {})
                    logs[name] = bytes(logs.get(name, b"")) + data
        return write

    # -- websockets ------------------------------------------------------------------------
    def connect(self, ctx: Ctx) -> Response:
        """Serve ``/1.0/operations/{id}/websocket?secret=`` for one of our fds."""
        fd, refusal = websocket_fd(ctx, self.fds)
        if refusal is not None:
            return refusal
        with self.lock:
            stray = fd in self.claimed or self.finished
            self.claimed.add(fd)
        if stray:
            # LXD upgrades, then finds the fd taken and just leaves the connection open.
            ws = websocket.accept(ctx, ping_interval=None)
            with self.lock:
                self.strays.append(ws)
            ws.run(on_message=lambda _ws, _data: None)
            return websocket.hijacked()
        ws = websocket.accept(ctx)
        registered: list[bool] = []

        def register(sock: websocket.WebSocket) -> None:
            # Runs in the websocket's loop after its first keepalive ping went out, so that
            # output never overtakes the ping.
            if registered:
                return
            registered.append(True)
            with self.lock:
                if fd in self.conns or self.finished:
                    self.strays.append(sock)
                    return
                self.conns[fd] = sock
                if self.required <= set(self.conns):
                    self.connected.set()
            self.changed.set()

        ws.wake()
        try:
            ws.run(on_message=self._receiver(fd), on_wake=register)
        finally:
            if registered and self.conns.get(fd) is ws:
                self._closed(fd)
        return websocket.hijacked()

    def _receiver(self, fd: str) -> Any:
        def receive(ws: websocket.WebSocket, data: websocket.Message) -> None:
            if fd == "control":
                self._control(data)
            elif fd == "0":
                if self.interactive:
                    self._pty_input(ws, data)
                elif data == "":
                    self.stdin.close()
                else:
                    self.stdin.feed(data.encode() if isinstance(data, str) else data)
            elif fd == "1":
                self._stdout_lost()
            # data sent on fd 2 is ignored
        return receive

    def _stdout_lost(self) -> None:
        """A client writing on (or dropping) stdout: LXD 5.0.2 kills the command, unless
        control is connected."""
        with self.lock:
            control = "control" in self.conns
        if not control and not self.process.ended.is_set():
            self.process.kill(9)

    def _closed(self, fd: str) -> None:
        if fd == "1":
            self._stdout_lost()
        elif fd == "0":
            self.stdin.close()
            if self.interactive:
                self.process.kill(1)
        elif fd == "control" and not self.process.ended.is_set():
            self.process.kill(9)
        self.changed.set()

    def _control(self, data: websocket.Message) -> None:
        try:
            message = json.loads(data)
        except (TypeError, ValueError):
            return
        if not isinstance(message, dict):
            return
        if message.get("command") == "signal":
            try:
                self.process.kill(int(message.get("signal", 0)))
            except (TypeError, ValueError):
                return
        elif message.get("command") == "window-resize":
            args = message.get("args") or {}
            if isinstance(args, dict):
                self.width = args.get("width", self.width)
                self.height = args.get("height", self.height)

    def _pty_input(self, ws: websocket.WebSocket, data: websocket.Message) -> None:
        """A terminal's line discipline: echo, ``\\r`` -> ``\\n``, ^C, ^D and erase."""
        if data == "":
            self.hungup = True
            self.stdin.close()
            self.process.kill(1)
            return
        raw = data.encode() if isinstance(data, str) else data
        line = getattr(self, "_line", bytearray())
        echo = bytearray()
        for byte in raw:
            char = bytes([byte])
            if char == b"\x03":
                echo += b"^C"
                line.clear()
                self.process.kill(2)
            elif char == b"\x04":
                if line:
                    self.stdin.feed(bytes(line))
                    line.clear()
                else:
                    self.stdin.close()
            elif char in (b"\r", b"\n"):
                echo += b"\r\n"
                self.stdin.feed(bytes(line) + b"\n")
                line.clear()
            elif char in (b"\x7f", b"\x08"):
                if line:
                    line.pop()
                    echo += b"\b \b"
            else:
                line += char
                echo += char
        self._line = line
        if echo:
            ws.send_binary(bytes(echo))

    # -- the run ---------------------------------------------------------------------------
    def main(self) -> None:
        op = self.op
        assert op is not None
        try:
            self._run(op)
        except Exception as exc:  # noqa: BLE001 - a bug in the fake must not hang the client
            self.ops.handler_errors.append(traceback.format_exc())
            self.ops.finish(op, FAILURE, f"Internal error in the fake: {exc}")
        finally:
            with self.lock:
                self.finished = True
            for ws in self._all_sockets():
                ws.hangup()
            if self.listener is not None:
                self.events.unsubscribe(self.listener)

    def _run(self, op: Operation) -> None:
        if self.websockets and not self._wait(lambda: self.connected.is_set(), CONNECT_TIMEOUT):
            if not op.final:
                self.ops.finish(op, FAILURE, "Timed out waiting for websockets to connect")
            return
        if op.final:
            return
        self._await_readers()
        if not self.argv:
            self.ops.finish(op, FAILURE, "Failed to retrieve PID of executing child process")
            return
        self.events.lifecycle("instance-exec", instances.instance_url(self.name, self.project),
                              self.project, {"command": list(self.argv)}, None)
        code = self.process.run()
        self._end_streams()
        if op.final:
            return
        if self.websockets:
            metadata: dict[str, Any] = {**(self.metadata() or {}), "return": code}
        elif self.log_names is not None:
            base = f"/1.0/instances/{self.name}/logs/"
            metadata = {"output": {"1": base + self.log_names[0], "2": base + self.log_names[1]},
                        "return": code}
        else:
            metadata = {"return": code}
        op.update_metadata(metadata)
        if code == 127:
            self.ops.finish(op, FAILURE, "Command not found")
        elif code == 126:
            self.ops.finish(op, FAILURE, "Command not executable")
        else:
            self.ops.finish(op, SUCCESS)

    def _await_readers(self) -> None:
        """Give the output websockets' clients up to :data:`READ_GRACE` to answer the first
        keepalive ping (that is, to have read their ``101``) before the command runs.

        LXD's fork and exec of the command leaves clients that time; without it, output can
        reach a client in the same read as the rest of its handshake, and pylxd's ws4py then
        keeps only the last frame of that read (``stderr`` came back empty now and then).
        """
        with self.lock:
            keys = ("0",) if self.interactive else ("1", "2")
            readers = [self.conns[key] for key in keys if key in self.conns]
        deadline = time.monotonic() + READ_GRACE
        for ws in readers:
            ws.ponged.wait(max(0.0, deadline - time.monotonic()))

    def _wait(self, done: Any, timeout: float | None) -> bool:
        """Wait until ``done()`` (True), the timeout, or the operation's end (False)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        op = self.op
        while not done():
            if op is None or op.final:
                return False
            left = 0.25 if deadline is None else min(0.25, deadline - time.monotonic())
            if left <= 0:
                return False
            self.changed.wait(left)
            self.changed.clear()
        return True

    def _end_streams(self) -> None:
        """After the command: the end-of-stream barriers and hang-ups LXD sends."""
        with self.lock:
            conns = dict(self.conns)
        if not self.websockets:
            return
        if self.interactive:
            fd0 = conns.get("0")
            if fd0 is not None:
                fd0.send_text("")
            control = conns.get("control")
            if control is not None:
                control.hangup()
            if fd0 is not None:
                if self.hungup:
                    fd0.hangup()
                else:  # the operation ends when the client closes fd 0
                    self._wait(lambda: fd0.finished.is_set(), None)
            return
        for key in ("1", "2"):
            if key in conns:
                conns[key].send_text("")
                conns[key].hangup()
        for key in ("0", "control"):
            if key in conns:
                conns[key].hangup()
        deadline = time.monotonic() + FLUSH_TIMEOUT
        for key in ("1", "2"):
            if key in conns:
                conns[key].hung_up.wait(max(0.0, deadline - time.monotonic()))


@instances.routes("/<name>/exec", "POST")
def exec_post(ctx: Ctx, name: str, prefix: str) -> Response:
    """LXD checks the type and the name, reads the body with ``json.Unmarshal`` (the whole
    body: trailing bytes refused), then looks the instance up."""
    kind = instances.check_request(ctx, name, prefix)
    body = decode_value(unmarshal(ctx.raw_body()), EXEC_POST)
    user, group = _uint32(body, "user"), _uint32(body, "group")
    with ctx.state.lock:
        record = instances.find(ctx, name, kind)
        if record.get("status") not in ("Running", "Frozen"):
            raise LXDError(400, "Instance is not running")
        if record.get("status") == "Frozen":
            raise LXDError(400, "Instance is frozen")
        config, _ = instances.expanded(ctx.state, ctx.project, record)
        fs = FS(record)
        env = _environment(config, body["environment"], user, fs.exists("/snap"))
        cwd = _working_directory(fs, body["cwd"] or env.get("HOME", "/"))
        session = ExecSession(ctx, record, body, env, cwd, user, group)
    op = ctx.ops.create("Executing command", None, project=ctx.project,
                        # LXD 5.0.2 names the instance without ?project= here
                        resources=instances.op_resources(name),
                        cls="websocket" if session.websockets else "task",
                        metadata=session.metadata(),
                        connect=session.connect if session.websockets else None)
    session.start(op)
    return ctx.async_reply(op)
