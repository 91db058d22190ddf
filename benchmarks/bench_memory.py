"""Benchmark 6: service memory, idle and after benchmarks 3-4 (goals <= 120 MB and <= 250 MB).

One service (managed by a real hub, found as the hub's child running
``-m repo2docker_service``) is measured from ``/proc/<pid>/status``:

- idle: after start-up (catalog read, hub token checked once), nothing else running;
- after benchmark 3 (GET api/images with 1,000 labelled images, 100 requests) and
  benchmark 4 (one build followed by 200 SSE viewers), in the same service.

VmRSS is the resident set at that moment; VmHWM is the peak resident set since the process
started (the worst moment during 3-4). The goal is checked against VmRSS after 3-4, and the
peak is printed next to it. Benchmark 5 runs afterwards too and its RSS is printed (no goal).

Run: .venv/bin/python benchmarks/bench_memory.py [--images 1000] [--viewers 200]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_concurrent_dedup
import bench_images_list
import bench_sse_fanout
from common import (
    GOAL_CONTEXT,
    Rig,
    goal_line,
    header,
    images_with_prefix,
    machine_line,
    memory_mb,
    note,
    remove_images,
    request_json,
    session,
)

GOAL_IDLE_MB = 120.0
GOAL_AFTER_MB = 250.0


def show(label: str, pid: int) -> dict[str, float]:
    mem = memory_mb(pid)
    print(f"{label:45s} VmRSS {mem['rss']:6.1f} MB   VmHWM (peak so far) {mem['hwm']:6.1f} MB")
    return mem


async def run(rig: Rig, images: int, viewers: int) -> bool:
    pid = rig.service_pid()
    async with session() as s:
        await request_json(s, "GET", rig.url("api/info"), headers=rig.headers())
    await asyncio.sleep(2)
    idle = show("idle (after start-up)", pid)
    # benchmark 3: 1,000 labelled images, 100 GETs as admin + 100 as alice
    note("running benchmark 3 in this service...")
    GOAL_CONTEXT["prefix"] = "[inside 6] "
    await bench_images_list.run(rig, images, 100, profile=False)
    show("after benchmark 3 (api/images)", pid)
    remove_images(images_with_prefix(rig.prefix))
    note("running benchmark 4 in this service...")
    await bench_sse_fanout.run(rig, viewers, 50)
    await asyncio.sleep(1)
    after = show("after benchmarks 3-4", pid)
    GOAL_CONTEXT["prefix"] = ""
    met_idle = goal_line("service RSS idle", idle["rss"], GOAL_IDLE_MB, "MB")
    met_after = goal_line("service RSS after benchmarks 3-4", after["rss"], GOAL_AFTER_MB, "MB")
    print(
        f"peak (VmHWM) during 3-4: {after['hwm']:.1f} MB "
        f"({'within' if after['hwm'] <= GOAL_AFTER_MB else 'OVER'} {GOAL_AFTER_MB:.0f} MB)"
    )
    note("running benchmark 5 in this service (figures for information, no goal)...")
    GOAL_CONTEXT["prefix"] = "[inside 6] "
    await bench_concurrent_dedup.run(rig, 5, 4)
    GOAL_CONTEXT["prefix"] = ""
    time.sleep(1)
    show("after benchmark 5 as well", pid)
    return met_idle and met_after


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=1000, help="labelled images (10..5000)")
    parser.add_argument("--viewers", type=int, default=200, help="SSE viewers (1..1000)")
    args = parser.parse_args()
    images, viewers = max(10, min(args.images, 5000)), max(1, min(args.viewers, 1000))
    header(f"6. service memory, idle and after benchmarks 3-4 ({machine_line()})")
    with Rig("memory") as rig:
        asyncio.run(asyncio.wait_for(run(rig, images, viewers), 1800))
    note(f"after: {machine_line()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
