"""The image catalog read from a Docker engine (aiodocker).

The service's images carry labels (see :mod:`repo2docker_service.builds.model`); those
labels are the catalog. :class:`DockerCatalog` groups tags by ``(owner_slug, name)``
repository and checks each tag against its labels: a tag whose repository name does not
match the owner and name in the labels is ignored (ownership comes from labels, never from
names alone).

Asking the engine for the labelled images costs ~100 ms once it holds a couple of thousand
images (Docker walks every image to apply the label filter), so listings are served from
an in-memory index instead:

- it is filled by one full list when the catalog starts watching (on first use);
- a background task follows the engine's image events (tag, untag, delete, load, import,
  pull) and re-inspects the one image each event names (~1 ms), so images that other
  writers add or remove (``docker rmi``, another service, repo2docker) show up within
  milliseconds;
- the catalog's own writes (tag, untag, delete) update it at once, and ``image_info``
  (the cache check) always inspects the engine;
- the event stream is subscribed with ``since`` a second before the full list, so nothing
  between the two is missed; when the stream drops, listings go back to asking the engine
  on every request until it is re-established (with a fresh full list), and a full list
  every ``resync_interval`` seconds is a safety net.

All Docker calls go through one choke point that turns "cannot connect" and engine errors
into :class:`~repo2docker_service.errors.UpstreamError`; "not found" becomes None, False or
:class:`~repo2docker_service.errors.NotFound` depending on the method.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime
from typing import Any

import aiodocker
import aiohttp
from aiodocker.exceptions import DockerError

from ..builds.model import LABEL_OWNER, parse_labels
from ..errors import Conflict, NotFound, UpstreamError
from .catalog import Catalog, ImageInfo, select_images
from .naming import SHARED_OWNER, ImageNamer, escape_owner

__all__ = ["DockerCatalog", "ImageInfo"]

LATEST = "latest"
#: image event actions that change nothing the catalog shows
_IGNORED_ACTIONS = frozenset({"push", "save", "inspect"})


def _epoch(created: Any) -> int:
    """Docker's ``Created`` as seconds (lists give an int, inspect an RFC 3339 string)."""
    if isinstance(created, int | float):
        return int(created)
    try:
        when = datetime.strptime(str(created)[:19], "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        return 0
    return int(when.replace(tzinfo=UTC).timestamp())


def _item_from_inspect(data: Mapping[str, Any]) -> dict[str, Any]:
    """An image-list item (``Id``, ``RepoTags``, ``Labels``, ``Created``, ``Size``) from an
    inspect answer."""
    return {
        "Id": data.get("Id"),
        "RepoTags": list(data.get("RepoTags") or []),
        "Labels": dict((data.get("Config") or {}).get("Labels") or {}),
        "Created": _epoch(data.get("Created")),
        "Size": data.get("Size"),
    }


def split_reference(reference: str) -> tuple[str, str]:
    """Split ``repository:tag`` (a ``:`` before the last ``/`` is a registry port).

    Returns:
        ``(repository, tag)``; the tag is ``latest`` when absent.
    """
    repository, sep, tag = reference.rpartition(":")
    if not sep or "/" in tag:
        return reference, LATEST
    return repository, tag


class DockerCatalog(Catalog):
    """Catalog of the service's images in one Docker engine.

    Owns one ``aiodocker.Docker`` client, created on first use (or by :meth:`start`) from
    ``url`` or, when None, from ``DOCKER_HOST`` (read at that time, taking precedence over a
    docker context as with the docker CLI) or the default socket; :meth:`close` releases it.

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
        self.url = url
        self.request_timeout = request_timeout
        self.watch = watch
        self.resync_interval = resync_interval
        self.log = log or logging.getLogger("repo2docker_service.catalog")
        self._registry_auth = dict(registry_auth) if registry_auth else None
        self._docker: aiodocker.Docker | None = None
        # the index: image id -> image-list item, and reference -> image id
        self._items: dict[str, dict[str, Any]] = {}
        self._by_tag: dict[str, str] = {}
        self._live = False  # the index is complete and the event stream is followed
        self._version = 0  # bumped on every index change
        self._infos_version = -1
        self._infos: list[ImageInfo] = []  # derived from _items, remade when it changed
        self._watcher: asyncio.Task[None] | None = None
        self._attempted = asyncio.Event()  # set after each (re)connection attempt

    def __repr__(self) -> str:
        return f"DockerCatalog(url={self.url!r}, namer={self.namer!r})"

    # ------------------------------------------------------------------ connection
    @property
    def engine(self) -> str:
        """Where the engine is, for messages."""
        return (
            self.url
            or os.environ.get("DOCKER_HOST")
            or "the default socket (unix:///var/run/docker.sock; set DOCKER_HOST to change it)"
        )

    def _client(self) -> aiodocker.Docker:
        if self._docker is None:
            # DOCKER_HOST first, as the docker CLI (and so repo2docker) does; aiodocker alone
            # would prefer a docker context from ~/.docker/config.json over DOCKER_HOST
            url = self.url or os.environ.get("DOCKER_HOST") or None
            try:
                self._docker = aiodocker.Docker(url=url)
            except (AssertionError, ValueError, OSError) as e:
                raise UpstreamError(
                    f"No Docker engine found ({e or 'no socket'}): start dockerd or set "
                    "DOCKER_HOST to the engine the service should use"
                ) from None
        return self._docker

    async def start(self) -> None:
        """Connect and check that the engine answers.

        Raises:
            UpstreamError: the engine is unreachable.
        """
        async with self._upstream("connecting"):
            await self._client().version()

    async def close(self) -> None:
        """Stop watching and close the client (a later call connects again)."""
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.cancel()
            with suppress(asyncio.CancelledError):
                await watcher
        self._set_live(False)
        docker, self._docker = self._docker, None
        if docker is not None:
            await docker.close()

    # ------------------------------------------------------------------ the index
    @property
    def live(self) -> bool:
        """Whether listings are answered from the event-fed index."""
        return self._live

    def _set_live(self, live: bool) -> None:
        if not live:
            self._clear()
        self._live = live

    def _clear(self) -> None:
        self._items.clear()
        self._by_tag.clear()
        self._version += 1

    async def _index_ready(self) -> bool:
        """Start watching on first use (waiting for the first full list); whether the
        index can answer now."""
        if not self.watch:
            return False
        if self._watcher is None or self._watcher.done():
            self._attempted.clear()
            self._watcher = asyncio.create_task(self._watch(), name="docker-catalog-events")
            with suppress(TimeoutError):
                async with asyncio.timeout(self.request_timeout):
                    await self._attempted.wait()
        return self._live

    async def _engine_time(self) -> int:
        """The engine's clock in whole seconds (events are filtered by its clock)."""
        async with self._upstream("reading the engine clock"):
            info = await self._client().system.info()
        try:
            return _epoch(info["SystemTime"])
        except (KeyError, TypeError):
            return int(time.time())

    async def _watch(self) -> None:
        """Follow the engine's image events forever, reconnecting with back-off."""
        delay = 0.5
        while True:
            docker = self._client()
            try:
                since = await self._engine_time() - 1
                subscriber = docker.events.subscribe(
                    filters=json.dumps({"type": ["image"]}), since=str(since)
                )
                items = await self._list_ours()
                self._load(items)
                self._set_live(True)
                self._attempted.set()
                self.log.debug("image index loaded (%d images); following events", len(items))
                delay = 0.5
                resync_at = time.monotonic() + self.resync_interval
                while True:
                    try:
                        async with asyncio.timeout(max(0.0, resync_at - time.monotonic())):
                            event = await subscriber.get()
                    except TimeoutError:
                        self._load(await self._list_ours())
                        resync_at = time.monotonic() + self.resync_interval
                        continue
                    if event is None:
                        raise UpstreamError("the engine closed its event stream")
                    await self._on_event(event)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # never let the watcher die; listings fall back
                if self._live:
                    self.log.warning(
                        "Lost the Docker image events (%s); listing from the engine until "
                        "they are back",
                        e,
                    )
                else:
                    self.log.debug("image events unavailable: %s", e)
            finally:
                self._set_live(False)
                self._attempted.set()
                with suppress(Exception):
                    await docker.events.stop()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)

    async def _on_event(self, event: Mapping[str, Any]) -> None:
        action = str(event.get("Action") or event.get("status") or "")
        actor = str((event.get("Actor") or {}).get("ID") or event.get("id") or "")
        if not actor or action in _IGNORED_ACTIONS:
            return
        if action == "delete":
            self._drop_image(actor)
            return
        await self._refresh(actor)

    async def _refresh(self, reference: str) -> None:
        """Re-read one image (by id or reference) into the index."""
        data = await self._inspect(reference)
        if data is None:
            self._drop_image(reference)
        else:
            self._upsert(_item_from_inspect(data))

    def _load(self, items: list[dict[str, Any]]) -> None:
        """Replace the index with a full list."""
        self._clear()
        for item in items:
            self._upsert(item)

    def _upsert(self, item: dict[str, Any]) -> None:
        """Put one image in the index (a reference names one image: moved tags leave
        their old image)."""
        image_id = item.get("Id")
        if not image_id:
            return
        tags = sorted(t for t in item.get("RepoTags") or [] if t != "<none>:<none>")
        labels = item.get("Labels") or {}
        ours = bool(tags) and LABEL_OWNER in labels
        # the same fields whether it came from a list or an inspect
        item = {
            "Id": image_id,
            "RepoTags": tags,
            "Labels": labels,
            "Created": _epoch(item.get("Created")),
            "Size": item.get("Size"),
        }
        if ours and self._items.get(image_id) == item:
            return  # unchanged (the cache check inspects images that are usually indexed)
        self._drop_image(image_id)
        for tag in tags:
            self._drop_tag(tag)
        if ours:
            self._items[image_id] = item
            for tag in tags:
                self._by_tag[tag] = image_id
        self._version += 1

    def _drop_tag(self, reference: str) -> None:
        image_id = self._by_tag.pop(reference, None)
        item = self._items.get(image_id) if image_id else None
        if item is None:
            return
        tags = [t for t in item["RepoTags"] if t != reference]
        if tags:
            self._items[image_id] = {**item, "RepoTags": tags}
        else:
            del self._items[image_id]
        self._version += 1

    def _drop_image(self, image_id: str) -> None:
        item = self._items.pop(image_id, None)
        if item is None:
            return
        for tag in item["RepoTags"]:
            if self._by_tag.get(tag) == image_id:
                del self._by_tag[tag]
        self._version += 1

    def _indexed_infos(self) -> list[ImageInfo]:
        """Every environment in the index (remade only after the index changed)."""
        if self._infos_version != self._version:
            groups = self._group(list(self._items.values()))
            self._infos = [self._info(key, tagged) for key, tagged in groups.items()]
            self._infos_version = self._version
        return self._infos

    def _indexed_repository(self, repository: str) -> dict[tuple[str, str], list[_Tagged]]:
        """Tags of one repository from the index (without regrouping everything)."""
        prefix = repository + ":"
        items = [
            item
            for item in self._items.values()
            if any(t.startswith(prefix) for t in item["RepoTags"])
        ]
        return self._group(items)

    async def _groups_for(self, repository: str) -> dict[tuple[str, str], list[_Tagged]]:
        """Tags of one repository: from the index when live, else from the engine."""
        if await self._index_ready():
            return self._indexed_repository(repository)
        return self._group(await self._list_ours(repository=repository))

    @asynccontextmanager
    async def _upstream(self, what: str, *, limit: float | None = -1) -> AsyncIterator[None]:
        """The choke point: engine trouble becomes UpstreamError; 4xx DockerErrors pass.

        ``limit``: seconds for the call (-1: ``request_timeout``; None: no limit).
        """
        if limit == -1:
            limit = self.request_timeout
        try:
            async with asyncio.timeout(limit):
                yield
        except TimeoutError:
            raise UpstreamError(
                f"Docker engine at {self.engine} did not answer in {limit:.0f} s while "
                f"{what}: check that dockerd is healthy"
            ) from None
        except DockerError as e:
            if 400 <= e.status < 500:
                raise
            if e.status == 900:  # aiodocker's "cannot connect"
                raise UpstreamError(
                    f"Cannot reach the Docker engine at {self.engine} while {what}: check "
                    "that dockerd is running and DOCKER_HOST points at it"
                ) from None
            raise UpstreamError(
                f"Docker engine at {self.engine} failed while {what}: {e.message}"
            ) from None
        except (OSError, aiohttp.ClientError) as e:
            raise UpstreamError(
                f"Cannot reach the Docker engine at {self.engine} while {what} ({e}): check "
                "that dockerd is running and DOCKER_HOST points at it"
            ) from None

    # ------------------------------------------------------------------ reading
    async def exists(self, reference: str) -> bool:
        """Whether ``reference`` exists in the engine.

        Raises:
            UpstreamError: the engine is unreachable.
        """
        return await self._inspect(reference) is not None

    async def _inspect(self, reference: str) -> dict[str, Any] | None:
        try:
            async with self._upstream(f"inspecting {reference}"):
                return await self._client().images.inspect(reference)
        except DockerError as e:
            if e.status == 404:
                return None
            raise UpstreamError(f"Docker refused to inspect {reference}: {e.message}") from None

    async def image_id(self, reference: str) -> str | None:
        """The id (``sha256:...``) of the image ``reference`` names, or None if absent.

        Raises:
            UpstreamError: the engine is unreachable.
        """
        data = await self._inspect(reference)
        return data.get("Id") if data else None

    async def _list_ours(self, *, repository: str | None = None) -> list[dict[str, Any]]:
        filters: dict[str, list[str]] = {"label": [LABEL_OWNER]}
        if repository is not None:
            filters["reference"] = [repository]
        try:
            async with self._upstream("listing images"):
                return await self._client().images.list(filters=filters)
        except DockerError as e:
            raise UpstreamError(f"Docker refused to list images: {e.message}") from None

    def _expected_slug(self, labels: Mapping[str, Any]) -> str | None:
        if labels["shared"]:
            return SHARED_OWNER
        try:
            return escape_owner(labels["owner"])
        except (TypeError, ValueError):
            return None

    def _group(self, items: list[dict[str, Any]]) -> dict[tuple[str, str], list[_Tagged]]:
        """Tags of the service's images by (owner_slug, name), checked against labels."""
        groups: dict[tuple[str, str], list[_Tagged]] = {}
        for item in items:
            labels = parse_labels(item.get("Labels") or {})
            if labels is None:
                continue
            expected = (self._expected_slug(labels), labels["name"])
            for repo_tag in item.get("RepoTags") or []:
                repository, tag = split_reference(repo_tag)
                parsed = self.namer.parse(repository)
                if parsed is None:
                    continue
                if parsed != expected:
                    self.log.warning(
                        "ignoring tag %s: its labels say owner %r, name %r",
                        repo_tag,
                        labels["owner"],
                        labels["name"],
                    )
                    continue
                groups.setdefault(parsed, []).append(
                    _Tagged(
                        reference=repo_tag, repository=repository, tag=tag, item=item, labels=labels
                    )
                )
        return groups

    def _info(
        self,
        key: tuple[str, str],
        tagged: list[_Tagged],
        *,
        focus: _Tagged | None = None,
    ) -> ImageInfo:
        """One ImageInfo from the tags of one repository (described by ``focus``)."""
        owner_slug, name = key
        latest = next((t for t in tagged if t.tag == LATEST), None)
        newest_first = sorted(
            tagged, key=lambda t: (t.labels["built_at"], t.item.get("Created", 0)), reverse=True
        )
        current = focus or latest or newest_first[0]
        labels = current.labels
        # the commit-tag reference of the described image
        image = current.reference
        if current.tag == LATEST:
            for t in tagged:
                if t.tag != LATEST and t.item.get("Id") == current.item.get("Id"):
                    image = t.reference
                    break
        tags = [LATEST] if latest else []
        for t in newest_first:
            if t.tag not in tags:
                tags.append(t.tag)
        return ImageInfo(
            owner=labels["owner"],
            shared=labels["shared"],
            owner_slug=owner_slug,
            name=name,
            display_name=labels["display_name"],
            repo=labels["repo"],
            ref=labels["ref"],
            commit=labels["commit"],
            image=image,
            latest=latest.reference if latest else None,
            tags=tags,
            size=current.item.get("Size"),
            built_at=labels["built_at"] or None,
            build_id=labels["build_id"],
            hints=dict(labels["hints"]),
            scheme=labels["scheme"],
        )

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
            UpstreamError: the engine is unreachable.
        """
        if await self._index_ready():
            infos = self._indexed_infos()
        else:
            groups = self._group(await self._list_ours())
            infos = [self._info(key, tagged) for key, tagged in groups.items()]
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
        return self._info((owner_slug, name), tagged) if tagged else None

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
            data = await self._inspect(reference)
            if data is None:
                self._drop_tag(reference)
                return None
            self._upsert(_item_from_inspect(data))
            groups = self._indexed_repository(repository)
        else:
            groups = self._group(await self._list_ours(repository=repository))
        tagged = groups.get(key) or []
        focus = next((t for t in tagged if t.reference == reference), None)
        if focus is None:
            return None
        return self._info(key, tagged, focus=focus)

    # ------------------------------------------------------------------ writing
    async def tag(self, source: str, target: str) -> None:
        """Tag ``source`` as ``target`` (moving ``target`` if it existed).

        Raises:
            NotFound: ``source`` does not exist.
            UpstreamError: the engine is unreachable or refused.
        """
        repository, tag = split_reference(target)
        try:
            async with self._upstream(f"tagging {source} as {target}"):
                await self._client().images.tag(source, repository, tag=tag)
        except DockerError as e:
            if e.status == 404:
                raise NotFound(f"image {source} not found") from None
            raise UpstreamError(
                f"Docker refused to tag {source} as {target}: {e.message}"
            ) from None
        if self._live:
            await self._refresh(target)

    async def remove_tag(self, reference: str) -> bool:
        """Remove the reference ``reference`` (untag; the image goes if it was the last tag
        and no container uses it).

        Returns:
            True if removed, False if it did not exist.

        Raises:
            Conflict: Docker refused (e.g. the image is in use and this was its only tag).
            UpstreamError: the engine is unreachable.
        """
        try:
            async with self._upstream(f"removing {reference}"):
                await self._client().images.delete(reference, force=True, noprune=False)
        except DockerError as e:
            if e.status == 404:
                return False
            if e.status == 409:
                raise Conflict(f"cannot remove {reference}: {e.message}") from None
            raise UpstreamError(f"Docker refused to remove {reference}: {e.message}") from None
        self._drop_tag(reference)
        return True

    async def remove_if_untagged(self, image_id: str) -> bool:
        """Remove the image ``image_id`` if it has no tags left and no container uses it.

        Used after a forced rebuild moved every tag away from the old image.

        Returns:
            True if removed; False if it still has tags, is in use, or is gone already.

        Raises:
            UpstreamError: the engine is unreachable.
        """
        data = await self._inspect(image_id)
        if data is None or data.get("RepoTags"):
            return False
        try:
            async with self._upstream(f"removing untagged image {image_id}"):
                await self._client().images.delete(image_id, force=False)
        except DockerError as e:
            if e.status in (404, 409):
                return False
            raise UpstreamError(f"Docker refused to remove {image_id}: {e.message}") from None
        self._drop_image(image_id)
        return True

    async def push(self, reference: str) -> None:
        """Push ``reference`` to its registry (with ``registry_auth`` if given).

        Raises:
            UpstreamError: the push failed (the message says why: registry down, auth, ...).
        """
        repository, tag = split_reference(reference)
        try:
            async with self._upstream(f"pushing {reference}", limit=None):
                await self._client().images.push(
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
            async with self._upstream("listing containers"):
                containers = await self._client().containers.list(all=True)
            users = [c for c in containers if c._container.get("ImageID") in image_ids]
            if users:
                raise Conflict(
                    f"{len(users)} container(s) use image {repository}; stop and remove "
                    "them first or delete with force"
                )
        removed = []
        for t in tagged:
            try:
                async with self._upstream(f"removing {t.reference}"):
                    await self._client().images.delete(t.reference, force=force)
            except DockerError as e:
                if e.status == 404:
                    continue
                if e.status == 409:
                    raise Conflict(f"cannot remove {t.reference}: {e.message}") from None
                raise UpstreamError(
                    f"Docker refused to remove {t.reference}: {e.message}"
                ) from None
            self._drop_tag(t.reference)
            removed.append(t.reference)
        self.log.info("deleted %s (%d tags)", repository, len(removed))
        return removed


class _Tagged:
    """One tag of one of the service's images (internal to the catalog)."""

    __slots__ = ("item", "labels", "reference", "repository", "tag")

    def __init__(
        self,
        *,
        reference: str,
        repository: str,
        tag: str,
        item: dict[str, Any],
        labels: dict[str, Any],
    ) -> None:
        self.reference = reference
        self.repository = repository
        self.tag = tag
        self.item = item
        self.labels = labels
