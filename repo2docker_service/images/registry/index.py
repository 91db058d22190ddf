"""The service's own index of its repositories, kept in the registry itself.

Hosted registries (GHCR, Docker Hub) answer 404 or 401 to ``/v2/_catalog``, so the service
cannot find its repositories by listing the registry. It keeps their list, and the labels
a listing needs, as a small OCI artifact in the registry (OCI Image Manifest 1.1,
"artifacts"): an image manifest with ``artifactType`` :data:`INDEX_MEDIA_TYPE`, the empty
config descriptor and one layer, a JSON blob (:class:`IndexState`). It lives at
:meth:`~..naming.ImageNamer.index_repository` (under the image prefix; its name part has a
``__`` that no environment name can have) with tag :data:`INDEX_TAG`. A restarted service,
or a second one, reads it and lists every image with no local files and two requests.

The blob (sorted JSON, so equal states have equal digests)::

    {"version": 1,
     "repositories": {"<api name>": {"<tag>": {"digest": "sha256:...", "at": 1764480000.5},
                                     "<gone tag>": {"deleted": true, "at": 1764480100.0}}},
     "images": {"sha256:...": {"labels": {...}, "size": 123, "created": "..."}}}

**Merge rule** (:func:`merge`; no registry offers a compare-and-swap on a tag, so writers
merge instead): every ``(repository, tag)`` entry carries ``at``, the wall-clock time
(seconds) at which its writer *started reading* the registry state it records; deletions
are entries too (tombstones, ``deleted``). Of two entries for one key the later ``at``
wins; on equal ``at`` a tombstone wins, then the larger digest (so the result does not
depend on the order). Image facts (labels by manifest digest) are immutable and are
united. So add/add of different tags keeps both, add/delete and delete/add keep the later,
and one tag written with two digests keeps the later; a delete is never undone by merging
an older state that still has the tag. Tombstones are dropped after
:data:`TOMBSTONE_TTL` seconds, far longer than a writer keeps re-applying its own changes
(:data:`HEAL_WINDOW`), so a dropped tombstone cannot let an old add come back.

**Writing** (:meth:`RegistryIndex.update`): read the index (its manifest digest), merge the
change, upload, ``PUT`` the tag, then ``HEAD`` the tag: a digest other than the one
written means another writer came in between, and the loop reads, merges and writes
again. A writer whose state was overwritten after its check by another writer that read
before it cannot see it at once; each writer therefore keeps its own changes for
:data:`HEAL_WINDOW` seconds and writes them again whenever a later read of the index lacks
them (:meth:`RegistryIndex.read` does this), so no entry is lost for longer than one
listing refresh while its writer runs.

Own code, not a library: no maintained Python library stores a mergeable document as an
OCI artifact through the Distribution API (ORAS's Python client pushes files but has no
merge, no conditional rewrite, and would add a second HTTP stack beside the client's).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .client import RegistryClient
from .errors import RegistryError
from .manifest import MEDIA_OCI_MANIFEST, json_object

__all__ = [
    "HEAL_WINDOW",
    "INDEX_MEDIA_TYPE",
    "INDEX_TAG",
    "TOMBSTONE_TTL",
    "ImageFacts",
    "IndexState",
    "RegistryIndex",
    "TagEntry",
    "changes",
    "merge",
]

#: ``artifactType`` of the index manifest and media type of its one layer.
INDEX_MEDIA_TYPE = "application/vnd.repo2docker-service.index.v1+json"
#: The tag of the index in its repository.
INDEX_TAG = "v1"
#: Seconds a tombstone is kept (7 days).
TOMBSTONE_TTL = 7 * 24 * 3600.0
#: Seconds a writer re-applies its own changes when a read of the index lacks them.
HEAL_WINDOW = 600.0
#: The OCI empty descriptor's media type and content (``{}``), the artifact's config.
EMPTY_MEDIA_TYPE = "application/vnd.oci.empty.v1+json"
_EMPTY = b"{}"
_MAX_INDEX_BYTES = 64 * 1024 * 1024
_MAX_TRIES = 5


@dataclass(frozen=True, slots=True)
class TagEntry:
    """One tag of one repository as a writer saw it.

    Attributes:
        digest: the manifest digest the tag points at ("" for a tombstone).
        at: wall-clock seconds at which the writer started reading what it records.
        deleted: a tombstone: the tag was seen gone at ``at``.
    """

    digest: str
    at: float
    deleted: bool = False

    def wins_over(self, other: TagEntry) -> bool:
        """Whether this entry replaces ``other`` for the same key (the merge rule)."""
        return (self.at, self.deleted, self.digest) > (other.at, other.deleted, other.digest)


@dataclass(frozen=True, slots=True)
class ImageFacts:
    """What a listing needs of one manifest digest (immutable content).

    Attributes:
        labels: the image's labels (the service's keys only).
        size: bytes of config and layers.
        created: the config's ``created`` time or "".
    """

    labels: Mapping[str, str]
    size: int = 0
    created: str = ""


@dataclass
class IndexState:
    """The index's content: ``repositories[name][tag]`` and ``images[digest]``.

    ``name`` is the repository's API name (without the registry host).
    """

    repositories: dict[str, dict[str, TagEntry]] = field(default_factory=dict)
    images: dict[str, ImageFacts] = field(default_factory=dict)

    def live(self) -> dict[str, dict[str, str]]:
        """Repository -> tag -> digest of the entries that are not tombstones (repositories
        without one are left out)."""
        out: dict[str, dict[str, str]] = {}
        for name, tags in self.repositories.items():
            alive = {t: e.digest for t, e in tags.items() if not e.deleted}
            if alive:
                out[name] = alive
        return out

    def covers(self, change: IndexState) -> bool:
        """Whether every entry of ``change`` says what this state says already (at any
        time), or is beaten by a newer entry: then writing it would change nothing that
        matters (an observation repeated later is not written again)."""
        for name, tags in change.repositories.items():
            mine = self.repositories.get(name, {})
            for tag, entry in tags.items():
                have = mine.get(tag)
                if have is None:
                    return False
                same = (have.deleted, have.digest) == (entry.deleted, entry.digest)
                if not same and entry.wins_over(have):
                    return False
        return True

    def to_bytes(self) -> bytes:
        """Sorted, compact JSON (equal states give equal bytes)."""
        repositories = {
            name: {
                tag: {"deleted": True, "at": e.at}
                if e.deleted
                else {"digest": e.digest, "at": e.at}
                for tag, e in tags.items()
            }
            for name, tags in self.repositories.items()
        }
        images = {
            d: {"labels": dict(f.labels), "size": f.size, "created": f.created}
            for d, f in self.images.items()
        }
        data = {"version": 1, "repositories": repositories, "images": images}
        return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, raw: bytes, *, where: str) -> IndexState:
        """Parse the blob; entries that are not well formed are skipped.

        Raises:
            RegistryError: not JSON, or a version this service does not know.
        """
        data = json_object(raw, what=where)
        if data.get("version") != 1:
            raise RegistryError(f"{where} has version {data.get('version')!r}, not 1", kind="error")
        state = cls()
        for name, tags in _dict(data.get("repositories")).items():
            entries = {}
            for tag, raw_entry in _dict(tags).items():
                entry = _tag_entry(raw_entry)
                if entry is not None:
                    entries[str(tag)] = entry
            if entries:
                state.repositories[str(name)] = entries
        for digest, raw_facts in _dict(data.get("images")).items():
            facts = _dict(raw_facts)
            labels = _dict(facts.get("labels"))
            state.images[str(digest)] = ImageFacts(
                labels={str(k): str(v) for k, v in labels.items()},
                size=int(facts.get("size") or 0),
                created=str(facts.get("created") or ""),
            )
        return state


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _tag_entry(raw: Any) -> TagEntry | None:
    if not isinstance(raw, dict) or not isinstance(raw.get("at"), int | float):
        return None
    if raw.get("deleted") is True:
        return TagEntry(digest="", at=float(raw["at"]), deleted=True)
    digest = raw.get("digest")
    if not isinstance(digest, str) or not digest.startswith("sha256:"):
        return None
    return TagEntry(digest=digest, at=float(raw["at"]))


def merge(*states: IndexState, now: float | None = None) -> IndexState:
    """Merge index states by the module's rule (later ``at`` wins per tag, tombstones win
    ties; image facts united), dropping tombstones older than :data:`TOMBSTONE_TTL` and
    facts no live tag uses.

    Args:
        states: the states, in any order (the result does not depend on it).
        now: wall-clock seconds for the tombstone expiry (default: now).

    Returns:
        A new state.
    """
    now = time.time() if now is None else now
    merged = IndexState()
    for state in states:
        for name, tags in state.repositories.items():
            into = merged.repositories.setdefault(name, {})
            for tag, entry in tags.items():
                have = into.get(tag)
                if have is None or entry.wins_over(have):
                    into[tag] = entry
        for digest, facts in state.images.items():
            merged.images.setdefault(digest, facts)
    for name in list(merged.repositories):
        kept = {
            t: e
            for t, e in merged.repositories[name].items()
            if not (e.deleted and now - e.at > TOMBSTONE_TTL)
        }
        if kept:
            merged.repositories[name] = kept
        else:
            del merged.repositories[name]
    used = {d for tags in merged.live().values() for d in tags.values()}
    merged.images = {d: f for d, f in merged.images.items() if d in used}
    return merged


def changes(
    read: Mapping[str, Mapping[str, str] | None],
    *,
    facts: Mapping[str, ImageFacts],
    known: IndexState,
    at: float,
) -> IndexState:
    """The index entries for repositories as just read.

    Args:
        read: repository API name -> tag -> digest as read (None: the repository is gone).
        facts: the facts of the service's images by digest (a tag whose digest has none is
            not the service's and is left out).
        known: the index as last read (its tags missing from ``read`` get tombstones).
        at: wall-clock seconds at which the reading started.

    Returns:
        The change to merge.
    """
    change = IndexState()
    for name, tags in read.items():
        entries: dict[str, TagEntry] = {}
        for tag, digest in (tags or {}).items():
            if digest in facts:
                entries[tag] = TagEntry(digest=digest, at=at)
                change.images[digest] = facts[digest]
        for tag, old in known.repositories.get(name, {}).items():
            if tag not in entries and not old.deleted:
                entries[tag] = TagEntry(digest="", at=at, deleted=True)
        if entries:
            change.repositories[name] = entries
    return change


class RegistryIndex:
    """Reads and writes the index artifact in one repository of the registry.

    Args:
        client: the registry client.
        name: the index repository's API name (without the registry host).
        log: the logger to use.
    """

    def __init__(self, *, client: RegistryClient, name: str, log: logging.Logger) -> None:
        self.client = client
        self.name = name
        self.log = log
        #: own changes not older than HEAL_WINDOW: (wall-clock time made, change)
        self._pending: list[tuple[float, IndexState]] = []
        #: (manifest digest, state) last read or written: an unchanged digest needs no blob
        self._last: tuple[str, IndexState] | None = None
        #: the repositories the index listed when last read or written
        self._listed: set[str] = set()

    def __repr__(self) -> str:
        return f"RegistryIndex({self.name}:{INDEX_TAG})"

    async def _read_raw(self) -> tuple[str, IndexState] | None:
        """``(manifest digest, state)`` of the index, or None when there is none yet."""
        got = await self.client.get_manifest(self.name, INDEX_TAG)
        if got is None:
            return None
        ref, raw = got
        if self._last is not None and self._last[0] == ref.digest:
            return self._seen(*self._last)  # content-addressed: the same digest, the same state
        where = f"the service's index {self.name}@{ref.digest}"
        manifest = json_object(raw, what=where)
        layers = [
            layer
            for layer in manifest.get("layers") or []
            if isinstance(layer, dict) and layer.get("mediaType") == INDEX_MEDIA_TYPE
        ]
        if manifest.get("artifactType") != INDEX_MEDIA_TYPE or len(layers) != 1:
            raise RegistryError(f"{where} is not a {INDEX_MEDIA_TYPE} artifact", kind="error")
        blob = await self.client.get_blob(
            self.name, str(layers[0].get("digest")), max_bytes=_MAX_INDEX_BYTES
        )
        return self._seen(ref.digest, IndexState.from_bytes(blob, where=where))

    def _seen(self, digest: str, state: IndexState) -> tuple[str, IndexState]:
        """Keep ``state`` as the index last read or written, and tell the client which
        repositories exist by it: a refusal there is an authentication error, not "not there
        yet" (the missing-or-refused rule of :mod:`.client`). The one place the index feeds
        the client's ``known``: repositories it stops listing are no longer known by it."""
        listed = set(state.live())
        self.client.known.difference_update(self._listed - listed)
        self.client.known.update(listed)
        self._listed = listed
        self._last = digest, state
        return self._last

    def _own_changes(self) -> IndexState | None:
        """Own changes still kept (see :data:`HEAL_WINDOW`), merged; None when none."""
        cutoff = time.time() - HEAL_WINDOW
        self._pending = [(t, c) for t, c in self._pending if t >= cutoff]
        return merge(*(c for _, c in self._pending)) if self._pending else None

    async def read(self) -> IndexState | None:
        """The index as stored, with this writer's recent changes written again first when
        another writer's update lost them.

        Returns:
            The state, or None when the registry has no index yet.

        Raises:
            RegistryError: the registry failed (a failed rewrite is only logged).
        """
        found = await self._read_raw()
        own = self._own_changes()
        if own is None or (found is not None and found[1].covers(own)):
            return found[1] if found else None
        self.log.info("the service's index lacks changes this service made: writing them again")
        try:
            return await self._write_merged(own, found)
        except RegistryError as e:
            self.log.warning("could not write the service's index %s: %s", self.name, e)
            return merge(found[1], own) if found else merge(own)

    async def update(self, change: IndexState) -> IndexState:
        """Merge ``change`` into the index and write it (see the module docstring).

        Returns:
            The state written.

        Raises:
            RegistryError: the registry failed; the change is still kept and written again
                by a later :meth:`read` or :meth:`update`.
        """
        self._pending.append((time.time(), change))
        own = self._own_changes() or change
        return await self._write_merged(own, await self._read_raw())

    async def _write_merged(
        self, change: IndexState, found: tuple[str, IndexState] | None
    ) -> IndexState:
        """Write ``found`` merged with ``change`` until a check finds it there."""
        for attempt in range(1, _MAX_TRIES + 1):
            state = merge(found[1], change) if found else merge(change)
            if found is not None and state.to_bytes() == found[1].to_bytes():
                return state  # nothing new
            written = await self._put(state)
            head = await self.client.head_manifest(self.name, INDEX_TAG)
            if head is not None and head.digest == written:
                self._seen(written, state)
                if found is not None and found[0] != written:
                    await self._drop(found[0])
                return state
            self.log.info(
                "the service's index changed while writing it (attempt %d): merging again", attempt
            )
            found = await self._read_raw()
        raise RegistryError(
            f"the service's index {self.name} kept changing during {_MAX_TRIES} writes",
            kind="error",
        )

    async def _drop(self, digest: str) -> None:
        """Delete the version just replaced (untagged now), where the registry allows it;
        its blob goes at the registry's next garbage collection."""
        try:
            await self.client.delete_manifest(self.name, digest)
        except RegistryError as e:
            self.log.debug("old index version %s stays: %s", digest, e)

    async def _put(self, state: IndexState) -> str:
        """Upload the blobs and ``PUT`` the manifest; the manifest digest written."""
        body = state.to_bytes()
        blob = await self.client.put_blob(self.name, body)
        empty = await self.client.put_blob(self.name, _EMPTY)
        manifest = {
            "schemaVersion": 2,
            "mediaType": MEDIA_OCI_MANIFEST,
            "artifactType": INDEX_MEDIA_TYPE,
            "config": {"mediaType": EMPTY_MEDIA_TYPE, "digest": empty, "size": len(_EMPTY)},
            "layers": [{"mediaType": INDEX_MEDIA_TYPE, "digest": blob, "size": len(body)}],
        }
        raw = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
        return await self.client.put_manifest(
            self.name, INDEX_TAG, media_type=MEDIA_OCI_MANIFEST, body=raw
        )
