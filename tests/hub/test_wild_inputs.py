"""Inputs from the wild, through the real hub: other spellings of one repository, one name
for two repositories, launch links as people type them, and launches from other sites."""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import urllib.error
import urllib.parse
import urllib.request

import pytest

from tests.rig.api import build, call, sse_events
from tests.rig.engine import BASE_IMAGE
from tests.rig.hub import HUB_WEBHOOK_SECRET
from tests.rig.net import no_proxy_opener
from tests.rig.repos import dockerfile

pytestmark = [pytest.mark.hub, pytest.mark.docker]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def get(hub, path, user, headers=None):
    """(status, Location, body) of a GET as ``user`` (token), redirects not followed."""
    opener = no_proxy_opener(_NoRedirect())
    req = urllib.request.Request(
        hub.service_url + path,
        headers={"Authorization": f"token {hub.token_for(user)}", **(headers or {})},
    )
    try:
        with opener.open(req, timeout=120) as resp:
            return resp.status, resp.headers.get("Location"), resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Location"), e.read().decode(errors="replace")


def hook(hub, body: bytes):
    digest = hmac.new(HUB_WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
    req = urllib.request.Request(
        hub.service_url + "api/webhooks/github",
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "X-GitHub-Event": "push",
            "X-Hub-Signature-256": "sha256=" + digest,
        },
    )
    try:
        with no_proxy_opener().open(req, timeout=120) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


# ------------------------------------------------------------------ 4: repository identity
# the session hub lists localhost as a case-insensitive host (tests/conftest.py); the git
# server answers there too, and its paths keep their case on 127.0.0.1
def spellings(url: str) -> list[str]:
    """Other spellings of a localhost repository URL: case, .git, slashes, scheme case."""
    lower = url.lower().removesuffix(".git")
    return [
        lower,
        lower + ".git",
        lower + "/",
        lower + ".git/",
        url.upper().replace("HTTP://", "http://").replace(".GIT", ".git"),
        url.replace("http://", "HTTP://"),
    ]


@pytest.fixture(scope="module")
def shared_case_image(hub, git_http, base_image):
    """A shared environment built from a mixed-case repository on localhost."""
    url = git_http.create_repo("WildB/CaseRepo", dockerfile(BASE_IMAGE, "RUN echo building case"))
    url = url.replace("127.0.0.1", "localhost")
    return build(hub, "admin1", repo=url, name="casey", shared=True)


def test_a_push_in_another_spelling_matches_the_built_repository(hub, shared_case_image):
    commit = shared_case_image["commit"]
    for spelling in spellings(shared_case_image["repo"]):
        body = json.dumps(
            {
                "ref": "refs/heads/main",
                "after": commit,
                "repository": {"clone_url": spelling, "default_branch": "main"},
            }
        ).encode()
        status, answer = hook(hub, body)
        # the same commit again: matched, and a cache hit (nothing rebuilt)
        assert status in (200, 202), answer
        assert (answer["matched"], answer["cached"], answer["started"]) == (1, 1, []), spelling


def test_a_launch_link_in_another_spelling_starts_the_built_image(hub, shared_case_image):
    for spelling in spellings(shared_case_image["repo"]):
        query = urllib.parse.urlencode({"repo": spelling, "ref": "main"})
        status, location, body = get(hub, "launch?" + query, "bob")  # bob may only view
        assert status == 302, (spelling, body[-1500:])
        assert urllib.parse.quote(shared_case_image["image"], safe="") in location


def test_case_counts_on_hosts_not_listed(hub, shared_case_image):
    # 127.0.0.1 is not a case-insensitive host: other case, other repository
    other = shared_case_image["repo"].replace("localhost", "127.0.0.1").lower()
    status, _, body = get(hub, "launch?" + urllib.parse.urlencode({"repo": other}), "bob")
    assert status == 403 and "No environment built from" in body


# ------------------------------------------------------------------ 12: drive-by launches
def post(hub, path, user, fields):
    """(status, Location, body) of a form POST as ``user`` (token: no XSRF needed)."""
    opener = no_proxy_opener(_NoRedirect())
    req = urllib.request.Request(
        hub.service_url + path,
        data=urllib.parse.urlencode(fields).encode(),
        method="POST",
        headers={
            "Authorization": f"token {hub.token_for(user)}",
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    try:
        with opener.open(req, timeout=120) as resp:
            return resp.status, resp.headers.get("Location"), resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Location"), e.read().decode(errors="replace")


def builds_of(hub, user, repo):
    status, answer = call(hub, "GET", "api/builds", user)
    assert status == 200, answer
    return [b for b in answer["builds"] if b["repo"] == repo]


FOREIGN = "http://localhost:9/page.html"
CROSS_SITE_HEADERS = [
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site"},
    {"Sec-Fetch-Site": "none", "Referer": FOREIGN},
    {"Referer": FOREIGN},
    {"Origin": "http://localhost:9"},
    {"Sec-Fetch-Site": "cross-site", "Referer": "{ours}"},
]


def headers_for(hub, headers):
    return {k: v.replace("{ours}", hub.service_url) for k, v in headers.items()}


@pytest.fixture(scope="module")
def alice_launch_image(hub, git_http, base_image):
    url = git_http.create_repo("wildb/launch-own", dockerfile(BASE_IMAGE, "RUN echo building own"))
    return build(hub, "alice", repo=url, name="launch-own")


@pytest.mark.parametrize("headers", CROSS_SITE_HEADERS)
def test_a_cross_site_launch_of_an_own_image_asks_first(hub, alice_launch_image, headers):
    query = urllib.parse.urlencode({"repo": alice_launch_image["repo"], "ref": "main"})
    status, location, body = get(hub, "launch?" + query, "alice", headers_for(hub, headers))
    assert status == 200 and location is None, body[-1500:]
    assert 'id="launch-confirm"' in body and 'name="_xsrf"' in body
    assert alice_launch_image["commit"] in body and "Built by you" in body
    assert 'id="confirm-cross-site"' in body


@pytest.mark.parametrize(
    "headers",
    [{}, {"Sec-Fetch-Site": "none"}, {"Sec-Fetch-Site": "same-origin", "Referer": "{ours}"}],
)
def test_an_own_image_launches_at_once_from_our_pages_or_a_bookmark(
    hub, alice_launch_image, headers
):
    query = urllib.parse.urlencode({"repo": alice_launch_image["repo"], "ref": "main"})
    status, location, body = get(hub, "launch?" + query, "alice", headers_for(hub, headers))
    assert status == 302, body[-1500:]
    assert urllib.parse.quote(alice_launch_image["image"], safe="") in location


def test_a_new_repository_is_built_only_after_the_click(hub, git_http, base_image):
    url = git_http.create_repo("wildb/launch-new", dockerfile(BASE_IMAGE, "RUN echo building new"))
    query = urllib.parse.urlencode({"repo": url, "ref": "main"})
    commit = git_http.head("wildb/launch-new")
    for headers in [{}, {"Sec-Fetch-Site": "none"}, *CROSS_SITE_HEADERS]:
        status, _, body = get(hub, "launch?" + query, "alice", headers_for(hub, headers))
        assert status == 200 and 'id="launch-confirm"' in body, (headers, body[-1500:])
        assert commit in body and "Not built yet" in body
    assert builds_of(hub, "alice", url) == []  # nothing built, nothing queued
    # the confirm page's button: POST launch with what the page showed
    fields = {"repo": url, "ref": "main", "commit": commit}
    status, _, body = post(hub, "launch", "alice", fields)
    assert status == 200 and 'id="launch-status"' in body, body[-1500:]
    (started,) = builds_of(hub, "alice", url)
    assert started["commit"] == commit
    assert sse_events(hub, started["id"], "alice")[-1]["data"]["state"] == "built"
    # the same button again: the image exists now, straight to the hub's spawn page
    status, location, _ = post(hub, "launch", "alice", fields)
    assert status == 303 and "/hub/spawn/alice/launch-new?image=" in location


def test_a_new_repository_from_our_own_pages_builds_at_once(hub, git_http, base_image):
    url = git_http.create_repo(
        "wildb/launch-ours", dockerfile(BASE_IMAGE, "RUN echo building ours")
    )
    query = urllib.parse.urlencode({"repo": url, "ref": "main"})
    ours = {"Sec-Fetch-Site": "same-origin", "Referer": hub.service_url}
    status, _, body = get(hub, "launch?" + query, "alice", ours)
    assert status == 200 and 'id="launch-status"' in body, body[-1500:]
    (started,) = builds_of(hub, "alice", url)
    assert sse_events(hub, started["id"], "alice")[-1]["data"]["state"] == "built"


def test_a_moved_ref_is_shown_again_before_it_runs(hub, git_http, base_image):
    url = git_http.create_repo("wildb/launch-moved", dockerfile(BASE_IMAGE, "RUN echo building m1"))
    old = git_http.head("wildb/launch-moved")
    new = git_http.commit("wildb/launch-moved", dockerfile(BASE_IMAGE, "RUN echo building m2"))
    status, _, body = post(hub, "launch", "alice", {"repo": url, "ref": "main", "commit": old})
    assert status == 200 and 'id="confirm-moved"' in body and new in body, body[-1500:]
    assert builds_of(hub, "alice", url) == []


def test_a_viewer_confirms_a_shared_image_from_another_site(hub, shared_case_image):
    query = urllib.parse.urlencode({"repo": shared_case_image["repo"], "ref": "main"})
    status, _, body = get(hub, "launch?" + query, "bob", {"Sec-Fetch-Site": "cross-site"})
    assert status == 200 and 'id="launch-confirm"' in body, body[-1500:]
    assert "an admin (a shared environment)" in body
    status, location, body = get(hub, "launch?" + query, "bob")  # shared: already bob's
    assert status == 302, body[-1500:]
    fields = {"repo": shared_case_image["repo"], "ref": "main"}
    status, location, body = post(hub, "launch", "bob", fields)
    assert status == 303, body[-1500:]
    assert urllib.parse.quote(shared_case_image["image"], safe="") in location


# ------------------------------------------------------------------ 2: abbreviated commits
def test_an_abbreviated_commit_resolves_the_same_for_builders_and_viewers(
    hub, alice_launch_image, shared_case_image
):
    for image, user in ((alice_launch_image, "alice"), (shared_case_image, "bob")):
        for length in (7, 12, 39):
            query = urllib.parse.urlencode({"repo": image["repo"], "ref": image["commit"][:length]})
            status, location, body = get(hub, "launch?" + query, user)
            assert status == 302, (user, length, body[-1500:])
            assert urllib.parse.quote(image["image"], safe="") in location
    # the build API takes it too: the built commit, a cache hit
    body = {"repo": alice_launch_image["repo"], "ref": alice_launch_image["commit"][:7]}
    status, answer = call(hub, "POST", "api/builds", "alice", body | {"name": "launch-own"})
    assert status == 200 and answer["cached"], answer
    assert answer["image"]["commit"] == alice_launch_image["commit"]


def test_an_unknown_abbreviated_commit_is_refused_alike_for_builders_and_viewers(
    hub, shared_case_image
):
    messages = {}
    for user in ("alice", "bob"):
        query = urllib.parse.urlencode({"repo": shared_case_image["repo"], "ref": "0000000"})
        status, _, body = get(hub, "launch?" + query, user)
        assert status == 422, (user, body[-1500:])
        messages[user] = html.unescape(body.split('id="error-message">')[1].split("</p>")[0])
    assert messages["alice"] == messages["bob"]
    assert messages["bob"].startswith("commit '0000000' not found in ")
    assert messages["bob"].endswith("give the full 40-character commit SHA")
    status, answer = call(
        hub, "POST", "api/builds", "alice", {"repo": shared_case_image["repo"], "ref": "0000000"}
    )
    assert status == 422 and answer["message"] == messages["alice"], answer


# ------------------------------------------------------------------ 3: same name, other repo
def test_same_name_other_repository_through_the_api(hub, git_http, base_image):
    first = git_http.create_repo("wildb-a/analysis", dockerfile(BASE_IMAGE, "RUN echo building sa"))
    other = git_http.create_repo("wildb-b/analysis", dockerfile(BASE_IMAGE, "RUN echo building sb"))
    built_first = build(hub, "alice", repo=first, name="analysis")
    # a name given that another repository's environment holds: 409, nothing queued
    status, answer = call(hub, "POST", "api/builds", "alice", {"repo": other, "name": "analysis"})
    assert status == 409, answer
    assert answer["message"] == (
        f"The name 'analysis' is taken: your environment 'analysis' is built from {first}. "
        f"Give this environment of {other} another name (for example 'wildb-b-analysis'), "
        "or delete 'analysis' first."
    )
    assert builds_of(hub, "alice", other) == []
    # no name: a distinct one is derived; the first environment stays as it was
    status, answer = call(hub, "POST", "api/builds", "alice", {"repo": other})
    assert status == 202 and answer["build"]["name"] == "wildb-b-analysis", answer
    assert sse_events(hub, answer["build"]["id"], "alice")[-1]["data"]["state"] == "built"
    status, images = call(hub, "GET", "api/images", "alice")
    mine = {i["name"]: i for i in images["images"] if i["owner"] == "alice"}
    assert mine["analysis"]["repo"] == first and mine["analysis"]["image"] == built_first["image"]
    assert mine["wildb-b-analysis"]["repo"] == other
    # each repository again, in another spelling: its own environment (cache hits)
    for repo, name in ((first + "/", "analysis"), (other.removesuffix(".git"), "wildb-b-analysis")):
        status, answer = call(hub, "POST", "api/builds", "alice", {"repo": repo})
        assert status == 200 and answer["cached"] and answer["image"]["name"] == name, answer
