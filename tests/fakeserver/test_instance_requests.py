"""What the ``/1.0/instances`` handlers check before they act, and in which order, as LXD 5.0.2
does it: ``?instance-type``, a ``/`` in the name, the project, ``?target``, the instance, the
body. The same requests and answers on the fake and on the real host (the robustness suite's
differential tests found these)."""

from __future__ import annotations

import re

import pytest

from tests.instancefixtures import make, remove_later, with_busybox
from tests.support import API, unique

MISSING = "nope-missing"
JSON = {"Content-Type": "application/json"}

#: Every route below /1.0/instances/{name} (method, suffix, query), as the differential
#: tests send them.
ROUTES = [
    ("GET", "", ""), ("PUT", "", ""), ("PATCH", "", ""), ("POST", "", ""), ("DELETE", "", ""),
    ("GET", "/state", ""), ("PUT", "/state", ""), ("GET", "/logs", ""),
    ("GET", "/logs/lxc.log", ""), ("DELETE", "/logs/lxc.log", ""), ("GET", "/console", ""),
    ("DELETE", "/console", ""), ("GET", "/metadata", ""), ("PUT", "/metadata", ""),
    ("PATCH", "/metadata", ""), ("GET", "/metadata/templates", ""),
    ("POST", "/metadata/templates", "path=t"), ("DELETE", "/metadata/templates", "path=t"),
    ("POST", "/exec", ""), ("GET", "/files", "path=/"), ("POST", "/files", "path=/x"),
    ("DELETE", "/files", "path=/x"), ("GET", "/snapshots", ""), ("POST", "/snapshots", ""),
]
SNAPSHOT_ROUTES = [("GET", ""), ("PUT", ""), ("PATCH", ""), ("POST", ""), ("DELETE", "")]


def send(api: API, method: str, path: str, body: bytes = b"{", query: str = "") -> tuple:
    target = path + ("?" + query if query else "")
    reply = api.request(method, target, data=body if method != "GET" else None,
                        headers=JSON)
    return reply.status, reply.error


def failure(api: API, reply: object) -> str:
    """The error of a finished operation (and the instance it may have made, removed)."""
    done = api.wait(reply)  # type: ignore[arg-type]
    assert done["status"] == "Failure", done
    return str(done["err"])


# -- a '/' in the instance name, and ?instance-type --------------------------------------------


@pytest.mark.parametrize(("method", "suffix", "query"), ROUTES,
                         ids=[f"{m} {s}" for m, s, _ in ROUTES])
def test_a_slash_in_the_name_is_refused_first(api: API, method: str, suffix: str,
                                              query: str) -> None:
    """Before the project, the target and the body; only ``?instance-type`` comes first
    (but after the name on the file routes)."""
    path = f"/1.0/instances/a%2Fb{suffix}"
    for extra in ("", "project=nope", "target=nope", "project=nope&target=nope"):
        full = "&".join(q for q in (query, extra) if q)
        assert send(api, method, path, query=full) == (400, "Invalid instance name"), extra
    bogus = "&".join(q for q in (query, "instance-type=bogus") if q)
    # The file routes check the name first, DELETE …/console never checks the type.
    name_first = suffix == "/files" or (suffix, method) == ("/console", "DELETE")
    expected = (400, "Invalid instance name") if name_first else (500, "Invalid instance type")
    assert send(api, method, path, query=bogus) == expected
    assert send(api, method, f"/1.0/containers/a%2Fb{suffix}", query=bogus) == (
        400, "Invalid instance name")


@pytest.mark.parametrize(("method", "suffix"), SNAPSHOT_ROUTES,
                         ids=[m for m, _ in SNAPSHOT_ROUTES])
def test_snapshot_routes_take_a_slash_as_a_missing_instance(api: API, method: str,
                                                            suffix: str) -> None:
    path = f"/1.0/instances/a%2Fb/snapshots/s{suffix}"
    assert send(api, method, path) == (404, "Instance not found")
    assert send(api, method, path, query="instance-type=bogus") == (
        500, "Invalid instance type")


def test_instance_type_query(api: API) -> None:
    """``?instance-type`` must be ``container`` or ``virtual-machine`` on /1.0/instances; it
    picks the instances a request may see like the /1.0/containers and /1.0/virtual-machines
    aliases do (which ignore it)."""
    name = make(api)
    base = f"/1.0/instances/{name}"
    assert api.get("/1.0/instances", params={"instance-type": "bogus"}).error == (
        "Invalid instance type")
    reply = api.get("/1.0/instances", params={"instance-type": "Container",
                                              "filter": "bogus"})
    assert (reply.status, reply.error) == (500, "Invalid instance type")
    assert api.get("/1.0/containers", params={"instance-type": "bogus"}).status == 200
    assert api.get(base, params={"instance-type": "container"}).status == 200
    assert api.get(f"/1.0/containers/{name}", params={"instance-type": "bogus"}).status == 200
    for suffix in ("", "/state", "/logs", "/logs/lxc.log", "/console", "/metadata",
                   "/metadata/templates", "/snapshots", "/snapshots/s0"):
        for path, params in ((base + suffix, {"instance-type": "virtual-machine"}),
                             (f"/1.0/virtual-machines/{name}{suffix}", {})):
            reply = api.get(path, params=params)
            assert (reply.status, reply.error) == (404, "Instance not found"), path
    reply = api.get(f"{base}/files", params={"path": "/", "instance-type": "virtual-machine"})
    assert (reply.status, reply.error) == (404, "Instance not found")
    # DELETE …/console ignores the type.
    stat = f"stat /var/lib/lxd/logs/{name}/console.log: no such file or directory"
    for path, params in ((f"{base}/console", {"instance-type": "bogus"}),
                         (f"/1.0/virtual-machines/{name}/console", {})):
        reply = api.delete(path, params=params)
        assert (reply.status, reply.error) == (404, stat)


# -- the instance before the body ----------------------------------------------------------------


def test_rename_and_state_look_the_instance_up_before_the_body(api: API) -> None:
    for method, suffix in (("POST", ""), ("PUT", "/state")):
        path = f"/1.0/instances/{MISSING}{suffix}"
        for body in (b"{", b"", b"[]", b'{"name":1}'):
            for query in ("", "project=nope"):
                assert send(api, method, path, body, query) == (404, "Instance not found")
    name = make(api)
    assert send(api, "POST", f"/1.0/instances/{name}", b"{") == (400, "unexpected EOF")
    assert send(api, "PUT", f"/1.0/instances/{name}/state", b"[]") == (
        400, "json: cannot unmarshal array into Go value of type api.InstanceStatePut")


def test_rename_with_a_target(api: API) -> None:
    """``POST /1.0/instances/{name}?target=``: the project, the cluster member (``none`` is
    the only one outside a cluster), the instance, then ``Target node is offline``: before
    the body is read."""
    name = make(api)
    for inst in (name, MISSING):
        path = f"/1.0/instances/{inst}"
        assert send(api, "POST", path, query="target=nope") == (
            404, "Failed to get target node: Cluster member not found")
        assert send(api, "POST", path, query="target=NONE") == (
            404, "Failed to get target node: Cluster member not found")
        for target in ("nope", "none"):
            assert send(api, "POST", path, query=f"project=nope&target={target}") == (
                404, "Failed loading project: Project not found")
        assert send(api, "POST", path, query="instance-type=bogus&target=nope") == (
            500, "Invalid instance type")
    address = "Failed to get address of instance's member: Instance not found"
    assert send(api, "POST", f"/1.0/instances/{MISSING}", query="target=none") == (
        404, address)
    assert send(api, "POST", f"/1.0/instances/{name}", query="target=none") == (
        400, "Target node is offline")
    assert send(api, "POST", f"/1.0/virtual-machines/{name}", query="target=none") == (
        404, address)
    assert send(api, "POST", f"/1.0/instances/{MISSING}", query="target=") == (
        404, "Instance not found")
    assert api.get(f"/1.0/instances/{name}").status == 200


# -- logs and console ----------------------------------------------------------------------------


def test_log_and_console_messages_for_missing_instances(api: API) -> None:
    """GET/DELETE …/logs/{file} and DELETE …/console load the instance themselves: the
    project first, then ``Failed to fetch instance``; the other routes say
    ``Instance not found`` whatever the project."""
    fetch = f'Failed to fetch instance "{MISSING}" in project "default": Instance not found'
    for method, suffix in (("GET", "/logs/lxc.log"), ("DELETE", "/logs/lxc.log"),
                           ("DELETE", "/console"), ("GET", "/logs/nope.log")):
        path = f"/1.0/instances/{MISSING}{suffix}"
        assert send(api, method, path) == (404, fetch)
        assert send(api, method, path, query="instance-type=virtual-machine") == (404, fetch)
        assert send(api, method, path, query="project=nope") == (404, "Project not found")
    for method, suffix in (("GET", "/logs"), ("GET", "/console"), ("GET", "")):
        path = f"/1.0/instances/{MISSING}{suffix}"
        assert send(api, method, path, query="project=nope") == (404, "Instance not found")
    # The name is quoted as Go's %q does.
    reply = api.get("/1.0/instances/a%22b%C3%A9%09/logs/lxc.log")
    assert reply.error == ('Failed to fetch instance "a\\"bé\\t" in project "default": '
                           "Instance not found")
    # An existing instance of another type: plain "Instance not found".
    name = make(api)
    for method in ("GET", "DELETE"):
        reply = api.request(method, f"/1.0/virtual-machines/{name}/logs/lxc.log")
        assert (reply.status, reply.error) == (404, "Instance not found")
        reply = api.request(method, f"/1.0/instances/{name}/logs/lxc.log",
                            params={"project": "nope"})
        assert (reply.status, reply.error) == (404, "Project not found")


def test_log_file_names(api: API) -> None:
    """A file name with a ``/`` does not match the route; escaped, it is not a valid name."""
    name = make(api)
    base = f"/1.0/instances/{name}/logs"
    logs = f"/var/lib/lxd/logs/{name}"
    for method in ("GET", "DELETE"):
        reply = api.request(method, f"{base}/exec_a/b")
        assert (reply.status, reply.error) == (404, "not found")
        reply = api.request(method, f"/1.0/instances/{MISSING}/logs/a/b",
                            params={"instance-type": "bogus"})
        assert (reply.status, reply.error) == (404, "not found")
        for file, shown in (("exec_a%2Fb", "exec_a/b"), ("exec_..", "exec_.."),
                            ("exec_a%5Cb", "exec_a\\b"), ("qemu.conf", "qemu.conf"),
                            ("edk2.log", "edk2.log")):
            reply = api.request(method, f"{base}/{file}")
            assert (reply.status, reply.error) == (400, f"log file name {shown} not valid")
    for file in ("qemu.log", "exec_.", "migration_x"):
        reply = api.get(f"{base}/{file}")
        assert (reply.status, reply.error) == (
            500, f"open {logs}/{file}: no such file or directory")
        reply = api.delete(f"{base}/{file}")
        assert (reply.status, reply.error) == (
            404, f"remove {logs}/{file}: no such file or directory")
    reply = api.get(f"{base}/exec_%00")
    assert (reply.status, reply.error) == (500, f"open {logs}/exec_\x00: invalid argument")
    reply = api.delete(f"{base}/exec_%00")
    assert (reply.status, reply.error) == (500, f"remove {logs}/exec_\x00: invalid argument")


# -- snapshots -----------------------------------------------------------------------------------


def test_snapshot_create_checks_the_project_first(api: API) -> None:
    name = make(api)
    for inst in (name, MISSING):
        path = f"/1.0/instances/{inst}/snapshots"
        assert send(api, "POST", path, b"{}", "project=nope") == (404, "Project not found")
        assert send(api, "GET", path, query="project=nope") == (404, "Instance not found")
    assert send(api, "POST", f"/1.0/instances/{MISSING}/snapshots", b"{") == (
        404, "Instance not found")


# -- metadata templates --------------------------------------------------------------------------


def test_templates(api: API) -> None:
    """The instance comes before ``?path``; names with a ``/`` are refused; ``.`` is the
    templates directory itself (it exists once a template was written) and ``..`` the
    instance's directory. LXD 5.0.2 has no PUT here."""
    name = make(api)
    path = f"/1.0/instances/{name}/metadata/templates"
    root = f"/var/lib/lxd/containers/{name}"
    for method in ("POST", "DELETE"):
        assert send(api, method, f"/1.0/instances/{MISSING}/metadata/templates") == (
            404, "Instance not found")
        assert send(api, method, path) == (400, "missing path argument")
    assert send(api, "PUT", path, query="path=t") == (501, "not implemented")
    assert api.get(path, params={"path": ""}).metadata == []
    reply = api.get(path, params={"path": "."})
    assert (reply.status, reply.error) == (404, 'Template "." not found')
    for method in ("GET", "DELETE", "POST"):  # a POST creates the directory, even refused
        for bad in ("a/b", "/etc/hostname", "../x"):
            reply = api.request(method, path, params={"path": bad}, data=b"x")
            assert (reply.status, reply.error) == (500, "Invalid template filename")
    reply = api.get(path, params={"path": "."})
    assert (reply.status, "copy_file_range" in reply.error) == (500, True), reply
    for method in ("GET", "DELETE"):
        reply = api.request(method, path, params={"path": "a b"})
        assert (reply.status, reply.error) == (404, 'Template "a b" not found')
    assert api.request("POST", path, params={"path": "x.tpl"}, data=b"hello").status == 200
    assert api.get(path).metadata == ["x.tpl"]
    reply = api.get(path, params={"path": "x.tpl"})
    assert (reply.status, reply.raw) == (200, b"hello")
    assert reply.headers["Content-Disposition"] == "inline;filename=x.tpl"
    reply = api.request("POST", path, params={"path": "."}, data=b"x")
    assert (reply.status, reply.error) == (500, f"open {root}/templates: is a directory")
    reply = api.request("POST", path, params={"path": ".."}, data=b"x")
    assert (reply.status, reply.error) == (500, f"open {root}: is a directory")
    reply = api.get(path, params={"path": "."})
    assert reply.status == 500
    assert re.fullmatch(r"write /tmp/lxd_template\d+: copy_file_range: is a directory",
                        reply.error), reply
    reply = api.delete(path, params={"path": "."})
    assert (reply.status, reply.error) == (
        500, f"remove {root}/templates: directory not empty")
    for method, verb in (("GET", "open"), ("POST", "open"), ("DELETE", "remove")):
        reply = api.request(method, path, params={"path": "\x00"}, data=b"x")
        assert (reply.status, reply.error) == (
            500, f"{verb} {root}/templates/\x00: invalid argument")
    assert api.delete(path, params={"path": "x.tpl"}).status == 200
    reply = api.delete(path, params={"path": "x.tpl"})
    assert (reply.status, reply.error) == (404, 'Template "x.tpl" not found')
    # The empty directory goes with ".", and "." is a missing template again.
    assert api.delete(path, params={"path": "."}).status == 200
    reply = api.get(path, params={"path": "."})
    assert (reply.status, reply.error) == (404, 'Template "." not found')
    assert api.get(path).metadata == []


# -- exec ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "message"), [
    (b"", "unexpected end of JSON input"),
    (b"{", "unexpected end of JSON input"),
    (b"nul", "invalid character ' ' in literal null (expecting 'l')"),
    (b'{"command":["true"]} trailing', "invalid character 't' after top-level value"),
    (b"{} {}", "invalid character '{' after top-level value"),
    (b"[]", "json: cannot unmarshal array into Go value of type api.InstanceExecPost"),
    (b'{"user":-1}', "json: cannot unmarshal number -1 into Go struct field "
                     "InstanceExecPost.user of type uint32"),
])
def test_exec_reads_the_whole_body_before_the_instance(api: API, body: bytes,
                                                       message: str) -> None:
    """``json.Unmarshal``: the whole body must be one JSON value; read before the instance is
    looked up (after the type and the name)."""
    for inst in (MISSING, "a%2Fb"):
        for query in ("", "project=nope"):
            path = f"/1.0/instances/{inst}/exec"
            expected = (400, message) if inst == MISSING else (400, "Invalid instance name")
            assert send(api, "POST", path, body, query) == expected
    assert send(api, "POST", f"/1.0/instances/{MISSING}/exec", body,
                "instance-type=bogus") == (500, "Invalid instance type")
    assert send(api, "POST", f"/1.0/instances/{MISSING}/exec", b"null") == (
        404, "Instance not found")


# -- create --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("query", "body", "status", "message"), [
    ("instance-type=bogus", b"{", 400, "unexpected EOF"),
    ("instance-type=bogus&project=nope&target=x", b"{}", 500, "Invalid instance type"),
    ("target=nope&project=nope", b"{}", 400, "Target only allowed when clustered"),
    ("target=none", b'{"name":"a/b"}', 400, "Target only allowed when clustered"),
    ("project=nope", b'{"type":"bogus","name":"a/b"}', 404,
     "Failed loading project: Project not found"),
    ("project=nope&target=x", b'{"instance_type":"cx"}', 400, "Bad custom instance type: cx"),
    ("instance-type=bogus", b'{"instance_type":"cx"}', 500, "Invalid instance type"),
    ("", b'{"instance_type":"x","profiles":["nope"]}', 400,
     "Provided instance type doesn't exist: x"),
    ("", b'{"instance_type":"t2.micro"}', 400, "Provided instance type doesn't exist: t2.micro"),
    ("", b'{"instance_type":"a:c1-m1"}', 400, "Provided instance type doesn't exist: a:c1-m1"),
    ("", b'{"instance_type":"c1-m"}', 400, "Provided instance type doesn't exist: c1-m"),
    ("", b'{"instance_type":"c1-x1"}', 400, "Provided instance type doesn't exist: c1-x1"),
    ("", b'{"instance_type":"cx"}', 400, "Bad custom instance type: cx"),
    ("", b'{"instance_type":"c1-mx","name":"a/b"}', 400, "Bad custom instance type: c1-mx"),
    ("", b'{"instance_type":"c1.5-m2","source":{"type":"bogus"}}', 400,
     "Unknown source type bogus"),
    ("", b'{"name":"a/b","profiles":["nope"]}', 500, 'Requested profile "nope" doesn\'t exist'),
    ("", b'{"name":"a b","profiles":["nope"],"type":"bogus"}', 500,
     'Requested profile "nope" doesn\'t exist'),
    ("", b'{"name":"a/b c","source":{"type":"bogus"}}', 400,
     'The character "/" is reserved for snapshots'),
    ("", b'{"name":"/","type":"bogus"}', 400, 'The character "/" is reserved for snapshots'),
    ("", b'{"name":"a b","source":{"type":"bogus"}}', 400,
     "Invalid instance name: Name can only contain alphanumeric and hyphen characters"),
    ("", b'{"type":"bogus"}', 400, "Unknown source type "),
    ("", b'{"type":"bogus","source":{"type":"none"},"architecture":"nope"}', 400,
     "Invalid instance type"),
    ("", b'{"source":{"type":"image"},"type":"bogus","architecture":"nope"}', 500,
     "Must specify one of alias, fingerprint or properties for init from image"),
    ("", b'{"source":{"type":"image","alias":"nope-missing"},"type":"bogus"}', 404,
     "Image alias not found"),
    ("", b'{"source":{"type":"image","alias":"busybox"},"type":"bogus"}', 400,
     "Invalid instance type"),
    ("", b'{"source":{"type":"copy"},"type":"bogus","architecture":"nope"}', 400,
     "Must specify a source instance"),
    ("", b'{"source":{"type":"copy","source":"nope-missing/s0"},"type":"bogus"}', 404,
     'Failed to fetch instance "nope-missing/s0" in project "default": Instance not found'),
    ("", b'{"source":{"type":"migration","mode":"pull"},"type":"bogus"}', 400,
     "Architecture isn't supported: "),
    ("", b'{"source":{"type":"migration","mode":"push","architecture":"x86_64"},'
         b'"architecture":"nope"}', 400, "Architecture isn't supported: nope"),
    ("", b'{"source":{"type":"migration","mode":"pull"},"type":"bogus",'
         b'"architecture":"x86_64"}', 400, "Invalid instance type"),
    ("", b'{"source":{"type":"migration","mode":"x"},"architecture":"nope"}', 501,
     'Mode "x" not implemented'),
    ("", b'{"source":{"type":"migration"},"type":"bogus"}', 501, 'Mode "" not implemented'),
], ids=lambda v: v.decode() if isinstance(v, bytes) else None)
def test_create_checks_in_lxds_order(api: API, query: str, body: bytes, status: int,
                                     message: str) -> None:
    with_busybox(api)
    assert send(api, "POST", "/1.0/instances", body, query) == (status, message)


def test_create_from_an_image_or_a_copy_ignores_type_and_architecture(api: API) -> None:
    name = unique("i")
    remove_later(api, name)
    with_busybox(api)
    reply = api.post("/1.0/instances", {"name": name, "architecture": "nope",
                                        "source": {"type": "image", "alias": "busybox"}})
    assert reply.status == 202, reply
    assert api.wait(reply)["status"] == "Success"
    assert api.get(f"/1.0/instances/{name}").metadata["architecture"] == "x86_64"
    copy = unique("i")
    remove_later(api, copy)
    reply = api.post("/1.0/instances", {"name": copy, "type": "bogus", "architecture": "nope",
                                        "profiles": ["default"],
                                        "source": {"type": "copy", "source": name}})
    assert reply.status == 202, reply
    assert api.wait(reply)["status"] == "Success"
    got = api.get(f"/1.0/instances/{copy}").metadata
    assert (got["type"], got["architecture"]) == ("container", "x86_64")
    reply = api.post("/1.0/instances", {"name": unique("i"), "source": {
        "type": "copy", "source": f"{name}/nope/x"}})
    assert (reply.status, reply.error) == (
        404, f'Failed to fetch snapshot "nope/x" of instance "{name}" in project "default": '
             "InstanceSnapshot not found")


@pytest.mark.parametrize(("instance_type", "config", "expected"), [
    ("c1.5-m1.5", {}, {"limits.cpu": "2", "limits.cpu.allowance": "75%",
                       "limits.memory": "1536MB"}),
    ("m0.5-c3", {"limits.cpu": "1"}, {"limits.cpu": "1", "limits.memory": "512MB"}),
    ("c0.5", {}, {"limits.cpu": "1", "limits.cpu.allowance": "50%"}),
    ("c1-m1-c2", {}, {"limits.cpu": "2", "limits.memory": "1024MB"}),
    ("cnan-m0", {}, {}),
])
def test_create_with_a_custom_instance_type(api: API, instance_type: str,
                                            config: dict[str, str],
                                            expected: dict[str, str]) -> None:
    """``c<cpus>-m<GiB>`` becomes limits in the config (keys the body sets are kept)."""
    name = make(api, source={"type": "none"}, instance_type=instance_type, config=config)
    got = api.get(f"/1.0/instances/{name}").metadata["config"]
    assert {k: v for k, v in got.items() if k.startswith("limits.")} == expected
