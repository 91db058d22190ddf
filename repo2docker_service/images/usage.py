"""What one Docker engine says about the use of images: containers and disk space.

:class:`EngineUsage` answers two questions for the image lifecycle
(:mod:`.lifecycle`): which images containers use (so a prune never removes the image of a
server, and the tag history says which servers run a tag), and how much space images
take (``GET /system/df``, what ``docker system df -v`` shows).

Docker's API gives no per-layer sizes, so "shared layers counted once" is worked out from
the engine's own per-image ``SharedSize`` (bytes of the image's layers that other images
also use) and ``Size``: the service's images take the sum of their unique parts
(``Size - SharedSize``) plus the largest ``SharedSize`` among them, which is exact when
the shared layers are one common stack (repo2docker images built from one base image) and
a lower bound otherwise. The reclaimable part is the sum of the unique parts of the
images a prune would remove: what removing each alone frees, a lower bound when removed
images share layers only among themselves. ``/system/df`` walks every image and container
(seconds on a busy engine), so reports are kept for ``max_age`` seconds.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from aiodocker.exceptions import DockerError

from ..errors import UpstreamError
from .dockerengine import DockerEngine
from .labels import LABEL_OWNER

__all__ = ["ContainerUse", "DiskReport", "EngineUsage"]


@dataclass(frozen=True, slots=True)
class ContainerUse:
    """One container and the image it was created from.

    Attributes:
        name: the container's name (without the leading ``/``).
        image: the reference it was created with (``repo:tag``, or an id).
        image_id: the id of its image (``sha256:...``).
        running: whether it runs now.
    """

    name: str
    image: str
    image_id: str
    running: bool


@dataclass(frozen=True, slots=True)
class DiskReport:
    """Space the service's images take in the engine.

    Attributes:
        images: how many of the service's images (ids, not tags).
        size: bytes used by them, shared layers counted once (see the module docstring).
        shared: bytes of the largest layer stack they share with other images.
        measured_at: ``time.time()`` of the measurement.
        unique: image id -> bytes only that image holds (``Size - SharedSize``).
    """

    images: int
    size: int
    shared: int
    measured_at: float
    unique: dict[str, int] = field(default_factory=dict, repr=False)

    def reclaimable(self, image_ids: Collection[str]) -> int:
        """Bytes freed by removing ``image_ids`` (each one's unique part; a lower bound)."""
        return sum(self.unique.get(i, 0) for i in set(image_ids))


def disk_report(df: dict[str, Any], *, now: float) -> DiskReport:
    """A :class:`DiskReport` from an engine's ``GET /system/df`` answer (pure).

    Args:
        df: the answer (``Images``: ``Id``, ``Size``, ``SharedSize``, ``Labels``).
        now: the time of the measurement.
    """
    unique: dict[str, int] = {}
    shared = 0
    for image in df.get("Images") or []:
        if LABEL_OWNER not in (image.get("Labels") or {}):
            continue
        size = int(image.get("Size") or 0)
        image_shared = max(0, int(image.get("SharedSize") or 0))
        unique[str(image.get("Id"))] = max(0, size - image_shared)
        shared = max(shared, image_shared)
    return DiskReport(
        images=len(unique),
        size=sum(unique.values()) + shared,
        shared=shared,
        measured_at=now,
        unique=unique,
    )


class EngineUsage:
    """Containers and disk space of one engine.

    Args:
        engine: the engine's client (not owned: the caller closes it).
        max_age: seconds a disk report is reused (0: measure on every call).
    """

    def __init__(self, engine: DockerEngine, *, max_age: float = 60.0) -> None:
        self.engine = engine
        self.max_age = max_age
        self._disk: DiskReport | None = None

    async def containers(self) -> list[ContainerUse]:
        """Every container of the engine, running or stopped.

        Raises:
            UpstreamError: the engine is unreachable or refused.
        """
        try:
            async with self.engine.upstream("listing containers"):
                found = await self.engine.client().containers.list(all=True)
        except DockerError as e:
            raise UpstreamError(f"Docker refused to list containers: {e.message}") from None
        uses = []
        for c in found:
            data = c._container
            names = data.get("Names") or [""]
            uses.append(
                ContainerUse(
                    name=str(names[0]).lstrip("/"),
                    image=str(data.get("Image") or ""),
                    image_id=str(data.get("ImageID") or ""),
                    running=str(data.get("State") or "") == "running",
                )
            )
        return uses

    async def disk(self, *, fresh: bool = False) -> DiskReport:
        """The space the service's images take (reused for ``max_age`` seconds).

        Args:
            fresh: measure now even when a recent report exists.

        Raises:
            UpstreamError: the engine is unreachable or refused.
        """
        now = time.time()
        if not fresh and self._disk is not None and now - self._disk.measured_at < self.max_age:
            return self._disk
        try:
            async with self.engine.upstream("measuring disk usage (system df)"):
                df = await self.engine.client()._query_json("system/df")
        except DockerError as e:
            raise UpstreamError(f"Docker refused to report disk usage: {e.message}") from None
        self._disk = disk_report(df, now=now)
        return self._disk

    def forget(self) -> None:
        """Drop the kept disk report (after a prune changed the engine)."""
        self._disk = None
