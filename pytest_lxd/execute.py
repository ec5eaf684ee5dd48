"""Running commands in instances: LXD's exec websockets through the ``websockets`` sync client.

:func:`execute` (``instance.execute(...)``) posts ``/exec`` with ``wait-for-websocket``, then
opens the control channel and fds 0, 1 and 2 in the order ``lxc`` uses. Stdin is sent as binary
frames followed by an empty text frame (end of file); stdout and stderr are read on their own
threads until each ends (LXD's empty text frame, or the connection dropping); the exit code is
the operation's ``metadata.return``. A ``timeout`` or a set ``stop_event`` kills the command
with SIGKILL through the control channel. TLS websockets are verified exactly like the
client's HTTPS requests (same CA bundle, pin or ``verify=False``).

For interactive use (a pty), :func:`interactive_execute` returns an :class:`InteractiveSession`
(``send``, ``recv``, ``resize``, ``signal``, ``wait``); :func:`raw_interactive_execute` is
pylxd's lower-level call returning the websocket paths and secrets for the caller to connect.
"""

from __future__ import annotations

import codecs
import json
import signal as signal_module
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import IO, TYPE_CHECKING, Any, AnyStr, Generic, NamedTuple

from . import exceptions
from .operations import _UNSET, wait_operation

if TYPE_CHECKING:
    from .client import Client
    from .models.instance import Instance
    from .models.operation import Operation

__all__ = ["ExecuteResult", "ExecuteTimeout", "InteractiveSession", "StdinPayload",
           "execute", "interactive_execute", "raw_interactive_execute"]

#: What ``stdin_payload`` may be: text, bytes, a file (binary or text), or an iterable of
#: chunks (bytes or text).
StdinPayload = str | bytes | bytearray | memoryview | IO[bytes] | IO[str] | Iterable[bytes | str]

CHUNK = 1 << 16
#: Seconds given to a killed command to end its output streams and operation.
KILL_GRACE = 10.0
#: Seconds a websocket close handshake may take (LXD often just drops the connection).
CLOSE_TIMEOUT = 2.0


class ExecuteResult(NamedTuple, Generic[AnyStr]):
    """What :meth:`~pytest_lxd.models.instance.Instance.execute` returns (pylxd's
    ``_InstanceExecuteResult``): ``exit_code, stdout, stderr = instance.execute([...])``.

    ``stdout``/``stderr`` are ``str`` (decoded) or ``bytes`` (``decode=False``); they are
    empty when a handler received the output instead.
    """

    exit_code: int
    stdout: AnyStr
    stderr: AnyStr


#: pylxd's name for the result type.
_InstanceExecuteResult = ExecuteResult


class ExecuteTimeout(exceptions.OperationTimeout):
    """The command outlived ``execute(timeout=)`` and was killed (SIGKILL).

    ``result`` holds the exit code LXD reported (usually 137) and the output read so far;
    ``operation`` is the exec operation.
    """

    result: ExecuteResult[Any]


def _payload_chunks(payload: StdinPayload | None, encoding: str) -> Iterable[bytes]:
    def encoded(item: bytes | str | bytearray | memoryview) -> bytes:
        return item.encode(encoding) if isinstance(item, str) else bytes(item)

    if payload is None:
        return
    if isinstance(payload, (str, bytes, bytearray, memoryview)):
        data = encoded(payload)
        for start in range(0, len(data), CHUNK):
            yield data[start:start + CHUNK]
        return
    read = getattr(payload, "read", None)
    if callable(read):
        while True:
            chunk = read(CHUNK)
            if not chunk:
                return
            yield encoded(chunk)
    for item in payload:
        if item:
            yield encoded(item)


class _Output(threading.Thread):
    """Reads one output websocket until it ends; buffers or hands chunks to a handler."""

    def __init__(self, conn: Any, name: str, handler: Callable[[Any], Any] | None,
                 decode: bool, encoding: str) -> None:
        super().__init__(name=f"pytest-lxd-exec-{name}", daemon=True)
        self.conn = conn
        self.handler = handler
        self.decode = decode
        self.decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
        self.chunks: list[bytes] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            while True:
                try:
                    message = self.conn.recv()
                except ConnectionClosed:
                    break
                if isinstance(message, str):
                    if message == "":
                        break  # LXD's end-of-stream barrier
                    message = message.encode()
                self._deliver(message)
            if self.handler is not None and self.decode:
                rest = self.decoder.decode(b"", final=True)
                if rest:
                    self._call(rest)
        except Exception as exc:  # a broken socket, a decoder failure: report it, end
            self.error = self.error or exc

    def _deliver(self, data: bytes) -> None:
        if self.handler is None:
            self.chunks.append(data)
        elif self.decode:
            text = self.decoder.decode(data)
            if text:
                self._call(text)
        else:
            self._call(data)

    def _call(self, value: Any) -> None:
        if self.error is not None or self.handler is None:
            return
        try:
            self.handler(value)
        except Exception as exc:  # re-raised in the caller's thread
            self.error = exc


class _Input(threading.Thread):
    """Sends the stdin payload, then the end-of-file frame (an empty text frame)."""

    def __init__(self, conn: Any, payload: StdinPayload | None, encoding: str) -> None:
        super().__init__(name="pytest-lxd-exec-stdin", daemon=True)
        self.conn = conn
        self.payload = payload
        self.encoding = encoding
        self.error: BaseException | None = None

    def run(self) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            for chunk in _payload_chunks(self.payload, self.encoding):
                self.conn.send(chunk)
            self.conn.send("")
        except (ConnectionClosed, OSError):
            pass  # the command ended without reading all of its input
        except Exception as exc:  # a bad payload (e.g. an iterable of ints)
            self.error = exc


def _exec_path(client: Client, op_id: str) -> str:
    return f"/{client.version}/operations/{op_id}/websocket"


def _connect(client: Client, op_id: str, secret: str) -> Any:
    conn = client.transport.websocket(_exec_path(client, op_id), {"secret": secret},
                                      use_project=False)
    conn.close_timeout = CLOSE_TIMEOUT
    return conn


def _close(conns: Iterable[Any]) -> None:
    for conn in conns:
        try:
            conn.close()
        except Exception:  # noqa: S110 - closing a broken connection is best effort
            pass


def _post_exec(instance: Instance, commands: list[str], environment: Mapping[str, str] | None,
               interactive: bool, user: int | None, group: int | None, cwd: str | None,
               width: int | None = None, height: int | None = None,
               ) -> tuple[str, dict[str, str]]:
    if isinstance(commands, (str, bytes)):  # type: ignore[unreachable]  # untyped callers
        raise TypeError("commands must be a list of strings, e.g. ['sh', '-c', 'echo hi']")
    body: dict[str, Any] = {"command": [str(arg) for arg in commands],
                            "environment": dict(environment or {}),
                            "wait-for-websocket": True, "interactive": interactive}
    for key, value in (("user", user), ("group", group), ("cwd", cwd), ("width", width),
                       ("height", height)):
        if value is not None:
            body[key] = value
    data = instance.api.exec.post(json=body).json()
    metadata = data.get("metadata") or {}
    fds = dict((metadata.get("metadata") or {}).get("fds") or {})
    if not fds:
        raise exceptions.LXDAPIException(None, "LXD sent no websocket secrets for exec")
    return str(metadata["id"]), fds


def _send_signal(control: Any, signum: int) -> None:
    from websockets.exceptions import ConnectionClosed

    try:
        control.send(json.dumps({"command": "signal", "signal": int(signum)}))
    except (ConnectionClosed, OSError):
        pass


def _join(threads: Iterable[threading.Thread], deadline: float | None,
          stop_event: threading.Event | None) -> bool:
    """Wait for every thread; False if the deadline passed or ``stop_event`` was set first."""
    for thread in threads:
        while thread.is_alive():
            step = None if deadline is None else deadline - time.monotonic()
            if step is not None and step <= 0:
                return False
            if stop_event is not None:
                if stop_event.is_set():
                    return False
                step = 0.05 if step is None else min(step, 0.05)
            thread.join(step)
    return True


def _final(client: Client, op_id: str, timeout: float | None = _UNSET) -> Operation:
    """The finished operation (``timeout``: the wait's bound; default the client's)."""
    from .models.operation import Operation

    data, _ = wait_operation(client, op_id, timeout)
    return Operation(client, data)


def _exit_code(op: Operation, commands: list[str]) -> int:
    metadata = op.metadata or {}
    if "return" in metadata:
        # LXD 5.0.2 fails the operation for 126/127 ("Command not found"/"not executable")
        # but still reports the code: it is the command's result, not an API error.
        return int(metadata["return"])
    raise exceptions.OperationFailed(
        None, op.err or f"exec of {commands!r} ended {op.status or 'without an exit code'}",
        error_code=op.status_code, operation=op)


def execute(instance: Instance, commands: list[str],
            environment: Mapping[str, str] | None = None, encoding: str | None = None,
            decode: bool = True, stdin_payload: StdinPayload | None = None,
            stdin_encoding: str = "utf-8",
            stdout_handler: Callable[[Any], Any] | None = None,
            stderr_handler: Callable[[Any], Any] | None = None,
            stop_event: threading.Event | None = None, user: int | None = None,
            group: int | None = None, cwd: str | None = None,
            timeout: float | None = None) -> ExecuteResult[Any]:
    """Run ``commands`` in ``instance``: see
    :meth:`~pytest_lxd.models.instance.Instance.execute`."""
    client = instance.client
    op_id, fds = _post_exec(instance, commands, environment, False, user, group, cwd)
    deadline = None if timeout is None else time.monotonic() + timeout
    conns: list[Any] = []
    try:
        for key in ("control", "0", "1", "2"):
            conns.append(_connect(client, op_id, fds[key]))
        control, stdin, stdout, stderr = conns
        out_encoding = encoding or "utf-8"
        readers = [_Output(stdout, "stdout", stdout_handler, decode, out_encoding),
                   _Output(stderr, "stderr", stderr_handler, decode, out_encoding)]
        writer = _Input(stdin, stdin_payload, stdin_encoding)
        for thread in (*readers, writer):
            thread.start()
        finished = _join(readers, deadline, stop_event)
        killed = False
        if not finished:
            _send_signal(control, signal_module.SIGKILL)
            killed = True
            if not _join(readers, time.monotonic() + KILL_GRACE, None):
                _close(conns[1:])
        if killed:
            op = _final(client, op_id, KILL_GRACE)
        elif deadline is not None:
            op = _final(client, op_id, max(1.0, deadline - time.monotonic() + KILL_GRACE))
        else:
            op = _final(client, op_id)
        writer.join(KILL_GRACE)
        for error in (readers[0].error, readers[1].error, writer.error):
            if error is not None:
                raise error
        result = _result(op, commands, readers, decode, out_encoding)
        timed_out = killed and not (stop_event is not None and stop_event.is_set())
        if timed_out:
            error = ExecuteTimeout(None, f"command {commands!r} did not finish within "
                                   f"{timeout} s and was killed", error_code=op.status_code,
                                   operation=op)
            error.result = result
            raise error
        return result
    finally:
        _close(reversed(conns))  # control last: closing it early kills the command


def _result(op: Operation, commands: list[str], readers: list[_Output], decode: bool,
            encoding: str) -> ExecuteResult[Any]:
    exit_code = _exit_code(op, commands)
    outputs: list[Any] = []
    for reader in readers:
        data = b"".join(reader.chunks)
        outputs.append(data.decode(encoding, errors="replace") if decode else data)
    return ExecuteResult(exit_code, outputs[0], outputs[1])


def raw_interactive_execute(instance: Instance, commands: list[str],
                            environment: Mapping[str, str] | None = None,
                            user: int | None = None, group: int | None = None,
                            cwd: str | None = None, width: int | None = None,
                            height: int | None = None) -> dict[str, str]:
    """Start ``commands`` on a pty and return pylxd's dict of websocket paths.

    ``{"ws": "/1.0/operations/<id>/websocket?secret=<fd 0>", "control": "...?secret=<control>",
    "operation": "/1.0/operations/<id>"}``: the caller connects ``ws`` (input and output) and
    ``control`` itself, within LXD's 5 s window, on :attr:`Client.websocket_url`.
    """
    op_id, fds = _post_exec(instance, commands, environment, True, user, group, cwd,
                            width, height)
    path = _exec_path(instance.client, op_id)
    return {"ws": f"{path}?secret={fds['0']}", "control": f"{path}?secret={fds['control']}",
            "operation": f"/{instance.client.version}/operations/{op_id}"}


class InteractiveSession:
    """A command running on a pty (:meth:`Instance.interactive_execute`).

    Input and output share fd 0 (the pty echoes, lines end in ``\\r\\n``); the control
    channel carries :meth:`resize` and :meth:`signal`. :meth:`wait` drains the output into
    :attr:`output` and returns the exit code. Use it as a context manager: leaving kills the
    command if it is still running.
    """

    def __init__(self, client: Client, operation_id: str, conn: Any, control: Any) -> None:
        self.client = client
        self.operation_id = operation_id
        self._conn = conn
        self._control = control
        self.output = b""
        self.exit_code: int | None = None
        self._ended = False
        self._pending = b""  # read past a read_until() marker, not yet returned

    def send(self, data: bytes | str) -> None:
        """Type ``data`` (text is sent as UTF-8)."""
        self._conn.send(data.encode() if isinstance(data, str) else bytes(data))

    def hangup(self) -> None:
        """End of input (an empty text frame; the pty hangs up)."""
        self._conn.send("")

    def recv(self, timeout: float | None = None) -> bytes:
        """The next output chunk; ``b""`` once the command's output has ended.

        Raises ``TimeoutError`` if nothing arrives within ``timeout`` seconds.
        """
        from websockets.exceptions import ConnectionClosed

        if self._pending:
            chunk, self._pending = self._pending, b""
            return chunk
        if self._ended:
            return b""
        try:
            message = self._conn.recv(timeout=timeout)
        except ConnectionClosed:
            self._ended = True
            return b""
        if isinstance(message, str):
            if message == "":
                self._ended = True
                return b""
            return message.encode()
        return bytes(message)

    def read_until(self, marker: bytes | str, timeout: float = 10.0) -> bytes:
        """Output up to and including ``marker`` (what follows stays for the next read).

        Raises ``TimeoutError`` after ``timeout`` seconds, ``EOFError`` if the output ends
        first (what was read then stays readable too).
        """
        want = marker.encode() if isinstance(marker, str) else marker
        deadline = time.monotonic() + timeout
        seen = b""
        while want not in seen:
            remaining = deadline - time.monotonic()
            chunk = b"" if remaining <= 0 else self._recv_quietly(remaining)
            if not chunk:
                self._pending = seen + self._pending
                if self._ended:
                    raise EOFError(f"the output ended before {marker!r}; got {seen!r}")
                raise TimeoutError(f"{marker!r} not seen within {timeout} s; got {seen!r}")
            seen += chunk
        end = seen.index(want) + len(want)
        seen, self._pending = seen[:end], seen[end:] + self._pending
        self.output += seen
        return seen

    def _recv_quietly(self, timeout: float) -> bytes:
        try:
            return self.recv(timeout)
        except TimeoutError:
            return b""

    def resize(self, width: int, height: int) -> None:
        """Tell the pty its new size."""
        self._control.send(json.dumps({"command": "window-resize",
                                       "args": {"width": str(width), "height": str(height)}}))

    def signal(self, signum: int) -> None:
        """Send a signal to the command (e.g. ``signal.SIGINT``)."""
        _send_signal(self._control, signum)

    def wait(self, timeout: float | None = None) -> int:
        """Read the rest of the output into :attr:`output`, then return the exit code.

        LXD keeps the operation running until fd 0 is closed, so this closes it once the
        output has ended. ``TimeoutError`` after ``timeout`` seconds (the command runs on).
        """
        if self.exit_code is not None:
            return self.exit_code
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._ended:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise TimeoutError(f"the command did not end within {timeout} s")
            self.output += self.recv(remaining)
        _close([self._conn])
        if deadline is None:
            op = _final(self.client, self.operation_id)
        else:
            op = _final(self.client, self.operation_id, max(1.0, deadline - time.monotonic()))
        _close([self._control])
        self.exit_code = _exit_code(op, [])
        return self.exit_code

    def close(self) -> None:
        """Kill the command if it still runs, and close the websockets."""
        if self.exit_code is None and not self._ended:
            _send_signal(self._control, signal_module.SIGKILL)
        _close([self._conn, self._control])

    def __enter__(self) -> InteractiveSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def interactive_execute(instance: Instance, commands: list[str],
                        environment: Mapping[str, str] | None = None,
                        user: int | None = None, group: int | None = None,
                        cwd: str | None = None, width: int = 80,
                        height: int = 24) -> InteractiveSession:
    """Start ``commands`` on a pty and connect to it (control first, then fd 0)."""
    op_id, fds = _post_exec(instance, commands, environment, True, user, group, cwd,
                            width, height)
    client = instance.client
    control = _connect(client, op_id, fds["control"])
    try:
        conn = _connect(client, op_id, fds["0"])
    except BaseException:
        _close([control])
        raise
    return InteractiveSession(client, op_id, conn, control)
