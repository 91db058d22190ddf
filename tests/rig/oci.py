"""OCI documents for the tests: a tiny labelled image pushed with the Distribution API, and
the attestation manifest and index buildx writes with provenance on (``docker buildx build
--provenance=true``: an OCI index listing the image with its platform and an
``unknown/unknown`` manifest annotated ``vnd.docker.reference.type: attestation-manifest``
whose one layer is an in-toto statement).

Nothing here talks to anything but the URL it is given (127.0.0.1 in the tests).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import urllib.request
from collections.abc import Mapping
from typing import Any

import aiohttp

from tests.rig.net import no_proxy_opener

__all__ = [
    "DOCKER_MANIFEST",
    "OCI_INDEX",
    "OCI_MANIFEST",
    "attest_tag",
    "attestation_blobs",
    "attestation_manifest",
    "attested_index",
    "backend_call",
    "digest_of",
    "push_test_image",
]

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
_PROVENANCE = "https://slsa.dev/provenance/v0.2"


def digest_of(data: bytes) -> str:
    """``sha256:<hex>`` of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def attestation_blobs(image_digest: str) -> tuple[bytes, bytes]:
    """``(config, in-toto statement)`` blobs of an attestation manifest for ``image_digest``."""
    statement = json.dumps(
        {
            "_type": "https://in-toto.io/Statement/v0.1",
            "predicateType": _PROVENANCE,
            "subject": [{"name": "_", "digest": {"sha256": image_digest.split(":")[1]}}],
            "predicate": {},
        }
    ).encode()
    config = json.dumps(
        {
            "architecture": "unknown",
            "os": "unknown",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": []},
        }
    ).encode()
    return config, statement


def attestation_manifest(*, config: str, config_size: int, layer: str, layer_size: int) -> bytes:
    """The attestation's OCI image manifest (its config and one in-toto layer, by digest)."""
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config,
                "size": config_size,
            },
            "layers": [
                {
                    "mediaType": "application/vnd.in-toto+json",
                    "digest": layer,
                    "size": layer_size,
                    "annotations": {"in-toto.io/predicate-type": _PROVENANCE},
                }
            ],
        }
    ).encode()


def attested_index(
    *,
    attestation: tuple[str, int],
    image: tuple[str, int, str],
    platform: Mapping[str, str],
) -> bytes:
    """An OCI index listing the attestation *first* (a naive "first entry" reader takes it),
    then the image with its ``platform``.

    Args:
        attestation: ``(digest, size)`` of the attestation manifest.
        image: ``(digest, size, media type)`` of the image manifest.
        platform: ``{"architecture", "os"}`` of the image.
    """
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": attestation[0],
                    "size": attestation[1],
                    "platform": {"architecture": "unknown", "os": "unknown"},
                    "annotations": {
                        "vnd.docker.reference.digest": image[0],
                        "vnd.docker.reference.type": "attestation-manifest",
                    },
                },
                {
                    "mediaType": image[2],
                    "digest": image[0],
                    "size": image[1],
                    "platform": dict(platform),
                },
            ],
        }
    ).encode()


def push_test_image(
    url: str,
    name: str,
    tag: str,
    *,
    labels: Mapping[str, str] | None = None,
    authorization: str = "",
) -> str:
    """Push a tiny image (one layer, a config with ``labels``) with the Distribution API.

    Args:
        url: ``http://host:port`` of a registry (or front).
        name: repository name (without the host).
        tag: the tag to put.
        labels: ``config.Labels``.
        authorization: the ``Authorization`` value to send (must allow pushing).

    Returns:
        The image manifest's digest.

    Raises:
        urllib.error.HTTPError: an answer that is not a success.
    """
    opener = no_proxy_opener()
    auth = {"Authorization": authorization} if authorization else {}

    def send(method: str, target: str, body: bytes = b"", ctype: str = "") -> Any:
        req = urllib.request.Request(
            target if "://" in target else url + target,
            data=body or None,
            method=method,
            headers={**auth, **({"Content-Type": ctype} if ctype else {})},
        )
        return opener.open(req, timeout=30)

    def blob(data: bytes) -> dict[str, Any]:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        with send("POST", f"/v2/{name}/blobs/uploads/") as resp:
            location = resp.headers["Location"]
        sep = "&" if "?" in location else "?"
        with send("PUT", f"{location}{sep}digest={digest}", data, "application/octet-stream"):
            pass
        return {"digest": digest, "size": len(data)}

    layer_tar = io.BytesIO()
    with tarfile.open(fileobj=layer_tar, mode="w:gz") as tar:
        info = tarfile.TarInfo(f"{tag}.txt")
        content = f"{name}:{tag}\n".encode()
        info.size = len(content)
        tar.addfile(info, io.BytesIO(content))
    layer = layer_tar.getvalue()
    diff_id = "sha256:" + hashlib.sha256(gzip.decompress(layer)).hexdigest()
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "created": "2026-01-01T00:00:00Z",
            "config": {"Labels": dict(labels or {})},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        }
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                **blob(config),
            },
            "layers": [
                {"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", **blob(layer)}
            ],
        }
    ).encode()
    with send("PUT", f"/v2/{name}/manifests/{tag}", manifest, DOCKER_MANIFEST):
        pass
    return "sha256:" + hashlib.sha256(manifest).hexdigest()


#: ``(status, headers, body)`` of one answer of the registry.
Answer = tuple[int, dict[str, str], bytes]


async def backend_call(
    session: aiohttp.ClientSession,
    base: str,
    method: str,
    path: str,
    *,
    body: bytes = b"",
    ctype: str = "",
) -> Answer:
    """One request to the registry at ``base`` (every manifest kind accepted)."""
    headers = {"Content-Type": ctype} if ctype else {}
    if method in ("GET", "HEAD"):
        headers["Accept"] = ", ".join([OCI_INDEX, OCI_MANIFEST, DOCKER_MANIFEST])
    async with session.request(method, base + path, data=body or None, headers=headers) as resp:
        return resp.status, dict(resp.headers), await resp.read()


async def _upload_blob(session: aiohttp.ClientSession, base: str, name: str, data: bytes) -> str:
    digest = digest_of(data)
    status, headers, _ = await backend_call(session, base, "POST", f"/v2/{name}/blobs/uploads/")
    if status != 202:
        raise RuntimeError(f"upload to {name} answered {status}")
    location = headers["Location"]
    location = location if "://" not in location else "/" + location.split("/", 3)[3]
    sep = "&" if "?" in location else "?"
    status, _, body = await backend_call(
        session,
        base,
        "PUT",
        f"{location}{sep}digest={digest}",
        body=data,
        ctype="application/octet-stream",
    )
    if status != 201:
        raise RuntimeError(f"blob PUT to {name} answered {status}: {body[:200]!r}")
    return digest


async def _put_manifest(
    session: aiohttp.ClientSession, base: str, name: str, ref: str, body: bytes, ctype: str
) -> str:
    status, _, answer = await backend_call(
        session, base, "PUT", f"/v2/{name}/manifests/{ref}", body=body, ctype=ctype
    )
    if status != 201:
        raise RuntimeError(f"manifest PUT {name}:{ref} answered {status}: {answer[:300]!r}")
    return digest_of(body)


async def attest_tag(
    session: aiohttp.ClientSession, base: str, name: str, tag: str, image: bytes, media_type: str
) -> str:
    """Store the image manifest ``image`` by digest, an attestation manifest for it, and an
    attested index under ``tag`` in the registry at ``base``.

    Returns:
        The index's digest.

    Raises:
        RuntimeError: the registry refused a write.
    """
    image_digest = await _put_manifest(session, base, name, digest_of(image), image, media_type)
    manifest = json.loads(image)
    config_path = f"/v2/{name}/blobs/{manifest['config']['digest']}"
    config = json.loads((await backend_call(session, base, "GET", config_path))[2])
    att_config, statement = attestation_blobs(image_digest)
    attestation = attestation_manifest(
        config=await _upload_blob(session, base, name, att_config),
        config_size=len(att_config),
        layer=await _upload_blob(session, base, name, statement),
        layer_size=len(statement),
    )
    att_digest = await _put_manifest(
        session, base, name, digest_of(attestation), attestation, OCI_MANIFEST
    )
    index = attested_index(
        attestation=(att_digest, len(attestation)),
        image=(image_digest, len(image), media_type),
        platform={
            "architecture": config.get("architecture", "amd64"),
            "os": config.get("os", "linux"),
        },
    )
    return await _put_manifest(session, base, name, tag, index, OCI_INDEX)
