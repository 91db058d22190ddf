"""Benchmark 2: cache-hit POST api/builds latency, p50/p99 over 200 requests (goal p50 <= 50 ms).

One build makes the image; then 200 identical requests (same repo, ref ``main``) are sent one
after another through the hub's proxy on a keep-alive connection, each answered 200 with
``cached: true``. Each cache hit still resolves ``main`` (the branch may have moved; with
git's protocol v2 ``ls-refs`` since issue 19, ``bench_ref_resolution.py`` compares it with
``git ls-remote`` side by side) and looks the image up in the Docker engine.

To show where the time goes, the same run also measures:
- the same 200 requests sent straight to the service's port (no proxy),
- GET api/info through the proxy (proxy + Tornado + hub token check, no git, no Docker),
- the service's own ``resolve_ref`` (``git ls-remote`` as a subprocess against the same
  127.0.0.1 git server) and ``git ls-remote`` run alone,
- the service's ``DockerCatalog.image_info`` (the cache check) in this process.

Run: .venv/bin/python benchmarks/bench_cache_hit.py [--requests 200]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    Rig,
    dockerfile,
    follow_to_done,
    goal_line,
    header,
    machine_line,
    note,
    percentile,
    post_build,
    request_json,
    session,
    set_git_nodelay,
    summary_ms,
    timed_posts,
)

from repo2docker_service.images.docker import DockerCatalog
from repo2docker_service.images.naming import ImageNamer
from repo2docker_service.sources import resolve_ref
from tests.rig.git import git_env

GOAL_P50_MS = 50.0


async def run(rig: Rig, n: int) -> bool:
    url = rig.git.create_repo("bench/cachehit", {"Dockerfile": dockerfile(secrets.token_hex(8))})
    body = {"repo": url, "ref": "main"}
    async with session() as s:
        status, result = await post_build(s, rig, body)
        if status != 202:
            raise RuntimeError(f"first request should start a build: {status} {result}")
        events = await follow_to_done(
            rig.url(f"api/builds/{result['build']['id']}/events"), token=rig.token()
        )
        image = events[-1].data["image"]
        if events[-1].data["state"] != "built":
            raise RuntimeError(f"build failed: {events[-1].data}")
        headers = rig.headers()
        # warm-up: token cache in the service, connections, page cache
        await timed_posts(s, rig.url("api/builds"), headers, body, 10)

        catalog = DockerCatalog(namer=ImageNamer(prefix=rig.prefix))
        # every measurement runs in blocks of 10 taking turns, so load drift (the machine
        # is shared) hits all of them alike and the shares below compare like with like
        proxied, direct, info, resolve, cli, lookup = [], [], [], [], [], []
        try:
            for _ in range(0, n, 10):
                proxied += await timed_posts(s, rig.url("api/builds"), headers, body, 10)
                direct += await timed_posts(s, rig.direct_url("api/builds"), headers, body, 10)
                for _ in range(5):
                    t = time.perf_counter()
                    await request_json(s, "GET", rig.url("api/info"), headers=headers)
                    info.append(time.perf_counter() - t)
                    t = time.perf_counter()
                    await resolve_ref(url, "main")
                    resolve.append(time.perf_counter() - t)
                    t = time.perf_counter()
                    proc = await asyncio.create_subprocess_exec(
                        "git", "ls-remote", "--", url, "main", "main^{}",
                        env=git_env(),
                        stdout=asyncio.subprocess.PIPE,
                        stderr=asyncio.subprocess.PIPE,
                    )  # fmt: skip
                    await asyncio.wait_for(proc.communicate(), 30)
                    cli.append(time.perf_counter() - t)
                    if proc.returncode != 0:
                        raise RuntimeError("git ls-remote failed")
                    t = time.perf_counter()
                    if await catalog.image_info(image) is None:
                        raise RuntimeError("image_info found nothing")
                    lookup.append(time.perf_counter() - t)
        finally:
            await catalog.close()
        # the stock test git server (Nagle on: a 40 ms delayed-ACK stall per git request)
        set_git_nodelay(False)
        try:
            await timed_posts(s, rig.url("api/builds"), headers, body, 5)
            stock = await timed_posts(s, rig.url("api/builds"), headers, body, min(n, 100))
            stock_resolve = []
            for _ in range(min(n, 50)):
                t = time.perf_counter()
                await resolve_ref(url, "main")
                stock_resolve.append(time.perf_counter() - t)
        finally:
            set_git_nodelay(True)

    print(f"cache-hit POST via proxy     {summary_ms(proxied)}")
    print(f"cache-hit POST direct        {summary_ms(direct)}")
    print(f"GET api/info via proxy       {summary_ms(info)}  (proxy + Tornado + token check)")
    print(f"resolve_ref (git ls-remote)  {summary_ms(resolve)}  (service code, in-process)")
    print(f"git ls-remote alone (CLI)    {summary_ms(cli)}")
    print(f"DockerCatalog.image_info     {summary_ms(lookup)}  (the cache check)")
    print("with the stock rig git server (Nagle on, see common.set_git_nodelay):")
    print(f"  cache-hit POST via proxy   {summary_ms(stock)}")
    print(f"  resolve_ref (git ls-remote){summary_ms(stock_resolve)}")
    p50 = percentile(proxied, 50) * 1000
    share = statistics.median(resolve) / statistics.median(proxied)
    print(
        f"git ls-remote share of the median cache-hit POST: {share * 100:.0f} % "
        f"({statistics.median(resolve) * 1000:.1f} of {p50:.1f} ms); Docker lookup "
        f"{statistics.median(lookup) / statistics.median(proxied) * 100:.0f} %; "
        f"proxy+auth+HTTP (api/info) "
        f"{statistics.median(info) / statistics.median(proxied) * 100:.0f} %"
    )
    print(f"cache-hit POST via proxy p99: {percentile(proxied, 99) * 1000:.1f} ms (no goal)")
    return goal_line("cache-hit POST p50 (via proxy)", p50, GOAL_P50_MS, "ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=200, help="requests (10..2000)")
    args = parser.parse_args()
    n = max(10, min(args.requests // 10 * 10, 2000))
    header(f"2. cache-hit POST latency, {n} requests ({machine_line()})")
    with Rig("cachehit") as rig:
        asyncio.run(asyncio.wait_for(run(rig, n), 900))
    note(f"after: {machine_line()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
