"""Executors run one repo2docker build each; the manager decides what and when.

An executor gets a :class:`~repo2docker_service.builds.model.Build` (which already carries
the validated repo URL, the resolved commit and the target image reference) and reports
output lines through ``on_line``. It raises :class:`BuildFailed` when the build fails and
stops all of its work when its task is cancelled.

:class:`LocalExecutor` runs repo2docker as a subprocess of the service.
:class:`DockerExecutor` runs it in a builder container in the Docker engine; its builds
outlive a restart of the service, which finds and follows them again (:meth:`Executor.adopt`).
"""

from __future__ import annotations

import asyncio
import base64
import codecs
import itertools
import json
import logging
import os
import re
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..images.registry import RegistryCredentials, write_docker_config
from .model import LABEL_BUILD_ID, Build, EventType

if TYPE_CHECKING:
    from ..sources import GitCredentials

__all__ = [
    "AdoptedBuild",
    "BuildFailed",
    "DockerExecutor",
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
LABEL_BUILD_ID_PREFIX = LABEL_BUILD_ID + "="


class BuildFailed(Exception):
    """The build ran and failed.

    Attributes:
        reason: one line saying why (e.g. the last error line of the build output).
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class AdoptedBuild:
    """A build found running (or finished unseen) after a restart of the service.

    Attributes:
        build: the build record rebuilt from what the executor stored with the build (a
            new :class:`Build` in state ``queued`` with the original id, owner, image...).
        handle: executor-specific (for :class:`DockerExecutor` the container id).
    """

    build: Build
    handle: Any


@dataclass
class LostBuild:
    """A build whose service died while it ran (found by :meth:`Executor.stop_lost`).

    Attributes:
        image: the ``--image-name`` it was building.
        labels: the image labels it was given (``model.parse_labels`` reads them).
    """

    image: str
    labels: dict[str, str]


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
        own_ns = os.readlink(Path(proc, "self", "ns", "pid"))
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
        if "--json-logs" not in args or not any(a.startswith(LABEL_BUILD_ID_PREFIX) for a in args):
            continue
        # fields after "(comm)": state ppid pgrp session ...
        fields = stat.rsplit(")", 1)[-1].split()
        pid, ppid, session = int(entry), int(fields[1]), int(fields[3])
        if session != pid:
            continue  # a child of the build, not repo2docker itself
        try:
            parent = Path(proc, str(ppid), "cmdline").read_bytes()
        except OSError:
            parent = b""
        if b"repo2docker_service" in parent or b"repo2docker-service" in parent:
            continue  # a live service's build
        found.append((pid, args))
    return found


class Executor:
    """Base class of executors: how a build runs.

    Subclasses set :attr:`name` and implement :meth:`build`; :meth:`close` releases
    whatever they hold. Executors whose builds survive a restart of the service set
    :attr:`adoptable` and implement :meth:`detach`, :meth:`adopt` and :meth:`follow`.
    """

    #: shown in ``api/info``
    name: str = "base"
    #: builds outlive the service: :meth:`adopt` finds them after a restart
    adoptable: bool = False

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

    def detach(self) -> None:
        """Stop following builds without stopping them (the service is shutting down).

        After this, cancelling a build task only stops watching it; an adoptable executor
        leaves the build running for the next start to :meth:`adopt`.
        """

    async def adopt(self) -> list[AdoptedBuild]:
        """Builds left by an earlier run of the service (running or finished since).

        Returns:
            One :class:`AdoptedBuild` each (the base class: none).
        """
        return []

    async def stop_lost(self, *, accept: Callable[[str], bool]) -> list[LostBuild]:
        """Stop builds an earlier run of the service left behind without a way to adopt them.

        Args:
            accept: called with each found build's image reference; only builds it
                accepts (this service's images) are stopped.

        Returns:
            What was found and stopped (the base class: nothing).
        """
        return []

    async def follow(self, adopted: AdoptedBuild, *, on_line: LineCallback) -> None:
        """Follow an adopted build to its end, like :meth:`build` (log replayed from the start).

        Raises:
            BuildFailed: the build failed.
            asyncio.CancelledError: when cancelled; the build is stopped unless
                :meth:`detach` was called.
        """
        raise NotImplementedError


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
    """Turns repo2docker ``--json-logs`` output into log lines and remembers the error.

    Text arrives in chunks (:meth:`feed_text`, whatever the pipe or the container log
    gives); a line longer than ``max_line_length`` is cut into pieces; :meth:`close`
    flushes an unterminated last line.
    """

    def __init__(self, on_line: LineCallback, *, max_line_length: int = 1 << 20) -> None:
        self.on_line = on_line
        self.max_line_length = max_line_length
        self.last_line = ""
        self.last_error = ""
        self.lines = 0
        self._rest = ""

    def feed_text(self, text: str) -> None:
        """Feed decoded output: every complete line, and over-long pieces of the rest."""
        lines, rest = split_lines(self._rest + text)
        for line in lines:
            self.feed(line)
        while len(rest) > self.max_line_length:
            self.feed(rest[: self.max_line_length])
            rest = rest[self.max_line_length :]
        self._rest = rest

    def close(self) -> None:
        """The output ended: feed the unterminated last line, if any."""
        rest, self._rest = self._rest, ""
        self.feed(rest)

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
        registry: ``host[:port]`` builds push to (with ``registry_credentials``).
        registry_credentials: login for pushes. Each pushing build gets its own
            ``DOCKER_CONFIG`` directory (inside its temporary directory, mode 0700, removed
            afterwards) with that login, so no ``docker login`` and no password in argv.
            None: whatever the docker client has configured (``~/.docker/config.json``).
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
        registry: str = "",
        registry_credentials: RegistryCredentials | None = None,
        log: logging.Logger | None = None,
    ) -> None:
        self.registry = registry
        self.registry_credentials = registry_credentials if registry else None
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
        if push and self.registry_credentials is not None:
            config_dir = await asyncio.to_thread(
                write_docker_config,
                Path(workdir) / ".docker-config",
                registry=self.registry,
                credentials=self.registry_credentials,
                base_dir=self._base_env.get("DOCKER_CONFIG"),
            )
            env["DOCKER_CONFIG"] = str(config_dir)
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
            parser = _OutputParser(on_line, max_line_length=self.max_line_length)
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

    def _log(self, build: Build, level: int, msg: str, *args: Any) -> None:
        self.log.log(level, "build %s (owner %s): " + msg, build.id, build.owner, *args)


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


# ---------------------------------------------------------------------------- DockerExecutor
#: Labels of builder containers (besides the image labels of the build, see
#: ``model.image_labels``): what :meth:`DockerExecutor.adopt` needs to rebuild the record.
LABEL_BUILDER = "repo2docker-service.builder"
LABEL_INSTANCE = "repo2docker-service.builder-instance"
LABEL_IMAGE = "repo2docker-service.image"
LABEL_LATEST_IMAGE = "repo2docker-service.latest-image"
LABEL_OWNER_SLUG = "repo2docker-service.owner-slug"
LABEL_REQUESTED_BY = "repo2docker-service.requested-by"
LABEL_FORCE = "repo2docker-service.force"

#: Where the repo2docker config file is copied into builder containers.
BUILDER_CONFIG_PATH = "/etc/repo2docker-service/repo2docker_config.py"
#: A tmpfs in the builder container for the docker login of pushes (memory only).
BUILDER_SECRETS_DIR = "/run/r2ds-secrets"
# The builder container's command: read the secrets from stdin (one per line: git user,
# git password, base64 docker config), export them to repo2docker only, then exec it.
# The values never appear in the container's configuration (docker inspect shows this
# text and the argv, not stdin).
_BUILDER_WRAPPER = (
    "set -e; "
    'if [ "${R2DS_SECRETS_ON_STDIN:-}" = 1 ]; then '
    "IFS= read -r R2DS_GIT_USERNAME || true; "
    "IFS= read -r R2DS_GIT_PASSWORD || true; "
    "IFS= read -r r2ds_docker_config || true; "
    "export R2DS_GIT_USERNAME R2DS_GIT_PASSWORD; "
    'if [ -n "$r2ds_docker_config" ]; then '
    "umask 077; "
    f'mkdir -p "{BUILDER_SECRETS_DIR}/docker"; '
    f'printf %s "$r2ds_docker_config" | base64 -d > "{BUILDER_SECRETS_DIR}/docker/config.json"; '
    f'export DOCKER_CONFIG="{BUILDER_SECRETS_DIR}/docker"; '
    "fi; "
    "unset r2ds_docker_config; "
    "fi; "
    "unset R2DS_SECRETS_ON_STDIN; "
    'exec "$@"'
)
_MEMORY_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def parse_memory(value: str | int | float | None) -> int:
    """``"4G"``, ``"512M"``, ``1073741824`` -> bytes (0 for empty/None: no limit).

    Raises:
        ValueError: not a size.
    """
    if value in (None, "", 0):
        return 0
    if isinstance(value, int | float):
        return int(value)
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGT]?)i?B?\s*", str(value).upper())
    if not m:
        raise ValueError(f"not a memory size: {value!r} (use e.g. 512M or 4G)")
    return int(float(m.group(1)) * _MEMORY_UNITS[m.group(2)])


class DockerExecutor(LocalExecutor):
    """Runs repo2docker inside a builder container in the Docker engine.

    For each build a container of ``builder_image`` runs ``repo2docker --no-run
    --json-logs ...`` (the same command line as :class:`LocalExecutor`) against the same
    engine: the engine's socket is mounted into the container (``DOCKER_HOST`` of
    ``unix://`` form, the default ``/var/run/docker.sock``), or ``DOCKER_HOST`` (``tcp://``)
    is passed on. The container uses ``network`` (default ``host``, so loopback git servers,
    registries and engines are reachable), CPU and memory limits if set, and is labelled
    with the build (id, owner, image, repo, ...). The repo2docker config file, if any, is
    copied into it before it starts (this works with remote engines too).

    **Secrets.** Git credentials of private repositories and the registry login for
    pushes are written to the container's **stdin** when it starts and read by a small
    shell wrapper, which exports them to repo2docker only (git then uses the service's
    inline credential helper, configured through ``GIT_CONFIG_*`` variables that name
    the variables but hold no secret; the registry login goes to a ``config.json`` in a
    tmpfs). They are never in the container's ``Cmd``, ``Env`` or labels, so
    ``docker inspect`` of the builder container does not show them. They are visible to
    whoever can read the memory of the container's processes (root on the engine host,
    e.g. via ``/proc/<pid>/environ``) while the build runs; that is the same trust
    boundary as access to the Docker socket itself. (The upstream
    ``quay.io/jupyterhub/repo2docker`` image also ships ``git-credential-env``, which
    prints ``$GIT_CREDENTIAL_ENV``; it is not used because it would hand the credentials
    to every host git talks to and would need the secret in the container's environment.)

    **Restarts.** Builder containers are not removed when the service stops
    (:meth:`detach`): :meth:`adopt` finds them by their labels (and ``instance``), and
    :meth:`follow` replays their log from the start and waits for them, so a restarted
    service shows the build as ``building`` and finishes it. A container is removed once
    its build has been followed to the end (or cancelled).

    The limits apply to the builder container (repo2docker, git, the docker client). The
    image build itself runs in the engine's BuildKit and is limited there (or with
    ``--build-memory-limit`` / a buildx builder of its own).

    Args:
        builder_image: image with repo2docker, git, ``sh``/``base64`` and the docker CLI with
            the buildx plugin (e.g. ``quay.io/jupyterhub/repo2docker:<version>``).
        repo2docker_command: the command inside the builder (default ``["repo2docker"]``).
        docker_host: the engine (``unix:///...`` or ``tcp://...``); default ``DOCKER_HOST`` at
            creation time, else ``unix:///var/run/docker.sock``. TLS engines are not
            supported for the builder's own connection.
        network: the builder's network mode (``host``, ``bridge``, a network name).
        cpu_limit: CPUs for the builder container (0: no limit).
        memory_limit: memory for the builder container (``"4G"``; 0/"": no limit).
        builder_env: extra environment variables of the builder container (never secrets:
            they are visible in ``docker inspect``).
        instance: tells the builders of this service apart from other services on the same
            engine (adopt() only takes its own).
        remove: remove builder containers after their build.
        other arguments: as for :class:`LocalExecutor` (``repo2docker_config`` is a path
            on the service's host).
    """

    name = "docker"
    adoptable = True

    def __init__(
        self,
        *,
        builder_image: str,
        repo2docker_command: Sequence[str] | None = None,
        docker_host: str | None = None,
        network: str = "host",
        cpu_limit: float = 0,
        memory_limit: str | int = 0,
        builder_env: Mapping[str, str] | None = None,
        instance: str = "",
        remove: bool = True,
        **kwargs: Any,
    ) -> None:
        kwargs.pop("env", None)
        super().__init__(repo2docker_command=list(repo2docker_command or ["repo2docker"]), **kwargs)
        if not builder_image:
            raise ValueError("builder_image must be set for the DockerExecutor")
        self.builder_image = builder_image
        self.docker_host = (
            docker_host or os.environ.get("DOCKER_HOST") or ("unix:///var/run/docker.sock")
        )
        if not self.docker_host.startswith(("unix://", "tcp://", "http://")):
            raise ValueError(
                f"DockerExecutor supports unix:// and tcp:// engines, not {docker_host}"
            )
        self.network = network
        self.cpu_limit = float(cpu_limit or 0)
        self.memory_limit = parse_memory(memory_limit)
        self.builder_env = dict(builder_env or {})
        self.instance = instance
        self.remove = remove
        self._docker: Any = None
        self._detached = False

    def __repr__(self) -> str:
        return (
            f"DockerExecutor(builder_image={self.builder_image!r}, "
            f"docker_host={self.docker_host!r})"
        )

    # ------------------------------------------------------------------ engine
    def _client(self) -> Any:
        import aiodocker

        if self._docker is None:
            self._docker = aiodocker.Docker(url=self.docker_host)
        return self._docker

    async def close(self) -> None:
        """Close the Docker client (running builder containers are left alone)."""
        docker, self._docker = self._docker, None
        if docker is not None:
            await docker.close()

    async def stop_lost(self, *, accept: Callable[[str], bool]) -> list[LostBuild]:
        """Nothing is lost: builder containers outlive the service and are adopted."""
        return []

    def detach(self) -> None:
        """From now on a cancelled build leaves its container running (for adopt())."""
        self._detached = True

    # ------------------------------------------------------------------ pieces
    def command_line(
        self,
        build: Build,
        *,
        push: bool,
        cache_from: Sequence[str],
        labels: Mapping[str, str],
    ) -> list[str]:
        """The repo2docker argv inside the builder (the config file at its copied path)."""
        argv = super().command_line(build, push=push, cache_from=cache_from, labels=labels)
        if self.repo2docker_config:
            argv[argv.index(self.repo2docker_config)] = BUILDER_CONFIG_PATH
        return argv

    def container_labels(self, build: Build, labels: Mapping[str, str]) -> dict[str, str]:
        """Labels of the builder container: the image labels plus what adopt() needs."""
        return {
            **labels,
            LABEL_BUILDER: "true",
            LABEL_INSTANCE: self.instance,
            LABEL_IMAGE: build.image,
            LABEL_LATEST_IMAGE: build.latest_image,
            LABEL_OWNER_SLUG: build.owner_slug,
            LABEL_REQUESTED_BY: build.owner,
            LABEL_FORCE: "true" if build.force else "false",
        }

    def container_config(
        self,
        build: Build,
        *,
        argv: Sequence[str],
        labels: Mapping[str, str],
        credentials: GitCredentials | None,
        secrets_on_stdin: bool,
    ) -> dict[str, Any]:
        """The ``POST /containers/create`` body of one build (no secret in it)."""
        env = {
            "PYTHONUNBUFFERED": "1",
            "GIT_TERMINAL_PROMPT": "0",
            **self.builder_env,
        }
        binds = []
        if self.docker_host.startswith("unix://"):
            binds.append(f"{self.docker_host.removeprefix('unix://')}:/var/run/docker.sock")
        else:
            env["DOCKER_HOST"] = self.docker_host
        if credentials is not None:
            git_env = credentials.git_env(url=build.repo)
            # the helper configuration only names R2DS_GIT_USERNAME/PASSWORD, which come
            # from stdin; the values are left out here
            env.update({k: v for k, v in git_env.items() if k.startswith("GIT_")})
        if secrets_on_stdin:
            env["R2DS_SECRETS_ON_STDIN"] = "1"
        host_config: dict[str, Any] = {
            "NetworkMode": self.network,
            "Binds": binds,
            "Tmpfs": {BUILDER_SECRETS_DIR: "rw,noexec,nosuid,size=1m,mode=0700"},
            "Init": True,
        }
        if self.cpu_limit:
            host_config["NanoCpus"] = int(self.cpu_limit * 1e9)
        if self.memory_limit:
            host_config["Memory"] = self.memory_limit
        config: dict[str, Any] = {
            "Image": self.builder_image,
            "Cmd": ["sh", "-c", _BUILDER_WRAPPER, "r2ds-builder", *argv],
            "Env": [f"{k}={v}" for k, v in env.items()],
            "Labels": self.container_labels(build, labels),
            "WorkingDir": "/tmp",  # noqa: S108 - inside the builder container
            "User": "0",
            "Tty": False,
            "HostConfig": host_config,
        }
        if secrets_on_stdin:
            config.update({"OpenStdin": True, "StdinOnce": True, "AttachStdin": True})
        return config

    def _secrets(self, *, push: bool, credentials: GitCredentials | None) -> bytes | None:
        """The stdin payload (None when there is nothing secret to hand over)."""
        docker_config = ""
        if push and self.registry_credentials is not None:
            raw = f"{self.registry_credentials.username}:{self.registry_credentials.password}"
            config = {"auths": {self.registry: {"auth": base64.b64encode(raw.encode()).decode()}}}
            docker_config = base64.b64encode(json.dumps(config).encode()).decode()
        if credentials is None and not docker_config:
            return None
        user = credentials.username if credentials else ""
        password = credentials.password if credentials else ""
        return f"{user}\n{password}\n{docker_config}\n".encode()

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
        """Run repo2docker for ``build`` in a builder container; see :meth:`Executor.build`."""
        from aiodocker.exceptions import DockerError

        argv = self.command_line(build, push=push, cache_from=cache_from, labels=labels)
        secrets = self._secrets(push=push, credentials=credentials)
        config = self.container_config(
            build,
            argv=argv,
            labels=labels,
            credentials=credentials,
            secrets_on_stdin=secrets is not None,
        )
        docker = self._client()
        try:
            container = await docker.containers.create(
                config=config, name=f"r2ds-build-{build.id[:16]}"
            )
        except DockerError as e:
            if e.status == 404:
                raise BuildFailed(
                    f"builder image {self.builder_image} is not in the Docker engine "
                    f"({self.docker_host}): pull or build it first"
                ) from None
            raise BuildFailed(f"could not create the builder container: {e.message}") from None
        except (OSError, aiohttp_errors()) as e:
            raise BuildFailed(
                f"cannot reach the Docker engine at {self.docker_host}: {e}"
            ) from None
        self._log(build, logging.INFO, "builder container %s created", container.id[:12])
        try:
            try:
                if self.repo2docker_config:
                    content = await asyncio.to_thread(Path(self.repo2docker_config).read_bytes)
                    await container.put_archive("/", _tar_one(BUILDER_CONFIG_PATH, content))
                if secrets is not None:
                    stream = container.attach(stdin=True)
                    async with stream:
                        await container.start()
                        await stream.write_in(secrets)
                    del secrets
                else:
                    await container.start()
            except DockerError as e:
                raise BuildFailed(f"could not start the builder container: {e.message}") from None
            except (OSError, aiohttp_errors()) as e:
                raise BuildFailed(
                    f"lost the connection to the Docker engine at {self.docker_host}: {e}"
                ) from None
            await self._follow_container(build, container, on_line)
        except BaseException:
            await self._abandon(build, container)
            raise
        await self._discard(build, container)

    async def adopt(self) -> list[AdoptedBuild]:
        """Builder containers of this ``instance`` left by an earlier run of the service.

        Returns:
            One :class:`AdoptedBuild` (handle: container id) per container whose labels
            describe a build; containers with broken labels are logged and left alone.
        """
        from aiodocker.exceptions import DockerError

        docker = self._client()
        try:
            containers = await docker.containers.list(
                all=True,
                filters={"label": [f"{LABEL_BUILDER}=true", f"{LABEL_INSTANCE}={self.instance}"]},
            )
        except (DockerError, OSError, aiohttp_errors()) as e:
            self.log.error("cannot list builder containers at %s: %s", self.docker_host, e)
            return []
        found = []
        for container in containers:
            try:
                info = await container.show()
            except DockerError:
                continue
            build = _build_from_container(info)
            if build is None:
                self.log.warning(
                    "builder container %s has incomplete labels; left alone", container.id[:12]
                )
                continue
            found.append(AdoptedBuild(build=build, handle=container.id))
        return found

    async def follow(self, adopted: AdoptedBuild, *, on_line: LineCallback) -> None:
        """Follow an adopted builder container to its end (log replayed from the start)."""
        build = adopted.build
        container = self._client().containers.container(adopted.handle)
        try:
            await self._follow_container(build, container, on_line)
        except BaseException:
            await self._abandon(build, container)
            raise
        await self._discard(build, container)

    async def _follow_container(self, build: Build, container: Any, on_line: LineCallback) -> None:
        from aiodocker.exceptions import DockerError

        parser = _OutputParser(on_line, max_line_length=self.max_line_length)
        try:
            async for chunk in container.log(stdout=True, stderr=True, follow=True):
                parser.feed_text(chunk)
            parser.close()
            result = await container.wait()
        except DockerError as e:
            raise BuildFailed(f"lost the builder container: {e.message}") from None
        except (OSError, aiohttp_errors()) as e:
            raise BuildFailed(
                f"lost the connection to the Docker engine at {self.docker_host}: {e}"
            ) from None
        returncode = int(result.get("StatusCode", -1))
        self._log(build, logging.INFO, "builder container exited with status %d", returncode)
        if returncode != 0:
            raise BuildFailed(parser.reason(returncode))

    async def _abandon(self, build: Build, container: Any) -> None:
        """Cancelled or failed while following: stop and remove the container, unless the
        service is shutting down (then the next start adopts it)."""
        if self._detached:
            self._log(
                build, logging.INFO, "leaving builder container %s running", container.id[:12]
            )
            return
        from aiodocker.exceptions import DockerError

        try:
            self._log(build, logging.INFO, "stopping builder container %s", container.id[:12])
            await container.stop(t=max(1, int(self.kill_grace_period)))
        except (DockerError, OSError, aiohttp_errors()):
            pass
        finally:
            await self._discard(build, container, force=True)

    async def _discard(self, build: Build, container: Any, *, force: bool = False) -> None:
        if not self.remove and not force:
            return
        from aiodocker.exceptions import DockerError

        try:
            await asyncio.shield(container.delete(force=True))
        except DockerError as e:
            if e.status != 404:
                self._log(build, logging.WARNING, "could not remove the builder: %s", e.message)
        except (OSError, aiohttp_errors()) as e:
            self._log(build, logging.WARNING, "could not remove the builder: %s", e)


def aiohttp_errors() -> type[Exception]:
    """aiohttp's base client error (imported late: only container executors need it)."""
    import aiohttp

    return aiohttp.ClientError


def _tar_one(path: str, data: bytes) -> bytes:
    """A tar archive (to extract at ``/``) holding the file ``path`` (mode 0644) and its
    parent directories."""
    import io
    import tarfile

    buf = io.BytesIO()
    parts = path.strip("/").split("/")
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for depth in range(1, len(parts)):
            folder = tarfile.TarInfo("/".join(parts[:depth]))
            folder.type = tarfile.DIRTYPE
            folder.mode = 0o755
            tar.addfile(folder)
        info = tarfile.TarInfo("/".join(parts))
        info.size = len(data)
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _build_from_container(info: Mapping[str, Any]) -> Build | None:
    """Rebuild the build record of a builder container from its labels (None if broken)."""
    from datetime import datetime

    from .model import parse_labels

    labels = (info.get("Config") or {}).get("Labels") or {}
    parsed = parse_labels(labels)
    if parsed is None or not parsed["build_id"]:
        return None
    image = labels.get(LABEL_IMAGE)
    latest = labels.get(LABEL_LATEST_IMAGE)
    owner_slug = labels.get(LABEL_OWNER_SLUG)
    owner = labels.get(LABEL_REQUESTED_BY) or parsed["owner"]
    if not (image and latest and owner_slug and owner and parsed["commit"] and parsed["repo"]):
        return None
    build = Build(
        id=parsed["build_id"],
        owner=owner,
        owner_slug=owner_slug,
        shared=parsed["shared"],
        name=parsed["name"],
        display_name=parsed["display_name"],
        repo=parsed["repo"],
        ref=parsed["ref"],
        commit=parsed["commit"],
        image=image,
        latest_image=latest,
        hints=dict(parsed["hints"]),
        force=labels.get(LABEL_FORCE) == "true",
    )
    for value, attr in (
        (parsed["built_at"], "created"),
        (info.get("State", {}).get("StartedAt"), "started"),
    ):
        if value and not str(value).startswith("0001-"):
            try:
                text = str(value).replace("Z", "+00:00")
                # Docker writes nanoseconds; Python parses up to microseconds
                text = re.sub(r"(\.\d{6})\d+", r"\1", text)
                setattr(build, attr, datetime.fromisoformat(text))
            except ValueError:
                pass
    return build
