"""What ``exec`` runs inside a fake instance: busybox-like built-ins, a small ``sh``, and handlers.

A command is found the way a shell finds it in the instance's filesystem: a name with a ``/``
is a path (from the working directory), a bare name is searched along ``PATH``. What the path
leads to decides what runs:

* a symlink to (or a copy of) ``busybox`` runs the applet named by ``argv[0]`` (``/bin/ls``
  -> ``ls``; ``busybox ls`` works too), among the built-ins below;
* a file starting with ``#!`` runs its interpreter (``#!/bin/sh`` scripts run in the fake sh);
* a missing path exits 127 (LXD: ``Command not found``), a directory or a file without an
  execute bit 126 (``Command not executable``).

Built-ins: ``echo``, ``cat``, ``true``, ``false``, ``ls`` (``-1 -a -A -l -d``), ``mkdir`` (``-p
-m``), ``rm`` (``-r -R -f``), ``touch``, ``env`` (``-i -u``, ``NAME=value``, a command),
``pwd``, ``hostname``, ``sleep`` (ends early when the command is killed), ``test``/``[``,
``grep`` (``-c -v -i -q -n -x -w -E -F -l``), ``head``, ``tail``, ``wc``, ``sort``, ``tee``,
``cp``, ``mv``, ``ln``, ``chmod``, ``readlink``, ``basename``, ``dirname``, ``id``,
``whoami``, ``seq``, ``printf``, ``busybox`` and ``sh``/``ash``.

The shell runs ``sh -c "<script>"``, ``sh <file>`` and commands read from stdin (on a
terminal with ash's greeting and prompt): ``;``, ``&&``, ``||``, ``!``, pipes (buffered, one
stage after the other), newlines, comments, quoting, ``$VAR ${VAR} ${VAR:-x} ${#VAR} $? $# $@
$* $0..$9``, ``$(...)`` and backquotes, ``$((...))``, ``*?[`` globs, assignments (``A=1``,
``A=1 cmd``), redirections (``> >> < 2> 2>&1 >&2 /dev/null``), here-documents (``<<``,
``<<-``, quoted delimiters), ``if/elif/else``, ``while``/``until``, ``for``, ``{ }`` and
``( )``, and the builtins ``cd exit export unset read set shift eval exec . :``. Anything else
(``case``, functions, background jobs ``&``) fails with ``sh: lxd-fake: unsupported shell
syntax: ...`` and exit 2.
Messages are busybox 1.35's (``sh: nope: not found``, ``cat: can't open '/x': No such file or
directory``).

**Handlers.** A test runs anything else (``apt-get``, ``systemctl``...) by registering a
handler on the server::

    def apt_get(argv, env, cwd, stdin, instance):
        instance.write_file("/usr/bin/hello", b"#!/bin/sh\\necho hello\\n", mode=0o755)
        return 0, "installed\\n", ""

    fake.exec_handler("apt-get", apt_get)          # or @fake.exec_handler("apt-get")

A handler matches ``argv[0]`` or its basename, wherever it is called from (a direct exec,
``sh -c``, ``env``, a script), before any lookup in the filesystem. It gets the argument list,
the environment, the working directory, all of stdin (read to end of file) and an
:class:`Instance` (name, project, config, and ``read_file``/``write_file``/``exists``/``mkdir``/
``remove`` on its filesystem), and returns ``(exit code, stdout, stderr)`` (``str`` or
``bytes``). A handler may instead be a generator: what it yields is streamed as it comes
(``bytes``/``str`` to stdout, or ``(2, data)`` for stderr) and what it returns is the exit code.
Its exceptions end the command with exit 1 and the traceback's last line on stderr.

Known differences from a real instance: built-ins run even when the image has no binary for
them (a missing name that is a built-in still runs); no permission checks (every command acts
as root over the files, though files it creates get the exec's ``user``/``group``); ``ls``
prints one name per line even on a terminal and its ``-l`` sizes, link counts and ``total``
are approximations; pipes run one stage after the other.
"""

from __future__ import annotations

import fnmatch
import functools
import inspect
import posixpath
import re
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .vfs import FS, FSError

BANNER = "BusyBox v1.35.0 (Debian 1:1.35.0-4+deb12u1+b1) multi-call binary.\n\n"
USAGE = {  # the help an applet prints on a bad option or missing operands
    "mkdir": "Usage: mkdir [-m MODE] [-p] DIRECTORY...\n\nCreate DIRECTORY\n\n"
             "\t-m MODE\tMode\n\t-p\tNo error if exists; make parent directories as needed\n",
    "rm": "Usage: rm [-irf] FILE...\n\nRemove (unlink) FILEs\n\n\t-i\tAlways prompt before "
          "removing\n\t-f\tNever prompt\n\t-R,-r\tRecurse\n",
    "sleep": "Usage: sleep [N]...\n\nPause for a time equal to the total of the args given, "
             "where each arg can\nhave an optional suffix of (s)econds, (m)inutes, (h)ours, "
             "or (d)ays\n",
    "touch": "Usage: touch [-c] [-d DATE] [-t DATE] [-r FILE] FILE...\n\nUpdate mtime of "
             "FILEs\n\n\t-c\tDon't create files\n\t-d DT\tDate/time to use\n\t-t DT\tDate/time"
             " to use\n\t-r FILE\tUse FILE's date/time\n",
}
BRIEF_USAGE = {  # what the fake prints only for missing operands (a bad option: the banner)
    "basename": "Usage: basename FILE [SUFFIX]\n\nStrip directory path and SUFFIX from FILE\n",
    "chmod": "Usage: chmod [-Rcvf] MODE[,MODE]... FILE...\n",
    "cp": "Usage: cp [-arPLHpfinlsTu] SOURCE DEST\n",
    "dirname": "Usage: dirname FILENAME\n\nStrip non-directory suffix from FILENAME\n",
    "grep": "Usage: grep [-HhnlLoqvsrRiwFE] [-m N] [-A|B|C N] { PATTERN | -e PATTERN... | "
            "-f FILE... } [FILE]...\n",
    "ln": "Usage: ln [-sfnbtv] [-S SUF] TARGET... LINK|DIR\n",
    "mv": "Usage: mv [-fin] SOURCE DEST\n",
    "printf": "Usage: printf FORMAT [ARG]...\n",
    "seq": "Usage: seq [-w] [-s SEP] [FIRST [INC]] LAST\n",
}
NOT_FOUND, NOT_EXECUTABLE = 127, 126
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
IGNORED_SIGNALS = {0, 17, 18, 19, 20, 21, 22, 23, 28}  # CHLD CONT STOP TSTP TTIN TTOU URG WINCH


class Killed(Exception):
    """The command was killed by ``signal``: it ends with exit status 128 + signal."""

    def __init__(self, signal: int) -> None:
        super().__init__(signal)
        self.signal = signal


# -- the instance as a handler sees it --------------------------------------------------------


class Instance:
    """The instance a command runs in: its record and filesystem, under the state lock."""

    def __init__(self, record: dict[str, Any], lock: Any, project: str = "default") -> None:
        self.record = record
        self.lock = lock
        self.project = project

    @property
    def name(self) -> str:
        return str(self.record["name"])

    @property
    def config(self) -> dict[str, str]:
        return dict(self.record.get("config") or {})

    def fs(self) -> FS:
        """The filesystem (hold :attr:`lock` while using it)."""
        return FS(self.record)

    def read_file(self, path: str) -> bytes:
        with self.lock:
            return self.fs().read(path)

    def write_file(self, path: str, data: bytes | str, mode: int = 0o644, uid: int = 0,
                   gid: int = 0, append: bool = False) -> None:
        raw = data.encode() if isinstance(data, str) else bytes(data)
        with self.lock:
            self.fs().write(path, raw, append=append, mode=mode, uid=uid, gid=gid)

    def exists(self, path: str) -> bool:
        with self.lock:
            return self.fs().exists(path)

    def mkdir(self, path: str, parents: bool = True, mode: int = 0o755) -> None:
        with self.lock:
            fs = self.fs()
            if parents:
                fs.makedirs(path, mode=mode)
            else:
                fs.mkdir(path, mode=mode)

    def remove(self, path: str, recursive: bool = False) -> None:
        with self.lock:
            fs = self.fs()
            if recursive:
                fs.remove_tree(path)
            else:
                fs.remove(path)


# -- handlers ---------------------------------------------------------------------------------

Handler = Callable[..., Any]


class Handlers:
    """Per-server registry of test handlers, by command name (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._handlers: dict[str, Handler] = {}

    def register(self, name: str, fn: Handler | None = None) -> Any:
        """Register ``fn`` for ``name``; without ``fn``, a decorator."""
        if fn is None:
            def decorate(func: Handler) -> Handler:
                self.register(name, func)
                return func
            return decorate
        with self._lock:
            self._handlers[name] = fn
        return fn

    def unregister(self, name: str) -> None:
        with self._lock:
            self._handlers.pop(name, None)

    def clear(self) -> None:
        with self._lock:
            self._handlers.clear()

    def find(self, argv0: str) -> Handler | None:
        with self._lock:
            return self._handlers.get(argv0) or self._handlers.get(posixpath.basename(argv0))

    def __contains__(self, name: str) -> bool:
        with self._lock:
            return name in self._handlers


# -- streams ----------------------------------------------------------------------------------


class Reader:
    """A command's stdin."""

    def read(self, size: int = -1) -> bytes:
        raise NotImplementedError

    def readline(self) -> bytes:
        out = bytearray()
        while True:
            char = self.read(1)
            if not char:
                return bytes(out)
            out += char
            if char == b"\n":
                return bytes(out)

    def read_all(self) -> bytes:
        chunks = []
        while True:
            chunk = self.read(65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


class BytesReader(Reader):
    """Fixed input (a pipe's buffered output, a file, or nothing)."""

    def __init__(self, data: bytes = b"") -> None:
        self.data = data
        self.pos = 0

    def read(self, size: int = -1) -> bytes:
        end = len(self.data) if size < 0 else min(len(self.data), self.pos + size)
        chunk = self.data[self.pos:end]
        self.pos = end
        return chunk


class StreamReader(Reader):
    """Input that arrives while the command runs (the exec's stdin websocket)."""

    def __init__(self, process: Process) -> None:
        self.process = process
        self._cond = threading.Condition()
        self._buf = bytearray()
        self._eof = False

    def feed(self, data: bytes) -> None:
        with self._cond:
            if not self._eof:
                self._buf += data
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def read(self, size: int = -1) -> bytes:
        with self._cond:
            while not self._buf and not self._eof:
                self.process.check()
                self._cond.wait(0.25)
            self.process.check()
            if size < 0 or size >= len(self._buf):
                chunk = bytes(self._buf)
                self._buf.clear()
            else:
                chunk = bytes(self._buf[:size])
                del self._buf[:size]
            return chunk


Writer = Callable[[bytes], None]


def _discard(data: bytes) -> None:
    pass


# -- a running exec ---------------------------------------------------------------------------


class Process:
    """One exec: where it runs, its streams, and its fate (exit status or signal)."""

    def __init__(self, instance: Instance, handlers: Handlers, argv: list[str],
                 env: dict[str, str], cwd: str, uid: int = 0, gid: int = 0,
                 stdout: Writer = _discard, stderr: Writer = _discard,
                 stdin: Reader | None = None) -> None:
        self.instance = instance
        self.handlers = handlers
        self.argv = list(argv)
        self.env = dict(env)
        self.cwd = cwd
        self.uid = uid
        self.gid = gid
        self.stdout = stdout
        self.stderr = stderr
        self.stdin: Reader = stdin if stdin is not None else BytesReader()
        self.signal: int | None = None
        self.ended = threading.Event()
        self._killed = threading.Event()
        self.gone: Callable[[], bool] = lambda: False  # e.g. the operation was reset

    def kill(self, signal: int = 9) -> bool:
        """Deliver ``signal``; the default action of most signals ends the command."""
        if signal in IGNORED_SIGNALS or self.ended.is_set():
            return False
        if self.signal is None:
            self.signal = signal
        self._killed.set()
        if isinstance(self.stdin, StreamReader):
            self.stdin.wake()
        return True

    def check(self) -> None:
        """Raise :class:`Killed` when the command must stop now."""
        if self._killed.is_set():
            raise Killed(self.signal or 9)
        if self.gone():
            self.signal = self.signal or 9
            raise Killed(self.signal)

    def sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while True:
            self.check()
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._killed.wait(min(left, 0.25))

    def run(self) -> int:
        """Run the command to its end: its exit status (128 + signal when killed)."""
        try:
            call = Call(self, self.argv, self.env, self.cwd, self.stdin, self.stdout,
                        self.stderr)
            code = run_program(call, top=True)
        except Killed as exc:
            code = 128 + exc.signal
        finally:
            self.ended.set()
        return code & 0xFF


@dataclass
class Call:
    """One command invocation: what a built-in gets."""

    process: Process
    argv: list[str]
    env: dict[str, str]
    cwd: str
    stdin: Reader
    out: Writer
    err: Writer

    @property
    def name(self) -> str:
        return posixpath.basename(self.argv[0]) if self.argv else ""

    def fs(self) -> FS:
        return FS(self.process.instance.record)

    @property
    def lock(self) -> Any:
        return self.process.instance.lock

    def say(self, text: str) -> None:
        self.out(text.encode("utf-8", "surrogateescape"))

    def complain(self, text: str) -> None:
        self.err(text.encode("utf-8", "surrogateescape"))

    def usage(self, applet: str) -> int:
        self.complain(BANNER + (USAGE.get(applet) or BRIEF_USAGE.get(applet)
                                or f"Usage: {applet}\n"))
        return 1

    def with_argv(self, argv: list[str], **changes: Any) -> Call:
        values = {"process": self.process, "argv": argv, "env": self.env, "cwd": self.cwd,
                  "stdin": self.stdin, "out": self.out, "err": self.err}
        values.update(changes)
        return Call(**values)


# -- finding and running programs -------------------------------------------------------------


#: Scripts whose ``#!`` lines lead to more scripts: Linux runs five levels, no more.
MAX_SCRIPT_DEPTH = 5


@dataclass
class Program:
    """What ``argv[0]`` leads to: a built-in applet, a script, or a failure status."""

    applet: str | None = None
    script: str | None = None  # path of a ``#!`` script
    interpreter: list[str] = field(default_factory=list)
    status: int = 0  # 126 / 127 when it cannot run
    path: str = ""


def _executable(entry: Any) -> bool:
    return entry is not None and entry.type == "file" and bool(entry.mode & 0o111)


def _program_at(fs: FS, path: str, cwd: str, argv0: str) -> Program:
    try:
        found = fs.stat(path, cwd)
    except FSError as exc:
        return Program(status=NOT_EXECUTABLE if exc.code == "ENOTDIR" else NOT_FOUND, path=path)
    entry = found.entry
    if not _executable(entry):
        return Program(status=NOT_EXECUTABLE, path=path)
    assert entry is not None
    if entry.content.startswith(b"#!"):
        line = entry.content[2:].split(b"\n", 1)[0].decode("utf-8", "replace").strip()
        return Program(script=found.path, interpreter=line.split(None, 1), path=path)
    base = posixpath.basename(found.path)
    applet = posixpath.basename(argv0) if base == "busybox" else base
    return Program(applet=applet, path=path)


def find_program(call: Call, name: str) -> Program:
    """Look ``name`` up as a shell does: a path, or along ``PATH``; built-ins as a fallback."""
    with call.lock:
        fs = call.fs()
        if "/" in name:
            return _program_at(fs, name, call.cwd, name)
        denied = False
        for directory in call.env.get("PATH", DEFAULT_PATH).split(":"):
            candidate = posixpath.join(directory or ".", name)
            program = _program_at(fs, candidate, call.cwd, name)
            if program.status == 0:
                return program
            denied = denied or program.status == NOT_EXECUTABLE and fs.exists(candidate,
                                                                              call.cwd)
    if name in APPLETS:
        return Program(applet=name)
    return Program(status=NOT_EXECUTABLE if denied else NOT_FOUND, path=name)


def run_program(call: Call, top: bool = False, from_shell: bool = False,
                caller: str = "", depth: int = 0,
                origin: tuple[bool, str, str] | None = None) -> int:
    """Run ``call.argv``: a handler, else what the filesystem (or the built-ins) gives.

    How a failure to start is told: silently at the top (LXD reports it), ``sh: x: not
    found`` from the shell, ``<caller>: can't execute 'x': ...`` from ``env`` and the like.
    """
    argv = call.argv
    if not argv:
        return 0
    handler = call.process.handlers.find(argv[0])
    if handler is not None:
        return _run_handler(call, handler)
    program = find_program(call, argv[0])
    if program.status:
        if from_shell:
            reason = "not found" if program.status == NOT_FOUND else "Permission denied"
            call.complain(f"sh: {argv[0]}: {reason}\n")
        elif not top:
            why = "No such file or directory" if program.status == NOT_FOUND \
                else "Permission denied"
            call.complain(f"{caller or call.name}: can't execute '{argv[0]}': {why}\n")
        return program.status
    if program.script is not None:
        interp = program.interpreter
        if not interp:
            return NOT_EXECUTABLE
        # (from_shell, caller, name) of the first script: who tells an ELOOP, and about what
        first = origin or (from_shell, caller, argv[0])
        if depth >= MAX_SCRIPT_DEPTH:  # execve() fails with ELOOP
            loop = "Too many levels of symbolic links"
            if first[0]:
                call.complain(f"sh: {first[2]}: {loop}\n")
                return NOT_FOUND
            if not top:
                call.complain(f"{first[1] or call.name}: can't execute '{first[2]}': {loop}\n")
                return NOT_FOUND
            return 255  # what LXD 5.0.2 returns when its own execve() fails so
        return run_program(call.with_argv([*interp, program.script, *argv[1:]]), top=top,
                           depth=depth + 1, origin=first)
    applet = program.applet or ""
    if applet == "busybox":
        if len(argv) < 2:
            call.complain(BANNER)
            return 0
        applet = posixpath.basename(argv[1])
        argv = argv[1:]
    func = APPLETS.get(applet)
    if func is None:
        if program.applet == "busybox" and not _installed_applet(call, applet):
            call.complain(f"{applet}: applet not found\n")
        else:
            call.complain(f"lxd-fake: {applet}: not a built-in command of the fake "
                          "(register a handler with FakeLXD.exec_handler)\n")
        return NOT_FOUND
    call.process.check()
    return func(call.with_argv([argv[0], *argv[1:]]))


def _installed_applet(call: Call, name: str) -> bool:
    """Whether the image has ``name`` as a busybox applet (a link somewhere on the PATH)."""
    if "/" in name:
        return False
    with call.lock:
        fs = call.fs()
        for directory in DEFAULT_PATH.split(":"):
            try:
                found = fs.stat(posixpath.join(directory, name))
            except FSError:
                continue
            if found.entry is not None and posixpath.basename(found.path) == "busybox":
                return True
    return False


def _text(data: Any) -> bytes:
    if data is None:
        return b""
    if isinstance(data, str):
        return data.encode("utf-8", "surrogateescape")
    return bytes(data)


def _run_handler(call: Call, handler: Handler) -> int:
    stdin = call.stdin.read_all()
    instance = call.process.instance
    try:
        result = handler(list(call.argv), dict(call.env), call.cwd, stdin, instance)
        if inspect.isgenerator(result):
            return _stream(call, result)
        code, out, err = result
    except Killed:
        raise
    except Exception as exc:  # noqa: BLE001 - a handler's bug is the command's failure
        last = traceback.format_exception_only(type(exc), exc)[-1]
        call.complain(f"{call.name}: {last}")
        return 1
    call.out(_text(out))
    call.err(_text(err))
    return int(code)


def _stream(call: Call, gen: Iterator[Any]) -> int:
    while True:
        call.process.check()
        try:
            item = next(gen)
        except StopIteration as stop:
            return int(stop.value or 0)
        if isinstance(item, tuple):
            stream, data = item
            (call.err if stream == 2 else call.out)(_text(data))
        else:
            call.out(_text(item))


# -- applets ----------------------------------------------------------------------------------

Applet = Callable[[Call], int]
APPLETS: dict[str, Applet] = {}


def applet(*names: str) -> Callable[[Applet], Applet]:
    def register(func: Applet) -> Applet:
        for name in names:
            APPLETS[name] = func
        return func
    return register


@applet("true", ":")
def _true(call: Call) -> int:
    return 0


@applet("false")
def _false(call: Call) -> int:
    return 1


_ECHO_ESCAPES = {"a": "\a", "b": "\b", "e": "\x1b", "f": "\f", "n": "\n", "r": "\r",
                 "t": "\t", "v": "\v", "\\": "\\"}


def _unescape(text: str) -> tuple[str, bool]:
    """``echo -e``'s escapes; the flag is False after ``\\c`` (stop output)."""
    out = []
    i = 0
    while i < len(text):
        char = text[i]
        if char != "\\" or i + 1 >= len(text):
            out.append(char)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "c":
            return "".join(out), False
        if nxt in _ECHO_ESCAPES:
            out.append(_ECHO_ESCAPES[nxt])
            i += 2
        elif nxt == "0" or nxt in "1234567":
            digits = re.match(r"0?[0-7]{0,3}", text[i + 1:i + 5])
            value = digits.group(0) if digits else "0"
            out.append(chr(int(value or "0", 8) & 0xFF))
            i += 1 + len(value)
        elif nxt == "x":
            digits = re.match(r"[0-9a-fA-F]{1,2}", text[i + 2:])
            if digits:
                out.append(chr(int(digits.group(0), 16)))
                i += 2 + len(digits.group(0))
            else:
                out.append("\\x")
                i += 2
        else:
            out.append("\\" + nxt)
            i += 2
    return "".join(out), True


@applet("echo")
def _echo(call: Call) -> int:
    args = call.argv[1:]
    newline, escapes = True, False
    while args and re.fullmatch(r"-[neE]+", args[0]):
        for flag in args[0][1:]:
            if flag == "n":
                newline = False
            else:
                escapes = flag == "e"
        args = args[1:]
    text = " ".join(args)
    if escapes:
        text, more = _unescape(text)
        newline = newline and more
    call.say(text + ("\n" if newline else ""))
    return 0


@applet("cat")
def _cat(call: Call) -> int:
    status = 0
    for name in call.argv[1:] or ["-"]:
        if name == "-":
            while True:
                chunk = call.stdin.read(65536)
                if not chunk:
                    break
                call.out(chunk)
            continue
        try:
            with call.lock:
                data = call.fs().read(name, call.cwd)
        except FSError as exc:
            if exc.code == "EISDIR":
                call.complain("cat: read error: Is a directory\n")
            else:
                call.complain(f"cat: can't open '{name}': {exc.c_text}\n")
            status = 1
            continue
        call.out(data)
    return status


@applet("pwd")
def _pwd(call: Call) -> int:
    call.say(call.cwd + "\n")
    return 0


@applet("hostname")
def _hostname(call: Call) -> int:
    name = call.process.instance.name
    if len(call.argv) > 1 and call.argv[1] in ("-f", "--fqdn", "-i", "-d", "--domain"):
        call.complain(f"hostname: {name}: Host name lookup failure\n")
        return 1
    call.say(name + "\n")
    return 0


def _flags(call: Call, allowed: str, with_value: str = "") -> tuple[set[str], dict[str, str],
                                                                      list[str]] | None:
    """getopt for busybox applets: ``None`` (after the message) on a bad option."""
    flags: set[str] = set()
    values: dict[str, str] = {}
    args = call.argv[1:]
    rest: list[str] = []
    while args:
        arg = args.pop(0)
        if arg == "--":
            rest.extend(args)
            break
        if arg.startswith("-") and len(arg) > 1:
            i = 1
            while i < len(arg):
                flag = arg[i]
                if flag in with_value:
                    value = arg[i + 1:] or (args.pop(0) if args else None)
                    if value is None:
                        call.complain(f"{call.name}: option requires an argument -- "
                                      f"'{flag}'\n")
                        return None
                    values[flag] = value
                    break
                if flag not in allowed:
                    call.complain(f"{call.name}: unrecognized option: {flag}\n"
                                  + BANNER + USAGE.get(call.name, ""))
                    return None
                flags.add(flag)
                i += 1
        else:
            rest.append(arg)
    return flags, values, rest


OptionApplet = Callable[[Call, set[str], dict[str, str], list[str]], int]


def options(allowed: str, with_value: str = "", bad: int = 1) -> Callable[[OptionApplet],
                                                                          Applet]:
    """An applet taking busybox options (see :func:`_flags`): it gets ``(call, flags, values,
    operands)``; a bad option ends it with status ``bad`` after the message."""

    def wrap(func: OptionApplet) -> Applet:
        @functools.wraps(func)
        def run(call: Call) -> int:
            parsed = _flags(call, allowed, with_value)
            return bad if parsed is None else func(call, *parsed)
        return run
    return wrap


def _each(call: Call, names: list[str], act: Callable[[FS, str], str | None],
          failed: Callable[[str, FSError], str | None]) -> int:
    """``act(fs, name)`` on each operand under the lock. A message it returns, or
    ``failed(name, error)`` for an :class:`FSError`, is printed and makes the status 1
    (``failed`` returning None lets the error pass)."""
    status = 0
    for name in names:
        try:
            with call.lock:
                message = act(call.fs(), name)
        except FSError as exc:
            message = failed(name, exc)
        if message is not None:
            call.complain(message)
            status = 1
    return status


@applet("mkdir")
@options("pv", "m")
def _mkdir(call: Call, flags: set[str], values: dict[str, str], names: list[str]) -> int:
    if not names:
        return call.usage("mkdir")
    mode = 0o755
    if "m" in values:
        try:
            mode = int(values["m"], 8)
        except ValueError:
            call.complain(f"mkdir: invalid mode '{values['m']}'\n")
            return 1
    process = call.process

    def make(fs: FS, name: str) -> None:
        if "p" in flags:
            fs.makedirs(name, mode=mode, cwd=call.cwd)
        else:
            fs.mkdir(name, mode=mode, uid=process.uid, gid=process.gid, cwd=call.cwd)

    def failed(name: str, exc: FSError) -> str:
        shown = exc.path if "p" in flags and exc.path else name
        return f"mkdir: can't create directory '{shown}': {exc.c_text}\n"

    return _each(call, names, make, failed)


@applet("rm")
@options("rRfiv")
def _rm(call: Call, flags: set[str], _: dict[str, str], names: list[str]) -> int:
    force = "f" in flags
    recursive = bool(flags & {"r", "R"})
    if not names:
        return 0 if force else call.usage("rm")

    def remove(fs: FS, name: str) -> str | None:
        found = fs.lstat(name, call.cwd)
        assert found.entry is not None
        if found.entry.type != "directory":
            fs.unlink(name, call.cwd)
        elif not recursive:
            return f"rm: '{name}' is a directory\n"
        else:
            fs.remove_tree(name, call.cwd)
        return None

    def failed(name: str, exc: FSError) -> str | None:
        if force and exc.code == "ENOENT":
            return None
        return f"rm: can't remove '{name}': {exc.c_text}\n"

    return _each(call, names, remove, failed)


@applet("touch")
@options("cam", "dtr")
def _touch(call: Call, flags: set[str], _: dict[str, str], names: list[str]) -> int:
    if not names:
        return call.usage("touch")

    def touch(fs: FS, name: str) -> None:
        if "c" in flags and not fs.exists(name, call.cwd):
            return
        if fs.resolve(name, call.cwd).entry is None:
            fs.write(name, b"", uid=call.process.uid, gid=call.process.gid, cwd=call.cwd)
        else:
            fs.touch(name, call.cwd)

    return _each(call, names, touch, lambda name, exc: f"touch: {name}: {exc.c_text}\n")


_MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()


def _perms(entry: Any) -> str:
    kind = {"directory": "d", "symlink": "l"}.get(entry.type, "-")
    mode = 0o777 if entry.type == "symlink" else entry.mode
    bits = ""
    for shift, special, char in ((6, 0o4000, "s"), (3, 0o2000, "s"), (0, 0o1000, "t")):
        triple = (mode >> shift) & 7
        execute = triple & 1
        text = ("r" if triple & 4 else "-") + ("w" if triple & 2 else "-")
        if mode & special:
            text += char if execute else char.upper()
        else:
            text += "x" if execute else "-"
        bits += text
    return kind + bits


def _ls_long(fs: FS, path: str, entry: Any, shown: str) -> str:
    if entry.type == "directory":
        size = 4096
        links = 2 + sum(1 for name in fs.listdir(path)
                        if fs.tree[posixpath.join(path, name)].type == "directory")
    else:
        size = len(entry.target) if entry.type == "symlink" else len(entry.content)
        links = 1
    ns = fs.mtime(path)
    moment = time.gmtime(ns // 1_000_000_000)
    if abs(time.time() - ns / 1e9) > 182 * 86400:
        when = f"{_MONTHS[moment.tm_mon - 1]} {moment.tm_mday:2d}  {moment.tm_year}"
    else:
        when = f"{_MONTHS[moment.tm_mon - 1]} {moment.tm_mday:2d} " \
               f"{moment.tm_hour:02d}:{moment.tm_min:02d}"
    user = {0: "root", 65534: "nobody"}.get(entry.uid, str(entry.uid))
    group = {0: "root", 65534: "nogroup"}.get(entry.gid, str(entry.gid))
    line = f"{_perms(entry)} {links:4d} {user:<8} {group:<8} {size:9d} {when} {shown}"
    if entry.type == "symlink":
        line += f" -> {entry.target}"
    return line + "\n"


@applet("ls")
@options("1aAldFhrt")
def _ls(call: Call, flags: set[str], _: dict[str, str], names: list[str]) -> int:
    long = "l" in flags
    status = 0
    files: list[str] = []
    dirs: list[tuple[str, str]] = []
    with call.lock:
        fs = call.fs()
        for name in names or ["."]:
            try:
                found = fs.lstat(name, call.cwd)
                if found.entry is not None and found.entry.type == "symlink" \
                        and not long and "d" not in flags:
                    target = fs.resolve(name, call.cwd)
                    if target.entry is not None:
                        found = target
            except FSError as exc:
                call.complain(f"ls: {name}: {exc.c_text}\n")
                status = 1
                continue
            entry = found.entry
            assert entry is not None
            if entry.type == "directory" and "d" not in flags:
                dirs.append((name, found.path))
            else:
                files.append(_ls_long(fs, found.path, entry, name) if long else name + "\n")
        out = "".join(sorted(files))
        for index, (name, path) in enumerate(sorted(dirs)):
            if out or len(dirs) > 1 or files:
                out += ("\n" if out else "") + f"{name}:\n"
            entries = fs.listdir(path)
            if "a" in flags:
                entries = [".", "..", *entries]
            elif "A" not in flags:
                entries = [e for e in entries if not e.startswith(".")]
            else:
                entries = list(entries)
            if long:
                lines = []
                blocks = 0
                for entry_name in entries:
                    full = path if entry_name == "." else (
                        posixpath.dirname(path) or "/" if entry_name == ".."
                        else posixpath.join(path, entry_name))
                    entry = fs.tree[full]
                    size = 4096 if entry.type == "directory" else len(entry.content)
                    blocks += 4 * ((size + 4095) // 4096)
                    lines.append(_ls_long(fs, full, entry, entry_name))
                out += f"total {blocks}\n" + "".join(lines)
            else:
                out += "".join(f"{e}\n" for e in entries)
            del index
    call.say(out)
    return status


@applet("env")
def _env(call: Call) -> int:
    env = dict(call.env)
    args = call.argv[1:]
    while args:
        arg = args[0]
        if arg in ("-i", "-"):
            env = {}
        elif arg == "-u" and len(args) > 1:
            env.pop(args[1], None)
            args = args[1:]
        elif arg == "--":
            args = args[1:]
            break
        else:
            break
        args = args[1:]
    while args and "=" in args[0] and not args[0].startswith("="):
        key, _, value = args[0].partition("=")
        env[key] = value
        args = args[1:]
    if not args:
        call.say("".join(f"{k}={v}\n" for k, v in _env_order(env).items()))
        return 0
    return run_program(call.with_argv(args, env=env), caller="env")


def _env_order(env: dict[str, str]) -> dict[str, str]:
    """The order an exec'd process sees: PATH, then ``container=lxc``, then the rest."""
    ordered: dict[str, str] = {}
    if "PATH" in env:
        ordered["PATH"] = env["PATH"]
    if "container" in env:
        ordered["container"] = env["container"]
    ordered.update((k, v) for k, v in env.items() if k not in ordered)
    return ordered


_SLEEP_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


@applet("sleep")
def _sleep(call: Call) -> int:
    args = call.argv[1:]
    if not args:
        return call.usage("sleep")
    total = 0.0
    for arg in args:
        match = re.fullmatch(r"(\d+(?:\.\d*)?|\.\d+)([smhd]?)", arg)
        if match is None:
            call.complain(f"sleep: invalid number '{arg}'\n")
            return 1
        total += float(match.group(1)) * _SLEEP_UNITS[match.group(2)]
    call.process.sleep(total)
    return 0


class _TestError(Exception):
    pass


def _test_unary(call: Call, op: str, arg: str) -> bool:
    if op in ("-z", "-n"):
        return (arg == "") == (op == "-z")
    with call.lock:
        fs = call.fs()
        try:
            found = fs.lstat(arg, call.cwd) if op in ("-h", "-L") else fs.stat(arg, call.cwd)
        except FSError:
            return False
    entry = found.entry
    assert entry is not None
    return {
        "-e": True, "-f": entry.type == "file", "-d": entry.type == "directory",
        "-h": entry.type == "symlink", "-L": entry.type == "symlink",
        "-s": entry.type != "file" or bool(entry.content),
        "-r": True, "-w": True, "-x": bool(entry.mode & 0o111) or entry.type == "directory",
    }[op]


_UNARY = ("-z", "-n", "-e", "-f", "-d", "-h", "-L", "-s", "-r", "-w", "-x")
_BINARY = ("=", "==", "!=", "-eq", "-ne", "-lt", "-le", "-gt", "-ge")


def _test_int(call: Call, text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise _TestError(f"{call.name}: {text}: bad number") from None


def _test_expr(call: Call, args: list[str]) -> bool:
    """test(1) with -a/-o (-a binding tighter), ! and the usual primaries."""
    for index, arg in enumerate(args):
        if arg == "-o" and 0 < index < len(args) - 1:
            return _test_expr(call, args[:index]) or _test_expr(call, args[index + 1:])
    for index, arg in enumerate(args):
        if arg == "-a" and 0 < index < len(args) - 1:
            return _test_expr(call, args[:index]) and _test_expr(call, args[index + 1:])
    if not args:
        return False
    if args[0] == "!" and len(args) > 1:
        return not _test_expr(call, args[1:])
    if len(args) == 1:
        return args[0] != ""
    if len(args) == 2 and args[0] in _UNARY:
        return _test_unary(call, args[0], args[1])
    if len(args) == 3 and args[1] in _BINARY:
        left, op, right = args
        if op in ("=", "=="):
            return left == right
        if op == "!=":
            return left != right
        a, b = _test_int(call, left), _test_int(call, right)
        return {"-eq": a == b, "-ne": a != b, "-lt": a < b, "-le": a <= b, "-gt": a > b,
                "-ge": a >= b}[op]
    if len(args) == 3 and args[0] == "(" and args[2] == ")":
        return _test_expr(call, [args[1]])
    raise _TestError(f"{call.name}: {args[1] if len(args) > 1 else args[0]}: "
                     "unknown operand")


@applet("test", "[", "[[")
def _test(call: Call) -> int:
    args = call.argv[1:]
    if call.name in ("[", "[["):
        closing = "]" if call.name == "[" else "]]"
        if not args or args[-1] != closing:
            call.complain(f"{call.name}: missing {closing}\n")
            return 2
        args = args[:-1]
    try:
        return 0 if _test_expr(call, args) else 1
    except _TestError as exc:
        call.complain(f"{exc}\n")
        return 2


@applet("grep", "egrep", "fgrep")
@options("cvinqsxwEFHhlr", "e", bad=2)
def _grep(call: Call, flags: set[str], values: dict[str, str], args: list[str]) -> int:
    if call.name == "egrep":
        flags.add("E")
    elif call.name == "fgrep":
        flags.add("F")
    if "e" in values:
        pattern = values["e"]
    elif args:
        pattern, args = args[0], args[1:]
    else:
        call.usage("grep")
        return 2
    if "F" in flags:
        regex = re.escape(pattern)
    elif "E" in flags:
        regex = pattern
    else:  # a basic regular expression: \( \) \{ \} \| are the special ones
        regex = ""
        i = 0
        while i < len(pattern):
            char = pattern[i]
            if char == "\\" and i + 1 < len(pattern):
                nxt = pattern[i + 1]
                regex += nxt if nxt in "(){}|+?" else "\\" + nxt
                i += 2
                continue
            regex += "\\" + char if char in "(){}|+?" else char
            i += 1
    if "w" in flags:
        regex = rf"\b(?:{regex})\b"
    if "x" in flags:
        regex = rf"(?:{regex})\Z"
    try:
        compiled = re.compile(regex.encode("utf-8", "surrogateescape"),
                              re.IGNORECASE if "i" in flags else 0)
    except re.error:
        call.complain(f"grep: bad regex '{pattern}'\n")
        return 2
    sources = args or ["-"]
    several = len(sources) > 1 and "h" not in flags or "H" in flags
    found_any = False
    status = 0
    for source in sources:
        if source == "-":
            data = call.stdin.read_all()
            shown = "(standard input)"
        else:
            try:
                with call.lock:
                    data = call.fs().read(source, call.cwd)
            except FSError as exc:
                if "s" not in flags:
                    call.complain(f"grep: {source}: {exc.c_text}\n")
                status = 2
                continue
            shown = source
        count = 0
        lines = data.split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()
        for number, line in enumerate(lines, 1):
            matched = (compiled.match(line) if "x" in flags else compiled.search(line))
            if bool(matched) == ("v" in flags):
                continue
            count += 1
            found_any = True
            if "q" in flags:
                return 0
            if "c" in flags or "l" in flags:
                continue
            prefix = f"{shown}:" if several else ""
            if "n" in flags:
                prefix += f"{number}:"
            call.out(prefix.encode() + line + b"\n")
        if "c" in flags:
            call.say((f"{shown}:" if several else "") + f"{count}\n")
        elif "l" in flags and count:
            call.say(f"{shown}\n")
    if status == 2 and not found_any:
        return 2
    return 0 if found_any else 1


def _lines_of(call: Call, names: list[str], applet: str) -> list[tuple[str, bytes]] | None:
    """``(name, content)`` of each file (``-`` or none: stdin); None after an error."""
    out = []
    failed = False
    for name in names or ["-"]:
        if name == "-":
            out.append(("-", call.stdin.read_all()))
            continue
        try:
            with call.lock:
                out.append((name, call.fs().read(name, call.cwd)))
        except FSError as exc:
            if exc.code == "EISDIR":
                call.complain(f"{applet}: read error: Is a directory\n")
            else:
                call.complain(f"{applet}: can't open '{name}': {exc.c_text}\n")
            failed = True
    return None if failed and not out else out


def _count_option(call: Call, default: int = 10) -> tuple[int, list[str], bool] | None:
    """``-n N`` / ``-N`` of head and tail: (count, files, from_start for ``tail -n +N``)."""
    args = call.argv[1:]
    count, rest, plus = default, [], False
    while args:
        arg = args.pop(0)
        value = None
        if arg == "-n" and args:
            value = args.pop(0)
        elif arg.startswith("-n"):
            value = arg[2:]
        elif re.fullmatch(r"-\d+", arg):
            value = arg[1:]
        else:
            rest.append(arg)
            continue
        plus = value.startswith("+")
        if not value.lstrip("+-").isdigit():
            call.complain(f"{call.name}: invalid number '{value}'\n")
            return None
        count = int(value.lstrip("+-"))
    return count, rest, plus


def _head_or_tail(call: Call, applet: str) -> int:
    parsed = _count_option(call)
    if parsed is None:
        return 1
    count, names, from_start = parsed
    sources = _lines_of(call, names, applet)
    if sources is None:
        return 1
    for index, (name, data) in enumerate(sources):
        if len(sources) > 1:
            call.say(("\n" if index else "") + f"==> {name} <==\n")
        lines = data.splitlines(keepends=True)
        if applet == "head":
            chosen = lines[:count]
        else:
            chosen = lines[max(count - 1, 0):] if from_start else (lines[-count:] if count
                                                                   else [])
        call.out(b"".join(chosen))
    return 0


@applet("head")
def _head(call: Call) -> int:
    return _head_or_tail(call, "head")


@applet("tail")
def _tail(call: Call) -> int:
    return _head_or_tail(call, "tail")


@applet("wc")
@options("lwcm")
def _wc(call: Call, flags: set[str], _: dict[str, str], names: list[str]) -> int:
    sources = _lines_of(call, names, "wc")
    if sources is None:
        return 1
    wanted = [f for f in "lwc" if f in flags or (f == "c" and "m" in flags)] or ["l", "w", "c"]
    totals = {"l": 0, "w": 0, "c": 0}
    for name, data in sources:
        counts = {"l": data.count(b"\n"), "w": len(data.split()), "c": len(data)}
        for key in totals:
            totals[key] += counts[key]
        numbers = [counts[f] for f in wanted]
        text = " ".join(f"{n:9d}" if len(wanted) > 1 else str(n) for n in numbers)
        call.say(text + (f" {name}" if name != "-" else "") + "\n")
    if len(sources) > 1:
        call.say(" ".join(f"{totals[f]:9d}" if len(wanted) > 1 else str(totals[f])
                          for f in wanted) + " total\n")
    return 0


@applet("sort")
@options("rnuf")
def _sort(call: Call, flags: set[str], _: dict[str, str], names: list[str]) -> int:
    sources = _lines_of(call, names, "sort")
    if sources is None:
        return 1
    lines = [line for _, data in sources for line in data.splitlines()]

    def key(line: bytes) -> Any:
        if "n" in flags:
            match = re.match(rb"\s*(-?\d+(?:\.\d*)?)", line)
            return (float(match.group(1)) if match else 0.0, line)
        return line.lower() if "f" in flags else line

    lines.sort(key=key, reverse="r" in flags)
    if "u" in flags:
        unique: list[bytes] = []
        for line in lines:
            if not unique or key(unique[-1]) != key(line):
                unique.append(line)
        lines = unique
    call.out(b"".join(line + b"\n" for line in lines))
    return 0


@applet("tee")
@options("ai")
def _tee(call: Call, flags: set[str], _: dict[str, str], names: list[str]) -> int:
    data = call.stdin.read_all()
    call.out(data)

    def write(fs: FS, name: str) -> None:
        fs.write(name, data, append="a" in flags, uid=call.process.uid, gid=call.process.gid,
                 cwd=call.cwd)

    return _each(call, names, write, lambda name, exc: f"tee: {name}: {exc.c_text}\n")


@applet("basename")
def _basename(call: Call) -> int:
    args = call.argv[1:]
    if not args:
        return call.usage("basename")
    base = args[0].rstrip("/").rsplit("/", 1)[-1] or ("/" if args[0].startswith("/") else "")
    if len(args) > 1 and base != args[1] and base.endswith(args[1]):
        base = base[:-len(args[1])]
    call.say(base + "\n")
    return 0


@applet("dirname")
def _dirname(call: Call) -> int:
    args = call.argv[1:]
    if not args:
        return call.usage("dirname")
    path = args[0].rstrip("/") or "/"
    head = path.rsplit("/", 1)[0] if "/" in path else "."
    call.say((head.rstrip("/") or "/") + "\n")
    return 0


@applet("id")
def _id(call: Call) -> int:
    uid, gid = call.process.uid, call.process.gid
    names = {0: "root", 65534: "nobody"}
    groups = {0: "root", 65534: "nogroup"}
    if "-u" in call.argv[1:]:
        call.say(f"{uid}\n")
    elif "-g" in call.argv[1:]:
        call.say(f"{gid}\n")
    else:
        user = f"uid={uid}" + (f"({names[uid]})" if uid in names else "")
        group = f"gid={gid}" + (f"({groups[gid]})" if gid in groups else "")
        call.say(f"{user} {group}\n")
    return 0


@applet("whoami")
def _whoami(call: Call) -> int:
    uid = call.process.uid
    if uid in (0, 65534):
        call.say({0: "root", 65534: "nobody"}[uid] + "\n")
        return 0
    call.complain(f"whoami: unknown uid {uid}\n")
    return 1


@applet("chmod")
def _chmod(call: Call) -> int:
    args = call.argv[1:]
    recursive = bool(args) and args[0] == "-R"
    if recursive:
        args = args[1:]
    if len(args) < 2:
        return call.usage("chmod")
    mode_text, names = args[0], args[1:]
    status = 0
    for name in names:
        try:
            with call.lock:
                fs = call.fs()
                found = fs.stat(name, call.cwd)
                entry = found.entry
                assert entry is not None
                mode = _chmod_mode(mode_text, entry.mode, entry.type == "directory")
                if mode is None:
                    call.complain(f"chmod: invalid mode '{mode_text}'\n")
                    return 1
                fs.chmod(found.path, mode)
        except FSError as exc:
            call.complain(f"chmod: {name}: {exc.c_text}\n")
            status = 1
    return status


def _chmod_mode(text: str, current: int, directory: bool) -> int | None:
    """An octal mode, or symbolic clauses (``u+x``, ``go-w``, ``a=r``, ``+x``)."""
    if re.fullmatch(r"[0-7]{1,4}", text):
        return int(text, 8)
    mode = current & 0o7777
    for clause in text.split(","):
        match = re.fullmatch(r"([ugoa]*)([-+=])([rwxXst]*)", clause)
        if match is None:
            return None
        who, op, perms = match.groups()
        mask = 0
        for char in who or "a":
            mask |= {"u": 0o4700, "g": 0o2070, "o": 0o1007, "a": 0o7777}[char]
        bits = 0
        for char in perms:
            if char == "X" and not (directory or mode & 0o111):
                continue
            bits |= {"r": 0o444, "w": 0o222, "x": 0o111, "X": 0o111, "s": 0o6000,
                     "t": 0o1000}[char]
        bits &= mask
        if op == "+":
            mode |= bits
        elif op == "-":
            mode &= ~bits
        else:
            mode = (mode & ~(mask & 0o777)) | bits
    return mode


@applet("ln")
@options("sfnv")
def _ln(call: Call, flags: set[str], _: dict[str, str], args: list[str]) -> int:
    if len(args) != 2:
        return call.usage("ln")
    target, link = args
    try:
        with call.lock:
            fs = call.fs()
            found = fs.resolve(link, call.cwd)
            if found.entry is not None and found.entry.type == "directory":
                link = posixpath.join(link, posixpath.basename(target.rstrip("/")))
            if "f" in flags and fs.exists(link, call.cwd) or fs.resolve(
                    link, call.cwd, follow=False).entry is not None and "f" in flags:
                fs.unlink(link, call.cwd)
            if "s" in flags:
                fs.symlink(target, link, cwd=call.cwd)
            else:
                data = fs.read(target, call.cwd)
                entry = fs.stat(target, call.cwd).entry
                assert entry is not None
                if fs.resolve(link, call.cwd, follow=False).entry is not None:
                    raise FSError("EEXIST", link)
                fs.write(link, data, mode=entry.mode, uid=entry.uid, gid=entry.gid,
                         cwd=call.cwd)
    except FSError as exc:
        call.complain(f"ln: {link}: {exc.c_text}\n")
        return 1
    return 0


def _copy(call: Call, source: str, dest: str, recursive: bool, move: bool,
          made: set[int] | None = None) -> bool:
    """Copy (or move) ``source`` to ``dest``; False when part of a tree was left out.

    ``made`` holds the directories this cp created (by identity): busybox omits a source
    directory it made itself ("recursion detected"), so ``cp -r /d /d/e`` ends.
    """
    fs = call.fs()
    found = fs.lstat(source, call.cwd)
    entry = found.entry
    assert entry is not None
    target = fs.resolve(dest, call.cwd)
    if target.entry is not None and target.entry.type == "directory":
        dest = posixpath.join(dest, posixpath.basename(found.path))
        target = fs.resolve(dest, call.cwd)
    made = set() if made is None else made
    complete = True
    if entry.type == "directory":
        if not recursive and not move:
            raise _Omit(source)
        if move and (target.path + "/").startswith(found.path + "/"):
            raise FSError("EINVAL", source)  # rename(2) of a directory into itself
        if id(entry) in made:
            call.complain(f"cp: recursion detected, omitting directory '{source}'\n")
            return False
        if target.entry is None:
            fs.mkdir(dest, mode=entry.mode, uid=entry.uid, gid=entry.gid, cwd=call.cwd)
            made.add(id(fs.resolve(dest, call.cwd).entry))
        for name in fs.listdir(found.path):
            complete &= _copy(call, posixpath.join(found.path, name), posixpath.join(
                fs.resolve(dest, call.cwd).path, name), True, False, made)
    elif entry.type == "symlink" and (recursive or move):
        fs.symlink(entry.target, dest, cwd=call.cwd)
    else:
        data = fs.read(source, call.cwd)
        fs.write(dest, data, mode=entry.mode if move else entry.mode & 0o777,
                 uid=entry.uid if move else call.process.uid,
                 gid=entry.gid if move else call.process.gid, cwd=call.cwd)
    if move:
        fs.remove_tree(found.path)
    return complete


class _Omit(Exception):
    pass


def _copy_all(call: Call, args: list[str], recursive: bool, move: bool) -> int:
    """cp and mv: each source to the last operand."""
    if len(args) < 2:
        return call.usage("mv" if move else "cp")
    status = 0
    dest = args[-1]
    for source in args[:-1]:
        try:
            with call.lock:
                if not _copy(call, source, dest, recursive, move):
                    status = 1
        except _Omit:
            call.complain(f"cp: omitting directory '{source}'\n")
            status = 1
        except FSError as exc:
            call.complain(f"mv: can't rename '{source}': {exc.c_text}\n" if move
                          else f"cp: can't stat '{source}': {exc.c_text}\n"
                          if exc.code == "ENOENT"
                          else f"cp: can't create '{dest}': {exc.c_text}\n")
            status = 1
    return status


@applet("cp")
@options("rRapfdPLv")
def _cp(call: Call, flags: set[str], _: dict[str, str], args: list[str]) -> int:
    return _copy_all(call, args, bool(flags & {"r", "R", "a"}), move=False)


@applet("mv")
@options("fin")
def _mv(call: Call, flags: set[str], _: dict[str, str], args: list[str]) -> int:
    return _copy_all(call, args, True, move=True)


@applet("readlink")
def _readlink(call: Call) -> int:
    args = [a for a in call.argv[1:] if not a.startswith("-")]
    canonical = any(a in ("-f", "-e", "-m") for a in call.argv[1:])
    if not args:
        return 1
    try:
        with call.lock:
            fs = call.fs()
            if canonical:
                call.say(fs.resolve(args[0], call.cwd).path + "\n")
                return 0
            entry = fs.lstat(args[0], call.cwd).entry
    except FSError:
        return 1
    if entry is None or entry.type != "symlink":
        return 1
    call.say(entry.target + "\n")
    return 0


@applet("seq")
def _seq(call: Call) -> int:
    try:
        numbers = [int(a) for a in call.argv[1:]]
    except ValueError as exc:
        call.complain(f"seq: invalid number '{str(exc).split()[-1].strip(chr(39))}'\n")
        return 1
    if not 1 <= len(numbers) <= 3:
        return call.usage("seq")
    first, step, last = (1, 1, numbers[0]) if len(numbers) == 1 else (
        (numbers[0], 1, numbers[1]) if len(numbers) == 2 else tuple(numbers))
    if step == 0:
        return 0
    values = range(first, last + (1 if step > 0 else -1), step)
    call.say("".join(f"{v}\n" for v in values))
    return 0


_PRINTF_SPEC = re.compile(r"%([-+ #0]*)(\d*)(?:\.(\d+))?([diouxXcs%b])")


@applet("printf")
def _printf(call: Call) -> int:
    args = call.argv[1:]
    if not args:
        return call.usage("printf")
    fmt, values = args[0], args[1:]
    out: list[str] = []
    status = 0
    while True:
        consumed = 0
        batch = list(values)

        def spec(match: re.Match[str], batch: list[str] = batch) -> str:
            nonlocal consumed, status
            flags, width, precision, kind = match.groups()
            if kind == "%":
                return "%"
            value = batch[consumed] if consumed < len(batch) else ""
            consumed += 1
            if kind in "diouxX":
                try:
                    number = int(value or "0", 0)
                except ValueError:
                    call.complain(f"printf: invalid number '{value}'\n")
                    status = 1
                    number = 0
                kind = {"i": "d", "u": "d"}.get(kind, kind)
                return f"%{flags}{width}{kind}" % number
            if kind == "c":
                return value[:1]
            if kind == "b":
                return _unescape(value)[0]
            text = value if precision is None else value[:int(precision)]
            return f"%{flags}{width}s" % text

        out.append(_unescape(_PRINTF_SPEC.sub(spec, fmt))[0])
        values = values[consumed:]
        if not values or not consumed:
            break
    call.say("".join(out))
    return status


@applet("sh", "ash")
def _sh(call: Call) -> int:
    return run_shell(call)


# -- the shell --------------------------------------------------------------------------------


class ShellSyntaxError(Exception):
    """A script ash would refuse: ``sh: syntax error: ...``, exit 2."""


class Unsupported(Exception):
    """Syntax the fake's shell does not run: ``sh: lxd-fake: ...``, exit 2."""


class ShellExit(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class NeedMore(ShellSyntaxError):
    """The script ends in the middle of a construct (more lines may complete it)."""


@dataclass
class Lit:
    text: str
    quoted: bool


@dataclass
class Param:
    name: str
    quoted: bool
    op: str = ""
    arg: list[Any] | None = None  # parts of the word after the operator


@dataclass
class Subst:
    script: str
    quoted: bool


@dataclass
class Word:
    parts: list[Any]
    raw: str

    @property
    def plain(self) -> str | None:
        """The text when the word is one unquoted literal (keywords, assignments)."""
        if len(self.parts) == 1 and isinstance(self.parts[0], Lit) and not self.parts[0].quoted:
            return self.parts[0].text
        return None


@dataclass
class Arith:
    """``$((expression))``: the expression's text, expanded and evaluated when used."""

    expr: str
    quoted: bool


@dataclass
class HereDoc:
    """A here-document: filled in by the lexer when it reaches the end of the line."""

    delimiter: str
    literal: bool  # the delimiter was quoted: no expansion
    strip_tabs: bool
    body: str = ""
    parts: list[Any] = field(default_factory=list)


@dataclass
class Token:
    kind: str  # "word", "op", "io", "eof"
    value: Any
    line: int
    heredoc: HereDoc | None = None


OPERATORS = ("&&", "||", ";;", "<<-", "<<", ">>", ">&", "<&", ">|", "<>", ";", "&", "|", "(",
             ")", "<", ">", "\n")
KEYWORDS = {"if", "then", "else", "elif", "fi", "do", "done", "for", "while", "until", "case",
            "esac", "in", "{", "}", "!", "function", "select"}
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SPECIAL_PARAMS = "?#@*$!-0123456789"


class Lexer:
    """ash's tokens: words (with their quoting kept for expansion) and operators."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.line = 1
        self.want_delimiter: str | None = None
        self.pending: list[HereDoc] = []

    def tokens(self) -> list[Token]:
        out: list[Token] = []
        while True:
            token = self.next()
            out.append(token)
            if token.kind == "eof":
                return out

    def next(self) -> Token:
        text = self.text
        while self.pos < len(text):
            char = text[self.pos]
            if char in " \t":
                self.pos += 1
            elif char == "\\" and text[self.pos + 1:self.pos + 2] == "\n":
                self.pos += 2
                self.line += 1
            elif char == "#":
                while self.pos < len(text) and text[self.pos] != "\n":
                    self.pos += 1
            else:
                break
        if self.pos >= len(text):
            self._read_heredocs()
            return Token("eof", None, self.line)
        line = self.line
        for op in OPERATORS:
            if text.startswith(op, self.pos):
                self.pos += len(op)
                if op == "\n":
                    self.line += 1
                    self._read_heredocs()
                if op in ("<<", "<<-"):
                    self.want_delimiter = op
                return Token("op", op, line)
        match = re.match(r"\d+(?=[<>])", text[self.pos:])
        if match:
            self.pos += len(match.group(0))
            return Token("io", int(match.group(0)), line)
        word = self.word()
        token = Token("word", word, line)
        if self.want_delimiter is not None:
            literal = any(isinstance(part, Lit) and part.quoted for part in word.parts)
            delimiter = "".join(part.text for part in word.parts if isinstance(part, Lit))
            token.heredoc = HereDoc(delimiter, literal, self.want_delimiter == "<<-")
            self.pending.append(token.heredoc)
            self.want_delimiter = None
        return token

    def _read_heredocs(self) -> None:
        """After a newline: the bodies of the here-documents started on that line."""
        while self.pending:
            doc = self.pending.pop(0)
            lines = []
            while self.pos < len(self.text):
                end = self.text.find("\n", self.pos)
                end = len(self.text) if end < 0 else end
                line = self.text[self.pos:end]
                self.pos = min(end + 1, len(self.text))
                self.line += 1
                if doc.strip_tabs:
                    line = line.lstrip("\t")
                if line == doc.delimiter:
                    break
                lines.append(line + "\n")
            doc.body = "".join(lines)
            doc.parts = [Lit(doc.body, True)] if doc.literal else \
                Lexer(doc.body).quoted_text(heredoc=True)

    def word(self) -> Word:
        text = self.text
        start = self.pos
        parts: list[Any] = []
        buf: list[str] = []

        def flush(quoted: bool = False) -> None:
            if buf:
                parts.append(Lit("".join(buf), quoted))
                buf.clear()

        while self.pos < len(text):
            char = text[self.pos]
            if char in " \t\n;&|()<>":
                break
            if char == "\\":
                if self.pos + 1 < len(text):
                    flush()
                    if text[self.pos + 1] == "\n":
                        self.line += 1
                    else:
                        parts.append(Lit(text[self.pos + 1], True))
                    self.pos += 2
                else:
                    buf.append("\\")
                    self.pos += 1
            elif char == "'":
                end = text.find("'", self.pos + 1)
                if end < 0:
                    raise NeedMore("unterminated quoted string")
                flush()
                parts.append(Lit(text[self.pos + 1:end], True))
                self.line += text.count("\n", self.pos, end)
                self.pos = end + 1
            elif char == '"':
                flush()
                self.pos += 1
                parts.extend(self.quoted_text())
            elif char == "$":
                flush()
                parts.append(self.dollar(quoted=False))
            elif char == "`":
                flush()
                parts.append(self.backquote(quoted=False))
            else:
                buf.append(char)
                self.pos += 1
        flush()
        return Word(parts, text[start:self.pos])

    def quoted_text(self, heredoc: bool = False) -> list[Any]:
        """Inside double quotes (up to the closing one), or a here-document's whole body."""
        text = self.text
        parts: list[Any] = []
        buf: list[str] = []
        specials = "$`\\\n" if heredoc else '$`"\\\n'
        while True:
            if self.pos >= len(text):
                if heredoc:
                    break
                raise NeedMore("unterminated quoted string")
            char = text[self.pos]
            if char == '"' and not heredoc:
                self.pos += 1
                break
            if char == "\\" and self.pos + 1 < len(text) and text[self.pos + 1] in specials:
                if text[self.pos + 1] != "\n":
                    buf.append(text[self.pos + 1])
                self.pos += 2
            elif char in "$`":
                if buf:
                    parts.append(Lit("".join(buf), True))
                    buf.clear()
                parts.append(self.dollar(quoted=True) if char == "$"
                             else self.backquote(quoted=True))
            else:
                if char == "\n":
                    self.line += 1
                buf.append(char)
                self.pos += 1
        if buf or not parts:
            parts.append(Lit("".join(buf), True))
        return parts

    def backquote(self, quoted: bool) -> Subst:
        """`` `command` ``: backslash-escaped `` ` ``, ``$`` and ``\\`` inside."""
        text = self.text
        i = self.pos + 1
        inner: list[str] = []
        while i < len(text) and text[i] != "`":
            if text[i] == "\\" and i + 1 < len(text) and text[i + 1] in "`$\\":
                inner.append(text[i + 1])
                i += 2
                continue
            inner.append(text[i])
            i += 1
        if i >= len(text):
            raise NeedMore("unterminated `...`")
        self.pos = i + 1
        return Subst("".join(inner), quoted)

    def dollar(self, quoted: bool) -> Any:
        text = self.text
        self.pos += 1  # the "$"
        nxt = text[self.pos:self.pos + 1]
        if nxt == "(":
            end = self._matching(self.pos)
            if text[self.pos:self.pos + 2] == "((" and text[end - 1:end] == ")":
                expr = text[self.pos + 2:end - 1]
                self.pos = end + 1
                return Arith(expr, quoted)
            script = text[self.pos + 1:end]
            self.pos = end + 1
            return Subst(script, quoted)
        if nxt == "{":
            end = text.find("}", self.pos)
            if end < 0:
                raise NeedMore("missing '}'")
            inner = text[self.pos + 1:end]
            self.pos = end + 1
            return self._braced(inner, quoted)
        if nxt and nxt in _SPECIAL_PARAMS:
            self.pos += 1
            return Param(nxt, quoted)
        match = _NAME.match(text, self.pos)
        if match:
            self.pos = match.end()
            return Param(match.group(0), quoted)
        return Lit("$", quoted)

    def _braced(self, inner: str, quoted: bool) -> Param:
        if inner.startswith("#") and len(inner) > 1:
            return Param(inner[1:], quoted, op="#")
        match = _NAME.match(inner) or re.match(r"[?#@*$!0-9-]", inner)
        if match is None:
            raise ShellSyntaxError("bad substitution")
        name = match.group(0)
        rest = inner[len(name):]
        if not rest:
            return Param(name, quoted)
        for op in (":-", ":=", ":+", ":?", "-", "=", "+", "?"):
            if rest.startswith(op):
                word = Lexer(rest[len(op):]).word_for_param()
                return Param(name, quoted, op=op, arg=word)
        raise Unsupported(f"parameter expansion ${{{inner}}}")

    def word_for_param(self) -> list[Any]:
        parts: list[Any] = []
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char == "$":
                parts.append(self.dollar(quoted=False))
            elif char == '"':
                self.pos += 1
                parts.extend(self.quoted_text())
            elif char == "'":
                end = self.text.find("'", self.pos + 1)
                end = len(self.text) if end < 0 else end
                parts.append(Lit(self.text[self.pos + 1:end], True))
                self.pos = end + 1
            else:
                parts.append(Lit(char, False))
                self.pos += 1
        return parts

    def _matching(self, start: int) -> int:
        """Index of the ``)`` closing the ``(`` at ``start`` (quotes respected)."""
        depth = 0
        i = start
        text = self.text
        while i < len(text):
            char = text[i]
            if char == "\\":
                i += 2
                continue
            if char == "'":
                i = text.find("'", i + 1)
                if i < 0:
                    break
            elif char == '"':
                i += 1
                while i < len(text) and text[i] != '"':
                    i += 2 if text[i] == "\\" else 1
            elif char == "(":
                depth += 1
            elif char == ")":
                depth -= 1
                if depth == 0:
                    return i
            i += 1
        raise NeedMore("unterminated $(...)")


class ArithError(Exception):
    """An arithmetic expansion ash refuses (``divide by zero``, a bad expression)."""


_ARITH_TOKEN = re.compile(r"\s*(?:(0[xX][0-9a-fA-F]+|\d+)|([A-Za-z_][A-Za-z0-9_]*)|"
                          r"(<<|>>|<=|>=|==|!=|&&|\|\||[-+*/%()<>!~&|^]))")
_BINARY_PRECEDENCE = [("||",), ("&&",), ("|",), ("^",), ("&",), ("==", "!="),
                      ("<", ">", "<=", ">="), ("<<", ">>"), ("+", "-"), ("*", "/", "%")]


def arithmetic(expr: str, lookup: Callable[[str], str]) -> int:
    """Evaluate ``$((expr))`` (integers, variables by name, C operators without assignment)."""
    tokens: list[tuple[str, Any]] = []
    pos = 0
    while pos < len(expr):
        if expr[pos:].strip() == "":
            break
        match = _ARITH_TOKEN.match(expr, pos)
        if match is None:
            raise ArithError("arithmetic syntax error")
        pos = match.end()
        if match.group(1):
            tokens.append(("num", int(match.group(1), 0)))
        elif match.group(2):
            value = lookup(match.group(2)).strip() or "0"
            try:
                tokens.append(("num", int(value, 0)))
            except ValueError:
                raise ArithError("arithmetic syntax error") from None
        else:
            tokens.append(("op", match.group(3)))
    index = 0

    def peek() -> tuple[str, Any] | None:
        return tokens[index] if index < len(tokens) else None

    def unary() -> int:
        nonlocal index
        token = peek()
        if token is None:
            raise ArithError("arithmetic syntax error")
        index += 1
        if token[0] == "num":
            return int(token[1])
        if token[1] == "(":
            value = binary(0)
            if peek() != ("op", ")"):
                raise ArithError("arithmetic syntax error")
            index += 1
            return value
        operand = unary()
        return {"-": -operand, "+": operand, "!": int(not operand), "~": ~operand}.get(
            token[1], operand) if token[1] in "-+!~" else _raise_arith()

    def binary(level: int) -> int:
        nonlocal index
        if level == len(_BINARY_PRECEDENCE):
            return unary()
        left = binary(level + 1)
        while True:
            token = peek()
            if token is None or token[0] != "op" or token[1] not in _BINARY_PRECEDENCE[level]:
                return left
            index += 1
            right = binary(level + 1)
            left = _apply(token[1], left, right)

    result = binary(0)
    if index != len(tokens):
        raise ArithError("arithmetic syntax error")
    return result


def _raise_arith() -> int:
    raise ArithError("arithmetic syntax error")


def _apply(op: str, left: int, right: int) -> int:
    if op in ("/", "%"):
        if right == 0:
            raise ArithError("divide by zero")
        quotient = abs(left) // abs(right) * (1 if (left >= 0) == (right >= 0) else -1)
        return quotient if op == "/" else left - quotient * right
    return {
        "+": lambda: left + right, "-": lambda: left - right, "*": lambda: left * right,
        "<<": lambda: left << right, ">>": lambda: left >> right, "<": lambda: int(left < right),
        ">": lambda: int(left > right), "<=": lambda: int(left <= right),
        ">=": lambda: int(left >= right), "==": lambda: int(left == right),
        "!=": lambda: int(left != right), "&": lambda: left & right, "^": lambda: left ^ right,
        "|": lambda: left | right, "&&": lambda: int(bool(left and right)),
        "||": lambda: int(bool(left or right)),
    }[op]()


# AST nodes


@dataclass
class Redir:
    fd: int
    op: str
    target: Word
    heredoc: HereDoc | None = None


@dataclass
class Simple:
    assigns: list[tuple[str, Word]]
    words: list[Word]
    redirs: list[Redir]
    line: int


@dataclass
class Pipeline:
    commands: list[Any]
    negate: bool = False


@dataclass
class AndOr:
    first: Pipeline
    rest: list[tuple[str, Pipeline]]


@dataclass
class Sequence:
    items: list[AndOr]


@dataclass
class If:
    branches: list[tuple[Sequence, Sequence]]
    otherwise: Sequence | None
    redirs: list[Redir] = field(default_factory=list)


@dataclass
class Loop:
    cond: Sequence
    body: Sequence
    until: bool
    redirs: list[Redir] = field(default_factory=list)


@dataclass
class For:
    var: str
    words: list[Word] | None
    body: Sequence
    redirs: list[Redir] = field(default_factory=list)


@dataclass
class Group:
    body: Sequence
    subshell: bool
    redirs: list[Redir] = field(default_factory=list)


def _describe(token: Token) -> str:
    if token.kind == "eof":
        return "end of file"
    if token.kind == "op" and token.value == "\n":
        return "newline"
    if token.kind == "word":
        return f'"{token.value.raw}"'
    return f'"{token.value}"'


class Parser:
    """Recursive descent over ash's grammar (the subset the fake runs)."""

    def __init__(self, text: str) -> None:
        self.tokens = Lexer(text).tokens()
        self.pos = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.pos]

    def is_op(self, *ops: str) -> bool:
        return self.tok.kind == "op" and self.tok.value in ops

    def is_kw(self, *words: str) -> bool:
        return self.tok.kind == "word" and self.tok.value.plain in words

    def take(self) -> Token:
        token = self.tok
        self.pos += 1
        return token

    def unexpected(self, expecting: str = "") -> ShellSyntaxError:
        token = self.tok
        extra = f' (expecting "{expecting}")' if expecting else ""
        cls = NeedMore if token.kind == "eof" else ShellSyntaxError
        return cls(f"unexpected {_describe(token)}{extra}")

    def newlines(self) -> None:
        while self.is_op("\n"):
            self.take()

    def script(self) -> Sequence:
        seq = self.sequence(())
        if self.tok.kind != "eof":
            raise self.unexpected()
        return seq

    def sequence(self, stops: tuple[str, ...], expecting: str = "") -> Sequence:
        items: list[AndOr] = []
        while True:
            self.newlines()
            if self.tok.kind == "eof" or self.is_kw(*stops) or self.is_op(")") and ")" in stops:
                break
            if self.is_op(";", ";;"):
                raise self.unexpected()
            items.append(self.and_or())
            if self.is_op("&"):
                raise Unsupported("background jobs (&)")
            if self.is_op(";", "\n"):
                self.take()
                continue
            if self.tok.kind == "eof" or self.is_kw(*stops) or self.is_op(")") and ")" in stops:
                break
            raise self.unexpected(expecting)
        return Sequence(items)

    def and_or(self) -> AndOr:
        first = self.pipeline()
        rest: list[tuple[str, Pipeline]] = []
        while self.is_op("&&", "||"):
            op = self.take().value
            self.newlines()
            rest.append((op, self.pipeline()))
        return AndOr(first, rest)

    def pipeline(self) -> Pipeline:
        negate = False
        if self.is_kw("!"):
            self.take()
            negate = True
        commands = [self.command()]
        while self.is_op("|"):
            self.take()
            self.newlines()
            commands.append(self.command())
        return Pipeline(commands, negate)

    def command(self) -> Any:
        following = self.tokens[self.pos + 1] if self.pos + 1 < len(self.tokens) else None
        if self.tok.kind == "word" and following is not None and following.kind == "op" \
                and following.value == "(":
            raise Unsupported("function definitions")
        if self.tok.kind == "word":
            word = self.tok.value.plain
            if word == "if":
                return self.with_redirs(self.if_clause())
            if word in ("while", "until"):
                return self.with_redirs(self.loop(word == "until"))
            if word == "for":
                return self.with_redirs(self.for_clause())
            if word == "{":
                self.take()
                body = self.sequence(("}",), "}")
                self.expect_kw("}")
                return self.with_redirs(Group(body, False))
            if word in ("case", "function", "select"):
                raise Unsupported(f"'{word}'")
            if word in ("then", "else", "elif", "fi", "do", "done", "esac", "}", "in"):
                raise self.unexpected()
        if self.is_op("("):
            self.take()
            body = self.sequence((")",), ")")
            if not self.is_op(")"):
                raise self.unexpected(")")
            self.take()
            return self.with_redirs(Group(body, True))
        return self.simple()

    def expect_kw(self, word: str) -> None:
        if not self.is_kw(word):
            raise self.unexpected(word)
        self.take()

    def with_redirs(self, node: Any) -> Any:
        while self.is_op("<", ">", ">>", ">&", "<&", ">|", "<>", "<<", "<<-") \
                or self.tok.kind == "io":
            node.redirs.append(self.redirect())
        return node

    def if_clause(self) -> If:
        self.take()
        branches = []
        otherwise = None
        cond = self.sequence(("then",), "then")
        self.expect_kw("then")
        body = self.sequence(("elif", "else", "fi"), "fi")
        branches.append((cond, body))
        while self.is_kw("elif"):
            self.take()
            cond = self.sequence(("then",), "then")
            self.expect_kw("then")
            branches.append((cond, self.sequence(("elif", "else", "fi"), "fi")))
        if self.is_kw("else"):
            self.take()
            otherwise = self.sequence(("fi",), "fi")
        self.expect_kw("fi")
        return If(branches, otherwise)

    def loop(self, until: bool) -> Loop:
        self.take()
        cond = self.sequence(("do",), "do")
        self.expect_kw("do")
        body = self.sequence(("done",), "done")
        self.expect_kw("done")
        return Loop(cond, body, until)

    def for_clause(self) -> For:
        self.take()
        if self.tok.kind != "word" or not _NAME.fullmatch(self.tok.value.raw):
            raise ShellSyntaxError("bad for loop variable")
        var = self.take().value.raw
        words: list[Word] | None = None
        self.newlines()
        if self.is_kw("in"):
            self.take()
            words = []
            while self.tok.kind == "word":
                words.append(self.take().value)
            if not self.is_op(";", "\n"):
                raise self.unexpected("do")
            self.take()
        elif self.is_op(";"):
            self.take()
        self.newlines()
        self.expect_kw("do")
        body = self.sequence(("done",), "done")
        self.expect_kw("done")
        return For(var, words, body)

    def redirect(self) -> Redir:
        fd = None
        if self.tok.kind == "io":
            fd = self.take().value
        op = self.take().value
        if self.tok.kind != "word":
            raise self.unexpected()
        token = self.take()
        if fd is None:
            fd = 0 if op in ("<", "<&", "<>", "<<", "<<-") else 1
        return Redir(fd, op, token.value, token.heredoc)

    def simple(self) -> Simple:
        line = self.tok.line
        assigns: list[tuple[str, Word]] = []
        words: list[Word] = []
        redirs: list[Redir] = []
        while True:
            if self.tok.kind == "io" or self.is_op("<", ">", ">>", ">&", "<&", ">|", "<>",
                                                    "<<", "<<-"):
                redirs.append(self.redirect())
            elif self.tok.kind == "word":
                word = self.tok.value
                match = re.match(r"([A-Za-z_][A-Za-z0-9_]*)=", word.raw)
                if not words and match and word.parts and isinstance(word.parts[0], Lit) \
                        and not word.parts[0].quoted \
                        and word.parts[0].text.startswith(match.group(0)):
                    self.take()
                    first = word.parts[0]
                    rest = [Lit(first.text[len(match.group(0)):], False), *word.parts[1:]]
                    assigns.append((match.group(1), Word(rest, word.raw[len(match.group(0)):])))
                else:
                    words.append(self.take().value)
            else:
                break
        if not (assigns or words or redirs):
            raise self.unexpected()
        return Simple(assigns, words, redirs, line)


class _Buffer:
    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def __call__(self, data: bytes) -> None:
        self.chunks.append(data)

    def value(self) -> bytes:
        return b"".join(self.chunks)


class _FileSink:
    """A ``>``/``>>`` redirection: writes go to the file as they come."""

    def __init__(self, call: Call, path: str) -> None:
        self.call = call
        self.path = path

    def __call__(self, data: bytes) -> None:
        if data:
            with self.call.lock:
                self.call.fs().write(self.path, data, append=True)


SHELL_BUILTINS = ("cd", "exit", "export", "unset", "read", "set", "shift", "eval", "exec",
                  ".", "source", "readonly")
SHELL_APPLETS = ("echo", "test", "[", "[[", "true", "false", ":", "pwd")


class Shell:
    """One ash process: variables, positional parameters, working directory, options."""

    def __init__(self, call: Call, name: str, args: list[str]) -> None:
        self.call = call
        self.process = call.process
        self.vars: dict[str, str] = dict(call.env)
        self.exported: set[str] = set(call.env)
        self.name = name
        self.args = list(args)
        self.status = 0
        self.cwd = call.cwd
        self.errexit = False
        self.line = 0
        self.vars["PWD"] = self.cwd
        self.vars["SHLVL"] = str(_int(self.vars.get("SHLVL", "0")) + 1)
        self.exported.update(("PWD", "SHLVL"))
        self.vars.setdefault("IFS", " \t\n")

    def copy(self) -> Shell:
        other = Shell.__new__(Shell)
        other.__dict__.update(self.__dict__)
        other.vars = dict(self.vars)
        other.exported = set(self.exported)
        other.args = list(self.args)
        return other

    # -- messages --------------------------------------------------------------------------
    def error(self, io: dict[int, Any], text: str) -> None:
        io[2](f"sh: {text}\n".encode("utf-8", "surrogateescape"))

    def fatal(self, io: dict[int, Any], builtin: str, text: str) -> ShellExit:
        """A builtin's error that ends the shell (``exit abc``): message, exit status 2."""
        self.complain(io, builtin, text)
        return ShellExit(2)

    def complain(self, io: dict[int, Any], builtin: str, text: str) -> int:
        """A builtin's error: ``sh: cd: line N: ...`` (N counts from 0), status 2."""
        self.error(io, f"{builtin}: line {self.line}: {text}")
        return 2

    # -- running ---------------------------------------------------------------------------
    def run_text(self, text: str, io: dict[int, Any]) -> int:
        try:
            tree = Parser(text).script()
        except Unsupported as exc:
            self.error(io, f"lxd-fake: unsupported shell syntax: {exc}")
            return 2
        except ShellSyntaxError as exc:
            self.error(io, f"syntax error: {exc}")
            return 2
        return self.run(tree, io)

    def run(self, node: Any, io: dict[int, Any], condition: bool = False) -> int:
        self.process.check()
        if isinstance(node, Sequence):
            status = 0
            for item in node.items:
                status = self.run(item, io, condition)
            self.status = status
            return status
        if isinstance(node, AndOr):
            status = self.run(node.first, io, condition or bool(node.rest))
            for index, (op, pipeline) in enumerate(node.rest):
                if (op == "&&") == (status == 0):
                    inner = condition or index < len(node.rest) - 1
                    status = self.run(pipeline, io, inner)
            self.status = status
            return status
        if isinstance(node, Pipeline):
            status = self.pipeline(node, io, condition)
            self.status = status
            if self.errexit and status != 0 and not condition and not node.negate:
                raise ShellExit(status)
            return status
        return self.compound(node, io, condition)

    def pipeline(self, node: Pipeline, io: dict[int, Any], condition: bool) -> int:
        stdin = io[0]
        status = 0
        commands = node.commands
        for index, command in enumerate(commands):
            last = index == len(commands) - 1
            buffer = None if last else _Buffer()
            stage = {**io, 0: stdin, 1: io[1] if buffer is None else buffer}
            if len(commands) > 1:
                sub = self.copy()  # each stage of a pipeline is a subshell
                try:
                    status = sub.command(command, stage, condition)
                except ShellExit as exc:
                    status = exc.status
            else:
                status = self.command(command, stage, condition)
            if buffer is not None:
                stdin = BytesReader(buffer.value())
        if node.negate:
            status = 0 if status else 1
        return status

    def command(self, node: Any, io: dict[int, Any], condition: bool) -> int:
        if isinstance(node, Simple):
            return self.simple(node, io)
        return self.compound(node, io, condition)

    def compound(self, node: Any, io: dict[int, Any], condition: bool) -> int:
        io = self.redirect(node.redirs, io)
        if io is None:
            return 1
        if isinstance(node, If):
            for cond, body in node.branches:
                if self.run(cond, io, True) == 0:
                    return self.run(body, io, condition)
            return self.run(node.otherwise, io, condition) if node.otherwise else 0
        if isinstance(node, Loop):
            status = 0
            while True:
                self.process.check()
                if (self.run(node.cond, io, True) == 0) == node.until:
                    return status
                status = self.run(node.body, io, condition)
        if isinstance(node, For):
            values = self.args if node.words is None else self.expand_words(node.words, io)
            status = 0
            for value in values:
                self.process.check()
                self.vars[node.var] = value
                status = self.run(node.body, io, condition)
            return status
        if isinstance(node, Group):
            if not node.subshell:
                return self.run(node.body, io, condition)
            sub = self.copy()
            try:
                return sub.run(node.body, io, condition)
            except ShellExit as exc:
                return exc.status
        raise Unsupported(type(node).__name__)

    # -- simple commands -------------------------------------------------------------------
    def simple(self, node: Simple, io: dict[int, Any]) -> int:
        self.line = node.line - 1
        self.subst_status: int | None = None
        argv = self.expand_words(node.words, io)
        assigns = [(name, self.expand_one(word, io)) for name, word in node.assigns]
        redirected = self.redirect(node.redirs, io)
        if redirected is None:
            return 1
        io = redirected
        if not argv:
            for name, value in assigns:
                self.vars[name] = value
            return self.subst_status or 0
        name = argv[0]
        if name in SHELL_BUILTINS:
            for key, value in assigns:
                self.vars[key] = value
            return self.builtin(argv, io)
        env = {key: self.vars[key] for key in self.vars if key in self.exported}
        env.update(assigns)
        call = self.call.with_argv(argv, env=env, cwd=self.cwd, stdin=io[0], out=io[1],
                                   err=io[2])
        if name in SHELL_APPLETS and self.process.handlers.find(name) is None:
            return APPLETS[name](call)
        return run_program(call, from_shell=True)

    def redirect(self, redirs: list[Redir], io: dict[int, Any]) -> dict[int, Any] | None:
        if not redirs:
            return io
        io = dict(io)
        for redir in redirs:
            if redir.op in ("<<", "<<-"):
                doc = redir.heredoc
                body = "" if doc is None else (
                    doc.body if doc.literal else self.expand_one(Word(doc.parts, ""), io))
                io[redir.fd] = BytesReader(body.encode("utf-8", "surrogateescape"))
                continue
            target = self.expand_one(redir.target, io)
            if redir.op in (">&", "<&"):
                if target == "-":
                    io[redir.fd] = _discard if redir.fd else BytesReader()
                    continue
                if not target.isdigit() or int(target) not in io:
                    self.error(io, f"{target}: bad file descriptor" if target.isdigit()
                               else "ambiguous redirect")
                    return None
                io[redir.fd] = io[int(target)]
                continue
            if redir.op in ("<", "<>"):
                if target == "/dev/null":
                    io[redir.fd] = BytesReader()
                    continue
                try:
                    with self.call.lock:
                        data = self.call.fs().read(target, self.cwd)
                except FSError as exc:
                    why = "no such file" if exc.code == "ENOENT" else exc.c_text
                    self.error(io, f"can't open {target}: {why}")
                    return None
                io[redir.fd] = BytesReader(data)
                continue
            if target == "/dev/null":
                io[redir.fd] = _discard
                continue
            if target in ("/dev/stdout", "/dev/stderr"):
                io[redir.fd] = io[1 if target == "/dev/stdout" else 2]
                continue
            try:
                with self.call.lock:
                    path = self.call.fs().write(target, b"", append=redir.op == ">>",
                                                uid=self.process.uid, gid=self.process.gid,
                                                cwd=self.cwd)
            except FSError as exc:
                why = "nonexistent directory" if exc.code == "ENOENT" else exc.c_text
                self.error(io, f"can't create {target}: {why}")
                return None
            io[redir.fd] = _FileSink(self.call, path)
        return io

    # -- builtins --------------------------------------------------------------------------
    def builtin(self, argv: list[str], io: dict[int, Any]) -> int:
        name, args = argv[0], argv[1:]
        if name == "exit":
            if not args:
                raise ShellExit(self.status)
            if not re.fullmatch(r"\d+", args[0]):
                raise self.fatal(io, "exit", f"Illegal number: {args[0]}")
            raise ShellExit(int(args[0]) & 0xFF)
        if name == "cd":
            return self.cd(args, io)
        if name in ("export", "readonly"):
            if not args or args == ["-p"]:
                for key in sorted(self.exported):
                    if key in self.vars:
                        io[1](f"export {key}='{self.vars[key]}'\n".encode())
                return 0
            for arg in args:
                key, sep, value = arg.partition("=")
                if sep:
                    self.vars[key] = value
                self.exported.add(key)
            return 0
        if name == "unset":
            for key in args:
                if key != "-v":
                    self.vars.pop(key, None)
                    self.exported.discard(key)
            return 0
        if name == "read":
            return self.read(args, io)
        if name == "set":
            return self.set(args, io)
        if name == "shift":
            count = _int(args[0]) if args else 1
            if count > len(self.args):
                return 1
            self.args = self.args[count:]
            return 0
        if name == "eval":
            return self.run_text(" ".join(args), io)
        if name == "exec":
            if not args:
                return 0
            env = {key: self.vars[key] for key in self.vars if key in self.exported}
            call = self.call.with_argv(args, env=env, cwd=self.cwd, stdin=io[0], out=io[1],
                                       err=io[2])
            raise ShellExit(run_program(call, from_shell=True))
        if name in (".", "source"):
            if not args:
                return 0
            try:
                with self.call.lock:
                    text = self.call.fs().read(args[0], self.cwd).decode("utf-8", "replace")
            except FSError as exc:
                return self.complain(io, ".", f"can't open '{args[0]}': {exc.c_text}")
            return self.run_text(text, io)
        raise Unsupported(name)

    def cd(self, args: list[str], io: dict[int, Any]) -> int:
        target = args[0] if args else self.vars.get("HOME", "/")
        if target == "-":
            target = self.vars.get("OLDPWD", self.cwd)
        logical = posixpath.normpath(posixpath.join(self.cwd, target))
        try:
            with self.call.lock:
                found = self.call.fs().stat(logical)
            if found.entry is None or found.entry.type != "directory":
                raise FSError("ENOTDIR", target)
        except FSError as exc:
            return self.complain(io, "cd", f"can't cd to {target}: {exc.c_text}")
        self.vars["OLDPWD"] = self.cwd
        self.cwd = logical
        self.vars["PWD"] = logical
        return 0

    def read(self, args: list[str], io: dict[int, Any]) -> int:
        raw = False
        names: list[str] = []
        items = list(args)
        while items and items[0].startswith("-") and len(items[0]) > 1:
            flag = items.pop(0)
            if flag == "-r":
                raw = True
            elif flag == "-p" and items:
                io[2](items.pop(0).encode())
            else:
                raise Unsupported(f"read {flag}")
        names = items or ["REPLY"]
        line = io[0].readline()
        status = 0 if line.endswith(b"\n") else 1
        text = line.decode("utf-8", "surrogateescape").rstrip("\n")
        if not raw:
            text = re.sub(r"\\(.)", r"\1", text.replace("\\\n", ""))
        ifs = self.vars.get("IFS", " \t\n")
        fields = text.strip(ifs).split(None, len(names) - 1) if ifs.strip() == "" else \
            re.split("[" + re.escape(ifs) + "]", text, maxsplit=len(names) - 1)
        for index, name in enumerate(names):
            self.vars[name] = fields[index] if index < len(fields) else ""
        return status

    def set(self, args: list[str], io: dict[int, Any]) -> int:
        if not args:
            for key in sorted(self.vars):
                io[1](f"{key}='{self.vars[key]}'\n".encode())
            return 0
        items = list(args)
        while items:
            item = items.pop(0)
            if item == "--":
                self.args = items
                return 0
            if item[:1] in "-+" and len(item) > 1:
                for flag in item[1:]:
                    if flag == "e":
                        self.errexit = item[0] == "-"
                    elif flag not in "ux":
                        raise Unsupported(f"set {item[0]}{flag}")
                continue
            self.args = [item, *items]
            return 0
        return 0

    # -- expansion -------------------------------------------------------------------------
    def param(self, part: Param, io: dict[int, Any]) -> str | list[str]:
        name = part.name
        if name == "@" or name == "*":
            value: str | list[str] | None = list(self.args)
        elif name == "#":
            value = str(len(self.args))
        elif name == "?":
            value = str(self.status)
        elif name == "$":
            value = "1"
        elif name == "!":
            value = ""
        elif name == "-":
            value = "e" if self.errexit else ""
        elif name.isdigit():
            index = int(name)
            value = self.name if index == 0 else (
                self.args[index - 1] if index <= len(self.args) else None)
        else:
            value = self.vars.get(name)
        if part.op == "#":
            text = " ".join(value) if isinstance(value, list) else (value or "")
            return str(len(text))
        if part.op:
            empty = value is None or (part.op.startswith(":") and value in ("", []))
            op = part.op.lstrip(":")
            word = Word(part.arg or [], "")
            if op == "-" and empty:
                return self.expand_one(word, io)
            if op == "=" and empty:
                value = self.expand_one(word, io)
                self.vars[name] = value
            elif op == "+":
                return "" if empty else self.expand_one(word, io)
            elif op == "?" and empty:
                message = self.expand_one(word, io) or "parameter not set"
                self.error(io, f"{name}: {message}")
                raise ShellExit(2)
        if value is None:
            return ""
        return value

    def substitute(self, script: str, io: dict[int, Any]) -> str:
        sub = self.copy()
        buffer = _Buffer()
        try:
            status = sub.run_text(script, {**io, 1: buffer})
        except ShellExit as exc:
            status = exc.status
        self.subst_status = status
        self.status = status
        return buffer.value().decode("utf-8", "surrogateescape").rstrip("\n")

    def fields(self, word: Word, io: dict[int, Any]) -> list[list[tuple[str, bool]]]:
        """Fields of ``word`` after expansion and splitting: segments of (text, globbable)."""
        ifs = self.vars.get("IFS", " \t\n")
        out: list[list[tuple[str, bool]]] = []
        current: list[tuple[str, bool]] = []
        started = False  # the current field exists (even if empty: quotes)

        def split_in(text: str) -> None:
            nonlocal current, started
            if not ifs:
                current.append((text, True))
                started = True
                return
            pieces = re.split("[" + re.escape(ifs) + "]+", text)
            for index, piece in enumerate(pieces):
                if index > 0 and (started or current):
                    out.append(current)
                    current, started = [], False
                if piece:
                    current.append((piece, True))
                    started = True

        for part in word.parts:
            if isinstance(part, Lit):
                current.append((part.text, not part.quoted))
                started = True
            elif isinstance(part, Param):
                value = self.param(part, io)
                if isinstance(value, list):
                    if part.quoted and part.name == "@":
                        for index, item in enumerate(value):
                            if index > 0:
                                out.append(current)
                                current = []
                            current.append((item, False))
                            started = True
                        continue
                    value = " ".join(value)
                if part.quoted:
                    current.append((value, False))
                    started = True
                else:
                    split_in(value)
            else:
                value = self.arith(part, io) if isinstance(part, Arith) else \
                    self.substitute(part.script, io)
                if part.quoted:
                    current.append((value, False))
                    started = True
                else:
                    split_in(value)
        if started or current:
            out.append(current)
        return out

    def expand_words(self, words: list[Word], io: dict[int, Any]) -> list[str]:
        argv: list[str] = []
        for word in words:
            for segs in self.fields(word, io):
                argv.extend(self.glob(segs))
        return argv

    def expand_one(self, word: Word, io: dict[int, Any]) -> str:
        """Expansion without splitting or globbing (assignments, redirection targets)."""
        out = []
        for part in word.parts:
            if isinstance(part, Lit):
                out.append(part.text)
            elif isinstance(part, Param):
                value = self.param(part, io)
                out.append(" ".join(value) if isinstance(value, list) else value)
            elif isinstance(part, Arith):
                out.append(self.arith(part, io))
            else:
                out.append(self.substitute(part.script, io))
        return "".join(out)

    def arith(self, part: Arith, io: dict[int, Any]) -> str:
        try:
            text = self.expand_one(Word(Lexer(part.expr).quoted_text(heredoc=True), ""), io)
            return str(arithmetic(text, lambda name: self.vars.get(name, "")))
        except ArithError as exc:
            self.error(io, str(exc))
            raise ShellExit(2) from None

    def glob(self, segs: list[tuple[str, bool]]) -> list[str]:
        text = "".join(seg for seg, _ in segs)
        if not any(ok and re.search(r"[*?\[]", seg) for seg, ok in segs):
            return [text]
        pattern = "".join(seg if ok else re.sub(r"([*?\[])", r"[\1]", seg)
                          for seg, ok in segs)
        with self.call.lock:
            matches = _glob(self.call.fs(), pattern, self.cwd)
        return matches or [text]


def _glob(fs: FS, pattern: str, cwd: str) -> list[str]:
    absolute = pattern.startswith("/")
    parts = [p for p in pattern.split("/") if p]
    results = [("/" if absolute else "", "/" if absolute else cwd)]
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        nxt: list[tuple[str, str]] = []
        for shown, real in results:
            if not re.search(r"[*?\[]", part):
                literal = re.sub(r"\[(.)\]", r"\1", part)
                path = posixpath.join(real, literal)
                if fs.exists(path) or (last and fs.tree.get(path)):
                    nxt.append((shown + literal if shown.endswith("/") or not shown
                                else f"{shown}/{literal}", path))
                continue
            try:
                found = fs.stat(real)
            except FSError:
                continue
            if found.entry is None or found.entry.type != "directory":
                continue
            for name in fs.listdir(found.path):
                if name.startswith(".") and not part.startswith("."):
                    continue
                if fnmatch.fnmatchcase(name, part):
                    shown_name = shown + name if shown.endswith("/") or not shown \
                        else f"{shown}/{name}"
                    nxt.append((shown_name, posixpath.join(found.path, name)))
        results = nxt
    return sorted(shown for shown, _ in results)


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        return 0


def run_shell(call: Call) -> int:
    """``sh``/``ash``: ``-c script [name [args]]``, ``script [args]``, or commands on stdin."""
    args = call.argv[1:]
    errexit = False
    while args and args[0].startswith("-") and args[0] not in ("-", "-c", "--"):
        for flag in args[0][1:]:
            if flag == "e":
                errexit = True
            elif flag not in "xu":
                call.complain(f"sh: -{flag}: invalid option\n")
                return 2
        args = args[1:]
    if args and args[0] == "--":
        args = args[1:]
    io: dict[int, Any] = {0: call.stdin, 1: call.out, 2: call.err}
    if args and args[0] == "-c":
        if len(args) < 2:
            call.complain("sh: -c requires an argument\n")
            return 2
        shell = Shell(call, args[2] if len(args) > 2 else "sh", args[3:])
        shell.errexit = errexit
        return _top(shell, lambda: shell.run_text(args[1], io))
    if args and args[0] != "-":
        try:
            with call.lock:
                text = call.fs().read(args[0], call.cwd).decode("utf-8", "surrogateescape")
        except FSError as exc:
            if exc.code == "EISDIR":
                return 0  # ash reads nothing from a directory
            call.complain(f"sh: can't open '{args[0]}': {exc.c_text}\n")
            return 2
        shell = Shell(call, args[0], args[1:])
        shell.errexit = errexit
        return _top(shell, lambda: shell.run_text(text, io))
    shell = Shell(call, "sh", [])
    shell.errexit = errexit
    return _top(shell, lambda: _repl(shell, io))


def _top(shell: Shell, body: Callable[[], int]) -> int:
    try:
        return body()
    except ShellExit as exc:
        return exc.status
    except Unsupported as exc:
        shell.call.complain(f"sh: lxd-fake: unsupported shell syntax: {exc}\n")
        return 2


def _repl(shell: Shell, io: dict[int, Any]) -> int:
    """Commands read from stdin, each run as soon as it is complete (as ash does)."""
    pending = ""
    status = 0
    prompt = bool(getattr(shell.process, "interactive", False)) and io[0] is shell.call.stdin
    if prompt:  # on a terminal: ash's greeting, then a prompt (and a cursor position query)
        io[2](b"\n\n" + BANNER.replace("multi-call binary.\n\n", "built-in shell (ash)\n")
              .encode() + b"Enter 'help' for a list of built-in commands.\n\n")
    while True:
        if prompt:
            home = shell.vars.get("HOME", "")
            where = "~" + shell.cwd[len(home):] if home and shell.cwd.startswith(home) \
                else shell.cwd
            sign = "#" if shell.process.uid == 0 else "$"
            io[2](f"{where} {sign} \x1b[6n".encode() if not pending else b"> ")
        line = io[0].readline()
        if not line:
            if pending.strip():
                status = shell.run_text(pending, io)
            return status
        pending += line.decode("utf-8", "surrogateescape")
        try:
            tree = Parser(pending).script()
        except NeedMore:
            continue
        except Unsupported as exc:
            shell.error(io, f"lxd-fake: unsupported shell syntax: {exc}")
            pending, status = "", 2
            continue
        except ShellSyntaxError as exc:
            shell.error(io, f"syntax error: {exc}")
            pending, status = "", 2
            continue
        pending = ""
        status = shell.run(tree, io)
