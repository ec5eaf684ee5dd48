"""``lxd-fake``: run the fake LXD in the foreground until SIGINT or SIGTERM.

    lxd-fake serve [--dir D] [--https HOST:PORT | --no-https] [--preseed FILE] [--no-baseline]

Bad arguments end with one line on stderr (``lxd-fake: error: ...``) and exit status 2;
a server that cannot start (directory, port, preseed) ends with exit status 1.
"""

from __future__ import annotations

import argparse
import errno
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

PROG = "lxd-fake"


class CLIError(Exception):
    """A problem to report on one line, without a traceback."""


def parse_address(text: str) -> str:
    """``HOST:PORT`` (``[v6]:PORT`` too) checked and returned as ``HOST:PORT``."""
    host, sep, port_text = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise argparse.ArgumentTypeError(
            f"invalid HOST:PORT {text!r} (e.g. 127.0.0.1:8443, or port 0 for a free port)")
    return f"{host}:{int(port_text)}"


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (exit status 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG, description="A fake LXD 5.0.2 server (in memory) for tests and development.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    serve = sub.add_parser(
        "serve", help="run the fake in the foreground until Ctrl+C (SIGINT) or SIGTERM",
        description="Serve the LXD REST API on DIR/unix.socket and over HTTPS.")
    serve.add_argument("--dir", metavar="D", help="directory for unix.socket and the TLS files "
                       "(default: a temporary directory, removed on exit)")
    https = serve.add_mutually_exclusive_group()
    https.add_argument("--https", metavar="HOST:PORT", type=parse_address,
                       default="127.0.0.1:0",
                       help="HTTPS listener address; port 0 picks a free port "
                            "(default: 127.0.0.1:0)")
    https.add_argument("--no-https", action="store_true", help="serve the unix socket only")
    serve.add_argument("--preseed", metavar="FILE",
                       help="an `lxd init --preseed` YAML file (- for stdin) laid over the "
                            "starting state")
    serve.add_argument("--no-baseline", action="store_true",
                       help="start as a freshly installed LXD (no pool, no network, empty "
                            "default profile) instead of the scripts/lxd-host baseline")
    return parser


def _read_preseed(path: str) -> dict[str, Any]:
    from . import preseed

    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
    except OSError as exc:
        raise CLIError(f"cannot read preseed {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise CLIError(f"cannot read preseed {path}: not UTF-8 text") from None
    try:
        return preseed.parse(text)
    except preseed.PreseedError as exc:
        raise CLIError(f"invalid preseed {path}: {exc}") from None


def _prepare_dir(path: str | None) -> str | None:
    if path is None:
        return None
    directory = Path(path)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CLIError(f"cannot create directory {path}: {exc.strerror or exc}") from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise CLIError(f"cannot write to directory {path}")
    sock = directory / "unix.socket"
    if len(os.fsencode(sock.absolute())) >= 108:
        raise CLIError(f"socket path too long for a unix socket: {sock.absolute()}")
    if sock.exists() and _listening(str(sock)):
        raise CLIError(f"a server is already listening on {sock}")
    return str(directory.absolute())


def _listening(path: str) -> bool:
    """Whether something accepts connections on the unix socket ``path``."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(path)
    except OSError:
        return False
    finally:
        probe.close()
    return True


def _describe_start_error(exc: OSError, https: str | None) -> str:
    if exc.errno == errno.EADDRINUSE:
        return f"cannot listen on {https}: address already in use"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"cannot listen on {https}: address not available on this machine"
    if isinstance(exc, socket.gaierror):
        return f"cannot listen on {https}: unknown host"
    if exc.errno == errno.EACCES and https:
        return f"cannot listen on {https}: permission denied"
    return f"cannot start: {exc.strerror or exc}"


def banner(fake: Any) -> str:
    """What a person needs to point pylxd or the ``lxc`` CLI at the fake."""
    lines = ["Fake LXD 5.0.2 is running (Ctrl+C to stop).",
             f"  unix socket  {fake.socket_path}"]
    if fake.https_url:
        lines += [f"  https        {fake.https_url}",
                  f"  CA file      {fake.ca_file}",
                  f"  server cert  {fake.tls.cert_file}"]
    lines += ["",
              "pylxd:",
              f"  pylxd.Client(endpoint={fake.socket_path!r})"]
    if fake.https_url:
        lines += [f"  pylxd.Client(endpoint={fake.https_url!r}, cert=(CRT, KEY),",
                  f"               verify={str(fake.tls.cert_file)!r})",
                  "    (trust CRT first: POST /1.0/certificates over the unix socket)"]
    lines += ["lxc:",
              f"  LXD_DIR={fake.directory} lxc list"]
    return "\n".join(lines)


def serve(args: argparse.Namespace) -> int:
    from . import preseed as preseed_mod
    from .server import FakeLXD

    document = _read_preseed(args.preseed) if args.preseed else None
    own_dir = args.dir is None
    directory = tempfile.mkdtemp(prefix="lxd-fake-") if own_dir else _prepare_dir(args.dir)
    https: str | bool = False if args.no_https else args.https
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    fake = None
    try:
        try:
            fake = FakeLXD(directory, https=https, preseed=document,
                           baseline=not args.no_baseline)
            fake.start()
        except preseed_mod.PreseedError as exc:
            raise CLIError(f"invalid preseed {args.preseed}: {exc}") from None
        except OSError as exc:
            raise CLIError(_describe_start_error(exc, https or None)) from None
        print(banner(fake), flush=True)
        while not stop.wait(3600):
            pass
    finally:
        if fake is not None:
            fake.close()
        if own_dir:
            shutil.rmtree(directory, ignore_errors=True)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("Fake LXD stopped.", flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lxd-fake`` console script and ``python -m fakeserver``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "serve":
            return serve(args)
    except CLIError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        return 130
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
