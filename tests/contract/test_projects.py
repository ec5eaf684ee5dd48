"""Projects (global objects: the plugin deletes those a test creates, with their content)."""

from __future__ import annotations

import pytest

from pytest_lxd import Client, exceptions
from pytest_lxd.backends import LXDBackend
from pytest_lxd.models import Project

FEATURES = {"features.images": "true", "features.profiles": "true",
            "features.storage.volumes": "true"}


def test_create_get_all_exists(lxd_client: Client, lxd_backend: LXDBackend) -> None:
    name = lxd_backend.unique("pl")
    created = lxd_client.projects.create(name, description="a project",
                                         config={"limits.instances": "3"})
    assert isinstance(created, Project)
    assert (created.name, created.description) == (name, "a project")
    assert created.config == {**FEATURES, "limits.instances": "3"}  # features default on
    assert created.used_by == [f"/1.0/profiles/default?project={name}"]
    got = lxd_client.projects.get(name)
    assert got == created and got.etag
    names = [p.name for p in lxd_client.projects.all()]
    assert {"default", name, lxd_backend.project} <= set(names)
    loaded = {p.name: p for p in lxd_client.projects.all(recursion=1)}
    assert loaded[name].config == created.config
    assert lxd_client.projects.exists(name) and not lxd_client.projects.exists("nope")


def test_the_tests_own_project(lxd_client: Client, lxd_backend: LXDBackend) -> None:
    own = lxd_client.projects.get(lxd_backend.project)
    assert {k: v for k, v in own.config.items() if k.startswith("features.")} == FEATURES
    assert lxd_backend.object_url("/1.0/profiles/default") in own.used_by


def test_change_dirty_save_sync_rollback(lxd_client: Client, lxd_backend: LXDBackend) -> None:
    name = lxd_backend.unique("pl")
    project = lxd_client.projects.create(name)
    project.config["limits.instances"] = "5"
    project.description = "changed"
    assert project.dirty_fields == ["config", "description"]
    project.save()
    assert not project.dirty
    assert lxd_client.projects.get(name).config == {**FEATURES, "limits.instances": "5"}
    project.config.clear()
    project.rollback()
    assert project.config["limits.instances"] == "5" and not project.dirty
    theirs = lxd_backend.client().projects.get(name)
    theirs.description = "theirs"
    theirs.save()
    project.description = "mine"
    with pytest.raises(exceptions.ETagMismatch):
        project.save()
    project.sync()
    assert project.description == "theirs"


def test_rename_and_delete(lxd_client: Client, lxd_backend: LXDBackend) -> None:
    name, new = lxd_backend.unique("pl"), lxd_backend.unique("pl")
    project = lxd_client.projects.create(name)
    assert project.rename(new) is project and project.name == new  # a background operation
    assert lxd_client.projects.exists(new) and not lxd_client.projects.exists(name)
    inside = lxd_backend.client(project=new)
    inside.profiles.create("p1")
    with pytest.raises(exceptions.LXDAPIException, match="Only empty projects can be removed"):
        project.delete()
    inside.profiles.get("p1").delete()
    project.delete()
    assert not lxd_client.projects.exists(new)


def test_errors(lxd_client: Client, lxd_backend: LXDBackend) -> None:
    with pytest.raises(exceptions.NotFound, match="Project not found"):
        lxd_client.projects.get("nope")
    with pytest.raises(exceptions.Conflict, match='Failed creating project "default"'):
        lxd_client.projects.create("default")
    with pytest.raises(exceptions.Forbidden, match="The 'default' project cannot be deleted"):
        lxd_client.projects.get("default").delete()
    with pytest.raises(exceptions.LXDAPIException,
                       match="Project names may not contain slashes") as bad:
        lxd_client.projects.create("has/slash")
    assert bad.value.error_code == 400
