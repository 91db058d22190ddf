"""LocalExecutor: repo2docker as a subprocess of the service.

Each build runs in its own session (process group) with its own working and temporary
directory and its own environment; a cancelled build's whole process group is stopped.
After a crash of the service its builds outlive it: :meth:`LocalExecutor.stop_lost` finds
them (:func:`find_orphan_builds`) on the next start and stops them.
"""

from __future__ import annotations

import asyncio
import codecs
import itertools
import logging
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from traitlets import Dict, List, Unicode, default

from ...images.dockerconfig import RegistryCredentials, write_docker_config
from ...images.labels import LABEL_BUILD_ID
from ..model import Build, EventType
from .base import BuildFailed, Executor, LostBuild
from .exits import exit_cause
from .output import LineCallback, OutputParser

if TYPE_CHECKING:
    from ...sources import GitCredentials

__all__ = ["LocalExecutor", "default_repo2docker_command", "find_orphan_builds"]

#: environment variables of the service that builds never need (tokens of the service)
_PRIVATE_ENV_PREFIXES = ("JUPYTERHUB_", "JPY_", "REPO2DOCKER_SERVICE_")
_LABEL_BUILD_ID_PREFIX = LABEL_BUILD_ID + "="


def default_repo2docker_command() -> list[str]:
    """``repo2docker`` next to this Python interpreter if present, else from PATH.

    Returns:
        The command as an argv prefix (one element).
    """
    local = Path(sys.executable).parent / "repo2docker"
    if local.exists():
        return [str(local)]
    return [shutil.which("repo2docker") or "repo2docker"]


def find_orphan_builds(proc: str = "/proc") -> list[tuple[int, list[str]]]:
    """repo2docker processes started by a LocalExecutor whose service is gone.

    A LocalExecutor starts repo2docker as a session leader with the service's labels in
    its argv. Such a process is an orphan when its parent is no longer a
    repo2docker-service process (it was re-parented to init or a subreaper). Processes in
    other PID namespaces (containers, such as DockerExecutor builders) are never matched.

    Args:
        proc: the procfs mount point.

    Returns:
        ``(pid, argv)`` of each orphan (blocking file reads: call it in a thread).
    """
    found = []
    try:
        own_ns: str | None = os.readlink(Path(proc, "self", "ns", "pid"))
    except OSError:
        own_ns = None
    for entry in os.listdir(proc):
        if not entry.isdigit():
            continue
        try:
            if own_ns is not None and os.readlink(Path(proc, entry, "ns", "pid")) != own_ns:
                continue  # inside a container (e.g. a DockerExecutor builder): not ours
            argv = Path(proc, entry, "cmdline").read_bytes().split(b"\0")
            stat = Path(proc, entry, "stat").read_text()
        except OSError:
            continue
        args = [a.decode(errors="replace") for a in argv if a]
        if "--json-logs" not in args or not any(a.startswith(_LABEL_BUILD_ID_PREFIX) for a in args):
            continue
        # fields after "(comm)": state ppid pgrp session ...
        fields = stat.rsplit(")", 1)[-1].split()
        pid, ppid, session = int(entry), int(fields[1]), int(fields[3])
        if session != pid:
            continue  # a child of the build, not repo2docker itself
        if _is_service(Path(proc, str(ppid), "cmdline")):
            continue  # a live service's build
        found.append((pid, args))
    return found


def _is_service(cmdline: Path) -> bool:
    """Whether the process with this ``cmdline`` file is a repo2docker-service."""
    try:
        parent = cmdline.read_bytes()
    except OSError:
        return False
    return b"repo2docker_service" in parent or b"repo2docker-service" in parent


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

    With a ``registry`` and a login (``registry_credentials``, or ``registry_login`` read
    again when due: credential helpers) each pushing build gets its own ``DOCKER_CONFIG``
    directory (inside its temporary directory, mode 0700, ``config.json`` 0600, removed
    afterwards) with that login resolved into ``auths``, so no ``docker login``, no helper
    needed by the builder and no password in argv or the environment.

    Raises:
        ValueError: (when created) an empty ``repo2docker_command``, ``build_user_id <= 0``
            or ``--`` in ``repo2docker_extra_args``.
    """

    name = "local"

    repo2docker_command = List(
        Unicode(),
        help="""Command that runs repo2docker, as a list (LocalExecutor).

        Default: the `repo2docker` next to this Python, else `repo2docker` on PATH. Must not
        be empty.
        """,
    ).tag(config=True)

    @default("repo2docker_command")
    def _default_repo2docker_command(self) -> list[str]:
        return default_repo2docker_command()

    env = Dict(
        value_trait=Unicode(allow_none=True),
        help="""Environment variables to set for every build; a value of None removes the
        variable. Empty: the service's environment as it is (minus the service's tokens).
        """,
    )

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.argv = self.make_argv(
            self.repo2docker_command, config_path=self.repo2docker_config or None
        )
        base = {k: v for k, v in os.environ.items() if not k.startswith(_PRIVATE_ENV_PREFIXES)}
        for key, value in self.env.items():
            if value is None:
                base.pop(key, None)
            else:
                base[key] = value
        self._base_env = base

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
        login = await self.push_credentials() if push else None
        workdir = await asyncio.to_thread(tempfile.mkdtemp, prefix=f"r2ds-{build.id[:12]}-")
        try:
            env = self.process_env(credentials=credentials, tmpdir=workdir, repo=build.repo)
            if login is not None:
                env["DOCKER_CONFIG"] = await self._push_login(workdir, login)
            returncode, parser = await self._run_process(build, argv, env, workdir, on_line)
        finally:
            await _remove_tree(workdir)
        self._log(build, logging.INFO, "repo2docker exited with status %d", returncode)
        if returncode != 0:
            cause = exit_cause(returncode)
            if cause:  # e.g. the kernel's OOM killer: repo2docker itself says nothing
                self._log(build, logging.WARNING, "%s", cause)
                on_line(EventType.LOG.value, {"message": cause})
            raise BuildFailed(parser.reason(returncode, cause=cause))

    async def _push_login(self, workdir: str, login: RegistryCredentials) -> str:
        """A docker config directory with the registry login, inside ``workdir``."""
        config_dir = await asyncio.to_thread(
            write_docker_config,
            Path(workdir) / ".docker-config",
            registry=self.registry,
            credentials=login,
            base_dir=self._base_env.get("DOCKER_CONFIG"),
        )
        return str(config_dir)

    async def _run_process(
        self,
        build: Build,
        argv: Sequence[str],
        env: Mapping[str, str],
        workdir: str,
        on_line: LineCallback,
    ) -> tuple[int, OutputParser]:
        """Start repo2docker, stream its output to ``on_line``, wait for its end.

        Returns:
            ``(exit status, the parser that read the output)``.

        Raises:
            BuildFailed: repo2docker cannot be started.
            asyncio.CancelledError: cancelled; the process group has been stopped.
        """
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                env=dict(env),
                cwd=workdir,
                start_new_session=True,
            )
        except OSError as e:
            raise BuildFailed(f"could not start repo2docker ({argv[0]}): {e}") from None
        self._log(build, logging.INFO, "started repo2docker (pid %d)", proc.pid)
        parser = OutputParser(on_line, max_line_length=self.max_line_length)
        try:
            await self._read_output(proc, parser)
            returncode = await proc.wait()
        except BaseException:
            # cancelled (or a bug in a callback): stop every process of the build
            await self._stop_process_group(build, proc)
            raise
        return returncode, parser

    async def _read_output(self, proc: asyncio.subprocess.Process, parser: OutputParser) -> None:
        assert proc.stdout is not None
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        while True:
            chunk = await proc.stdout.read(65536)
            parser.feed_text(decoder.decode(chunk, final=not chunk))
            if not chunk:
                parser.close()
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

    async def stop_lost(self, *, accept: Callable[[str], bool]) -> list[LostBuild]:
        """Stop repo2docker processes that outlived an earlier run of the service.

        They run in their own sessions, so a service killed with SIGKILL (or by the OOM
        killer) leaves them behind; this finds them by the labels in their argv (see
        :func:`find_orphan_builds`), kills their process groups and reports them so the
        manager can record them as ``lost``.

        Args:
            accept: called with each found build's image reference; only builds it
                accepts (this service's images) are stopped.

        Returns:
            The builds that were stopped.
        """
        lost = []
        for pid, args in await asyncio.to_thread(find_orphan_builds):
            image, labels = _labels_from_argv(args)
            if not image or not accept(image):
                continue
            self.log.warning("stopping build left by an earlier run: pid %d, image %s", pid, image)
            _signal_group(pid, signal.SIGTERM)
            for _ in range(int(self.kill_grace_period * 10)):
                if not await asyncio.to_thread(os.path.exists, f"/proc/{pid}"):
                    break
                await asyncio.sleep(0.1)
            _signal_group(pid, signal.SIGKILL)
            lost.append(LostBuild(image=image, labels=labels))
        return lost


def _labels_from_argv(args: Sequence[str]) -> tuple[str, dict[str, str]]:
    """(--image-name, {label: value}) from a repo2docker argv."""
    image, labels = "", {}
    for flag, value in itertools.pairwise(args):
        if flag == "--image-name":
            image = value
        elif flag == "--label" and "=" in value:
            key, _, val = value.partition("=")
            labels[key] = val
    return image, labels


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


async def _remove_tree(path: str) -> None:
    await asyncio.to_thread(shutil.rmtree, path, ignore_errors=True)
