"""The image catalog read from a registry (registry mode, when ``registry_url`` is set).

:class:`RegistryCatalog` answers the same methods as
:class:`~repo2docker_service.images.docker.DockerCatalog`, from the registry through
:class:`~.client.RegistryClient`, and turns :class:`~.errors.RegistryError` into the
service's errors in one place (unreachable: ``Unavailable`` 503; refused or broken:
``UpstreamError`` 502; deletes not allowed: ``Conflict`` 409).

Listings are answered from the cached snapshot of :class:`~.listing.RegistryListing` (see
:mod:`.listing` for the caching and invalidation rules). Cache hits of builds
(:meth:`RegistryCatalog.image_info`) always ask the registry: a manifest HEAD for the exact
reference (plus, with a stale snapshot, the tag list).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from ...errors import Conflict, NotFound, Unavailable, UpstreamError
from ..catalog import Catalog, CatalogState, ImageInfo, TagRecord, select_images
from ..labels import ImageLabels
from ..naming import ImageNamer
from ..reference import LATEST, PINNED, is_digest, split_reference
from .client import RegistryClient
from .errors import RegistryError
from .listing import ImageMeta, RegistryListing, RepoTags
from .manifest import pin_manifest

__all__ = ["RegistryCatalog"]


@dataclass
class _Entry:
    """One tag of one of the service's images, checked against its labels."""

    tag: str
    digest: str
    meta: ImageMeta
    labels: ImageLabels


class RegistryCatalog(Catalog):
    """Catalog of the service's images in a registry (see :mod:`.listing` for caching).

    The service's repositories are found in the registry's ``_catalog`` by their names (the
    namer's pattern) and checked against their labels like
    :class:`~repo2docker_service.images.docker.DockerCatalog` does: a tag whose image
    labels name another owner or name is ignored.

    Args:
        namer: how image references are made (its ``registry`` is this registry).
        client: the registry client (owned by the catalog: :meth:`close` closes it).
        cache_ttl: seconds a listing snapshot is used without a refresh (0: no cache).
        max_stale: seconds after which a snapshot is refreshed before answering (at least
            ``cache_ttl``); between the two, the old snapshot is answered while a
            background refresh runs.
        concurrency: registry requests at the same time during a refresh.
        meta_cache_size: manifest digests whose labels are kept.
        log: the logger to use.

    Raises:
        ValueError: the namer has no registry.
    """

    name = "registry"

    def __init__(
        self,
        *,
        namer: ImageNamer,
        client: RegistryClient,
        cache_ttl: float = 30.0,
        max_stale: float = 300.0,
        concurrency: int = 16,
        meta_cache_size: int = 20000,
        log: logging.Logger | None = None,
    ) -> None:
        if not namer.registry:
            raise ValueError("RegistryCatalog needs a namer with a registry")
        self.namer = namer
        self.client = client
        self.log = log or logging.getLogger("repo2docker_service.catalog")
        #: the cached listing (snapshot and per-digest labels)
        self.listing = RegistryListing(
            namer=namer,
            client=client,
            cache_ttl=cache_ttl,
            max_stale=max_stale,
            concurrency=concurrency,
            meta_cache_size=meta_cache_size,
            log=self.log,
        )
        #: repository -> (the RepoTags it was computed from, its ImageInfo or None)
        self._infos: dict[str, tuple[RepoTags, ImageInfo | None]] = {}
        self._warned: set[tuple[str, str]] = set()

    def __repr__(self) -> str:
        return f"RegistryCatalog({self.client.api_url!r}, namer={self.namer!r})"

    # ------------------------------------------------------------------ plumbing
    @property
    def registry(self) -> str:
        """The registry ``host[:port]``."""
        return self.namer.registry

    @property
    def cache_ttl(self) -> float:
        """Seconds a listing snapshot is used without a refresh (0: no cache)."""
        return self.listing.cache_ttl

    @property
    def max_stale(self) -> float:
        """Seconds after which a snapshot is refreshed before answering."""
        return self.listing.max_stale

    def _split(self, reference: str) -> tuple[str, str]:
        """``(repository, tag-or-digest)`` of a full reference (``repo:tag``, ``repo@digest``)."""
        if "@" in reference:
            repository, _, digest = reference.partition("@")
            return repository, digest
        return split_reference(reference)

    @asynccontextmanager
    async def _upstream(self, what: str) -> AsyncIterator[None]:
        """Turn :class:`RegistryError` into the service's errors (the catalog's choke point)."""
        try:
            yield
        except RegistryError as e:
            where = f"the registry {self.client.api_url}"
            if e.kind == "unreachable":
                raise Unavailable(
                    f"Cannot reach {where} while {what}: {e.message}. Check that the registry "
                    "is running and registry_url / registry_api_url point at it; builds "
                    "still queue and listings work again once it is back."
                ) from None
            if e.kind == "unsupported":
                raise Conflict(f"{where} cannot do this ({what}): {e.message}") from None
            raise UpstreamError(f"{where} failed while {what}: {e.message}") from None

    async def start(self) -> None:
        """Check that the registry answers and accepts the login (``GET /v2/``).

        Raises:
            RegistryError: as :meth:`RegistryClient.check` (the app decides what is fatal).
        """
        await self.client.check()

    def state(self) -> CatalogState:
        """Where listings come from (the service's index or ``_catalog``) and whether they
        are stale (see :mod:`.listing`)."""
        return self.listing.state()

    async def close(self) -> None:
        """Stop a background refresh and close the client."""
        await self.listing.close()
        await self.client.close()

    # ------------------------------------------------------------------ building infos
    def _entries(self, repository: str, repo: RepoTags) -> list[_Entry]:
        """The tags of ``repository`` whose labels say they belong there."""
        key = self.namer.parse(repository)
        entries = []
        for tag, digest in repo.tags.items():
            meta = self.listing.meta(digest)
            if meta is None or meta.labels is None:
                continue
            labels = meta.labels
            if key != (labels.owner_slug(), labels.name):
                if (repository, tag) not in self._warned:
                    self._warned.add((repository, tag))
                    self.log.warning(
                        "ignoring %s:%s: its labels say owner %r, name %r",
                        repository,
                        tag,
                        labels.owner,
                        labels.name,
                    )
                continue
            entries.append(_Entry(tag=tag, digest=digest, meta=meta, labels=labels))
        return entries

    def _info(
        self, repository: str, entries: list[_Entry], *, focus: str | None = None
    ) -> ImageInfo:
        """One ImageInfo from the entries of one repository (described by ``focus``)."""
        owner_slug, name = self.namer.parse(repository) or ("", "")
        latest = next((e for e in entries if e.tag == LATEST), None)
        newest_first = sorted(
            entries, key=lambda e: (e.labels.built_at, e.meta.created, e.tag), reverse=True
        )
        current = next((e for e in entries if e.tag == focus), None) or latest or newest_first[0]
        tag = current.tag
        if tag in (LATEST, PINNED):
            tag = next(
                (
                    e.tag
                    for e in newest_first
                    if e.tag not in (LATEST, PINNED) and e.digest == current.digest
                ),
                tag,
            )
        tags = [LATEST] if latest else []
        tags += [e.tag for e in newest_first if e.tag not in (LATEST, PINNED)]
        return ImageInfo.from_labels(
            current.labels,
            owner_slug=owner_slug,
            name=name,
            image=f"{repository}:{tag}",
            latest=f"{repository}:{LATEST}" if latest else None,
            tags=tags,
            size=current.meta.size or None,
            pinned=any(e.tag == PINNED for e in entries),
        )

    # ------------------------------------------------------------------ Catalog API
    async def exists(self, reference: str) -> bool:
        """Whether ``reference`` exists in the registry (a manifest HEAD).

        Raises:
            Unavailable: the registry is unreachable.
            UpstreamError: it refused or failed.
        """
        repository, ref = self._split(reference)
        if not repository.startswith(f"{self.registry}/"):
            return False
        async with self._upstream(f"looking up {reference}"):
            name = self.listing.api_name(repository)
            return await self.client.head_manifest(name, ref) is not None

    async def image_id(self, reference: str) -> str | None:
        """The manifest digest behind ``reference`` (what ``tag`` can restore), or None."""
        repository, ref = self._split(reference)
        if not repository.startswith(f"{self.registry}/"):
            return None
        async with self._upstream(f"looking up {reference}"):
            found = await self.client.head_manifest(self.listing.api_name(repository), ref)
        return found.digest if found else None

    async def image_info(self, reference: str) -> ImageInfo | None:
        """Describe the image ``reference`` (the build cache check: one manifest HEAD, the
        labels from the digest cache, the repository's tags from a fresh snapshot or the
        registry).

        Returns:
            ImageInfo whose ``image`` is ``reference``, or None when absent or not ours.

        Raises:
            Unavailable: the registry is unreachable.
            UpstreamError: it refused or failed.
        """
        repository, tag = self._split(reference)
        if self.namer.parse(repository) is None or is_digest(tag):
            return None
        name = self.listing.api_name(repository)
        async with self._upstream(f"looking up {reference}"):
            head = await self.client.head_manifest(name, tag)
            if head is None:
                return None
            await self.listing.meta_for(name, head.digest)
            repo = self.listing.fresh_repo(repository, tag=tag, digest=head.digest)
            if repo is None:
                repo = await self.listing.update_repo(repository)
        if repo is None:
            return None
        repo = RepoTags(tags={**repo.tags, tag: head.digest}, read_at=repo.read_at)
        entries = self._entries(repository, repo)
        if not any(e.tag == tag for e in entries):
            return None
        return self._info(repository, entries, focus=tag)

    async def list_images(
        self, *, owner: str | None = None, include_shared: bool = False
    ) -> list[ImageInfo]:
        """The service's environments in the registry (from the listing snapshot).

        Raises:
            Unavailable: the registry is unreachable (and there is no usable snapshot).
            UpstreamError: it refused or failed.
        """
        async with self._upstream("listing images"):
            repos = await self.listing.snapshot()
        infos = []
        known = self._infos
        self._infos = {}
        for repository, repo in repos.items():
            cached = known.get(repository)
            if cached is None or cached[0].tags != repo.tags:
                entries = self._entries(repository, repo)
                cached = (repo, self._info(repository, entries) if entries else None)
            self._infos[repository] = cached
            if cached[1] is not None:
                infos.append(cached[1])
        # the cached records themselves, as DockerCatalog's: an info is never changed once
        # listed, so each keeps the JSON it made once (ImageInfo.to_json); copies made every
        # listing of 1,000 images build ~20,000 objects again (the slow listings' GC)
        return select_images(infos, owner=owner, include_shared=include_shared)

    async def get(self, *, owner_slug: str, name: str) -> ImageInfo | None:
        """One environment, read from the registry (and updated in the snapshot).

        Raises:
            Unavailable: the registry is unreachable.
        """
        try:
            repository = self.namer.repository(owner_slug=owner_slug, name=name)
        except ValueError:
            return None
        async with self._upstream(f"reading {repository}"):
            repo = await self.listing.update_repo(repository)
        if repo is None:
            return None
        entries = self._entries(repository, repo)
        return self._info(repository, entries) if entries else None

    async def tag_records(self, *, owner_slug: str, name: str) -> list[TagRecord] | None:
        """Every tag of one environment as the registry has it now (``image_id`` is the
        manifest digest; ``size`` compressed).

        Raises:
            Unavailable, UpstreamError: registry trouble.
        """
        try:
            repository = self.namer.repository(owner_slug=owner_slug, name=name)
        except ValueError:
            return None
        async with self._upstream(f"reading {repository}"):
            repo = await self.listing.update_repo(repository)
        entries = self._entries(repository, repo) if repo else []
        return [
            TagRecord(
                tag=e.tag,
                reference=f"{repository}:{e.tag}",
                image_id=e.digest,
                labels=e.labels,
                size=e.meta.size or None,
                created=e.meta.created,
            )
            for e in entries
        ] or None

    async def refresh(self, reference: str) -> None:
        """Read the tags of ``reference``'s repository again into the snapshot (and the
        service's index: a pushed tag that no tag move announces)."""
        repository, _ = self._split(reference)
        async with self._upstream(f"reading {repository}"):
            await self.listing.update_repo(repository)

    async def mark_pinned(self, source: str, target: str) -> None:
        """The pin marker as a manifest of its own: ``source``'s manifest with an
        annotation (so its digest is unique and deleting it takes no other tag along).

        Raises:
            NotFound: ``source`` does not exist.
            Unavailable, UpstreamError: registry trouble.
        """
        repository, source_ref = self._split(source)
        name = self.listing.api_name(repository)
        async with self._upstream(f"pinning {source}"):
            got = await self.client.get_manifest(name, source_ref)
            if got is None:
                raise NotFound(f"image {source} not found in the registry")
            body = pin_manifest(got[1], pinned=source)
            old = await self.client.head_manifest(name, split_reference(target)[1])
            if old is not None:
                await self.client.delete_manifest(name, old.digest)
            await self.client.put_manifest(
                name, split_reference(target)[1], media_type=got[0].media_type, body=body
            )
            await self.listing.update_repo(repository)

    async def tag(self, source: str, target: str) -> None:
        """Point ``target`` at the manifest of ``source`` inside the registry (manifest GET +
        PUT; no layers move). ``source`` is a reference, ``repository@digest`` or a bare
        digest of ``target``'s repository.

        Raises:
            NotFound: ``source`` does not exist.
            Unavailable, UpstreamError: registry trouble.
        """
        target_repo, target_tag = self._split(target)
        if is_digest(source):
            source_repo, source_ref = target_repo, source
        else:
            source_repo, source_ref = self._split(source)
        if source_repo != target_repo:
            raise UpstreamError(f"cannot tag {source} as {target}: only tags within one repository")
        name = self.listing.api_name(target_repo)
        async with self._upstream(f"tagging {source} as {target}"):
            got = await self.client.get_manifest(name, source_ref)
            if got is None:
                raise NotFound(f"image {source} not found in the registry")
            ref, body = got
            await self.client.put_manifest(name, target_tag, media_type=ref.media_type, body=body)
            await self.listing.update_repo(target_repo)
        self.log.info("tagged %s as %s in the registry", source, target)

    async def remove_tag(self, reference: str) -> bool:
        """Delete the manifest ``reference`` points at.

        The Distribution API has no "untag": deleting the manifest also removes every
        other tag of the repository that points at the same digest.

        Returns:
            True if removed, False if there was no such reference.

        Raises:
            Conflict: the registry does not allow deletes.
            Unavailable, UpstreamError: registry trouble.
        """
        repository, ref = self._split(reference)
        name = self.listing.api_name(repository)
        async with self._upstream(f"removing {reference}"):
            head = await self.client.head_manifest(name, ref)
            if head is None:
                return False
            removed = await self.client.delete_manifest(name, head.digest)
            await self.listing.update_repo(repository)
        return removed

    async def push(self, reference: str) -> None:
        """Nothing to push: builds push with repo2docker and tags are set in the registry.

        Checks that ``reference`` is there.

        Raises:
            UpstreamError: it is not.
        """
        if not await self.exists(reference):
            raise UpstreamError(f"{reference} is not in the registry after the build pushed it")

    async def delete(self, *, owner_slug: str, name: str, force: bool = False) -> list[str]:
        """Delete every manifest of an environment (all its tags).

        ``force`` changes nothing: the registry cannot tell whether servers run the image
        (running servers keep their pulled copy).

        Returns:
            The references removed.

        Raises:
            NotFound: no such environment.
            Conflict: the registry does not allow deletes (``storage.delete.enabled``).
            Unavailable, UpstreamError: registry trouble.
        """
        try:
            repository = self.namer.repository(owner_slug=owner_slug, name=name)
        except ValueError:
            raise NotFound(f"no image {owner_slug}/{name}") from None
        api_name = self.listing.api_name(repository)
        async with self._upstream(f"deleting {repository}"):
            repo = await self.listing.update_repo(repository)
            entries = self._entries(repository, repo) if repo else []
            if not entries:
                raise NotFound(f"no image {owner_slug}/{name}")
            for digest in dict.fromkeys(e.digest for e in entries):
                await self.client.delete_manifest(api_name, digest)
            await self.listing.update_repo(repository)
        removed = [f"{repository}:{e.tag}" for e in entries]
        self.log.info("deleted %s from the registry (%d tags)", repository, len(removed))
        return removed
