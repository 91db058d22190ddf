"""Push webhooks through the real hub: a signed push rebuilds the images tracking the branch."""

import hashlib
import hmac
import json
import urllib.error
import urllib.request

import pytest

from tests.rig.api import call, sse_events
from tests.rig.engine import BASE_IMAGE
from tests.rig.hub import HUB_WEBHOOK_SECRET
from tests.rig.repos import dockerfile

pytestmark = [pytest.mark.hub, pytest.mark.docker]


def hook(hub, body: bytes, *, event="push", secret=HUB_WEBHOOK_SECRET, provider="github"):
    headers = {"Content-Type": "application/json", "X-GitHub-Event": event}
    if secret is not None:
        digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        headers["X-Hub-Signature-256"] = "sha256=" + digest
    req = urllib.request.Request(
        hub.service_url + f"api/webhooks/{provider}", data=body, method="POST", headers=headers
    )
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def push_body(url: str, ref: str, after: str) -> bytes:
    return json.dumps(
        {"ref": ref, "after": after, "repository": {"clone_url": url, "default_branch": "main"}}
    ).encode()


def image(hub, name):
    status, images = call(hub, "GET", "api/images", "alice")
    assert status == 200
    return next(i for i in images["images"] if i["name"] == name)


def test_signed_push_rebuilds_the_tracking_image(hub, git_http, base_image):
    url = git_http.create_repo("hubhook/env", dockerfile(BASE_IMAGE, "RUN echo building one"))
    status, result = call(
        hub, "POST", "api/builds", "alice", {"repo": url, "ref": "main", "name": "hooked"}
    )
    assert status == 202, result
    assert sse_events(hub, result["build"]["id"], "alice")[-1]["data"]["state"] == "built"
    first = image(hub, "hooked")["commit"]

    new = git_http.commit("hubhook/env", dockerfile(BASE_IMAGE, "RUN echo building two"))
    body = push_body(url, "refs/heads/main", new)
    builds_before = len(call(hub, "GET", "api/builds", "alice")[1]["builds"])

    # no signature, a wrong one, an unknown provider: refused, nothing queued
    status, answer = hook(hub, body, secret=None)
    assert status == 403 and "X-Hub-Signature-256" in answer["message"]
    assert hook(hub, body, secret="wrong")[0] == 403
    assert hook(hub, body, provider="svn")[0] == 404
    assert len(call(hub, "GET", "api/builds", "alice")[1]["builds"]) == builds_before

    # ping, other events and other branches start nothing
    assert hook(hub, b"{}", event="ping") == (200, {"event": "ping", "message": "pong"})
    assert hook(hub, body, event="issues")[0] == 200
    status, answer = hook(hub, push_body(url, "refs/heads/dev", new))
    assert (status, answer["matched"], answer["started"]) == (200, 0, [])

    status, answer = hook(hub, body)
    assert status == 202, answer
    assert answer["matched"] == 1 and len(answer["started"]) == 1, answer
    events = sse_events(hub, answer["started"][0], "alice")  # alice's own build
    assert events[-1]["data"]["state"] == "built", events[-1]
    rebuilt = image(hub, "hooked")
    assert rebuilt["commit"] == new != first
    assert rebuilt["owner"] == "alice" and rebuilt["ref"] == "main"

    # the same push again: already built at that commit
    status, answer = hook(hub, body)
    assert (status, answer["cached"], answer["started"]) == (200, 1, [])


def test_a_push_that_continues_the_environment_answers_its_rebuild(hub, git_http, base_image):
    """The payload's ``after`` is the rebuild's commit when ``before`` is the environment's
    commit (the git host is not asked); a delivery whose ``before`` is not, is resolved by
    asking the git host. To tell the two apart, the branch moves once more before the
    webhooks arrive: only an answer from the git host names that newest commit."""
    name = "hubhook/continues"
    url = git_http.create_repo(name, dockerfile(BASE_IMAGE, "RUN echo one"))
    status, result = call(
        hub, "POST", "api/builds", "alice", {"repo": url, "ref": "main", "name": "continued"}
    )
    assert status == 202, result
    assert sse_events(hub, result["build"]["id"], "alice")[-1]["data"]["state"] == "built"
    first = image(hub, "continued")["commit"]
    pushed = git_http.commit(name, dockerfile(BASE_IMAGE, "RUN echo two"))
    newest = git_http.commit(name, dockerfile(BASE_IMAGE, "RUN echo three"))

    def push(before: str, after: str) -> bytes:
        payload = json.loads(push_body(url, "refs/heads/main", after))
        return json.dumps({**payload, "before": before}).encode()

    status, answer = hook(hub, push(first, pushed))
    assert status == 202 and len(answer["started"]) == 1, answer
    assert sse_events(hub, answer["started"][0], "alice")[-1]["data"]["state"] == "built"
    assert image(hub, "continued")["commit"] == pushed  # the payload's commit, not asked

    # the same delivery again: the environment is at `pushed` now, so the host is asked
    status, answer = hook(hub, push(first, pushed))
    assert status == 202 and len(answer["started"]) == 1, answer
    assert sse_events(hub, answer["started"][0], "alice")[-1]["data"]["state"] == "built"
    assert image(hub, "continued")["commit"] == newest
