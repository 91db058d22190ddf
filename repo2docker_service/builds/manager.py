"""The build manager: cache check, joining identical builds, a bounded queue, workers,
timeouts and cancellation.

A build is a task owned by the manager, never by a request: viewers only follow its events
(``Build.follow``), and a viewer going away changes nothing.

Flow of :meth:`BuildManager.submit`::

    validate input -> resolve ref -> image reference -> cached? -> join active? -> queue

Workers (``concurrency`` of them) take queued builds in order and run them with the
executor (:class:`~.run.BuildRunner`), enforcing ``build_timeout`` (total) and
``build_idle_timeout`` (no output line). On success the commit-tagged image gets the
``latest`` tag of its ``(owner, name)`` (and with ``push`` both are pushed). A failed or
cancelled build leaves no image under its commit tag.

Observers (:class:`~.observer.BuildObserver`, e.g. the metrics) are told about every
answered request and every ended build.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from ..errors import Conflict, NotFound, Unavailable, UpstreamError
from ..images.catalog import Catalog
from ..images.naming import ImageNamer
from ..repoid import RepoIdentity
from ..sources import resolve_ref
from .executors import Executor
from .gate import PartsGate
from .model import Build, BuildState, EventType
from .names import name_taken
from .observer import BuildObserver, Observers
from .preview import Previewer
from .queue import BuildQueue
from .recovery import LOST_ERROR, lost_record
from .request import BuildRequest, Preview, Resolver, SubmitResult
from .run import BuildRunner, RunningBuild
from .store import BuildStore
from .workers import Workers, log_build

__all__ = ["BuildManager"]


class BuildManager:
    """Accepts build requests and runs them.

    Args:
        executor: runs one build (:class:`~repo2docker_service.builds.executors.Executor`).
        catalog: where images are checked, tagged and removed.
        namer: makes image references.
        store: keeps build records (and logs) for listing; it observes ended builds too
            (with a database, it writes them there).
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
        observers: told about answered requests and ended builds (see
            :meth:`add_observer`).
        repo_identity: which repository URLs name the same repository.
        machine_profiles: slugs of the machine profiles a ``profile`` hint may name.
        commit_checker: ``check_commit(repo, sha, *, credentials, timeout)``, asked before a
            full SHA (taken as it is) is built; None: not asked (the build finds out).
        gate: whether the parts builds need (engine, registry) answer, and what builds do
            while one is down (:mod:`.gate`); None: builds always run.
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
        resolver: Resolver = resolve_ref,
        allowed_repo_schemes: Iterable[str] = ("https",),
        allowed_repo_hosts: Iterable[str] = (),
        concurrency: int = 1,
        max_queue: int = 20,
        build_timeout: float = 3600,
        build_idle_timeout: float = 300,
        push: bool = False,
        log_limit_bytes: int = 2 * 1024 * 1024,
        resolve_timeout: float = 30,
        cancel_wait: float = 30,
        observers: Iterable[BuildObserver] = (),
        repo_identity: RepoIdentity | None = None,
        machine_profiles: Iterable[str] = (),
        commit_checker: Callable[..., Awaitable[bool]] | None = None,
        gate: PartsGate | None = None,
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
        self.max_queue, self.log_limit_bytes = max_queue, log_limit_bytes
        self.resolve_timeout = resolve_timeout
        self.cancel_wait = cancel_wait
        self.repo_identity = repo_identity or RepoIdentity()
        self.machine_profiles = tuple(machine_profiles)
        self.commit_checker = commit_checker
        self.gate = gate
        self.log = log or logging.getLogger("repo2docker_service.builds")
        self.runner = self._make_runner(push, build_timeout, build_idle_timeout)
        self.previewer = self._make_previewer()
        self._observers = Observers([*observers, store], self.log)
        self._queue = BuildQueue(concurrency=concurrency, max_queue=max_queue, log=self.log)
        self._workers = Workers(
            runner=self.runner,
            queue=self._queue,
            store=self.store,
            observers=self._observers,
            executor=self.executor,
            concurrency=concurrency,
            log=self.log,
            gate=gate,
        )
        self._stopping = False

    def _make_runner(self, push: bool, timeout: float, idle_timeout: float) -> BuildRunner:
        return BuildRunner(
            executor=self.executor,
            catalog=self.catalog,
            registry=self.namer.registry,
            push=push,
            build_timeout=timeout,
            build_idle_timeout=idle_timeout,
            log=self.log,
            identity=self.repo_identity,
        )

    def _make_previewer(self) -> Previewer:
        return Previewer(
            namer=self.namer,
            catalog=self.catalog,
            resolver=self.resolver,
            identity=self.repo_identity,
            allowed_schemes=self.allowed_repo_schemes,
            allowed_hosts=self.allowed_repo_hosts,
            resolve_timeout=self.resolve_timeout,
            active_latest=self._active_latest,
            machine_profiles=self.machine_profiles,
            commit_checker=self.commit_checker,
            log=self.log,
        )

    @property
    def push(self) -> bool:
        """Whether builds push their images."""
        return self.runner.push

    @property
    def build_timeout(self) -> float:
        """Seconds a build may take in total (0: no limit)."""
        return self.runner.build_timeout

    @property
    def build_idle_timeout(self) -> float:
        """Seconds a build may go without an output line (0: no limit)."""
        return self.runner.build_idle_timeout

    def add_observer(self, observer: BuildObserver) -> None:
        """Tell ``observer`` about every answered request and ended build from now on."""
        self._observers.add(observer)

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Start the worker tasks (idempotent)."""
        if self._workers.started:
            return
        self._stopping = False
        self._workers.start()
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
        await self._workers.stop()
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
        Adopted builds run besides the ``concurrency`` workers. With a database
        (``db_url``) the history is read back then (:meth:`BuildStore.restore`); builds
        it has as running that nothing adopted or found are recorded as ``lost``.

        Returns:
            How many environments the catalog lists.

        Raises:
            UpstreamError: the catalog cannot be read (adopted builds are followed anyway).
        """
        if self.executor.adoptable:
            for adopted in await self.executor.adopt():
                self._workers.follow_adopted(adopted)
        for lost in await self.executor.stop_lost(
            accept=lambda ref: self.namer.parse(ref) is not None
        ):
            record = lost_record(lost, self.namer)
            if record is not None and self.store.get(record.id) is None:
                self.store.add(record)
                self._observers.ended(record)
                self._log(record, logging.WARNING, "reported as lost: %s", record.image)
        for build in await self.store.restore():
            # running when the earlier run stopped, and neither adopted nor found: lost;
            # a lost build tags no image (repo2docker may have finished it meanwhile)
            await self.runner.remove_partial(build, RunningBuild(0.0), quick=False)
            self._end(build, BuildState.LOST, message=LOST_ERROR, error=LOST_ERROR)
            self._log(build, logging.WARNING, "reported as lost (history): %s", build.image)
        images = await self.catalog.list_images()
        owners = {(i.shared, i.owner) for i in images}
        self.log.info(
            "catalog %s has %d environments of %d owners",
            self.catalog.name,
            len(images),
            len(owners),
        )
        return len(images)

    # ------------------------------------------------------------------ queries
    def get(self, build_id: str) -> Build | None:
        """The build with that id, or None."""
        return self.store.get(build_id)

    def list(self, *, owner: str | None = None, include_shared: bool = False) -> list[Build]:
        """Stored builds, oldest first (see ``BuildStore.list``)."""
        return self.store.list(owner=owner, include_shared=include_shared)

    def dismiss(self, build_id: str) -> Build:
        """Forget an ended build's record and log; never an image (see
        :meth:`BuildStore.dismiss`).

        Raises:
            NotFound: no such build.
            Conflict: the build is still queued or running (cancel it first).
        """
        return self.store.dismiss(build_id)

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
            "running": len(self._workers.runs),
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
            Unavailable: a part builds need is down and builds fail while it is (the
                gate's ``fail``); the message names it.
            UpstreamError: the catalog cannot be read, or the manager is stopping.
        """
        try:
            result = await self._submit(req)
        except Exception as e:
            self._observers.answered(None, e)
            raise
        finally:
            # the build (if any) holds them now; the request must not keep a copy
            req.credentials = None
        self._observers.answered(result, None)
        return result

    async def preview(self, req: BuildRequest) -> Preview:
        """What :meth:`submit` would build, without queueing anything (nor clearing
        ``req.credentials``): see :class:`~.preview.Previewer`. Raises as :meth:`submit`."""
        self._check_running()
        return await self.previewer.preview(req)

    async def _submit(self, req: BuildRequest) -> SubmitResult:
        plan = await self.preview(req)
        if plan.existing is not None:
            return SubmitResult(build=None, image=plan.existing, cached=True)
        checked, commit, image = plan.checked, plan.commit, plan.image
        await self._check_parts()

        # no await from here on: the join check and enqueueing are atomic
        existing = self._active_build(image)
        if existing is not None:
            self._log(existing, logging.INFO, "identical request from %s joined", req.owner)
            return SubmitResult(build=existing, image=None, joined=True)
        rival = self._active_build(checked.latest_image, latest=True)
        if rival is not None and not self.repo_identity.same(rival.repo, checked.repo):
            raise name_taken(checked, rival.repo)  # queued meanwhile by another request
        self._check_running()
        self._queue.check_capacity(running=len(self._workers.runs), owner=req.owner)
        build = checked.new_build(
            commit=commit,
            image=image,
            force=req.force,
            log_limit_bytes=self.log_limit_bytes,
            credentials=req.credentials,
        )
        self._enqueue(build)
        return SubmitResult(build=build, image=None)

    async def _check_parts(self) -> None:
        """With ``builds_when_down = "fail"``: refuse while a part builds need is down."""
        if self.gate is None or self.gate.when_down != "fail":
            return
        reason = await self.gate.blocking()
        if reason is not None:
            raise Unavailable(f"Cannot build now: {reason}")

    def _check_running(self) -> None:
        if self._stopping:
            raise UpstreamError("the build service is shutting down; try again shortly")

    def _enqueue(self, build: Build) -> None:
        self.store.add(build)
        build.add_event(
            EventType.PHASE,
            {
                "phase": BuildState.QUEUED.value,
                "position": None,
                "message": f"Queued {build.image}",
            },
        )
        self._queue.append(build)
        self._log(build, logging.INFO, "queued %s (%s at %s)", build.image, build.repo, build.ref)

    def _active_latest(self, latest_image: str) -> Build | None:
        return self._active_build(latest_image, latest=True)

    def _active_build(self, image: str, *, latest: bool = False) -> Build | None:
        return self._workers.active_build(image, latest=latest)

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
            self._end(build, BuildState.CANCELLED, message="Cancelled", error="cancelled")
            self.store.prune()
            self._log(build, logging.INFO, "cancelled while queued")
            return build
        if self._workers.cancel_running(build):
            self._log(build, logging.INFO, "cancelling")
        try:
            await asyncio.wait_for(asyncio.shield(build.wait()), self.cancel_wait)
        except TimeoutError:
            self._log(build, logging.WARNING, "still stopping after %.0f s", self.cancel_wait)
        return build

    def _end(
        self, build: Build, state: BuildState, *, message: str = "", error: str | None = None
    ) -> None:
        self._workers.end(build, state, message=message, error=error)

    def _log(self, build: Build, level: int, msg: str, *args: Any) -> None:
        log_build(self.log, build, level, msg, *args)
