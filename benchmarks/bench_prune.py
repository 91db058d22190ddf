"""Benchmark: prune of 500 tags (retention keep_tags=3), against ``docker rmi`` of the same
tags, side by side in one run; and that no image a container uses went.

500 commit tags in 10 environments (50 builds each, ``latest`` on the newest) are loaded
with one ``docker load`` of a hand-made archive (distinct configs that share one empty
layer, as bench_images_list does). In each environment a container is created from its
10th-oldest build (``docker create``: the images have no programs to run, and Docker
treats a created container's image as in use exactly like a running one's; the integration
test ``tests/integration/test_lifecycle.py`` uses a running container). Then:

1. the service's prune (``ImageLifecycle.prune`` in this process, against the engine: the
   same code ``POST api/images/prune`` runs) with a dry run first, then for real;
2. the same images loaded again, and the same tags removed with one ``docker rmi`` (the
   floor: the engine's own work for the same tags).

Rounds alternate the order (prune first, then rmi first); the ratio is of the medians.

It prints both times and their ratio, and checks that every in-use tag, every kept tag
and every ``latest`` is still there.

Run: .venv/bin/python benchmarks/bench_prune.py [--envs 10] [--builds 50]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import io
import json
import logging
import secrets
import statistics
import subprocess
import sys
import tarfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import docker, goal_check, header, machine_line, note, remove_prefix

from repo2docker_service.images.docker import DockerCatalog
from repo2docker_service.images.labels import ImageLabels
from repo2docker_service.images.lifecycle import ImageLifecycle
from repo2docker_service.images.naming import ImageNamer

KEEP = 3
LOG = logging.getLogger("bench_prune")


def archive(namer: ImageNamer, envs: int, builds: int) -> tuple[bytes, dict[str, list[str]]]:
    """A ``docker load`` archive; and per environment its commit references, oldest first."""
    layer_buf = io.BytesIO()
    tarfile.open(fileobj=layer_buf, mode="w").close()
    layer = layer_buf.getvalue()
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    out = io.BytesIO()
    tar = tarfile.open(fileobj=out, mode="w")

    def add(name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mtime = len(data), 0
        tar.addfile(info, io.BytesIO(data))

    add("layer/layer.tar", layer)
    manifest, refs = [], {}
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for e in range(envs):
        name = f"prune-{e:02d}"
        refs[name] = []
        for b in range(builds):
            commit = hashlib.sha1(f"{namer.prefix}{e}-{b}".encode()).hexdigest()
            built = (start + timedelta(minutes=b)).isoformat().replace("+00:00", "Z")
            labels = ImageLabels(
                owner="alice",
                shared=False,
                name=name,
                repo="https://git.example.org/a/b",
                ref="main",
                commit=commit,
                built_at=built,
                build_id=secrets.token_hex(8),
            ).to_labels()
            config = {
                "architecture": "amd64",
                "os": "linux",
                "created": built,
                "config": {"Labels": labels},
                "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            }
            data = json.dumps(config).encode()
            config_name = hashlib.sha256(data).hexdigest() + ".json"
            add(config_name, data)
            ref = namer.reference(owner_slug="alice", name=name, tag=commit[:12])
            tags = [ref] + (
                [namer.reference(owner_slug="alice", name=name, tag="latest")]
                if b == builds - 1
                else []
            )
            manifest.append(
                {"Config": config_name, "RepoTags": tags, "Layers": ["layer/layer.tar"]}
            )
            refs[name].append(ref)
    add("manifest.json", json.dumps(manifest).encode())
    tar.close()
    return out.getvalue(), refs


def load(data: bytes) -> float:
    start = time.monotonic()
    subprocess.run(["docker", "load", "-q"], input=data, check=True, capture_output=True)
    return time.monotonic() - start


def existing(prefix: str) -> set[str]:
    out = docker(
        "images", "--format", "{{.Repository}}:{{.Tag}}", "--filter", f"reference={prefix}*/*"
    ).stdout
    return set(out.split())


async def service_prune(namer: ImageNamer) -> tuple[float, float, dict]:
    catalog = DockerCatalog(namer=namer, log=LOG)
    life = ImageLifecycle(catalog=catalog, keep_tags=KEEP, log=LOG)
    try:
        await catalog.list_images()  # the index is loaded, as in a running service
        start = time.monotonic()
        plan = await life.prune(dry_run=True)
        dry = time.monotonic() - start
        start = time.monotonic()
        done = await life.prune(dry_run=False)
        real = time.monotonic() - start
    finally:
        await catalog.close()
    assert [r["reference"] for r in plan["removed"]] == [r["reference"] for r in done["removed"]]
    return dry, real, done


def expected_removals(refs: dict[str, list[str]], in_use: dict[str, str], builds: int) -> list[str]:
    """What the rule removes: all but the newest KEEP and the in-use tag of each environment."""
    return [r for name, rs in refs.items() for r in rs[: builds - KEEP] if r != in_use[name]]


def check(
    done: dict, refs: dict[str, list[str]], in_use: dict[str, str], left: set[str], builds: int
) -> bool:
    """GOAL lines: exactly the right tags went, and no in-use one."""
    removed = [r["reference"] for r in done["removed"]]
    expected_kept = {r for name, rs in refs.items() for r in [*rs[-KEEP:], in_use[name]]}
    wrong = sorted((expected_kept - left) | (set(removed) & expected_kept))
    right = sorted(removed) == sorted(expected_removals(refs, in_use, builds)) and not wrong
    ok = goal_check(
        "prune removes exactly the right tags", right, f"{len(removed)} removed, wrong: {wrong[:3]}"
    )
    kept = sum(r in left for r in in_use.values())
    return (
        goal_check(
            "no in-use image went", kept == len(in_use), f"{kept}/{len(in_use)} in-use tags left"
        )
        and ok
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--envs", type=int, default=10)
    parser.add_argument("--builds", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    prefix = f"r2dbench-{secrets.token_hex(3)}-"
    namer = ImageNamer(prefix=prefix)
    total = args.envs * args.builds
    header(f"prune of {total} tags ({args.envs} environments x {args.builds}), keep_tags={KEEP}")
    note(machine_line())
    data, refs = archive(namer, args.envs, args.builds)
    ok = True
    removed: list[str] = []
    times: dict[str, list[float]] = {"prune": [], "rmi": []}
    try:
        in_use = {name: r[9] for name, r in refs.items()}
        for rnd in range(args.rounds):
            order = ("prune", "rmi") if rnd % 2 == 0 else ("rmi", "prune")
            for kind in order:
                note(f"round {rnd + 1}: docker load {load(data):.1f} s")
                if kind == "rmi":
                    if not removed:  # the first round's rmi needs the prune's list
                        removed = expected_removals(refs, in_use, args.builds)
                    start = time.monotonic()
                    docker("rmi", *removed, timeout=1200)
                    times["rmi"].append(time.monotonic() - start)
                    note(f"  docker rmi of {len(removed)} tags: {times['rmi'][-1]:.2f} s")
                    continue
                for name, ref in in_use.items():
                    docker("create", "--name", f"{prefix}{name}", ref, "true")
                dry, real, done = asyncio.run(service_prune(namer))
                times["prune"].append(real)
                removed = [r["reference"] for r in done["removed"]]
                ok &= check(done, refs, in_use, existing(prefix), args.builds)
                note(
                    f"  service: dry run {dry:.2f} s, prune {real:.2f} s, {len(removed)} tags "
                    f"removed ({len(done['skipped'])} skipped), {done['bytes_freed']} bytes freed"
                )
                docker("rm", "-f", *[f"{prefix}{name}" for name in refs], check=False)
        real, floor = statistics.median(times["prune"]), statistics.median(times["rmi"])
        n = max(1, len(removed))
        print(
            f"RATIO prune / docker rmi (medians of {args.rounds}): {real / floor:.2f} (service "
            f"{real:.2f} s, rmi {floor:.2f} s; per tag {1000 * real / n:.1f} ms vs "
            f"{1000 * floor / n:.1f} ms)"
        )
    finally:
        docker("rm", "-f", *[f"{prefix}{name}" for name in refs], check=False)
        removed_count = remove_prefix(prefix)
        note(f"(clean-up: removed {removed_count} tags)")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
