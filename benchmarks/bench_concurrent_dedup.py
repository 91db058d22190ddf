"""Benchmark 5: 20 concurrent build requests over 5 distinct repos -> exactly 5 builds, 20 answers.

Five repositories (fresh Dockerfiles, so nothing is cached) get four requests each, all 20
sent at once through the hub's proxy (interleaved: repo 1, 2, 3, 4, 5, 1, 2, ...). Each answer
must be 202 (new build), 200 joined (attached to the identical build) or 200 cached (the
build had already finished). Then every build is followed to its end, and the number of
builds is checked three ways: distinct build ids in the 20 answers, GET api/builds for those
repositories, and the distinct images in the Docker engine.

Run: .venv/bin/python benchmarks/bench_concurrent_dedup.py [--repos 5] [--per-repo 4]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    Rig,
    docker,
    dockerfile,
    follow_to_done,
    goal_check,
    header,
    images_with_prefix,
    machine_line,
    note,
    post_build,
    request_json,
    session,
)


async def run(rig: Rig, repos: int = 5, per_repo: int = 4) -> bool:
    tag = secrets.token_hex(3)
    urls = [
        rig.git.create_repo(
            f"bench/dedup-{tag}-{i}", {"Dockerfile": dockerfile(secrets.token_hex(8))}
        )
        for i in range(repos)
    ]
    order = [urls[i % repos] for i in range(repos * per_repo)]
    async with session(limit=0) as s:
        await s.get(rig.url("api/info"), headers=rig.headers())  # token cache warm-up

        async def one(url: str) -> tuple[str, int, dict, float]:
            t = time.perf_counter()
            status, result = await post_build(s, rig, {"repo": url, "ref": "main"})
            return url, status, result, time.perf_counter() - t

        t0 = time.perf_counter()
        answers = await asyncio.gather(*(one(u) for u in order))
        t_answers = time.perf_counter() - t0
        kinds = Counter()
        ids_by_url: dict[str, set[str]] = {u: set() for u in urls}
        for url, status, result, _ in answers:
            if status == 202:
                kinds["202 new build"] += 1
                ids_by_url[url].add(result["build"]["id"])
            elif status == 200 and result.get("joined"):
                kinds["200 joined"] += 1
                ids_by_url[url].add(result["build"]["id"])
            elif status == 200 and result.get("cached"):
                kinds["200 cached"] += 1
                ids_by_url[url].add(result["image"]["build_id"])
            else:
                kinds[f"{status} other"] += 1
                note(f"unexpected answer {status}: {str(result)[:200]}")
        build_ids = set().union(*ids_by_url.values())
        finals = await asyncio.gather(
            *(
                follow_to_done(rig.url(f"api/builds/{b}/events"), token=rig.token(), timeout=300)
                for b in build_ids
            )
        )
        t_built = time.perf_counter() - t0
        status, listing = await request_json(s, "GET", rig.url("api/builds"), headers=rig.headers())
    states = Counter(f[-1].data["state"] for f in finals)
    listed = [b for b in listing["builds"] if b["repo"] in set(urls)]
    # only the repositories these builds wrote (the rig may hold other benchmarks' images)
    repositories = {f[-1].data["image"].rsplit(":", 1)[0] for f in finals}
    refs = [r for r in images_with_prefix(rig.prefix) if r.rsplit(":", 1)[0] in repositories]
    image_ids = set()
    if refs:
        image_ids = set(docker("image", "inspect", "--format", "{{.Id}}", *refs).stdout.split())
    latencies = sorted(a[3] for a in answers)
    print(
        f"{len(order)} requests answered in {t_answers * 1000:.0f} ms (slowest answer "
        f"{latencies[-1] * 1000:.0f} ms, median {latencies[len(latencies) // 2] * 1000:.0f} ms): "
        + ", ".join(f"{k}: {v}" for k, v in sorted(kinds.items()))
    )
    print(
        f"all builds ended {t_built:.1f} s after the requests: {dict(states)}; builds per repo "
        f"(from answers): {[len(ids_by_url[u]) for u in urls]}"
    )
    answered = sum(v for k, v in kinds.items() if not k.endswith("other"))
    counts = {
        "distinct build ids in answers": len(build_ids),
        "GET api/builds for these repos": len(listed),
        "distinct images in Docker": len(image_ids),
    }
    print("builds counted: " + ", ".join(f"{k} = {v}" for k, v in counts.items()))
    ok_builds = all(v == repos for v in counts.values()) and states == Counter({"built": repos})
    ok_answers = answered == len(order)
    goal_check(
        f"exactly {repos} builds for {repos} repos",
        ok_builds,
        "/".join(str(v) for v in counts.values()) + " (answers/api/builds/docker)",
    )
    goal_check(f"all {len(order)} requests answered", ok_answers, f"{answered}/{len(order)}")
    return ok_builds and ok_answers


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repos", type=int, default=5, help="distinct repositories (1..20)")
    parser.add_argument("--per-repo", type=int, default=4, help="requests per repository (1..20)")
    args = parser.parse_args()
    repos, per = max(1, min(args.repos, 20)), max(1, min(args.per_repo, 20))
    header(f"5. {repos * per} concurrent requests over {repos} repos ({machine_line()})")
    with Rig("dedup") as rig:
        asyncio.run(asyncio.wait_for(run(rig, repos, per), 900))
    note(f"after: {machine_line()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
