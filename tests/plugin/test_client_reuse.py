"""The plugin's clients on the fake reuse the session's ``GET /1.0`` answer while it holds:
one request for the whole run, yet every client sees the server as it is when it is made."""

from __future__ import annotations

import pytest

REUSE = """
import pytest

def requests_for_host_info(fake):
    return [r for r in fake.requests if r.path == "/1.0" and r.method == "GET"]

@pytest.mark.parametrize("n", range(3))
def test_many_clients_one_answer(lxd_client, lxd_fake, lxd_backend, n):
    assert lxd_client.host_info["environment"]["project"] == lxd_backend.project
    assert lxd_client.has_api_extension("projects")
    other = lxd_backend.client()
    assert other.host_info == lxd_client.host_info
    assert other.host_info is not lxd_client.host_info  # each client has its own copy
    lxd_client.host_info["config"]["user.mine"] = "changed"  # stays with this client
    assert "user.mine" not in other.host_info["config"]
    # only the session's very first client asked the server
    assert len(requests_for_host_info(lxd_fake)) == (1 if n == 0 else 0)

def test_a_changed_server_is_read_again(lxd_client, lxd_fake, lxd_backend):
    lxd_client.api.patch(json={"config": {"images.auto_update_interval": "7"}})
    later = lxd_backend.client()
    assert later.host_info["config"]["images.auto_update_interval"] == "7"
    assert len(requests_for_host_info(lxd_fake)) == 1  # the PATCH made the answer stale

def test_next_test_is_back_to_the_snapshot(lxd_client, lxd_fake):
    assert "images.auto_update_interval" not in lxd_client.host_info["config"]
    assert "user.mine" not in lxd_client.host_info["config"]
    assert requests_for_host_info(lxd_fake) == []

def test_other_projects_and_no_project(lxd_client, lxd_backend, lxd_fake):
    lxd_client.projects.create("extra")
    extra = lxd_backend.client(project="extra")
    assert extra.host_info["environment"]["project"] == "extra"
    default = lxd_backend.client(project=None)
    assert default.host_info["environment"]["project"] == "default"
    assert len(requests_for_host_info(lxd_fake)) == 2

def test_a_project_that_is_gone_answers_as_lxd_does(lxd_backend):
    gone = lxd_backend.client(project="extra")  # made in the previous test, gone now
    assert gone.host_info["environment"]["project"] == "extra"  # LXD 5.0.2 answers 200 too
    assert not gone.profiles.exists("default")  # but nothing is there
"""


def test_host_info_is_reused_only_while_it_holds(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(REUSE)
    result = pytester.runpytest("-p", "no:cacheprovider", "-p", "no:randomly")
    result.assert_outcomes(passed=7)
