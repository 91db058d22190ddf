"""What builds do while a part they need (the Docker engine, the registry) is down.

The build manager asks a :class:`PartsGate` (the service's readiness checks, see
``repo2docker_service.readiness``) before queueing a build and before a worker starts one:

- ``fail``: a request is refused at once (503) with what is down and since when; a queued
  build whose turn comes while the part is down fails with that reason.
- ``queue``: requests are queued as usual and the workers wait, builds staying in the
  queue (cancellable, their position shown), until the part answers again.

A build that was running when the part went down fails; its error then names the part.
"""

from __future__ import annotations

from typing import Literal, Protocol

__all__ = ["WHEN_DOWN", "PartsGate", "WhenDown"]

#: the choices of ``builds_when_down``
WhenDown = Literal["fail", "queue"]
WHEN_DOWN: tuple[WhenDown, ...] = ("fail", "queue")


class PartsGate(Protocol):
    """Tells whether the parts builds need answer (cheap: answers are cached briefly)."""

    @property
    def when_down(self) -> WhenDown:
        """What builds do while a part is down (see the module docstring)."""
        ...

    async def blocking(self, *, fresh: bool = False) -> str | None:
        """What keeps builds from running now, or None when every part they need answers.

        Args:
            fresh: check again now instead of using an answer a second or two old.

        Returns:
            One line naming the part that is down, since when, and what to check; None.
        """
        ...
