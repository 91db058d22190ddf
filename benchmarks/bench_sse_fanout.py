"""Benchmark 4: one build followed by 200 SSE viewers; fan-out spread p99 (goal <= 100 ms).

A build whose Dockerfile prints 50 timestamped lines, one every 0.2 s (after a short sleep that
lets every viewer connect first) is followed by 200 concurrent viewers of
GET api/builds/{id}/events through the hub's proxy, all as the build's owner. Each viewer is
a raw asyncio protocol that records ``time.time()`` on every read (parsing happens after
the stream ends), so viewers in the same event loop barely delay each other.

Figures, for the events that arrived after all 200 viewers were connected:
- fan-out spread (the goal): for each event, the last viewer's receive time minus the first
  viewer's. The first viewer receives an event within a millisecond or so of the service
  storing it, so this is the time from a line's arrival at the service to its delivery to
  the last viewer, minus that first hop.
- end to end: receive time minus the timestamp the build printed in the line (``date
  +%s.%N`` in the build container, same clock). It includes BuildKit's progress output,
  buildx, repo2docker's --json-logs and the service's reading; reported, no goal.

Every viewer must receive the same event ids, without gaps, ending with ``done``.

A second build is then followed by the same number of viewers connected straight to the
service's port (no configurable-http-proxy), to tell the proxy's share of the spread from
the service's. The goal is checked on the run through the proxy. With ~75 live events per
run, the p99 is the largest spread of the run; the three largest are printed with their
event ids and types.

Run: .venv/bin/python benchmarks/bench_sse_fanout.py [--viewers 200] [--lines 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import secrets
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    Rig,
    dockerfile,
    goal_line,
    header,
    machine_line,
    note,
    open_viewer,
    percentile,
    post_build,
    session,
    summary_ms,
)

GOAL_P99_MS = 100.0
TICK = re.compile(r"tick (\d+) (\d+\.\d+)")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used by ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def fanout_once(rig: Rig, viewers: int, lines: int, *, direct: bool) -> dict:
    """One build, ``viewers`` viewers (through the proxy, or straight to the service)."""
    body = (
        f'RUN sleep 4; for i in $(seq 1 {lines}); do echo "tick $i $(date +%s.%N)"; sleep 0.2; done'
    )
    url = rig.git.create_repo(
        f"bench/fanout-{secrets.token_hex(3)}",
        {"Dockerfile": dockerfile(secrets.token_hex(8), body)},
    )
    token = rig.token()
    pid = rig.service_pid()
    async with session() as s:
        # the service checks each token with the hub once, then caches it: warm it up
        await s.get(rig.url("api/info"), headers=rig.headers())
        status, result = await post_build(s, rig, {"repo": url, "ref": "main"})
    if status != 202:
        raise RuntimeError(f"expected a new build: {status} {result}")
    build_id = result["build"]["id"]
    path = f"api/builds/{build_id}/events"
    events_url = rig.direct_url(path) if direct else rig.url(path)
    cpu0 = cpu_seconds(pid)
    t_connect = time.time()
    clients = await asyncio.gather(*(open_viewer(events_url, token=token) for _ in range(viewers)))
    # "connected" = the viewer got its response headers (and the replay)
    deadline = time.monotonic() + 60
    while any(c.first_byte is None for c in clients) and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    t_ready = max(c.first_byte or time.time() for c in clients)
    try:
        async with asyncio.timeout(300):
            await asyncio.gather(*(c.closed for c in clients))
    finally:
        for c in clients:
            c.close()
    cpu = cpu_seconds(pid) - cpu0

    streams = [c.events() for c in clients]
    statuses = {c.status() for c in clients}
    ids0 = [e.id for e in streams[0]]
    complete = (
        statuses == {200}
        and all([e.id for e in st] == ids0 for st in streams)
        and ids0 == list(range(1, len(ids0) + 1))
        and bool(streams[0])
        and streams[0][-1].type == "done"
    )
    spreads, e2e_first, e2e_last, worst = [], [], [], []
    for index in range(len(ids0)):
        times = [st[index].received for st in streams if len(st) > index]
        if min(times) <= t_ready:
            continue  # replayed at connect time, not live
        spreads.append(max(times) - min(times))
        event = streams[0][index]
        worst.append((max(times) - min(times), event.id, event.type, min(times)))
        m = TICK.search(str(event.data.get("message", ""))) if event.type == "log" else None
        if m:
            printed = float(m.group(2))
            e2e_first.append(min(times) - printed)
            e2e_last.append(max(times) - printed)
    return {
        "state": streams[0][-1].data.get("state") if streams[0] else None,
        "complete": complete,
        "events": len(ids0),
        "connect": t_ready - t_connect,
        "spreads": spreads,
        "e2e_first": e2e_first,
        "e2e_last": e2e_last,
        "cpu": cpu,
        "worst": sorted(worst, reverse=True)[:3],
    }


def report(r: dict, viewers: int, lines: int, label: str) -> None:
    print(
        f"[{label}] build {r['state']}; {viewers} viewers connected in "
        f"{r['connect'] * 1000:.0f} ms; every viewer got the same {r['events']} events, no "
        f"gaps, ending with done: {r['complete']}; {len(r['spreads'])} events live after all "
        f"viewers connected ({len(r['e2e_first'])} of {lines} timestamped lines)"
    )
    if r["spreads"]:
        print(f"[{label}] fan-out spread (last - first viewer)  {summary_ms(r['spreads'])}")
    if r["e2e_first"]:
        print(f"[{label}] end to end, printed -> first viewer   {summary_ms(r['e2e_first'])}")
        print(f"[{label}] end to end, printed -> last viewer    {summary_ms(r['e2e_last'])}")
    if r["worst"]:
        print(
            f"[{label}] largest spreads: "
            + ", ".join(f"event {i} ({t}) {w * 1000:.0f} ms" for w, i, t, _ in r["worst"])
        )
    deliveries = max(1, r["events"] * viewers)
    print(
        f"[{label}] service CPU while streaming: {r['cpu']:.2f} s for {r['events']} events x "
        f"{viewers} viewers ({r['cpu'] / deliveries * 1e6:.0f} us per event delivery, "
        f"{r['cpu'] / max(1, r['events']) * 1000:.1f} ms per event)"
    )


async def run(rig: Rig, viewers: int = 200, lines: int = 50, *, direct: bool = True) -> bool:
    proxied = await fanout_once(rig, viewers, lines, direct=False)
    report(proxied, viewers, lines, "via proxy")
    if direct:
        r = await fanout_once(rig, viewers, lines, direct=True)
        report(r, viewers, lines, "direct")
    if not proxied["spreads"]:
        print("MISSED: no event arrived after all viewers were connected")
        return False
    met = goal_line(
        f"SSE fan-out spread p99 ({viewers} viewers, via proxy)",
        percentile(proxied["spreads"], 99) * 1000,
        GOAL_P99_MS,
        "ms",
    )
    if not proxied["complete"]:
        print("MISSED: not every viewer received every event exactly once")
        met = False
    return met


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--viewers", type=int, default=200, help="SSE viewers (1..1000)")
    parser.add_argument("--lines", type=int, default=50, help="timestamped lines (5..200)")
    parser.add_argument(
        "--no-direct", action="store_true", help="skip the second run straight to the service"
    )
    args = parser.parse_args()
    viewers, lines = max(1, min(args.viewers, 1000)), max(5, min(args.lines, 200))
    header(f"4. one build, {viewers} SSE viewers ({machine_line()})")
    with Rig("fanout") as rig:
        asyncio.run(asyncio.wait_for(run(rig, viewers, lines, direct=not args.no_direct), 900))
    note(f"after: {machine_line()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
