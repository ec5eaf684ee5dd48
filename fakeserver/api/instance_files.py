"""``/1.0/instances/{name}/files?path=``: an instance's files, as LXD 5.0.2 serves them.

LXD reaches the files over SFTP, so a failure other than a missing path is a 500 worded like
``sftp: "open /srv: is a directory" (SSH_FX_FAILURE)``, and a missing path is a 404 ``Not
Found`` (capital N). What the real daemon does, and the fake repeats:

* a relative path is taken from ``/``; error texts and event contexts show it with a ``/``
  prefixed, otherwise as sent (``//srv`` stays ``//srv``); symlinks in the middle are followed;
* GET of a file: its bytes (``Content-Disposition: inline;filename=<base>``, ``Last-Modified``
  unless the time is the epoch); of a directory: a sync list of names; of a symlink: its
  target, made absolute from the link's directory and cleaned (mode ``0777``,
  ``Last-Modified`` now); HEAD: the same headers with
  ``Content-Type: application/json`` and no body;
* POST of a file writes through a final symlink; an existing file keeps its mode and owner
  (the headers only apply to a new file: default ``0644``, directories ``0750``); POST of a
  directory that exists (as anything) succeeds and changes nothing; a symlink's mode and owner
  headers are ignored; ``X-LXD-mode`` is Go's ``ParseInt(s, 0)`` masked with ``0777``
  (``755`` is decimal), ``X-LXD-uid``/``gid`` are decimal, unparsable or negative means unset;
* files work whatever the instance's state (stopped and frozen too);
* lifecycle events ``instance-file-retrieved`` (GET, not HEAD), ``-pushed`` and ``-deleted``,
  with the path as context and no requestor.

Divergence: a directory lists its names sorted (LXD gives the filesystem's order).
"""

from __future__ import annotations

import posixpath
import re
import time
from email.utils import formatdate

from werkzeug.wrappers import Response

from .. import gourl, responses
from ..app import Ctx
from ..gourl import go_quote
from ..responses import LXDError
from ..vfs import FS, Found, FSError
from . import instances

NEW_FILE_MODE = 0o644
NEW_DIR_MODE = 0o750
ID_RANGE = 10_000_001  # the container's id map (volatile.idmap: 0 -> 100000, 10000001 ids)


def display_path(raw: str) -> str:
    """The path as LXD words it: relative paths get a leading ``/``."""
    return raw if raw.startswith("/") else "/" + raw


_ESCAPED_BYTE = re.compile("([\udc80-\udcff])")


def go_quote_bytes(text: str) -> str:
    """Go's ``%q`` of ``text`` whose bytes that are not UTF-8 are surrogate escapes (as
    ``str.decode("utf-8", "surrogateescape")`` gives them): those come out as ``\\xNN``."""
    out = []
    for index, part in enumerate(_ESCAPED_BYTE.split(text)):
        if index % 2:
            out.append(f"\\x{ord(part) - 0xDC00:02x}")
        elif part:
            out.append(go_quote(part)[1:-1])
    return '"' + "".join(out) + '"'


def _sftp_error(exc: FSError, op: str, path: str) -> LXDError:
    """pkg/sftp's status error, ``sftp: %q (SSH_FX_FAILURE)``; a missing path is a 404."""
    if exc.code == "ENOENT":
        return LXDError(404, "Not Found")
    return LXDError(500, f"sftp: {go_quote_bytes(f'{op} {path}: {exc.go_text}')} "
                         "(SSH_FX_FAILURE)")


def _form(ctx: Ctx) -> list[tuple[str, str]] | None:
    """The body of a form-encoded POST, as Go's ``Request.FormValue`` reads it (its valid
    pairs; the body is used up); None for any other request."""
    kind = ctx.request.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if ctx.request.method != "POST" or kind != "application/x-www-form-urlencoded":
        return None
    pairs, _ = gourl.parse_query(ctx.raw_body())
    return pairs


def _path_arg(ctx: Ctx) -> str:
    """``FormValue("path")``: a form body's ``path`` comes before the query's."""
    form = dict(reversed(_form(ctx) or []))
    raw = form["path"] if "path" in form else ctx.request.args.get("path", "")
    if raw == "":
        raise LXDError(400, "Missing path argument")
    return display_path(raw)


def _atoi(text: str) -> int | None:
    """Go's ``strconv.Atoi`` / ``ParseInt(text, 10, 64)``: None when it fails."""
    body = text[1:] if text[:1] in "+-" else text
    if not body or not body.isascii() or not body.isdigit():
        return None
    value = -int(body) if text.startswith("-") else int(body)
    return value if -(1 << 63) <= value < (1 << 63) else None


def _header_id(text: str) -> int:
    """``X-LXD-uid``/``gid``: decimal; unparsable or negative is unset (0 for a new file).

    Ids are truncated to 32 bits, and one outside the container's id map does not apply.
    """
    value = _atoi(text)
    if value is None or value < 0:
        return 0
    value %= 1 << 32
    return value if value < ID_RANGE else 0


def _header_mode(text: str) -> int:
    """``X-LXD-mode`` as LXD 5.0.2 reads it: ``Atoi`` must accept it (else unset, -1); then
    ``ParseInt(text, 0)`` (a leading 0 means octal) masked with ``0777``, or when that fails
    (``08``) the decimal value as is."""
    value = _atoi(text)
    if value is None:
        return -1
    body = text.lstrip("+-")
    if len(body) > 1 and body.startswith("0"):
        if any(digit in "89" for digit in body):
            return value & 0o7777 if value >= 0 else -1
        parsed = int(body, 8) * (-1 if text.startswith("-") else 1)
    else:
        parsed = value
    return (parsed % (1 << 32)) & 0o777


def go_clean(path: str) -> str:
    """Go's ``filepath.Clean`` (``//a/`` -> ``/a``)."""
    cleaned = posixpath.normpath(path)
    return "/" + cleaned.lstrip("/") if cleaned.startswith("//") else cleaned


def _link_target(path: str, target: str) -> str:
    """What GET shows for a symlink: its target made absolute from the link's directory (as
    the path was sent) and cleaned; the link itself keeps the text it was given."""
    return go_clean(target if target.startswith("/") else
                    posixpath.join(posixpath.dirname(path), target))


def _modified(ns: int) -> str:
    """``X-LXD-modified``: Go's ``time.Time.String()`` of a whole-second UTC time."""
    return time.strftime("%Y-%m-%d %H:%M:%S +0000 UTC", time.gmtime(ns // 1_000_000_000))


def _lxd_headers(resp: Response, fs: FS, found: Found) -> None:
    entry = found.entry
    assert entry is not None
    mode = 0o777 if entry.type == "symlink" else entry.mode & 0o777
    resp.headers["X-Lxd-Gid"] = str(entry.gid)
    resp.headers["X-Lxd-Mode"] = f"{mode:04o}"
    resp.headers["X-Lxd-Modified"] = _modified(fs.mtime(found.path))
    resp.headers["X-Lxd-Type"] = entry.type
    resp.headers["X-Lxd-Uid"] = str(entry.uid)


def _content_reply(ctx: Ctx, data: bytes, name: str, modified_ns: int) -> Response:
    """What Go's ``http.ServeContent`` sends for a file (ranges and conditionals included)."""
    resp = Response(data, status=200, content_type="application/octet-stream")
    resp.headers["Content-Disposition"] = f"inline;filename={name}"
    if modified_ns >= 1_000_000_000:  # ServeContent leaves the epoch out
        resp.headers["Last-Modified"] = formatdate(modified_ns // 1_000_000_000, usegmt=True)
    resp.make_conditional(ctx.request, accept_ranges=True, complete_length=len(data))
    resp.headers.pop("Date", None)  # the server adds its own
    return resp


def _instance(ctx: Ctx, name: str, prefix: str) -> dict:
    """The instance; LXD's file handlers check the name before the type."""
    if "/" in name:
        raise LXDError(400, "Invalid instance name")
    return instances.lookup(ctx, name, prefix)


@instances.routes("/<name>/files", "GET")
def get_file(ctx: Ctx, name: str, prefix: str) -> Response:
    head = ctx.request.method == "HEAD"
    with ctx.state.lock:
        inst = _instance(ctx, name, prefix)
        path = _path_arg(ctx)
        fs = FS(inst)
        try:
            found = fs.lstat(path)
        except FSError as exc:
            raise _sftp_error(exc, "lstat", path) from None
        entry = found.entry
        assert entry is not None
        if head:
            resp = Response(b"", status=200, content_type="application/json")
            _lxd_headers(resp, fs, found)
            return resp
        if entry.type == "directory":
            resp = responses.sync(fs.listdir(found.path))
        elif entry.type == "symlink":
            target = _link_target(path, entry.target).encode("utf-8", "surrogateescape")
            resp = _content_reply(ctx, target,
                                  posixpath.basename(path), time.time_ns())
        else:
            resp = _content_reply(ctx, entry.content, posixpath.basename(path),
                                  fs.mtime(found.path))
        _lxd_headers(resp, fs, found)
    ctx.events.lifecycle("instance-file-retrieved", instances.instance_url(name, ctx.project),
                         ctx.project, {"path": path})
    return resp


@instances.routes("/<name>/files", "POST")
def post_file(ctx: Ctx, name: str, prefix: str) -> Response:
    headers = ctx.request.headers
    with ctx.state.lock:
        inst = _instance(ctx, name, prefix)
        path = _path_arg(ctx)
        uid = _header_id(headers.get("X-LXD-uid", ""))
        gid = _header_id(headers.get("X-LXD-gid", ""))
        mode = _header_mode(headers.get("X-LXD-mode", ""))
        kind = headers.get("X-LXD-type", "") or "file"
        write = headers.get("X-LXD-write", "") or "overwrite"
        if write not in ("overwrite", "append"):
            raise LXDError(400, f"Bad file write mode: {write}")
        if kind not in ("file", "directory", "symlink"):
            raise LXDError(400, f"Bad file type: {kind}")
    # Read to EOF (lxc sends chunked bodies); a form body was read as the form.
    data = b"" if _form(ctx) is not None else ctx.raw_body()
    with ctx.state.lock:
        inst = _instance(ctx, name, prefix)
        fs = FS(inst)
        owner = {"uid": uid, "gid": gid}
        try:
            if kind == "file":
                op = "open"
                fs.write(path, data, append=write == "append", create=write == "overwrite",
                         mode=mode if mode >= 0 else NEW_FILE_MODE, **owner)
            elif kind == "directory":
                op = "mkdir"
                try:
                    fs.mkdir(path, mode=mode if mode >= 0 else NEW_DIR_MODE, **owner)
                except FSError as exc:
                    if exc.code != "EEXIST":
                        raise
            else:
                target = data.decode("utf-8", "surrogateescape")
                op = f"symlink {target}"
                fs.symlink(target, path)
        except FSError as exc:
            raise _sftp_error(exc, op, path) from None
    ctx.events.lifecycle("instance-file-pushed", instances.instance_url(name, ctx.project),
                         ctx.project, {"path": path})
    return responses.empty()


@instances.routes("/<name>/files", "DELETE")
def delete_file(ctx: Ctx, name: str, prefix: str) -> Response:
    with ctx.state.lock:
        inst = _instance(ctx, name, prefix)
        path = _path_arg(ctx)
        try:
            FS(inst).remove(path)
        except FSError as exc:
            raise _sftp_error(exc, "remove", path) from None
    ctx.events.lifecycle("instance-file-deleted", instances.instance_url(name, ctx.project),
                         ctx.project, {"path": path})
    return responses.empty()
