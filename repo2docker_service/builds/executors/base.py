"""The executor interface: how one build runs, and the settings every executor shares.

An executor gets a :class:`~repo2docker_service.builds.model.Build` (which already carries
the validated repo URL, the resolved commit and the target image reference) and reports
output lines through ``on_line``. It raises :class:`BuildFailed` when the build fails and
stops all of its work when its task is cancelled. The manager decides what runs and when.

Executors are traitlets ``LoggingConfigurable``: each reads its own settings from the
config (``c.LocalExecutor.*``, ``c.DockerExecutor.*``, or ``c.Executor.*`` for both); the
application only names ``executor_class`` and hands over the wiring (registry and its
login, the instance name, the log).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from traitlets import Bool, Float, Instance, Integer, List, Unicode, default
from traitlets.config import LoggingConfigurable

from ...images.dockerconfig import RegistryCredentials
from ...images.registrylogin import CredentialHelperError, RegistryLogin
from ..model import Build
from .argv import Repo2DockerArgv
from .output import LineCallback

if TYPE_CHECKING:
    from ...sources import GitCredentials

__all__ = ["AdoptedBuild", "BuildFailed", "Executor", "LostBuild", "PathUnicode"]


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
        handle: executor-specific (for the ``DockerExecutor`` the container id).
    """

    build: Build
    handle: Any


@dataclass
class LostBuild:
    """A build whose service died while it ran (found by :meth:`Executor.stop_lost`).

    Attributes:
        image: the ``--image-name`` it was building.
        labels: the image labels it was given (``ImageLabels.parse`` reads them).
    """

    image: str
    labels: dict[str, str]


class PathUnicode(Unicode):  # type: ignore[type-arg]  # traitlets' Unicode is generic
    """A file path trait: a string, or an ``os.PathLike`` stored as its string."""

    def validate(self, obj: Any, value: Any) -> str:
        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        return str(super().validate(obj, value))


class Executor(LoggingConfigurable):
    """Base class of executors: how a build runs.

    Subclasses set :attr:`name` and implement :meth:`build`; :meth:`close` releases
    whatever they hold. Executors whose builds survive a restart of the service set
    :attr:`adoptable` and implement :meth:`detach`, :meth:`adopt` and :meth:`follow`.
    Subclasses that run repo2docker set :attr:`argv` (see :meth:`make_argv`).
    """

    #: shown in ``api/info``
    name: ClassVar[str] = "base"
    #: builds outlive the service: :meth:`adopt` finds them after a restart
    adoptable: ClassVar[bool] = False
    #: the repo2docker command line of this executor's builds (set by subclasses)
    argv: Repo2DockerArgv

    # ------------------------------------------------------------------ config
    repo2docker_config = PathUnicode(
        "",
        help="""A repo2docker config file passed with --config to every build.

        Empty: none. Use it to restrict content providers (e.g. offline hubs) or set
        repo2docker defaults. The bundled `repo2docker_offline_config.py` allows only
        Git and Local sources. A path on the service's host (the DockerExecutor copies
        the file into each builder container).
        """,
    ).tag(config=True)

    repo2docker_extra_args = List(
        Unicode(),
        help="""Extra command-line arguments for every repo2docker run (put before `--`).

        e.g. ['--build-memory-limit', '4G']. Empty: none. Never put secrets here: argv is
        visible in the process list (and in `docker inspect` of builder containers).
        """,
    ).tag(config=True)

    inline_build_cache = Bool(
        True,
        help="""Write BuildKit's inline cache metadata into every image (repo2docker
        `--build-arg BUILDKIT_INLINE_CACHE=1`; a few kB in the image config).

        With it, a rebuild given the environment's previous image (`--cache-from`, always
        passed when that image exists) reuses the unchanged layers also on an engine that
        has only the registry (another host, a fresh builder). False: only the engine
        that built the layers reuses them (its local build cache).
        """,
    ).tag(config=True)

    build_user_id = Integer(
        1000,
        min=1,
        help="User id of the user inside built images (repo2docker --user-id); must be > 0.",
    ).tag(config=True)

    build_user_name = Unicode(
        "jovyan", help="User name inside built images (repo2docker --user-name)."
    ).tag(config=True)

    kill_grace_period = Float(
        5.0,
        help="""Seconds a stopped build gets between SIGTERM and SIGKILL.

        For builder containers the stop timeout (whole seconds, at least 1).
        """,
    )

    max_line_length = Integer(
        64 * 1024,
        help="Longest build output line passed on, in characters; longer ones are cut.",
    )

    # ------------------------------------------------------------------ wiring
    registry = Unicode(
        "",
        help="Registry builds push to, as host[:port]. Empty: none (images stay in the engine).",
    )

    registry_credentials = Instance(
        RegistryCredentials,
        allow_none=True,
        help="""Login for pushes to `registry`.

        None: whatever the docker client has configured (~/.docker/config.json). Ignored
        without a `registry`.
        """,
    )

    registry_login = Instance(
        RegistryLogin,
        allow_none=True,
        help="""Where the login for pushes comes from (a docker config with credential
        helpers, read again when due); overrides `registry_credentials`. None: use
        `registry_credentials`.
        """,
    )

    instance = Unicode(
        "",
        help="""Tells this service's builds apart from other services' on the same engine.

        Executors whose builds outlive the service adopt only their own instance's.
        """,
    )

    @default("log")
    def _default_log(self) -> Any:
        if isinstance(self.parent, LoggingConfigurable):
            return self.parent.log
        return logging.getLogger("repo2docker_service.executor")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not self.registry:
            self.registry_credentials = None
            self.registry_login = None

    async def push_credentials(self) -> RegistryCredentials | None:
        """The login for a push, as it is now (a credential helper runs when it is due).

        Returns:
            The login, or None: the docker client's own configuration decides.

        Raises:
            BuildFailed: the credential helper failed or the docker config is unreadable
                (the reason says which; never the secret).
        """
        if self.registry_login is None:
            return self.registry_credentials
        try:
            return await self.registry_login.get()
        except (CredentialHelperError, ValueError, OSError) as e:
            raise BuildFailed(
                f"cannot read the login for the registry {self.registry}: {e}"
            ) from None

    def make_argv(self, command: Sequence[str], *, config_path: str | None) -> Repo2DockerArgv:
        """The argv builder from this executor's traits.

        Args:
            command: argv prefix that runs repo2docker where the build runs.
            config_path: where repo2docker finds ``repo2docker_config`` (None: no config).

        Raises:
            ValueError: an empty command, ``build_user_id <= 0`` or ``--`` in
                ``repo2docker_extra_args``.
        """
        return Repo2DockerArgv(
            command=tuple(command),
            user_id=int(self.build_user_id),
            user_name=str(self.build_user_name),
            extra_args=tuple(self.repo2docker_extra_args),
            config_path=config_path,
            inline_cache=bool(self.inline_build_cache),
        )

    def command_line(
        self,
        build: Build,
        *,
        push: bool,
        cache_from: Sequence[str],
        labels: Mapping[str, str],
    ) -> list[str]:
        """The repo2docker argv of ``build`` (see :meth:`Repo2DockerArgv.for_build`)."""
        return self.argv.for_build(build, push=push, cache_from=cache_from, labels=labels)

    # ------------------------------------------------------------------ interface
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
            on_line: called with ``("log", {"message": line})`` for each output line, and
                ``("progress", {...})`` when output came without a new line (carriage-return
                frames collapsed by ``OutputParser``): see :data:`.output.LineCallback`.
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

    def _log(self, build: Build, level: int, msg: str, *args: Any) -> None:
        self.log.log(level, "build %s (owner %s): " + msg, build.id, build.owner, *args)
