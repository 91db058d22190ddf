"""What a registry holds, as last read: the listing snapshot and the per-digest image facts.

Sources (:class:`RegistryListing`; the catalog answers from it):

- The **service's index** (:mod:`.index`): one manifest GET and one blob GET give every
  repository, tag and label, on any registry, with no local file.
- **``_catalog``**, where offered, rebuilds the index when there is none (before the first
  listing) and checks it in the background every ``max_stale`` seconds (at start only the
  names are asked, to know whether there is one): every repository of the service is read
  (tags, HEADs, labels), differences are merged into the index and replace the snapshot.
  A 401/403/404/405 (GHCR, Docker Hub) is said once in the log and in
  :meth:`RegistryListing.state`; then the index alone is the listing (images pushed by
  anything but this service are not in it). An unreadable index with a working
  ``_catalog``: source ``"_catalog"``.

Caching rules:

- Image metadata (labels, size) is cached **by manifest digest** (immutable content;
  bounded, least recently used go first).
- The **listing** (repositories -> tags -> digests) is a snapshot. Younger than
  ``cache_ttl`` seconds it is used as is; older, it is answered at once while one
  background refresh reads the index again; older than ``max_stale`` (or none) it is
  refreshed before answering.
- **Registry down or slow**: a listing waits for a refresh at most the client's
  ``timeout`` (``registry_timeout``; a refresh still running then counts as failed until it
  ends). Once one refresh succeeded, a failed one keeps the last good snapshot: listings
  answer it at once, flagged ``stale`` with its age (:meth:`RegistryListing.state`), and
  a refresh is retried every :attr:`RegistryListing.retry_interval` seconds until one
  succeeds. Before any good refresh, the failure is raised (the catalog answers 503/502).
- **Invalidation**: the service's own writes re-read the affected repository
  (:meth:`RegistryListing.update_repo`): the snapshot at once, the index merged. Another
  service's writes show after ``cache_ttl`` plus one refresh; changes made without the
  index after the next ``_catalog`` check. ``cache_ttl = 0`` turns the cache off.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass

from ..catalog import CatalogState
from ..labels import ImageLabels
from ..naming import ImageNamer
from ..reference import LATEST, is_valid_tag
from .client import RegistryClient
from .errors import RegistryError
from .index import ImageFacts, IndexState, RegistryIndex, changes
from .manifest import ManifestRef

__all__ = ["ImageMeta", "RegistryListing", "RepoTags"]

#: ``_catalog`` statuses that mean "not offered here" (GHCR, Docker Hub: 401/404).
_NO_CATALOG = frozenset({401, 403, 404, 405})


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
        self._refreshing: asyncio.Task[None] | None = None
        #: repository -> time of the service's own last write to it
        self._touched: dict[str, float] = {}
        #: the index artifact in the registry, and its state as last read or written
        self.index = RegistryIndex(
            client=client, name=self.api_name(namer.index_repository()), log=log
        )
        self._state = IndexState()
        #: what the last good listing was read from: "index" or "_catalog"
        self.source = "index"
        #: why ``_catalog`` is not used ("" while it is offered or not asked yet)
        self.no_catalog = ""
        self._scan_at: float | None = None  # last _catalog check (monotonic)
        self._failed_since: float | None = None  # wall-clock start of the failing streak
        self._error = ""
        self._retry_handle: asyncio.TimerHandle | None = None
        self._checking: asyncio.Task[None] | None = None
        self._from_state: tuple[IndexState, dict[str, RepoTags]] | None = None

    @property
    def refreshing(self) -> asyncio.Task[None] | None:
        """The refresh started last (it may be done), or None."""
        return self._refreshing

    def api_name(self, repository: str) -> str:
        """Repository name without the registry host (as the API paths use it)."""
        return repository.removeprefix(f"{self.namer.registry}/")

    @property
    def checking(self) -> asyncio.Task[None] | None:
        """The ``_catalog`` check started last (it may be done), or None."""
        return self._checking

    @property
    def retry_interval(self) -> float:
        """Seconds between refreshes while the registry fails: ``cache_ttl``, within 1-10."""
        return min(10.0, max(1.0, self.cache_ttl))

    async def close(self) -> None:
        """Stop a background refresh (and its retries) and a running ``_catalog`` check."""
        if self._retry_handle is not None:
            self._retry_handle.cancel()
            self._retry_handle = None
        for task in (self._checking, self._refreshing):
            if task is not None and not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self._checking = self._refreshing = None

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
        """Re-read one repository into the snapshot (the invalidation of our own writes)
        and merge what was read into the service's index when it differs (after the
        service's own pushes, tag moves and deletes; a read that finds the index behind
        repairs it the same way).

        Raises:
            RegistryError: the registry failed (a failed index write is only logged).
        """
        at = time.time()
        repo = await self.read_repo(repository)
        self._touched[repository] = time.monotonic()
        if repo is None:
            self._repos.pop(repository, None)
        else:
            self._repos[repository] = repo
        await self._record({repository: repo}, at=at)
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

    # ------------------------------------------------------------------ the index
    def _facts(self, digest: str) -> ImageFacts | None:
        meta = self._meta.get(digest)
        if meta is None or meta.labels is None:
            return None
        return ImageFacts(labels=meta.labels.to_labels(), size=meta.size, created=meta.created)

    async def _record(self, repos: dict[str, RepoTags | None], *, at: float) -> None:
        """Merge what was read into the index (a failure is logged: it is written again
        by a later read, see :mod:`.index`)."""
        read = {self.api_name(r): (repo.tags if repo else None) for r, repo in repos.items()}
        digests = {d for tags in read.values() for d in (tags or {}).values()}
        facts = {d: f for d in digests if (f := self._facts(d)) is not None}
        change = changes(read, facts=facts, known=self._state, at=at)
        if not change.repositories or self._state.covers(change):
            return
        try:
            self._state = await self.index.update(change)
        except RegistryError as e:
            self.log.warning("could not update the service's index %r: %s", self.index, e)

    def _from_index(self, state: IndexState, *, read_at: float) -> dict[str, RepoTags]:
        if self._from_state is not None and self._from_state[0] is state:
            for repo in self._from_state[1].values():  # the same index as last time
                repo.read_at = read_at
            return dict(self._from_state[1])
        registry = self.namer.registry
        repos = {}
        for name, tags in state.live().items():
            repository = f"{registry}/{name}"
            if self.namer.parse(repository) is not None:
                repos[repository] = RepoTags(tags=tags, read_at=read_at)
        for digest, facts in state.images.items():
            if digest not in self._meta:
                labels = ImageLabels.parse(facts.labels)
                self._meta[digest] = ImageMeta(
                    labels=labels, size=facts.size, created=facts.created
                )
        self._from_state = state, repos
        return dict(repos)

    # ------------------------------------------------------------------ _catalog
    async def _ours(self) -> list[str] | None:
        """The service's repositories by ``_catalog`` (names only, 1,000 a page); None
        where it is refused (said once).

        Raises:
            RegistryError: the registry failed otherwise.
        """
        registry = self.namer.registry
        try:
            names = await self.client.catalog()
        except RegistryError as e:
            if e.status not in _NO_CATALOG:
                raise
            self.no_catalog = (
                f"the registry answers {e.status} to /v2/_catalog (as GHCR and Docker Hub do): "
                f"listing from the service's index {self.index.name} only"
            )
            self.log.warning("%s (%s)", self.no_catalog, e)
            return None
        return [f"{registry}/{n}" for n in names if self.namer.parse(f"{registry}/{n}") is not None]

    async def _scan(self, *, known: dict[str, RepoTags]) -> dict[str, RepoTags] | None:
        """Every repository of the service read by ``_catalog``; None where it is refused
        (RegistryError: the registry failed)."""
        ours = await self._ours()
        if ours is None:
            return None
        read = await asyncio.gather(*(self.read_repo(r, known=known.get(r)) for r in ours))
        return {r: repo for r, repo in zip(ours, read, strict=True) if repo is not None}

    # ------------------------------------------------------------------ the snapshot
    async def _refresh_all(self) -> None:
        started = time.monotonic()
        scan_due = self._scan_at is not None and started - self._scan_at > self.max_stale
        index_error: RegistryError | None = None
        try:
            state = await self.index.read()
        except RegistryError as e:
            if e.kind in ("unreachable", "auth"):
                raise
            self.log.warning("cannot read the service's index %r: %s", self.index, e)
            state, self.source, index_error = None, "_catalog", e
        else:
            self.source = "index"
            self._state = state or IndexState()
        repos = self._from_index(self._state, read_at=started)
        if state is None and not self.no_catalog:  # no index yet (or unreadable): rebuild
            repos = await self._check(repos, started=started) or repos
        elif self._scan_at is None and not self.no_catalog:  # a start with an index: is there
            self._scan_at = started  # a _catalog (names only)? checked after max_stale
            await self._ours()
        elif scan_due and not self.no_catalog:  # answer from the index, check meanwhile
            self._scan_at = started
            task = asyncio.create_task(self._check_guarded(repos, started), name="index-check")
            self._checking = task
        if index_error is not None and self.no_catalog:
            raise index_error  # and no _catalog to list from instead
        self._keep_own_writes(repos, started)
        self._good(repos, started)

    async def _check(
        self, repos: dict[str, RepoTags], *, started: float
    ) -> dict[str, RepoTags] | None:
        """Read every repository by ``_catalog`` and merge the differences into the index:
        the repositories read; None where ``_catalog`` is refused (RegistryError: the
        registry failed)."""
        wall = time.time()
        scanned = await self._scan(known={})
        if scanned is None:
            return None
        self._scan_at = started
        if self.source == "index":
            gone: dict[str, RepoTags | None] = {r: None for r in repos if r not in scanned}
            await self._record({**gone, **scanned}, at=wall)
        return scanned

    async def _check_guarded(self, repos: dict[str, RepoTags], started: float) -> None:
        """:meth:`_check` in the background; what it read replaces the snapshot."""
        try:
            scanned = await self._check(repos, started=started)
        except RegistryError as e:
            self.log.warning("checking the service's index against _catalog failed: %s", e)
            return
        if scanned is not None and self._snapshot_at is not None:
            self._keep_own_writes(scanned, started)
            self._repos = scanned

    def _keep_own_writes(self, fresh: dict[str, RepoTags], started: float) -> None:
        """The service's own writes during a refresh are newer than what it read."""
        for repository, when in list(self._touched.items()):
            if when < started:
                del self._touched[repository]
            elif repository in self._repos:
                fresh[repository] = self._repos[repository]
            else:
                fresh.pop(repository, None)

    def _good(self, repos: dict[str, RepoTags], started: float) -> None:
        if self._failed_since is not None:
            self.log.info("the registry answers again: listings are current")
        self._repos, self._snapshot_at = repos, started
        self._failed_since, self._error = None, ""
        took = time.monotonic() - started
        self.log.debug(
            "registry listing from %s: %d repos in %.2f s", self.source, len(repos), took
        )

    def _start_refresh(self) -> asyncio.Task[None]:
        task = self._refreshing
        if task is None or task.done():
            task = asyncio.create_task(self._refresh_guarded(), name="registry-refresh")
            # its error is logged by _refresh_guarded: marked retrieved
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
            self._refreshing = task
        return task

    async def _refresh(self) -> None:
        """One refresh at a time; callers wait for the same one, at most the client's
        ``timeout`` (a refresh is several requests): then it goes on, and the listing counts
        as failing (stale, see :meth:`state`) until it ends.

        Raises:
            RegistryError: it failed; ``unreachable`` when it took longer.
        """
        try:
            await asyncio.wait_for(asyncio.shield(self._start_refresh()), self.client.timeout)
        except TimeoutError:
            error = f"the registry did not answer a listing within {self.client.timeout:g} s"
            if self._failed_since is None:
                self._failed_since, self._error = time.time(), error
                self.log.warning("registry refresh is slow: %s", error)
            raise RegistryError(error, kind="unreachable") from None

    async def _refresh_guarded(self) -> None:
        try:
            await self._refresh_all()
        except RegistryError as e:
            if self._failed_since is None:
                self._failed_since = time.time()
                self.log.warning(
                    "registry refresh failed: %s%s",
                    e,
                    "; answering the last good listing (stale)" if self._snapshot_at else "",
                )
            self._error = e.message
            if self._snapshot_at is not None:  # retried until it works, listings or not
                retry = asyncio.get_running_loop().call_later(self.retry_interval, self._retry)
                self._retry_handle = retry
            raise

    def _retry(self) -> None:
        self._retry_handle = None
        if self._failed_since is not None:
            self._start_refresh()

    async def snapshot(self) -> dict[str, RepoTags]:
        """The repositories (full name -> tags), refreshed as the cache rules say; the last
        good snapshot (see :meth:`state`) while the registry fails.

        Raises:
            RegistryError: there is no good snapshot yet and the refresh failed.
        """
        if self._snapshot_at is None:
            await self._refresh()
            return self._repos
        age = time.monotonic() - self._snapshot_at
        if self._failed_since is not None:
            self._start_refresh()
        elif self.cache_ttl <= 0 or age > self.max_stale:
            try:
                await self._refresh()
            except RegistryError:
                pass  # answered stale, flagged by state()
        elif age > self.cache_ttl:
            self._start_refresh()
        return self._repos

    def state(self) -> CatalogState:
        """Where listings come from and how fresh they are (see :class:`CatalogState`)."""
        at = self._snapshot_at
        good = at is not None
        note = self.no_catalog
        if self._failed_since is not None:
            note = f"the registry cannot be read: {self._error}" + (f"; {note}" if note else "")
        return CatalogState(
            live=good and self._failed_since is None,
            stale=good and self._failed_since is not None,
            since=self._failed_since,
            last_good_age_s=None if at is None else time.monotonic() - at,
            source=self.source,
            note=note,
        )
