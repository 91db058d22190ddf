"""A commit that does not exist (issue 15, item 9), against the real git server.

``check_commit`` fetches the one commit (protocol v2, ``--depth=1 --filter=tree:0``); the
test git server is ``git http-backend`` with ``uploadpack.allowReachableSHA1InWant`` and
``allowFilter``, as GitHub behaves. Without the check (a remote that cannot tell), the build
itself fails with the same sentence instead of git's exit status.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import secrets

import pytest

from repo2docker_service.builds.executors import LocalExecutor
from repo2docker_service.builds.manager import BuildManager
from repo2docker_service.builds.model import BuildState
from repo2docker_service.builds.request import BuildRequest
from repo2docker_service.builds.store import BuildStore
from repo2docker_service.errors import SourceError
from repo2docker_service.images.docker import DockerCatalog
from repo2docker_service.images.naming import DEFAULT_TEMPLATE, ImageNamer
from repo2docker_service.sources import GitCredentials, resolve_ref
from repo2docker_service.sources.commits import check_commit
from tests.rig.net import loopback_env

pytestmark = pytest.mark.docker

LOG = logging.getLogger("test-missing-commits")
MISSING = "0123456789abcdef0123456789abcdef01234567"
PREFIX = f"r2dmc-{secrets.token_hex(3)}-"
check = functools.partial(check_commit, env=loopback_env())


@pytest.fixture(scope="module")
def history(git_http):
    """A repository with two commits and a private twin: (url, first, tip, private url,
    the private repository's commit)."""
    name = f"missing-{secrets.token_hex(3)}"
    url = git_http.create_repo(f"{name}/env", {"README": "one\n"})
    first = git_http.head(f"{name}/env")
    tip = git_http.commit(f"{name}/env", {"README": "two\n"})
    private = git_http.create_repo(f"{name}/private", {"README": "x\n"}, auth=("u", "pw-7f3a"))
    return url, first, tip, private, git_http.head(f"{name}/private")


async def test_commits_the_remote_has_are_found(history):
    url, first, tip, private, private_head = history
    assert await check(url, tip) is True
    assert await check(url, first) is True  # not a branch tip: protocol v2 serves it
    creds = GitCredentials("u", "pw-7f3a")
    assert await check(private, private_head, credentials=creds) is True


@pytest.mark.parametrize(
    "repo_of, sha, words",
    [
        (lambda h: h[0], MISSING, "commit {sha} not found in {repo}"),
        (lambda h: h[0], "f" * 40, "commit {sha} not found in {repo}"),
        (lambda h: h[3], MISSING, "could not read {repo}"),  # private, no credentials
        (lambda h: h[0] + "-nope", MISSING, "could not read {repo}"),
    ],
    ids=["missing", "missing-ffff", "private-without-credentials", "no-such-repository"],
)
async def test_a_missing_commit_or_an_unreadable_repository_is_a_422(history, repo_of, sha, words):
    repo = repo_of(history)
    with pytest.raises(SourceError) as e:
        await check(repo, sha)
    assert e.value.status_code == 422
    assert e.value.message.startswith(words.format(sha=sha, repo=repo))
    assert "pw-7f3a" not in e.value.message


async def make_manager(docker_engine, repo2docker_config, **kw) -> BuildManager:
    namer = ImageNamer(template=DEFAULT_TEMPLATE, prefix=PREFIX)
    catalog = DockerCatalog(namer=namer, url=docker_engine.host, log=LOG)
    await catalog.start()
    env = {**docker_engine.env, **{k: loopback_env()[k] for k in ("NO_PROXY", "no_proxy")}}
    manager = BuildManager(
        executor=LocalExecutor(repo2docker_config=repo2docker_config, env=env, log=LOG),
        catalog=catalog,
        namer=namer,
        store=BuildStore(history_limit=10),
        resolver=functools.partial(resolve_ref, env=loopback_env()),
        allowed_repo_schemes=("http",),
        log=LOG,
        **kw,
    )
    await manager.start()
    return manager


async def test_the_manager_refuses_before_queueing_and_the_build_says_the_same(
    history, docker_engine, repo2docker_config
):
    url = history[0]
    checked = await make_manager(docker_engine, repo2docker_config, commit_checker=check)
    unchecked = await make_manager(docker_engine, repo2docker_config)
    try:
        for typed in (MISSING, MISSING.upper()):
            with pytest.raises(SourceError, match=f"^commit {MISSING} not found in {url}$"):
                await checked.submit(BuildRequest(owner="gina", repo=url, ref=typed))
        assert checked.list() == []
        # a remote that cannot tell: the build fails with the sentence, not git's status
        result = await unchecked.submit(BuildRequest(owner="gina", repo=url, ref=MISSING))
        build = result.build
        await asyncio.wait_for(build.wait(), 120)
        assert build.state is BuildState.FAILED
        assert build.error == f"commit {MISSING} not found in {url}"
    finally:
        for manager in (checked, unchecked):
            await manager.stop()
            await manager.catalog.close()
