"""Webhook parsing, secrets and matching (no network)."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from repo2docker_service.errors import Forbidden, InvalidInput
from repo2docker_service.webhooks import event_kind, matches, normalize_url, parse_push, verify

SECRET = "s3cret"
URL = "https://git.example.org/org/env.git"


def github_push(ref="refs/heads/main", after="b" * 40, default="main", url=URL) -> bytes:
    return json.dumps(
        {
            "ref": ref,
            "after": after,
            "repository": {
                "clone_url": url,
                "html_url": url.removesuffix(".git"),
                "default_branch": default,
            },
        }
    ).encode()


def sign(body: bytes, secret=SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_github_signature():
    body = github_push()
    verify("github", {"X-Hub-Signature-256": sign(body)}, body, SECRET)
    for headers in (
        {},
        {"X-Hub-Signature-256": sign(body, "other")},
        {"X-Hub-Signature-256": sign(body + b" ")},
        {"X-Hub-Signature-256": sign(body)[len("sha256=") :]},  # prefix required for github
    ):
        with pytest.raises(Forbidden):
            verify("github", headers, body, SECRET)


def test_gitea_and_gitlab_secrets():
    body = github_push()
    bare = sign(body)[len("sha256=") :]
    verify("gitea", {"X-Gitea-Signature": bare}, body, SECRET)
    verify("gitea", {"X-Hub-Signature-256": sign(body)}, body, SECRET)
    verify("gitlab", {"X-Gitlab-Token": SECRET}, b"{}", SECRET)
    with pytest.raises(Forbidden):
        verify("gitlab", {"X-Gitlab-Token": "nope"}, b"{}", SECRET)
    with pytest.raises(Forbidden):
        verify("gitlab", {"X-Hub-Signature-256": sign(b"{}")}, b"{}", SECRET)


def test_event_kinds():
    assert event_kind("github", {"X-GitHub-Event": "push"}) == "push"
    assert event_kind("github", {"X-GitHub-Event": "ping"}) == "ping"
    assert event_kind("gitea", {"X-Gitea-Event": "push"}) == "push"
    assert event_kind("gitlab", {"X-Gitlab-Event": "Push Hook"}) == "push"
    assert event_kind("gitlab", {"X-Gitlab-Event": "Tag Push Hook"}) == "tag_push"
    assert event_kind("gitlab", {"X-Gitlab-Event": "Merge Request Hook"}) == "merge request hook"


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("https://git.example.org/org/env.git", "https://GIT.example.org/org/env/"),
        ("https://user:pw@git.example.org/org/env", "https://git.example.org/org/env.git"),
        ("http://127.0.0.1:8080/x.git", "http://127.0.0.1:8080/x"),
    ],
)
def test_normalize_url(a, b):
    assert normalize_url(a) == normalize_url(b)
    assert "pw" not in normalize_url(a)


def test_matching_branches_tags_and_head():
    push = parse_push("github", github_push())
    assert push.branch == "main" and push.default_branch == "main"
    assert matches(URL, "main", push)
    assert matches(URL.removesuffix(".git"), "refs/heads/main", push)
    assert matches(URL, "HEAD", push)  # main is the default branch
    assert not matches(URL, "dev", push)
    assert not matches("https://git.example.org/org/other", "main", push)
    dev = parse_push("github", github_push(ref="refs/heads/dev"))
    assert matches(URL, "dev", dev) and not matches(URL, "HEAD", dev)
    tag = parse_push("github", github_push(ref="refs/tags/v1"))
    assert matches(URL, "v1", tag) and not matches(URL, "main", tag)
    deleted = parse_push("github", github_push(after="0" * 40))
    assert deleted.deleted and not matches(URL, "main", deleted)


def test_gitlab_payload():
    body = json.dumps(
        {
            "ref": "refs/heads/main",
            "after": "c" * 40,
            "project": {
                "git_http_url": URL,
                "web_url": URL.removesuffix(".git"),
                "default_branch": "main",
            },
        }
    ).encode()
    push = parse_push("gitlab", body)
    assert matches(URL, "HEAD", push) and matches(URL, "main", push)


@pytest.mark.parametrize("body", [b"not json", b"[]", b"{}", b'{"ref": "refs/heads/x"}'])
def test_bad_payloads(body):
    with pytest.raises(InvalidInput):
        parse_push("github", body)
