"""The in-memory index of one Docker engine's images, and how image items become environments.

No I/O: :class:`~repo2docker_service.images.docker.DockerCatalog` feeds it image-list items
(from a full list, or one inspect per engine event) and asks it for environments.

An *item* is what the engine's image list gives for one image, normalised
(:class:`ImageItem`). The *listing rule* (:func:`group_items`): the tags of the service's
images are grouped by ``(owner_slug, name)`` repository, and a tag whose repository does
not match the owner and name in its image's labels is ignored (ownership comes from
labels, never from names alone). :func:`describe` makes the
:class:`~repo2docker_service.images.catalog.ImageInfo` of one repository.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypedDict

from .catalog import ImageInfo, TagRecord
from .labels import LABEL_OWNER, ImageLabels
from .naming import ImageNamer
from .reference import LATEST, PINNED, split_reference

__all__ = [
    "ImageIndex",
    "ImageItem",
    "Key",
    "Tagged",
    "describe",
    "epoch",
    "group_items",
    "item_from_inspect",
    "normalize_item",
    "tag_record",
]

#: ``(owner_slug, name)``: one environment.
Key = tuple[str, str]


class ImageItem(TypedDict):
    """One image as the index keeps it (the fields of an engine image-list item)."""

    Id: str
    RepoTags: list[str]
    Labels: dict[str, str]
    Created: int
    Size: int | None


def epoch(created: Any) -> int:
    """Docker's ``Created`` as seconds (lists give an int, inspect an RFC 3339 string)."""
    if isinstance(created, int | float):
        return int(created)
    try:
        when = datetime.strptime(str(created)[:19], "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        return 0
    return int(when.replace(tzinfo=UTC).timestamp())


def item_from_inspect(data: Mapping[str, Any]) -> dict[str, Any]:
    """An image-list item (``Id``, ``RepoTags``, ``Labels``, ``Created``, ``Size``) from an
    inspect answer."""
    return {
        "Id": data.get("Id"),
        "RepoTags": list(data.get("RepoTags") or []),
        "Labels": dict((data.get("Config") or {}).get("Labels") or {}),
        "Created": epoch(data.get("Created")),
        "Size": data.get("Size"),
    }


def normalize_item(item: Mapping[str, Any]) -> ImageItem | None:
    """The same fields whether an item came from a list or an inspect.

    Returns:
        The item with sorted real tags (no ``<none>:<none>``) and ``Created`` in seconds;
        None when it has no ``Id``.
    """
    image_id = item.get("Id")
    if not image_id:
        return None
    return ImageItem(
        Id=str(image_id),
        RepoTags=sorted(t for t in item.get("RepoTags") or [] if t != "<none>:<none>"),
        Labels=dict(item.get("Labels") or {}),
        Created=epoch(item.get("Created")),
        Size=item.get("Size"),
    )


@dataclass(frozen=True, slots=True, eq=False)
class Tagged:
    """One tag of one of the service's images.

    Attributes:
        reference: ``repository:tag``.
        repository: the repository part.
        tag: the tag part.
        item: the image.
        labels: the image's labels, parsed.
    """

    reference: str
    repository: str
    tag: str
    item: Mapping[str, Any]
    labels: ImageLabels


def group_items(
    items: Iterable[Mapping[str, Any]], *, namer: ImageNamer, log: logging.Logger
) -> dict[Key, list[Tagged]]:
    """The listing rule: tags of the service's images by ``(owner_slug, name)``.

    Args:
        items: image-list items (from the engine or the index).
        namer: recognises the service's repositories.
        log: where a tag whose labels name another owner or name is reported.

    Returns:
        ``{(owner_slug, name): [Tagged, ...]}`` with only tags that match their labels.
    """
    groups: dict[Key, list[Tagged]] = {}
    for item in items:
        labels = ImageLabels.parse(item.get("Labels") or {})
        if labels is None:
            continue
        expected = (labels.owner_slug(), labels.name)
        for repo_tag in item.get("RepoTags") or []:
            repository, tag = split_reference(repo_tag)
            parsed = namer.parse(repository)
            if parsed is None:
                continue
            if parsed != expected:
                log.warning(
                    "ignoring tag %s: its labels say owner %r, name %r",
                    repo_tag,
                    labels.owner,
                    labels.name,
                )
                continue
            groups.setdefault(parsed, []).append(
                Tagged(reference=repo_tag, repository=repository, tag=tag, item=item, labels=labels)
            )
    return groups


def describe(key: Key, tagged: list[Tagged], *, focus: Tagged | None = None) -> ImageInfo:
    """One ImageInfo from the tags of one repository.

    Args:
        key: ``(owner_slug, name)``.
        tagged: the repository's tags (at least one).
        focus: the tag to describe; default ``latest``, else the newest build.

    Returns:
        The info; its ``image`` is the commit-tag reference of the image described.
    """
    owner_slug, name = key
    latest = next((t for t in tagged if t.tag == LATEST), None)
    newest_first = sorted(
        tagged, key=lambda t: (t.labels.built_at, t.item.get("Created", 0)), reverse=True
    )
    current = focus or latest or newest_first[0]
    # the commit-tag reference of the described image
    image = current.reference
    if current.tag in (LATEST, PINNED):
        for t in tagged:
            if t.tag not in (LATEST, PINNED) and t.item.get("Id") == current.item.get("Id"):
                image = t.reference
                break
    tags = [LATEST] if latest else []
    for t in newest_first:
        if t.tag not in tags and t.tag != PINNED:
            tags.append(t.tag)
    return ImageInfo.from_labels(
        current.labels,
        owner_slug=owner_slug,
        name=name,
        image=image,
        latest=latest.reference if latest else None,
        tags=tags,
        size=current.item.get("Size"),
        pinned=any(t.tag == PINNED for t in tagged),
    )


def tag_record(t: Tagged) -> TagRecord:
    """The :class:`~.catalog.TagRecord` of one tag (``created``: zero-padded seconds)."""
    return TagRecord(
        tag=t.tag,
        reference=t.reference,
        image_id=str(t.item.get("Id") or ""),
        labels=t.labels,
        size=t.item.get("Size"),
        created=f"{int(t.item.get('Created') or 0):012d}",
    )


def repository_of(reference: str) -> str:
    """``registry:5000/owner/name`` of ``registry:5000/owner/name:tag`` (a tagged reference,
    as Docker's ``RepoTags`` always are)."""
    return reference.rsplit(":", 1)[0]


class ImageIndex:
    """The service's images of one engine: items by image id and by reference.

    A reference names one image: putting an image that carries a tag takes the tag from
    the image that had it. Only images with at least one tag and the service's owner label
    are kept. The environments are derived from the items again only after they changed.

    Args:
        namer: recognises the service's repositories.
        log: where tags whose labels do not match are reported.
    """

    def __init__(self, *, namer: ImageNamer, log: logging.Logger) -> None:
        self.namer = namer
        self.log = log
        #: image id -> item
        self.items: dict[str, ImageItem] = {}
        #: reference -> image id
        self.by_tag: dict[str, str] = {}
        #: repository -> its references in ``by_tag`` (a cache hit asks for one repository)
        self.by_repository: dict[str, set[str]] = {}
        self._version = 0  # bumped on every change
        self._infos_version = -1
        self._infos: list[ImageInfo] = []  # derived from items, remade when they changed

    def clear(self) -> None:
        """Forget every image."""
        self.items.clear()
        self.by_tag.clear()
        self.by_repository.clear()
        self._version += 1

    def load(self, items: Iterable[Mapping[str, Any]]) -> None:
        """Replace the index with a full list of image-list items."""
        self.clear()
        for item in items:
            self.upsert(item)

    def upsert(self, item: Mapping[str, Any]) -> None:
        """Put one image in the index (or drop it when it is not one of ours any more).

        Args:
            item: an image-list item, or :func:`item_from_inspect` of an inspect answer.
        """
        normal = normalize_item(item)
        if normal is None:
            return
        image_id, tags = normal["Id"], normal["RepoTags"]
        ours = bool(tags) and LABEL_OWNER in normal["Labels"]
        if ours and self.items.get(image_id) == normal:
            return  # unchanged (the cache check inspects images that are usually indexed)
        self.drop_image(image_id)
        for tag in tags:
            self.drop_tag(tag)
        if ours:
            self.items[image_id] = normal
            for tag in tags:
                self._set_tag(tag, image_id)
        self._version += 1

    def drop_tag(self, reference: str) -> None:
        """Forget one reference (its image goes when it was its last one)."""
        image_id = self._unset_tag(reference)
        item = self.items.get(image_id) if image_id else None
        if image_id is None or item is None:
            return
        tags = [t for t in item["RepoTags"] if t != reference]
        if tags:
            updated = item.copy()
            updated["RepoTags"] = tags
            self.items[image_id] = updated
        else:
            del self.items[image_id]
        self._version += 1

    def drop_image(self, image_id: str) -> None:
        """Forget one image and its references."""
        item = self.items.pop(image_id, None)
        if item is None:
            return
        for tag in item["RepoTags"]:
            if self.by_tag.get(tag) == image_id:
                self._unset_tag(tag)
        self._version += 1

    def _set_tag(self, reference: str, image_id: str) -> None:
        self.by_tag[reference] = image_id
        self.by_repository.setdefault(repository_of(reference), set()).add(reference)

    def _unset_tag(self, reference: str) -> str | None:
        image_id = self.by_tag.pop(reference, None)
        if image_id is not None:
            repository = repository_of(reference)
            references = self.by_repository.get(repository)
            if references is not None:
                references.discard(reference)
                if not references:
                    del self.by_repository[repository]
        return image_id

    def infos(self) -> list[ImageInfo]:
        """Every environment in the index (remade only after the index changed)."""
        if self._infos_version != self._version:
            groups = group_items(self.items.values(), namer=self.namer, log=self.log)
            self._infos = [describe(key, tagged) for key, tagged in groups.items()]
            self._infos_version = self._version
        return self._infos

    def repository(self, repository: str) -> dict[Key, list[Tagged]]:
        """Tags of one repository (without regrouping or scanning everything)."""
        image_ids = {self.by_tag[r] for r in self.by_repository.get(repository, ())}
        items = [self.items[i] for i in image_ids if i in self.items]
        return group_items(items, namer=self.namer, log=self.log)
