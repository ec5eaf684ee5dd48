"""Background operations: wait (bounded), failure, cancel, list, get."""

from __future__ import annotations

import time

import pytest

from pytest_lxd import Client, exceptions
from pytest_lxd.models import Operation, Project

from .conftest import LXDEnv


def token_operation(client: Client, lxd: LXDEnv) -> Operation:
    """A certificate-token operation: it runs until used or cancelled."""
    response = client.api.certificates.post(json={"type": "client", "token": True,
                                                  "name": lxd.unique("tok")})
    assert response.status_code == 202
    op = client.operations.get(response.json()["operation"])
    lxd.later(lambda: op.cancel() if not op.sync().done else None)
    return op


def make_project(lxd: LXDEnv) -> Project:
    name = lxd.unique("prj")
    project = lxd.client.projects.create(name)
    lxd.delete_later(f"/1.0/projects/{name}")
    return project


def test_operation_fields(lxd: LXDEnv) -> None:
    op = token_operation(lxd.client, lxd)
    assert op.class_ == "token"
    assert (op.status, op.status_code, op.may_cancel, op.err) == ("Running", 103, True, "")
    assert op.description == "Executing operation"
    assert op.metadata is not None and len(op.metadata["secret"]) == 64
    assert not op.done
    assert op in lxd.client.operations.all()
    assert lxd.client.operations.exists(op.id)
    assert lxd.client.operations.get(f"/1.0/operations/{op.id}?project=default") == op


def test_wait_is_bounded(lxd: LXDEnv) -> None:
    op = token_operation(lxd.client, lxd)
    start = time.monotonic()
    with pytest.raises(exceptions.OperationTimeout) as info:
        op.wait(timeout=1)
    elapsed = time.monotonic() - start
    assert 0.9 <= elapsed < 5, elapsed
    assert isinstance(info.value, TimeoutError)
    assert info.value.operation is not None and info.value.operation.status == "Running"


def test_client_timeout_bounds_waits_without_a_raw_read_timeout(lxd: LXDEnv) -> None:
    """pylxd leaked requests' ReadTimeout when an operation outlived ``Client(timeout=)``."""
    quick = lxd.new_client(timeout=1)
    op = token_operation(quick, lxd)
    with pytest.raises(exceptions.OperationTimeout):
        quick.operations.wait_for_operation(op.id)
    with pytest.raises(exceptions.OperationTimeout):
        op.wait(timeout=0)


def test_cancel(lxd: LXDEnv) -> None:
    op = token_operation(lxd.client, lxd)
    op.cancel()
    assert (op.status, op.status_code) == ("Cancelled", 401)
    assert op.done and not op.succeeded
    with pytest.raises(exceptions.OperationFailed) as info:
        op.wait()
    assert info.value.operation is op
    assert info.value.error_code == 401
    with pytest.raises(exceptions.LXDAPIException, match="Only running operations can be"):
        op.cancel()


def test_failed_operation_carries_err_and_operation(lxd: LXDEnv) -> None:
    project = make_project(lxd)
    with pytest.raises(exceptions.OperationFailed) as info:
        project.rename("default")
    error = info.value
    assert str(error) == 'A project named "default" already exists'
    assert error.err == str(error)
    assert error.error_code == 400
    assert error.operation is not None
    assert (error.operation.status, error.operation.description) == ("Failure",
                                                                     "Renaming project")
    assert error.response is not None and error.response.status_code == 200
    assert project.name != "default"  # the object kept its name


def test_wait_false_returns_the_operation(lxd: LXDEnv) -> None:
    project = make_project(lxd)
    new = lxd.unique("prj")
    lxd.delete_later(f"/1.0/projects/{new}")
    op = project.post({"name": new}, wait=False)
    assert isinstance(op, Operation)
    assert op.description == "Renaming project"
    assert op.wait() is op
    assert op.succeeded and op.status == "Success"
    assert lxd.client.operations.wait_for_operation(op.id).status_code == 200
    assert lxd.client.projects.exists(new)


def test_unknown_operation(lxd: LXDEnv) -> None:
    missing = "00000000-0000-0000-0000-000000000000"
    with pytest.raises(exceptions.NotFound, match="Operation not found"):
        lxd.client.operations.get(missing)
    assert not lxd.client.operations.exists(missing)
    with pytest.raises(exceptions.NotFound):
        lxd.client.operations.wait_for_operation(missing)
