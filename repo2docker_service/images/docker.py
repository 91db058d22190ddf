"""The image catalog read from a Docker engine (aiodocker).

The service's images carry labels (see :mod:`repo2docker_service.builds.model`); those
labels are the catalog. :class:`DockerCatalog` lists them with one API call, groups tags by
``(owner_slug, name)`` repository and checks each tag against its labels: a tag whose
repository name does not match the owner and name in the labels is ignored (ownership
comes from labels, never from names alone).

All Docker calls go through one choke point that turns "cannot connect" and engine errors
into :class:`~repo2docker_service.errors.UpstreamError`; "not found" becomes None, False or
:class:`~repo2docker_service.errors.NotFound` depending on the method.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
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
        log: logging.Logger | None = None,
    ) -> None:
        self.namer = namer
        self.url = url
        self.request_timeout = request_timeout
        self.log = log or logging.getLogger("repo2docker_service.catalog")
        self._registry_auth = dict(registry_auth) if registry_auth else None
        self._docker: aiodocker.Docker | None = None

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
        """Close the client (a later call connects again)."""
        docker, self._docker = self._docker, None
        if docker is not None:
            await docker.close()

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
        groups = self._group(await self._list_ours(repository=repository))
        tagged = groups.get((owner_slug, name))
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
        tagged = self._group(await self._list_ours(repository=repository)).get((owner_slug, name))
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
