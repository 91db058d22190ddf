"""What a catalog of built images answers, independent of where images live.

:class:`ImageInfo` describes one environment (an ``(owner, name)`` repository with all of
its tags). :class:`Catalog` is the small base class the build manager and the handlers use;
:class:`~repo2docker_service.images.docker.DockerCatalog` reads the local Docker engine,
:class:`~repo2docker_service.images.registry.catalog.RegistryCatalog` a registry (registry
mode). Both describe an environment with :meth:`ImageInfo.from_labels`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ..repoid import RepoIdentity
from .labels import ImageLabels
from .reference import split_tag

_DEFAULT_IDENTITY = RepoIdentity()

__all__ = ["Catalog", "CatalogState", "ImageInfo", "TagRecord", "find_existing", "select_images"]


@dataclass(frozen=True)
class CatalogState:
    """Where a catalog's listings come from and how fresh they are (``api/info``,
    ``api/images``, and the readiness endpoint).

    Attributes:
        live: the last read of the engine or registry succeeded.
        stale: listings answer an older copy because the last read failed (only once one
            read succeeded; before that, listings fail with 503).
        since: wall-clock seconds (Unix time) since when reads fail; None while they work.
        last_good_age_s: seconds since the last good read; None before the first (or for
            a catalog that asks its source on every listing).
        source: ``"index"`` (the service's index in the registry), ``"_catalog"`` (the
            registry's ``_catalog``) or ``"engine"`` (the local Docker engine).
        note: one line for administrators ("" when all is well), e.g. that the registry
            offers no ``_catalog``.
    """

    live: bool
    stale: bool
    since: float | None
    last_good_age_s: float | None
    source: str
    note: str = ""

    def freshness(self) -> dict[str, Any]:
        """What a listing answer says of itself (``api/images``, ``api/users/{name}/images``).

        Returns:
            ``{"stale": bool, "age_s": seconds since the listing was read (0.1 s), or None
            when the catalog asks its source every time}``.
        """
        age = self.last_good_age_s
        return {"stale": self.stale, "age_s": None if age is None else round(age, 1)}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``{"live", "stale", "since", "last_good_age_s", "source", "note"}``
        (the age rounded to 0.1 s)."""
        age = self.last_good_age_s
        return {
            "live": self.live,
            "stale": self.stale,
            "since": self.since,
            "last_good_age_s": None if age is None else round(age, 1),
            "source": self.source,
            "note": self.note,
        }


@dataclass
class ImageInfo:
    """One environment: an image repository ``(owner_slug, name)`` and its tags.

    The descriptive fields (repo, ref, commit, hints, built_at, ...) come from the labels of
    one image of the repository: the one tagged ``latest``, or, when describing a specific
    reference (a cache hit), that image.

    Attributes:
        owner: JupyterHub username of the owner ("" for shared images), from the labels.
        shared: whether it is a shared image.
        owner_slug: the owner part of the image name.
        name: the environment name.
        display_name: free text for the UI.
        repo: the git repository URL it was built from.
        ref: the ref that was requested.
        commit: the full commit SHA built.
        image: the reference with the commit tag (what a spawner should start).
        latest: the ``:latest`` reference, or None if the repository has no latest tag.
        tags: every tag of the repository, ``latest`` first, then newest build first.
        size: image size in bytes (None if unknown).
        built_at: ISO 8601 UTC time the build started (from the label).
        build_id: id of the build that made it.
        hints: spawner hints (``profile``, ``cpu``, ``memory``).
        scheme: naming scheme version from the label.
        pinned: ``latest`` is pinned (rolled back): builds do not move it
            (:data:`~.reference.PINNED`).
    """

    owner: str
    shared: bool
    owner_slug: str
    name: str
    display_name: str
    repo: str
    ref: str
    commit: str
    image: str
    latest: str | None
    tags: list[str] = field(default_factory=list)
    size: int | None = None
    built_at: str | None = None
    build_id: str = ""
    hints: dict[str, str] = field(default_factory=dict)
    scheme: str = ""
    pinned: bool = False
    _json: str | None = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def from_labels(
        cls,
        labels: ImageLabels,
        *,
        owner_slug: str,
        name: str,
        image: str,
        latest: str | None,
        tags: list[str],
        size: int | None,
        pinned: bool = False,
    ) -> ImageInfo:
        """Describe an environment by the labels of one of its images.

        Args:
            labels: the labels of the image described (of ``image``).
            owner_slug: the owner part of the repository name.
            name: the environment name (from the repository name).
            image: the reference described (the commit tag when there is one).
            latest: the ``:latest`` reference, or None.
            tags: the repository's tags, ``latest`` first, then newest build first.
            size: bytes, or None if unknown.
            pinned: whether ``latest`` is pinned.

        Returns:
            The info (its hints are a copy of the labels').
        """
        return cls(
            owner=labels.owner,
            shared=labels.shared,
            owner_slug=owner_slug,
            name=name,
            display_name=labels.display_name,
            repo=labels.repo,
            ref=labels.ref,
            commit=labels.commit,
            image=image,
            latest=latest,
            tags=tags,
            size=size,
            built_at=labels.built_at or None,
            build_id=labels.build_id,
            hints=dict(labels.hints),
            scheme=labels.scheme,
            pinned=pinned,
        )

    def to_json(self) -> str:
        """:meth:`to_dict` as JSON text, made once (an info is not changed once listed).

        Catalogs keep their infos between listings, so a listing of 1,000 environments
        joins 1,000 ready strings instead of building and dumping ~20,000 objects per
        request (whose garbage collections were the slowest listings).
        """
        if self._json is None:
            self._json = json.dumps(self.to_dict(), default=str)
        return self._json

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data.

        Returns:
            ``{"owner", "shared", "owner_slug", "name", "display_name", "repo", "ref",
            "commit", "image", "latest", "tags", "size", "built_at", "build_id", "hints",
            "pinned"}``.
        """
        return {
            "owner": self.owner,
            "shared": self.shared,
            "owner_slug": self.owner_slug,
            "name": self.name,
            "display_name": self.display_name,
            "repo": self.repo,
            "ref": self.ref,
            "commit": self.commit,
            "image": self.image,
            "latest": self.latest,
            "tags": list(self.tags),
            "size": self.size,
            "built_at": self.built_at,
            "build_id": self.build_id,
            "hints": dict(self.hints),
            "pinned": self.pinned,
        }


@dataclass(frozen=True, slots=True)
class TagRecord:
    """One tag of an environment with what its image says (for history and retention).

    Attributes:
        tag: the tag (commit tags, ``latest`` and the pin marker alike).
        reference: ``repository:tag``.
        image_id: the engine's image id, or the registry's manifest digest.
        labels: the image's labels.
        size: bytes (engine: the image's size; registry: config and layers, compressed),
            None if unknown.
        created: the image's creation time (seconds or ISO 8601 text; "" if unknown).
    """

    tag: str
    reference: str
    image_id: str
    labels: ImageLabels
    size: int | None
    created: str = ""


def select_images(
    infos: list[ImageInfo], *, owner: str | None, include_shared: bool
) -> list[ImageInfo]:
    """The listing rule every catalog applies: filter by owner, then sort.

    Args:
        infos: all environments the catalog knows.
        owner: only private images of this JupyterHub username (None: all).
        include_shared: with ``owner``, also shared images.

    Returns:
        The selected environments sorted by (shared, owner, name).
    """
    if owner is not None:
        infos = [
            i for i in infos if (not i.shared and i.owner == owner) or (include_shared and i.shared)
        ]
    return sorted(infos, key=lambda i: (i.shared, i.owner, i.name))


def find_existing(
    images: list[ImageInfo],
    *,
    repo: str,
    ref: str,
    name: str | None,
    username: str,
    identity: RepoIdentity = _DEFAULT_IDENTITY,
) -> ImageInfo | None:
    """The best existing image for (repo, ref[, name]) among ``images``, or None.

    What a launch link starts for a user who may not build. The repository matches by
    identity (``identity.key``: ``.git``, trailing ``/``, scheme and, on case-insensitive
    hosts, case do not count). A ref matches the requested ref as recorded in the image's
    labels, or its full commit (abbreviated commits are resolved first, by the rule of
    ``sources.resolve_ref``). The user's own images come
    before shared ones, then the newest build.
    """
    key = identity.key(repo)
    matches = [
        i
        for i in images
        if identity.key(i.repo) == key
        and (i.ref == ref or i.commit == ref.lower())
        and (name is None or i.name == name)
    ]
    matches.sort(key=lambda i: (i.owner == username and not i.shared, i.built_at or ""))
    return matches[-1] if matches else None


def _tag_agrees(tag: str, prefix: str) -> bool:
    """Whether a commit tag (12 hex characters) may be a commit starting with ``prefix``."""
    return tag != "latest" and (tag.startswith(prefix) or prefix.startswith(tag))


class Catalog:
    """Base class of image catalogs (where built images are found, tagged and deleted).

    Every method raises ``errors.UpstreamError`` when the backing engine or registry cannot
    be reached, with a message saying what to check.
    """

    #: shown in ``api/info``
    name: str = "base"

    async def start(self) -> None:
        """Connect (optional; methods connect lazily)."""

    def state(self) -> CatalogState:
        """Where listings come from and how fresh they are (a catalog that asks its source
        on every listing: always live, never stale)."""
        return CatalogState(
            live=True, stale=False, since=None, last_good_age_s=None, source="engine"
        )

    async def close(self) -> None:
        """Release connections."""

    async def exists(self, reference: str) -> bool:
        """Whether an image with that exact reference exists.

        Returns:
            True or False.
        """
        raise NotImplementedError

    async def image_info(self, reference: str) -> ImageInfo | None:
        """Describe the image with that exact reference (``image`` is ``reference``).

        Returns:
            The info, or None if absent or not built by this service.
        """
        raise NotImplementedError

    async def list_images(
        self, *, owner: str | None = None, include_shared: bool = False
    ) -> list[ImageInfo]:
        """The service's environments, one entry per ``(owner_slug, name)``.

        Args:
            owner: only this JupyterHub username's (None: all, shared included).
            include_shared: with ``owner``, also the shared environments.

        Returns:
            Sorted by owner then name.
        """
        raise NotImplementedError

    async def get(self, *, owner_slug: str, name: str) -> ImageInfo | None:
        """One environment, or None."""
        raise NotImplementedError

    async def tag(self, source: str, target: str) -> None:
        """Give the image ``source`` the extra reference ``target``.

        Raises:
            errors.NotFound: ``source`` does not exist.
        """
        raise NotImplementedError

    async def remove_tag(self, reference: str) -> bool:
        """Remove one reference (the image goes when it was its last one and is unused).

        Returns:
            True if removed, False if there was no such reference.
        """
        raise NotImplementedError

    async def push(self, reference: str) -> None:
        """Push ``reference`` to its registry."""
        raise NotImplementedError

    async def commits_starting_with(self, images: list[ImageInfo], prefix: str) -> set[str]:
        """The full commits of ``images``' tags that start with ``prefix`` (lowercase hex).

        Each environment names its own commit; an older tag is read (``image_info``) only
        when its 12-character name agrees with ``prefix``.
        """
        prefix = prefix.lower()
        found: set[str] = set()
        for info in images:
            if info.commit.startswith(prefix):
                found.add(info.commit)
            repository, _ = split_tag(info.image)
            for tag in info.tags:
                if tag == info.commit[:12] or not _tag_agrees(tag, prefix):
                    continue
                older = await self.image_info(f"{repository}:{tag}")
                if older is not None and older.commit.startswith(prefix):
                    found.add(older.commit)
        return found

    async def image_id(self, reference: str) -> str | None:
        """The image id behind ``reference``, or None (None also when not supported)."""
        return None

    async def remove_if_untagged(self, image_id: str) -> bool:
        """Remove the image ``image_id`` if no tag and no container refers to it any more.

        Returns:
            True if removed (the base class never removes).
        """
        return False

    async def tag_records(self, *, owner_slug: str, name: str) -> list[TagRecord] | None:
        """Every tag of one environment (``latest`` and the pin marker included), each with
        its image's labels, id and size; only tags whose labels say they belong there.

        Returns:
            The records in no particular order, or None when there is no such environment.
        """
        raise NotImplementedError

    async def refresh(self, reference: str) -> None:
        """Read ``reference`` again into what listings answer from (after another writer,
        such as repo2docker, made it and no tag of the catalog's own followed)."""

    async def mark_pinned(self, source: str, target: str) -> None:
        """Make ``target`` (the pin marker tag) name the image ``source`` names.

        A tag by default; a registry makes the marker a manifest of its own, so that
        removing it (:meth:`remove_tag`) never takes another tag with it.

        Raises:
            errors.NotFound: ``source`` does not exist.
        """
        await self.tag(source, target)

    async def prune_tag(self, reference: str) -> bool:
        """Remove one tag for the retention rule, never an image a container uses.

        Returns:
            True if removed; False if absent or refused because a container uses it.
        """
        return await self.remove_tag(reference)

    async def delete(self, *, owner_slug: str, name: str, force: bool = False) -> list[str]:
        """Remove every tag of an environment.

        Returns:
            The references removed.

        Raises:
            errors.NotFound: no such environment.
            errors.Conflict: containers use it and ``force`` is false.
        """
        raise NotImplementedError
