"""The life of an environment's images after their builds: tag history, roll back, retention
and disk space, in local and registry mode, through the :class:`~.catalog.Catalog` interface.

- **History** (:meth:`ImageLifecycle.history`): every commit tag of an environment, newest
  first, with what its labels say (commit, requested ref, built-at, build id), its size,
  whether ``latest`` points at it and which containers use it.
- **Roll back / pin** (:meth:`ImageLifecycle.set_latest`): ``latest`` (what spawners offer
  by default: the commit tag of the image ``latest`` names) moves to an older tag and is
  *pinned*: the pin marker tag :data:`~.reference.PINNED` names the same image, so a
  restart keeps it (the engine's or the registry's tags are the record; a label cannot be
  added to an existing image without making a new image with another id). While pinned, a
  successful build adds its commit tag to the history but leaves ``latest`` where it is
  (``builds/run.py``); ``tag: null`` unpins and moves ``latest`` to the newest tag.
- **Retention** (:meth:`ImageLifecycle.prune`): the rule of :mod:`.retention` for every
  environment, with a dry run; optionally every ``prune_interval`` seconds.
- **Disk** (:meth:`ImageLifecycle.disk`): the engine's ``system df`` (:mod:`.usage`), or
  in registry mode the sizes the registry reports.

Which containers use an image is asked of one Docker engine: the catalog's engine in local
mode, ``DOCKER_HOST``'s in registry mode, where servers on other engines (other nodes,
Kubernetes) are not seen; the answers say which (``servers_seen``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, Literal

from traitlets import Float, Int
from traitlets.config import LoggingConfigurable

from ..errors import InvalidInput, NotFound, ServiceError
from .catalog import Catalog, ImageInfo, TagRecord
from .docker import DockerCatalog
from .dockerengine import DockerEngine
from .reference import LATEST, PINNED, split_reference
from .retention import Candidate, RetentionPlan, newest_first, plan_retention
from .usage import ContainerUse, DiskReport, EngineUsage

__all__ = ["EnvironmentHistory", "ImageLifecycle"]


@dataclass(frozen=True, slots=True)
class EnvironmentHistory:
    """One environment with every commit tag, newest first.

    Attributes:
        info: the environment (as listed).
        tags: one JSON-ready entry per commit tag (see :meth:`ImageLifecycle.history`).
        servers_seen: which containers ``servers`` covers, or None when none could be asked.
    """

    info: ImageInfo
    tags: list[dict[str, Any]]
    servers_seen: str | None

    def to_dict(self) -> dict[str, Any]:
        """The environment's fields plus ``history`` and ``servers_seen``."""
        return {**self.info.to_dict(), "history": self.tags, "servers_seen": self.servers_seen}


def _commit_tags(records: Sequence[TagRecord]) -> list[TagRecord]:
    return [r for r in records if r.tag not in (LATEST, PINNED)]


def _candidates(records: Sequence[TagRecord]) -> list[Candidate]:
    """Commit tags as the retention rule sees them; a tag naming ``latest``'s image is also
    used through ``repo:latest`` and ``repo:pinned``."""
    ids = {r.tag: r.image_id for r in records}
    aliases = [r.reference for r in records if r.tag in (LATEST, PINNED)]
    return [
        Candidate(
            tag=r.tag,
            image_id=r.image_id,
            built_at=r.labels.built_at,
            created=r.created,
            uses=(r.reference, *(aliases if r.image_id == ids.get(LATEST) else ())),
        )
        for r in _commit_tags(records)
    ]


class ImageLifecycle(LoggingConfigurable):
    """Tag history, roll back, retention and disk space of the service's images.

    Args:
        catalog: where the images are (local engine or registry mode: a catalog whose
            ``name`` is ``"registry"``).
        usage: the engine asked about containers and (local mode) disk space; None: none;
            ``"auto"``: the catalog's engine, or in registry mode ``DOCKER_HOST``'s.
            In registry mode the lifecycle closes its engine client (:meth:`close`); in
            local mode it is the catalog's.

    Raises:
        ValueError: a negative ``keep_tags`` or ``prune_interval``.
    """

    keep_tags = Int(
        3,
        help="""How many of the newest commit tags a prune keeps per environment (tags).

        Besides these, a prune always keeps the tag `latest` points at (a rolled-back or
        pinned one too) and every tag whose image a container uses. 0 keeps every tag
        (a prune then removes nothing).
        """,
    ).tag(config=True)

    prune_interval = Float(
        0.0,
        help="""Seconds between automatic prunes by the `keep_tags` rule.

        0 turns automatic prunes off (admins prune with `POST api/images/prune` or the
        button on the environments page).
        """,
    ).tag(config=True)

    def __init__(
        self,
        *,
        catalog: Catalog,
        usage: EngineUsage | Literal["auto"] | None = "auto",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if self.keep_tags < 0 or self.prune_interval < 0:
            raise ValueError("keep_tags and prune_interval must be 0 or more")
        self.catalog = catalog
        self.registry_mode = catalog.name == "registry"
        if usage == "auto":
            engine = catalog.engine if isinstance(catalog, DockerCatalog) else DockerEngine()
            usage = EngineUsage(engine)
        self.usage = usage
        self._periodic: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()  # one prune at a time

    @property
    def servers_seen(self) -> str | None:
        """Which containers the in-use answers cover (None: none are asked)."""
        if self.usage is None:
            return None
        if self.registry_mode:
            return "containers of this machine's Docker engine (not other nodes)"
        return "containers of the Docker engine"

    async def _containers(self) -> list[ContainerUse] | None:
        """The engine's containers; None when there is no engine to ask or (registry mode)
        it cannot be reached."""
        if self.usage is None:
            return None
        try:
            return await self.usage.containers()
        except ServiceError as e:
            if not self.registry_mode:
                raise
            self.log.warning("cannot tell which servers run images: %s", e)
            return None

    # ------------------------------------------------------------------ history
    async def history(self, *, owner_slug: str, name: str) -> EnvironmentHistory | None:
        """One environment with every commit tag, newest first.

        Each entry: ``{"tag", "reference", "image_id", "commit", "ref", "built_at",
        "size", "build_id", "latest", "servers"}``; ``latest`` is true for the tag(s)
        naming the image ``latest`` points at; ``servers`` lists the names of running
        containers using the image, or is None when no engine could be asked.

        Returns:
            The history, or None when there is no such environment.

        Raises:
            UpstreamError, Unavailable: the engine or registry cannot be reached.
        """
        info = await self.catalog.get(owner_slug=owner_slug, name=name)
        records = await self.catalog.tag_records(owner_slug=owner_slug, name=name)
        if info is None or records is None:
            return None
        containers = await self._containers()
        by_tag = {r.tag: r for r in records}
        latest = by_tag.get(LATEST)
        entries = []
        for c in newest_first(_candidates(records)):
            r = by_tag[c.tag]
            servers = None
            if containers is not None:
                uses = {r.image_id, *c.uses}
                servers = [u.name for u in containers if u.running and uses & {u.image_id, u.image}]
            entries.append(
                {
                    "tag": r.tag,
                    "reference": r.reference,
                    "image_id": r.image_id,
                    "commit": r.labels.commit,
                    "ref": r.labels.ref,
                    "built_at": r.labels.built_at or None,
                    "size": r.size,
                    "build_id": r.labels.build_id or None,
                    "latest": latest is not None and r.image_id == latest.image_id,
                    "servers": servers,
                }
            )
        return EnvironmentHistory(info=info, tags=entries, servers_seen=self.servers_seen)

    # ------------------------------------------------------------------ roll back
    async def set_latest(
        self, *, owner_slug: str, name: str, tag: str | None
    ) -> EnvironmentHistory:
        """Point ``latest`` at the commit tag ``tag`` and pin it; None unpins (``latest``
        goes to the newest tag and follows builds again).

        Returns:
            The environment's history afterwards.

        Raises:
            NotFound: no such environment.
            InvalidInput: the environment has no commit tag ``tag``.
            UpstreamError, Unavailable: the engine or registry cannot be reached.
        """
        records = await self.catalog.tag_records(owner_slug=owner_slug, name=name)
        if not records:
            raise NotFound(f"No image {owner_slug}/{name}")
        repository, _ = split_reference(records[0].reference)
        commits = {r.tag: r for r in _commit_tags(records)}
        if tag is None:
            newest = newest_first(_candidates(records))
            if not newest:
                raise NotFound(f"{owner_slug}/{name} has no commit tag to follow")
            if any(r.tag == PINNED for r in records):
                await self.catalog.remove_tag(f"{repository}:{PINNED}")
            await self.catalog.tag(commits[newest[0].tag].reference, f"{repository}:{LATEST}")
            self.log.info("%s: latest unpinned, at %s", repository, newest[0].tag)
        else:
            chosen = commits.get(tag)
            if chosen is None:
                known = ", ".join(c.tag for c in newest_first(_candidates(records))[:10])
                raise InvalidInput(
                    f"{owner_slug}/{name} has no tag {tag!r}; pick one from its history "
                    f"(GET api/images/{owner_slug}/{name}): {known}"
                )
            await self.catalog.mark_pinned(chosen.reference, f"{repository}:{PINNED}")
            await self.catalog.tag(chosen.reference, f"{repository}:{LATEST}")
            self.log.info("%s: latest pinned at %s", repository, tag)
        found = await self.history(owner_slug=owner_slug, name=name)
        if found is None:
            raise NotFound(f"No image {owner_slug}/{name}")
        return found

    # ------------------------------------------------------------------ retention
    async def prune(self, *, dry_run: bool) -> dict[str, Any]:
        """Apply the retention rule (:mod:`.retention`, ``keep_tags``) to every environment.

        Returns:
            ``{"dry_run", "keep_tags", "removed": [{"reference", "image_id", "size"}],
            "kept": [{"reference", "reason"}], "skipped": [reference], "bytes_freed",
            "bytes_note", "servers_seen"}``; ``removed`` is what went (a dry run: what
            would go); ``skipped`` what the engine refused to remove (a container
            started meanwhile).

        Raises:
            UpstreamError, Unavailable: the engine or registry cannot be reached.
        """
        async with self._lock:
            return await self._prune(dry_run=dry_run)

    async def _prune(self, *, dry_run: bool) -> dict[str, Any]:
        containers = await self._containers()
        in_use = {x for u in containers or () for x in (u.image_id, u.image)}
        disk = await self._disk_report()
        removed: list[dict[str, Any]] = []
        kept: list[dict[str, str]] = []
        skipped: list[str] = []
        for info in await self.catalog.list_images():
            records = await self.catalog.tag_records(owner_slug=info.owner_slug, name=info.name)
            if not records:
                continue
            plan = self.plan(records, in_use=in_use)
            by_tag = {r.tag: r for r in records}
            kept += [
                {"reference": by_tag[t].reference, "reason": why} for t, why in plan.keep.items()
            ]
            for tag in plan.remove:
                r = by_tag[tag]
                if dry_run or await self.catalog.prune_tag(r.reference):
                    removed.append(
                        {"reference": r.reference, "image_id": r.image_id, "size": r.size}
                    )
                else:
                    skipped.append(r.reference)
        freed, note = self._freed(removed, disk)
        if not dry_run and removed and self.usage is not None:
            self.usage.forget()
        self.log.info(
            "prune%s: %d tag(s) %s, %d kept, %d skipped, %d bytes",
            " (dry run)" if dry_run else "",
            len(removed),
            "would go" if dry_run else "removed",
            len(kept),
            len(skipped),
            freed,
        )
        return {
            "dry_run": dry_run,
            "keep_tags": self.keep_tags,
            "removed": removed,
            "kept": kept,
            "skipped": skipped,
            "bytes_freed": freed,
            "bytes_note": note,
            "servers_seen": self.servers_seen,
        }

    def plan(self, records: Sequence[TagRecord], *, in_use: set[str]) -> RetentionPlan:
        """The retention plan of one environment's tags (``keep_tags``, ``latest``, in use)."""
        latest = next((r.image_id for r in records if r.tag == LATEST), None)
        return plan_retention(
            _candidates(records), keep=self.keep_tags, latest_id=latest, in_use=in_use
        )

    def _freed(self, removed: list[dict[str, Any]], disk: DiskReport | None) -> tuple[int, str]:
        """Bytes a prune frees, and what the figure means."""
        ids = {r["image_id"] for r in removed}
        if self.registry_mode:
            sizes = {r["image_id"]: r["size"] or 0 for r in removed}
            return sum(sizes.values()), (
                "registry: manifests deleted; blobs are freed by the registry's garbage "
                "collection, and layers shared with kept images stay"
            )
        if disk is None:
            return 0, "unknown: no engine to measure"
        return disk.reclaimable(ids), "engine: layers only these images held (a lower bound)"

    async def _disk_report(self) -> DiskReport | None:
        if self.registry_mode or self.usage is None:
            return None
        return await self.usage.disk()

    # ------------------------------------------------------------------ disk
    async def disk(self, *, fresh: bool = False) -> dict[str, Any]:
        """Space the service's images take and the part a prune would free.

        Returns:
            ``{"source": "engine" | "registry", "images", "bytes", "shared_bytes",
            "reclaimable_bytes", "measured_at", "note"}``.

        Raises:
            UpstreamError, Unavailable: the engine or registry cannot be reached.
        """
        if self.registry_mode or self.usage is None:
            plan = await self.prune(dry_run=True)
            sizes: dict[str, int] = {}
            for info in await self.catalog.list_images():
                for r in (
                    await self.catalog.tag_records(owner_slug=info.owner_slug, name=info.name) or []
                ):
                    sizes[r.image_id] = r.size or 0
            return {
                "source": "registry",
                "images": len(sizes),
                "bytes": sum(sizes.values()),
                "shared_bytes": None,
                "reclaimable_bytes": plan["bytes_freed"],
                "measured_at": None,
                "note": "compressed sizes as stored; layers shared between images counted "
                "for each image",
            }
        report = await self.usage.disk(fresh=fresh)
        plan = await self.prune(dry_run=True)  # measures with the report just made
        return {
            "source": "engine",
            "images": report.images,
            "bytes": report.size,
            "shared_bytes": report.shared,
            "reclaimable_bytes": plan["bytes_freed"],
            "measured_at": report.measured_at,
            "note": "Docker's system df: unique parts plus the largest shared layer stack once",
        }

    # ------------------------------------------------------------------ periodic
    def start(self) -> None:
        """Start the periodic prune when ``prune_interval`` is set."""
        if self.prune_interval > 0 and self._periodic is None:
            self._periodic = asyncio.create_task(self._every(), name="periodic-prune")

    async def _every(self) -> None:
        while True:
            await asyncio.sleep(self.prune_interval)
            try:
                await self.prune(dry_run=False)
            except ServiceError as e:
                self.log.warning("periodic prune failed: %s", e.message)

    async def close(self) -> None:
        """Stop the periodic prune."""
        task, self._periodic = self._periodic, None
        if task is not None:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
        if self.registry_mode and self.usage is not None:
            await self.usage.engine.close()
