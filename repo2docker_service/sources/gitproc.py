"""Running git for the service: one process group per call, killed on timeout.

Every git call of the service (``ls-remote`` for refs, the one-commit fetch of
:mod:`.commits`) goes through :func:`run_git`, so a hung server or a slow network never
leaves a git process behind and never blocks the event loop, and stderr is read the same way
everywhere (:func:`stderr_reason` keeps the last lines, with the password scrubbed).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ..errors import ServiceError, SourceError

__all__ = ["GitResult", "run_git", "stderr_reason"]

#: How many of git's last stderr lines an error message keeps.
STDERR_LINES = 5


@dataclass(frozen=True, slots=True)
class GitResult:
    """What a git process ended with: exit status, stdout (b"" unless asked for), stderr."""

    returncode: int
    stdout: bytes
    stderr: bytes


def _kill_group(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)


def stderr_reason(stderr: bytes, *, secrets: Iterable[str]) -> str:
    """git's last stderr lines joined by ``; `` with every secret replaced by ``***``."""
    text = stderr.decode("utf-8", errors="replace")
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    lines = [line.strip() for line in re.split(r"\r\n|\r|\n", text)]
    return "; ".join([line for line in lines if line][-STDERR_LINES:])


async def run_git(
    argv: list[str],
    *,
    env: Mapping[str, str],
    timeout: float,  # noqa: ASYNC109 - expiry must kill git and become a SourceError
    repo: str,
    capture_stdout: bool = False,
) -> GitResult:
    """Run ``argv`` (git and its arguments) in its own process group.

    Args:
        argv: the command, ``argv[0]`` being the git executable.
        env: the whole environment of the process (credentials only ever here).
        timeout: seconds before the process group is killed.
        repo: the repository URL, for the timeout's message.
        capture_stdout: keep stdout (else it goes to /dev/null).

    Raises:
        ServiceError: (500) the git executable does not exist.
        SourceError: (422) the timeout passed.
    """
    out = asyncio.subprocess.PIPE if capture_stdout else asyncio.subprocess.DEVNULL
    starting = asyncio.ensure_future(
        asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=asyncio.subprocess.PIPE,
            env=dict(env),
            start_new_session=True,
        )
    )
    try:
        proc = await asyncio.shield(starting)
    except FileNotFoundError:
        raise ServiceError(
            f"git executable {argv[0]!r} not found: install git on the service host"
        ) from None
    except asyncio.CancelledError:
        # git may already run (and have started helpers of its own): a cancel inside
        # create_subprocess_exec would kill git alone and then wait for its helpers to
        # close the pipes; let the start finish, then kill the whole group
        with contextlib.suppress(Exception):
            started = await starting
            _kill_group(started)
            await started.wait()
        raise
    try:
        async with asyncio.timeout(timeout):
            stdout, stderr = await proc.communicate()
    except TimeoutError:
        raise SourceError(
            f"timed out after {timeout:g} s contacting {repo}", field="repo"
        ) from None
    finally:
        _kill_group(proc)
        if proc.returncode is None:
            await proc.wait()
    return GitResult(proc.returncode or 0, stdout or b"", stderr or b"")
