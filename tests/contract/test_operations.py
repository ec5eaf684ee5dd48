"""Operations: list, get, exists, wait, cancel, errors. A trust token is the operation that
stays running on both backends until it is cancelled, so it anchors the lifecycle."""

from __future__ import annotations

import pytest

from pytest_lxd import Client, exceptions
from pytest_lxd.backends import LXDBackend
from pytest_lxd.models import Operation


def _token(client: Client, backend: LXDBackend) -> Operation:
    name = backend.unique("tok")
    response = client.api.certificates.post(json={"type": "client", "token": True,
                                                  "name": name})
    assert response.status_code == 202
    op = client.operations.get(response.json()["operation"])
    assert op.metadata and op.metadata["request"]["name"] == name
    return op


def test_list_get_exists_cancel(lxd_client: Client, lxd_backend: LXDBackend) -> None:
    op = _token(lxd_client, lxd_backend)
    assert isinstance(op, Operation)
    assert (op.class_, op.status, op.status_code) == ("token", "Running", 103)
    assert op.description == "Executing operation"
    assert not op.done and op.may_cancel
    assert op.id not in [o.id for o in lxd_client.operations.all()]  # the test's project's
    default = lxd_backend.client(project=None)  # a token belongs to no project: "default"
    assert op.id in [o.id for o in default.operations.all()]
    assert lxd_client.operations.exists(op.id)
    assert lxd_client.operations.get(f"/1.0/operations/{op.id}") == op  # a URL works too
    assert op.sync() is op and op.status == "Running"
    op.cancel()
    assert op.status == "Cancelled" or not lxd_client.operations.exists(op.id)
    with pytest.raises(exceptions.OperationFailed):
        op.wait(timeout=5)


def test_wait_for_a_finished_operation(lxd_client: Client, lxd_backend: LXDBackend) -> None:
    """A project rename runs in the background; its operation can be waited on by id."""
    name = lxd_backend.unique("pl")
    project = lxd_client.projects.create(name)
    response = project.api.post(json={"name": lxd_backend.unique("pl")})
    assert response.status_code == 202
    done = lxd_client.operations.wait_for_operation(response.json()["operation"], timeout=30)
    assert (done.status, done.status_code, done.err) == ("Success", 200, "")
    assert done.done and done.succeeded


def test_errors(lxd_client: Client) -> None:
    missing = "00000000-0000-0000-0000-000000000000"
    with pytest.raises(exceptions.NotFound):
        lxd_client.operations.get(missing)
    assert not lxd_client.operations.exists(missing)
    with pytest.raises(exceptions.NotFound):
        lxd_client.operations.wait_for_operation(missing, timeout=1)
