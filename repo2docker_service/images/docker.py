"""The image catalog read from a Docker engine (aiodocker).

The service's images carry labels (see :mod:`repo2docker_service.images.labels`); those
labels are the catalog. :class:`DockerCatalog` groups tags by ``(owner_slug, name)``
repository and checks each tag against its labels (the listing rule of
:mod:`repo2docker_service.images.dockerindex`): a tag whose repository name does not match
the owner and name in the labels is ignored (ownership comes from labels, never from names
alone).

Asking the engine for the labelled images costs ~100 ms once it holds a couple of thousand
images (Docker walks every image to apply the label filter), so listings are served from
an in-memory index (:class:`~repo2docker_service.images.dockerindex.ImageIndex`) instead:

- it is filled by one full list when the catalog starts watching (on first use);
- a background task (:class:`~repo2docker_service.images.dockerevents.EventFeed`)
  follows the engine's image events (tag, untag, delete, load, import,
  pull) and re-inspects the one image each event names (~1 ms), so images that other
  writers add or remove (``docker rmi``, another service, repo2docker) show up within
  milliseconds;
- the catalog's own writes (tag, untag, delete) update it at once, and ``image_info``
  (the cache check) always inspects the engine;
- the event stream is subscribed with ``since`` a second before the full list, so nothing
  between the two is missed; when the stream drops, listings go back to asking the engine
  on every request until it is re-established (with a fresh full list, retried every few
  seconds), and a full list every ``resync_interval`` seconds is a safety net;
- while the engine does not answer, listings are served from the last good index, marked
  stale (:attr:`DockerCatalog.freshness`); before any listing worked they raise
  :class:`~repo2docker_service.errors.Unavailable` (503) saying what to check.

All Docker calls go through the choke point of
:class:`~repo2docker_service.images.dockerengine.DockerEngine`, which turns "cannot
connect" and engine errors into :class:`~repo2docker_service.errors.UpstreamError`; "not
found" becomes None, False or :class:`~repo2docker_service.errors.NotFound` depending on
the method.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from aiodocker.exceptions import DockerError

from ..errors import Conflict, NotFound, Unavailable, UpstreamError
from .catalog import Catalog, CatalogState, ImageInfo, TagRecord, select_images
from .dockerengine import DockerEngine
from .dockerevents import EventFeed
from .dockerindex import (
    ImageIndex,
    Key,
    Tagged,
    describe,
    group_items,
    item_from_inspect,
    tag_record,
)
from .freshness import Freshness
from .naming import ImageNamer
from .reference import split_reference

__all__ = ["DockerCatalog"]


class DockerCatalog(Catalog):
    """Catalog of the service's images in one Docker engine.

    Owns one :class:`~repo2docker_service.images.dockerengine.DockerEngine` (its aiodocker
    client is created on first use, or by :meth:`start`, from ``url`` or, when None, from
    ``DOCKER_HOST`` or the default socket); :meth:`close` releases it.

    Args:
        namer: how image references are made (to recognise the service's repositories).
        url: Docker engine URL (``unix:///var/run/docker.sock``, ``tcp://127.0.0.1:2375``);
            None: ``DOCKER_HOST`` or the default socket.
        registry_auth: ``{"username": ..., "password": ...}`` for pushes, or None
            (anonymous, or what the engine has configured).
        request_timeout: seconds for each API call except pushes.
        watch: keep the in-memory index current from the engine's events (False: ask the
            engine on every listing).
        resync_interval: seconds between full re-lists of the index (a safety net; events
            keep it current in between).
        log: the logger to use.
    """

    name = "docker"

    def __init__(
        self,
        *,
        namer: ImageNamer,
        url: str | None = None,
        registry_auth: Mapping[str, str] | None = None,
        request_timeout: float = 60.0,
        watch: bool = True,
        resync_interval: float = 600.0,
        log: logging.Logger | None = None,
    ) -> None:
        self.namer = namer
        self.watch = watch
        self.resync_interval = resync_interval
        self.log = log or logging.getLogger("repo2docker_service.catalog")
        #: the engine's client and choke point
        self.engine = DockerEngine(url=url, request_timeout=request_timeout)
        #: the event-fed index (complete only while :attr:`live`)
        self.index = ImageIndex(namer=namer, log=self.log)
        self._registry_auth = dict(registry_auth) if registry_auth else None
        #: the index's freshness (it is kept, and answers marked stale, when the engine goes)
        self.freshness = Freshness("engine")
        #: keeps the index current from the engine's events
        self.feed = EventFeed(
            engine=self.engine,
            index=self.index,
            freshness=self.freshness,
            resync_interval=resync_interval,
            log=self.log,
        )

    def __repr__(self) -> str:
        return f"DockerCatalog(url={self.engine.url!r}, namer={self.namer!r})"

    async def start(self) -> None:
        """Connect and check that the engine answers.

        Raises:
            UpstreamError: the engine is unreachable.
        """
        await self.engine.check()

    async def close(self) -> None:
        """Stop watching and close the client (a later call connects again)."""
        await self.feed.close()
        await self.engine.close()

    # ------------------------------------------------------------------ the index
    @property
    def live(self) -> bool:
        """Whether listings are answered from the event-fed index."""
        return self.feed.live

    def state(self) -> CatalogState:
        """Live, or serving the last good index (stale) while the engine does not answer."""
        return self.freshness.state()

    async def _index_ready(self) -> bool:
        """Whether the event-fed index can answer now (following starts on first use)."""
        return self.watch and await self.feed.ready()

    async def _read_all(self) -> list[ImageInfo]:
        """Every environment: from the engine (refreshing the index), else, when the engine
        does not answer, from the last good index, marked stale.

        Raises:
            Unavailable: the engine does not answer and nothing was ever read.
            UpstreamError: the engine answered with a failure.
        """
        try:
            items = await self.engine.list_labelled()
        except Unavailable as e:
            if not self.freshness.read_failed():
                raise Unavailable(
                    f"{e}. No listing was read since the service started, so there is "
                    "nothing to show until the engine answers."
                ) from None
            return self.index.infos()
        self.index.load(items)
        self.freshness.read_ok()
        return self.index.infos()

    async def _groups_for(self, repository: str) -> dict[Key, list[Tagged]]:
        """Tags of one repository: from the index when live, else from the engine, else
        (the engine does not answer) from the last good index."""
        if await self._index_ready():
            return self.index.repository(repository)
        try:
            return self._group(await self.engine.list_labelled(repository=repository))
        except Unavailable:
            if not self.freshness.read_failed():
                raise
            return self.index.repository(repository)

    def _group(self, items: list[dict[str, Any]]) -> dict[Key, list[Tagged]]:
        """Tags of the service's images by (owner_slug, name), checked against labels."""
        return group_items(items, namer=self.namer, log=self.log)

    # ------------------------------------------------------------------ reading
    async def exists(self, reference: str) -> bool:
        """Whether ``reference`` exists in the engine.

        Raises:
            UpstreamError: the engine is unreachable.
        """
        return await self.engine.inspect(reference) is not None

    async def image_id(self, reference: str) -> str | None:
        """The id (``sha256:...``) of the image ``reference`` names, or None if absent.

        Raises:
            UpstreamError: the engine is unreachable.
        """
        data = await self.engine.inspect(reference)
        return str(data["Id"]) if data and data.get("Id") else None

    async def list_images(
        self, *, owner: str | None = None, include_shared: bool = False
    ) -> list[ImageInfo]:
        """The service's environments, one entry per ``(owner_slug, name)`` repository.

        Args:
            owner: only images whose owner label is this JupyterHub username (None: all).
            include_shared: with ``owner``, also shared images.

        Returns:
            ImageInfo list sorted by (shared, owner, name).

        Raises:
            Unavailable: the engine does not answer and no listing was read before (once
                one was, the last good one answers, see :attr:`freshness`).
            UpstreamError: the engine failed.
        """
        if await self._index_ready():
            infos = self.index.infos()
        else:
            infos = await self._read_all()
        return select_images(infos, owner=owner, include_shared=include_shared)

    async def get(self, *, owner_slug: str, name: str) -> ImageInfo | None:
        """One environment by owner part and name, or None.

        Raises:
            UpstreamError: the engine is unreachable.
        """
        try:
            repository = self.namer.repository(owner_slug=owner_slug, name=name)
        except ValueError:
            return None
        tagged = (await self._groups_for(repository)).get((owner_slug, name))
        return describe((owner_slug, name), tagged) if tagged else None

    async def tag_records(self, *, owner_slug: str, name: str) -> list[TagRecord] | None:
        """Every tag of one environment with its image (see :meth:`Catalog.tag_records`).

        Raises:
            UpstreamError: the engine is unreachable.
        """
        try:
            repository = self.namer.repository(owner_slug=owner_slug, name=name)
        except ValueError:
            return None
        tagged = (await self._groups_for(repository)).get((owner_slug, name))
        return [tag_record(t) for t in tagged] if tagged else None

    async def image_info(self, reference: str) -> ImageInfo | None:
        """Describe the image with exactly this reference, with its repository's tags.

        Returns:
            ImageInfo whose ``image`` is ``reference``, or None when absent or not ours.

        Raises:
            UpstreamError: the engine is unreachable.
        """
        repository, _ = split_reference(reference)
        key = self.namer.parse(repository)
        if key is None:
            return None
        if await self._index_ready():
            # the engine decides (one inspect); the index, updated with that answer, gives
            # the repository's other tags
            data = await self.engine.inspect(reference)
            if data is None:
                self.index.drop_tag(reference)
                return None
            self.index.upsert(item_from_inspect(data))
            groups = self.index.repository(repository)
        else:
            groups = self._group(await self.engine.list_labelled(repository=repository))
        tagged = groups.get(key) or []
        focus = next((t for t in tagged if t.reference == reference), None)
        if focus is None:
            return None
        return describe(key, tagged, focus=focus)

    # ------------------------------------------------------------------ writing
    async def tag(self, source: str, target: str) -> None:
        """Tag ``source`` as ``target`` (moving ``target`` if it existed).

        Raises:
            NotFound: ``source`` does not exist.
            UpstreamError: the engine is unreachable or refused.
        """
        repository, tag = split_reference(target)
        try:
            async with self.engine.upstream(f"tagging {source} as {target}"):
                await self.engine.client().images.tag(source, repository, tag=tag)
        except DockerError as e:
            if e.status == 404:
                raise NotFound(f"image {source} not found") from None
            raise UpstreamError(
                f"Docker refused to tag {source} as {target}: {e.message}"
            ) from None
        if self.feed.live:
            await self.feed.refresh(target)

    async def remove_tag(self, reference: str) -> bool:
        """Remove the reference ``reference`` (untag; the image goes if it was the last tag
        and no container uses it).

        Returns:
            True if removed, False if it did not exist.

        Raises:
            Conflict: Docker refused (e.g. the image is in use and this was its only tag).
            UpstreamError: the engine is unreachable.
        """
        if not await self._untag(reference, force=True):
            return False
        self.index.drop_tag(reference)
        return True

    async def refresh(self, reference: str) -> None:
        """Re-inspect ``reference`` into the index (buildx's exports send no tag event)."""
        if self.feed.live:
            await self.feed.refresh(reference)

    async def prune_tag(self, reference: str) -> bool:
        """Untag ``reference`` unless it is the last tag of an image a container uses
        (Docker refuses that without force). Returns False then, or when absent."""
        try:
            removed = await self._untag(reference, force=False)
        except Conflict as e:
            self.log.info("prune: kept %s (%s)", reference, e.message)
            return False
        if removed:
            self.index.drop_tag(reference)
        return removed

    async def _untag(self, reference: str, *, force: bool) -> bool:
        """Delete one reference in the engine.

        Returns:
            True if removed, False if there was no such reference.

        Raises:
            Conflict: Docker refused (in use, or other tags without ``force``).
            UpstreamError: the engine is unreachable or failed.
        """
        try:
            async with self.engine.upstream(f"removing {reference}"):
                await self.engine.client().images.delete(reference, force=force, noprune=False)
        except DockerError as e:
            if e.status == 404:
                return False
            if e.status == 409:
                raise Conflict(f"cannot remove {reference}: {e.message}") from None
            raise UpstreamError(f"Docker refused to remove {reference}: {e.message}") from None
        return True

    async def remove_if_untagged(self, image_id: str) -> bool:
        """Remove the image ``image_id`` if it has no tags left and no container uses it.

        Used after a forced rebuild moved every tag away from the old image.

        Returns:
            True if removed; False if it still has tags, is in use, or is gone already.

        Raises:
            UpstreamError: the engine is unreachable.
        """
        data = await self.engine.inspect(image_id)
        if data is None or data.get("RepoTags"):
            return False
        try:
            async with self.engine.upstream(f"removing untagged image {image_id}"):
                await self.engine.client().images.delete(image_id, force=False)
        except DockerError as e:
            if e.status in (404, 409):
                return False
            raise UpstreamError(f"Docker refused to remove {image_id}: {e.message}") from None
        self.index.drop_image(image_id)
        return True

    async def push(self, reference: str) -> None:
        """Push ``reference`` to its registry (with ``registry_auth`` if given).

        Raises:
            UpstreamError: the push failed (the message says why: registry down, auth, ...).
        """
        repository, tag = split_reference(reference)
        try:
            async with self.engine.upstream(f"pushing {reference}", limit=None):
                await self.engine.client().images.push(
                    repository, tag=tag, auth=self._registry_auth, stream=False
                )
        except DockerError as e:
            raise UpstreamError(
                f"pushing {reference} failed: {e.message}; check the registry URL, that it "
                "is running and the registry credentials"
            ) from None

    async def delete(self, *, owner_slug: str, name: str, force: bool = False) -> list[str]:
        """Remove every tag of the environment ``(owner_slug, name)``.

        Args:
            owner_slug: owner part of the image name.
            name: environment name.
            force: remove even if containers (running or stopped) use the image; the
                containers keep running on the untagged image.

        Returns:
            The references removed.

        Raises:
            NotFound: no such environment.
            Conflict: containers use it and ``force`` is false.
            UpstreamError: the engine is unreachable.
        """
        try:
            repository = self.namer.repository(owner_slug=owner_slug, name=name)
        except ValueError:
            raise NotFound(f"no image {owner_slug}/{name}") from None
        tagged = (await self._groups_for(repository)).get((owner_slug, name))
        if not tagged:
            raise NotFound(f"no image {owner_slug}/{name}")
        image_ids = {t.item.get("Id") for t in tagged}
        if not force:
            async with self.engine.upstream("listing containers"):
                containers = await self.engine.client().containers.list(all=True)
            users = [c for c in containers if c._container.get("ImageID") in image_ids]
            if users:
                raise Conflict(
                    f"{len(users)} container(s) use image {repository}; stop and remove "
                    "them first or delete with force"
                )
        removed = []
        for t in tagged:
            if await self._untag(t.reference, force=force):
                self.index.drop_tag(t.reference)
                removed.append(t.reference)
        self.log.info("deleted %s (%d tags)", repository, len(removed))
        return removed
