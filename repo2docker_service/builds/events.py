"""Build events: what viewers of a build receive (``phase``, ``log``, ``done``), each with its id.

See :mod:`.model` for when each is added. Ids are strictly increasing per build, starting at 1;
a build adopted after a restart continues the ids the previous run of the service gave
(:meth:`~.model.Build.continue_ids`), so a viewer resuming with ``Last-Event-ID`` neither
misses nor repeats a line.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

__all__ = ["Event", "EventType", "keepalive_sse", "unnumbered_sse"]


class EventType(StrEnum):
    """The three kinds of build events (the SSE ``event:`` field)."""

    PHASE = "phase"
    LOG = "log"
    DONE = "done"


# ---------------------------------------------------------------------------- events
@dataclass(frozen=True)
class Event:
    """One build event.

    Attributes:
        id: strictly increasing per build, from 1 (the SSE id clients resume from).
        type: ``phase``, ``log`` or ``done`` (see :class:`EventType`).
        data: JSON-ready payload.
    """

    id: int
    type: str
    data: dict[str, Any]

    def to_sse(self) -> str:
        """The event as one Server-Sent Events message.

        Serialized once per event, however many viewers follow the build.

        Returns:
            ``"id: N\\nevent: TYPE\\ndata: JSON\\n\\n"`` (the JSON is on one line).
        """
        return self._sse

    @functools.cached_property
    def _sse(self) -> str:
        payload = json.dumps(self.data, separators=(",", ":"), ensure_ascii=False)
        return f"id: {self.id}\nevent: {self.type}\ndata: {payload}\n\n"

    def to_dict(self) -> dict[str, Any]:
        """``{"id": int, "type": str, "data": dict}``."""
        return {"id": self.id, "type": self.type, "data": self.data}


def unnumbered_sse(type: str | EventType, data: dict[str, Any]) -> str:
    """An SSE message without an ``id`` field: a note that is no event of the build.

    Clients keep their last event id (the SSE ``id`` field is absent), so resuming later
    repeats and skips nothing. Used to tell a viewer why its stream ends early.

    Returns:
        ``"event: TYPE\ndata: JSON\n\n"``.
    """
    payload = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return f"event: {EventType(type).value}\ndata: {payload}\n\n"


def keepalive_sse(interval: float) -> str:
    """A ``keepalive`` SSE message (no ``id``: the viewer's Last-Event-ID stays put).

    Sent on a quiet stream every ``interval`` seconds. A named event rather than an SSE
    comment, because a browser's EventSource hides comments from the page, which could then
    not tell a quiet build from a stalled connection (the page reconnects after 3 intervals
    of silence). Clients listening only for ``phase``/``log``/``done`` never see it
    (an EventSource dispatches a named event only to listeners of that name).

    Returns:
        ``"event: keepalive\ndata: {"interval": seconds}\n\n"``.
    """
    return f'event: keepalive\ndata: {{"interval":{interval:g}}}\n\n'
