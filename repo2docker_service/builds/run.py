"""Running one build to its end: the executor, the tags, the push, the timeouts.

:class:`BuildRunner` is the manager's worker part. For a build that got a slot (or an
adopted one) it starts the cancellable pipeline (executor, ``latest`` tag, push), watches
``build_timeout`` and ``build_idle_timeout``, tells which terminal state the build ends in,
and undoes what a failed build left in the catalog. It never touches the queue or the store.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ..errors import ServiceError, Unavailable
from ..images.catalog import Catalog
from ..images.reference import PINNED, split_reference
from ..repoid import RepoIdentity
from ..sources.commits import commit_not_found
from .executors import AdoptedBuild, BuildFailed, Executor
from .executors.output import STAGES, LineCallback
from .model import Build, BuildState, EventType
from .recovery import LOST_ERROR

__all__ = ["BuildRunner", "RunningBuild"]


class RunningBuild:
    """Book-keeping of one running build.

    Attributes:
        started: loop time (``loop.time()``, seconds) the build got its slot.
        last_output: loop time of the last output: a line, or collapsed progress frames
            (for the idle timeout).
        task: the pipeline task (cancel it to stop the build).
        previous_latest: image id ``latest`` pointed at before this build moved it (None:
            there was no ``latest``).
        latest_moved: this build has moved ``latest``.
    """

    __slots__ = ("last_output", "latest_moved", "previous_latest", "started", "task")

    def __init__(self, started: float) -> None:
        self.started = started
        self.last_output = started
        self.task: asyncio.Task[None] | None = None
        self.previous_latest: str | None = None
        self.latest_moved = False


class BuildRunner:
    """Runs builds with an executor and a catalog.

    Args:
        executor: runs repo2docker.
        catalog: where images are checked, tagged, pushed and removed.
        registry: ``host[:port]`` pushes go to ("" without a registry), named in errors.
        push: push images (repo2docker ``--push``; then the ``latest`` tag too).
        build_timeout: seconds a build may take in total (0: no limit).
        build_idle_timeout: seconds a build may go without an output line (0: no limit).
        log: the logger to use.
        identity: which repository URLs name one repository (``latest`` never moves to
            another repository's image: see ``names``).
    """

    def __init__(
        self,
        *,
        executor: Executor,
        catalog: Catalog,
        registry: str,
        push: bool,
        build_timeout: float,
        build_idle_timeout: float,
        log: logging.Logger,
        identity: RepoIdentity | None = None,
    ) -> None:
        self.identity = identity or RepoIdentity()
        self.executor = executor
        self.catalog = catalog
        self.registry = registry
        self.push = push
        self.build_timeout = build_timeout
        self.build_idle_timeout = build_idle_timeout
        self.log = log

    # ------------------------------------------------------------------ run and watch
    def start(self, build: Build, run: RunningBuild, *, adopted: AdoptedBuild | None) -> None:
        """Move ``build`` to ``building`` and start its pipeline task (``run.task``)."""
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

    async def watch(self, build: Build, run: RunningBuild) -> str | None:
        """Wait for the pipeline to end; stop it when a timeout passes.

        Returns:
            Why it was stopped (``"timed out after N s"``, ``"no output for N s"``), or
            None when it ended by itself.

        Raises:
            asyncio.CancelledError: when cancelled (the pipeline goes on: see :meth:`stop`).
        """
        assert run.task is not None
        loop = asyncio.get_running_loop()
        while not run.task.done():
            deadline = self._deadline(build, run)
            wait = None if deadline is None else max(0.0, deadline - loop.time())
            await asyncio.wait({run.task}, timeout=wait)
            if run.task.done():
                break
            reason = self._timeout_passed(build, run, loop.time())
            if reason is not None:
                self._log(build, logging.WARNING, "%s: stopping it", reason)
                await self.stop(run)
                return reason
        return None

    def _deadline(self, build: Build, run: RunningBuild) -> float | None:
        """The loop time the nearest timeout passes at (None: no timeout applies)."""
        deadlines = []
        if self.build_timeout:
            deadlines.append(run.started + self.build_timeout)
        if self.build_idle_timeout and build.state is BuildState.BUILDING:
            deadlines.append(run.last_output + self.build_idle_timeout)
        return min(deadlines) if deadlines else None

    def _timeout_passed(self, build: Build, run: RunningBuild, now: float) -> str | None:
        """The reason to stop the build at loop time ``now``, or None."""
        if self.build_timeout and now >= run.started + self.build_timeout:
            return f"timed out after {self.build_timeout:g} s"
        if (
            self.build_idle_timeout
            and build.state is BuildState.BUILDING
            and now >= run.last_output + self.build_idle_timeout
        ):
            return f"no output for {self.build_idle_timeout:g} s"
        return None

    async def stop(self, run: RunningBuild) -> None:
        """Cancel the pipeline and wait until it has ended."""
        assert run.task is not None
        run.task.cancel()
        await asyncio.wait({run.task})

    # ------------------------------------------------------------------ pipeline
    async def _pipeline(
        self, build: Build, run: RunningBuild, *, adopted: AdoptedBuild | None = None
    ) -> None:
        """Everything after the build got a slot: executor, tags, push (the cancellable unit).

        With ``push`` repo2docker pushes the commit tag itself (``--push``); then the
        ``latest`` tag is set (in the registry, for a registry catalog) and pushed.
        """
        loop = asyncio.get_running_loop()

        def on_line(kind: str, data: dict[str, Any]) -> None:
            # a progress report ("progress": frames collapsed, no new line) is output too
            run.last_output = loop.time()
            if kind == EventType.LOG.value and not build.terminal:
                line: dict[str, Any] = {"message": str(data.get("message", ""))}
                if data.get("stage") in STAGES:
                    line["stage"] = data["stage"]
                build.add_event(EventType.LOG, line)

        replaced: str | None = None
        if adopted is not None:
            await self.executor.follow(adopted, on_line=on_line)
        else:
            cache_from = await self._cache_from(build)
            replaced = await self._clear_forced(build)
            run.last_output = loop.time()
            await self._execute(build, on_line=on_line, cache_from=cache_from)
        # the credentials are not needed any more (the clone is done)
        build.credentials = None
        if not await self.catalog.exists(build.image):
            where = "the registry" if self.push else "the Docker engine"
            raise BuildFailed(
                f"repo2docker finished but {build.image} is not in {where} "
                "(is the buildx builder one that does not load or push images?)"
            )
        await self._tag_latest(build, run, replaced=replaced)

    async def _cache_from(self, build: Build) -> list[str]:
        """The build cache: the ``latest`` image of the environment, when it exists."""
        try:
            return [build.latest_image] if await self.catalog.exists(build.latest_image) else []
        except Unavailable as e:
            self._log(build, logging.WARNING, "no build cache from the catalog: %s", e)
            return []

    async def _clear_forced(self, build: Build) -> str | None:
        """For a forced build without push: remove the old commit tag.

        repo2docker skips the build ("Reusing existing image") when the image name exists
        locally; without ``--push`` a forced rebuild needs the old tag gone.

        Returns:
            The image id the tag pointed at (to remove once replaced), or None.
        """
        if not build.force or self.push:
            return None
        replaced = await self.catalog.image_id(build.image)
        if await self.catalog.remove_tag(build.image):
            self._log(build, logging.INFO, "force: removed the old %s", build.image)
        return replaced

    async def _execute(self, build: Build, *, on_line: LineCallback, cache_from: list[str]) -> None:
        """Run the executor; a failed push names the registry in the reason."""
        try:
            await self.executor.build(
                build,
                on_line=on_line,
                push=self.push,
                cache_from=cache_from,
                labels=build.image_labels().to_labels(),
                credentials=build.credentials,
            )
        except BuildFailed as e:
            if build.commit in e.reason and ("reset" in e.reason or "check out" in e.reason):
                # repo2docker could not check the commit out: the clone does not have it
                raise BuildFailed(commit_not_found(build.repo, build.commit).message) from None
            if self.push and self.registry and self.registry in e.reason:
                raise BuildFailed(
                    f"pushing to the registry {self.registry} failed (is it running, and does "
                    f"it accept the service's login?): {e.reason}"
                ) from None
            raise

    async def _tag_latest(self, build: Build, run: RunningBuild, *, replaced: str | None) -> None:
        """Point ``latest`` at the new image (and push it), drop a replaced image.

        Never over another repository's environment: the name check before queueing can
        be skipped (the catalog was unavailable), so it is asked again here.
        """
        held = await self._latest_repo(build)
        if held is not None and not self.identity.same(held, build.repo):
            whose = "the shared environment" if build.shared else "your environment"
            raise BuildFailed(
                f"the name {build.name!r} is taken: {whose} {build.name!r} is built from "
                f"{held}, and stays as it was. Build {build.repo} again with another name."
            )
        if await self._pinned(build):
            return
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

    async def _pinned(self, build: Build) -> bool:
        """Whether the environment's ``latest`` is pinned (rolled back): then the build
        keeps its commit tag and ``latest`` stays (``images/lifecycle.py``)."""
        repository, _ = split_reference(build.latest_image)
        if not await self.catalog.exists(f"{repository}:{PINNED}"):
            return False
        message = (
            f"latest is pinned (rolled back), so it stays where it is; this build is "
            f"{build.image}. Unpin it (POST api/images/.../latest with tag null) to follow builds."
        )
        build.add_event(EventType.LOG, {"message": message})
        self._log(build, logging.INFO, "latest is pinned; not moved to %s", build.image)
        await self.catalog.refresh(build.image)  # no tag of ours follows to announce it
        return True

    # ------------------------------------------------------------------ end
    def outcome(
        self, build: Build, run: RunningBuild, *, timeout_reason: str | None, stopping: bool
    ) -> tuple[BuildState, str | None, bool]:
        """The terminal state of a build whose pipeline has ended.

        Args:
            build: the build.
            run: its book-keeping (``run.task`` is done).
            timeout_reason: why :meth:`watch` stopped it, or None.
            stopping: the manager is shutting down.

        Returns:
            ``(state, error, stopping)``; ``stopping`` is also True when the pipeline was
            cancelled without a timeout or a cancel request (the service is stopping):
            then the build is ``lost``, as one a killed service left (an adoptable
            executor's build goes on instead: see ``Workers``).
        """
        assert run.task is not None and run.task.done()
        task = run.task
        if task.cancelled():
            if timeout_reason:
                return BuildState.FAILED, timeout_reason, stopping
            if build.cancel_requested:
                return BuildState.CANCELLED, "cancelled", stopping
            return BuildState.LOST, LOST_ERROR, True
        exc = task.exception()
        if exc is None:
            return BuildState.BUILT, None, stopping
        if isinstance(exc, BuildFailed):
            return BuildState.FAILED, exc.reason, stopping
        if isinstance(exc, ServiceError):
            return BuildState.FAILED, exc.message, stopping
        self.log.error("build %s (owner %s): unexpected error", build.id, build.owner, exc_info=exc)
        return BuildState.FAILED, f"internal error: {type(exc).__name__}", stopping

    async def remove_partial(self, build: Build, run: RunningBuild, *, quick: bool) -> None:
        """Undo what a failed build left: its commit tag, and a ``latest`` it moved (put
        back on the previous image, or removed if there was none).

        Args:
            quick: the service is stopping: give up after 5 s instead of 60 s.
        """
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

    async def _latest_repo(self, build: Build) -> str | None:
        """The repository the environment's ``latest`` is built from (None: none or unknown)."""
        try:
            info = await self.catalog.image_info(build.latest_image)
        except Unavailable:
            return None  # the push needs the registry anyway
        return info.repo if info is not None else None

    def _log(self, build: Build, level: int, msg: str, *args: Any) -> None:
        self.log.log(level, "build %s (owner %s): " + msg, build.id, build.owner, *args)
