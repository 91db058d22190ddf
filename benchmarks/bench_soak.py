"""Soak: many builds in a row, and event streams opened and dropped, without growth.

Two parts (issue 18), each against one real hub + service:

1. ``--builds`` builds in a row (default 500), each a new commit of a tiny Dockerfile
   repository (so each is a real repo2docker build, never a cache hit). Printed: the
   service's RSS and open file descriptors (``/proc/<pid>/fd``) after the first build and
   after the last, the build history's length against ``history_limit``, and the largest
   kept log against ``log_limit_bytes``.
2. ``--streams`` event streams (default 300) opened on a running build, held until each has
   its first bytes, then dropped; five rounds. Printed: RSS before and after each round.
   Goal: back within 10 % of before.

Run: .venv/bin/python benchmarks/bench_soak.py [--builds 500] [--streams 300]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    Rig,
    dockerfile,
    follow_to_done,
    goal_check,
    header,
    machine_line,
    memory_mb,
    note,
    open_viewer,
    post_build,
    request_json,
    session,
)

HISTORY_LIMIT = 50
LOG_LIMIT = 64 * 1024
ROUNDS = 5
GOAL_RSS_GROWTH = 0.10


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def build_once(rig: Rig, s, url: str) -> str:
    status, result = await post_build(s, rig, {"repo": url, "ref": "main"})
    if status != 202:
        raise RuntimeError(f"a new commit should start a build: {status} {result}")
    events = await follow_to_done(
        rig.url(f"api/builds/{result['build']['id']}/events"), token=rig.token()
    )
    state = events[-1].data.get("state")
    if state != "built":
        raise RuntimeError(f"build failed: {events[-1].data}")
    return str(result["build"]["id"])


async def builds_in_a_row(rig: Rig, n: int) -> bool:
    pid = rig.service_pid()
    url = rig.git.create_repo("bench/soak", {"Dockerfile": dockerfile(secrets.token_hex(8))})
    async with session(force_close=True) as s:  # idle for a whole build between requests
        await build_once(rig, s, url)
        start = memory_mb(pid)["rss"], open_fds(pid)
        started = time.monotonic()
        for i in range(1, n):
            rig.git.commit("bench/soak", {"Dockerfile": dockerfile(secrets.token_hex(8))})
            await build_once(rig, s, url)
            if i % 50 == 0:
                note(f"{i + 1} builds, RSS {memory_mb(pid)['rss']:.1f} MB, fds {open_fds(pid)}")
        elapsed = time.monotonic() - started
        end = memory_mb(pid)["rss"], open_fds(pid)
        _, builds = await request_json(s, "GET", rig.url("api/builds"), headers=rig.headers())
        longest = 0
        for b in builds["builds"][-5:]:
            async with s.get(rig.url(f"api/builds/{b['id']}/logs"), headers=rig.headers()) as r:
                longest = max(longest, len(await r.read()))
    print(f"{n} builds in {elapsed:.0f} s ({elapsed / max(1, n - 1):.2f} s each after the first)")
    print(f"RSS after the first {start[0]:.1f} MB, after the last {end[0]:.1f} MB")
    print(f"open fds after the first {start[1]}, after the last {end[1]}")
    kept = len(builds["builds"])
    print(f"history kept {kept} (history_limit {HISTORY_LIMIT}); largest log {longest} B")
    met = goal_check("soak: history limit holds", kept <= HISTORY_LIMIT, f"{kept} kept")
    met &= goal_check("soak: no fd growth", end[1] <= start[1] + 2, f"{start[1]} -> {end[1]}")
    return met


async def streams_dropped(rig: Rig, n: int) -> bool:
    pid = rig.service_pid()
    token = rig.token()
    step = "RUN for i in $(seq 1 600); do echo soak-line-$i; sleep 0.5; done"
    url = rig.git.create_repo(
        "bench/soak-streams", {"Dockerfile": dockerfile(secrets.token_hex(8), step)}
    )
    async with session() as s:
        status, result = await post_build(s, rig, {"repo": url, "ref": "main"})
        if status != 202:
            raise RuntimeError(f"the slow build did not start: {status} {result}")
        build_id = result["build"]["id"]
        events_url = rig.url(f"api/builds/{build_id}/events")
        await asyncio.sleep(5)
        before = memory_mb(pid)["rss"]
        print(f"RSS before the rounds {before:.1f} MB")
        after = before
        for r in range(ROUNDS):
            viewers = [await open_viewer(events_url, token=token) for _ in range(n)]
            deadline = time.monotonic() + 60
            while any(v.first_byte is None for v in viewers) and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            held = memory_mb(pid)["rss"]
            for v in viewers:
                v.close()
            await asyncio.sleep(2)
            after = memory_mb(pid)["rss"]
            print(f"round {r + 1}: {n} open RSS {held:.1f} MB, dropped RSS {after:.1f} MB")
        async with s.delete(rig.url(f"api/builds/{build_id}"), headers=rig.headers()) as resp:
            await resp.read()
    growth = (after - before) / before
    return goal_check(
        f"streams: RSS back within {GOAL_RSS_GROWTH:.0%} after {ROUNDS} rounds",
        growth <= GOAL_RSS_GROWTH,
        f"{before:.1f} -> {after:.1f} MB ({growth:+.1%})",
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--builds", type=int, default=500, help="builds in a row (2..2000)")
    parser.add_argument("--streams", type=int, default=300, help="streams a round (1..1000)")
    args = parser.parse_args()
    builds, streams = max(2, min(args.builds, 2000)), max(1, min(args.streams, 1000))
    config = (
        f"c.Repo2DockerService.history_limit = {HISTORY_LIMIT}\n"
        f"c.Repo2DockerService.log_limit_bytes = {LOG_LIMIT}\n"
    )
    header(f"soak: {builds} builds in a row, {streams} streams x {ROUNDS} ({machine_line()})")
    with Rig("soak", service_config=config) as rig:
        asyncio.run(asyncio.wait_for(builds_in_a_row(rig, builds), 60 * 60))
        asyncio.run(asyncio.wait_for(streams_dropped(rig, streams), 30 * 60))
    note(f"after: {machine_line()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
