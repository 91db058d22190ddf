"""The bounded build queue: waiting builds in order, their positions, the workers' wake-up,
the capacity check and the retry estimate of a full queue."""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from collections.abc import Iterator

from ..errors import QueueFull
from .model import Build

__all__ = ["BuildQueue"]


class BuildQueue:
    """Builds waiting for a worker, oldest first.

    Every change renumbers the queue (``Build.set_position``, 1-based, which announces a
    new position with a ``phase`` event).

    Args:
        concurrency: builds running at the same time (the workers).
        max_queue: builds that may wait for a slot.
        log: the logger to use.
    """

    def __init__(self, *, concurrency: int, max_queue: int, log: logging.Logger) -> None:
        self.concurrency = concurrency
        self.max_queue = max_queue
        self.log = log
        self._waiting: deque[Build] = deque()
        self._wakeup = asyncio.Event()
        #: seconds the most recent successful builds took (for :meth:`retry_after`)
        self._durations: deque[float] = deque(maxlen=20)

    def __len__(self) -> int:
        return len(self._waiting)

    def __contains__(self, build: object) -> bool:
        return build in self._waiting

    def __iter__(self) -> Iterator[Build]:
        return iter(self._waiting)

    def append(self, build: Build) -> None:
        """Queue ``build`` last and wake a worker."""
        self._waiting.append(build)
        self._update_positions()
        wakeup, self._wakeup = self._wakeup, asyncio.Event()
        wakeup.set()

    def remove(self, build: Build) -> None:
        """Take ``build`` out of the queue (it must be queued)."""
        self._waiting.remove(build)
        self._update_positions()

    def drain(self) -> list[Build]:
        """Empty the queue; returns the builds that waited, oldest first."""
        builds = list(self._waiting)
        self._waiting.clear()
        return builds

    async def wait_for_build(self) -> None:
        """Return once a build is queued (without taking it)."""
        while not self._waiting:
            wakeup = self._wakeup
            await wakeup.wait()

    async def take(self) -> Build:
        """The oldest queued build, waiting until there is one."""
        await self.wait_for_build()
        build = self._waiting.popleft()
        self._update_positions()
        return build

    def _update_positions(self) -> None:
        for position, build in enumerate(self._waiting, start=1):
            build.set_position(position)

    def check_capacity(self, *, running: int, owner: str) -> None:
        """Refuse one more build when ``concurrency + max_queue`` builds are active.

        Args:
            running: builds running now.
            owner: who asks (for the log).

        Raises:
            QueueFull: the queue is full; ``retry_after`` says when to try again (s).
        """
        active = len(self._waiting) + running
        if active < self.concurrency + self.max_queue:
            return
        retry_after = self.retry_after()
        self.log.warning(
            "owner %s: queue full (%d active builds), retry after %d s",
            owner,
            active,
            retry_after,
        )
        raise QueueFull(
            f"the build queue is full ({self.max_queue} waiting); try again in {retry_after} s",
            retry_after=retry_after,
        )

    def record_duration(self, seconds: float) -> None:
        """Remember how long a successful build took."""
        self._durations.append(seconds)

    def retry_after(self) -> int:
        """Seconds until a slot is likely free: mean recent duration x queue / workers
        (30 before any build succeeded; between 5 and 3600)."""
        if not self._durations:
            return 30
        mean = sum(self._durations) / len(self._durations)
        waiting = len(self._waiting) + 1
        estimate = mean * waiting / self.concurrency
        return int(min(max(math.ceil(estimate), 5), 3600))
