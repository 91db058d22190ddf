"""The worker pool: runs queued builds, one task each, to a terminal state.

:class:`Workers` owns what runs: the ``concurrency`` worker tasks that take builds from the
:class:`~.queue.BuildQueue` in order, the builds adopted after a restart (followed besides the
workers), and the :class:`~.run.RunningBuild` of each running build. The
:class:`~.manager.BuildManager` decides what to queue and answers requests; this module only
runs, ends and stops builds.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from .executors import AdoptedBuild, Executor
from .gate import PartsGate
from .model import ACTIVE_STATES, Build, BuildState, EventType
from .observer import Observers
from .queue import BuildQueue
from .run import BuildRunner, RunningBuild
from .store import BuildStore

__all__ = ["RESTARTING", "Workers", "log_build"]

#: why the viewers of a build that outlives the service lose their stream
RESTARTING = (
    "The service is restarting; this build goes on and is followed again when it is back: "
    "reconnect to see the rest."
)


def log_build(log: logging.Logger, build: Build, level: int, msg: str, *args: Any) -> None:
    """Log ``msg % args`` about ``build``, prefixed with its id and owner."""
    log.log(level, "build %s (owner %s): " + msg, build.id, build.owner, *args)


class Workers:
    """Runs builds: worker tasks for queued ones, follower tasks for adopted ones.

    Args:
        runner: runs one build with the executor (timeouts, tagging, clean-up).
        queue: where queued builds wait, in order.
        store: the build records (pruned after each ended build).
        observers: told about every ended build.
        executor: the executor (``adoptable`` decides what a stop leaves running).
        concurrency: worker tasks, i.e. builds running at once (>= 1).
        log: the logger.
        gate: whether the parts builds need answer (None: builds always run); see
            :mod:`.gate` for what ``fail`` and ``queue`` do.
    """

    def __init__(
        self,
        *,
        runner: BuildRunner,
        queue: BuildQueue,
        store: BuildStore,
        observers: Observers,
        executor: Executor,
        concurrency: int,
        log: logging.Logger,
        gate: PartsGate | None = None,
    ) -> None:
        self.runner = runner
        self.gate = gate
        self.queue = queue
        self.store = store
        self.observers = observers
        self.executor = executor
        self.concurrency = concurrency
        self.log = log
        #: build id -> the running build (worker-run and adopted ones)
        self.runs: dict[str, RunningBuild] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._adopted: set[asyncio.Task[None]] = set()

    @property
    def started(self) -> bool:
        """Whether the worker tasks exist."""
        return bool(self._tasks)

    def start(self) -> None:
        """Create the worker tasks."""
        self._tasks = [
            asyncio.create_task(self._work(n), name=f"build-worker-{n}")
            for n in range(self.concurrency)
        ]

    async def stop(self) -> None:
        """Cancel queued builds, stop running ones (or leave adoptable ones running), and
        end every task."""
        if self.executor.adoptable:
            # builder containers keep running; the next start adopts them (recover())
            self.executor.detach()
        for build in self.queue.drain():
            self.end(build, BuildState.CANCELLED, error="the service is shutting down")
        tasks = [run.task for run in self.runs.values() if run.task is not None]
        for task in tasks:
            task.cancel()
        for task in (*self._tasks, *self._adopted):
            task.cancel()
        await asyncio.gather(*self._tasks, *self._adopted, *tasks, return_exceptions=True)
        self._tasks = []
        self._adopted = set()

    def follow_adopted(self, adopted: AdoptedBuild) -> None:
        """Store an adopted build (unless known) and follow it to its end in a task."""
        build = adopted.build
        if self.store.get(build.id) is not None:
            return
        self.store.add(build)
        task = asyncio.create_task(self._run(build, adopted=adopted), name=f"adopted-{build.id}")
        self._adopted.add(task)
        task.add_done_callback(self._adopted.discard)
        log_build(self.log, build, logging.INFO, "adopted running build of %s", build.image)

    def active_build(self, image: str, *, latest: bool = False) -> Build | None:
        """The queued or running build into ``image`` (its ``latest`` reference, with
        ``latest``), or None."""
        running = [self.store.get(build_id) for build_id in self.runs]
        candidates: list[Build | None] = [*self.queue, *running]
        for build in candidates:
            if build is not None and build.state in ACTIVE_STATES:
                if (build.latest_image if latest else build.image) == image:
                    return build
        return None

    def cancel_running(self, build: Build) -> bool:
        """Cancel the task running ``build`` (its process group is killed).

        Returns:
            Whether a running task was found.
        """
        run = self.runs.get(build.id)
        if run is None or run.task is None:
            return False
        run.task.cancel()
        return True

    def end(
        self, build: Build, state: BuildState, *, message: str = "", error: str | None = None
    ) -> None:
        """Move ``build`` to the terminal ``state`` and tell the observers."""
        build.set_state(state, message=message, error=error)
        self.observers.ended(build)

    async def _work(self, number: int) -> None:
        while True:
            await self.queue.wait_for_build()
            if self.gate is not None and self.gate.when_down == "queue":
                await self._wait_for_parts()  # the builds stay queued meanwhile
            if not len(self.queue):
                continue  # another worker took it: wait (and ask the gate) again
            build = await self.queue.take()  # at once: no waiting past the gate
            try:
                if await self._refused(build):
                    continue
                await self._run(build)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug must not kill the worker
                self.log.exception(
                    "build %s (owner %s): worker %d crashed", build.id, build.owner, number
                )
                self.runs.pop(build.id, None)
                if not build.terminal:
                    self.end(build, BuildState.FAILED, error="internal error (see service log)")

    async def _wait_for_parts(self) -> None:
        """Wait until the parts builds need answer, telling the queued builds why they wait."""
        assert self.gate is not None
        told: str | None = None
        while (reason := await self.gate.blocking()) is not None:
            if reason != told:
                self.log.warning("builds wait in the queue: %s", reason)
                for build in self.queue:
                    build.add_event(
                        EventType.PHASE,
                        {"phase": build.state.value, "message": f"Waiting: {reason}"},
                    )
                told = reason
            await asyncio.sleep(1.0)

    async def _refused(self, build: Build) -> bool:
        """With ``fail``: end ``build`` as failed, saying why, when a part it needs is down.

        Returns:
            Whether it was refused.
        """
        if self.gate is None or self.gate.when_down != "fail":
            return False
        reason = await self.gate.blocking()
        if reason is None:
            return False
        self.end(build, BuildState.FAILED, message=reason, error=f"cannot build now: {reason}")
        log_build(self.log, build, logging.WARNING, "failed before starting: %s", reason)
        self.store.prune()
        return True

    async def _run(self, build: Build, *, adopted: AdoptedBuild | None = None) -> None:
        """Run one build to a terminal state (the worker's part; or follow an adopted one)."""
        run = RunningBuild(started=asyncio.get_running_loop().time())
        self.runs[build.id] = run
        self.runner.start(build, run, adopted=adopted)
        try:
            timeout_reason = await self.runner.watch(build, run)
        except asyncio.CancelledError:
            # the manager is stopping: stop the build, then end it
            await self.runner.stop(run)
            await self._finish(build, run, stopping=True)
            raise
        await self._finish(build, run, timeout_reason=timeout_reason)

    async def _finish(
        self,
        build: Build,
        run: RunningBuild,
        *,
        timeout_reason: str | None = None,
        stopping: bool = False,
    ) -> None:
        """Give the build its terminal state and clean up after failures."""
        state, error, stopping = self.runner.outcome(
            build, run, timeout_reason=timeout_reason, stopping=stopping
        )
        if stopping and self.executor.adoptable and state is BuildState.LOST:
            # the build goes on in the engine and the next start adopts it: it has not
            # ended, so its viewers' streams end without a done event (they resume then)
            self.runs.pop(build.id, None)
            build.detach(RESTARTING)
            log_build(self.log, build, logging.INFO, "left running for the next start")
            return
        if state is not BuildState.BUILT:
            await self.runner.remove_partial(build, run, quick=stopping)
        self.runs.pop(build.id, None)
        if state is BuildState.FAILED and self.gate is not None and not stopping:
            # a part that went down mid-build is the reason, whatever repo2docker said
            reason = await self.gate.blocking(fresh=True)
            error = f"{error}; {reason}" if reason else error
        if state is BuildState.BUILT:
            self.queue.record_duration(asyncio.get_running_loop().time() - run.started)
            self.end(build, state, message=f"Built {build.image}")
            log_build(self.log, build, logging.INFO, "built %s", build.image)
        else:
            self.end(build, state, message=error or state.value, error=error)
            log_build(self.log, build, logging.INFO, "%s: %s", state.value, error)
        self.store.prune()
