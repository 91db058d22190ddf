"""What a registry holds, as last read: the listing snapshot and the per-digest image facts.

Caching rules (:class:`RegistryListing`; the catalog answers from it):

- Image metadata (labels, size) is cached **by manifest digest**. A digest names immutable
  content, so these entries never go stale; the cache is bounded (least recently used
  entries go first).
- The **listing** (which repositories exist, which tags they have, which digest each tag
  points at) is a snapshot refreshed from the registry. A snapshot younger than
  ``cache_ttl`` seconds is used as is. An older one is still answered at once while one
  background refresh reads the registry again (stale-while-revalidate); one older than
  ``max_stale`` seconds (or none at all) is refreshed before answering. A refresh that
  cannot reach the registry drops the snapshot, so listings then answer 503 until the
  registry is back. A refresh reads ``_catalog``, every repository's tag list and a
  manifest HEAD of ``latest`` and of new tags; known commit tags keep their digest except
  in a full refresh (a HEAD of every tag) at least every ``max_stale`` seconds.
- **Invalidation**: the service's own writes (a build's tags, deletes) update the affected
  repository in the snapshot at once (:meth:`RegistryListing.update_repo`), so a user sees
  their own build or delete in the next listing. Changes made by anything else (another
  replica, a manual push or delete) show up after at most ``cache_ttl`` seconds plus one
  refresh. ``cache_ttl = 0`` turns the listing cache off.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass

from ..labels import ImageLabels
from ..naming import ImageNamer
from ..reference import LATEST, is_valid_tag
from .client import RegistryClient
from .errors import RegistryError
from .manifest import ManifestRef

__all__ = ["ImageMeta", "RegistryListing", "RepoTags"]


@dataclass
class ImageMeta:
    """Cached facts about one manifest digest (immutable content).

    Attributes:
        labels: the service's labels of the image; None if not ours (or gone).
        size: bytes of config and layers.
        created: the config's ``created`` time (ISO 8601) or "".
    """

    labels: ImageLabels | None
    size: int
    created: str


@dataclass
class RepoTags:
    """One repository as last read.

    Attributes:
        tags: tag -> manifest digest.
        read_at: ``time.monotonic()`` of the read.
    """

    tags: dict[str, str]
    read_at: float


class RegistryListing:
    """The service's repositories in a registry, cached as the module docstring says.

    Args:
        namer: recognises the service's repositories (its ``registry`` is this registry).
        client: the registry client.
        cache_ttl: seconds a snapshot is used without a refresh (0: no cache).
        max_stale: seconds after which a snapshot is refreshed before answering (at least
            ``cache_ttl``).
        concurrency: registry requests at the same time during a refresh.
        meta_cache_size: manifest digests whose facts are kept.
        log: the logger to use.
    """

    def __init__(
        self,
        *,
        namer: ImageNamer,
        client: RegistryClient,
        cache_ttl: float,
        max_stale: float,
        concurrency: int,
        meta_cache_size: int,
        log: logging.Logger,
    ) -> None:
        self.namer = namer
        self.client = client
        self.cache_ttl = max(0.0, float(cache_ttl))
        self.max_stale = max(self.cache_ttl, float(max_stale))
        self.log = log
        self._limit = asyncio.Semaphore(max(1, concurrency))
        self._meta: OrderedDict[str, ImageMeta] = OrderedDict()
        self._meta_cache_size = meta_cache_size
        self._repos: dict[str, RepoTags] = {}
        self._snapshot_at: float | None = None
        self._full_at: float | None = None  # last refresh that HEADed every tag
        self._refreshing: asyncio.Task[None] | None = None
        #: repository -> time of the service's own last write to it
        self._touched: dict[str, float] = {}

    @property
    def refreshing(self) -> asyncio.Task[None] | None:
        """The refresh started last (it may be done), or None."""
        return self._refreshing

    def api_name(self, repository: str) -> str:
        """Repository name without the registry host (as the API paths use it)."""
        return repository.removeprefix(f"{self.namer.registry}/")

    async def close(self) -> None:
        """Stop a background refresh."""
        task, self._refreshing = self._refreshing, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    # ------------------------------------------------------------------ per digest
    def meta(self, digest: str) -> ImageMeta | None:
        """The cached facts of ``digest``, or None when not read yet."""
        return self._meta.get(digest)

    async def meta_for(self, name: str, digest: str) -> ImageMeta:
        """The facts of ``digest`` in repository ``name`` (API name), read once.

        Raises:
            RegistryError: the registry failed.
        """
        meta = self._meta.get(digest)
        if meta is not None:
            self._meta.move_to_end(digest)
            return meta
        async with self._limit:
            details = await self.client.image_details(name, digest)
        if details is None:  # deleted between HEAD and GET
            return ImageMeta(labels=None, size=0, created="")
        meta = ImageMeta(
            labels=ImageLabels.parse(details.labels), size=details.size, created=details.created
        )
        self._meta[digest] = meta
        while len(self._meta) > self._meta_cache_size:
            self._meta.popitem(last=False)
        return meta

    # ------------------------------------------------------------------ per repository
    async def _head(self, name: str, tag: str) -> ManifestRef | None:
        async with self._limit:
            return await self.client.head_manifest(name, tag)

    async def read_repo(self, repository: str, *, known: RepoTags | None = None) -> RepoTags | None:
        """Read the tags of one repository and the digest behind each (None: no tags).

        With ``known`` (the last read), only ``latest`` and tags new since then get a
        manifest HEAD; the other tags keep their digest (a commit tag only moves when that
        commit is rebuilt with ``force``; the service's own rebuilds re-read the
        repository fully, others' are caught by the full refresh every ``max_stale``).

        Raises:
            RegistryError: the registry failed.
        """
        name = self.api_name(repository)
        async with self._limit:
            tags = [t for t in await self.client.tags(name) if is_valid_tag(t)]
        found: dict[str, str] = {}
        heads = []
        for tag in tags:
            if known is not None and tag != LATEST and tag in known.tags:
                found[tag] = known.tags[tag]
            else:
                heads.append(tag)
        refs = await asyncio.gather(*(self._head(name, tag) for tag in heads))
        found.update(
            {tag: ref.digest for tag, ref in zip(heads, refs, strict=True) if ref is not None}
        )
        found = {tag: found[tag] for tag in tags if tag in found}
        await asyncio.gather(*(self.meta_for(name, d) for d in set(found.values())))
        if not found:
            return None
        return RepoTags(tags=found, read_at=time.monotonic())

    async def update_repo(self, repository: str) -> RepoTags | None:
        """Re-read one repository into the snapshot (the invalidation of our own writes).

        Raises:
            RegistryError: the registry failed.
        """
        repo = await self.read_repo(repository)
        self._touched[repository] = time.monotonic()
        if repo is None:
            self._repos.pop(repository, None)
        else:
            self._repos[repository] = repo
        return repo

    def fresh_repo(self, repository: str, *, tag: str, digest: str) -> RepoTags | None:
        """The snapshot's entry for ``repository`` if it is younger than ``cache_ttl`` and
        has ``tag`` at ``digest``; else None (read it again)."""
        repo = self._repos.get(repository)
        if (
            repo is not None
            and self.cache_ttl > 0
            and time.monotonic() - repo.read_at <= self.cache_ttl
            and repo.tags.get(tag) == digest
        ):
            return repo
        return None

    # ------------------------------------------------------------------ the snapshot
    async def _refresh_all(self) -> None:
        started = time.monotonic()
        full = self._full_at is None or started - self._full_at > self.max_stale
        registry = self.namer.registry
        names = await self.client.catalog()
        ours = [f"{registry}/{n}" for n in names if self.namer.parse(f"{registry}/{n}") is not None]
        previous = {} if full else self._repos
        repos = await asyncio.gather(*(self.read_repo(r, known=previous.get(r)) for r in ours))
        fresh = {r: repo for r, repo in zip(ours, repos, strict=True) if repo is not None}
        # the service's own writes during this refresh are newer than what it read
        for repository, when in list(self._touched.items()):
            if when < started:
                del self._touched[repository]
            elif repository in self._repos:
                fresh[repository] = self._repos[repository]
            else:
                fresh.pop(repository, None)
        self._repos = fresh
        self._snapshot_at = started
        if full:
            self._full_at = started
        self.log.debug(
            "registry listing %s: %d repositories in %.2f s",
            "read" if full else "refreshed",
            len(fresh),
            time.monotonic() - started,
        )

    def _start_refresh(self) -> asyncio.Task[None]:
        task = self._refreshing
        if task is None or task.done():
            task = asyncio.create_task(self._refresh_guarded(), name="registry-refresh")
            task.add_done_callback(_ignore_result)
            self._refreshing = task
        return task

    async def _refresh(self) -> None:
        """One refresh at a time; concurrent callers wait for the same one."""
        await asyncio.shield(self._start_refresh())

    async def _refresh_guarded(self) -> None:
        try:
            await self._refresh_all()
        except RegistryError as e:
            # nothing stale is answered once the registry is known to be unreachable
            self._snapshot_at = self._full_at = None
            self._repos = {}
            self.log.warning("registry refresh failed: %s", e)
            raise

    async def snapshot(self) -> dict[str, RepoTags]:
        """The repositories (full name -> tags), refreshed as the cache rules say.

        Raises:
            RegistryError: a refresh that had to finish first failed.
        """
        now = time.monotonic()
        age = None if self._snapshot_at is None else now - self._snapshot_at
        if self.cache_ttl <= 0 or age is None or age > self.max_stale:
            await self._refresh()
        elif age > self.cache_ttl:
            self._start_refresh()
        return self._repos


def _ignore_result(task: asyncio.Task[None]) -> None:
    if not task.cancelled():
        task.exception()  # logged by _refresh_guarded; marks it retrieved
