"""Ref resolution with ``git ls-remote``: the way for every scheme git speaks.

:func:`resolve_ref` runs ``git ls-remote`` as an argv list with the positionals after ``--``,
a per-process environment (``os.environ`` is never modified; :func:`git_env`), no prompts,
only the plain git transports, and kills its whole process group on timeout or cancellation
(:func:`~.gitproc.run_git`). :class:`~.resolver.RefResolver` uses it for what its protocol v2
client does not serve (see there).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

from ..errors import InvalidInput, SourceError
from .branches import parse_heads, suggest_branches
from .credentials import GitCredentials
from .gitproc import run_git, stderr_reason
from .refs import (
    FULL_SHA_RE,
    is_abbreviated_commit,
    pick_commit,
    ref_not_found,
    validate_ref,
)

__all__ = ["BASE_ENV_KEYS", "GIT_PROTOCOLS", "git_env", "resolve_ref"]

#: Transports git may use in :func:`resolve_ref` (``GIT_ALLOW_PROTOCOL``); no ``ext``, no
#: remote helpers.
GIT_PROTOCOLS = ("file", "git", "http", "https", "ssh")

#: Variables copied from ``os.environ`` (when present) into git's environment by default.
BASE_ENV_KEYS = (
    *("PATH", "HOME"),
    *("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"),
    *("GIT_SSL_CAINFO", "GIT_SSL_CAPATH", "SSL_CERT_FILE", "SSL_CERT_DIR"),
)


def git_env(
    *, base: Mapping[str, str] | None, credentials: GitCredentials | None, repo: str
) -> dict[str, str]:
    """git's whole environment: ``base`` (default: :data:`BASE_ENV_KEYS` of ``os.environ``)
    plus no prompts, ``GIT_ALLOW_PROTOCOL`` and the credentials for ``repo``'s host."""
    if base is None:
        env = {key: os.environ[key] for key in BASE_ENV_KEYS if key in os.environ}
    else:
        env = dict(base)
    env.update(
        {
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_ASKPASS": "false",
            "SSH_ASKPASS": "false",
            "GCM_INTERACTIVE": "never",
            "GIT_ALLOW_PROTOCOL": ":".join(GIT_PROTOCOLS),
        }
    )
    env.setdefault("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")
    if credentials is not None:
        env.update(credentials.git_env(url=repo))
    return env


async def _ls_remote(
    repo: str,
    patterns: list[str],
    *,
    credentials: GitCredentials | None,
    timeout: float,  # noqa: ASYNC109 - expiry must kill git and become a SourceError
    git: str,
    env: Mapping[str, str] | None,
    options: tuple[str, ...] = (),
) -> str:
    argv = [git, "ls-remote", *options, "--", repo, *patterns]
    result = await run_git(
        argv,
        env=git_env(base=env, credentials=credentials, repo=repo),
        timeout=timeout,
        repo=repo,
        capture_stdout=True,
    )
    if result.returncode != 0:
        secrets = [credentials.password] if credentials is not None else []
        reason = stderr_reason(result.stderr, secrets=secrets)
        raise SourceError(
            f"could not read {repo}: {reason or f'git exited with {result.returncode}'}",
            field="repo",
        )
    return result.stdout.decode("utf-8", errors="replace")


def _parse_ls_remote(output: str) -> dict[str, str]:
    refs: dict[str, str] = {}
    for line in output.splitlines():
        sha, sep, name = line.partition("\t")
        if sep and FULL_SHA_RE.fullmatch(sha):
            refs.setdefault(name, sha.lower())
    return refs


async def _missing_ref(repo: str, ref: str, **git_options: Any) -> SourceError:
    """:func:`.refs.ref_not_found` with the branches ``ls-remote --symref`` lists (none when
    that second call fails: the error stays about the ref)."""
    try:
        output = await _ls_remote(
            repo, ["HEAD", "refs/heads/*"], options=("--symref",), **git_options
        )
    except SourceError:
        return ref_not_found(repo, ref)
    default, heads = parse_heads(output)
    return ref_not_found(repo, ref, suggest_branches(ref, default, heads))


def _patterns(ref: str) -> list[str]:
    """What ``ls-remote`` lists to resolve ``ref``: it matches patterns against the tail of
    ref names; peeled tags need their own; an abbreviated commit may be any branch or tag
    tip, so all of them."""
    if is_abbreviated_commit(ref):
        return ["refs/heads/*", "refs/tags/*"]
    return [ref] if ref == "HEAD" else [ref, f"{ref}^{{}}"]


async def resolve_ref(
    repo: str,
    ref: str,
    *,
    credentials: GitCredentials | None = None,
    timeout: float = 30,  # noqa: ASYNC109 - expiry must kill git and become a SourceError
    git: str = "git",
    env: Mapping[str, str] | None = None,
    known_commits: Iterable[str] = (),
) -> str:
    """Resolve a ref of a remote repository to a full commit SHA with ``git ls-remote``.

    A full 40-character SHA is returned (lowercased) without contacting the repository.
    ``HEAD`` is the remote's default branch. A name matches, in this order,
    ``refs/heads/<name>``, the commit of an annotated tag ``refs/tags/<name>^{}``,
    ``refs/tags/<name>``, then ``<name>`` itself as a full ref (``refs/pull/1/head``).
    An abbreviated commit (7-39 hex characters) that names no branch or tag resolves to the
    one commit starting with it among the remote's branch and tag tips and
    ``known_commits`` (the commits of environments built from the repository): git cannot
    ask a server for an abbreviated commit, so others are refused (:func:`resolve_prefix`).

    Args:
        repo: repository URL, already checked by :func:`validate_repo_url`.
        ref: ``HEAD``, a branch or tag name, a full ref, or a (possibly abbreviated) commit.
        credentials: credentials for a private repository, handed over via the environment.
        timeout: seconds to wait for git before killing it.
        git: the git executable.
        env: base environment for git; default: ``PATH``, ``HOME`` and the proxy and CA
            variables of :data:`BASE_ENV_KEYS` from ``os.environ`` at call time. No-prompt
            and ``GIT_ALLOW_PROTOCOL`` settings and the credentials are added to it.
        known_commits: full commits an abbreviated ``ref`` may also stand for.

    Returns:
        The full 40-character lowercase commit SHA.

    Raises:
        InvalidInput: ``ref`` is not a valid ref.
        SourceError: git failed (message ends with git's last error lines, with the password
            scrubbed), timed out, or the ref does not exist; an abbreviated commit matches
            no known commit or several. Each about the ref has ``field="ref"``; an unknown
            ref's ``suggestions`` are a few existing branches, default first.
        ServiceError: the git executable is missing.
    """
    ref = validate_ref(ref)
    if FULL_SHA_RE.fullmatch(ref):
        return ref.lower()
    if not isinstance(repo, str) or not repo:
        raise InvalidInput("repo must be a non-empty URL string")
    git_options: dict[str, Any] = dict(credentials=credentials, timeout=timeout, git=git, env=env)
    output = await _ls_remote(repo, _patterns(ref), **git_options)
    found = pick_commit(repo, ref, _parse_ls_remote(output), known_commits)
    if found is not None:
        return found
    raise await _missing_ref(repo, ref, **git_options)
