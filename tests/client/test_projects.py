"""Projects through the client (pylxd's ``client.projects``), and clients scoped to one."""

from __future__ import annotations

import pytest

from pytest_lxd import exceptions
from pytest_lxd.models import Project

from .conftest import LXDEnv


def make(lxd: LXDEnv, **kwargs: object) -> Project:
    name = lxd.unique("prj")
    project = lxd.client.projects.create(name, **kwargs)  # type: ignore[arg-type]
    lxd.delete_later(f"/1.0/projects/{name}")
    return project


def test_create_get_all_exists_delete(lxd: LXDEnv) -> None:
    project = make(lxd, description="test project", config={"features.images": "false"})
    assert project.description == "test project"
    assert project.config["features.images"] == "false"
    assert project.config["features.profiles"] == "true"  # LXD defaults the others on
    assert project.etag
    client = lxd.client
    assert client.projects.exists(project.name)
    assert project in client.projects.all()
    assert "default" in [p.name for p in client.projects.all()]
    assert client.projects.get("default").description == "Default LXD project"
    project.delete()
    assert not client.projects.exists(project.name)
    with pytest.raises(exceptions.NotFound, match="Project not found"):
        client.projects.get(project.name)


def test_default_project_cannot_be_deleted(lxd: LXDEnv) -> None:
    with pytest.raises(exceptions.Forbidden, match="The 'default' project cannot be deleted"):
        lxd.client.projects.get("default").delete()


def test_save_and_concurrent_change(lxd: LXDEnv) -> None:
    project = make(lxd)
    project.description = "changed"
    project.config["limits.instances"] = "5"
    project.save()
    got = lxd.client.projects.get(project.name)
    assert got.description == "changed" and got.config["limits.instances"] == "5"
    got.description = "theirs"
    got.save()
    project.description = "mine"
    with pytest.raises(exceptions.ETagMismatch):
        project.save()


def test_rename_waits_for_the_operation(lxd: LXDEnv) -> None:
    project = make(lxd)
    new = lxd.unique("prj")
    lxd.delete_later(f"/1.0/projects/{new}")
    assert project.rename(new) is project
    assert project.name == new
    assert lxd.client.projects.exists(new)
    assert project.description == ""  # still usable under the new name
    project.description = "renamed"
    project.save()
    assert lxd.client.projects.get(new).description == "renamed"


def test_project_with_its_own_profiles(lxd: LXDEnv) -> None:
    project = make(lxd)
    scoped = lxd.new_client(project=project.name)
    assert [p.name for p in scoped.profiles.all()] == ["default"]
    assert scoped.host_info["environment"]["project"] == project.name
    created = scoped.profiles.create(lxd.unique("p"))
    lxd.delete_later(f"/1.0/profiles/{created.name}", project=project.name)
    assert not lxd.client.profiles.exists(created.name)
    used_by = lxd.client.projects.get(project.name).used_by
    assert any(created.name in url and f"project={project.name}" in url for url in used_by)


def test_state(lxd: LXDEnv) -> None:
    state = make(lxd).state()
    assert state.resources["instances"]["Usage"] == 0
