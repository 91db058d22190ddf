"""Manifests and image configs as the Distribution API serves them (parsing only, no I/O).

Four manifest kinds are accepted (:data:`MANIFEST_ACCEPT`): the OCI image manifest and
index, and Docker's v2 manifest and manifest list (buildx pushes indexes, ``docker push``
Docker v2 manifests). An index is described by its ``linux/amd64`` manifest, else by the
first one that is not an attestation (:func:`pick_platform`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import RegistryError

__all__ = [
    "INDEX_TYPES",
    "MANIFEST_ACCEPT",
    "MEDIA_DOCKER_LIST",
    "MEDIA_DOCKER_MANIFEST",
    "MEDIA_OCI_INDEX",
    "MEDIA_OCI_MANIFEST",
    "PIN_ANNOTATION",
    "ImageDetails",
    "ManifestRef",
    "config_digest",
    "describe_image",
    "digest_of",
    "index_child",
    "is_index",
    "json_object",
    "manifest_media_type",
    "pick_platform",
    "pin_manifest",
]

MEDIA_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MEDIA_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
#: Media types of manifests that list other manifests (one per platform).
INDEX_TYPES = frozenset({MEDIA_OCI_INDEX, MEDIA_DOCKER_LIST})
#: ``Accept`` of every manifest request: buildx pushes OCI indexes, ``docker push`` Docker v2.
MANIFEST_ACCEPT = ", ".join(
    [MEDIA_OCI_MANIFEST, MEDIA_OCI_INDEX, MEDIA_DOCKER_MANIFEST, MEDIA_DOCKER_LIST]
)


@dataclass(frozen=True)
class ManifestRef:
    """What a manifest HEAD says about a reference.

    Attributes:
        digest: ``sha256:...`` of the manifest (the content address of the image).
        media_type: the manifest's media type (one of the four in :data:`MANIFEST_ACCEPT`).
        size: bytes of the manifest.
    """

    digest: str
    media_type: str
    size: int


@dataclass(frozen=True)
class ImageDetails:
    """An image as read from its manifest and config blob.

    Attributes:
        digest: digest of the top-level manifest (index or image manifest).
        media_type: its media type.
        labels: ``config.Labels`` of the image (of the chosen platform for an index).
        size: bytes of the config and layers (compressed, as stored in the registry).
        created: the config's ``created`` time (ISO 8601) or "".
        platform: ``os/architecture`` of the image described.
    """

    digest: str
    media_type: str
    labels: dict[str, str]
    size: int
    created: str
    platform: str


def digest_of(body: bytes) -> str:
    """``sha256:<hex>`` of ``body`` (a manifest's digest when the registry sends none)."""
    return "sha256:" + hashlib.sha256(body).hexdigest()


def manifest_media_type(content_type: str, body: bytes) -> str:
    """The media type of a manifest: its ``Content-Type``, else the body's ``mediaType``.

    Args:
        content_type: the ``Content-Type`` header ("" when absent).
        body: the manifest.

    Returns:
        The media type ("" when neither says).
    """
    media_type = content_type.split(";")[0].strip()
    if not media_type or media_type == "application/json":
        try:
            media_type = str(json.loads(body).get("mediaType") or media_type)
        except (ValueError, AttributeError):
            pass
    return media_type


def json_object(raw: bytes, *, what: str) -> dict[str, Any]:
    """Parse a JSON object (a manifest or config).

    Raises:
        RegistryError: ``raw`` is not JSON, or not an object (``kind="error"``).
    """
    try:
        data = json.loads(raw)
    except ValueError:
        raise RegistryError(f"{what} is not JSON", kind="error") from None
    if not isinstance(data, dict):
        raise RegistryError(f"{what} is not a JSON object", kind="error")
    return data


def is_index(media_type: str, manifest: Mapping[str, Any]) -> bool:
    """Whether a manifest lists other manifests (OCI index, Docker manifest list)."""
    return media_type in INDEX_TYPES or "manifests" in manifest


def pick_platform(manifests: list[Any]) -> dict[str, Any] | None:
    """``linux/amd64`` from an index, else the first entry that is not an attestation."""
    candidates = [
        m
        for m in manifests
        if isinstance(m, dict)
        and m.get("digest")
        and (m.get("annotations") or {}).get("vnd.docker.reference.type") != "attestation-manifest"
        and (m.get("platform") or {}).get("os") != "unknown"
    ]
    for m in candidates:
        plat = m.get("platform") or {}
        if plat.get("os") == "linux" and plat.get("architecture") == "amd64":
            return m
    return candidates[0] if candidates else None


def index_child(index: Mapping[str, Any], *, where: str) -> tuple[str, str]:
    """The manifest of an index that describes the image (see :func:`pick_platform`).

    Args:
        index: the parsed index.
        where: ``name@digest`` of the index, for messages.

    Returns:
        ``(digest, "os/architecture")`` of the chosen manifest.

    Raises:
        RegistryError: the index lists no image.
    """
    child = pick_platform(index.get("manifests") or [])
    if child is None:
        raise RegistryError(f"index {where} lists no image", kind="error")
    plat = child.get("platform") or {}
    return str(child["digest"]), f"{plat.get('os', '')}/{plat.get('architecture', '')}".strip("/")


def config_digest(manifest: Mapping[str, Any], *, where: str) -> str:
    """The digest of an image manifest's config blob.

    Raises:
        RegistryError: the manifest names no config.
    """
    digest = str((manifest.get("config") or {}).get("digest") or "")
    if not digest:
        raise RegistryError(f"manifest {where} has no config", kind="error")
    return digest


def describe_image(
    *,
    digest: str,
    media_type: str,
    manifest: Mapping[str, Any],
    config: Mapping[str, Any],
    platform: str,
) -> ImageDetails:
    """An image's details from its image manifest and config blob.

    Args:
        digest: digest of the top-level manifest.
        media_type: its media type.
        manifest: the image manifest (the chosen one of an index).
        config: the parsed config blob.
        platform: ``os/architecture`` from the index; "" to read it from the config.

    Returns:
        Labels, size (config and layers), creation time and platform.
    """
    labels = (config.get("config") or {}).get("Labels") or {}
    if not platform:
        platform = f"{config.get('os', '')}/{config.get('architecture', '')}".strip("/")
    config_desc = manifest.get("config") or {}
    size = int(config_desc.get("size") or 0) + sum(
        int(layer.get("size") or 0) for layer in manifest.get("layers") or []
    )
    return ImageDetails(
        digest=digest,
        media_type=media_type,
        labels={str(k): str(v) for k, v in labels.items()},
        size=size,
        created=str(config.get("created") or ""),
        platform=platform,
    )


#: the annotation key of a pin marker manifest (see ``RegistryCatalog.mark_pinned``)
PIN_ANNOTATION = "repo2docker-service.pinned"


def pin_manifest(raw: bytes, *, pinned: str) -> bytes:
    """A copy of a manifest (image manifest or index) with the annotation
    :data:`PIN_ANNOTATION` = ``pinned``: the same config and layers under a digest of its
    own. OCI image manifests and indexes define ``annotations`` (image-spec
    ``manifest.md``, ``image-index.md``); the Distribution registry stores a Docker v2
    manifest's extra field as sent.

    Raises:
        RegistryError: ``raw`` is not a JSON object.
    """
    manifest = json_object(raw, what="manifest to pin")
    annotations = dict(manifest.get("annotations") or {})
    annotations[PIN_ANNOTATION] = pinned
    manifest["annotations"] = annotations
    return json.dumps(manifest, separators=(",", ":")).encode()
