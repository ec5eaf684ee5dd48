"""``/1.0/images`` and ``/1.0/images/aliases``: images (with their bytes) and aliases.

Images live in the per-project family ``images`` (fingerprint -> record, including the
uploaded bytes), aliases in the family ``aliases`` (name -> ``{name, description, target}``),
both keyed by the project that owns the images (``features.images``).

For other modules (instances):

* :func:`find_image` resolves ``source`` of an instance create (alias, fingerprint prefix or
  properties) with LXD's errors; :func:`rootfs_of` gives the image's root filesystem as a tree.
* :func:`mark_used` stamps ``last_used_at``; :func:`add_image` stores an image from bytes
  (seeding, publishing).
* :func:`set_publisher` installs the function that turns an instance (or snapshot) into image
  bytes for ``POST /1.0/images`` with ``source.type`` ``instance``/``container``/
  ``virtual-machine``/``snapshot``.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import re
import secrets
import socket
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any

from werkzeug.http import parse_options_header
from werkzeug.wrappers import Response

from .. import filters, imagefile, responses
from ..app import Ctx
from ..gourl import go_quote, url_segment
from ..imagefile import ImageError
from ..operations import Operation, OperationFailed
from ..responses import ZERO_TIME, LXDError, go_time
from ..schema import (
    ANY,
    BOOL,
    LIST_STR,
    MAP_STR,
    STR,
    Body,
    Struct,
    decode_value,
    first_value,
    list_of,
)
from ..state import State
from . import route

PROJECT_MISSING = "Check if project has images: fetch project: Project not found"
TOKEN = "Image download token"

IMAGE_PUT = Struct("ImagePut", auto_update=BOOL, properties=MAP_STR, public=BOOL,
                   expires_at=ANY, profiles=LIST_STR)
IMAGE_ALIAS = Struct("ImageAlias", name=STR, description=STR)
IMAGES_POST_SOURCE = Struct("ImagesPostSource", alias=STR, certificate=STR, protocol=STR,
                            server=STR, image_type=STR, mode=STR, type=STR, url=STR, name=STR,
                            fingerprint=STR, secret=STR, project=STR)
IMAGES_POST = IMAGE_PUT.extend("ImagesPost", filename=STR, source=IMAGES_POST_SOURCE,
                               compression_algorithm=STR, aliases=list_of(IMAGE_ALIAS))
ALIASES_POST = Struct("ImageAliasesPost", description=STR, target=STR, name=STR, type=STR)
ALIAS_PUT = Struct("ImageAliasesEntryPut", description=STR, target=STR)
ALIAS_POST = Struct("ImageAliasesEntryPost", name=STR)
JMAP = "shared.Jmap"


# -- Go decoding helpers ---------------------------------------------------------------------


def _first_value(raw: bytes) -> Any:
    """The first JSON value of ``raw`` as Go's ``json.Decoder`` reads it (trailing data is
    ignored); raises the decoder's syntax error as a 400."""
    return first_value(raw)


def decode_first(raw: bytes, struct: Struct) -> tuple[Body, Any]:
    """``json.NewDecoder(body).Decode(&struct)``: the Body and the raw first value."""
    value = _first_value(raw)
    if isinstance(value, dict):
        _check_times(value, struct)
    return decode_value(value, struct), value


def decode_jmap(raw: bytes) -> dict[str, Any]:
    """Decoding into LXD's ``shared.Jmap`` (a ``map[string]interface{}``)."""
    value = _first_value(raw)
    if value is None:
        return {}
    if not isinstance(value, dict):
        kind = {list: "array", str: "string", bool: "bool"}.get(type(value), "number")
        raise LXDError(400, f"json: cannot unmarshal {kind} into Go value of type {JMAP}")
    return value


def _field(data: dict[str, Any], name: str) -> Any:
    if name in data:
        return data[name]
    for key, value in data.items():
        if key.lower() == name:
            return value
    return None


def _check_times(data: dict[str, Any], struct: Struct) -> None:
    # time.Time's UnmarshalJSON errors abort decoding at once (type errors are kept for last).
    if "expires_at" in struct.fields:
        value = _field(data, "expires_at")
        if value is not None:
            parse_go_time(json.dumps(value, ensure_ascii=False))


def _go_quote(text: str) -> str:
    out = ['"']
    for ch in text:
        if ord(ch) >= 0x80 or ch < " ":
            out.extend(f"\\x{b:02x}" for b in ch.encode())
        else:
            out.append("\\" + ch if ch in '"\\' else ch)
    out.append('"')
    return "".join(out)


_LAYOUT = '"2006-01-02T15:04:05Z07:00"'
_DAYS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]


class _Bad(Exception):
    pass


def _getnum(value: str, fixed: bool) -> tuple[int, str]:
    if not value[:1].isdigit() or not value[:1].isascii():
        raise _Bad
    if not value[1:2].isdigit() or not value[1:2].isascii():
        if fixed:
            raise _Bad
        return int(value[0]), value[1:]
    return int(value[:2]), value[2:]


def parse_go_time(raw: str) -> str:
    """Parse the JSON text of a ``time.Time`` as Go does; return it as Go renders it.

    Errors are Go's ``time.ParseError`` messages (a 400, as LXD gives them).
    """
    if raw == "null":
        return ZERO_TIME

    def fail(elem: str, value: str) -> LXDError:
        return LXDError(400, f"parsing time {_go_quote(raw)} as {_go_quote(_LAYOUT)}: cannot "
                             f"parse {_go_quote(value)} as {_go_quote(elem)}")

    def out_of_range(what: str, value: str) -> LXDError:
        return LXDError(400, f"parsing time {_go_quote(raw)}: {what} out of range")

    value = raw
    parts: dict[str, int] = {}
    offset: int | None = None
    nsec = 0
    steps = [('"', "2006"), ("-", "01"), ("-", "02"), ("T", "15"), (":", "04"), (":", "05"),
             ("", "Z07:00"), ('"', "")]
    for prefix, std in steps:
        for ch in prefix:
            if not value or value[0] != ch:
                raise fail(prefix, value)
            value = value[1:]
        if not std:
            if value:
                raise LXDError(400, f"parsing time {_go_quote(raw)}: extra text: "
                                    f"{_go_quote(value)}")
            break
        hold = value
        try:
            if std == "2006":
                if len(value) < 4 or not value[0].isdigit():
                    raise _Bad
                if not value[:4].isascii() or not value[:4].isdigit():
                    raise _Bad
                parts["year"], value = int(value[:4]), value[4:]
            elif std in ("01", "02", "04", "05"):
                number, value = _getnum(value, True)
                name = {"01": "month", "02": "day", "04": "minute", "05": "second"}[std]
                parts[name] = number
                if std == "01" and not 1 <= number <= 12:
                    raise out_of_range("month", value)
                if std in ("04", "05") and number >= 60:
                    raise out_of_range(name, value)
                if std == "05" and len(value) >= 2 and value[0] in ".," and value[1].isdigit():
                    end = 1
                    while end < len(value) and value[end].isdigit() and value[end].isascii():
                        end += 1
                    digits = value[1:end]
                    nsec = int((digits + "000000000")[:9])
                    value = value[end:]
            elif std == "15":
                parts["hour"], value = _getnum(value, False)
                if parts["hour"] >= 24:
                    raise out_of_range("hour", value)
            else:  # Z07:00
                if value[:1] == "Z":
                    offset, value = 0, value[1:]
                else:
                    if len(value) < 6 or value[3] != ":" or value[0] not in "+-":
                        raise _Bad
                    hours, _ = _getnum(value[1:3], True)
                    minutes, _ = _getnum(value[4:6], True)
                    offset = (hours * 60 + minutes) * 60 * (-1 if value[0] == "-" else 1)
                    value = value[6:]
        except _Bad:
            raise fail(std, hold) from None
    year, month, day = parts["year"], parts["month"], parts["day"]
    days = _DAYS[month - 1] + (1 if month == 2 and (year % 4 == 0 and year % 100 != 0
                                                     or year % 400 == 0) else 0)
    if day < 1 or day > days:
        raise LXDError(400, f"parsing time {_go_quote(raw)}: day out of range")
    text = (f"{year:04d}-{month:02d}-{day:02d}T{parts['hour']:02d}:{parts['minute']:02d}:"
            f"{parts['second']:02d}")
    if nsec:
        text += "." + f"{nsec:09d}".rstrip("0")
    if not offset:
        return text + "Z"
    sign = "-" if offset < 0 else "+"
    minutes = abs(offset) // 60
    return f"{text}{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def _unix_time(seconds: int) -> str:
    """``time.Unix(seconds, 0)`` as LXD renders it (UTC)."""
    seconds = max(min(seconds, 253402300799), -62135596800)
    try:
        return go_time(seconds * 1_000_000_000)
    except (OverflowError, ValueError, OSError):
        return ZERO_TIME


def _http_date(seconds: float) -> str:
    return formatdate(seconds, usegmt=True)


# -- the stored objects ----------------------------------------------------------------------


@dataclass
class Published:
    """What a publisher hands back: the image bytes (unified, or split with ``rootfs``)."""

    data: bytes
    rootfs: bytes | None = None
    properties: dict[str, str] = field(default_factory=dict)
    vm: bool = False


Publisher = Callable[[State, str, Body], Published]
SourceCheck = Callable[[State, str, str, str], bool]
_publisher: list[Publisher | None] = [None]
_source_check: list[SourceCheck | None] = [None]


def set_publisher(publisher: Publisher | None, exists: SourceCheck | None = None) -> None:
    """Install the function that turns ``(state, project, ImagesPost body)`` into image bytes.

    It runs inside the "Downloading image" operation holding the state lock; it raises
    :class:`OperationFailed` / :class:`LXDError` to fail it. Its ``properties`` are the
    image's unless the request sends some (then only the request's count, as in LXD).
    ``exists(state, project, source type, name)`` answers the synchronous check (False: 404
    ``Instance not found``); by default an instance of that name must be in the project
    (``inst/snap`` names the instance ``inst``).
    """
    _publisher[0] = publisher
    _source_check[0] = exists


def _source_exists(state: State, project: str, kind: str, name: str) -> bool:
    check = _source_check[0]
    if check is not None:
        return check(state, project, kind, name)
    return name.split("/", 1)[0] in state.families["instances"].get(project, {})


def images_of(state: State, owner: str) -> dict[str, Any]:
    return state.families["images"].setdefault(owner, {})


def aliases_of(state: State, owner: str) -> dict[str, Any]:
    """The aliases of ``owner`` (the project whose images they name)."""
    return state.families["aliases"].setdefault(owner, {})


def new_record(meta: bytes, rootfs: bytes | None, info: imagefile.Metadata, *,
               image_type: str, filename: str = "", public: bool = False,
               auto_update: bool = False, properties: dict[str, str] | None = None,
               expires_at: str | None = None, profiles: list[str] | None = None,
               created_at: str | None = None, rootfs_name: str = "rootfs") -> dict[str, Any]:
    """An image record (not yet stored) for these bytes."""
    digest = hashlib.sha256(meta)
    if rootfs is not None:
        digest.update(rootfs)
    return {
        "fingerprint": digest.hexdigest(),
        "filename": filename,
        "size": len(meta) + len(rootfs or b""),
        "public": public,
        "auto_update": auto_update,
        "properties": dict(info.properties if properties is None else properties),
        "expires_at": expires_at if expires_at is not None else _unix_time(info.expiry_date),
        "profiles": list(["default"] if profiles is None else profiles),
        "architecture": imagefile.canonical_arch(info.architecture),
        "cached": False,
        "type": image_type,
        "created_at": created_at or _unix_time(info.creation_date),
        "last_used_at": ZERO_TIME,
        "uploaded_at": go_time(),
        "meta": meta,
        "rootfs": rootfs,
        "rootfs_name": rootfs_name,
    }


def add_image(state: State, project: str, meta: bytes, rootfs: bytes | None = None, *,
              filename: str = "", public: bool = False, properties: dict[str, str] | None = None,
              aliases: list[str] | None = None) -> dict[str, Any]:
    """Store an image from its bytes (seeding): validated as an upload is; returns the record.

    Raises :class:`ImageError` (LXD's upload message) for an invalid image and ``ValueError``
    when the image is already there.
    """
    info = imagefile.read_metadata(meta)
    image_type = info.type if rootfs is None else "container"
    if image_type == "unknown":
        raise ImageError("Invalid instance type")
    with state.lock:
        owner = state.owner("images", project)
        record = new_record(meta, rootfs, info, image_type=image_type, filename=filename,
                            public=public,
                            properties={**info.properties, **(properties or {})})
        images = images_of(state, owner)
        if record["fingerprint"] in images:
            raise ValueError("Image with same fingerprint already exists")
        images[record["fingerprint"]] = record
        for name in aliases or []:
            aliases_of(state, owner)[name] = new_alias(state, name, record["fingerprint"])
    return record


def new_alias(state: State, name: str, target: str, description: str = "") -> dict[str, Any]:
    """An alias record; ``id`` orders an image's aliases as LXD's database ids do."""
    ids = [a.get("id", 0) for table in state.families["aliases"].values() for a in table.values()]
    return {"name": name, "description": description, "target": target,
            "id": max(ids, default=0) + 1}


def url_of(fingerprint: str, project: str = "default") -> str:
    path = f"/1.0/images/{fingerprint}"
    return path if project == "default" else f"{path}?project={project}"


def alias_url(name: str, project: str = "default") -> str:
    # LXD escapes the name twice (a 5.0.2 quirk): "a/b" -> "a%252Fb".
    path = "/1.0/images/aliases/" + url_segment(name)
    return path if project == "default" else f"{path}?project={project}"


def render(state: State, owner: str, image: dict[str, Any]) -> dict[str, Any]:
    # In the order they were made (LXD lists them by database id).
    aliases = [{"name": a["name"], "description": a["description"]}
               for a in sorted(aliases_of(state, owner).values(), key=lambda a: a.get("id", 0))
               if a["target"] == image["fingerprint"]]
    return {
        "auto_update": image["auto_update"], "properties": image["properties"],
        "public": image["public"], "expires_at": image["expires_at"],
        "profiles": image["profiles"], "aliases": aliases,
        "architecture": image["architecture"], "cached": image["cached"],
        "filename": image["filename"], "fingerprint": image["fingerprint"],
        "size": image["size"], "type": image["type"], "created_at": image["created_at"],
        "last_used_at": image["last_used_at"], "uploaded_at": image["uploaded_at"],
    }


def etag(image: dict[str, Any]) -> str:
    return responses.etag_of([image["public"], image["auto_update"], image["properties"]])


def render_alias(state: State, owner: str, alias: dict[str, Any]) -> dict[str, Any]:
    image = images_of(state, owner).get(alias["target"])
    return {"description": alias["description"], "target": alias["target"],
            "name": alias["name"], "type": image["type"] if image else "container"}


def alias_etag(entry: dict[str, Any]) -> str:
    """The ETag of an alias: Go JSON of the struct, so fields in struct order (not sorted)."""
    text = json.dumps(entry, separators=(",", ":"), ensure_ascii=False)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return hashlib.sha256((text + "\n").encode()).hexdigest()


# -- lookups ---------------------------------------------------------------------------------


def _match(images: dict[str, Any], prefix: str) -> dict[str, Any] | None:
    """LXD's fingerprint lookup: exact, or a unique prefix."""
    if prefix in images:
        return images[prefix]
    found = [image for fp, image in images.items() if fp.startswith(prefix)]
    if len(found) > 1:
        raise LXDError(500, "More than one image matches")
    return found[0] if found else None


def _project(ctx: Ctx) -> str:
    if not ctx.state.has_project(ctx.project):
        raise LXDError(404, PROJECT_MISSING)
    return ctx.state.owner("images", ctx.project)


def _image(ctx: Ctx, fingerprint: str) -> tuple[str, dict[str, Any]]:
    owner = _project(ctx)
    image = _match(images_of(ctx.state, owner), fingerprint)
    if image is None:
        raise LXDError(404, "Image not found")
    return owner, image


def find_image(state: State, project: str, alias: str | None = None,
               fingerprint: str | None = None,
               properties: dict[str, str] | None = None) -> dict[str, Any] | None:
    """The image an instance create names, as LXD 5.0.2 resolves ``source``.

    ``fingerprint`` (a unique prefix) wins over ``alias``, which wins over ``properties``. A
    missing alias raises 404 ``Image alias not found`` (sync, before any operation);
    unmatched properties raise 500 ``No matching image could be found``; an unknown
    fingerprint returns None (LXD then fails the operation with ``Image not provided for
    instance creation``). Call with the state lock held.
    """
    owner = state.owner("images", project)
    images = images_of(state, owner)
    if fingerprint:
        return _match(images, fingerprint)
    if alias:
        entry = aliases_of(state, owner).get(alias)
        if entry is None or entry["target"] not in images:
            raise LXDError(404, "Image alias not found")
        return images[entry["target"]]
    if properties:
        found = [img for img in images.values()
                 if all(img["properties"].get(k) == v for k, v in properties.items())]
        if not found:
            raise LXDError(500, "No matching image could be found")
        return max(found, key=lambda img: (img["created_at"], img["uploaded_at"]))
    return None


def rootfs_of(image: dict[str, Any]) -> imagefile.Tree:
    """The image's root filesystem: ``{path: Entry(type, mode, uid, gid, content, target)}``."""
    try:
        return imagefile.rootfs_tree(image["meta"], image["rootfs"])
    except ImageError:
        return {"/": imagefile.Entry("directory", 0o755)}


def mark_used(image: dict[str, Any]) -> None:
    """Stamp ``last_used_at`` (an instance was created from the image)."""
    image["last_used_at"] = go_time()


# -- secrets (image download tokens) ---------------------------------------------------------


def _valid_secret(ctx: Ctx, fingerprint: str, secret: str) -> bool:
    """LXD's imageValidSecret: a token op of this image with this secret; using one cancels it
    (a token stays usable until its cancelled operation is forgotten, 5 s later)."""
    if not secret:
        return False
    for op in ctx.ops.all(ctx.project):
        if op.description != TOKEN or not op.resources:
            continue
        if not any(url.split("?")[0].endswith("/" + fingerprint)
                   for url in op.resources.get("images", [])):
            continue
        if not isinstance(op.metadata, dict) or op.metadata.get("secret") != secret:
            continue
        if not op.final:
            try:
                ctx.ops.cancel(op)
            except LXDError:
                pass
        return True
    return False


def _visible(ctx: Ctx, image: dict[str, Any]) -> bool:
    """May this client see ``image``? Trusted: yes; else public or a valid ``?secret=``."""
    secret = ctx.request.args.get("secret", "")
    valid = _valid_secret(ctx, image["fingerprint"], secret)
    return ctx.trusted or image["public"] or valid


# -- /1.0/images -----------------------------------------------------------------------------


@route("/1.0/images", "GET", untrusted=True)
def list_images(ctx: Ctx) -> Response:
    clauses = filters.from_query(ctx.request.args.get("filter", ""))
    with ctx.state.lock:
        owner = _project(ctx)
        out = []
        for fp, image in sorted(images_of(ctx.state, owner).items()):
            if not ctx.trusted and not image["public"]:
                continue
            shown = render(ctx.state, owner, image)
            if clauses and not filters.matches(shown, clauses):
                continue
            out.append(shown if ctx.recursion >= 1 else f"/1.0/images/{fp}")
        return responses.sync(out)


@route("/1.0/images/<fingerprint>", "GET", untrusted=True)
def get_image(ctx: Ctx, fingerprint: str) -> Response:
    with ctx.state.lock:
        owner, image = _image(ctx, fingerprint)
        if not _visible(ctx, image):
            raise LXDError(404, f'Image {go_quote(image["fingerprint"])} not found')
        return responses.sync(render(ctx.state, owner, image), etag=etag(image))


def _set_properties(image: dict[str, Any], properties: dict[str, str]) -> None:
    # Updating an image stores no empty property values.
    image["properties"] = {k: v for k, v in properties.items() if v != ""}


@route("/1.0/images/<fingerprint>", "PUT")
def put_image(ctx: Ctx, fingerprint: str) -> Response:
    with ctx.state.lock:
        owner, image = _image(ctx, fingerprint)
        ctx.check_etag(etag(image))
    body, value = decode_first(ctx.raw_body(), IMAGE_PUT)
    with ctx.state.lock:
        owner, image = _image(ctx, fingerprint)
        expires = body["expires_at"]
        sent = _field(value, "profiles") if isinstance(value, dict) else None
        profiles = body["profiles"] if sent is not None else ["default"]
        known = ctx.state.in_project("profiles", ctx.project)
        for name in profiles:
            if name not in known:
                raise LXDError(400, f"Profile '{name}' doesn't exist")
        if expires is not None:
            stamp = parse_go_time(json.dumps(expires, ensure_ascii=False))
            if stamp != ZERO_TIME:
                image["expires_at"] = stamp
        image["public"] = body["public"]
        image["auto_update"] = body["auto_update"]
        _set_properties(image, body["properties"])
        image["profiles"] = list(profiles)
    ctx.lifecycle("image-updated", url_of(image["fingerprint"], ctx.project))
    return responses.empty()


@route("/1.0/images/<fingerprint>", "PATCH")
def patch_image(ctx: Ctx, fingerprint: str) -> Response:
    with ctx.state.lock:
        owner, image = _image(ctx, fingerprint)
        ctx.check_etag(etag(image))
    raw = decode_jmap(ctx.raw_body())
    body, _ = decode_first(ctx.raw_body(), IMAGE_PUT)
    with ctx.state.lock:
        owner, image = _image(ctx, fingerprint)
        ctx.check_etag(etag(image))  # again: another client may have changed it meanwhile
        if "properties" in raw and raw["properties"] is None and image["properties"]:
            # LXD 5.0.2 writes into the nil map and panics before it saves anything: the
            # connection just closes and the image is unchanged.
            return _hijack_and_drop(ctx)
        if isinstance(raw.get("auto_update"), bool):
            image["auto_update"] = raw["auto_update"]
        if isinstance(raw.get("public"), bool):
            image["public"] = raw["public"]
        if "properties" in raw:
            merged = dict(body["properties"])
            for key, value in image["properties"].items():
                merged.setdefault(key, value)
            _set_properties(image, merged)
    ctx.lifecycle("image-updated", url_of(image["fingerprint"], ctx.project))
    return responses.empty()


@route("/1.0/images/<fingerprint>", "DELETE")
def delete_image(ctx: Ctx, fingerprint: str) -> Response:
    with ctx.state.lock:
        owner, image = _image(ctx, fingerprint)
        full = image["fingerprint"]
    project = ctx.project

    def run(op: Operation) -> None:
        images = images_of(ctx.state, owner)
        if full not in images:
            raise OperationFailed("Image not found")
        del images[full]
        aliases = aliases_of(ctx.state, owner)
        for name in [n for n, a in aliases.items() if a["target"] == full]:
            del aliases[name]
        # LXD only drops the project's record (and says nothing) while another project still
        # has the same image.
        if not any(full in others for others in ctx.state.families["images"].values()):
            ctx.lifecycle("image-deleted", url_of(full, project))

    return ctx.operation("Deleting image", run, resources={"images": [f"/1.0/images/{full}"]})


@route("/1.0/images/<fingerprint>/export", "GET", untrusted=True)
def export_image(ctx: Ctx, fingerprint: str) -> Response:
    with ctx.state.lock:
        owner, image = _image(ctx, fingerprint)
        if not _visible(ctx, image):
            raise LXDError(404, f'Image {go_quote(image["fingerprint"])} not found')
        fp, meta, rootfs = image["fingerprint"], image["meta"], image["rootfs"]
        rootfs_name, uploaded = image["rootfs_name"], image["uploaded_at"]
    ctx.lifecycle("image-retrieved", url_of(fp, ctx.project))
    name = fp + imagefile.extension(meta)
    if rootfs is None:
        resp = Response(meta, status=200, content_type="application/octet-stream")
        resp.headers["Content-Disposition"] = f"inline;filename={name}"
        resp.headers["Accept-Ranges"] = "bytes"
        resp.headers["Last-Modified"] = _http_date(_epoch(uploaded))
        return resp
    boundary = secrets.token_hex(30)
    parts = [(b"metadata", f"meta-{name}", meta),
             (rootfs_name.encode(), fp + imagefile.extension(rootfs), rootfs)]
    chunks: list[bytes] = []
    for index, (part, filename, data) in enumerate(parts):
        if index:
            chunks.append(b"\r\n")
        chunks.append(f"--{boundary}\r\nContent-Disposition: form-data; name=\"".encode()
                      + part + f'"; filename="{filename}"\r\n'.encode()
                      + b"Content-Type: application/octet-stream\r\n\r\n")
        chunks.append(data)
    # LXD closes the multipart writer twice: the final boundary comes out twice.
    closing = f"\r\n--{boundary}--\r\n".encode()
    chunks.extend([closing, closing])
    return Response(iter([b"".join(chunks)]), status=200,
                    content_type=f"multipart/form-data; boundary={boundary}")


def _epoch(stamp: str) -> float:
    try:
        base = stamp.split(".")[0].rstrip("Z")
        moment = datetime.datetime.strptime(base, "%Y-%m-%dT%H:%M:%S")
        return moment.replace(tzinfo=datetime.timezone.utc).timestamp()
    except ValueError:
        return 0.0


@route("/1.0/images/<fingerprint>/export", "POST")
def push_image(ctx: Ctx, fingerprint: str) -> Response:
    with ctx.state.lock:
        _image(ctx, fingerprint)
    raw = ctx.raw_body()
    target = ""
    if raw.strip():
        value = _first_value(raw)
        if isinstance(value, dict) and isinstance(_field(value, "target"), str):
            target = _field(value, "target")
    raise LXDError(500, f"Get {_go_quote_url(target + '/1.0')}: {_unreachable(target)}")


@route("/1.0/images/<fingerprint>/secret", "POST")
def image_secret(ctx: Ctx, fingerprint: str) -> Response:
    with ctx.state.lock:
        _, image = _image(ctx, fingerprint)
        full = image["fingerprint"]
    response = ctx.operation(TOKEN, None, cls="token", may_cancel=True,
                             resources={"images": [f"/1.0/images/{full}"]},
                             metadata={"secret": secrets.token_hex(32)})
    ctx.lifecycle("image-secret-created", url_of(full, ctx.project))
    return response


@route("/1.0/images/<fingerprint>/refresh", "POST")
def refresh_image(ctx: Ctx, fingerprint: str) -> Response:
    with ctx.state.lock:
        _image(ctx, fingerprint)
    project = ctx.project

    def run(op: Operation) -> None:
        raise OperationFailed(f'Failed to update image {go_quote(fingerprint)} in project '
                              f'{go_quote(project)}: Image source not found')

    return ctx.operation("Refreshing image", run)


# -- POST /1.0/images ------------------------------------------------------------------------


def _hijack_and_drop(ctx: Ctx) -> Response:
    """Where LXD 5.0.2's handler panics (net/http recovers): the connection just closes."""
    hijack = ctx.request.environ.get("fakeserver.hijack")
    if hijack is not None:
        conn, _ = hijack()
        try:
            conn.shutdown(socket.SHUT_RDWR)
        except (OSError, TypeError, AttributeError):
            pass
        try:
            conn.close()
        except OSError:
            pass
    return Response(b"", status=500)


@route("/1.0/images", "POST", untrusted=True)
def create_image(ctx: Ctx) -> Response:
    if not ctx.trusted:
        # Push mode with a secret is the only untrusted upload; the fake issues no push tokens.
        raise responses.forbidden()
    with ctx.state.lock:
        if not ctx.state.has_project(ctx.project):
            raise LXDError(404, "Fetch project database object: Project not found")
    raw = ctx.raw_body()
    ctype = ctx.request.headers.get("Content-Type", "")
    try:
        body, value = decode_first(raw, IMAGES_POST)
    except LXDError:
        if ctype == "application/json":
            raise
        return _upload(ctx, raw)
    source = _field(value, "source") if isinstance(value, dict) else None
    if not isinstance(source, dict):
        return _hijack_and_drop(ctx)
    kind = body["source"]["type"]
    if kind not in ("container", "instance", "virtual-machine", "snapshot", "image", "url"):
        raise LXDError(500, "Invalid images JSON")
    if kind in ("container", "instance", "virtual-machine", "snapshot"):
        return _publish(ctx, body)
    return ctx.operation("Downloading image", _remote_run(body))


def _go_quote_url(url: str) -> str:
    return '"' + url.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _url_error(url: str) -> str | None:
    """Go's ``url.Parse`` error for ``url`` (None when it parses)."""
    if url.startswith(":"):
        return f"parse {_go_quote_url(url)}: missing protocol scheme"
    if "://" not in url and ":" in url.split("/", 1)[0]:
        return f"parse {_go_quote_url(url)}: first path segment in URL cannot contain colon"
    return None


def _unreachable(url: str) -> str:
    """What Go's HTTP client says when ``url`` cannot be reached (the fake never connects)."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https"):
        return f'unsupported protocol scheme {go_quote(parsed.scheme)}'
    host = parsed.hostname or ""
    try:
        port = parsed.port
    except ValueError:
        port = None
    port = port or (443 if parsed.scheme == "https" else 80)
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return (f"Unable to connect to: {address} ([dial tcp {address}: connect: "
            "connection refused])")


def _remote_run(body: Body) -> Callable[[Operation], None]:
    source = body["source"]

    def run(op: Operation) -> None:
        if source["type"] == "url":
            url = source["url"]
            if not url:
                raise OperationFailed("Missing URL")
            problem = _url_error(url)
            if problem:
                raise OperationFailed(problem)
            raise OperationFailed(f"Head {_go_quote_url(url)}: {_unreachable(url)}")
        name = source["fingerprint"] or source["alias"]
        if not name:
            raise OperationFailed("must specify one of alias or fingerprint for init from image")
        server, protocol = source["server"], source["protocol"] or "lxd"
        if protocol == "lxd":
            problem = _url_error(server)
            if problem:
                raise OperationFailed(f'Failed to connect to LXD server {go_quote(server)}: '
                                      f'{problem}')
            raise OperationFailed(f'Failed to connect to LXD server {go_quote(server)}: Get '
                                  f'{_go_quote_url(server + "/1.0")}: {_unreachable(server)}')
        if protocol == "simplestreams":
            stream = server + "/streams/v1/index.json"
            raise OperationFailed("Failed getting remote image info: Failed getting image: "
                                  f"Failed parsing stream: Get {_go_quote_url(stream)}: "
                                  f"{_unreachable(server)}")
        raise OperationFailed(f"Unsupported protocol: {protocol}")

    return run


def _publish(ctx: Ctx, body: Body) -> Response:
    name = body["source"]["name"]
    if name:
        with ctx.state.lock:
            if not _source_exists(ctx.state, ctx.project, body["source"]["type"], name):
                raise LXDError(404, "Instance not found")
    project = ctx.project

    def run(op: Operation) -> None:
        if not name:
            raise OperationFailed("No source provided")
        publisher = _publisher[0]
        if publisher is None:
            raise OperationFailed("Publishing images is not supported by the fake")
        result = publisher(ctx.state, project, body)
        _store(ctx, op, project, result.data, result.rootfs, vm=result.vm,
               filename="", public=body["public"], auto_update=body["auto_update"],
               properties=body["properties"] or result.properties, replace=True,
               expires_at=ZERO_TIME, created_at=go_time(), aliases=body["aliases"])

    return ctx.operation("Downloading image", run)


def _store(ctx: Ctx, op: Operation, project: str, meta: bytes, rootfs: bytes | None, *,
           vm: bool | None, filename: str, public: bool, auto_update: bool,
           properties: dict[str, str] | None, expires_at: str | None,
           aliases: list[dict[str, str]] | None = None, expected: str = "",
           created_at: str | None = None, replace: bool = False) -> None:
    """Validate image bytes and store them (the second half of every image create)."""
    digest = hashlib.sha256(meta)
    if rootfs is not None:
        digest.update(rootfs)
    fp = digest.hexdigest()
    if expected and expected != fp:
        raise OperationFailed(f"fingerprints don't match, got {fp} expected {expected}")
    try:
        info = imagefile.read_metadata(meta)
    except ImageError as exc:
        raise OperationFailed(str(exc)) from None
    if rootfs is None:
        image_type = info.type
    else:
        image_type = "virtual-machine" if vm else "container"
    if image_type == "unknown":
        raise OperationFailed("Invalid instance type")
    merged = {} if replace else dict(info.properties)
    merged.update(properties or {})
    record = new_record(meta, rootfs, info, image_type=image_type, filename=filename,
                        public=public, auto_update=auto_update, properties=merged,
                        expires_at=expires_at, created_at=created_at,
                        rootfs_name="rootfs.img" if vm else "rootfs")
    with ctx.state.lock:
        if not ctx.state.has_project(project):
            raise OperationFailed("Fetch project database object: Project not found")
        owner = ctx.state.owner("images", project)
        images = images_of(ctx.state, owner)
        op.update_metadata({"fingerprint": fp, "size": str(record["size"])})
        if fp in images:
            # an upload and a publish (``replace``) word it differently in LXD 5.0.2
            raise OperationFailed(f"The image already exists: {fp}" if replace
                                  else "Image with same fingerprint already exists")
        images[fp] = record
        table = aliases_of(ctx.state, owner)
        for alias in aliases or []:
            if alias["name"] in table:
                raise OperationFailed(f"Alias already exists: {alias['name']}")
            table[alias["name"]] = new_alias(ctx.state, alias["name"], fp,
                                             alias["description"])
    ctx.lifecycle("image-created", url_of(fp, project), {"type": image_type})


def _header_properties(values: list[str]) -> dict[str, str]:
    """``X-LXD-properties``: ``url.ParseQuery`` of each header, first value of each key."""
    out: dict[str, str] = {}
    for header in values:
        seen: dict[str, str] = {}
        for pair in header.split("&"):
            if not pair or ";" in pair:
                continue
            key, _, value = pair.partition("=")
            try:
                key = urllib.parse.unquote_plus(key, errors="strict")
                value = urllib.parse.unquote_plus(value, errors="strict")
            except UnicodeDecodeError:
                continue
            if re.search(r"%(?![0-9A-Fa-f]{2})", pair):
                continue
            seen.setdefault(key, value)
        out.update(seen)
    return out


class _Multipart:
    """Go's ``multipart.Reader``, enough for an image upload: parts read in order."""

    def __init__(self, raw: bytes, boundary: str) -> None:
        self.raw = raw
        self.pos = 0
        self.boundary = boundary.encode()
        self.first = True

    def _line(self) -> bytes | None:
        if self.pos >= len(self.raw):
            return None
        end = self.raw.find(b"\n", self.pos)
        if end < 0:
            line, self.pos = self.raw[self.pos:], len(self.raw)
            return line
        line, self.pos = self.raw[self.pos:end + 1], end + 1
        return line

    def next_part(self) -> tuple[str, str, bytes]:
        """``(form name, file name, content)`` of the next part; raises OperationFailed."""
        if not self.boundary:
            raise OperationFailed("multipart: boundary is empty")
        dash = b"--" + self.boundary
        while True:
            line = self._line()
            if line is None:
                raise OperationFailed("multipart: NextPart: EOF")
            rest = line[len(dash):] if line.startswith(dash) else None
            if rest is None:
                continue
            if rest.startswith(b"--"):
                raise OperationFailed("EOF")
            if rest.strip(b" \t\r\n") == b"":
                break
        headers: dict[str, str] = {}
        while True:
            line = self._line()
            if line is None:
                raise OperationFailed("unexpected EOF")
            if line in (b"\r\n", b"\n"):
                break
            key, _, value = line.decode("latin-1").partition(":")
            headers[key.strip().lower()] = value.strip()
        end = self.raw.find(b"\r\n" + dash, self.pos)
        if end < 0:
            raise OperationFailed("unexpected EOF")
        content = self.raw[self.pos:end]
        self.pos = end + 2
        disposition, params = parse_options_header(headers.get("content-disposition", ""))
        name = params.get("name", "") if disposition == "form-data" else ""
        filename = params.get("filename", "")
        if filename:
            filename = filename.rstrip("/").rsplit("/", 1)[-1] or "/"
        return name, filename, content


def _upload(ctx: Ctx, raw: bytes) -> Response:
    headers = ctx.request.headers
    public = headers.get("X-LXD-public", "").lower() in ("true", "1", "yes", "on")
    properties = _header_properties(headers.getlist("X-LXD-properties"))
    expected = headers.get("X-LXD-fingerprint", "")
    ctype, params = parse_options_header(headers.get("Content-Type", ""))
    project = ctx.project

    def run(op: Operation) -> None:
        if ctype == "multipart/form-data":
            reader = _Multipart(raw, params.get("boundary", ""))
            name, _, meta = reader.next_part()
            if name != "metadata":
                raise OperationFailed("Invalid multipart image")
            name, filename, rootfs = reader.next_part()
            if name not in ("rootfs", "rootfs.img"):
                raise OperationFailed("Invalid multipart image")
            _store(ctx, op, project, meta, rootfs, vm=name == "rootfs.img", filename=filename,
                   public=public, auto_update=False, properties=properties, expires_at=None,
                   expected=expected)
        else:
            _store(ctx, op, project, raw, None, vm=None,
                   filename=headers.get("X-LXD-filename", ""), public=public,
                   auto_update=False, properties=properties, expires_at=None,
                   expected=expected)

    return ctx.operation("Downloading image", run, locked=False)


# -- /1.0/images/aliases ---------------------------------------------------------------------


def _alias(ctx: Ctx, name: str, trusted: bool = True) -> tuple[str, dict[str, Any]]:
    owner = _project(ctx)
    entry = aliases_of(ctx.state, owner).get(name)
    if entry is None:
        raise LXDError(404, "Image alias not found")
    if not trusted:
        image = images_of(ctx.state, owner).get(entry["target"])
        if image is None or not image["public"]:
            raise LXDError(404, "Image alias not found")
    return owner, entry


@route("/1.0/images/aliases", "GET")
def list_aliases(ctx: Ctx) -> Response:
    with ctx.state.lock:
        owner = _project(ctx)
        table = aliases_of(ctx.state, owner)
        if ctx.recursion >= 1:
            return responses.sync([render_alias(ctx.state, owner, table[n])
                                   for n in sorted(table)])
        return responses.sync([alias_url(n) for n in sorted(table)])


@route("/1.0/images/aliases", "POST")
def create_alias(ctx: Ctx) -> Response:
    """LXD 5.0.2's order: the body and its required fields, then the project."""
    body, _ = decode_first(ctx.raw_body(), ALIASES_POST)
    name, target = body["name"], body["target"]
    if not name or not target:
        raise LXDError(400, "name and target are required")
    with ctx.state.lock:
        owner = _project(ctx)
        table = aliases_of(ctx.state, owner)
        if name in table:
            raise LXDError(409, f'Alias {go_quote(name)} already exists')
        image = _match(images_of(ctx.state, owner), target)
        if image is None:
            raise LXDError(404, "Image not found")
        table[name] = new_alias(ctx.state, name, image["fingerprint"], body["description"])
    url = alias_url(name, ctx.project)
    ctx.lifecycle("image-alias-created", url, {"target": target})
    return responses.created(url)


@route("/1.0/images/aliases/", "GET", "PUT", "PATCH", "POST", "DELETE", untrusted=True)
def empty_alias(ctx: Ctx) -> Response:
    """An empty alias name (possible: a rename to ``""`` succeeds in LXD 5.0.2)."""
    if not ctx.trusted and ctx.request.method != "GET":
        raise responses.forbidden()
    return _alias_dispatch(ctx, "")


@route("/1.0/images/aliases/<path:name>", "GET", "PUT", "PATCH", "POST", "DELETE",
       untrusted=True)
def alias_entry(ctx: Ctx, name: str) -> Response:
    if not ctx.trusted and ctx.request.method != "GET":
        raise responses.forbidden()
    return _alias_dispatch(ctx, name)


def _alias_dispatch(ctx: Ctx, name: str) -> Response:
    handler = {"GET": _get_alias, "PUT": _put_alias, "PATCH": _patch_alias,
               "POST": _rename_alias, "DELETE": _delete_alias}[ctx.request.method]
    return handler(ctx, name)


def _get_alias(ctx: Ctx, name: str) -> Response:
    with ctx.state.lock:
        owner, entry = _alias(ctx, name, ctx.trusted)
        shown = render_alias(ctx.state, owner, entry)
        return responses.sync(shown, etag=alias_etag(shown))


def _put_alias(ctx: Ctx, name: str) -> Response:
    """LXD 5.0.2's order: the body and its target, then the project, alias and ETag."""
    body, _ = decode_first(ctx.raw_body(), ALIAS_PUT)
    if not body["target"]:
        raise LXDError(400, "The target field is required")
    with ctx.state.lock:
        owner, entry = _alias(ctx, name)
        ctx.check_etag(alias_etag(render_alias(ctx.state, owner, entry)))
        image = _match(images_of(ctx.state, owner), body["target"])
        if image is None:
            raise LXDError(404, "Image not found")
        entry["target"] = image["fingerprint"]
        entry["description"] = body["description"]
    ctx.lifecycle("image-alias-updated", alias_url(name, ctx.project),
                  {"target": body["target"]})
    return responses.empty()


def _patch_alias(ctx: Ctx, name: str) -> Response:
    """LXD 5.0.2's alias PATCH deadlocks on a nested transaction: after its checks it waits
    20 s and answers 500 ``context deadline exceeded``, changing nothing. The fake gives the
    same answer at once. The body is decoded before the alias is looked up."""
    req = decode_jmap(ctx.raw_body())
    with ctx.state.lock:
        owner, entry = _alias(ctx, name)
        ctx.check_etag(alias_etag(render_alias(ctx.state, owner, entry)))
    target = entry["target"]
    for key in ("target", "description"):
        if key in req:
            if not isinstance(req[key], str):
                raise LXDError(400, f"`{key}` was not a string")
            if key == "target":
                target = req[key]
    with ctx.state.lock:
        if _match(images_of(ctx.state, owner), target) is None:
            raise LXDError(404, "Image not found")
    raise LXDError(500, "context deadline exceeded")


def _rename_alias(ctx: Ctx, name: str) -> Response:
    body, _ = decode_first(ctx.raw_body(), ALIAS_POST)
    new_name = body["name"]
    with ctx.state.lock:
        owner = _project(ctx)
        table = aliases_of(ctx.state, owner)
        if new_name in table:
            raise LXDError(409, f'Alias {go_quote(new_name)} already exists')
        owner, entry = _alias(ctx, name)
        del table[name]
        entry["name"] = new_name
        table[new_name] = entry
    url = alias_url(new_name, ctx.project)
    ctx.lifecycle("image-alias-renamed", url, {"old_name": name})
    return responses.created(url)


def _delete_alias(ctx: Ctx, name: str) -> Response:
    with ctx.state.lock:
        owner, _ = _alias(ctx, name)
        del aliases_of(ctx.state, owner)[name]
    ctx.lifecycle("image-alias-deleted", alias_url(name, ctx.project))
    return responses.empty()
