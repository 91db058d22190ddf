"""The build manager: cache check, joining identical builds, a bounded queue, workers,
timeouts and cancellation.

A build is a task owned by the manager, never by a request: viewers only follow its events
(``Build.follow``), and a viewer going away changes nothing.

Flow of :meth:`BuildManager.submit`::

    validate input -> resolve ref -> image reference -> cached? -> join active? -> queue

Workers (``concurrency`` of them) take queued builds in order and run them with the
executor, enforcing ``build_timeout`` (total) and ``build_idle_timeout`` (no output line).
On success the commit-tagged image gets the ``latest`` tag of its ``(owner, name)``
(and with ``push`` both are pushed). A failed or cancelled build leaves no image under its
commit tag.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from .. import sources
from ..errors import (
    Conflict,
    InvalidInput,
    NotFound,
    QueueFull,
    ServiceError,
    Unavailable,
    UpstreamError,
)
from ..images.naming import SHARED_OWNER, ImageNamer, commit_tag, derive_name, escape_owner
from ..images.naming import validate_name as validate_image_name
from ..metrics import request_result
from ..store import BuildStore
from .executors import AdoptedBuild, BuildFailed, Executor, LostBuild
from .model import (
    ACTIVE_STATES,
    Build,
    BuildRequest,
    BuildState,
    EventType,
    image_labels,
    parse_labels,
    validate_display_name,
    validate_hints,
)

if TYPE_CHECKING:
    from ..images.catalog import Catalog, ImageInfo
    from ..sources import GitCredentials

__all__ = ["BuildManager", "Resolver", "SubmitResult"]

_LATEST = "latest"


class Resolver(Protocol):
    """``resolve_ref``'s signature (see :func:`repo2docker_service.sources.resolve_ref`)."""

    def __call__(
        self,
        repo: str,
        ref: str,
        *,
        credentials: GitCredentials | None = None,
        timeout: float = 30,
    ) -> Awaitable[str]: ...


@dataclass
class SubmitResult:
    """What :meth:`BuildManager.submit` did.

    Attributes:
        build: the new or joined build; None when the image already existed.
        image: the existing image (only when ``cached``).
        cached: the image for that commit already existed; nothing was built.
        joined: an identical build (same image reference) was already queued or running;
            ``build`` is that build.
    """

    build: Build | None
    image: ImageInfo | None
    cached: bool = False
    joined: bool = False

    def to_dict(self) -> dict[str, Any]:
        """``{"cached": bool, "joined": bool, "build": Build.to_dict() | None,
        "image": ImageInfo.to_dict() | None}``."""
        return {
            "cached": self.cached,
            "joined": self.joined,
            "build": self.build.to_dict() if self.build else None,
            "image": self.image.to_dict() if self.image else None,
        }


class _Run:
    """Book-keeping of one running build (internal)."""

    __slots__ = ("last_output", "latest_moved", "previous_latest", "task")

    def __init__(self, last_output: float) -> None:
        self.last_output = last_output
        self.task: asyncio.Task[None] | None = None
        #: image id ``latest`` pointed at before this build moved it (None: no latest)
        self.previous_latest: str | None = None
        self.latest_moved = False


class BuildManager:
    """Accepts build requests and runs them.

    Args:
        executor: runs one build (:class:`~repo2docker_service.builds.executors.Executor`).
        catalog: where images are checked, tagged and removed.
        namer: makes image references.
        store: keeps build records (and logs) for listing.
        resolver: ``resolve_ref(repo, ref, *, credentials, timeout) -> sha``.
        allowed_repo_schemes: URL schemes accepted for repositories.
        allowed_repo_hosts: host names accepted for repositories (empty: any host).
        concurrency: builds running at the same time (>= 1).
        max_queue: builds that may wait for a slot (>= 0). Requests beyond
            ``concurrency + max_queue`` active builds get ``QueueFull``.
        build_timeout: seconds a build may take in total (0: no limit).
        build_idle_timeout: seconds a build may go without an output line (0: no limit).
        push: push images (repo2docker ``--push``; then the ``latest`` tag too).
        log_limit_bytes: log bytes kept per build (see ``Build``).
        resolve_timeout: seconds for resolving a ref with git.
        cancel_wait: seconds :meth:`cancel` waits for a running build to stop.
        metrics: a :class:`~repo2docker_service.metrics.ServiceMetrics` to report requests
            and ended builds to, or None.
        log: the logger to use.

    Raises:
        ValueError: for a concurrency below 1 or negative limits.
    """

    def __init__(
        self,
        *,
        executor: Executor,
        catalog: Catalog,
        namer: ImageNamer,
        store: BuildStore,
        resolver: Resolver = sources.resolve_ref,
        allowed_repo_schemes: Iterable[str] = ("https",),
        allowed_repo_hosts: Iterable[str] = (),
        concurrency: int = 1,
        max_queue: int = 20,
        build_timeout: float = 3600,
        build_idle_timeout: float = 600,
        push: bool = False,
        log_limit_bytes: int = 2 * 1024 * 1024,
        resolve_timeout: float = 30,
        cancel_wait: float = 30,
        metrics: Any = None,
        log: logging.Logger | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        if max_queue < 0 or build_timeout < 0 or build_idle_timeout < 0:
            raise ValueError("max_queue and timeouts must be >= 0")
        self.executor = executor
        self.catalog = catalog
        self.namer = namer
        self.store = store
        self.resolver = resolver
        self.allowed_repo_schemes = tuple(allowed_repo_schemes)
        self.allowed_repo_hosts = tuple(allowed_repo_hosts)
        self.concurrency = concurrency
        self.max_queue = max_queue
        self.build_timeout = build_timeout
        self.build_idle_timeout = build_idle_timeout
        self.push = push
        self.log_limit_bytes = log_limit_bytes
        self.resolve_timeout = resolve_timeout
        self.cancel_wait = cancel_wait
        self.metrics = metrics
        self.log = log or logging.getLogger("repo2docker_service.builds")
        self._queue: deque[Build] = deque()
        self._runs: dict[str, _Run] = {}
        self._workers: list[asyncio.Task[None]] = []
        self._adopted: set[asyncio.Task[None]] = set()
        self._wakeup = asyncio.Event()
        self._durations: deque[float] = deque(maxlen=20)
        self._stopping = False

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Start the worker tasks (idempotent)."""
        if self._workers:
            return
        self._stopping = False
        self._workers = [
            asyncio.create_task(self._worker(n), name=f"build-worker-{n}")
            for n in range(self.concurrency)
        ]
        self.log.info(
            "build manager started: %d workers, queue %d, executor %s",
            self.concurrency,
            self.max_queue,
            self.executor.name,
        )

    async def stop(self) -> None:
        """Cancel queued and running builds (their processes are killed) and the workers.

        The executor and catalog stay open; whoever created them closes them.
        """
        self._stopping = True
        if self.executor.adoptable:
            # builder containers keep running; the next start adopts them (recover())
            self.executor.detach()
        while self._queue:
            build = self._queue.popleft()
            build.set_state(BuildState.CANCELLED, error="the service is shutting down")
        tasks = [run.task for run in self._runs.values() if run.task is not None]
        for task in tasks:
            task.cancel()
        for task in (*self._workers, *self._adopted):
            task.cancel()
        await asyncio.gather(*self._workers, *self._adopted, *tasks, return_exceptions=True)
        self._workers = []
        self._adopted = set()
        self.log.info("build manager stopped")

    async def recover(self) -> int:
        """Adopt builds that outlived a restart, then report what the catalog holds.

        Images are the durable state and the store starts empty. On a clean stop the
        :class:`~repo2docker_service.builds.executors.LocalExecutor`'s builds are
        cancelled; after a crash its repo2docker processes outlive the service, so they
        are found here (``executor.stop_lost``), stopped, and recorded as ``lost`` (their
        images are never tagged ``latest``). An executor whose builds survive restarts
        (``executor.adoptable``, the
        :class:`~repo2docker_service.builds.executors.DockerExecutor`) hands them back
        here: each becomes a ``building`` record again (its log replayed from the
        start), is followed to its end and then finished as usual (tags, push).
        Adopted builds run besides the ``concurrency`` workers.

        Returns:
            How many environments the catalog lists.

        Raises:
            UpstreamError: the catalog cannot be read (adopted builds are followed anyway).
        """
        if self.executor.adoptable:
            for adopted in await self.executor.adopt():
                build = adopted.build
                if self.store.get(build.id) is not None:
                    continue
                self._store_add(build)
                task = asyncio.create_task(
                    self._run(build, adopted=adopted), name=f"adopted-{build.id}"
                )
                self._adopted.add(task)
                task.add_done_callback(self._adopted.discard)
                self._log(build, logging.INFO, "adopted running build of %s", build.image)
        for lost in await self.executor.stop_lost(
            accept=lambda ref: self.namer.parse(ref) is not None
        ):
            build = self._lost_record(lost)
            if build is not None and self.store.get(build.id) is None:
                self._store_add(build)
                self._log(build, logging.WARNING, "reported as lost: %s", build.image)
        images = await self.catalog.list_images()
        owners = {(i.shared, i.owner) for i in images}
        self.log.info(
            "catalog %s has %d environments of %d owners",
            self.catalog.name,
            len(images),
            len(owners),
        )
        return len(images)

    def _lost_record(self, lost: LostBuild) -> Build | None:
        """A ``lost`` build record for a build a dead earlier run of the service left."""
        parsed = parse_labels(lost.labels)
        where = self.namer.parse(lost.image)
        if parsed is None or where is None or not parsed["build_id"]:
            return None
        owner_slug, name = where
        build = Build(
            id=parsed["build_id"],
            owner=parsed["owner"],
            owner_slug=owner_slug,
            shared=parsed["shared"],
            name=name,
            display_name=parsed["display_name"],
            repo=parsed["repo"],
            ref=parsed["ref"],
            commit=parsed["commit"],
            image=lost.image,
            latest_image=self.namer.reference(owner_slug=owner_slug, name=name, tag="latest"),
            hints=dict(parsed["hints"]),
        )
        build.set_state(
            BuildState.LOST,
            error="the service stopped while this build was running; it was stopped. "
            "Start the build again.",
        )
        return build

    # ------------------------------------------------------------------ queries
    def get(self, build_id: str) -> Build | None:
        """The build with that id, or None."""
        return self.store.get(build_id)

    def list(self, *, owner: str | None = None, include_shared: bool = False) -> list[Build]:
        """Stored builds, oldest first (see ``BuildStore.list``)."""
        return self.store.list(owner=owner, include_shared=include_shared)

    def status(self) -> dict[str, Any]:
        """Limits and load, for ``api/info``.

        Returns:
            ``{"executor", "concurrency", "max_queue", "queued", "running",
            "build_timeout", "build_idle_timeout", "push"}``.
        """
        return {
            "executor": self.executor.name,
            "concurrency": self.concurrency,
            "max_queue": self.max_queue,
            "queued": len(self._queue),
            "running": len(self._runs),
            "build_timeout": self.build_timeout,
            "build_idle_timeout": self.build_idle_timeout,
            "push": self.push,
        }

    # ------------------------------------------------------------------ submit
    async def submit(self, req: BuildRequest) -> SubmitResult:
        """Start a build, or answer with the existing image or the identical build.

        Args:
            req: the request; ``req.owner`` must already be authorized by the caller
                (including ``shared``, which needs admin). Its ``credentials`` are handed
                to the build (if one is queued) and cleared from ``req`` in every case.
                When the catalog is unavailable (registry down) the cache check is skipped
                and the build is queued.

        Returns:
            :class:`SubmitResult`: ``cached`` with the image; ``joined`` with the active
            identical build (also for ``force`` requests); else the new queued build.

        Raises:
            InvalidInput: malformed repo, ref, name, display name or hints (nothing queued).
            SourceError: the repository or ref cannot be read.
            QueueFull: ``concurrency + max_queue`` builds are already active.
            UpstreamError: the catalog cannot be read, or the manager is stopping.
        """
        try:
            result = await self._submit(req)
        except Exception as e:
            if self.metrics is not None:
                self.metrics.request(request_result(e))
            raise
        finally:
            # the build (if any) holds them now; the request must not keep a copy
            req.credentials = None
        if self.metrics is not None:
            self.metrics.request(request_result(None, cached=result.cached, joined=result.joined))
        return result

    def _store_add(self, build: Build) -> None:
        self.store.add(build)
        if self.metrics is not None:
            self.metrics.build_added(build)

    async def _submit(self, req: BuildRequest) -> SubmitResult:
        if self._stopping:
            raise UpstreamError("the build service is shutting down; try again shortly")
        repo = sources.validate_repo_url(
            req.repo,
            allowed_schemes=self.allowed_repo_schemes,
            allowed_hosts=self.allowed_repo_hosts,
        )
        ref = sources.validate_ref(req.ref or "HEAD")
        name = validate_image_name(req.name) if req.name else derive_name(repo)
        display_name = validate_display_name(req.display_name, default=name)
        hints = validate_hints(req.hints)
        if req.shared:
            owner_slug = SHARED_OWNER
        else:
            try:
                owner_slug = escape_owner(req.owner)
            except (TypeError, ValueError) as e:
                raise InvalidInput(f"cannot build for this user: {e}") from None
        try:
            latest_image = self.namer.reference(owner_slug=owner_slug, name=name, tag=_LATEST)
        except ValueError as e:
            raise InvalidInput(f"image name not possible: {e}") from None

        commit = await self.resolver(
            repo, ref, credentials=req.credentials, timeout=self.resolve_timeout
        )
        image = self.namer.reference(owner_slug=owner_slug, name=name, tag=commit_tag(commit))

        if not req.force:
            try:
                info = await self.catalog.image_info(image)
            except Unavailable as e:
                # the build checks again when it pushes; it can wait for the registry
                self.log.warning("owner %s: cache check of %s skipped: %s", req.owner, image, e)
                info = None
            if info is not None:
                self.log.info("owner %s: %s exists, nothing to build", req.owner, image)
                return SubmitResult(build=None, image=info, cached=True)

        # no await from here on: the join check and enqueueing are atomic
        existing = self._active_build(image)
        if existing is not None:
            self._log(existing, logging.INFO, "identical request from %s joined", req.owner)
            return SubmitResult(build=existing, image=None, joined=True)
        if self._stopping:
            raise UpstreamError("the build service is shutting down; try again shortly")
        active = len(self._queue) + len(self._runs)
        if active >= self.concurrency + self.max_queue:
            retry_after = self._retry_after()
            self.log.warning(
                "owner %s: queue full (%d active builds), retry after %d s",
                req.owner,
                active,
                retry_after,
            )
            raise QueueFull(
                f"the build queue is full ({self.max_queue} waiting); try again in {retry_after} s",
                retry_after=retry_after,
            )
        build = Build(
            owner=req.owner,
            owner_slug=owner_slug,
            shared=req.shared,
            name=name,
            display_name=display_name,
            repo=repo,
            ref=ref,
            commit=commit,
            image=image,
            latest_image=latest_image,
            hints=hints,
            force=req.force,
            log_limit_bytes=self.log_limit_bytes,
            credentials=req.credentials,
        )
        self._store_add(build)
        build.add_event(
            EventType.PHASE,
            {"phase": BuildState.QUEUED.value, "position": None, "message": f"Queued {image}"},
        )
        self._queue.append(build)
        self._update_positions()
        self._wake_workers()
        self._log(build, logging.INFO, "queued %s (%s at %s)", image, repo, ref)
        return SubmitResult(build=build, image=None)

    def _active_build(self, image: str) -> Build | None:
        for build in self._queue:
            if build.image == image:
                return build
        for build_id in self._runs:
            build = self.store.get(build_id)
            if build is not None and build.image == image and build.state in ACTIVE_STATES:
                return build
        return None

    def _retry_after(self) -> int:
        """Seconds until a slot is likely free: mean recent duration x queue / workers."""
        if not self._durations:
            return 30
        mean = sum(self._durations) / len(self._durations)
        waiting = len(self._queue) + 1
        estimate = mean * waiting / self.concurrency
        return int(min(max(math.ceil(estimate), 5), 3600))

    def _update_positions(self) -> None:
        for position, build in enumerate(self._queue, start=1):
            build.set_position(position)

    def _wake_workers(self) -> None:
        wakeup, self._wakeup = self._wakeup, asyncio.Event()
        wakeup.set()

    # ------------------------------------------------------------------ cancel
    async def cancel(self, build_id: str) -> Build:
        """Cancel a build.

        A queued build leaves the queue at once. A running build's executor task is
        cancelled (its process group is killed); this waits up to ``cancel_wait`` seconds
        for it to end.

        Args:
            build_id: the build's id.

        Returns:
            The build (normally ``cancelled`` by then).

        Raises:
            NotFound: no such build.
            Conflict: the build has already ended.
        """
        build = self.store.get(build_id)
        if build is None:
            raise NotFound(f"no build {build_id}")
        if build.terminal:
            raise Conflict(f"build {build_id} has already ended ({build.state.value})")
        build.cancel_requested = True
        if build in self._queue:
            self._queue.remove(build)
            build.set_state(BuildState.CANCELLED, message="Cancelled", error="cancelled")
            self._update_positions()
            self.store.prune()
            self._log(build, logging.INFO, "cancelled while queued")
            return build
        run = self._runs.get(build.id)
        if run is not None and run.task is not None:
            self._log(build, logging.INFO, "cancelling")
            run.task.cancel()
        try:
            await asyncio.wait_for(asyncio.shield(build.wait()), self.cancel_wait)
        except TimeoutError:
            self._log(build, logging.WARNING, "still stopping after %.0f s", self.cancel_wait)
        return build

    # ------------------------------------------------------------------ workers
    async def _worker(self, number: int) -> None:
        while True:
            while not self._queue:
                wakeup = self._wakeup
                await wakeup.wait()
            build = self._queue.popleft()
            self._update_positions()
            try:
                await self._run(build)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug must not kill the worker
                self.log.exception(
                    "build %s (owner %s): worker %d crashed", build.id, build.owner, number
                )
                self._runs.pop(build.id, None)
                if not build.terminal:
                    build.set_state(BuildState.FAILED, error="internal error (see service log)")

    async def _run(self, build: Build, *, adopted: AdoptedBuild | None = None) -> None:
        """Run one build to a terminal state (the worker's part; or follow an adopted one)."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        run = _Run(last_output=started)
        self._runs[build.id] = run
        if adopted is None:
            build.set_state(BuildState.BUILDING, message=f"Building {build.image}")
            self._log(build, logging.INFO, "building %s", build.image)
        else:
            build.set_state(
                BuildState.BUILDING,
                message=f"Building {build.image} (followed again after a service restart)",
            )
        run.task = asyncio.create_task(
            self._pipeline(build, run, adopted=adopted), name=f"build-{build.id}"
        )
        timeout_reason: str | None = None
        try:
            while not run.task.done():
                now = loop.time()
                deadlines = []
                if self.build_timeout:
                    deadlines.append(started + self.build_timeout)
                if self.build_idle_timeout and build.state is BuildState.BUILDING:
                    deadlines.append(run.last_output + self.build_idle_timeout)
                wait = max(0.0, min(deadlines) - now) if deadlines else None
                await asyncio.wait({run.task}, timeout=wait)
                if run.task.done():
                    break
                now = loop.time()
                if self.build_timeout and now >= started + self.build_timeout:
                    timeout_reason = f"timed out after {self.build_timeout:g} s"
                elif (
                    self.build_idle_timeout
                    and build.state is BuildState.BUILDING
                    and now >= run.last_output + self.build_idle_timeout
                ):
                    timeout_reason = f"no output for {self.build_idle_timeout:g} s"
                else:
                    continue
                self._log(build, logging.WARNING, "%s: stopping it", timeout_reason)
                run.task.cancel()
                await asyncio.wait({run.task})
        except asyncio.CancelledError:
            # the manager is stopping: stop the build, then end it
            run.task.cancel()
            await asyncio.wait({run.task})
            await self._finish(build, run, started, stopping=True)
            raise
        await self._finish(build, run, started, timeout_reason=timeout_reason)

    async def _pipeline(
        self, build: Build, run: _Run, *, adopted: AdoptedBuild | None = None
    ) -> None:
        """Everything after the build got a slot: executor, tags, push (the cancellable unit).

        With ``push`` repo2docker pushes the commit tag itself (``--push``); then the
        ``latest`` tag is set (in the registry, for a registry catalog) and pushed.
        """
        loop = asyncio.get_running_loop()

        def on_line(kind: str, data: dict[str, Any]) -> None:
            run.last_output = loop.time()
            if not build.terminal:
                build.add_event(EventType.LOG, {"message": str(data.get("message", ""))})

        replaced: str | None = None
        if adopted is not None:
            await self.executor.follow(adopted, on_line=on_line)
        else:
            try:
                cache_from = (
                    [build.latest_image] if await self.catalog.exists(build.latest_image) else []
                )
            except Unavailable as e:
                self._log(build, logging.WARNING, "no build cache from the catalog: %s", e)
                cache_from = []
            if build.force and not self.push:
                # repo2docker skips the build ("Reusing existing image") when the image name
                # exists locally; without --push a forced rebuild needs the old tag gone
                replaced = await self.catalog.image_id(build.image)
                if await self.catalog.remove_tag(build.image):
                    self._log(build, logging.INFO, "force: removed the old %s", build.image)
            run.last_output = loop.time()
            try:
                await self.executor.build(
                    build,
                    on_line=on_line,
                    push=self.push,
                    cache_from=cache_from,
                    labels=image_labels(build),
                    credentials=build.credentials,
                )
            except BuildFailed as e:
                registry = self.namer.registry
                if self.push and registry and registry in e.reason:
                    raise BuildFailed(
                        f"pushing to the registry {registry} failed (is it running, and does "
                        f"it accept the service's login?): {e.reason}"
                    ) from None
                raise
        # the credentials are not needed any more (the clone is done)
        build.credentials = None
        if not await self.catalog.exists(build.image):
            where = "the registry" if self.push else "the Docker engine"
            raise BuildFailed(
                f"repo2docker finished but {build.image} is not in {where} "
                "(is the buildx builder one that does not load or push images?)"
            )
        if self.push:
            build.set_state(BuildState.PUSHING, message=f"Pushing {build.latest_image}")
            self._log(build, logging.INFO, "pushing %s", build.latest_image)
        run.previous_latest = await self.catalog.image_id(build.latest_image)
        run.latest_moved = True
        await self.catalog.tag(build.image, build.latest_image)
        if replaced is not None and await self.catalog.remove_if_untagged(replaced):
            self._log(build, logging.INFO, "force: removed the replaced image %s", replaced)
        if self.push:
            await self.catalog.push(build.latest_image)

    async def _finish(
        self,
        build: Build,
        run: _Run,
        started: float,
        *,
        timeout_reason: str | None = None,
        stopping: bool = False,
    ) -> None:
        """Give the build its terminal state and clean up after failures."""
        assert run.task is not None
        task = run.task
        state, error = BuildState.BUILT, None
        if task.cancelled():
            if timeout_reason:
                state, error = BuildState.FAILED, timeout_reason
            elif build.cancel_requested:
                state, error = BuildState.CANCELLED, "cancelled"
            else:
                state, error = BuildState.CANCELLED, "the service is shutting down"
                stopping = True
        else:
            exc = task.exception()
            if isinstance(exc, BuildFailed):
                state, error = BuildState.FAILED, exc.reason
            elif isinstance(exc, ServiceError):
                state, error = BuildState.FAILED, exc.message
            elif exc is not None:
                self.log.error(
                    "build %s (owner %s): unexpected error",
                    build.id,
                    build.owner,
                    exc_info=exc,
                )
                state, error = BuildState.FAILED, f"internal error: {type(exc).__name__}"
        if state is not BuildState.BUILT and not (stopping and self.executor.adoptable):
            # (an adoptable executor's build goes on; the next start finishes it)
            await self._remove_partial(build, run, quick=stopping)
        self._runs.pop(build.id, None)
        if state is BuildState.BUILT:
            self._durations.append(asyncio.get_running_loop().time() - started)
            build.set_state(state, message=f"Built {build.image}")
            self._log(build, logging.INFO, "built %s", build.image)
        else:
            build.set_state(state, message=error or state.value, error=error)
            self._log(build, logging.INFO, "%s: %s", state.value, error)
        self.store.prune()

    async def _remove_partial(self, build: Build, run: _Run, *, quick: bool) -> None:
        """Undo what a failed build left: its commit tag, and a ``latest`` it moved (put
        back on the previous image, or removed if there was none)."""
        try:
            async with asyncio.timeout(5 if quick else 60):
                if run.latest_moved:
                    if run.previous_latest is not None:
                        await self.catalog.tag(run.previous_latest, build.latest_image)
                    else:
                        await self.catalog.remove_tag(build.latest_image)
                    self._log(build, logging.INFO, "restored %s", build.latest_image)
                info = await self.catalog.image_info(build.image)
                if info is not None and info.build_id and info.build_id != build.id:
                    return  # an earlier build's image under the same tag: not ours to remove
                if await self.catalog.remove_tag(build.image):
                    self._log(build, logging.INFO, "removed %s left by the build", build.image)
        except (ServiceError, TimeoutError) as e:
            self._log(build, logging.WARNING, "could not clean up %s: %s", build.image, e)

    def _log(self, build: Build, level: int, msg: str, *args: Any) -> None:
        self.log.log(level, "build %s (owner %s): " + msg, build.id, build.owner, *args)
