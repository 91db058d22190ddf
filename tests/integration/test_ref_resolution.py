"""Ref resolution: protocol v2 ``ls-refs`` answers exactly as ``git ls-remote`` does.

Real git servers on 127.0.0.1 (``git http-backend`` behind the rig's HTTP server): plain
HTTP, HTTPS with a CA of the test's own (handed to git and to the resolver through
``GIT_SSL_CAINFO``), a private repository, and a server that speaks only protocol v0. Each
ref of one table is resolved by :class:`RefResolver` (v2 path) and by ``resolve_ref`` (git
ls-remote); answers and error messages must be the same, and the requests the server saw
say which path ran.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from repo2docker_service.errors import SourceError
from repo2docker_service.sources import GitCredentials, resolve_ref
from repo2docker_service.sources.resolver import PushedCommits, RefResolver
from scripts.git_http import loopback_env
from tests.rig.git import GitHTTPServer, start_git_http
from tests.rig.tls import LoopbackTLS, loopback_tls

USER, PASSWORD = "reader", "s3cret-Pw-7"


def _history(server: GitHTTPServer, name: str, **kwargs: object) -> dict[str, str]:
    """A repository with branches, tags and look-alikes; returns named commits."""
    server.create_repo(name, {"README.md": "one\n"}, **kwargs)  # type: ignore[arg-type]
    first = server.head(name)
    server.tag(name, "v1")  # lightweight
    server.tag(name, "ann", message="annotated")  # annotated: peeled ^{} is the commit
    second = server.commit(name, {"README.md": "two\n"})
    bare = server.repo(name).bare
    for branch, sha in [("feature/x", first), ("main2", first), ("both", first)]:
        server._git("update-ref", f"refs/heads/{branch}", sha, cwd=bare)
    server._git("update-ref", "refs/tags/both", second, cwd=bare)
    server._git("update-ref", "refs/pull/1/head", first, cwd=bare)
    return {"first": first, "second": second}


#: every kind of ref a request may carry (commits are filled in per repository)
REFS = [
    "main",
    "HEAD",
    "v1",
    "ann",
    "refs/heads/main",
    "refs/tags/ann",
    "refs/tags/v1",
    "feature/x",
    "main2",
    "both",  # a branch and a tag: the branch wins
    "refs/pull/1/head",
    "{second}",  # full SHA
    "{second_short}",  # abbreviated: a branch tip
    "{first_short}",  # abbreviated: a tag and branch tip
    "nope",  # unknown
    "refs/heads/nope",
    "deadbeef1",  # abbreviated, matches nothing
]


def _settled(server: GitHTTPServer) -> int:
    """How many requests the server recorded, once no more arrive (it records each one
    just after answering it, so the count can trail the client by a moment)."""
    seen = -1
    while seen != len(server.requests):
        seen = len(server.requests)
        time.sleep(0.2)
    return seen


def _expand(ref: str, commits: dict[str, str]) -> str:
    return ref.format(
        second=commits["second"],
        second_short=commits["second"][:9],
        first_short=commits["first"][:8],
    )


async def _answer(resolver: object, url: str, ref: str, **kwargs: object) -> str:
    """The commit, or the error's message (both paths must agree on either)."""
    try:
        return await resolver(url, ref, **kwargs)  # type: ignore[operator, no-any-return]
    except SourceError as e:
        return f"error: {e.message}"


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> LoopbackTLS:
    return loopback_tls(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def servers(
    tmp_path_factory: pytest.TempPathFactory, tls_files: LoopbackTLS
) -> Iterator[dict[str, GitHTTPServer]]:
    started = {
        "http": start_git_http(tmp_path_factory.mktemp("git-http")),
        "https": start_git_http(
            tmp_path_factory.mktemp("git-https"), tls=tls_files.server_context()
        ),
        "v0": start_git_http(tmp_path_factory.mktemp("git-v0"), protocol_v2=False),
    }
    yield started
    for server in started.values():
        server.stop()


@pytest.fixture
def env(tls_files: LoopbackTLS) -> dict[str, str]:
    return {**loopback_env(), "GIT_SSL_CAINFO": str(tls_files.ca_file)}


@pytest.fixture
async def resolver(env: dict[str, str]) -> AsyncIterator[RefResolver]:
    r = RefResolver(env=env)
    yield r
    await r.close()


@pytest.mark.parametrize("kind", ["http", "https"])
async def test_ls_refs_answers_as_git_ls_remote(
    servers: dict[str, GitHTTPServer], kind: str, resolver: RefResolver, env: dict[str, str]
) -> None:
    server = servers[kind]
    name = f"table-{kind}"
    commits = _history(server, name)
    url = server.url(name)
    for ref in REFS:
        ref = _expand(ref, commits)
        before = _settled(server)
        ours = await _answer(resolver, url, ref)
        after = _settled(server)
        ours_seen = server.requests[before:after]
        by_git = await _answer(resolve_ref, url, ref, env=env)
        assert ours == by_git, ref
        if len(ref) != 40:  # a full SHA asks nobody
            assert resolver.route(url, ref) == "ls-refs"
            # POSTs of ls-refs only; the capability advertisement (GET) once, the first time
            posts = [r for r in ours_seen if r.path.endswith("/git-upload-pack")]
            assert posts and all(r.method == "POST" for r in posts), ref
            assert len(ours_seen) - len(posts) == (1 if ref == REFS[0] else 0), ref
    assert "error: ref 'nope' not found" in await _answer(resolver, url, "nope")
    assert await _answer(resolver, url, "both") == commits["first"]
    assert await _answer(resolver, url, "ann") == commits["first"]


async def test_one_request_per_resolution_once_the_server_is_known(
    servers: dict[str, GitHTTPServer], resolver: RefResolver
) -> None:
    server = servers["https"]
    url = server.create_repo("one-request", {"a": "1"})
    await resolver(url, "main")
    before = _settled(server)
    for _ in range(3):
        await resolver(url, "main")
    after = _settled(server)
    seen = server.requests[before:after]
    assert [(r.method, r.path) for r in seen] == [("POST", "/one-request.git/git-upload-pack")] * 3


async def test_every_resolution_asks_the_server(
    servers: dict[str, GitHTTPServer], resolver: RefResolver
) -> None:
    server = servers["http"]
    url = server.create_repo("fresh", {"a": "1"})
    assert await resolver(url, "main") == server.head("fresh")
    new = server.commit("fresh", {"a": "2"})
    assert await resolver(url, "main") == new  # no cache between two requests


@pytest.mark.parametrize("kind", ["http", "https"])
async def test_private_repository(
    servers: dict[str, GitHTTPServer],
    kind: str,
    resolver: RefResolver,
    env: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    server = servers[kind]
    name = f"private-{kind}"
    commits = _history(server, name, auth=(USER, PASSWORD))
    url = server.url(name)
    creds = GitCredentials(USER, PASSWORD)
    for ref in ["main", "ann", "both", _expand("{first_short}", commits), "nope"]:
        ours = await _answer(resolver, url, ref, credentials=creds)
        assert ours == await _answer(resolve_ref, url, ref, credentials=creds, env=env), ref
    assert await resolver(url, "main", credentials=creds) == commits["second"]
    before = _settled(server)
    await resolver(url, "main", credentials=creds)
    after = _settled(server)
    (seen,) = server.requests[before:after]  # one authenticated POST
    assert (seen.method, seen.user, seen.status) == ("POST", USER, 200)
    assert all(PASSWORD not in r.path and USER not in r.path for r in server.requests)
    # no or wrong credentials: git's own message (the v2 path hands over to git)
    wrong = GitCredentials(USER, "wrong-Pw-9")
    for given in (None, wrong):
        ours = await _answer(resolver, url, "main", credentials=given)
        assert ours.startswith("error: could not read")
        assert ours == await _answer(resolve_ref, url, "main", credentials=given, env=env)
        assert "wrong-Pw-9" not in ours
    assert "protocol v2 not served" in caplog.text  # the hand-over to git was logged...
    assert PASSWORD not in caplog.text and "wrong-Pw-9" not in caplog.text  # ...no secret


async def test_server_without_v2_falls_back_to_git(
    servers: dict[str, GitHTTPServer], resolver: RefResolver, env: dict[str, str]
) -> None:
    server = servers["v0"]
    commits = _history(server, "old")
    url = server.url("old")
    assert resolver.route(url, "main") == "ls-refs"
    for ref in ["main", "HEAD", "ann", "both", "nope", _expand("{second_short}", commits)]:
        assert await _answer(resolver, url, ref) == await _answer(resolve_ref, url, ref, env=env)
    # the first answer told it: the rule sends the next requests straight to git
    assert resolver.route(url, "main") == "ls-remote"
    assert not any(r.method == "POST" and r.status != 200 for r in server.requests)


async def test_tls_without_the_ca_fails_as_git_fails(
    servers: dict[str, GitHTTPServer], tmp_path: Path
) -> None:
    server = servers["https"]
    url = server.create_repo("untrusted", {"a": "1"})
    env = {**loopback_env(), "GIT_SSL_CAINFO": "/etc/ssl/certs/ca-certificates.crt"}
    resolver = RefResolver(env=env)
    try:
        ours = await _answer(resolver, url, "main")
    finally:
        await resolver.close()
    assert ours.startswith("error: could not read")
    assert ours == await _answer(resolve_ref, url, "main", env=env)


async def test_a_pushed_branch_answers_only_inside_its_webhook(
    servers: dict[str, GitHTTPServer], env: dict[str, str]
) -> None:
    server = servers["http"]
    url = server.create_repo("pushed", {"a": "1"})
    pushed = PushedCommits()
    resolver = RefResolver(env=env, pushed=pushed)
    announced = "ab" * 20
    try:
        with pushed.announced(url, ["main", "HEAD"], announced):
            assert resolver.route(url, "main") == "pushed"
            before = _settled(server)
            assert await resolver(url, "main") == announced
            assert await resolver(url, "HEAD") == announced
            assert _settled(server) == before  # nobody asked
            assert await resolver(url, "refs/heads/main") == server.head("pushed")
        assert await resolver(url, "main") == server.head("pushed")  # asked again after
    finally:
        await resolver.close()
