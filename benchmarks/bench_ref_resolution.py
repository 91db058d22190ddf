"""Benchmark 8: cache hits with a branch ref, protocol v2 ``ls-refs`` against ``git ls-remote``.

Two hubs with a service each run side by side in one run, identical except for
``c.RefResolver.protocol_v2`` (True: ``ls-refs`` on kept-alive connections; False: ``git
ls-remote`` for every request, the path before issue 19). Each builds one image; then
cache-hit ``POST api/builds`` with ref ``main`` go through each hub's proxy in alternating
blocks of 10, so machine load hits both alike (goal: v2 p50 <= 23 ms).

Then, in this process, against a git server over TLS on 127.0.0.1 (a CA of its own, handed
to the resolver and to git through ``GIT_SSL_CAINFO``): the first resolution (TCP and TLS
handshake, capability advertisement, ``ls-refs``), later ones, and "one round trip": the
same ``ls-refs`` POST sent with ``http.client`` on a kept-alive TLS connection (the floor any
client pays: the network plus ``git http-backend``). Goal: resolution p50 <= round trip
p50 + 5 ms. ``git ls-remote`` against the same server is timed for contrast.

Run: .venv/bin/python benchmarks/bench_ref_resolution.py [--requests 200]
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import secrets
import ssl
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
    machine_line,
    note,
    percentile,
    post_build,
    session,
    summary_ms,
    timed_posts,
)

from repo2docker_service.sources import resolve_ref
from repo2docker_service.sources.resolver import RefResolver, ls_refs_prefixes
from repo2docker_service.sources.smarthttp import _ls_refs_body
from scripts.git_http import loopback_env
from tests.rig.git import start_git_http
from tests.rig.tls import loopback_tls

GOAL_P50_MS = 23.0
GOAL_OVER_ROUND_TRIP_MS = 5.0


async def first_build(s, rig: Rig) -> dict:
    url = rig.git.create_repo("bench/refs", {"Dockerfile": dockerfile(secrets.token_hex(8))})
    body = {"repo": url, "ref": "main"}
    status, result = await post_build(s, rig, body)
    if status != 202:
        raise RuntimeError(f"first request should start a build: {status} {result}")
    events = await follow_to_done(
        rig.url(f"api/builds/{result['build']['id']}/events"), token=rig.token()
    )
    if events[-1].data["state"] != "built":
        raise RuntimeError(f"build failed: {events[-1].data}")
    return body


async def via_proxy(v2: Rig, git: Rig, n: int) -> bool:
    async with session() as s:
        bodies = {id(v2): await first_build(s, v2), id(git): await first_build(s, git)}
        times: dict[int, list[float]] = {id(v2): [], id(git): []}
        for rig in (v2, git):  # warm-up: token cache, connections
            await timed_posts(s, rig.url("api/builds"), rig.headers(), bodies[id(rig)], 10)
        for _ in range(0, n, 10):
            for rig in (v2, git):
                times[id(rig)] += await timed_posts(
                    s, rig.url("api/builds"), rig.headers(), bodies[id(rig)], 10
                )
    new, old = times[id(v2)], times[id(git)]
    print(f"cache hit via proxy, ls-refs (v2)     {summary_ms(new)}")
    print(f"cache hit via proxy, git ls-remote    {summary_ms(old)}")
    print(f"p50 ratio v2 / ls-remote: {statistics.median(new) / statistics.median(old):.2f}")
    return goal_line("cache-hit POST p50, v2 (via proxy)", percentile(new, 50) * 1000, GOAL_P50_MS)


def round_trips(url: str, ca_file: Path, n: int) -> list[float]:
    """The same ls-refs POST on one kept-alive TLS connection (http.client), n times."""
    host_port = url.split("://", 1)[1].split("/", 1)[0]
    path = "/" + url.split("://", 1)[1].split("/", 1)[1] + "/git-upload-pack"
    caps = frozenset({"agent=git/2", "object-format=sha1"})
    body = _ls_refs_body(caps, ls_refs_prefixes("main"))
    headers = {
        "Git-Protocol": "version=2",
        "Content-Type": "application/x-git-upload-pack-request",
    }
    context = ssl.create_default_context(cafile=str(ca_file))
    conn = http.client.HTTPSConnection(host_port, context=context)
    times = []
    try:
        for i in range(n + 1):
            t = time.perf_counter()
            conn.request("POST", path, body=body, headers=headers)
            answer = conn.getresponse().read()
            if i:  # the first one pays the handshake
                times.append(time.perf_counter() - t)
            if b"refs/heads/main" not in answer:
                raise RuntimeError("ls-refs answer without main")
    finally:
        conn.close()
    return times


async def over_tls(n: int) -> bool:
    with tempfile.TemporaryDirectory(prefix="r2ds-bench-tls-") as tmp:
        tls = loopback_tls(Path(tmp) / "tls")
        server = start_git_http(Path(tmp) / "git", tls=tls.server_context())
        try:
            url = server.create_repo("bench/tls", {"README.md": "x\n"})
            env = {**loopback_env(), "GIT_SSL_CAINFO": str(tls.ca_file)}
            resolver = RefResolver(env=env)
            try:
                t = time.perf_counter()
                await resolver(url, "main")
                first = time.perf_counter() - t
                ours, floor, by_git = [], [], []
                for _ in range(0, n, 10):
                    for _ in range(10):
                        t = time.perf_counter()
                        await resolver(url, "main")
                        ours.append(time.perf_counter() - t)
                    floor += await asyncio.to_thread(round_trips, url, tls.ca_file, 10)
                    for _ in range(2):
                        t = time.perf_counter()
                        await resolve_ref(url, "main", env=env)
                        by_git.append(time.perf_counter() - t)
            finally:
                await resolver.close()
        finally:
            server.stop()
    print(f"TLS: first resolution (handshake + advertisement + ls-refs) {first * 1000:.1f} ms")
    print(f"TLS: resolution after the first      {summary_ms(ours)}")
    print(f"TLS: one round trip (same POST, kept-alive, http.client) {summary_ms(floor)}")
    print(f"TLS: git ls-remote (for contrast)    {summary_ms(by_git)}")
    over = (percentile(ours, 50) - percentile(floor, 50)) * 1000
    return goal_line("TLS resolution p50 over one round trip", over, GOAL_OVER_ROUND_TRIP_MS)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=200, help="requests each (10..2000)")
    args = parser.parse_args()
    n = max(10, min(args.requests // 10 * 10, 2000))
    header(f"8. ref resolution: ls-refs vs git ls-remote, {n} cache hits each ({machine_line()})")
    with Rig("refs-v2") as v2, Rig("refs-git", "c.RefResolver.protocol_v2 = False\n") as git:
        asyncio.run(asyncio.wait_for(via_proxy(v2, git, n), 900))
    asyncio.run(asyncio.wait_for(over_tls(n), 300))
    note(f"after: {machine_line()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
