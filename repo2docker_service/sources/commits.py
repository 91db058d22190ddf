"""Does a commit exist in a remote repository? A shallow fetch of that one commit tells.

A build request may name a commit by its full SHA, which :func:`~.resolve_ref` takes as it is
(no network). Before such a build is queued (and only when no image exists for it, so cache
hits stay free), :func:`check_commit` fetches that one commit into a throw-away bare
repository: ``git fetch --depth=1 --filter=tree:0 -- <repo> <sha>``. Where the server
supports filters (GitHub, GitLab, Gitea, ``git http-backend`` with ``uploadpack.allowFilter``)
that is the commit object alone; elsewhere its tree comes too, no more than the build's own
clone.

Git's protocol v2 (the default since git 2.26) serves any commit reachable from a branch or
tag, and says ``not our ref`` for one the repository does not have: that is "not found".
A server that only speaks protocol v0 without ``uploadpack.allowReachableSHA1InWant`` (or
``allowAnySHA1InWant``) refuses every commit that is not a branch or tag tip ("does not
allow request for unadvertised object"): then nobody can tell, the build is queued, and if
the commit is missing the build fails with the same sentence (``BuildRunner``).
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Mapping

from ..errors import SourceError
from .credentials import GitCredentials
from .gitproc import run_git, stderr_reason
from .lsremote import git_env

__all__ = ["check_commit", "commit_not_found"]

#: What git says when the remote does not have the commit.
NOT_FOUND = ("not our ref", "couldn't find remote ref", "no such remote ref")
#: What git says when the remote will not tell (a v0 server without fetch-by-commit).
CANNOT_TELL = ("unadvertised object", "not allow request for")


def commit_not_found(repo: str, sha: str) -> SourceError:
    """The one sentence for a missing commit: ``commit <sha> not found in <repo>`` (422)."""
    return SourceError(f"commit {sha} not found in {repo}", field="ref")


async def check_commit(
    repo: str,
    sha: str,
    *,
    credentials: GitCredentials | None = None,
    timeout: float = 30,  # noqa: ASYNC109 - expiry must kill git and become a SourceError
    git: str = "git",
    env: Mapping[str, str] | None = None,
) -> bool:
    """Whether ``repo`` has commit ``sha``, asked with a shallow fetch of that commit.

    Args:
        repo: repository URL, already checked by ``validate_repo_url``.
        sha: a full 40-character commit SHA.
        credentials: for a private repository (handed over in the environment only).
        timeout: seconds for the fetch before git is killed.
        git: the git executable.
        env: base environment for git, as for ``resolve_ref``.

    Returns:
        True: the commit exists. False: the remote cannot tell (it refuses to serve
        commits that are not branch or tag tips); the build will find out.

    Raises:
        SourceError: (422) ``commit <sha> not found in <repo>``; the repository cannot be
            read (the message ends with git's reason, the password scrubbed); a timeout.
        ServiceError: the git executable is missing.
    """
    environ = git_env(base=env, credentials=credentials, repo=repo)
    scratch = tempfile.mkdtemp(prefix="r2ds-commit-")
    try:
        await run_git(
            [git, "init", "--quiet", "--bare", scratch], env=environ, timeout=timeout, repo=repo
        )
        fetch = ["fetch", "--quiet", "--no-tags", "--no-write-fetch-head", "--depth=1"]
        fetched = await run_git(
            [git, "-C", scratch, *fetch, "--filter=tree:0", "--", repo, sha],
            env=environ,
            timeout=timeout,
            repo=repo,
        )
    finally:
        await asyncio.to_thread(shutil.rmtree, scratch, True)
    if fetched.returncode == 0:
        return True
    secrets = [credentials.password] if credentials is not None else []
    reason = stderr_reason(fetched.stderr, secrets=secrets) or (
        f"git exited with {fetched.returncode}"
    )
    if any(marker in reason.lower() for marker in NOT_FOUND):
        raise commit_not_found(repo, sha)
    if any(marker in reason.lower() for marker in CANNOT_TELL):
        return False
    raise SourceError(f"could not read {repo}: {reason}", field="repo")
