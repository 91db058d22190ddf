"""Shared parts of the registry-mode benchmarks (``registry_cache_hit.py``,
``registry_listing.py``): a registry of their own on a loopback port, and filling it with
many labelled images straight through the Distribution API (no docker push needed).

Uses ``tests/rig/registry.py`` for the registry (Debian's ``docker-registry``;
``auth`` None, "htpasswd" or "token") and ``common.py`` (read-only) for the rest.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import io
import json
import sys
import tarfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urljoin

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402

from repo2docker_service.builds.model import Build  # noqa: E402
from repo2docker_service.images.naming import commit_tag, escape_owner  # noqa: E402
from tests.rig.registry import RegistryInstance, start_registry  # noqa: E402

MEDIA_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"

__all__ = ["RegistryInstance", "fill_registry", "start_registry"]


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _empty_layer() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w"):
        pass
    return gzip.compress(buf.getvalue(), mtime=0)


async def _upload(s: aiohttp.ClientSession, base: str, name: str, data: bytes) -> None:
    async with s.post(f"{base}/v2/{name}/blobs/uploads/") as resp:
        if resp.status != 202:
            raise RuntimeError(f"upload start for {name}: {resp.status} {await resp.text()}")
        location = urljoin(f"{base}/", resp.headers["Location"])
    sep = "&" if "?" in location else "?"
    async with s.put(
        f"{location}{sep}digest={_digest(data)}",
        data=data,
        headers={"Content-Type": "application/octet-stream"},
    ) as resp:
        if resp.status != 201:
            raise RuntimeError(f"upload of {name}: {resp.status} {await resp.text()}")


async def _mount(s: aiohttp.ClientSession, base: str, name: str, digest: str, source: str) -> None:
    async with s.post(
        f"{base}/v2/{name}/blobs/uploads/", params={"mount": digest, "from": source}
    ) as resp:
        if resp.status != 201:
            raise RuntimeError(f"mount into {name}: {resp.status} {await resp.text()}")


def _labelled_build(reg: RegistryInstance, prefix: str, n: int, owners: int) -> tuple[str, Build]:
    """(repository name, build record) of image ``n``: owner ``user<n % owners>``, environment
    ``env<n // owners>``."""
    owner = f"user{n % owners}"
    env = f"env{n // owners}"
    name = f"{prefix}{escape_owner(owner)}/{env}"
    commit = hashlib.sha1(name.encode()).hexdigest()
    build = Build(
        owner=owner,
        owner_slug=escape_owner(owner),
        name=env,
        repo=f"https://git.example.org/{owner}/{env}",
        ref="main",
        commit=commit,
        image=f"{reg.host}/{name}:{commit_tag(commit)}",
        latest_image=f"{reg.host}/{name}:latest",
        hints={"cpu": "1"},
    )
    build.started = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=n)
    return name, build


def _image_json(build: Build, layer: bytes) -> tuple[bytes, bytes]:
    """(image config, manifest) of a one-layer image carrying ``build``'s labels."""
    assert build.started is not None
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "created": build.started.isoformat(),
            "config": {"Labels": build.image_labels().to_labels()},
            "rootfs": {"type": "layers", "diff_ids": [_digest(gzip.decompress(layer))]},
        }
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MEDIA_MANIFEST,
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "digest": _digest(config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "digest": _digest(layer),
                    "size": len(layer),
                }
            ],
        }
    ).encode()
    return config, manifest


async def _push_image(
    s: aiohttp.ClientSession, base: str, name: str, build: Build, layer: bytes, first: str
) -> None:
    """Upload the config, mount the shared layer from ``first``, tag commit and ``latest``."""
    config, manifest = _image_json(build, layer)
    await _upload(s, base, name, config)
    await _mount(s, base, name, _digest(layer), first)
    for tag in (commit_tag(build.commit), "latest"):
        async with s.put(
            f"{base}/v2/{name}/manifests/{tag}",
            data=manifest,
            headers={"Content-Type": MEDIA_MANIFEST},
        ) as resp:
            if resp.status != 201:
                raise RuntimeError(f"manifest {name}:{tag}: {resp.status}")


async def fill_registry(
    reg: RegistryInstance,
    *,
    prefix: str,
    images: int,
    owners: int,
    auth: aiohttp.BasicAuth | None = None,
    concurrency: int = 32,
) -> list[str]:
    """Push ``images`` labelled images (commit tag + ``latest`` each) spread over ``owners``
    users, as the service would have built them. Only for anonymous/htpasswd registries.

    Returns:
        The repositories (``host/prefix+owner/name``).
    """
    base = reg.url
    layer = _empty_layer()
    first = f"{prefix}{escape_owner('user0')}/seed"
    limit = asyncio.Semaphore(concurrency)
    made: list[str] = []
    async with aiohttp.ClientSession(
        auth=auth, trust_env=False, connector=aiohttp.TCPConnector(limit=concurrency)
    ) as s:
        await _upload(s, base, first, layer)

        async def one(n: int) -> None:
            name, build = _labelled_build(reg, prefix, n, owners)
            async with limit:
                await _push_image(s, base, name, build, layer, first)
            made.append(f"{reg.host}/{name}")

        await asyncio.gather(*(one(n) for n in range(images)))
    return made
