"""Profiles through the client, and the model lifecycle every object shares.

Lazy loading, ``dirty`` (in-place edits included), ``sync()`` that really refreshes,
``rollback()``, ``save()`` that writes only when dirty and refuses to overwrite a concurrent
change (ETag / If-Match), unknown fields kept.
"""

from __future__ import annotations

import warnings
from typing import Any

import pytest
import requests

from pytest_lxd import Client, exceptions
from pytest_lxd.models import Profile

from .conftest import LXDEnv


def make(lxd: LXDEnv, **kwargs: Any) -> Profile:
    name = lxd.unique("p")
    profile = lxd.client.profiles.create(name, **kwargs)
    lxd.delete_later(f"/1.0/profiles/{name}")
    return profile


def count_requests(client: Client) -> list[str]:
    seen: list[str] = []

    def hook(response: requests.Response, *args: Any, **kwargs: Any) -> None:
        seen.append(f"{response.request.method} {response.request.path_url}")

    client.transport.session.hooks["response"].append(hook)
    return seen


def test_create_get_exists_delete(lxd: LXDEnv) -> None:
    profile = make(lxd, config={"limits.cpu": "1"}, description="made by a test",
                   devices={"d1": {"type": "disk", "path": "/mnt", "source": "/srv"}})
    assert profile.config == {"limits.cpu": "1"}
    assert profile.description == "made by a test"
    assert profile.devices["d1"]["path"] == "/mnt"
    assert profile.used_by == []
    assert profile.etag and len(profile.etag) == 64
    assert not profile.dirty
    client = lxd.client
    assert client.profiles.exists(profile.name)
    assert client.profiles.get(profile.name) == profile
    assert profile in client.profiles.all()
    assert profile.delete() is None
    assert not client.profiles.exists(profile.name)
    with pytest.raises(exceptions.NotFound):
        client.profiles.get(profile.name)


def test_create_errors_carry_lxds_message(lxd: LXDEnv) -> None:
    profile = make(lxd)
    with pytest.raises(exceptions.LXDAPIException) as info:
        lxd.client.profiles.create(profile.name)
    assert info.value.error_code == 500  # LXD 5.0.2 answers a duplicate profile with 500
    assert "already exists" in str(info.value)
    with pytest.raises(exceptions.LXDAPIException, match="Unknown configuration key: foo.bar"):
        lxd.client.profiles.create(lxd.unique("p"), config={"foo.bar": "1"})


def test_all_is_lazy_and_loads_once(lxd: LXDEnv) -> None:
    made = make(lxd, description="lazy")
    client = lxd.new_client()
    seen = count_requests(client)
    profiles = {p.name: p for p in client.profiles.all()}
    assert seen == ["GET /1.0/profiles"]
    sparse = profiles[made.name]
    assert sparse.name == made.name and len(seen) == 1  # the key needs no request
    assert sparse.description == "lazy"
    assert sparse.config == {} and sparse.used_by == []
    assert seen == ["GET /1.0/profiles", f"GET /1.0/profiles/{made.name}"]
    assert not sparse.dirty
    loaded = client.profiles.all(recursion=1)
    assert {p.name: p.description for p in loaded}[made.name] == "lazy"


def test_in_place_edits_are_dirty_and_rollback_discards_them(lxd: LXDEnv) -> None:
    profile = make(lxd, config={"user.a": "1"})
    profile.config["user.b"] = "2"
    assert profile.dirty and profile.dirty_fields == ["config"]
    profile.devices["eth0"] = {"type": "nic", "nictype": "bridged", "parent": "lxdbr0"}
    assert profile.dirty_fields == ["config", "devices"]
    profile.rollback()
    assert not profile.dirty
    assert profile.config == {"user.a": "1"} and profile.devices == {}
    profile.description = "same"
    profile.description = ""  # back to the loaded value: not dirty any more
    assert not profile.dirty


def test_save_writes_only_when_dirty(lxd: LXDEnv) -> None:
    profile = make(lxd)
    seen = count_requests(lxd.client)
    assert profile.save() is None
    assert seen == []
    profile.config["user.k"] = "v"
    profile.save()
    assert [s.split()[0] for s in seen] == ["PUT", "GET"]  # PUT with If-Match, then reload
    assert not profile.dirty
    assert lxd.client.profiles.get(profile.name).config == {"user.k": "v"}


def test_save_sends_if_match(lxd: LXDEnv) -> None:
    profile = make(lxd)
    sent: list[str | None] = []
    lxd.client.transport.session.hooks["response"].append(
        lambda r, *a, **k: sent.append(r.request.headers.get("If-Match")))
    etag = profile.etag
    profile.description = "x"
    profile.save()
    assert sent[0] == f'"{etag}"'
    assert profile.etag != etag


def test_concurrent_change_is_not_overwritten(lxd: LXDEnv) -> None:
    mine = make(lxd, config={"user.a": "1"})
    theirs = lxd.new_client().profiles.get(mine.name)
    theirs.config["user.a"] = "theirs"
    theirs.save()
    mine.config["user.a"] = "mine"
    with pytest.raises(exceptions.ETagMismatch) as info:
        mine.save()
    assert info.value.error_code == 412
    assert str(info.value).startswith("ETag doesn't match: ")
    assert isinstance(info.value, exceptions.LXDAPIException)
    assert lxd.client.profiles.get(mine.name).config == {"user.a": "theirs"}
    assert mine.dirty  # the local change is still there to re-apply
    mine.sync()
    assert mine.config == {"user.a": "theirs"} and not mine.dirty
    mine.config["user.a"] = "mine"
    mine.save()
    assert lxd.client.profiles.get(mine.name).config == {"user.a": "mine"}


def test_concurrent_change_is_caught_without_an_etag(lxd: LXDEnv) -> None:
    """Objects from ``all(recursion=1)`` have no ETag: save() compares with the server first."""
    made = make(lxd, description="v1")
    listed = {p.name: p for p in lxd.new_client().profiles.all(recursion=1)}[made.name]
    assert listed.etag is None
    made.description = "v2"
    made.save()
    listed.description = "v3"
    with pytest.raises(exceptions.ETagMismatch, match="changed on the server.*description"):
        listed.save()
    assert lxd.client.profiles.get(made.name).description == "v2"


def test_sparse_object_save_keeps_other_fields(lxd: LXDEnv) -> None:
    made = make(lxd, config={"user.keep": "1"}, description="d")
    sparse = {p.name: p for p in lxd.client.profiles.all()}[made.name]
    sparse.description = "changed"  # set before anything was loaded
    assert sparse.dirty
    sparse.save()
    got = lxd.client.profiles.get(made.name)
    assert (got.description, got.config) == ("changed", {"user.keep": "1"})


def test_sync_refreshes_and_clears_dirty(lxd: LXDEnv) -> None:
    profile = make(lxd, description="v1")
    profile.sync()  # pylxd: every field is now dirty and later syncs do nothing
    assert not profile.dirty
    lxd.new_client().api.profiles[profile.name].patch(json={"description": "v2"})
    profile.config["user.local"] = "x"
    profile.sync()
    assert profile.description == "v2"
    assert profile.config == {} and not profile.dirty


def test_put_patch_raw_put_raw_patch(lxd: LXDEnv) -> None:
    profile = make(lxd, config={"user.a": "1"}, description="d")
    profile.patch({"config": {"user.b": "2"}})
    assert profile.config == {"user.a": "1", "user.b": "2"}  # PATCH merges, then reloads
    profile.put({"description": "put"})
    assert (profile.description, profile.config) == ("put", {})  # PUT replaces
    profile.raw_patch({"description": "raw"})
    assert profile.description == "put"  # not reloaded
    profile.raw_put({"config": {"user.c": "3"}})
    profile.sync()
    assert (profile.description, profile.config) == ("", {"user.c": "3"})


def test_rename(lxd: LXDEnv) -> None:
    profile = make(lxd)
    old = profile.name
    new = lxd.unique("p")
    lxd.delete_later(f"/1.0/profiles/{new}")
    assert profile.rename(new) is profile
    assert profile.name == new
    assert lxd.client.profiles.exists(new) and not lxd.client.profiles.exists(old)
    profile.description = "after rename"
    profile.save()
    assert lxd.client.profiles.get(new).description == "after rename"


def test_unknown_fields_are_kept_quietly(client: Client) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        profile = Profile(client, name="x", brand_new_field={"a": 1}, config={})
    assert profile.brand_new_field == {"a": 1}
    assert profile.extra == {"brand_new_field": {"a": 1}}
    assert "brand_new_field" not in profile.marshall()


def test_server_fields_never_shadow_methods(client: Client) -> None:
    profile = Profile(client, name="x", rename="a server field", config={})
    assert callable(profile.rename)
    assert profile.extra["rename"] == "a server field"


def test_missing_field_error_is_clear(client: Client) -> None:
    profile = client.profiles.get("default")
    with pytest.raises(AttributeError, match="has no field 'nope'"):
        _ = profile.nope  # type: ignore[attr-defined]


def test_models_are_hashable_by_identity(client: Client) -> None:
    a = client.profiles.get("default")
    b = client.profiles.all()[0]
    assert a == b and hash(a) == hash(b)
    assert len({a, b}) == 1
    assert repr(a) == "Profile(name='default')"
