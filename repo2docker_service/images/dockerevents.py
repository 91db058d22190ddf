"""Keeping the in-memory index of one Docker engine's images current from its events.

:class:`EventFeed` fills an :class:`~repo2docker_service.images.dockerindex.ImageIndex`
with one full list, then follows the engine's image events (tag, untag, delete, load,
import, pull), re-inspecting the one image each event names. The event stream is
subscribed with ``since`` a second before the full list, so nothing between the two is
missed; when the stream drops, the feed is not live (its owner lists from the engine) and it
tries again every few seconds, with a fresh full list; a full list every
``resync_interval`` seconds is a safety net. A lost stream keeps the index: it is the last
good listing, answered marked stale while the engine does not answer (:class:`.Freshness`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping
from contextlib import suppress
from typing import Any

from ..errors import Unavailable, UpstreamError
from .dockerengine import DockerEngine
from .dockerindex import ImageIndex, item_from_inspect
from .freshness import Freshness

__all__ = ["EventFeed"]

#: image event actions that change nothing the catalog shows
_IGNORED_ACTIONS = frozenset({"push", "save", "inspect"})
#: seconds between attempts to follow the engine's events again (the longest back-off)
_MAX_RETRY_DELAY = 5.0


class EventFeed:
    """Follows one engine's image events into an index (started on first use).

    Args:
        engine: the engine's client and choke point.
        index: the index kept current.
        freshness: told when a full list succeeded or the engine stopped answering.
        resync_interval: seconds between full re-lists (events keep it current between).
        log: the logger.
    """

    def __init__(
        self,
        *,
        engine: DockerEngine,
        index: ImageIndex,
        freshness: Freshness,
        resync_interval: float,
        log: logging.Logger,
    ) -> None:
        self.engine = engine
        self.index = index
        self.freshness = freshness
        self.resync_interval = resync_interval
        self.log = log
        self._live = False  # the index is complete and the event stream is followed
        self._watcher: asyncio.Task[None] | None = None
        self._attempted = asyncio.Event()  # set after each (re)connection attempt

    @property
    def live(self) -> bool:
        """Whether the index is complete and the events are followed."""
        return self._live

    def _set_live(self, live: bool) -> None:
        self._live = live
        if live:
            self.freshness.read_ok()

    async def close(self) -> None:
        """Stop following (a later :meth:`ready` starts again)."""
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.cancel()
            with suppress(asyncio.CancelledError):
                await watcher
        self._set_live(False)

    async def ready(self) -> bool:
        """Start following on first use (waiting for the first full list, at most the
        engine's request timeout); whether the index can answer now."""
        if self._watcher is None or self._watcher.done():
            self._attempted.clear()
            self._watcher = asyncio.create_task(self._watch(), name="docker-catalog-events")
            with suppress(TimeoutError):
                async with asyncio.timeout(self.engine.request_timeout):
                    await self._attempted.wait()
        return self._live

    async def _watch(self) -> None:
        """Follow the engine's image events forever, reconnecting with back-off."""
        delay = 0.5
        while True:
            docker = self.engine.client()
            try:
                since = await self.engine.clock() - 1
                # aiodocker's events API has no type hints
                subscriber = docker.events.subscribe(  # type: ignore[no-untyped-call]
                    filters=json.dumps({"type": ["image"]}), since=str(since)
                )
                items = await self.engine.list_labelled()
                self.index.load(items)
                self._set_live(True)
                self._attempted.set()
                self.log.debug("image index loaded (%d images); following events", len(items))
                delay = 0.5
                await self._follow(subscriber)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # never let the watcher die; listings fall back
                self._lost(e)
            finally:
                self._set_live(False)
                self._attempted.set()
                with suppress(Exception):
                    await docker.events.stop()  # type: ignore[no-untyped-call]
            await asyncio.sleep(delay)
            delay = min(delay * 2, _MAX_RETRY_DELAY)

    def _lost(self, error: Exception) -> None:
        if isinstance(error, Unavailable):
            self.freshness.read_failed()
        if self._live:
            self.log.warning(
                "Lost the Docker image events (%s); listing from the engine until they are back",
                error,
            )
        else:
            self.log.debug("image events unavailable: %s", error)

    async def _follow(self, subscriber: Any) -> None:
        """Apply the events of ``subscriber`` (an aiodocker ``ChannelSubscriber``), with a
        full re-list every ``resync_interval`` seconds, until the stream ends.

        Raises:
            UpstreamError: the engine closed the stream or cannot be reached.
        """
        resync_at = time.monotonic() + self.resync_interval
        while True:
            try:
                async with asyncio.timeout(max(0.0, resync_at - time.monotonic())):
                    event = await subscriber.get()
            except TimeoutError:
                self.index.load(await self.engine.list_labelled())
                resync_at = time.monotonic() + self.resync_interval
                continue
            if event is None:
                raise UpstreamError("the engine closed its event stream")
            await self.on_event(event)

    async def on_event(self, event: Mapping[str, Any]) -> None:
        """Re-read the image an engine event names (a delete drops it)."""
        action = str(event.get("Action") or event.get("status") or "")
        actor = str((event.get("Actor") or {}).get("ID") or event.get("id") or "")
        if not actor or action in _IGNORED_ACTIONS:
            return
        if action == "delete":
            self.index.drop_image(actor)
            return
        await self.refresh(actor)

    async def refresh(self, reference: str) -> None:
        """Re-read one image (by id or reference) into the index."""
        data = await self.engine.inspect(reference)
        if data is None:
            self.index.drop_image(reference)
        else:
            self.index.upsert(item_from_inspect(data))
