"""The event stream: typed events, type and project filters, timeouts, HTTPS."""

from __future__ import annotations

import time

import pytest

from pytest_lxd import Client, ClientConnectionFailed, EventType
from pytest_lxd.events import EventStream, LifecycleEvent, OperationEvent

from .conftest import HTTPSEnv, LXDEnv


def primed(lxd: LXDEnv, stream: EventStream, client: Client | None = None) -> EventStream:
    """Wait until the stream delivers: LXD answers the websocket upgrade before it registers
    the listener, so an event sent right after connecting can be missed (on the fake too)."""
    client = client or lxd.client
    for _ in range(5):
        marker = client.profiles.create(lxd.unique("mark"))
        lxd.delete_later(f"/1.0/profiles/{marker.name}", project=client.project)
        try:
            stream.wait_for(lambda e, n=marker.name: getattr(e, "name", None) == n, timeout=2)
            return stream
        except TimeoutError:
            continue
    raise AssertionError("the event stream never delivered")


def quiet_project(lxd: LXDEnv) -> str:
    """A fresh project with its own profiles: nobody else makes events there."""
    name = lxd.unique("prj")
    lxd.client.projects.create(name)
    lxd.delete_later(f"/1.0/projects/{name}")
    return name


def test_lifecycle_events_are_typed(lxd: LXDEnv) -> None:
    with lxd.client.events(event_types=[EventType.Lifecycle]) as stream:
        assert stream.connected
        primed(lxd, stream)
        name = lxd.unique("p")
        lxd.client.profiles.create(name)
        lxd.delete_later(f"/1.0/profiles/{name}")
        event = stream.wait_for(lambda e: e.name == name, timeout=10)
    assert isinstance(event, LifecycleEvent)
    assert event.type == "lifecycle"
    assert event.action == "profile-created"
    assert event.source == f"/1.0/profiles/{name}"
    assert event.requestor["protocol"] == "unix"
    assert event.project == "default"
    assert event.timestamp and event.location == "none"
    assert not stream.connected


def test_type_filter(lxd: LXDEnv) -> None:
    with lxd.client.events(event_types=[EventType.Lifecycle], timeout=10) as stream:
        assert stream.params == {"type": "lifecycle"}
        primed(lxd, stream)
        name = lxd.unique("p")
        lxd.client.profiles.create(name)  # lifecycle, plus logging for the debug log
        lxd.delete_later(f"/1.0/profiles/{name}")
        seen = []
        for event in stream:
            seen.append(event)
            if isinstance(event, LifecycleEvent) and event.name == name:
                break
    assert {event.type for event in seen} == {"lifecycle"}
    assert seen[-1].action == "profile-created"  # type: ignore[attr-defined]


def test_project_events_belong_to_the_project(lxd: LXDEnv) -> None:
    """LXD files ``project-created`` under the new project, not under ``default``."""
    name = lxd.unique("prj")
    with lxd.client.events(event_types=[EventType.Lifecycle], all_projects=True) as stream:
        primed(lxd, stream)
        lxd.client.projects.create(name)
        lxd.delete_later(f"/1.0/projects/{name}")
        event = stream.wait_for(lambda e: e.name == name)
    assert (event.action, event.project) == ("project-created", name)


def test_operation_events(lxd: LXDEnv) -> None:
    name = lxd.unique("prj")
    lxd.client.projects.create(name)
    new = lxd.unique("prj")
    lxd.delete_later(f"/1.0/projects/{new}")
    lxd.delete_later(f"/1.0/projects/{name}")
    with lxd.client.events(event_types=["operation", "lifecycle"]) as stream:
        primed(lxd, stream)
        op = lxd.client.projects.get(name).post({"name": new}, wait=False)
        assert op is not None
        event = stream.wait_for(lambda e: isinstance(e, OperationEvent) and e.id == op.id
                                and e.status_code >= 200, timeout=10)
    assert isinstance(event, OperationEvent)
    assert event.status == "Success"
    assert event.operation.id == op.id and event.operation.description == "Renaming project"


def test_project_scoping(lxd: LXDEnv) -> None:
    """pylxd never sent the client's project on the events URL (#484)."""
    project = quiet_project(lxd)
    scoped = lxd.new_client(project=project)
    with scoped.events(event_types=[EventType.Lifecycle]) as inside, \
            lxd.client.events(event_types=[EventType.Lifecycle], timeout=10) as outside, \
            lxd.client.events(event_types=[EventType.Lifecycle], all_projects=True) as every:
        assert inside.params == {"type": "lifecycle", "project": project}
        primed(lxd, inside, scoped)
        primed(lxd, outside)
        primed(lxd, every)
        hidden = scoped.profiles.create(lxd.unique("p"))
        lxd.delete_later(f"/1.0/profiles/{hidden.name}", project=project)
        seen = inside.wait_for(lambda e: e.name == hidden.name)
        assert seen.project == project
        assert every.wait_for(lambda e: e.name == hidden.name).project == project
        marker = lxd.client.profiles.create(lxd.unique("p"))
        lxd.delete_later(f"/1.0/profiles/{marker.name}")
        names = []
        for event in outside:
            names.append(getattr(event, "name", ""))
            if event.name == marker.name:  # type: ignore[attr-defined]
                break
        assert marker.name in names and hidden.name not in names


def test_iteration_ends_after_the_idle_timeout(lxd: LXDEnv) -> None:
    project = quiet_project(lxd)
    scoped = lxd.new_client(project=project)
    # Logging events and project-less operations (tokens) reach every listener: filter.
    stream = scoped.events(event_types=[EventType.Lifecycle], timeout=0.5)
    assert not stream.connected  # pylxd's events() returned an unconnected client too
    start = time.monotonic()
    with stream:
        assert list(stream) == []
    assert 0.4 < time.monotonic() - start < 5


def test_wait_for_times_out(lxd: LXDEnv) -> None:
    project = quiet_project(lxd)
    with lxd.new_client(project=project).events(event_types=[EventType.Lifecycle]) as stream:
        with pytest.raises(TimeoutError):
            stream.wait_for(timeout=0.3)


def test_ws4py_clients_are_refused(lxd: LXDEnv) -> None:
    with pytest.raises(TypeError, match="websocket_client"):
        lxd.client.events(websocket_client=object)


def test_events_over_https_are_verified(https: HTTPSEnv, lxd: LXDEnv) -> None:
    client = https.client(verify=https.server_cert_file)
    with client.events(event_types=[EventType.Lifecycle]) as stream:
        primed(lxd, stream)
        name = lxd.unique("p")
        lxd.client.profiles.create(name)
        lxd.delete_later(f"/1.0/profiles/{name}")
        assert stream.wait_for(lambda e: e.name == name).action == "profile-created"
    assert client.transport.tls is not None
    client.transport.tls.fingerprint = "0" * 64  # pretend we pinned another server
    with pytest.raises(ClientConnectionFailed, match="is not the pinned"):
        client.events().connect()
