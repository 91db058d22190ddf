"""The build record, its states and events: defined here only.

Everything else (manager, executors, catalog, handlers, UI) imports these names; nothing
else spells a state or an event type. (The labels a build writes on its image are
:class:`~repo2docker_service.images.labels.ImageLabels`: :meth:`Build.image_labels`.)

States::

    queued -> building -> [pushing ->] built
    queued | building | pushing -> failed | cancelled
    lost: the build's worker disappeared (reserved for executors that can find builds
          interrupted by a restart; the local executor cannot, see BuildManager.recover)

Events (each with an id that is strictly increasing per build, starting at 1):

- ``phase``: a state change or a new queue position,
  ``{"phase": state, "message": str, "position": int | None}``
- ``log``: one line of build output, ``{"message": str}``, plus ``"stage"`` (``fetching``,
  ``building`` or ``pushing``) when repo2docker named the step the line belongs to
- ``done``: the final record, ``Build.to_dict()``; always the last event of a build.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from ..images.labels import ImageLabels
from .events import Event, EventType

if TYPE_CHECKING:
    from ..sources import GitCredentials

__all__ = [
    "ACTIVE_STATES",
    "TERMINAL_STATES",
    "Build",
    "BuildState",
    "Event",
    "EventType",
    "isoformat",
    "utcnow",
]


def utcnow() -> datetime:
    """The current time, timezone-aware UTC (the one clock builds use; patch it in tests)."""
    return datetime.now(UTC)


def isoformat(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with a ``Z`` suffix (``2026-11-23T08:56:00.123456Z``), or None."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


class BuildState(StrEnum):
    """Where a build is in its lifecycle (the values are what the API shows)."""

    QUEUED = "queued"
    BUILDING = "building"
    PUSHING = "pushing"
    BUILT = "built"
    FAILED = "failed"
    CANCELLED = "cancelled"
    LOST = "lost"


#: States a build never leaves.
TERMINAL_STATES: frozenset[BuildState] = frozenset(
    {BuildState.BUILT, BuildState.FAILED, BuildState.CANCELLED, BuildState.LOST}
)
#: States of a build that holds a queue slot or a worker (identical requests join it).
ACTIVE_STATES: frozenset[BuildState] = frozenset(
    {BuildState.QUEUED, BuildState.BUILDING, BuildState.PUSHING}
)


# ---------------------------------------------------------------------------- build
@dataclass(eq=False)
class Build:
    """One build: its identity, state, timestamps and event log.

    The manager owns builds and is the only one changing their state; viewers read
    ``to_dict()`` and :meth:`follow` the events.

    Log bound: log events are counted by the UTF-8 size of their message. When the kept
    log exceeds ``log_limit_bytes``, the **oldest log events are dropped** (the tail, where
    errors are, is kept); ``phase`` and ``done`` events are never dropped. Event ids stay
    strictly increasing, so a resuming viewer simply sees a gap; the log says so in a line
    of its own when the first lines go and again, with the count, when the build ends.
    ``log_limit_bytes <= 0`` means no limit.

    Credentials (``credentials``) are held only while the build is active; they are
    cleared when it ends and never appear in repr, ``to_dict()`` or events.
    """

    owner: str
    owner_slug: str
    name: str
    repo: str
    ref: str
    commit: str
    image: str
    latest_image: str
    shared: bool = False
    display_name: str = ""
    hints: dict[str, str] = field(default_factory=dict)
    force: bool = False
    log_limit_bytes: int = 2 * 1024 * 1024
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    state: BuildState = BuildState.QUEUED
    position: int | None = None
    created: datetime = field(default_factory=utcnow)
    started: datetime | None = None
    finished: datetime | None = None
    error: str | None = None
    cancel_requested: bool = False
    credentials: GitCredentials | None = field(default=None, repr=False)

    _kept: list[Event] = field(default_factory=list, init=False, repr=False)
    _recent: deque[Event] = field(default_factory=deque, init=False, repr=False)
    _next_id: int = field(default=1, init=False, repr=False)
    _log_bytes: int = field(default=0, init=False, repr=False)
    _dropped_events: int = field(default=0, init=False, repr=False)
    _dropped_bytes: int = field(default=0, init=False, repr=False)
    _drop_noted: bool = field(default=False, init=False, repr=False)
    _changed: asyncio.Event = field(default_factory=asyncio.Event, init=False, repr=False)
    _done: bool = field(default=False, init=False, repr=False)
    _detached: str | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.display_name:
            self.display_name = self.name

    # ------------------------------------------------------------------ properties
    @property
    def terminal(self) -> bool:
        """True once the build is built, failed, cancelled or lost."""
        return self.state in TERMINAL_STATES

    @property
    def active(self) -> bool:
        """True while queued, building or pushing."""
        return self.state in ACTIVE_STATES

    @property
    def log_bytes(self) -> int:
        """UTF-8 bytes of log messages currently kept."""
        return self._log_bytes

    @property
    def dropped_log_events(self) -> int:
        """How many log events were dropped because of ``log_limit_bytes``."""
        return self._dropped_events

    @property
    def dropped_log_bytes(self) -> int:
        """UTF-8 bytes of the log events dropped because of ``log_limit_bytes``."""
        return self._dropped_bytes

    @property
    def last_event_id(self) -> int:
        """The id of the newest event (0 before the first)."""
        return self._next_id - 1

    @property
    def detached(self) -> str | None:
        """Why this service stopped following the build while it goes on (see
        :meth:`detach`), or None."""
        return self._detached

    @property
    def duration(self) -> float | None:
        """Seconds from start to finish (None until finished or if never started)."""
        if self.started is None or self.finished is None:
            return None
        return (self.finished - self.started).total_seconds()

    # ------------------------------------------------------------------ events
    def continue_ids(self, next_id: int) -> None:
        """Number the next event ``next_id``: a build adopted after a restart continues the
        ids the previous run of the service gave its events.

        Raises:
            ValueError: the build already has events, or ``next_id`` < 1.
        """
        if self._next_id != 1 or next_id < 1:
            raise ValueError(f"build {self.id}: ids continue only before the first event")
        self._next_id = next_id

    def restore_events(self, events: list[Event], *, dropped: tuple[int, int]) -> None:
        """Take back the kept events of a stored record (:mod:`.history`), before any other;
        ``dropped``: the log events and bytes ``log_limit_bytes`` had dropped."""
        if self._next_id != 1:
            raise ValueError(f"build {self.id}: events are restored before any other")
        self._dropped_events, self._dropped_bytes = dropped
        self._drop_noted = dropped[0] > 0
        for event in events:
            self._recent.append(event)
            self._log_bytes += _message_size(event) if event.type == EventType.LOG else 0
            self._done = self._done or event.type == EventType.DONE
            self._next_id = event.id + 1

    def detach(self, reason: str) -> None:
        """Stop following a build that goes on without this service (it is stopping, and
        the next start adopts the build): wake every follower so that its stream ends now,
        without a ``done`` event, since the build has not ended. Adds no event."""
        self._detached = reason
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def add_event(self, type: str | EventType, data: dict[str, Any]) -> Event:
        """Append an event and wake every follower. Never blocks.

        Args:
            type: ``phase``, ``log`` or ``done``.
            data: JSON-ready payload (a log event needs ``message``).

        Returns:
            The stored event, with its id.

        Raises:
            ValueError: for an unknown type.
            RuntimeError: when the build already ended (its ``done`` event was added).
        """
        kind = EventType(type)
        if self._done:
            raise RuntimeError(f"build {self.id} has ended; no more events")
        event = Event(id=self._next_id, type=kind.value, data=data)
        self._next_id += 1
        self._recent.append(event)
        if kind is EventType.LOG:
            self._log_bytes += _message_size(event)
            self._enforce_log_limit()
            if self._dropped_events and not self._drop_noted:
                self._drop_noted = True
                self.add_event(EventType.LOG, {"message": self._drop_note(final=False)})
        elif kind is EventType.DONE:
            self._done = True
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
        return event

    def _enforce_log_limit(self, reserve: int = 0) -> None:
        """Drop the oldest log events until the log (plus ``reserve`` bytes) fits."""
        if self.log_limit_bytes <= 0:
            return
        while self._log_bytes + reserve > self.log_limit_bytes and self._recent:
            oldest = self._recent.popleft()
            if oldest.type == EventType.LOG:
                size = _message_size(oldest)
                self._log_bytes -= size
                self._dropped_events += 1
                self._dropped_bytes += size
            else:
                # phase events are kept; everything in _kept is older than _recent
                self._kept.append(oldest)

    def _drop_note(self, *, final: bool) -> str:
        """The log line saying that earlier lines were dropped (``log_limit_bytes``)."""
        if not final:
            return (
                f"[the log is over {self.log_limit_bytes} bytes (log_limit_bytes): "
                "its oldest lines are being dropped]"
            )
        return (
            f"[{self._dropped_events} earlier log lines ({self._dropped_bytes} bytes) "
            "were dropped: log_limit_bytes]"
        )

    def events(self, *, after: int = 0) -> list[Event]:
        """The stored events with id > ``after``, oldest first.

        Args:
            after: the last id the caller has (0: all).

        Returns:
            A new list (cost is proportional to the number returned).
        """
        newer: list[Event] = []
        for source in (self._recent, self._kept):
            for event in reversed(source):
                if event.id <= after:
                    newer.reverse()
                    return newer
                newer.append(event)
        newer.reverse()
        return newer

    async def follow(self, after: int = 0) -> AsyncIterator[Event]:
        """Stored events with id > ``after``, then live ones, until the ``done`` event.

        Returns right after yielding ``done``, or at once after the replay when the
        build had already ended before ``after``. A slow consumer never slows the build:
        nothing is queued per follower; each step reads what is stored (a follower that
        falls behind more than ``log_limit_bytes`` sees a gap in the log ids).

        Args:
            after: the last event id the viewer has seen (SSE ``Last-Event-ID``).

        Yields:
            :class:`Event` objects with strictly increasing ids.
        """
        last = after
        while True:
            waiter = self._changed
            batch = self.events(after=last)
            for event in batch:
                yield event
                last = event.id
                if event.type == EventType.DONE:
                    return
            if self._done and not self.events(after=last):
                return
            if not batch:
                await waiter.wait()

    async def wait_events(self, after: int = 0, *, max_wait: float | None = None) -> list[Event]:
        """Stored events with id > ``after``, waiting up to ``max_wait`` s for one to come.

        A loop-friendly alternative to :meth:`follow` (no async generator to close, nothing
        to cancel): an SSE handler calls it with its keepalive interval and writes a
        keepalive when it gets ``[]`` while :attr:`ended` is still False.

        Args:
            after: the last event id the caller has.
            max_wait: seconds to wait when nothing is newer (None: until something is).

        A viewer whose ``after`` lies beyond the build's last event after it ended holds ids
        of an earlier run of the service that died (a ``lost`` record starts its ids anew):
        it gets the final ``phase`` and ``done`` events numbered after ``after``, so that it
        learns how the build ended and drops nothing as already seen.

        Returns:
            The newer events (possibly ending with ``done``); ``[]`` on timeout, or at once
            when the build has ended and nothing is newer than ``after``, or was detached.
        """
        waiter = self._changed
        if self._done and after > self.last_event_id:
            ending = [e for e in self.events() if e.type != EventType.LOG][-2:]
            return [Event(after + 1 + n, e.type, e.data) for n, e in enumerate(ending)]
        batch = self.events(after=after)
        if batch or self._done or self._detached:
            return batch
        try:
            async with asyncio.timeout(max_wait):
                await waiter.wait()
        except TimeoutError:
            return []
        return self.events(after=after)

    @property
    def ended(self) -> bool:
        """True once the ``done`` event was added (nothing follows it)."""
        return self._done

    async def wait(self) -> None:
        """Wait until the build has ended (its ``done`` event was added)."""
        while not self._done:
            await self._changed.wait()

    def log_text(self) -> str:
        """The kept log as text, one line per log event (a note first if lines were dropped)."""
        lines = []
        if self._dropped_events:
            lines.append(self._drop_note(final=True))
        lines.extend(
            str(e.data.get("message", "")) for e in self.events() if e.type == EventType.LOG
        )
        return "\n".join(lines) + ("\n" if lines else "")

    # ------------------------------------------------------------------ state
    def set_position(self, position: int | None) -> None:
        """Set the queue position, announcing a change with a ``phase`` event.

        Args:
            position: 1-based place in the queue, or None when not queued.
        """
        if position == self.position:
            return
        self.position = position
        if position is not None and self.state is BuildState.QUEUED:
            self.add_event(
                EventType.PHASE,
                {
                    "phase": self.state.value,
                    "position": position,
                    "message": f"Waiting for a build slot: position {position} in the queue",
                },
            )

    def set_state(self, state: BuildState, *, message: str = "", error: str | None = None) -> None:
        """Move to ``state``, stamping times and emitting events.

        A ``phase`` event is added for every change; on a terminal state ``finished`` and
        ``error`` are set, credentials are dropped and the ``done`` event (carrying
        ``to_dict()``) ends every follower.

        Args:
            state: the new state.
            message: human-readable text for the phase event.
            error: the failure reason (for ``failed``/``cancelled``/``lost``).

        Raises:
            RuntimeError: when the build had already ended.
        """
        if self.terminal:
            raise RuntimeError(f"build {self.id} already ended as {self.state}")
        now = utcnow()
        self.state = state
        if state is not BuildState.QUEUED:
            self.position = None
        if state in (BuildState.BUILDING, BuildState.PUSHING) and self.started is None:
            self.started = now
        if state in TERMINAL_STATES:
            self.finished = now
            self.error = error
            self.credentials = None
        data: dict[str, Any] = {
            "phase": state.value,
            "position": self.position,
            "message": message or state.value,
        }
        if error:
            data["error"] = error
        if state in TERMINAL_STATES and self._dropped_events:
            # make room first, so that the count in the note is the final one
            self._enforce_log_limit(reserve=len(self._drop_note(final=True)) + 8)
            self.add_event(EventType.LOG, {"message": self._drop_note(final=True)})
        self.add_event(EventType.PHASE, data)
        if state in TERMINAL_STATES:
            self.add_event(EventType.DONE, self.to_dict())

    # ------------------------------------------------------------------ output
    def image_labels(self) -> ImageLabels:
        """What the labels of the image this build produces say.

        Returns:
            The record (``ImageLabels.to_labels()`` gives the label dict); the owner label
            is written empty when ``shared``; built-at is ``started`` (or ``created`` if
            not started). Credentials are never part of a build and so never of labels.
        """
        return ImageLabels(
            owner=self.owner,
            shared=self.shared,
            name=self.name,
            display_name=self.display_name,
            repo=self.repo,
            ref=self.ref,
            commit=self.commit,
            built_at=isoformat(self.started or self.created) or "",
            build_id=self.id,
            hints=dict(self.hints),
        )

    def to_dict(self) -> dict[str, Any]:
        """The build as JSON-ready data (never credentials).

        Returns:
            ``{"id", "owner", "shared", "name", "display_name", "repo", "ref", "commit",
            "image", "latest_image", "state", "position", "created", "started",
            "finished", "error", "hints", "log_bytes"}``; times are ISO 8601 UTC strings
            or None.
        """
        return {
            "id": self.id,
            "owner": self.owner,
            "shared": self.shared,
            "name": self.name,
            "display_name": self.display_name,
            "repo": self.repo,
            "ref": self.ref,
            "commit": self.commit,
            "image": self.image,
            "latest_image": self.latest_image,
            "state": self.state.value,
            "position": self.position,
            "created": isoformat(self.created),
            "started": isoformat(self.started),
            "finished": isoformat(self.finished),
            "error": self.error,
            "hints": dict(self.hints),
            "log_bytes": self._log_bytes,
        }


def _message_size(event: Event) -> int:
    return len(str(event.data.get("message", "")).encode("utf-8", "replace"))
