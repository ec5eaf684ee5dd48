"""The Client itself: server information, extensions, raw ``api`` access, projects, closing."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
import requests

import pytest_lxd
from pytest_lxd import Client, ClientConnectionFailed, exceptions
from pytest_lxd.client import APINode

from .conftest import LXDEnv


def test_host_info_and_trust(client: Client) -> None:
    info = client.host_info
    assert info["api_version"] == "1.0"
    assert info["auth"] == "trusted"
    assert client.trusted is True
    assert client.server_clustered is False
    assert info["environment"]["server_version"] == "5.0.2"
    assert client.websocket_url.startswith("ws+unix:///")


def test_api_extensions(client: Client) -> None:
    assert client.has_api_extension("projects")
    assert not client.has_api_extension("no_such_extension")
    client.assert_has_api_extension("etag")
    with pytest.raises(exceptions.LXDAPIExtensionNotAvailable, match="no_such_extension"):
        client.assert_has_api_extension("no_such_extension")


def test_resources_are_read_once(client: Client) -> None:
    resources = client.resources
    assert {"cpu", "memory", "storage"} <= set(resources)
    assert client.resources is resources


def test_raw_api_access(client: Client) -> None:
    response = client.api.profiles["default"].get()
    assert isinstance(response, requests.Response)
    assert response.json()["metadata"]["name"] == "default"
    assert client.api.storage_pools.path == "/1.0/storage-pools"
    assert client.api.network_acls.path == "/1.0/network-acls"
    assert client.api["network-acls"].path == "/1.0/network-acls"
    with pytest.raises(exceptions.NotFound, match="not found"):
        client.api.profiles["no-such-profile-pl"].get()
    with pytest.raises(exceptions.NotFound):
        client.api.no_such_endpoint.get()
    with pytest.raises(exceptions.LXDAPIException) as info:
        client.api.post(json={})  # POST /1.0 is not implemented
    assert info.value.error_code == 501
    assert info.value.response is not None and info.value.response.status_code == 501


def _record(client: Client) -> list[str]:
    """Every URL the client sends from now on."""
    urls: list[str] = []

    def hook(response: requests.Response, *args: Any, **kwargs: Any) -> None:
        urls.append(response.request.url)

    client.transport.session.hooks["response"].append(hook)
    return urls


def test_every_request_carries_the_project(lxd: LXDEnv) -> None:
    name = lxd.unique("prj")
    lxd.client.projects.create(name, config={"features.profiles": "true"})
    lxd.delete_later(f"/1.0/projects/{name}")
    scoped = lxd.new_client(project=name)
    urls = _record(scoped)
    profile = scoped.profiles.create(lxd.unique("p"), description="in a project")
    lxd.delete_later(f"/1.0/profiles/{profile.name}", project=name)
    names = [p.name for p in scoped.profiles.all()]
    assert sorted(names) == sorted(["default", profile.name])  # no "?project=" in names
    profile.description = "changed"
    profile.save()
    scoped.api.profiles[profile.name].get()
    assert urls and all(f"project={name}" in url for url in urls), urls
    # The default project does not see it.
    assert not lxd.client.profiles.exists(profile.name)
    assert scoped.profiles.get(profile.name).description == "changed"


def test_client_without_project_sends_none(client: Client) -> None:
    urls = _record(client)
    client.profiles.get("default")
    assert urls and not any("project=" in url for url in urls)


def test_close_and_context_manager(lxd: LXDEnv) -> None:
    with Client(lxd.socket_path) as other:
        assert other.profiles.exists("default")
    with pytest.raises(ClientConnectionFailed, match="closed"):
        other.profiles.get("default")


def test_timeout_applies_to_requests(lxd: LXDEnv) -> None:
    quick = lxd.new_client(timeout=30)
    seen: list[Any] = []
    original = quick.transport.session.request

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs.get("timeout"))
        return original(*args, **kwargs)

    quick.transport.session.request = spy  # type: ignore[method-assign]
    quick.profiles.get("default")
    assert seen == [30]


def test_managers_have_real_signatures() -> None:
    """Static, typed managers: the signatures pylxd users call are visible to IDEs."""
    from pytest_lxd.models import (
        CertificateManager,
        NetworkManager,
        ProfileManager,
        ProjectManager,
        StoragePoolManager,
    )

    def params(fn: Any) -> list[str]:
        return list(inspect.signature(fn).parameters)

    assert params(ProfileManager.create) == ["self", "name", "config", "devices",
                                             "description", "wait"]
    assert params(NetworkManager.create) == ["self", "name", "description", "type", "config",
                                             "wait"]
    assert params(ProjectManager.create) == ["self", "name", "description", "config"]
    assert params(StoragePoolManager.create) == ["self", "definition", "wait"]
    assert params(CertificateManager.create) == ["self", "password", "cert_data", "cert_type",
                                                 "name", "projects", "restricted", "secret"]
    assert params(Client.__init__)[:7] == ["self", "endpoint", "version", "cert", "verify",
                                           "timeout", "project"]
    assert inspect.signature(ProfileManager.get).return_annotation in ("Profile",)
    assert not [n for n in dir(ProfileManager) if n.startswith("_handle")]


def test_package_exports() -> None:
    assert pytest_lxd.EventType.Lifecycle.value == "lifecycle"
    assert issubclass(exceptions.NotFound, exceptions.LXDAPIException)
    assert issubclass(exceptions.Conflict, exceptions.LXDAPIException)
    assert issubclass(exceptions.ETagMismatch, exceptions.LXDAPIException)
    assert issubclass(exceptions.OperationFailed, exceptions.LXDAPIException)
    from pathlib import Path

    assert (Path(pytest_lxd.__file__).parent / "py.typed").exists()
    assert isinstance(APINode.__doc__, str)
