"""Inputs from the wild, through the real hub: other spellings of one repository, one name
for two repositories, launch links as people type them, and launches from other sites."""

from __future__ import annotations

import hashlib
import hmac
import json
import urllib.error
import urllib.parse
import urllib.request

import pytest

from tests.rig.api import build
from tests.rig.hub import DOCKERFILE, HUB_WEBHOOK_SECRET
from tests.rig.net import no_proxy_opener

pytestmark = [pytest.mark.hub, pytest.mark.docker]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def get(hub, path, user, headers=None):
    """(status, Location, body) of a GET as ``user`` (token), redirects not followed."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())
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
    url = git_http.create_repo("WildB/CaseRepo", {"Dockerfile": DOCKERFILE.format(tag="case")})
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
