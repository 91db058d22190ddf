"""Benchmark 7: BinderHub's build API against POST api/builds, in one run.

- build overhead (goal <= 1.02): pairs of fresh builds of the same small Dockerfile repo
  (a new nonce per build, so no image or layer cache), one through ``GET build/git/...``
  read to its ``ready`` event, one through ``POST api/builds`` + its event stream to
  ``done``; the order alternates between pairs. Goal: the median of the per-pair ratios.
- cache hit (goal p50 <= 1.1x): an existing image asked for in blocks of 10 taking turns:
  ``GET build/...`` read to its single ``ready`` event vs ``POST api/builds`` answered
  ``cached: true``; both through the hub's proxy on keep-alive connections.

Run: .venv/bin/python benchmarks/bench_binder.py [--pairs 5] [--requests 200]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import quote

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
    session,
    summary_ms,
)

GOAL_BUILD_RATIO = 1.02
GOAL_CACHE_RATIO = 1.1


def binder_url(rig: Rig, repo: str) -> str:
    return rig.url(f"build/git/{quote(repo, safe='')}/main?build_only=true")


async def binder_get(s, rig: Rig, repo: str) -> list[str]:
    """The phases of one ``GET build/...`` read to the end of its stream."""
    headers = {**rig.headers(), "Accept": "text/event-stream"}
    async with s.get(binder_url(rig, repo), headers=headers) as resp:
        text = await resp.text()
    return [line for line in text.splitlines() if line.startswith("data: ")]


async def native_build(s, rig: Rig, repo: str) -> float:
    t = time.perf_counter()
    status, result = await post_build(s, rig, {"repo": repo, "ref": "main"})
    if status != 202:
        raise RuntimeError(f"expected a build: {status} {result}")
    events = await follow_to_done(
        rig.url(f"api/builds/{result['build']['id']}/events"), token=rig.token()
    )
    if events[-1].data["state"] != "built":
        raise RuntimeError(f"build failed: {events[-1].data}")
    return time.perf_counter() - t


async def binder_build(s, rig: Rig, repo: str) -> float:
    t = time.perf_counter()
    lines = await binder_get(s, rig, repo)
    if not lines or '"phase":"ready"' not in lines[-1] or len(lines) < 3:
        raise RuntimeError(f"expected a build to ready: {lines[-3:]}")
    return time.perf_counter() - t


async def builds(s, rig: Rig, pairs: int) -> bool:
    ratios, native_times, binder_times = [], [], []
    for i in range(pairs):
        repos = [
            rig.git.create_repo(
                f"bench/binder-{i}-{side}", {"Dockerfile": dockerfile(secrets.token_hex(8))}
            )
            for side in ("native", "binder")
        ]
        if i % 2:
            b = await binder_build(s, rig, repos[1])
            n = await native_build(s, rig, repos[0])
        else:
            n = await native_build(s, rig, repos[0])
            b = await binder_build(s, rig, repos[1])
        native_times.append(n)
        binder_times.append(b)
        ratios.append(b / n)
    print(f"build through POST api/builds + events   {summary_ms(native_times)}")
    print(f"build through GET build/ (to ready)      {summary_ms(binder_times)}")
    print(f"per-pair ratios: {', '.join(f'{r:.3f}' for r in ratios)}")
    return goal_line(
        "build/ : api/builds build time (median of pairs)",
        statistics.median(ratios),
        GOAL_BUILD_RATIO,
    )


async def cache_hits(s, rig: Rig, n: int) -> bool:
    repo = rig.git.create_repo("bench/binder-cached", {"Dockerfile": dockerfile("cached")})
    await native_build(s, rig, repo)
    headers = rig.headers()
    native, binder = [], []
    for block in range(n // 10 + 1):  # the first block warms up and is not counted
        got_native, got_binder = [], []
        for _ in range(10):
            t = time.perf_counter()
            async with s.post(
                rig.url("api/builds"), headers=headers, json={"repo": repo, "ref": "main"}
            ) as resp:
                payload = await resp.json()
            got_native.append(time.perf_counter() - t)
            if not payload.get("cached"):
                raise RuntimeError(f"expected a cache hit: {payload}")
        for _ in range(10):
            t = time.perf_counter()
            lines = await binder_get(s, rig, repo)
            got_binder.append(time.perf_counter() - t)
            if len(lines) != 1 or '"phase":"ready"' not in lines[0]:
                raise RuntimeError(f"expected one ready event: {lines}")
        if block:
            native += got_native
            binder += got_binder
    print(f"cache hit POST api/builds    {summary_ms(native)}")
    print(f"cache hit GET build/         {summary_ms(binder)}")
    ratio = percentile(binder, 50) / percentile(native, 50)
    return goal_line("cache-hit p50 build/ : api/builds", ratio, GOAL_CACHE_RATIO)


async def run(rig: Rig, pairs: int, n: int) -> bool:
    async with session() as s:
        ok_build = await builds(s, rig, pairs)
        ok_cache = await cache_hits(s, rig, n)
    return ok_build and ok_cache


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=5, help="build pairs (1..20)")
    parser.add_argument("--requests", type=int, default=200, help="cache hits per side")
    args = parser.parse_args()
    pairs = max(1, min(args.pairs, 20))
    n = max(10, min(args.requests // 10 * 10, 2000))
    header(f"7. BinderHub's build API vs POST api/builds ({machine_line()})")
    with Rig("binder") as rig:
        asyncio.run(asyncio.wait_for(run(rig, pairs, n), 1800))
    note(f"after: {machine_line()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
