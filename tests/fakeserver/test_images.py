"""Images: upload, show, update, export, secrets and delete, alike on the fake and real LXD.

Every test uploads its own tiny image (unique properties, so a unique fingerprint) and deletes
it afterwards; the real host's ``busybox`` image is never touched.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import re
import shutil
import tarfile
from pathlib import Path
from typing import Any

import pytest
import requests

from fakeserver import FakeLXD, imagefile
from fakeserver.api import images
from fakeserver.responses import LXDError, etag_of
from tests.imagefixtures import (
    Events,
    TinyImage,
    metadata_yaml,
    multipart,
    post_image,
    split,
    tagged,
    tarball,
    unified,
    untrusted,
    upload,
    upload_request,
)
from tests.support import API, unique

FIELDS = ["auto_update", "properties", "public", "expires_at", "profiles", "aliases",
          "architecture", "cached", "filename", "fingerprint", "size", "type", "created_at",
          "last_used_at", "uploaded_at"]
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$")


def raw_post(api: API, data: bytes, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """POST ``data`` to /1.0/images (octet-stream unless told) and wait for the operation."""
    hdrs = {"Content-Type": "application/octet-stream", **(headers or {})}
    reply = api.request("POST", "/1.0/images", data=data, headers=hdrs)
    assert reply.status == 202, reply
    op = api.wait(reply)
    if op["status"] == "Success":
        api.delete_later(f"/1.0/images/{op['metadata']['fingerprint']}")
    return op


def fails(api: API, data: bytes, headers: dict[str, str] | None = None) -> str:
    op = raw_post(api, data, headers)
    assert op["status"] == "Failure", op
    assert (op["resources"], op["metadata"]) == (None, None), op
    return str(op["err"])


# -- uploads ---------------------------------------------------------------------------------


def test_upload_unified_tarball(api: API) -> None:
    image = unified(tagged())
    body, headers = upload_request(image, {"X-LXD-public": "1",
                                           "X-LXD-properties": "os=test&release=9&new=x%20y"},
                                   "image1.tar.gz")
    api.delete_later(f"/1.0/images/{image.fingerprint}")
    reply = api.request("POST", "/1.0/images", data=body, headers=headers)
    assert reply.status == 202
    op = reply.metadata
    assert (op["class"], op["description"], op["resources"], op["metadata"]) == (
        "task", "Downloading image", None, None)
    assert reply.headers["Location"] == f"/1.0/operations/{op['id']}"
    done = api.wait(reply)
    assert done["status"] == "Success", done
    assert done["metadata"] == {"fingerprint": image.fingerprint, "size": str(image.size)}
    assert done["resources"] is None

    got = api.get(f"/1.0/images/{image.fingerprint}")
    meta = got.metadata
    assert list(meta) == FIELDS
    assert meta["properties"] == {"description": "tiny test image", "new": "x y", "os": "test",
                                  "release": "9", "test.id": image.properties["test.id"]}
    assert {k: meta[k] for k in FIELDS if k not in ("properties", "uploaded_at")} == {
        "auto_update": False, "public": True, "expires_at": "1970-01-01T00:00:00Z",
        "profiles": ["default"], "aliases": [], "architecture": "x86_64", "cached": False,
        "filename": "image1.tar.gz", "fingerprint": image.fingerprint, "size": image.size,
        "type": "container", "created_at": "2023-11-14T22:13:20Z",
        "last_used_at": "0001-01-01T00:00:00Z"}
    assert STAMP.match(meta["uploaded_at"])
    assert got.headers["ETag"] == f'"{etag_of([True, False, meta["properties"]])}"'


def test_upload_split_image_as_lxc_image_import_sends_it(api: API) -> None:
    image = split(tagged())
    headers = {"X-LXD-filename": "ignored.tar.gz", "X-LXD-public": "true"}
    op = post_image(api, image, headers, "split.tar.gz")
    assert op["status"] == "Success", op
    assert op["metadata"] == {"fingerprint": image.fingerprint, "size": str(image.size)}
    assert image.fingerprint == hashlib.sha256(image.meta + image.rootfs).hexdigest()
    meta = api.get(f"/1.0/images/{image.fingerprint}").metadata
    # The rootfs part's file name is the image's filename; X-LXD-filename is not used.
    assert (meta["filename"], meta["type"], meta["public"], meta["size"]) == (
        "split.tar.gz", "container", True, image.size)


def test_upload_split_vm_image(api: API) -> None:
    image = split(tagged(), vm=True)
    op = post_image(api, image, {}, "disk.img")
    assert op["status"] == "Success", op
    meta = api.get(f"/1.0/images/{image.fingerprint}").metadata
    assert (meta["type"], meta["filename"]) == ("virtual-machine", "disk.img")


def test_unified_vm_image_and_dot_slash_names(api: API) -> None:
    props = tagged()
    yaml_text = metadata_yaml(props, creation_date=5)
    data = tarball({"./metadata.yaml": yaml_text, "./rootfs.img": b"x"})
    op = raw_post(api, data)
    assert op["status"] == "Success", op
    meta = api.get(f"/1.0/images/{op['metadata']['fingerprint']}").metadata
    assert (meta["type"], meta["created_at"], meta["filename"]) == (
        "virtual-machine", "1970-01-01T00:00:05Z", "")


def test_compressions_metadata_and_architecture_aliases(api: API) -> None:
    ident = tagged()["test.id"]
    yaml_text = (b"architecture: amd64\ncreation_date: 1600000000\nexpiry_date: 1900000000\n"
                 b"properties:\n  n: 22.04\n  b: yes\n  e:\n  id: " + ident.encode() + b"\n")
    entries: dict[str, bytes | str | None] = {"metadata.yaml": yaml_text, "rootfs": None,
                                              "rootfs/x": b"1"}
    plain = tarball(entries, compress="tar")
    for data, ext in [(plain, ".tar"), (lzma.compress(plain + b"\0" * 512), ".tar.xz"),
                      (bz2.compress(plain + b"\0" * 1024), ".tar.bz2")]:
        op = raw_post(api, data)
        assert op["status"] == "Success", op
        fp = op["metadata"]["fingerprint"]
        meta = api.get(f"/1.0/images/{fp}").metadata
        assert meta["properties"] == {"b": "yes", "e": "", "id": ident, "n": "22.04"}
        assert (meta["architecture"], meta["created_at"], meta["expires_at"]) == (
            "x86_64", "2020-09-13T12:26:40Z", "2030-03-17T17:46:40Z")
        export = api.get(f"/1.0/images/{fp}/export")
        assert export.headers["Content-Disposition"] == f"inline;filename={fp}{ext}"
        assert export.raw == data


def test_yaml_int_forms(api: API) -> None:
    ident = tagged()["test.id"].encode()
    data = tarball({"metadata.yaml": b"architecture: i386\ncreation_date: 0x10\nproperties:\n"
                                     b"  id: " + ident + b"\n", "rootfs": None})
    op = raw_post(api, data)
    assert op["status"] == "Success", op
    meta = api.get(f"/1.0/images/{op['metadata']['fingerprint']}").metadata
    assert (meta["architecture"], meta["created_at"]) == ("i686", "1970-01-01T00:00:16Z")


BAD_UPLOADS: list[tuple[str, bytes, str]] = [
    ("empty", b"", "EOF"),
    ("garbage", b"garbage" * 100, "Unsupported compression"),
    ("one byte", b"x", "Unsupported compression"),
    ("small gzip, not a tar", gzip.compress(b"not a tar" * 10), "unexpected EOF"),
    ("big gzip, not a tar", gzip.compress(b"not a tar" * 100), "archive/tar: invalid tar header"),
    ("broken gzip", b"\x1f\x8b" + b"x" * 600, "Metadata tarball is missing metadata.yaml"),
    ("broken bzip2", b"BZh91AY&SY" + b"x" * 600, "Metadata tarball is missing metadata.yaml"),
    ("empty gzip", gzip.compress(b""), "Metadata tarball is missing metadata.yaml"),
    ("no metadata.yaml", tarball({"rootfs": None, "rootfs/a": b"x"}),
     "Metadata tarball is missing metadata.yaml"),
    ("no creation date", tarball({"metadata.yaml": b"architecture: x86_64\n"}),
     "Missing creation date"),
    ("bad architecture", tarball({"metadata.yaml": b"architecture: bogus\ncreation_date: 5\n"}),
     "Architecture isn't supported: bogus"),
    ("no architecture", tarball({"metadata.yaml": b"creation_date: 5\n"}),
     "Architecture isn't supported: "),
    ("bad date", tarball({"metadata.yaml": b"architecture: x86_64\ncreation_date: abc\n"}),
     "yaml: unmarshal errors:\n  line 2: cannot unmarshal !!str `abc` into int64"),
    ("quoted date", tarball({"metadata.yaml": b'architecture: x86_64\ncreation_date: "5"\n'}),
     "yaml: unmarshal errors:\n  line 2: cannot unmarshal !!str `5` into int64"),
    ("bool date", tarball({"metadata.yaml": b"architecture: x86_64\ncreation_date: true\n"}),
     "yaml: unmarshal errors:\n  line 2: cannot unmarshal !!bool `true` into int64"),
    ("broken yaml", tarball({"metadata.yaml": b"architecture: [x86_64\n"}),
     "yaml: line 1: did not find expected ',' or ']'"),
    ("unterminated string", tarball({"metadata.yaml": b'x: "unterminated\n'}),
     "yaml: line 2: found unexpected end of stream"),
    ("yaml list", tarball({"metadata.yaml": b"- a\n- b\n"}),
     "yaml: unmarshal errors:\n  line 1: cannot unmarshal !!seq into api.ImageMetadata"),
    ("empty yaml", tarball({"metadata.yaml": b"", "rootfs": None}), "EOF"),
    ("properties list", tarball({"metadata.yaml": b"architecture: x86_64\ncreation_date: 5\n"
                                                  b"properties: [a]\n"}),
     "yaml: unmarshal errors:\n  line 3: cannot unmarshal !!seq into map[string]string"),
    ("property list", tarball({"metadata.yaml": b"architecture: x86_64\ncreation_date: 5\n"
                                                b"properties:\n  a: [1]\n"}),
     "yaml: unmarshal errors:\n  line 4: cannot unmarshal !!seq into string"),
    ("templates string", tarball({"metadata.yaml": b"architecture: x86_64\ncreation_date: 5\n"
                                                   b"templates: x\n"}),
     "yaml: unmarshal errors:\n  line 3: cannot unmarshal !!str `x` into "
     "map[string]*api.ImageMetadataTemplate"),
    ("metadata only", tarball({"metadata.yaml": b"architecture: x86_64\ncreation_date: 5\n"}),
     "Invalid instance type"),
]


@pytest.mark.parametrize(("data", "message"), [(d, m) for _, d, m in BAD_UPLOADS],
                         ids=[name for name, _, _ in BAD_UPLOADS])
def test_invalid_uploads_fail_in_the_operation(api: API, data: bytes, message: str) -> None:
    assert fails(api, data) == message


def test_invalid_multipart_uploads(api: API) -> None:
    image = split(tagged())
    cases = [
        ([("meta", "a", image.meta), ("rootfs", "b", image.rootfs)], "Invalid multipart image"),
        ([("metadata", "a", image.meta), ("root", "b", image.rootfs)], "Invalid multipart image"),
        ([("metadata", "a", image.meta)], "EOF"),
        ([("metadata", "a", b"garbage"), ("rootfs", "b", image.rootfs)],
         "Unsupported compression"),
    ]
    for parts, message in cases:
        body, ctype = multipart(parts)
        assert fails(api, body, {"Content-Type": ctype}) == message, parts
    body, _ = multipart([("metadata", "a", image.meta), ("rootfs", "b", image.rootfs)])
    assert fails(api, body, {"Content-Type": "multipart/form-data"}) == (
        "multipart: boundary is empty")


def test_fingerprint_header_must_match(api: API) -> None:
    image = unified(tagged())
    assert fails(api, image.data, {"X-LXD-fingerprint": "abc"}) == (
        f"fingerprints don't match, got {image.fingerprint} expected abc")
    image = split(tagged())
    body, headers = upload_request(image, {"X-LXD-fingerprint": "abc"})
    assert fails(api, body, headers) == (
        f"fingerprints don't match, got {image.fingerprint} expected abc")
    image = unified(tagged())
    op = raw_post(api, image.data, {"X-LXD-fingerprint": image.fingerprint})
    assert op["status"] == "Success", op


def test_a_split_rootfs_is_not_checked_on_upload(api: API) -> None:
    image = split(tagged())
    body, ctype = multipart([("metadata", "a", image.meta), ("rootfs", "dir/b", b"garbage")])
    op = raw_post(api, body, {"Content-Type": ctype})
    assert op["status"] == "Success", op
    meta = api.get(f"/1.0/images/{op['metadata']['fingerprint']}").metadata
    assert (meta["filename"], meta["type"]) == ("b", "container")


def test_duplicate_upload_fails_after_reporting_the_fingerprint(api: API) -> None:
    image = unified(tagged())
    upload(api, image)
    op = raw_post(api, image.data)
    assert (op["status"], op["err"]) == ("Failure", "Image with same fingerprint already exists")
    assert op["metadata"] == {"fingerprint": image.fingerprint, "size": str(image.size)}


def test_upload_headers(api: API) -> None:
    image = unified(tagged())
    op = raw_post(api, image.data, {"X-LXD-public": "yes",
                                    "X-LXD-properties": "a=1&a=2&b&os=%41"})
    assert op["status"] == "Success", op
    meta = api.get(f"/1.0/images/{image.fingerprint}").metadata
    assert meta["public"] is True
    assert meta["filename"] == ""
    assert {k: meta["properties"][k] for k in ("a", "b", "os")} == {"a": "1", "b": "", "os": "A"}
    image = unified(tagged())
    op = raw_post(api, image.data, {"X-LXD-public": "0"})
    assert api.get(f"/1.0/images/{image.fingerprint}").metadata["public"] is False


# -- JSON bodies -----------------------------------------------------------------------------


def post_json(api: API, data: bytes, ctype: str = "application/json") -> Any:
    return api.request("POST", "/1.0/images", data=data, headers={"Content-Type": ctype})


@pytest.mark.parametrize(("data", "message"), [
    (b"garbage", "invalid character 'g' looking for beginning of value"),
    (b"", "EOF"),
    (b"[]", "json: cannot unmarshal array into Go value of type api.ImagesPost"),
    (b'{"source":{"type":"bogus"}', "unexpected EOF"),
    (b'{"public":"x"}', "json: cannot unmarshal string into Go struct field ImagesPost.public "
                       "of type bool"),
    (b'{"source":{"type":5}}', "json: cannot unmarshal number into Go struct field "
                               "ImagesPostSource.source.type of type string"),
    (b'{"source":{"type":"image","alias":5}}', "json: cannot unmarshal number into Go struct "
                                               "field ImagesPostSource.source.alias of type "
                                               "string"),
    (b'{"aliases":[{"name":5}],"source":{"type":"url"}}', "json: cannot unmarshal number into "
                                                         "Go struct field ImageAlias.aliases.name"
                                                         " of type string"),
    (b'{"source":{"type":"image"},"expires_at":"bad"}',
     'parsing time "\\"bad\\"" as "\\"2006-01-02T15:04:05Z07:00\\"": cannot parse "bad\\"" as '
     '"2006"'),
])
def test_json_body_errors(api: API, data: bytes, message: str) -> None:
    reply = post_json(api, data)
    assert (reply.status, reply.error) == (400, message)


def test_json_source_types(api: API) -> None:
    for ctype in ("application/json", "application/octet-stream"):
        reply = post_json(api, b'{"source":{"type":"bogus"}} trailing', ctype)
        assert (reply.status, reply.error) == (500, "Invalid images JSON")
    # Not JSON to Go's decoder, and not sent as JSON: an upload that fails.
    assert fails(api, b'{"public":"x"}') == "Unsupported compression"


def test_json_without_source_drops_the_connection(api: API) -> None:
    """LXD 5.0.2 dereferences the missing ``source`` and panics: no reply at all."""
    for data in (b"{}", b"null"):
        with pytest.raises(requests.ConnectionError):
            post_json(api, data)
    assert api.get("/1.0").status == 200


@pytest.mark.parametrize(("source", "message"), [
    ({"type": "url"}, "Missing URL"),
    ({"type": "url", "url": "https://127.0.0.1:9/x"},
     'Head "https://127.0.0.1:9/x": Unable to connect to: 127.0.0.1:9 ([dial tcp 127.0.0.1:9: '
     "connect: connection refused])"),
    ({"type": "url", "url": "http://127.0.0.1:9"},
     'Head "http://127.0.0.1:9": Unable to connect to: 127.0.0.1:9 ([dial tcp 127.0.0.1:9: '
     "connect: connection refused])"),
    ({"type": "url", "url": "ftp://127.0.0.1:9/x"},
     'Head "ftp://127.0.0.1:9/x": unsupported protocol scheme "ftp"'),
    ({"type": "url", "url": "nourl"}, 'Head "nourl": unsupported protocol scheme ""'),
    ({"type": "image"}, "must specify one of alias or fingerprint for init from image"),
    ({"type": "image", "alias": "x", "server": "https://127.0.0.1:9", "protocol": "lxd"},
     'Failed to connect to LXD server "https://127.0.0.1:9": Get "https://127.0.0.1:9/1.0": '
     "Unable to connect to: 127.0.0.1:9 ([dial tcp 127.0.0.1:9: connect: connection refused])"),
    ({"type": "image", "fingerprint": "abc", "server": "https://127.0.0.1:9"},
     'Failed to connect to LXD server "https://127.0.0.1:9": Get "https://127.0.0.1:9/1.0": '
     "Unable to connect to: 127.0.0.1:9 ([dial tcp 127.0.0.1:9: connect: connection refused])"),
    ({"type": "image", "alias": "x", "server": "https://127.0.0.1", "protocol": "lxd"},
     'Failed to connect to LXD server "https://127.0.0.1": Get "https://127.0.0.1/1.0": '
     "Unable to connect to: 127.0.0.1:443 ([dial tcp 127.0.0.1:443: connect: connection "
     "refused])"),
    ({"type": "image", "alias": "x", "server": "127.0.0.1:9", "protocol": "lxd"},
     'Failed to connect to LXD server "127.0.0.1:9": parse "127.0.0.1:9": first path segment '
     "in URL cannot contain colon"),
    ({"type": "image", "alias": "x", "server": "https://127.0.0.1:9",
      "protocol": "simplestreams"},
     "Failed getting remote image info: Failed getting image: Failed parsing stream: Get "
     '"https://127.0.0.1:9/streams/v1/index.json": Unable to connect to: 127.0.0.1:9 '
     "([dial tcp 127.0.0.1:9: connect: connection refused])"),
    ({"type": "image", "alias": "x", "server": "https://127.0.0.1:9", "protocol": "bogus"},
     "Unsupported protocol: bogus"),
    ({"type": "image", "alias": "busybox"},
     'Failed to connect to LXD server "": Get "/1.0": unsupported protocol scheme ""'),
])
def test_remote_sources_that_cannot_be_reached(api: API, source: dict[str, str],
                                               message: str) -> None:
    """Only closed loopback ports: neither backend ever reaches out."""
    reply = api.post("/1.0/images", {"source": source})
    assert reply.status == 202, reply
    assert reply.metadata["description"] == "Downloading image"
    op = api.wait(reply)
    assert (op["status"], op["err"], op["metadata"]) == ("Failure", message, None)


def test_publish_needs_an_existing_instance(api: API) -> None:
    for kind, name in [("instance", "nope"), ("container", "nope"), ("virtual-machine", "nope"),
                       ("snapshot", "nope/snap0"), ("snapshot", "nope")]:
        reply = api.post("/1.0/images", {"source": {"type": kind, "name": name}})
        assert (reply.status, reply.error) == (404, "Instance not found"), kind
    reply = api.post("/1.0/images", {"source": {"type": "instance"}})
    assert reply.status == 202
    op = api.wait(reply)
    assert (op["status"], op["err"]) == ("Failure", "No source provided")


# -- reading ---------------------------------------------------------------------------------


def test_list_and_recursion(api: API) -> None:
    fp = upload(api)
    urls = api.get("/1.0/images").metadata
    assert f"/1.0/images/{fp}" in urls
    assert urls == sorted(urls)
    objs = api.get("/1.0/images", params={"recursion": "1"}).metadata
    mine = [o for o in objs if o["fingerprint"] == fp]
    assert len(mine) == 1 and list(mine[0]) == FIELDS
    assert [o["fingerprint"] for o in objs] == sorted(o["fingerprint"] for o in objs)


def test_fingerprint_prefixes(api: API) -> None:
    fp = upload(api)
    assert api.get(f"/1.0/images/{fp[:12]}").metadata["fingerprint"] == fp
    # Two images that share a first hex digit make that digit ambiguous.
    images: dict[str, TinyImage] = {}
    while True:
        image = unified(tagged())
        if image.fingerprint[0] in images:
            break
        images[image.fingerprint[0]] = image
    upload(api, image)
    upload(api, images[image.fingerprint[0]])
    prefix = image.fingerprint[0]
    for method in ("GET", "PUT", "DELETE"):
        reply = api.request(method, f"/1.0/images/{prefix}", json_body={})
        assert (reply.status, reply.error) == (500, "More than one image matches"), method


def test_unknown_image(api: API) -> None:
    for method, path in [("GET", "/1.0/images/nope"), ("PUT", "/1.0/images/nope"),
                         ("PATCH", "/1.0/images/nope"), ("DELETE", "/1.0/images/nope"),
                         ("GET", "/1.0/images/nope/export"), ("POST", "/1.0/images/nope/secret"),
                         ("POST", "/1.0/images/nope/refresh"),
                         ("POST", "/1.0/images/nope/export")]:
        reply = api.request(method, path, json_body={})
        assert (reply.status, reply.error) == (404, "Image not found"), (method, path)


def test_filters(api: API) -> None:
    ident = tagged()["test.id"]
    fp = upload(api, unified({"test.id": ident, "os": "Filtered"}))
    base = f"properties.test.id eq {ident}"
    for expr, hit in [("", True), ("properties.os eq filtered", True),
                      ("properties.os eq filt.*", True), ("properties.os eq filt", False),
                      ("properties.os ne filtered", False), ("not properties.os eq x", True),
                      ("public eq false", False), ("public ne false", True),
                      ("type eq container", True), ("size gt 5", False),
                      ("properties.nope ne x", True), ("properties.os eq [", False),
                      ('properties.description eq "tiny test image"', True)]:
        text = f"{base} and {expr}" if expr else base
        urls = api.get("/1.0/images", params={"filter": text}).metadata
        assert (f"/1.0/images/{fp}" in urls) is hit, expr
    urls = api.get("/1.0/images", params={"filter": f"{base} or type eq nothing"}).metadata
    assert urls == [f"/1.0/images/{fp}"]
    for expr, message in [("bogus", "clause has no operator"), ("a eq", "clause has no value"),
                          ("a eq b and", "unterminated compound clause"),
                          ("not", "incomplete not clause"),
                          ("a eq b xor c eq d", "invalid clause composition")]:
        reply = api.get("/1.0/images", params={"filter": expr})
        assert (reply.status, reply.error) == (500, f"Invalid filter: {message}")


# -- updates ---------------------------------------------------------------------------------


def shown(api: API, fp: str) -> tuple[dict[str, Any], str]:
    reply = api.get(f"/1.0/images/{fp}")
    meta = reply.metadata
    keys = ("auto_update", "properties", "public", "expires_at", "profiles")
    return {k: meta[k] for k in keys}, reply.headers["ETag"].strip('"')


def test_put_replaces(api: API) -> None:
    fp = upload(api)
    path = f"/1.0/images/{fp}"
    assert api.put(path, {"properties": {"a": "1", "b": ""}, "public": True}).metadata == {}
    got, tag = shown(api, fp)
    assert got == {"auto_update": False, "properties": {"a": "1"}, "public": True,
                   "expires_at": "1970-01-01T00:00:00Z", "profiles": ["default"]}
    assert tag == etag_of([True, False, {"a": "1"}])
    assert api.put(path, {}).status == 200
    assert shown(api, fp)[0]["properties"] == {}
    assert api.put(path, {"profiles": []}).status == 200
    assert shown(api, fp)[0]["profiles"] == []
    reply = api.put(path, {"profiles": ["nope"]})
    assert (reply.status, reply.error) == (400, "Profile 'nope' doesn't exist")
    assert api.put(path, {"profiles": None, "expires_at": "2031-01-02T03:04:05Z",
                          "auto_update": True}).status == 200
    got, _ = shown(api, fp)
    assert (got["profiles"], got["expires_at"], got["auto_update"]) == (
        ["default"], "2031-01-02T03:04:05Z", True)
    for value in (None, "0001-01-01T00:00:00Z"):  # a zero time keeps the old value
        assert api.put(path, {"expires_at": value}).status == 200
        assert shown(api, fp)[0]["expires_at"] == "2031-01-02T03:04:05Z"
    assert api.put(path, {"expires_at": "2031-01-02T03:04:05.1230+02:00"}).status == 200
    assert shown(api, fp)[0]["expires_at"] == "2031-01-02T03:04:05.123+02:00"
    assert api.put(path, {"expires_at": "2031-01-02T03:04:05+00:00"}).status == 200
    assert shown(api, fp)[0]["expires_at"] == "2031-01-02T03:04:05Z"
    assert api.request("PUT", path, data=b"{} trailing").status == 200


@pytest.mark.parametrize(("value", "message"), [
    ("garbage", 'cannot parse "garbage\\"" as "2006"'),
    ("2031-01-02", 'cannot parse "\\"" as "T"'),
    ("2031-1-02T03:04:05Z", 'cannot parse "1-02T03:04:05Z\\"" as "01"'),
    ("2031-01-02T03:04:05", 'cannot parse "\\"" as "Z07:00"'),
    ("2031-01-02T3:04:05Z", None),
    (5, 'cannot parse "5" as "\\""'),
])
def test_put_expiry_parsing(api: API, value: Any, message: str | None) -> None:
    fp = upload(api)
    reply = api.put(f"/1.0/images/{fp}", {"expires_at": value})
    if message is None:
        assert reply.status == 200, reply
        assert shown(api, fp)[0]["expires_at"] == "2031-01-02T03:04:05Z"
        return
    raw = value if isinstance(value, int) else f'"{value}"'
    quoted = '"' + str(raw).replace('"', '\\"') + '"'
    assert (reply.status, reply.error) == (
        400, f'parsing time {quoted} as "\\"2006-01-02T15:04:05Z07:00\\"": {message}')


def test_put_expiry_ranges(api: API) -> None:
    fp = upload(api)
    for value, what in [("2031-13-02T03:04:05Z", "month"), ("2031-02-30T03:04:05Z", "day"),
                        ("2031-01-02T24:04:05Z", "hour")]:
        reply = api.put(f"/1.0/images/{fp}", {"expires_at": value})
        assert (reply.status, reply.error) == (
            400, f'parsing time "\\"{value}\\"": {what} out of range'), value


def test_put_body_errors_and_etag(api: API) -> None:
    fp = upload(api)
    path = f"/1.0/images/{fp}"
    reply = api.put(path, {"public": "x"})
    assert (reply.status, reply.error) == (
        400, "json: cannot unmarshal string into Go struct field ImagePut.public of type bool")
    assert api.request("PUT", path, data=b"").error == "EOF"
    _, tag = shown(api, fp)
    reply = api.put(path, {"properties": {"b": "2"}}, headers={"If-Match": "stale"})
    assert (reply.status, reply.error) == (412, f"ETag doesn't match: {tag} vs stale")
    assert api.put(path, {"properties": {"b": "2"}}, headers={"If-Match": f'"{tag}"'}).status \
        == 200
    assert api.put(f"/1.0/images/{fp[:10]}", {"properties": {"pre": "1"}}).status == 200
    assert shown(api, fp)[0]["properties"] == {"pre": "1"}


def test_patch_merges(api: API) -> None:
    fp = upload(api, unified({"test.id": tagged()["test.id"]}))
    path = f"/1.0/images/{fp}"
    assert api.put(path, {"expires_at": "2031-01-02T03:04:05Z"}).status == 200
    assert api.patch(path, {"properties": {"c": "3"}}).status == 200
    assert shown(api, fp)[0]["properties"] == {"c": "3"}
    assert api.patch(path, {"public": True}).status == 200
    assert api.patch(path, {"public": None, "auto_update": None}).status == 200
    got, _ = shown(api, fp)
    assert (got["public"], got["auto_update"]) == (True, False)
    # Profiles and expiry are left alone; an empty value removes a property.
    assert api.patch(path, {"properties": {"c": "", "d": "4"}, "profiles": [],
                            "expires_at": "2040-01-01T00:00:00Z"}).status == 200
    got, _ = shown(api, fp)
    assert got == {"auto_update": False, "properties": {"d": "4"}, "public": True,
                   "expires_at": "2031-01-02T03:04:05Z", "profiles": ["default"]}
    assert api.patch(path, {"properties": {}}).status == 200
    assert shown(api, fp)[0]["properties"] == {"d": "4"}
    # LXD 5.0.2 panics merging into a null map: no reply at all, and no change.
    with pytest.raises(requests.ConnectionError):
        api.patch(path, {"properties": None})
    assert shown(api, fp)[0]["properties"] == {"d": "4"}
    assert api.put(path, {"public": True}).status == 200
    assert api.patch(path, {"properties": None}).status == 200  # nothing to merge: fine
    for data, message in [(b"", "EOF"),
                          (b"[]", "json: cannot unmarshal array into Go value of type "
                                  "shared.Jmap"),
                          (b'{"public":"yes"}', "json: cannot unmarshal string into Go struct "
                                                "field ImagePut.public of type bool")]:
        reply = api.request("PATCH", path, data=data)
        assert (reply.status, reply.error) == (400, message)
    _, tag = shown(api, fp)
    reply = api.patch(path, {}, headers={"If-Match": "stale"})
    assert (reply.status, reply.error) == (412, f"ETag doesn't match: {tag} vs stale")


# -- export, secrets, refresh, delete --------------------------------------------------------


def test_export_unified(api: API) -> None:
    image = unified(tagged())
    fp = upload(api, image)
    reply = api.get(f"/1.0/images/{fp[:8]}/export")
    assert reply.status == 200
    assert reply.raw == image.data
    assert reply.headers["Content-Type"] == "application/octet-stream"
    assert reply.headers["Content-Disposition"] == f"inline;filename={fp}.tar.gz"
    assert reply.headers["Content-Length"] == str(len(image.data))
    assert reply.headers["Accept-Ranges"] == "bytes"
    assert reply.headers["Last-Modified"].endswith(" GMT")


@pytest.mark.parametrize("vm", [False, True])
def test_export_split(api: API, vm: bool) -> None:
    image = split(tagged(), vm=vm)
    op = post_image(api, image)
    assert op["status"] == "Success", op
    fp = image.fingerprint
    reply = api.get(f"/1.0/images/{fp}/export")
    ctype = reply.headers["Content-Type"]
    match = re.fullmatch(r"multipart/form-data; boundary=([0-9a-f]{60})", ctype)
    assert match, ctype
    b = match.group(1)
    part, ext = ("rootfs.img", ".qcow2") if vm else ("rootfs", ".tar.gz")
    expected = (
        f'--{b}\r\nContent-Disposition: form-data; name="metadata"; '
        f'filename="meta-{fp}.tar.gz"\r\nContent-Type: application/octet-stream\r\n\r\n'
    ).encode() + image.meta + (
        f'\r\n--{b}\r\nContent-Disposition: form-data; name="{part}"; '
        f'filename="{fp}{ext}"\r\nContent-Type: application/octet-stream\r\n\r\n'
    ).encode() + image.rootfs + f"\r\n--{b}--\r\n\r\n--{b}--\r\n".encode()
    assert reply.raw == expected
    assert "Content-Disposition" not in reply.headers


def test_secret_token(api: API, tmp_path: Path) -> None:
    fp = upload(api)
    reply = api.post(f"/1.0/images/{fp[:10]}/secret")
    assert reply.status == 202
    op = reply.metadata
    secret = op["metadata"]["secret"]
    assert re.fullmatch(r"[0-9a-f]{64}", secret)
    assert (op["class"], op["description"], op["status"], op["may_cancel"], op["resources"]) == (
        "token", "Image download token", "Running", True, {"images": [f"/1.0/images/{fp}"]})
    guest = untrusted(api, str(tmp_path))
    wrong = guest.get(f"/1.0/images/{fp}", params={"secret": "wrong"})
    assert (wrong.status, wrong.error) == (404, f'Image "{fp}" not found')
    assert api.get(f"/1.0/operations/{op['id']}").metadata["status"] == "Running"
    got = guest.get(f"/1.0/images/{fp[:6]}", params={"secret": secret})
    assert got.status == 200 and got.metadata["fingerprint"] == fp
    assert "ETag" in got.headers
    token = api.get(f"/1.0/operations/{op['id']}").metadata
    assert (token["status"], token["status_code"]) == ("Cancelled", 401)
    # Until the cancelled token is forgotten (5 s), its secret still works.
    assert guest.get(f"/1.0/images/{fp}/export", params={"secret": secret}).status == 200
    # A trusted client that sends a secret uses the token up too.
    op2 = api.post(f"/1.0/images/{fp}/secret").metadata
    assert api.get(f"/1.0/images/{fp}", params={"secret": op2["metadata"]["secret"]}).status \
        == 200
    assert api.get(f"/1.0/operations/{op2['id']}").metadata["status"] == "Cancelled"


def test_refresh_of_a_local_image_fails(api: API) -> None:
    fp = upload(api)
    reply = api.post(f"/1.0/images/{fp[:10]}/refresh")
    assert reply.status == 202
    assert (reply.metadata["description"], reply.metadata["resources"]) == (
        "Refreshing image", None)
    op = api.wait(reply)
    assert (op["status"], op["err"]) == (
        "Failure", f'Failed to update image "{fp[:10]}" in project "default": '
                   "Image source not found")


def test_push_export_to_an_unreachable_target(api: API) -> None:
    fp = upload(api)
    reply = api.post(f"/1.0/images/{fp}/export", {"target": "https://127.0.0.1:9"})
    assert (reply.status, reply.error) == (
        500, 'Get "https://127.0.0.1:9/1.0": Unable to connect to: 127.0.0.1:9 ([dial tcp '
             '127.0.0.1:9: connect: connection refused])')
    reply = api.request("POST", f"/1.0/images/{fp}/export", data=b"")
    assert (reply.status, reply.error) == (500, 'Get "/1.0": unsupported protocol scheme ""')


def test_delete(api: API) -> None:
    fp = upload(api)
    alias = unique("a")
    assert api.post("/1.0/images/aliases", {"name": alias, "target": fp}).status == 201
    api.delete_later(f"/1.0/images/aliases/{alias}")
    reply = api.delete(f"/1.0/images/{fp[:10]}")
    assert reply.status == 202
    op = reply.metadata
    assert (op["description"], op["resources"], op["metadata"]) == (
        "Deleting image", {"images": [f"/1.0/images/{fp}"]}, None)
    assert api.wait(reply)["status"] == "Success"
    assert api.get(f"/1.0/images/{fp}").status == 404
    # Its aliases go with it.
    assert api.get(f"/1.0/images/aliases/{alias}").error == "Image alias not found"


# -- untrusted clients -----------------------------------------------------------------------


def test_untrusted_clients_see_public_images_only(api: API, tmp_path: Path) -> None:
    private = upload(api)
    public = upload(api, headers={"X-LXD-public": "1"})
    guest = untrusted(api, str(tmp_path))
    for params in ({}, {"recursion": "1"}):
        listed = guest.get("/1.0/images", params=params)
        assert listed.status == 200
        names = [u if isinstance(u, str) else u["fingerprint"] for u in listed.metadata]
        assert any(public in n for n in names) and not any(private in n for n in names)
    assert guest.get(f"/1.0/images/{public}").metadata["fingerprint"] == public
    assert guest.get(f"/1.0/images/{public}/export").status == 200
    for path in (f"/1.0/images/{private[:12]}", f"/1.0/images/{private}/export"):
        reply = guest.get(path)
        assert (reply.status, reply.error) == (404, f'Image "{private}" not found'), path
    for path in ("/1.0/images/nope", "/1.0/images/nope/export"):
        assert (guest.get(path).status, guest.get(path).error) == (404, "Image not found")
    for method, path in [("PUT", f"/1.0/images/{public}"), ("DELETE", f"/1.0/images/{public}"),
                         ("POST", f"/1.0/images/{public}/secret"), ("POST", "/1.0/images"),
                         ("GET", "/1.0/images/aliases")]:
        reply = guest.request(method, path, data=b"x",
                              headers={"X-LXD-secret": "abc", "X-LXD-fingerprint": public})
        assert (reply.status, reply.error) == (403, "not authorized"), (method, path)


# -- projects and events ---------------------------------------------------------------------


def make_project(api: API, images: bool) -> str:
    name = unique("p")
    config = {"features.images": "true" if images else "false", "features.profiles": "false"}
    assert api.post("/1.0/projects", {"name": name, "config": config}).status == 201
    api.delete_later(f"/1.0/projects/{name}")
    return name


def test_unknown_project(api: API) -> None:
    message = "Check if project has images: fetch project: Project not found"
    for method, path in [("GET", "/1.0/images"), ("GET", "/1.0/images/abc"),
                         ("PUT", "/1.0/images/abc"), ("DELETE", "/1.0/images/abc"),
                         ("GET", "/1.0/images/abc/export"), ("POST", "/1.0/images/abc/secret"),
                         ("POST", "/1.0/images/abc/refresh"), ("GET", "/1.0/images/aliases"),
                         ("POST", "/1.0/images/aliases"), ("GET", "/1.0/images/aliases/a"),
                         ("PUT", "/1.0/images/aliases/a"), ("POST", "/1.0/images/aliases/a"),
                         ("DELETE", "/1.0/images/aliases/a")]:
        reply = api.request(method, path, json_body={"name": "x", "target": "abc"},
                            params={"project": "nope"})
        assert (reply.status, reply.error) == (404, message), (method, path)
    reply = api.request("POST", "/1.0/images", data=unified(tagged()).data,
                        params={"project": "nope"})
    assert (reply.status, reply.error) == (404, "Fetch project database object: Project not "
                                                "found")


def test_projects_with_and_without_their_own_images(api: API) -> None:
    image = unified(tagged())
    fp = image.fingerprint
    upload(api, image)
    shared = make_project(api, images=False)
    own = make_project(api, images=True)
    assert f"/1.0/images/{fp}" in api.get("/1.0/images", params={"project": shared}).metadata
    assert api.get(f"/1.0/images/{fp}", params={"project": shared}).status == 200
    assert api.get("/1.0/images", params={"project": own}).metadata == []
    assert api.get(f"/1.0/images/{fp}", params={"project": own}).error == "Image not found"

    events = Events(api, own)
    try:
        mine = api.in_project(own)
        op = post_image(mine, image)  # the same bytes again: another project, no duplicate
        assert op["status"] == "Success", op
        event = events.wait("image-created", fp)
        assert event["project"] == own
        assert event["metadata"]["source"] == f"/1.0/images/{fp}?project={own}"
        assert event["metadata"]["context"] == {"type": "container"}
        assert mine.get("/1.0/images").metadata == [f"/1.0/images/{fp}"]
        reply = mine.delete(f"/1.0/images/{fp}")
        assert reply.metadata["resources"] == {"images": [f"/1.0/images/{fp}"]}
        assert mine.wait(reply)["status"] == "Success"
        assert mine.get(f"/1.0/images/{fp}").status == 404
        assert api.get(f"/1.0/images/{fp}").status == 200
        # The image is still in the default project: no image-deleted event.
        assert mine.post(f"/1.0/images/{fp}/refresh").status == 404
        assert events.actions(fp) == ["image-created"]
    finally:
        events.close()


def test_lifecycle_events(api: API) -> None:
    events = Events(api)
    try:
        fp = upload(api)
        created = events.wait("image-created", fp)["metadata"]
        assert created == {"action": "image-created", "source": f"/1.0/images/{fp}",
                           "context": {"type": "container"},
                           "requestor": {"username": "root", "protocol": "unix",
                                         "address": "@"}}
        api.put(f"/1.0/images/{fp}", {})
        api.patch(f"/1.0/images/{fp[:10]}", {})
        api.post(f"/1.0/images/{fp[:10]}/secret")
        api.get(f"/1.0/images/{fp}/export")
        assert api.wait(api.delete(f"/1.0/images/{fp}"))["status"] == "Success"
        events.wait("image-deleted", fp)
        assert events.actions(fp) == ["image-created", "image-updated", "image-updated",
                                      "image-secret-created", "image-retrieved",
                                      "image-deleted"]
        assert "context" not in events.wait("image-updated", fp)["metadata"]
    finally:
        events.close()


# -- helpers for the instances module (the fake only) ----------------------------------------

TINY_TREE = {"/etc/hostname": ("file", b"tiny\n"), "/bin/sh": ("symlink", "busybox"),
             "/tmp": ("directory", None)}


def check_tree(tree: imagefile.Tree) -> None:
    assert tree["/"].type == "directory"
    for path, (kind, value) in TINY_TREE.items():
        entry = tree[path]
        assert entry.type == kind, path
        if kind == "file":
            assert (entry.content, entry.mode, entry.uid) == (value, 0o644, 0)
        if kind == "symlink":
            assert entry.target == value


@pytest.mark.parametrize("fmt", ["unified", "tar.gz", "tar", "squashfs"])
def test_rootfs_tree(fmt: str) -> None:
    if fmt == "squashfs" and shutil.which("mksquashfs") is None:
        pytest.skip("mksquashfs (squashfs-tools) is not installed")
    image = unified(tagged()) if fmt == "unified" else split(tagged(), rootfs_format=fmt)
    tree = imagefile.rootfs_tree(image.meta, image.rootfs)
    check_tree(tree)
    tree.clear()  # callers get their own dict
    check_tree(imagefile.rootfs_tree(image.meta, image.rootfs))
    vm = split(tagged(), vm=True)
    assert list(imagefile.rootfs_tree(vm.meta, vm.rootfs)) == ["/"]


def test_rootfs_tree_hard_links_and_dot_slash_names() -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, kind, link in [("./metadata.yaml", tarfile.REGTYPE, ""),
                                 ("./rootfs/bin/busybox", tarfile.REGTYPE, ""),
                                 ("./rootfs/bin/ls", tarfile.LNKTYPE, "./rootfs/bin/busybox")]:
            data = metadata_yaml() if name.endswith("yaml") else b"BB"
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, link
            info.size = len(data) if kind == tarfile.REGTYPE else 0
            info.mode = 0o755
            tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
    tree = imagefile.rootfs_tree(buf.getvalue())
    assert tree["/bin/ls"] == tree["/bin/busybox"] == imagefile.Entry("file", 0o755,
                                                                       content=b"BB")
    assert tree["/bin"].type == "directory"


def test_pack_unified_round_trip(fake: FakeLXD) -> None:
    tree = imagefile.rootfs_tree(unified(tagged()).meta)
    data = imagefile.pack_unified(tree, {"architecture": "x86_64", "creation_date": 7,
                                         "properties": {"os": "packed"}})
    assert imagefile.rootfs_tree(data) == tree
    record = images.add_image(fake.state, "default", data, aliases=["packed"])
    assert (record["type"], record["properties"], record["created_at"]) == (
        "container", {"os": "packed"}, "1970-01-01T00:00:07Z")
    with pytest.raises(ValueError, match="same fingerprint"):
        images.add_image(fake.state, "default", data)
    with pytest.raises(imagefile.ImageError, match="Unsupported compression"):
        images.add_image(fake.state, "default", b"junk")


def test_find_image(fake: FakeLXD) -> None:
    state = fake.state
    old = images.add_image(state, "default", unified({"os": "pick"}, creation_date=100).meta,
                           aliases=["first"])
    new = images.add_image(state, "default", unified({"os": "pick"}, creation_date=200).meta)
    with state.lock:
        assert images.find_image(state, "default", alias="first") is old
        assert images.find_image(state, "default", fingerprint=new["fingerprint"][:10]) is new
        assert images.find_image(state, "default", alias="first",
                                 fingerprint=new["fingerprint"]) is new
        assert images.find_image(state, "default", fingerprint="ffffffffffff0") is None
        assert images.find_image(state, "default", properties={"os": "pick"}) is new
        with pytest.raises(LXDError) as missing:
            images.find_image(state, "default", alias="nope")
        assert (missing.value.code, missing.value.message) == (404, "Image alias not found")
        with pytest.raises(LXDError) as unmatched:
            images.find_image(state, "default", properties={"os": "other"})
        assert (unmatched.value.code, unmatched.value.message) == (
            500, "No matching image could be found")
        images.mark_used(old)
    assert STAMP.match(old["last_used_at"])
    tree = images.rootfs_of(old)
    assert tree["/etc/hostname"].content == b"tiny\n"


@pytest.mark.fake_only
def test_publish_hook(api: API) -> None:
    fake: FakeLXD = api.server  # type: ignore[attr-defined]
    with fake.state.lock:
        fake.state.families["instances"].setdefault("default", {})["c1"] = {"name": "c1"}
    seen: list[tuple[str, str]] = []

    def publisher(state: Any, project: str, body: Any) -> images.Published:
        seen.append((project, body["source"]["name"]))
        tree = imagefile.rootfs_tree(unified(tagged()).meta)
        data = imagefile.pack_unified(tree, {"architecture": "x86_64", "creation_date": 9,
                                             "properties": {"os": "inst", "keep": "1"}})
        return images.Published(data, properties={"os": "inst", "keep": "1"})

    previous = images._publisher[0]
    images.set_publisher(publisher)
    try:
        body = {"source": {"type": "instance", "name": "c1"}, "public": True,
                "aliases": [{"name": "pub1", "description": "published"}],
                "properties": {"os": "published"}}
        reply = api.post("/1.0/images", body)
        assert reply.metadata["description"] == "Downloading image"
        op = api.wait(reply)
        assert op["status"] == "Success", op
        fp = op["metadata"]["fingerprint"]
        meta = api.get(f"/1.0/images/{fp}").metadata
        # As LXD 5.0.2 publishes (checked by hand on the real host): the request's
        # properties replace the instance's, the image is made now and never expires.
        assert (meta["filename"], meta["expires_at"], meta["public"], meta["properties"]) == (
            "", "0001-01-01T00:00:00Z", True, {"os": "published"})
        assert meta["created_at"] != "1970-01-01T00:00:09Z"
        assert meta["aliases"] == [{"name": "pub1", "description": "published"}]
        assert seen == [("default", "c1")]
        op = api.wait(api.post("/1.0/images", {"source": {"type": "instance", "name": "c1"}}))
        assert op["status"] == "Failure"  # the same bytes again
        api.wait(api.delete(f"/1.0/images/{fp}"))
        op = api.wait(api.post("/1.0/images", {"source": {"type": "instance", "name": "c1"}}))
        assert op["status"] == "Success", op
        meta = api.get(f"/1.0/images/{fp}").metadata
        assert (meta["properties"], meta["public"]) == ({"os": "inst", "keep": "1"}, False)
        api.wait(api.delete(f"/1.0/images/{fp}"))
        # A taken alias fails the operation, but the image is stored all the same.
        api.post("/1.0/images/aliases", {"name": "pub1", "target": upload(api)})
        op = api.wait(api.post("/1.0/images", body))
        assert (op["status"], op["err"]) == ("Failure", "Alias already exists: pub1")
        assert op["metadata"] == {"fingerprint": fp, "size": meta["size"] and str(meta["size"])}
        assert api.get(f"/1.0/images/{fp}").status == 200
        # A source check decides the synchronous 404.
        images.set_publisher(publisher, lambda state, project, kind, name: name == "other")
        assert api.post("/1.0/images", body).error == "Instance not found"
        body["source"]["name"] = "other"
        assert api.post("/1.0/images", body).status == 202
    finally:
        images.set_publisher(previous)
    images.set_publisher(None)
    op = api.wait(api.post("/1.0/images", {"source": {"type": "instance", "name": "c1"}}))
    assert op["err"] == "Publishing images is not supported by the fake"
    images.set_publisher(previous)
