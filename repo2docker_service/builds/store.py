"""Build history (records and their bounded logs), in memory and optionally in a database.

Images (with their labels) are the durable state; builds are a recent history for listing
and log viewing. Without a database a restart starts with an empty store; with one
(``db_url``, :class:`~.history.BuildHistory`) the store writes what it keeps there and
reads it back at start-up. Reads are always answered from memory.
"""

from __future__ import annotations

from typing import Any

from ..errors import Conflict, NotFound
from .history import BuildHistory
from .model import Build

__all__ = ["BuildStore"]


class BuildStore:
    """Builds by id, in insertion (= creation) order, keeping at most ``history_limit``
    finished builds.

    Active builds (queued, building, pushing) are never evicted; their number is bounded by
    the manager's queue and concurrency. When more than ``history_limit`` builds have
    ended, the oldest ended ones are dropped. ``history_limit = 0`` keeps no finished build
    (a build disappears from listings as soon as it ends and :meth:`prune` runs).

    It is also a build observer (``build_ended``): with a database, an ended build is
    written with its log.

    Args:
        history_limit: how many finished builds to keep (>= 0).
        history: the database builds are also kept in (None: memory only).

    Raises:
        ValueError: for a negative ``history_limit``.
    """

    def __init__(self, history_limit: int = 200, *, history: BuildHistory | None = None) -> None:
        if history_limit < 0:
            raise ValueError("history_limit must be >= 0")
        self.history_limit = history_limit
        self.history = history
        self._builds: dict[str, Build] = {}

    async def open(self) -> bool:
        """Connect to the database, if any.

        Returns:
            False when the database cannot be used (the reason is logged as critical).
        """
        return await self.history.open() if self.history is not None else True

    async def restore(self) -> list[Build]:
        """Read the database's builds back (those not in memory already: adopted ones win).

        Returns:
            The restored builds that were still queued or running when the earlier run of
            the service stopped (the caller ends them as lost); [] without a database.
        """
        if self.history is None:
            return []
        restored = [b for b in await self.history.load() if b.id not in self._builds]
        merged = sorted([*self._builds.values(), *restored], key=lambda b: b.created)
        self._builds = {b.id: b for b in merged}
        self.prune()
        return [b for b in restored if b.active and b.id in self._builds]

    async def close(self) -> None:
        """Write what is pending to the database and disconnect."""
        if self.history is not None:
            await self.history.close()

    def build_ended(self, build: Build) -> None:
        """(Observer) write an ended build, with its log, to the database."""
        if self.history is not None and build.id in self._builds:
            self.history.save(build)

    def request_answered(self, result: Any, error: Exception | None) -> None:
        """(Observer) nothing to keep."""

    def __len__(self) -> int:
        return len(self._builds)

    def __contains__(self, build_id: object) -> bool:
        return build_id in self._builds

    def add(self, build: Build) -> None:
        """Store a build (then evict old finished builds beyond the limit).

        Args:
            build: a build whose id is not yet stored.

        Raises:
            ValueError: when a build with that id is already stored.
        """
        if build.id in self._builds:
            raise ValueError(f"build {build.id} is already stored")
        self._builds[build.id] = build
        if self.history is not None:
            self.history.save(build)
        self.prune()

    def dismiss(self, build_id: str) -> Build:
        """Forget an ended build: its record and its log leave the history.

        Images are never touched (``DELETE api/images/...`` removes those); this is how a
        failed or cancelled first build, which produced no image, leaves the list.

        Returns:
            The removed build.

        Raises:
            NotFound: no such build.
            Conflict: the build is still queued or running (cancel it first).
        """
        build = self._builds.get(build_id)
        if build is None:
            raise NotFound(f"no build {build_id}")
        if not build.terminal:
            raise Conflict(
                f"build {build_id} is still {build.state.value}: cancel it first, then dismiss it"
            )
        del self._builds[build_id]
        if self.history is not None:
            self.history.delete(build_id)
        return build

    def get(self, build_id: str) -> Build | None:
        """The build with that id, or None."""
        return self._builds.get(build_id)

    def list(self, *, owner: str | None = None, include_shared: bool = False) -> list[Build]:
        """Stored builds, oldest first.

        Args:
            owner: only builds requested by this JupyterHub username (None: all builds).
            include_shared: with ``owner``, also include every build into the shared
                namespace, whoever requested it.

        Returns:
            A new list.
        """
        builds = list(self._builds.values())
        if owner is None:
            return builds
        return [b for b in builds if b.owner == owner or (include_shared and b.shared)]

    def prune(self) -> int:
        """Drop the oldest finished builds beyond ``history_limit``.

        Returns:
            How many builds were dropped.
        """
        finished = [b.id for b in self._builds.values() if b.terminal]
        excess = len(finished) - self.history_limit
        for build_id in finished[: max(excess, 0)]:
            del self._builds[build_id]
            if self.history is not None:
                self.history.delete(build_id)
        return max(excess, 0)
