"""Refusals of inputs from the wild, through the real hub: secrets are never echoed.

Each variant enters where people paste it (the build API's repo and ref fields, a launch
link's ``?repo=``, a short ``v2/gh`` link, a webhook's payload); neither the answer nor the
service's log (it logs into the hub's) may contain the secret.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import urllib.error
import urllib.parse
import urllib.request

import pytest

from tests.rig.hub import HUB_WEBHOOK_SECRET
from tests.rig.net import no_proxy_opener

pytestmark = pytest.mark.hub

S = "wild" + secrets.token_hex(6)

SECRET_URLS = [
    f"https://user:{S}@host.invalid/x",
    f"https://{S}@host.invalid/x",
    f"http://user%3A{S}%40host.invalid/x",
    f"http://user%253A{S}%2540host.invalid/x",
    f"https://user%3A{S}@host.invalid/x",
    f"https://user:{S}/x",
    f"https://user:{S}@host.invalid:notaport/x",
    f"HTTPS://USER:{S}@HOST.INVALID/x",
    f"ftp://user:{S}@host.invalid/x",
    f"https://user:{S}@ho$t.invalid/x",
]
SECRET_REFS = [
    f"https://tok{S}@host.invalid/x",
    f"user:{S}@host.invalid",
    f"{S}@github.com/org/repo",
    f"http://user%3A{S}%40host.invalid/x",
]


def call(hub, method, path, user=None, body=None, headers=None):
    """(status, body text) of a request to the service (as ``user``, with a token)."""
    data = body if body is None or isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(hub.service_url + path, data=data, method=method)
    if user:
        req.add_header("Authorization", f"token {hub.token_for(user)}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    for key, value in (headers or {}).items():
        req.add_header(key, value)
    try:
        with no_proxy_opener().open(req, timeout=120) as resp:
            return resp.status, resp.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


def signed_push(hub, clone_url: str):
    body = json.dumps(
        {
            "ref": "refs/heads/main",
            "after": "1" * 40,
            "repository": {"clone_url": clone_url, "html_url": clone_url},
        }
    ).encode()
    digest = hmac.new(HUB_WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + digest}
    return call(hub, "POST", "api/webhooks/github", body=body, headers=headers)


@pytest.fixture(scope="module")
def some_repo(git_http):
    return git_http.create_repo(f"wild-{secrets.token_hex(3)}/x", {"README": "x\n"})


def test_no_refusal_echoes_a_secret(hub, some_repo):
    answers = []
    for url in SECRET_URLS:
        answers.append((url, *call(hub, "POST", "api/builds", "alice", {"repo": url})))
        query = urllib.parse.urlencode({"repo": url})
        answers.append((url, *call(hub, "GET", "launch?" + query, "alice")))
        answers.append((url, *signed_push(hub, url)))
    for ref in SECRET_REFS:
        body = {"repo": some_repo, "ref": ref}
        answers.append((ref, *call(hub, "POST", "api/builds", "alice", body)))
        query = urllib.parse.urlencode({"repo": some_repo, "ref": ref})
        answers.append((ref, *call(hub, "GET", "launch?" + query, "alice")))
    quoted = urllib.parse.quote(f"u:{S}@h", safe="")
    answers.append(("v2/gh", *call(hub, "GET", f"v2/gh/{quoted}/x/main", "alice")))
    answers.append(("v2/gh", *call(hub, "GET", f"v2/gh/org/x/{quoted}", "alice")))

    leaked = [(what, status, text[:300]) for what, status, text in answers if S in text]
    assert not leaked
    refused = [(what, status) for what, status, _ in answers if status >= 500]
    assert not refused
    # the build API refused every URL with a reason, before queueing anything
    assert all(status in (400, 422) for _, status, _ in answers[0 : 3 * len(SECRET_URLS) : 3])
    assert S not in hub.log_text()
