"""``/1.0/profiles``: profiles per project (or the default project's, per ``features.profiles``)."""

from __future__ import annotations

from typing import Any

from werkzeug.wrappers import Response

from .. import responses
from ..app import Ctx
from ..gourl import go_quote, url_segment, with_project
from ..responses import LXDError
from ..schema import DEVICES, MAP_STR, STR, Struct, patch_config
from ..state import State
from ..validation import (
    DeviceNotFound,
    Invalid,
    check_devices,
    check_instance_config,
    check_name,
)
from . import route

PROFILES_POST = Struct("ProfilesPost", name=STR, description=STR, config=MAP_STR, devices=DEVICES)
PROFILE_PUT = Struct("ProfilePut", description=STR, config=MAP_STR, devices=DEVICES)
PROFILE_POST = Struct("ProfilePost", name=STR)


def new(name: str, description: str = "", config: dict[str, str] | None = None,
        devices: dict[str, dict[str, str]] | None = None) -> dict[str, Any]:
    return {"name": name, "description": description, "config": dict(config or {}),
            "devices": {k: dict(v) for k, v in (devices or {}).items()}}


def validate(config: dict[str, str], devices: dict[str, dict[str, str]],
             state: State | None = None, project: str = "default") -> None:
    """Raise :class:`Invalid` for a bad config key/value or device (with ``state``, NIC
    networks are looked up among ``project``'s managed networks:
    :class:`~fakeserver.validation.DeviceNotFound`)."""
    check_instance_config(config)
    networks = None
    if state is not None:
        owner = state.owner("networks", project)
        networks = (owner, set(state.in_project("networks", project)))
    check_devices(devices, networks)


def seed(state: State, items: list[dict[str, Any]]) -> None:
    """Preseed: create or update profiles (config and devices merged)."""
    for item in items:
        project = item.get("project") or "default"
        profiles = state.in_project("profiles", project)
        name = str(item.get("name", ""))
        check_name(name, "Profile")
        config = {str(k): str(v) for k, v in (item.get("config") or {}).items()}
        devices = {str(k): {str(a): str(b) for a, b in v.items()}
                   for k, v in (item.get("devices") or {}).items()}
        validate(config, devices)
        if name in profiles:
            profile = profiles[name]
            profile["config"].update(config)
            profile["devices"].update(devices)
            if "description" in item:
                profile["description"] = str(item["description"] or "")
        else:
            profiles[name] = new(name, str(item.get("description") or ""), config, devices)


def used_by(state: State, owner: str, name: str) -> list[str]:
    """Instances (in every project that uses ``owner``'s profiles) that use this profile."""
    urls = []
    for project, instances in state.families["instances"].items():
        if state.owner("profiles", project) != owner:
            continue
        for inst_name, inst in sorted(instances.items()):
            if name in inst.get("profiles", []):
                path = f"/1.0/instances/{inst_name}"
                urls.append(path if project == "default" else f"{path}?project={project}")
    return urls


def _rename_references(state: State, owner: str, old: str, new_name: str) -> None:
    """Instances that use a renamed profile follow the rename, as in LXD."""
    for project, instances in state.families["instances"].items():
        if state.owner("profiles", project) != owner:
            continue
        for inst in instances.values():
            inst["profiles"] = [new_name if p == old else p for p in inst.get("profiles", [])]


def render(state: State, owner: str, profile: dict[str, Any]) -> dict[str, Any]:
    return {"config": profile["config"], "description": profile["description"],
            "devices": profile["devices"], "name": profile["name"],
            "used_by": used_by(state, owner, profile["name"])}


def etag(profile: dict[str, Any]) -> str:
    return responses.etag_of([profile["config"], profile["description"], profile["devices"]])


def _profiles(ctx: Ctx) -> tuple[str, dict[str, Any]]:
    ctx.state.require_project(ctx.project, f"Failed loading project {go_quote(ctx.project)}: "
                                           "Project not found")
    owner = ctx.state.owner("profiles", ctx.project)
    return owner, ctx.state.in_project("profiles", ctx.project)


def _url(owner: str, name: str) -> str:
    """The profile's URL as LXD 5.0.2 writes it: the name escaped twice (``a b`` is
    ``a%2520b``), the project query-escaped."""
    path = f"/1.0/profiles/{url_segment(name)}"
    return with_project(path, owner)


@route("/1.0/profiles", "GET")
def list_profiles(ctx: Ctx) -> Response:
    with ctx.state.lock:
        owner, profiles = _profiles(ctx)
        names = sorted(profiles)
        if ctx.recursion >= 1:
            return responses.sync([render(ctx.state, owner, profiles[n]) for n in names])
        return responses.sync([_url(owner, n) for n in names])


@route("/1.0/profiles", "POST")
def create_profile(ctx: Ctx) -> Response:
    ctx.raw_body()  # read before taking the lock; LXD checks the project first
    with ctx.state.lock:
        owner, profiles = _profiles(ctx)
        body = ctx.body(PROFILES_POST)
        name = body["name"]
        check_name(name, "Profile")
        if name in (".", ".."):
            raise LXDError(400, f"Invalid profile name {go_quote(name)}")
        try:
            validate(body["config"], body["devices"], ctx.state, ctx.project)
        except Invalid as exc:
            raise LXDError(400, str(exc)) from None
        if name in profiles:
            raise LXDError(500, f"Error inserting {go_quote(name)} into database: "
                                "The profile already exists")
        profiles[name] = new(name, body["description"], body["config"], body["devices"])
    url = _url(owner, name)
    ctx.lifecycle("profile-created", url, project=owner)
    return responses.created(url)


def _get(ctx: Ctx, name: str, missing: str) -> tuple[str, dict[str, Any]]:
    owner, profiles = _profiles(ctx)
    if name not in profiles:
        raise LXDError(404, missing)
    return owner, profiles[name]


@route("/1.0/profiles/<name>", "GET")
def get_profile(ctx: Ctx, name: str) -> Response:
    with ctx.state.lock:
        owner, profile = _get(ctx, name, "Fetch profile: Profile not found")
        return responses.sync(render(ctx.state, owner, profile), etag=etag(profile))


@route("/1.0/profiles/<name>", "PUT", "PATCH")
def update_profile(ctx: Ctx, name: str) -> Response:
    """LXD's order: project, profile, ETag, then the body (PATCH words its 404 its own way)."""
    ctx.raw_body()  # read before taking the lock
    patch = ctx.request.method == "PATCH"
    missing = (f"Failed to retrieve profile={go_quote(name)}: Profile not found" if patch
               else f"Failed to retrieve profile {go_quote(name)}: Profile not found")
    with ctx.state.lock:
        owner, profile = _get(ctx, name, missing)
        ctx.check_etag(etag(profile))
        body = ctx.body(PROFILE_PUT)
        # LXD emits profile-updated before it validates, so a failing update still shows it.
        ctx.lifecycle("profile-updated", _url(owner, name), project=owner)
        if not patch:
            config, devices = body["config"], body["devices"]
            description = body["description"]
        else:
            config = patch_config(dict(profile["config"]), body["config"])
            devices = {**profile["devices"], **body["devices"]}
            description = (body["description"] if "description" in body.present
                           else profile["description"])
        try:
            validate(config, devices, ctx.state, ctx.project)
        except DeviceNotFound as exc:
            raise LXDError(404, str(exc)) from None
        except Invalid as exc:
            raise LXDError(500, str(exc)) from None
        profile.update(new(name, description, config, devices))
    return responses.empty()


@route("/1.0/profiles/<name>", "POST")
def rename_profile(ctx: Ctx, name: str) -> Response:
    """LXD's order: project, ``default``, the body and the new name, then the database (which
    answers 500 both for a name in use and for a profile that is not there)."""
    ctx.raw_body()  # read before taking the lock
    with ctx.state.lock:
        owner, profiles = _profiles(ctx)
        if name == "default":
            raise LXDError(403, 'The "default" profile cannot be renamed')
        body = ctx.body(PROFILE_POST)
        new_name = body["name"]
        check_name(new_name, "Profile")
        if new_name in (".", ".."):
            raise LXDError(400, f"Invalid profile name {go_quote(new_name)}")
        if new_name in profiles:
            raise LXDError(500, f"Name {go_quote(new_name)} already in use")
        if name not in profiles:
            raise LXDError(500, "Query affected 0 rows instead of 1")
        profile = profiles.pop(name)
        profiles[new_name] = profile
        profile["name"] = new_name
        _rename_references(ctx.state, owner, name, new_name)
    url = _url(owner, new_name)
    ctx.lifecycle("profile-renamed", url, context={"old_name": name}, project=owner)
    return responses.created(url)


@route("/1.0/profiles/<name>", "DELETE")
def delete_profile(ctx: Ctx, name: str) -> Response:
    with ctx.state.lock:
        owner, _ = _get(ctx, name, "Profile not found")
        if name == "default":
            raise LXDError(403, 'The "default" profile cannot be deleted')
        if used_by(ctx.state, owner, name):
            raise LXDError(500, "Profile is currently in use")
        del ctx.state.in_project("profiles", ctx.project)[name]
    ctx.lifecycle("profile-deleted", _url(owner, name), project=owner)
    return responses.empty()
