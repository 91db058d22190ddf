"""The build API end to end: real hub + proxy + service + dockerd + repo2docker + git/HTTP."""

import pytest

from tests.rig.api import call, sse_events
from tests.rig.engine import BASE_IMAGE
from tests.rig.repos import dockerfile

pytestmark = [pytest.mark.hub, pytest.mark.docker]


@pytest.fixture(scope="module")
def built(hub, git_http, base_image):
    """alice builds a small repo; the events stream follows it to the end."""
    url = git_http.create_repo("hubapi/hello", dockerfile(BASE_IMAGE, "RUN echo building one"))
    status, result = call(hub, "POST", "api/builds", "alice", {"repo": url, "ref": "main"})
    assert status == 202, result
    build = result["build"]
    events = sse_events(hub, build["id"], "alice")
    return {"url": url, "build": build, "events": events}


def test_build_streams_events_to_built(built):
    events = built["events"]
    ids = [e["id"] for e in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert events[-1]["event"] == "done"
    assert events[-1]["data"]["state"] == "built", events[-1]
    assert any(e["event"] == "log" for e in events)
    assert built["build"]["owner"] == "alice"
    assert built["build"]["name"] == "hello"
    assert len(built["build"]["commit"]) == 40


def test_events_resume_after_last_event_id(hub, built):
    events = built["events"]
    middle = events[len(events) // 2]["id"]
    resumed = sse_events(hub, built["build"]["id"], "alice", last_event_id=middle)
    assert [e["id"] for e in resumed] == [e["id"] for e in events if e["id"] > middle]


def test_second_request_is_a_cache_hit(hub, built):
    status, result = call(hub, "POST", "api/builds", "alice", {"repo": built["url"], "ref": "main"})
    assert status == 200, result
    assert result["cached"] is True and result["build"] is None
    assert result["image"]["commit"] == built["build"]["commit"]


def test_logs_download_is_plain_text(hub, built):
    status, headers, body = call(
        hub, "GET", f"api/builds/{built['build']['id']}/logs", "alice", raw=True
    )
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain")
    assert b"building one" in body


def test_images_lists_own_image_only_for_owner(hub, built):
    status, result = call(hub, "GET", "api/images", "alice")
    assert status == 200
    names = [(i["owner"], i["name"]) for i in result["images"]]
    assert ("alice", "hello") in names
    # bob (view) does not see alice's private image, nor her build
    status, result = call(hub, "GET", "api/images", "bob")
    assert status == 200
    assert ("alice", "hello") not in [(i["owner"], i["name"]) for i in result["images"]]
    status, result = call(hub, "GET", f"api/builds/{built['build']['id']}", "bob")
    assert status == 404
    # admin sees everything
    status, result = call(hub, "GET", "api/images", "admin1")
    assert ("alice", "hello") in [(i["owner"], i["name"]) for i in result["images"]]


def test_view_only_user_cannot_build(hub, built):
    status, result = call(hub, "POST", "api/builds", "bob", {"repo": built["url"]})
    assert status == 403
    assert "custom:repo2docker:build" in result["message"]


def test_non_admin_cannot_build_shared_or_for_others(hub, built):
    status, result = call(
        hub, "POST", "api/builds", "alice", {"repo": built["url"], "shared": True}
    )
    assert status == 403, result
    status, result = call(
        hub, "POST", "api/builds", "alice", {"repo": built["url"], "owner": "bob"}
    )
    assert status == 403, result


@pytest.mark.parametrize(
    "body, status, words",
    [
        ({}, 400, "repo"),
        ({"repo": "ext::sh -c touch% /tmp/pwned"}, 400, "repo"),
        ({"repo": "file:///etc"}, 400, "scheme"),
        ({"repo": "http://127.0.0.1:1/nothing.git"}, 422, ""),
        ({"repo": "https://example.invalid/x.git", "ref": "--upload-pack=x"}, 400, "ref"),
        ({"repo": "https://example.invalid/x.git", "name": "Bad Name!"}, 400, "name"),
        ({"repo": "https://example.invalid/x.git", "colour": "red"}, 400, "colour"),
        ({"repo": 5}, 400, "repo"),
    ],
)
def test_bad_input_is_a_clear_4xx(hub, body, status, words):
    got, result = call(hub, "POST", "api/builds", "alice", body)
    assert got == status, result
    assert result["status"] == status
    assert words in result["message"]


def test_invalid_json_is_400(hub):
    got, result = call(hub, "POST", "api/builds", "alice", b"{not json")
    assert got == 400
    assert "JSON" in result["message"]


def test_unknown_ref_is_422_with_reason(hub, built):
    got, result = call(
        hub, "POST", "api/builds", "alice", {"repo": built["url"], "ref": "no-such-branch"}
    )
    assert got == 422
    assert "no-such-branch" in result["message"]
    # on the ref field, with the repository's branches (its default one first)
    assert result["field"] == "ref"
    assert result["suggestions"] == ["main"], result
    assert set(result) == {"status", "message", "field", "suggestions"}


def test_an_unreadable_repository_is_422_on_the_repo_field(hub, git_http):
    got, result = call(
        hub, "POST", "api/builds", "alice", {"repo": f"{git_http.base_url}/hubapi/no-such-repo.git"}
    )
    assert got == 422, result
    assert result["message"].startswith("could not read ") and result["field"] == "repo"
    assert "suggestions" not in result


def test_delete_own_image(hub, git_http, base_image):
    url = git_http.create_repo("hubapi/todelete", dockerfile(BASE_IMAGE, "RUN echo building del"))
    status, result = call(hub, "POST", "api/builds", "alice", {"repo": url, "name": "todelete"})
    assert status == 202, result
    events = sse_events(hub, result["build"]["id"], "alice")
    assert events[-1]["data"]["state"] == "built", events[-1]
    status, images = call(hub, "GET", "api/images", "alice")
    image = next(i for i in images["images"] if i["name"] == "todelete")
    path = f"api/images/{image['owner_slug']}/todelete"
    # bob may not delete it, and cannot even see it
    assert call(hub, "DELETE", path, "bob")[0] in (403, 404)
    assert call(hub, "DELETE", path, "alice", raw=True)[0] == 204
    assert call(hub, "GET", path, "alice")[0] == 404


@pytest.mark.parametrize(("user", "status"), [("alice", 200), ("bob", 200), ("dave", 403)])
def test_servers_are_asked_of_the_hub_with_the_callers_token(hub, user, status):
    """alice and bob run no server here: the hub answered (their tokens may read their own
    servers) with none; dave lacks the view scope. Running servers: tests/e2e/test_spawn.py."""
    got, answer = call(hub, "GET", "api/servers", user)
    assert got == status, answer
    if status == 200:
        assert answer == {"available": True, "servers": []}
