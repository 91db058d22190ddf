"""Executors run one repo2docker build each; the manager decides what and when.

An executor gets a :class:`~repo2docker_service.builds.model.Build` (which already carries
the validated repo URL, the resolved commit and the target image reference) and reports
output lines through ``on_line``. It raises :class:`BuildFailed` when the build fails and
stops all of its work when its task is cancelled.

:class:`LocalExecutor` runs repo2docker as a subprocess of the service. A container-based
executor (repo2docker in a builder container) can implement the same two methods.
"""

from __future__ import annotations

import asyncio
import codecs
import json
import logging
import os
import re
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .model import Build, EventType

if TYPE_CHECKING:
    from ..sources import GitCredentials

__all__ = [
    "BuildFailed",
    "Executor",
    "LineCallback",
    "LocalExecutor",
    "default_repo2docker_command",
    "split_lines",
]

#: ``on_line(type, data)``: an executor reports one output line as
#: ``on_line("log", {"message": str})``. It must not block and never raises.
LineCallback = Callable[[str, dict[str, Any]], None]

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
#: environment variables of the service that builds never need (tokens of the service)
_PRIVATE_ENV_PREFIXES = ("JUPYTERHUB_", "JPY_", "REPO2DOCKER_SERVICE_")
_MAX_REASON = 500


class BuildFailed(Exception):
    """The build ran and failed.

    Attributes:
        reason: one line saying why (e.g. the last error line of the build output).
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Executor:
    """Base class of executors: how a build runs.

    Subclasses set :attr:`name` and implement :meth:`build`; :meth:`close` releases
    whatever they hold.
    """

    #: shown in ``api/info``
    name: str = "base"

    async def build(
        self,
        build: Build,
        *,
        on_line: LineCallback,
        push: bool,
        cache_from: Sequence[str],
        labels: Mapping[str, str],
        credentials: GitCredentials | None,
    ) -> None:
        """Build ``build.image`` from ``build.repo`` at ``build.commit``.

        Args:
            build: the build record (read only: ``repo``, ``commit``, ``image``, ``id``,
                ``owner``); the executor never changes its state.
            on_line: called with ``("log", {"message": line})`` for each output line.
            push: also push ``build.image`` to its registry.
            cache_from: images to use as build cache (may be empty).
            labels: labels to write on the image.
            credentials: git credentials for a private repository, or None. They reach git
                through the environment only.

        Returns:
            None once ``build.image`` exists (and, with ``push``, was pushed).

        Raises:
            BuildFailed: the build failed; ``reason`` says why.
            asyncio.CancelledError: when the calling task is cancelled; by then every
                process of the build has been stopped.
        """
        raise NotImplementedError

    async def close(self) -> None:
        """Release resources held by the executor (nothing for the base class)."""


def default_repo2docker_command() -> list[str]:
    """``repo2docker`` next to this Python interpreter if present, else from PATH.

    Returns:
        The command as an argv prefix (one element).
    """
    local = Path(sys.executable).parent / "repo2docker"
    if local.exists():
        return [str(local)]
    return [shutil.which("repo2docker") or "repo2docker"]


def split_lines(buffer: str) -> tuple[list[str], str]:
    """Split text on ``\n``, ``\r`` and ``\r\n``.

    A ``\r\n`` split across two reads gives one extra empty line, which callers skip.

    Args:
        buffer: decoded output, possibly ending in a partial line.

    Returns:
        ``(complete_lines, rest)`` where ``rest`` is the unterminated tail.
    """
    parts = _LINE_BREAK.split(buffer)
    rest = parts.pop()
    return parts, rest


class _OutputParser:
    """Turns repo2docker ``--json-logs`` output into log lines and remembers the error."""

    def __init__(self, on_line: LineCallback) -> None:
        self.on_line = on_line
        self.last_line = ""
        self.last_error = ""
        self.lines = 0

    def feed(self, raw: str) -> None:
        raw = raw.strip()
        if not raw:
            return
        record: Any = None
        if raw.startswith("{"):
            try:
                record = json.loads(raw)
            except ValueError:
                record = None
        if not isinstance(record, dict) or "message" not in record:
            self._emit(raw, failed=False)
            return
        failed = str(record.get("phase", "")) == "failed"
        texts = [str(record.get("message", ""))]
        if record.get("exc_info"):
            texts.append(str(record["exc_info"]))
        for text in texts:
            for line in _LINE_BREAK.split(text):
                if line.strip():
                    self._emit(line.rstrip(), failed=failed)

    def _emit(self, line: str, *, failed: bool) -> None:
        self.lines += 1
        self.last_line = line
        # buildx reports the cause as "ERROR: ..." (or "#N ERROR: ..."); repo2docker's
        # own failure line ("Error during build: Command [...] returned non-zero exit
        # status 1") comes after it and says less, so it only fills an empty slot.
        if "ERROR:" in line or (failed and not self.last_error):
            self.last_error = line
        self.on_line(EventType.LOG.value, {"message": line})

    def reason(self, returncode: int) -> str:
        detail = self.last_error or self.last_line or "no output"
        reason = f"repo2docker exited with status {returncode}: {detail}"
        return reason if len(reason) <= _MAX_REASON else reason[: _MAX_REASON - 3] + "..."


class LocalExecutor(Executor):
    """Runs repo2docker as a subprocess of the service.

    Each build runs ``repo2docker --no-run --json-logs ... -- <repo>`` in its own session
    (process group) with its own working and temporary directory (removed afterwards)
    and its own environment: a copy of the service's environment taken when the executor
    is created, minus the service's own tokens (``JUPYTERHUB_*``, ``JPY_*``,
    ``REPO2DOCKER_SERVICE_*``), plus ``env`` overrides, plus the build's git credential
    variables. Output (stdout and stderr together) is read as a stream and split on
    ``\\n`` and ``\\r``; JSON lines are unpacked, other lines are passed on as they are.

    On cancellation the whole process group gets SIGTERM, then SIGKILL after
    ``kill_grace_period`` seconds. The build container that buildx runs inside the Docker
    engine stops when the ``docker buildx`` client goes away.

    Args:
        repo2docker_command: argv prefix running repo2docker (default:
            :func:`default_repo2docker_command`).
        user_id: ``--user-id`` of the user in the image.
        user_name: ``--user-name`` of the user in the image.
        extra_args: more repo2docker options, put before ``--`` (e.g.
            ``["--Repo2Docker.platform=linux/amd64"]``).
        repo2docker_config: a repo2docker config file (``--config``); None for none.
        env: environment variables to set (or, with value None, remove) for every build.
        kill_grace_period: seconds between SIGTERM and SIGKILL.
        max_line_length: longer output lines are cut into pieces of this many characters.
        log: the logger to use.
    """

    name = "local"

    def __init__(
        self,
        *,
        repo2docker_command: Sequence[str] | None = None,
        user_id: int = 1000,
        user_name: str = "jovyan",
        extra_args: Sequence[str] = (),
        repo2docker_config: str | os.PathLike[str] | None = None,
        env: Mapping[str, str | None] | None = None,
        kill_grace_period: float = 5.0,
        max_line_length: int = 64 * 1024,
        log: logging.Logger | None = None,
    ) -> None:
        self.repo2docker_command = list(repo2docker_command or default_repo2docker_command())
        if not self.repo2docker_command:
            raise ValueError("repo2docker_command must not be empty")
        if int(user_id) <= 0:
            raise ValueError("user_id must be > 0: repo2docker refuses root as the image user")
        self.user_id = int(user_id)
        self.user_name = user_name
        self.extra_args = list(extra_args)
        if "--" in self.extra_args:
            raise ValueError("extra_args must not contain '--'")
        self.repo2docker_config = os.fspath(repo2docker_config) if repo2docker_config else None
        self.kill_grace_period = kill_grace_period
        self.max_line_length = max_line_length
        self.log = log or logging.getLogger("repo2docker_service.executor")
        base = {k: v for k, v in os.environ.items() if not k.startswith(_PRIVATE_ENV_PREFIXES)}
        for key, value in (env or {}).items():
            if value is None:
                base.pop(key, None)
            else:
                base[key] = value
        self._base_env = base

    # ------------------------------------------------------------------ pieces
    def command_line(
        self,
        build: Build,
        *,
        push: bool,
        cache_from: Sequence[str],
        labels: Mapping[str, str],
    ) -> list[str]:
        """The argv of the repo2docker run for ``build`` (no secrets in it).

        The repo URL comes last, after ``--``: repo2docker's parser treats everything
        after the positional repo as the command to run in the container, and ``--``
        keeps a URL from ever being read as an option.

        Returns:
            The argv list.
        """
        argv = [
            *self.repo2docker_command,
            "--no-run",
            "--json-logs",
            "--user-id",
            str(self.user_id),
            "--user-name",
            self.user_name,
            "--image-name",
            build.image,
            "--ref",
            build.commit,
        ]
        for key, value in labels.items():
            argv += ["--label", f"{key}={value}"]
        for image in cache_from:
            argv += ["--cache-from", image]
        if push:
            argv.append("--push")
        if self.repo2docker_config:
            argv += ["--config", self.repo2docker_config]
        argv += [*self.extra_args, "--", build.repo]
        return argv

    def process_env(
        self, *, credentials: GitCredentials | None, tmpdir: str, repo: str | None = None
    ) -> dict[str, str]:
        """The environment of one build's process (a new dict; ``os.environ`` is untouched).

        Args:
            credentials: git credentials (their variables are added), or None.
            repo: the repository URL; credentials are offered to that host only.
            tmpdir: the build's own temporary directory (``TMPDIR``; repo2docker clones
                into it).

        Returns:
            The environment mapping.
        """
        env = dict(self._base_env)
        env["TMPDIR"] = tmpdir
        env["PYTHONUNBUFFERED"] = "1"
        env["GIT_TERMINAL_PROMPT"] = "0"
        if credentials is not None:
            env.update(credentials.git_env(url=repo))
        return env

    # ------------------------------------------------------------------ run
    async def build(
        self,
        build: Build,
        *,
        on_line: LineCallback,
        push: bool,
        cache_from: Sequence[str],
        labels: Mapping[str, str],
        credentials: GitCredentials | None,
    ) -> None:
        """Run repo2docker for ``build``; see :meth:`Executor.build`."""
        argv = self.command_line(build, push=push, cache_from=cache_from, labels=labels)
        workdir = await asyncio.to_thread(tempfile.mkdtemp, prefix=f"r2ds-{build.id[:12]}-")
        env = self.process_env(credentials=credentials, tmpdir=workdir, repo=build.repo)
        try:
            try:
                proc = await asyncio.create_subprocess_exec(
                    *argv,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.STDOUT,
                    env=env,
                    cwd=workdir,
                    start_new_session=True,
                )
            except OSError as e:
                raise BuildFailed(
                    f"could not start repo2docker ({self.repo2docker_command[0]}): {e}"
                ) from None
            self._log(build, logging.INFO, "started repo2docker (pid %d)", proc.pid)
            parser = _OutputParser(on_line)
            try:
                await self._read_output(proc, parser)
                returncode = await proc.wait()
            except BaseException:
                # cancelled (or a bug in a callback): stop every process of the build
                await self._stop_process_group(build, proc)
                raise
        finally:
            await _remove_tree(workdir)
        self._log(build, logging.INFO, "repo2docker exited with status %d", returncode)
        if returncode != 0:
            raise BuildFailed(parser.reason(returncode))

    async def _read_output(self, proc: asyncio.subprocess.Process, parser: _OutputParser) -> None:
        assert proc.stdout is not None
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        rest = ""
        while True:
            chunk = await proc.stdout.read(65536)
            text = decoder.decode(chunk, final=not chunk)
            lines, rest = split_lines(rest + text)
            for line in lines:
                parser.feed(line)
            while len(rest) > self.max_line_length:
                parser.feed(rest[: self.max_line_length])
                rest = rest[self.max_line_length :]
            if not chunk:
                parser.feed(rest)
                return

    async def _stop_process_group(self, build: Build, proc: asyncio.subprocess.Process) -> None:
        """SIGTERM the process group, SIGKILL it after the grace period, reap the leader."""
        pgid = proc.pid
        try:
            if proc.returncode is None:
                self._log(build, logging.INFO, "stopping repo2docker process group %d", pgid)
                _signal_group(pgid, signal.SIGTERM)
                try:
                    await asyncio.wait_for(proc.wait(), self.kill_grace_period)
                except TimeoutError:
                    self._log(
                        build,
                        logging.WARNING,
                        "process group %d still running after %.0f s: SIGKILL",
                        pgid,
                        self.kill_grace_period,
                    )
        finally:
            # also catches children that outlived the leader, and runs if we are
            # cancelled again while waiting
            _signal_group(pgid, signal.SIGKILL)
        if proc.returncode is None:
            await proc.wait()

    def _log(self, build: Build, level: int, msg: str, *args: Any) -> None:
        self.log.log(level, "build %s (owner %s): " + msg, build.id, build.owner, *args)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


async def _remove_tree(path: str) -> None:
    await asyncio.to_thread(shutil.rmtree, path, ignore_errors=True)
