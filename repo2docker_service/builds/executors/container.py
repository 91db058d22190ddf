"""DockerExecutor: repo2docker in a builder container in the Docker engine.

The container's parts that need no engine (its labels, its ``POST /containers/create``
body, the secrets it reads on stdin, the record rebuilt from its labels) are in
:mod:`.builder`; this module runs and follows the containers.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiodocker
import aiohttp
from aiodocker.containers import DockerContainer
from aiodocker.exceptions import DockerError
from traitlets import Bool, Dict, Float, List, TraitError, Unicode, default, validate

from ...sizes import SizeError, normalize_memory, parse_memory
from ..model import Build, EventType
from .base import AdoptedBuild, BuildFailed, Executor, LostBuild
from .builder import (
    BUILDER_CONFIG_PATH,
    LABEL_BUILDER,
    LABEL_INSTANCE,
    BuilderSpec,
    build_from_container,
    secrets_payload,
    tar_one,
)
from .exits import exit_cause
from .output import LineCallback, OutputParser

if TYPE_CHECKING:
    from ...sources import GitCredentials

__all__ = ["DockerExecutor"]

#: what a broken connection to the engine raises
_CONNECTION_ERRORS = (OSError, aiohttp.ClientError)


class DockerExecutor(Executor):
    """Runs repo2docker inside a builder container in the Docker engine.

    For each build a container of ``builder_image`` runs ``repo2docker --no-run
    --json-logs ...`` (the same command line as the ``LocalExecutor``, from the same
    :class:`~.argv.Repo2DockerArgv`, with the builder's command and config path) against
    the same engine: the engine's socket is mounted into the container (``DOCKER_HOST`` of
    ``unix://`` form, the default ``/var/run/docker.sock``), or ``DOCKER_HOST``
    (``tcp://``) is passed on. The container uses ``builder_network`` (default ``host``, so
    loopback git servers, registries and engines are reachable), CPU and memory limits if
    set, and is labelled with the build (id, owner, image, repo, ...). The repo2docker
    config file, if any, is copied into it before it starts (this works with remote
    engines too).

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
    ``--build-memory-limit`` / a buildx builder of its own). A builder the kernel kills
    for memory says nothing itself: the engine's ``State.OOMKilled`` and the exit status
    (137) do, and the build fails with "ran out of memory (limit 64M)" in its state and
    log (:func:`.exits.exit_cause`).

    Raises:
        ValueError: (when created) an empty ``builder_image``, an engine that is neither
            ``unix://`` nor ``tcp://``, a ``builder_memory_limit`` that is not a size, or
            a bad repo2docker setting (see :class:`~.argv.Repo2DockerArgv`).
    """

    name = "docker"
    adoptable = True

    builder_image = Unicode(
        "quay.io/jupyterhub/repo2docker:main",
        help="""Image that runs repo2docker for the DockerExecutor.

        It needs repo2docker, git, sh, base64 and the docker CLI with the buildx plugin
        (the upstream repo2docker image has them; pin a version tag). It must be in the
        engine: it is never pulled by the service. Must not be empty.
        """,
    ).tag(config=True)

    builder_repo2docker_command = List(
        Unicode(),
        default_value=["repo2docker"],
        help="Command that runs repo2docker inside `builder_image`, as a list; not empty.",
    ).tag(config=True)

    builder_network = Unicode(
        "host",
        help="""Network of builder containers: host, bridge or a network name.

        host (default) lets builds reach git servers and registries on the engine host's
        loopback addresses.
        """,
    ).tag(config=True)

    builder_cpu_limit = Float(
        0,
        min=0,
        help="""CPUs of each builder container (a number of CPUs). 0: no limit.

        This limits repo2docker, git and the docker client; the image build itself runs
        in the engine's BuildKit.
        """,
    ).tag(config=True)

    builder_memory_limit = Unicode(
        "",
        help="""Memory of each builder container: a size with a unit ('512M', '2G', '2GB',
        '2 GiB'; powers of 1024) or a whole number of bytes, at least 64M, as for
        `Repo2DockerService.default_memory_limit`. Empty or '0': no limit. Anything else
        stops the service at start-up.
        """,
    ).tag(config=True)

    @validate("builder_memory_limit")
    def _validate_builder_memory_limit(self, proposal: dict[str, Any]) -> str:
        try:
            return normalize_memory(proposal["value"], what="builder_memory_limit") or ""
        except SizeError as e:
            raise TraitError(str(e)) from None

    builder_env = Dict(
        value_trait=Unicode(),
        help="""Extra environment variables of builder containers, e.g. proxies or
        BUILDX_BUILDER. Empty: none. Never secrets: `docker inspect` shows them.
        """,
    ).tag(config=True)

    docker_host = Unicode(
        help="""The engine builder containers run in: unix:///... or tcp://...

        Default: $DOCKER_HOST when the executor is created, else
        unix:///var/run/docker.sock. TLS engines are not supported for the builder's own
        connection.
        """,
    )

    @default("docker_host")
    def _default_docker_host(self) -> str:
        return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"

    remove = Bool(True, help="Remove builder containers once their build was followed.")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not self.builder_image:
            raise ValueError("builder_image must be set for the DockerExecutor")
        if not self.docker_host.startswith(("unix://", "tcp://", "http://")):
            raise ValueError(
                f"DockerExecutor supports unix:// and tcp:// engines, not {self.docker_host}"
            )
        self.argv = self.make_argv(
            self.builder_repo2docker_command,
            config_path=BUILDER_CONFIG_PATH if self.repo2docker_config else None,
        )
        self.spec = BuilderSpec(
            image=self.builder_image,
            docker_host=self.docker_host,
            network=self.builder_network,
            cpu_limit=float(self.builder_cpu_limit or 0),
            memory_limit=parse_memory(self.builder_memory_limit),
            env=dict(self.builder_env),
            instance=self.instance,
        )
        self._docker: aiodocker.Docker | None = None
        self._detached = False

    def __repr__(self) -> str:
        return (
            f"DockerExecutor(builder_image={self.builder_image!r}, "
            f"docker_host={self.docker_host!r})"
        )

    # ------------------------------------------------------------------ engine
    def _client(self) -> aiodocker.Docker:
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
    def container_labels(self, build: Build, labels: Mapping[str, str]) -> dict[str, str]:
        """Labels of the builder container (see :meth:`BuilderSpec.labels`)."""
        return self.spec.labels(build, labels)

    def container_config(
        self,
        build: Build,
        *,
        argv: Sequence[str],
        labels: Mapping[str, str],
        credentials: GitCredentials | None,
        secrets_on_stdin: bool,
    ) -> dict[str, Any]:
        """The ``POST /containers/create`` body of one build (see
        :meth:`BuilderSpec.create_body`; no secret in it)."""
        return self.spec.create_body(
            build,
            argv=argv,
            labels=labels,
            credentials=credentials,
            secrets_on_stdin=secrets_on_stdin,
        )

    async def _secrets(self, *, push: bool, credentials: GitCredentials | None) -> bytes | None:
        """The stdin payload (None when there is nothing secret to hand over).

        Raises:
            BuildFailed: the registry login could not be read.
        """
        login = await self.push_credentials() if push else None
        return secrets_payload(registry=self.registry, login=login, credentials=credentials)

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
        argv = self.command_line(build, push=push, cache_from=cache_from, labels=labels)
        secrets = await self._secrets(push=push, credentials=credentials)
        config = self.container_config(
            build,
            argv=argv,
            labels=labels,
            credentials=credentials,
            secrets_on_stdin=secrets is not None,
        )
        container = await self._create(build, config)
        try:
            await self._start(container, secrets)
            del secrets
            await self._follow_container(build, container, on_line)
        except BaseException:
            await self._abandon(build, container)
            raise
        await self._discard(build, container)

    async def _create(self, build: Build, config: dict[str, Any]) -> DockerContainer:
        """Create the builder container of ``build`` (not started yet).

        Raises:
            BuildFailed: the builder image is missing or the engine refused or is away.
        """
        try:
            container = await self._client().containers.create(
                config=config, name=f"r2ds-build-{build.id[:16]}"
            )
        except DockerError as e:
            if e.status == 404:
                raise BuildFailed(
                    f"builder image {self.builder_image} is not in the Docker engine "
                    f"({self.docker_host}): pull or build it first"
                ) from None
            raise BuildFailed(f"could not create the builder container: {e.message}") from None
        except _CONNECTION_ERRORS as e:
            raise BuildFailed(
                f"cannot reach the Docker engine at {self.docker_host}: {e}"
            ) from None
        self._log(build, logging.INFO, "builder container %s created", container.id[:12])
        return container

    async def _start(self, container: DockerContainer, secrets: bytes | None) -> None:
        """Copy the repo2docker config file in, start the container, hand over the secrets.

        Raises:
            BuildFailed: the engine refused or went away.
        """
        try:
            if self.repo2docker_config:
                content = await asyncio.to_thread(Path(self.repo2docker_config).read_bytes)
                archive = tar_one(BUILDER_CONFIG_PATH, content)
                # aiodocker leaves put_archive without annotations
                await container.put_archive("/", archive)  # type: ignore[no-untyped-call]
            if secrets is not None:
                stream = container.attach(stdin=True)
                async with stream:
                    await container.start()
                    await stream.write_in(secrets)
            else:
                await container.start()
        except DockerError as e:
            raise BuildFailed(f"could not start the builder container: {e.message}") from None
        except _CONNECTION_ERRORS as e:
            raise BuildFailed(
                f"lost the connection to the Docker engine at {self.docker_host}: {e}"
            ) from None

    async def adopt(self) -> list[AdoptedBuild]:
        """Builder containers of this ``instance`` left by an earlier run of the service.

        Returns:
            One :class:`AdoptedBuild` (handle: container id) per container whose labels
            describe a build; containers with broken labels are logged and left alone.
        """
        try:
            containers = await self._client().containers.list(
                all=True,
                filters={"label": [f"{LABEL_BUILDER}=true", f"{LABEL_INSTANCE}={self.instance}"]},
            )
        except (DockerError, *_CONNECTION_ERRORS) as e:
            self.log.error("cannot list builder containers at %s: %s", self.docker_host, e)
            return []
        found = []
        for container in containers:
            try:
                info = await container.show()
            except DockerError:
                continue
            build = build_from_container(info)
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

    async def _follow_container(
        self, build: Build, container: DockerContainer, on_line: LineCallback
    ) -> None:
        parser = OutputParser(on_line, max_line_length=self.max_line_length)
        try:
            async for chunk in container.log(stdout=True, stderr=True, follow=True):
                parser.feed_text(chunk)
            parser.close()
            result = await container.wait()
        except (DockerError, *_CONNECTION_ERRORS) as e:
            lost = (
                f"lost the builder container: {e.message}"
                if isinstance(e, DockerError)
                else f"lost the connection to the Docker engine at {self.docker_host}: {e}"
            )
            # the engine may still say why (a container killed for memory stops talking)
            cause = await self._exit_cause(container, None)
            if cause:
                self._report(build, on_line, cause)
                raise BuildFailed(f"{cause} ({lost})") from None
            raise BuildFailed(lost) from None
        returncode = int(result.get("StatusCode", -1))
        self._log(build, logging.INFO, "builder container exited with status %d", returncode)
        cause = await self._exit_cause(container, returncode)
        if cause:
            self._report(build, on_line, cause)
        if returncode != 0:
            raise BuildFailed(parser.reason(returncode, cause=cause))

    async def _exit_cause(self, container: DockerContainer, returncode: int | None) -> str | None:
        """What the engine says about the builder's end: out of memory (``State.OOMKilled``),
        a signal (exit status 128 + N); None for an ordinary exit or when it cannot tell.

        Args:
            returncode: the exit status ``wait`` gave; None to take the engine's (only once
                the container has exited).
        """
        try:
            state = (await container.show()).get("State") or {}
        except (DockerError, *_CONNECTION_ERRORS):
            state = {}
        if returncode is None:
            if state.get("Running", True):
                return None
            returncode = int(state.get("ExitCode", 0))
        return exit_cause(
            returncode,
            who="repo2docker in the builder container",
            oom_killed=bool(state.get("OOMKilled")),
            memory_limit=self.spec.memory_limit,
        )

    def _report(self, build: Build, on_line: LineCallback, cause: str) -> None:
        """Say ``cause`` in the service's log and in the build's, with what to change."""
        self._log(build, logging.WARNING, "%s", cause)
        hint = ""
        if "memory" in cause and self.spec.memory_limit:
            hint = " (an administrator can raise DockerExecutor.builder_memory_limit)"
        on_line(EventType.LOG.value, {"message": cause + hint})

    async def _abandon(self, build: Build, container: DockerContainer) -> None:
        """Cancelled or failed while following: stop and remove the container, unless the
        service is shutting down (then the next start adopts it)."""
        if self._detached:
            self._log(
                build, logging.INFO, "leaving builder container %s running", container.id[:12]
            )
            return
        try:
            self._log(build, logging.INFO, "stopping builder container %s", container.id[:12])
            await container.stop(t=max(1, int(self.kill_grace_period)))
        except (DockerError, *_CONNECTION_ERRORS):
            pass
        finally:
            await self._discard(build, container, force=True)

    async def _discard(
        self, build: Build, container: DockerContainer, *, force: bool = False
    ) -> None:
        if not self.remove and not force:
            return
        try:
            await asyncio.shield(container.delete(force=True))
        except DockerError as e:
            if e.status != 404:
                self._log(build, logging.WARNING, "could not remove the builder: %s", e.message)
        except _CONNECTION_ERRORS as e:
            self._log(build, logging.WARNING, "could not remove the builder: %s", e)
