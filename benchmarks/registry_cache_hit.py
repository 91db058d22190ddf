"""Registry benchmark 1: cache-hit POST api/builds latency in registry mode (goal p50 <= 50 ms
on loopback).

The service runs in registry mode behind a real hub with a registry of this run
(Debian's ``docker-registry`` on a loopback port; ``--auth htpasswd`` or ``--auth token``
put a login in front of it, the service gets the credentials from its config). One build
pushes the image; then the local copies are removed from the Docker engine, so every
cache hit is answered from the registry: ``git ls-remote`` for the ref, one manifest
HEAD (with the OCI + Docker v2 Accept headers) for the commit tag, labels from the digest
cache and the repository's tags from the listing snapshot (re-read after the TTL).

Requests are sent one after another on a keep-alive connection, alternating in blocks of
10 between the hub's proxy and the service's own port. Also timed in this process: the
manifest HEAD alone, ``RegistryCatalog.image_info`` (the whole cache check) and
``resolve_ref`` against the same git server.

Run: .venv/bin/python benchmarks/registry_cache_hit.py [--requests 200] [--auth none|htpasswd|token]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    Rig,
    dockerfile,
    follow_to_done,
    goal_line,
    header,
    images_with_prefix,
    machine_line,
    note,
    percentile,
    post_build,
    remove_images,
    session,
    summary_ms,
    timed_posts,
)
from registry_common import start_registry

from repo2docker_service.images.dockerconfig import RegistryCredentials
from repo2docker_service.images.naming import ImageNamer
from repo2docker_service.images.registry.catalog import RegistryCatalog
from repo2docker_service.images.registry.client import RegistryClient
from repo2docker_service.sources import resolve_ref

GOAL_P50_MS = 50.0


async def run(rig: Rig, reg, creds, n: int) -> bool:
    url = rig.git.create_repo("bench/regcachehit", {"Dockerfile": dockerfile(secrets.token_hex(8))})
    body = {"repo": url, "ref": "main"}
    async with session() as s:
        status, result = await post_build(s, rig, body)
        if status != 202:
            raise RuntimeError(f"first request should start a build: {status} {result}")
        t = time.perf_counter()
        events = await follow_to_done(
            rig.url(f"api/builds/{result['build']['id']}/events"), token=rig.token()
        )
        done = events[-1].data
        if done["state"] != "built":
            raise RuntimeError(f"build failed: {done}")
        note(f"build + push took {time.perf_counter() - t:.1f} s")
        local = images_with_prefix(f"{reg.host}/{rig.prefix}")
        remove_images(local)
        note(f"removed {len(local)} local tags: cache hits are answered by the registry")
        headers = rig.headers()
        await timed_posts(s, rig.url("api/builds"), headers, body, 10)  # warm-up
        proxied, direct = [], []
        for _ in range(0, n, 10):
            proxied += await timed_posts(s, rig.url("api/builds"), headers, body, 10)
            direct += await timed_posts(s, rig.direct_url("api/builds"), headers, body, 10)

    image = done["image"]
    repository, _, tag = image.rpartition(":")
    name = repository.removeprefix(f"{reg.host}/")
    client = RegistryClient(reg.host, credentials=creds)
    catalog = RegistryCatalog(
        namer=ImageNamer(registry=reg.host, prefix=rig.prefix),
        client=RegistryClient(reg.host, credentials=creds),
    )
    heads, lookups, resolves = [], [], []
    try:
        await client.head_manifest(name, tag)
        await catalog.image_info(image)
        for _ in range(min(n, 100)):
            t = time.perf_counter()
            if await client.head_manifest(name, tag) is None:
                raise RuntimeError("manifest HEAD found nothing")
            heads.append(time.perf_counter() - t)
            t = time.perf_counter()
            if await catalog.image_info(image) is None:
                raise RuntimeError("image_info found nothing")
            lookups.append(time.perf_counter() - t)
            t = time.perf_counter()
            await resolve_ref(url, "main")
            resolves.append(time.perf_counter() - t)
    finally:
        await client.close()
        await catalog.close()

    print(f"cache-hit POST via proxy     {summary_ms(proxied)}")
    print(f"cache-hit POST direct        {summary_ms(direct)}")
    print(f"manifest HEAD                {summary_ms(heads)}  (in process)")
    print(f"RegistryCatalog.image_info   {summary_ms(lookups)}  (the cache check, in process)")
    print(f"resolve_ref (git ls-remote)  {summary_ms(resolves)}  (in process)")
    p50 = percentile(proxied, 50) * 1000
    print(
        f"shares of the median POST: git ls-remote "
        f"{statistics.median(resolves) / statistics.median(proxied) * 100:.0f} %, registry "
        f"cache check {statistics.median(lookups) / statistics.median(proxied) * 100:.0f} %"
    )
    print(f"cache-hit POST via proxy p99: {percentile(proxied, 99) * 1000:.1f} ms (no goal)")
    return goal_line("registry-mode cache-hit POST p50 (via proxy)", p50, GOAL_P50_MS, "ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=200, help="requests (10..2000)")
    parser.add_argument("--auth", choices=["none", "htpasswd", "token"], default="none")
    args = parser.parse_args()
    n = max(10, min(args.requests // 10 * 10, 2000))
    header(f"R1. registry-mode cache-hit POST latency, auth {args.auth}, {n} requests")
    note(machine_line())
    workdir = Path(tempfile.mkdtemp(prefix="r2ds-bench-regcache-"))
    auth = None if args.auth == "none" else args.auth
    user, password = ("bench", "pw-" + secrets.token_hex(8)) if auth else ("", "")
    reg = start_registry(workdir / "registry", auth=auth, username=user, password=password)
    creds = RegistryCredentials(user, password) if auth else None
    config = f"c.Repo2DockerService.registry_url = {reg.host!r}\n"
    if auth:
        config += (
            f"c.Repo2DockerService.registry_username = {user!r}\n"
            f"c.Repo2DockerService.registry_password = {password!r}  # benchmark only\n"
        )
    try:
        with Rig("regcachehit", service_config=config) as rig:
            asyncio.run(asyncio.wait_for(run(rig, reg, creds, n), 900))
    finally:
        reg.stop()
        if reg.token_server is not None:
            reg.token_server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    note(f"after: {machine_line()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
