"""Benchmark 1: service build wall time / raw repo2docker CLI wall time (goal <= 1.05).

Same repository (a small Dockerfile repo served over smart HTTP on 127.0.0.1), same machine,
one run, interleaved: each pair is one service build and one CLI build, the order
alternating between pairs. Every build gets a fresh commit whose Dockerfile has a new nonce
in a RUN line, so neither side hits an image or a BuildKit layer cache; images are removed
after every build.

- service time: POST api/builds (through the hub's proxy) until the build's ``done`` event
  arrives on GET api/builds/{id}/events. Includes ref resolution (git ls-remote), queueing,
  repo2docker, tagging ``latest`` and the event delivery.
- goal: the median of the per-pair ratios service/CLI (the ratio of the medians is printed
  too; it is the less robust figure when the machine's load changes during the run).
- CLI time: the very argv the service's LocalExecutor runs
  (``LocalExecutor.command_line``: ``repo2docker --no-run --json-logs --user-id ...
  --image-name ... --ref <sha> --label ... --config <offline config> -- <url>``), with the
  same per-build environment and working directory, from spawn to exit, output consumed.

Run: .venv/bin/python benchmarks/bench_build_overhead.py [--pairs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    OFFLINE_CONFIG,
    USER,
    Rig,
    dockerfile,
    follow_to_done,
    goal_line,
    header,
    machine_line,
    note,
    post_build,
    remove_images,
    session,
)

from repo2docker_service.builds.executors import LocalExecutor
from repo2docker_service.builds.executors.local import default_repo2docker_command
from repo2docker_service.builds.model import Build
from repo2docker_service.images.naming import ImageNamer, commit_tag, escape_owner

GOAL_RATIO = 1.05
REPO_NAME = "bench/overhead"
ENV_NAME = "overhead"


def parse_time(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def repo2docker_span(log_text: str, build_id: str) -> float | None:
    """Seconds between the service's "started repo2docker" and "repo2docker exited" log
    lines of ``build_id`` (millisecond timestamps of the service log), or None."""
    stamps = {}
    for m in re.finditer(
        r"\[\w (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) Repo2DockerService\] build "
        + re.escape(build_id)
        + r" \(owner [^)]*\): (started repo2docker|repo2docker exited)",
        log_text,
    ):
        stamps[m.group(2)] = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S.%f").timestamp()
    if len(stamps) != 2:
        return None
    return stamps["repo2docker exited"] - stamps["started repo2docker"]


async def service_build(rig: Rig, url: str) -> dict:
    async with session() as s:
        t0 = time.time()
        p0 = time.perf_counter()
        status, result = await post_build(s, rig, {"repo": url, "ref": "main", "name": ENV_NAME})
        if status != 202:
            raise RuntimeError(f"expected 202 for a new build, got {status}: {result}")
        t_post = time.perf_counter() - p0
        build = result["build"]
        events = await follow_to_done(
            rig.url(f"api/builds/{build['id']}/events"), token=rig.token(), timeout=600
        )
        wall = time.perf_counter() - p0
    done = events[-1]
    if done.type != "done" or done.data["state"] != "built":
        raise RuntimeError(f"service build did not succeed: {done.data}")
    rec = done.data
    created, started, finished = (parse_time(rec[k]) for k in ("created", "started", "finished"))
    remove_images([rec["image"], rec["latest_image"]])
    r2d = repo2docker_span(rig.hub.log_text(), build["id"])
    return {
        "wall": wall,
        "repo2docker": r2d if r2d is not None else float("nan"),
        "post": t_post,
        "before_queue": created - t0,  # validation + git ls-remote + cache check
        "queued": started - created,
        "running": finished - started,  # executor + checks + tag latest
        "delivery": done.received - finished,
    }


async def cli_build(rig: Rig, url: str, sha: str) -> dict:
    namer = ImageNamer(prefix=rig.prefix)
    slug = escape_owner(USER)
    build = Build(
        owner=USER,
        owner_slug=slug,
        name=ENV_NAME,
        repo=url,
        ref="main",
        commit=sha,
        image=namer.reference(owner_slug=slug, name=ENV_NAME, tag=commit_tag(sha)),
        latest_image=namer.reference(owner_slug=slug, name=ENV_NAME, tag="latest"),
    )
    executor = LocalExecutor(
        repo2docker_command=default_repo2docker_command(), repo2docker_config=OFFLINE_CONFIG
    )
    # no --cache-from: the service passes it only when :latest exists, and images are
    # removed after every build, so the service does not pass it either
    argv = executor.command_line(
        build, push=False, cache_from=[], labels=build.image_labels().to_labels()
    )
    workdir = tempfile.mkdtemp(prefix="r2ds-bench-cli-")
    env = executor.process_env(credentials=None, tmpdir=workdir, repo=url)
    try:
        p0 = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
            cwd=workdir,
            start_new_session=True,
        )
        out = await asyncio.wait_for(proc.stdout.read(), 600)
        rc = await proc.wait()
        wall = time.perf_counter() - p0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if rc != 0:
        raise RuntimeError(f"repo2docker CLI failed ({rc}): {out.decode()[-2000:]}")
    remove_images([build.image])
    return {"wall": wall, "argv": argv}


async def run(rig: Rig, pairs: int) -> bool:
    url = rig.git.create_repo(REPO_NAME, {"Dockerfile": dockerfile(secrets.token_hex(8))})

    def fresh_commit() -> str:
        return rig.git.commit(REPO_NAME, {"Dockerfile": dockerfile(secrets.token_hex(8))})

    note("warm-up (not counted): one service build, one CLI build")
    fresh_commit()
    await service_build(rig, url)
    argv = (await cli_build(rig, url, fresh_commit()))["argv"]
    shown = [a if len(a) < 60 else a[:57] + "..." for a in argv]
    note("CLI argv (LocalExecutor.command_line): " + " ".join(shown))

    rows = []
    for i in range(pairs):
        order = ("service", "cli") if i % 2 == 0 else ("cli", "service")
        row = {}
        for side in order:
            sha = fresh_commit()
            if side == "service":
                row["service"] = await service_build(rig, url)
            else:
                row["cli"] = await cli_build(rig, url, sha)
        rows.append((order, row))
        svc, cli = row["service"], row["cli"]
        print(
            f"pair {i + 1} ({order[0]} first): service {svc['wall']:.3f} s, "
            f"CLI {cli['wall']:.3f} s, ratio {svc['wall'] / cli['wall']:.3f}  "
            f"[service: before queue {svc['before_queue'] * 1000:.0f} ms, queued "
            f"{svc['queued'] * 1000:.0f} ms, running {svc['running']:.3f} s of which "
            f"repo2docker {svc['repo2docker']:.3f} s, done delivered "
            f"{svc['delivery'] * 1000:.0f} ms after finish]",
            flush=True,
        )
    svc_walls = [r["service"]["wall"] for _, r in rows]
    cli_walls = [r["cli"]["wall"] for _, r in rows]
    ratios = [s / c for s, c in zip(svc_walls, cli_walls, strict=True)]
    med_svc, med_cli = statistics.median(svc_walls), statistics.median(cli_walls)
    print(
        f"median service {med_svc:.3f} s, median CLI {med_cli:.3f} s, "
        f"ratio of medians {med_svc / med_cli:.3f}; median of pair ratios "
        f"{statistics.median(ratios):.3f} (min {min(ratios):.3f}, max {max(ratios):.3f})"
    )
    parts = {
        k: statistics.median(r["service"][k] for _, r in rows)
        for k in ("before_queue", "queued", "running", "repo2docker", "delivery")
    }
    print(
        "median service breakdown: "
        + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in parts.items())
        + f"; running minus CLI median = {(parts['running'] - med_cli) * 1000:.0f} ms"
    )
    outside = [r["service"]["wall"] - r["service"]["repo2docker"] for _, r in rows]
    inside = [r["service"]["repo2docker"] / r["cli"]["wall"] for _, r in rows]
    print(
        "service time outside the repo2docker process (validation, git ls-remote, cache "
        "check, queue, tagging, events; per pair): "
        + ", ".join(f"{x * 1000:.0f}" for x in outside)
        + f" ms, median {statistics.median(outside) * 1000:.0f} ms; repo2docker inside the "
        f"service / CLI run: median {statistics.median(inside):.3f}"
    )
    # the goal uses the median of the per-pair ratios: both builds of a pair run back to back,
    # so a change in machine load during the run cancels out within each pair (the ratio of
    # the medians can pair a quiet service build with a busy CLI build, and vice versa)
    return goal_line(
        "service/CLI build wall time (median of pair ratios)",
        statistics.median(ratios),
        GOAL_RATIO,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=5, help="interleaved pairs (1..20)")
    args = parser.parse_args()
    pairs = max(1, min(args.pairs, 20))
    header(f"1. build overhead: service vs repo2docker CLI, {pairs} pairs ({machine_line()})")
    with Rig("overhead") as rig:
        asyncio.run(asyncio.wait_for(run(rig, pairs), 1800))
    note(f"after: {machine_line()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
