"""Load: 60 s of mixed API traffic while 2 real builds run and 50 viewers follow them.

Goal on a 2-core machine (issue 18): >= 500 req/s, p99 <= 100 ms, 0 errors, through the hub's
proxy as users reach the service. The same mix then runs straight to the service's port, to
separate the proxy's share, and once more through the proxy with the cache hits asked by full
commit (no git request per hit: the rig's git server shares the 2 cores, a real git host would
not). A breakdown runs each request of the mix alone. The service's RSS is sampled throughout.

The load generator is ``wrk`` (Debian's package; C, one connection per slot, keep-alive), with
a Lua script that sends, in turn, the mix a hub's users make:

- ``GET api/images`` (the environments list, what spawners ask),
- ``GET api/builds/<id>`` (a build's detail),
- ``GET api/info``,
- ``POST api/builds`` for an image that exists (a cache hit: the ref is resolved with git,
  the image looked up),
- ``GET api/builds/<id>/events`` of a finished build (the stream replays the log and ends).

Any answer other than 2xx, and any socket error, counts as an error. Two builds of a slow
Dockerfile (one log line a second) run meanwhile, each followed by 25 SSE viewers that stay
connected; their events must arrive complete.

Run: .venv/bin/python benchmarks/bench_load.py [--seconds 60] [--connections 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    Rig,
    dockerfile,
    follow_to_done,
    goal_check,
    goal_line,
    header,
    machine_line,
    memory_mb,
    note,
    open_viewer,
    post_build,
    session,
)

GOAL_RPS = 500.0
GOAL_P99_MS = 100.0
VIEWERS = 50
SLOW_LINES = 600  # the slow builds print one line a second: they outlast every run

LUA = r"""
local paths = {}
local i = 0
function init(args)
  paths = {
    {"GET", args[1] .. "api/images", nil},
    {"GET", args[1] .. "api/builds/" .. args[2], nil},
    {"GET", args[1] .. "api/info", nil},
    {"POST", args[1] .. "api/builds", args[3]},
    {"GET", args[1] .. "api/builds/" .. args[2] .. "/events", nil},
  }
  if args[4] then paths = {paths[tonumber(args[4])]} end
end
function request()
  i = i + 1
  local p = paths[(i % #paths) + 1]
  local headers = {["Authorization"] = "token " .. os.getenv("R2DS_BENCH_TOKEN")}
  if p[3] then headers["Content-Type"] = "application/json" end
  return wrk.format(p[1], p[2], headers, p[3])
end
function done(summary, latency, requests)
  io.write(string.format(
    "JSON {\"requests\": %d, \"seconds\": %.3f, \"non2xx\": %d, \"connect\": %d, "
    .. "\"read\": %d, \"write\": %d, \"timeout\": %d, \"p50_ms\": %.2f, \"p90_ms\": %.2f, "
    .. "\"p99_ms\": %.2f, \"max_ms\": %.2f}\n",
    summary.requests, summary.duration / 1e6, summary.errors.status, summary.errors.connect,
    summary.errors.read, summary.errors.write, summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000))
end
"""


MIX = ["GET api/images", "GET api/builds/<id>", "GET api/info", "POST api/builds (hit)",
       "GET api/builds/<id>/events"]  # fmt: skip


def run_wrk(
    url: str,
    token: str,
    build_id: str,
    body: str,
    seconds: int,
    connections: int,
    only: int | None = None,
) -> dict[str, float]:
    """Run wrk against ``url`` (the service's base URL) and return its summary.

    ``only``: send just that request of :data:`MIX` (1-based), for the breakdown."""
    base = re.sub(r"^https?://[^/]+", "", url)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(LUA)
        script = f.name
    host = re.match(r"^https?://[^/]+", url)
    assert host is not None
    cmd = [
        "wrk", "-t", "2", "-c", str(connections), "-d", f"{seconds}s", "--timeout", "10s",
        "-s", script, host.group(0) + "/", "--", base, build_id, body,
    ] + ([str(only)] if only else [])  # fmt: skip
    try:
        proc = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=seconds + 60,
            env={"R2DS_BENCH_TOKEN": token, "PATH": "/usr/bin:/bin"},
        )
    finally:
        Path(script).unlink(missing_ok=True)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary: {proc.stdout}\n{proc.stderr}")
    return json.loads(line[5:])


def report(label: str, r: dict[str, float], rss: float) -> tuple[float, int]:
    rps = r["requests"] / r["seconds"]
    errors = int(r["non2xx"] + r["connect"] + r["read"] + r["write"] + r["timeout"])
    print(
        f"{label:30s} {rps:7.1f} req/s  p50 {r['p50_ms']:6.1f} ms  p90 {r['p90_ms']:6.1f} ms  "
        f"p99 {r['p99_ms']:6.1f} ms  max {r['max_ms']:7.1f} ms  errors {errors} "
        f"(non-2xx {r['non2xx']:.0f}, socket {r['connect'] + r['read'] + r['write']:.0f}, "
        f"timeouts {r['timeout']:.0f})  service RSS {rss:.1f} MB"
    )
    return rps, errors


async def finished_build(rig: Rig, s) -> tuple[str, dict[str, str], str]:
    """One built image (the cache-hit target): its build id, request body and commit."""
    url = rig.git.create_repo("bench/load-hit", {"Dockerfile": dockerfile(secrets.token_hex(8))})
    body = {"repo": url, "ref": "main"}
    status, result = await post_build(s, rig, body)
    if status != 202:
        raise RuntimeError(f"first request should start a build: {status} {result}")
    build_id = result["build"]["id"]
    events = await follow_to_done(rig.url(f"api/builds/{build_id}/events"), token=rig.token())
    if events[-1].data.get("state") != "built":
        raise RuntimeError(f"build failed: {events[-1].data}")
    return build_id, body, str(result["build"]["commit"])


async def slow_builds(rig: Rig, s) -> list[str]:
    """Start two builds that print a line a second for SLOW_LINES seconds."""
    ids = []
    for n in range(2):
        step = f"RUN for i in $(seq 1 {SLOW_LINES}); do echo slow-{n}-line-$i; sleep 1; done"
        files = {"Dockerfile": dockerfile(secrets.token_hex(8), step)}
        url = rig.git.create_repo(f"bench/load-slow-{n}", files)
        status, result = await post_build(s, rig, {"repo": url, "ref": "main"})
        if status != 202:
            raise RuntimeError(f"slow build {n} did not start: {status} {result}")
        ids.append(result["build"]["id"])
    return ids


async def run(rig: Rig, seconds: int, connections: int) -> bool:
    pid = rig.service_pid()
    token = rig.token()
    async with session() as s:
        hit_build, body, commit = await finished_build(rig, s)
        slow = await slow_builds(rig, s)
        rss_before = memory_mb(pid)["rss"]
        viewers = [
            await open_viewer(rig.url(f"api/builds/{slow[n % 2]}/events"), token=token)
            for n in range(VIEWERS)
        ]
        await asyncio.sleep(3)  # let both builds reach their RUN step
        note(f"2 builds running, {VIEWERS} viewers following; RSS {rss_before:.1f} MB")
        loop = asyncio.get_running_loop()
        payload = json.dumps(body)
        proxied = await loop.run_in_executor(
            None, run_wrk, rig.url(""), token, hit_build, payload, seconds, connections
        )
        rss_proxied = memory_mb(pid)["rss"]
        direct = await loop.run_in_executor(
            None, run_wrk, rig.direct_url(""), token, hit_build, payload, seconds, connections
        )
        rss_direct = memory_mb(pid)["rss"]
        alive = sum(1 for v in viewers if not v.closed.done())
        # the same mix with the cache hit asked by full commit: no git request per hit, so
        # this run leaves out the rig's git server (on the same 2 cores) and its processes
        by_sha = json.dumps({**body, "ref": commit})
        sha_mix = await loop.run_in_executor(
            None, run_wrk, rig.url(""), token, hit_build, by_sha, seconds, connections
        )
        rss_sha = memory_mb(pid)["rss"]
        note("breakdown: each request of the mix alone, straight to the service")
        for i, label in enumerate(MIX, 1):
            alone = await loop.run_in_executor(
                None, run_wrk, rig.direct_url(""), token, hit_build, payload,
                max(5, seconds // 6), connections, i,
            )  # fmt: skip
            report(f"  {label}", alone, memory_mb(pid)["rss"])
        lines = [sum(1 for e in v.events() if e.type == "log") for v in viewers]
        for build_id in slow:
            async with s.delete(rig.url(f"api/builds/{build_id}"), headers=rig.headers()) as resp:
                await resp.read()
        for v in viewers:
            v.close()
    rps, errors = report("via the hub's proxy", proxied, rss_proxied)
    report("straight to service", direct, rss_direct)
    report("via proxy, hits by SHA", sha_mix, rss_sha)
    print(
        f"viewers still following after the three mixed runs: {alive}/{VIEWERS}; log events each: "
        f"min {min(lines)} max {max(lines)}"
    )
    print(f"service RSS before {rss_before:.1f} MB, peak (VmHWM) {memory_mb(pid)['hwm']:.1f} MB")
    met = goal_line("mixed load req/s via proxy", rps, GOAL_RPS, "req/s", lower=False)
    met &= goal_line("mixed load p99 via proxy", proxied["p99_ms"], GOAL_P99_MS, "ms")
    met &= goal_check("mixed load errors", errors == 0, f"{errors} errors")
    met &= goal_check("viewers kept", alive == VIEWERS, f"{alive}/{VIEWERS} still open")
    return met


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=60, help="length of each run (5..300)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (1..256)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("needs wrk: apt-get install -y wrk (scripts/setup.sh installs it)")
    seconds = max(5, min(args.seconds, 300))
    connections = max(1, min(args.connections, 256))
    header(
        f"load: mixed API traffic for {seconds} s, 2 builds, {VIEWERS} viewers ({machine_line()})"
    )
    started = time.monotonic()
    with Rig("load", service_config="c.Repo2DockerService.build_concurrency = 2\n") as rig:
        asyncio.run(asyncio.wait_for(run(rig, seconds, connections), 2 * seconds + 900))
    note(f"after: {machine_line()}; {time.monotonic() - started:.0f} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
