"""Per-user rate limiting of build requests (a sliding window, in memory).

A request over the limit raises :class:`RateLimited` (429)
with ``Retry-After`` set to the seconds until the oldest counted request leaves the window.
Cache hits count too: the limit protects ``git ls-remote`` and the engine from floods.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

from .errors import QueueFull


class RateLimited(QueueFull):
    """Too many build requests from one user in the window."""


class RateLimiter:
    """Allow at most ``limit`` events per ``period`` seconds per key.

    Args:
        limit: events allowed per window; 0 disables limiting.
        period: window length in seconds.
        clock: monotonic clock (patch it in tests).
    """

    def __init__(
        self, *, limit: int, period: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.period = period
        self.clock = clock
        self._events: dict[str, deque[float]] = {}

    def check(self, key: str) -> None:
        """Count one event for ``key``.

        Raises:
            RateLimited: when ``key`` already had ``limit`` events in the last ``period`` s.
        """
        if self.limit <= 0:
            return
        now = self.clock()
        events = self._events.setdefault(key, deque())
        while events and events[0] <= now - self.period:
            events.popleft()
        if len(events) >= self.limit:
            retry = max(1, math.ceil(events[0] + self.period - now))
            raise RateLimited(
                f"Too many build requests: at most {self.limit} per {self.period:g} s. "
                f"Try again in {retry} s.",
                retry_after=retry,
            )
        events.append(now)
        if len(self._events) > 10_000:  # forget idle users so memory stays bounded
            for k in [k for k, v in self._events.items() if not v or v[-1] <= now - self.period]:
                del self._events[k]
