"""One repository identity (repoid.RepoIdentity), and every place that compares repositories."""

from __future__ import annotations

import json

import pytest

from repo2docker_service.images.catalog import ImageInfo, find_existing
from repo2docker_service.repoid import RepoIdentity
from repo2docker_service.webhooks import matches, parse_push

RULE = RepoIdentity()  # github.com and gitlab.com fold case
GITEA = RepoIdentity.from_hosts(["github.com", "gitlab.com", " Git.Example.ORG "])

# (a, b): one repository, under the default rule
SAME = [
    # case of owner/name on case-insensitive forges
    ("https://github.com/Org/Repo", "https://github.com/org/repo"),
    ("https://GITHUB.com/ORG/REPO", "https://github.com/org/repo"),
    ("https://gitlab.com/Group/SubGroup/Project", "https://gitlab.com/group/subgroup/project"),
    # .git suffix and trailing slashes, on any host
    ("https://github.com/org/repo.git", "https://github.com/org/repo"),
    ("https://github.com/org/repo/", "https://github.com/org/repo"),
    ("https://github.com/org/repo.git/", "https://github.com/org/repo"),
    ("https://github.com/Org/Repo.git/", "https://github.com/org/repo"),
    ("http://127.0.0.1:8080/x.git", "http://127.0.0.1:8080/x"),
    ("https://git.example.org/org/env/", "https://git.example.org/org/env.git"),
    # double slashes
    ("https://github.com//org//repo", "https://github.com/org/repo"),
    # the host's case everywhere; scheme, default port, user name, query, fragment
    ("https://GIT.example.org/org/env", "https://git.example.org/org/env"),
    ("http://github.com/org/repo", "https://github.com/org/repo"),
    ("git://github.com/org/repo.git", "https://github.com/org/repo"),
    ("ssh://git@github.com/org/repo.git", "https://github.com/org/repo"),
    ("git@github.com:Org/Repo.git", "https://github.com/org/repo"),
    ("https://github.com:443/org/repo", "https://github.com/org/repo"),
    ("https://user:pw@git.example.org/org/env", "https://git.example.org/org/env.git"),
    ("https://github.com/org/repo?x=1#y", "https://github.com/org/repo"),
    (" https://github.com/org/repo ", "https://github.com/org/repo"),
    ("file:///srv/git/x.git/", "file:///srv/git/x"),
]
# (a, b): two repositories, under the default rule
DIFFERENT = [
    # plain git servers are case-sensitive
    ("https://git.example.org/Org/Env", "https://git.example.org/org/env"),
    ("http://127.0.0.1:8080/A/x", "http://127.0.0.1:8080/a/x"),
    ("file:///srv/git/X", "file:///srv/git/x"),
    # other owner, other host, other port
    ("https://github.com/a/analysis", "https://github.com/b/analysis"),
    ("https://github.com/org/repo", "https://gitlab.com/org/repo"),
    ("https://github.com:8443/org/repo", "https://github.com/org/repo"),
    ("https://gitlab.com/group/sub/project", "https://gitlab.com/group/project"),
    # only one .git suffix goes
    ("https://github.com/org/repo.git.git", "https://github.com/org/repo"),
]


@pytest.mark.parametrize(("a", "b"), SAME)
def test_same_repository(a, b):
    assert RULE.same(a, b), (RULE.key(a), RULE.key(b))


@pytest.mark.parametrize(("a", "b"), DIFFERENT)
def test_different_repositories(a, b):
    assert not RULE.same(a, b), (RULE.key(a), RULE.key(b))


def test_configured_hosts_fold_case_and_empty_folds_none():
    a, b = "https://git.example.org/Org/Env", "https://git.example.org/org/env"
    assert GITEA.same(a, b)
    assert GITEA.same("https://GIT.EXAMPLE.ORG/Org/Env.git/", b)
    strict = RepoIdentity.from_hosts([])
    assert not strict.same("https://github.com/Org/Repo", "https://github.com/org/repo")
    assert strict.same("https://github.com/org/repo.git/", "https://github.com/org/repo")


@pytest.mark.parametrize(
    "url", ["https://user:s3cret@github.com/org/repo", "http://tok3n@git.example.org/x.git"]
)
def test_keys_never_carry_credentials(url):
    key = RULE.key(url)
    assert "s3cret" not in key and "tok3n" not in key and "@" not in key


@pytest.mark.parametrize("text", ["", "not a url", "https://[::1", "https://host:99999/x"])
def test_unparsable_text_is_its_own_key(text):
    assert RULE.key(text) == text.strip()


# the places that compare repositories use the one rule


def push_of(url: str) -> bytes:
    return json.dumps(
        {
            "ref": "refs/heads/main",
            "after": "b" * 40,
            "repository": {"clone_url": url, "html_url": url, "default_branch": "main"},
        }
    ).encode()


@pytest.mark.parametrize(("built", "pushed"), SAME)
def test_webhook_push_matches_every_spelling(built, pushed):
    assert matches(built, "main", parse_push("github", push_of(pushed)), RULE)


@pytest.mark.parametrize(("built", "pushed"), DIFFERENT)
def test_webhook_push_never_matches_another_repository(built, pushed):
    assert not matches(built, "main", parse_push("github", push_of(pushed)), RULE)


def image(repo: str, *, owner="alice", commit="c" * 40, ref="main") -> ImageInfo:
    return ImageInfo(
        owner=owner,
        shared=False,
        owner_slug=owner,
        name="env",
        display_name="env",
        repo=repo,
        ref=ref,
        commit=commit,
        image=f"r2d-{owner}/env:{commit[:12]}",
        latest=None,
        built_at="2026-01-01T00:00:00Z",
    )


@pytest.mark.parametrize(("built", "link"), SAME)
def test_launch_link_finds_the_image_in_any_spelling(built, link):
    found = find_existing(
        [image(built)], repo=link, ref="main", name=None, username="bob", identity=RULE
    )
    assert found is not None


@pytest.mark.parametrize(("built", "link"), DIFFERENT)
def test_launch_link_never_finds_another_repository(built, link):
    found = find_existing(
        [image(built)], repo=link, ref="main", name=None, username="bob", identity=RULE
    )
    assert found is None
