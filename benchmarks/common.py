"""Shared plumbing of the benchmarks: a real hub + service + git server, HTTP and SSE clients,
statistics, process memory, Docker clean-up.

Every benchmark runs the service the way production does: a real JupyterHub with
configurable-http-proxy managing ``python -m repo2docker_service`` (``tests/rig/hub.py``),
real repo2docker builds in the local Docker engine, git repositories served over smart HTTP
on 127.0.0.1 (``tests/rig/git.py``). Requests go through the hub's proxy, as a user's
would. Nothing here contacts anything but 127.0.0.1 and the local Docker socket.

The real parts come from ``bash scripts/setup.sh`` (dockerd, registry, buildx,
configurable-http-proxy, base image ``local/debian:bookworm``).
"""

from __future__ import annotations

import asyncio
import bisect
import json
import math
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402  (a dependency of aiodocker, itself a dependency of the service)

from tests.rig.engine import BASE_IMAGE, check_base_image, check_docker, local_images  # noqa: E402
from tests.rig.engine import docker as docker  # noqa: E402  (the benchmarks' docker CLI)
from tests.rig.engine import remove_images as remove_images_checked  # noqa: E402
from tests.rig.git import GitHTTPServer, set_nodelay  # noqa: E402
from tests.rig.hub import Hub, start_hub  # noqa: E402
from tests.rig.parts import OFFLINE_CONFIG, RealPartMissing  # noqa: E402
from tests.rig.repos import dockerfile as rig_dockerfile  # noqa: E402

USER = "alice"  # a builder (group repo2docker-builders in the hub rig)
ADMIN = "admin1"  # holds custom:repo2docker:admin

# ---------------------------------------------------------------------------------------------
# output


def header(title: str) -> None:
    print(f"\n=== {title}", flush=True)


def note(text: str) -> None:
    print(f"    {text}", flush=True)


def machine_line() -> str:
    """Cores and load: the benchmarks share the machine with whatever else runs on it."""
    load = os.getloadavg()
    return f"{os.cpu_count()} cores, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"


#: put after "GOAL " on every goal line; bench_memory.py sets it for the benchmarks it
#: runs inside its own service, so their lines are not mistaken for the standalone runs
GOAL_CONTEXT = {"prefix": ""}


def verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def goal_check(label: str, met: bool, detail: str) -> bool:
    """Print ``GOAL label: detail -> met/MISSED`` for a yes/no goal."""
    print(f"GOAL {GOAL_CONTEXT['prefix']}{label}: {detail} -> {verdict(met)}", flush=True)
    return met


def goal_line(label: str, value: float, goal: float, unit: str = "", *, lower: bool = True) -> bool:
    """Print ``label: value vs goal -> met/MISSED`` (``value <= goal`` when ``lower``)."""
    met = value <= goal if lower else value >= goal
    fmt = (lambda v: f"{v:.4f}") if unit == "" else (lambda v: f"{v:.1f} {unit}")
    op = "<=" if lower else ">="
    print(
        f"GOAL {GOAL_CONTEXT['prefix']}{label}: {fmt(value)} (goal {op} {fmt(goal)}, "
        f"ratio to goal {value / goal:.2f})"
        f" -> {verdict(met)}",
        flush=True,
    )
    return met


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty sequence."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def summary_ms(values_s: Sequence[float]) -> str:
    """``n, p50, p90, p99, max`` of durations given in seconds, printed in ms."""
    v = [x * 1000 for x in values_s]
    return (
        f"n={len(v)} p50={percentile(v, 50):.1f} ms p90={percentile(v, 90):.1f} ms "
        f"p99={percentile(v, 99):.1f} ms max={max(v):.1f} ms mean={statistics.fmean(v):.1f} ms"
    )


# ---------------------------------------------------------------------------------------------
# docker


# ``docker`` and the image listing are the rig's (tests/rig/engine.py)


def images_with_prefix(prefix: str) -> list[str]:
    """``repository:tag`` of every local image of this run (repository starts with ``prefix``,
    also behind a registry host)."""
    return local_images(prefix)


def remove_images(refs: Iterable[str]) -> None:
    """``docker rmi -f`` in batches; failures never stop a benchmark (its numbers are taken)."""
    remove_images_checked(refs, check=False)


def remove_prefix(prefix: str) -> int:
    refs = images_with_prefix(prefix)
    remove_images(refs)
    return len(refs)


# ---------------------------------------------------------------------------------------------
# processes


def children_of(pid: int) -> list[int]:
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # the command name is in parentheses and may contain spaces
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            kids.append(int(entry))
    return kids


def cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def service_pid(hub: Hub) -> int:
    """The pid of the service: the hub's child running ``-m repo2docker_service``."""
    for pid in children_of(hub.proc.pid):
        argv = cmdline(pid)
        if "-m" in argv and "repo2docker_service" in argv:
            return pid
    raise RuntimeError(f"no repo2docker_service child of the hub (pid {hub.proc.pid})")


def memory_mb(pid: int) -> dict[str, float]:
    """``{"rss": VmRSS, "hwm": VmHWM}`` of ``pid`` in MiB (from /proc/<pid>/status)."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key[2:].lower()] = int(value.split()[0]) / 1024
    return out


# ---------------------------------------------------------------------------------------------
# the rig


def set_git_nodelay(enabled: bool) -> None:
    """Turn TCP_NODELAY on or off for connections the test git server accepts from now on.

    The rig's git server (``scripts/git_http.py``) is a ``http.server`` handler with unbuffered
    writes: it sends the response headers and the body in separate small segments, and with Nagle's
    algorithm on, the body waits for the client's delayed ACK (40 ms on Linux). A smart-HTTP
    ``git ls-remote`` makes two requests, so it takes ~85 ms instead of ~30 ms. Real git
    hosts do not stall like that, so the benchmarks switch Nagle off (``StreamRequestHandler
    .disable_nagle_algorithm``) in their own process; ``bench_cache_hit.py`` also measures the
    stock server. Only this process is affected.
    """
    set_nodelay(enabled)


def dockerfile(nonce: str, body: str = "") -> str:
    """A Dockerfile FROM the local base image; ``nonce`` keeps BuildKit's layer cache out.

    The text of ``tests.rig.repos.dockerfile`` (the tests' one Dockerfile maker)."""
    steps = [f"RUN echo bench-{nonce} > /bench-nonce", *([body] if body else [])]
    return rig_dockerfile(BASE_IMAGE, *steps)["Dockerfile"]


@dataclass
class Rig:
    """Git server + hub + service for one benchmark; use as a context manager.

    Attributes:
        hub: the running hub (``hub.service_url`` is the service through the proxy).
        git: the git server.
        prefix: the image prefix of this run (every image it makes starts with it).
    """

    name: str
    service_config: str = ""
    git_nodelay: bool = True
    hub: Hub = field(init=False)
    git: GitHTTPServer = field(init=False)
    prefix: str = field(init=False)
    workdir: Path = field(init=False)

    def __enter__(self) -> Rig:
        try:
            check_docker()
            check_base_image()
        except RealPartMissing as e:
            raise SystemExit(f"benchmark needs the real parts: {e}") from None
        self.prefix = f"r2dbench-{secrets.token_hex(3)}-"
        self.workdir = Path(tempfile.mkdtemp(prefix=f"r2ds-bench-{self.name}-"))
        set_git_nodelay(self.git_nodelay)
        self.git = GitHTTPServer(self.workdir / "git").start()
        config = (
            'c.Repo2DockerService.allowed_repo_schemes = ["http"]\n'
            f"c.Executor.repo2docker_config = {str(OFFLINE_CONFIG)!r}\n"
            f"c.Repo2DockerService.image_prefix = {self.prefix!r}\n"
            "c.Repo2DockerService.build_rate_limit = 0\n"
            "c.Application.log_level = 'INFO'\n" + self.service_config
        )
        try:
            self.hub = start_hub(self.workdir / "hub", service_config=config)
        except BaseException:
            self.git.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.hub.stop()
        finally:
            self.git.stop()
            removed = remove_prefix(self.prefix)
            if removed:
                note(f"(clean-up: removed {removed} image tags starting with {self.prefix})")
            if exc[0] is None:
                shutil.rmtree(self.workdir, ignore_errors=True)
            else:
                note(f"(kept {self.workdir} for inspection: hub/hub.log)")

    def token(self, user: str = USER) -> str:
        return self.hub.token_for(user)

    def headers(self, user: str = USER) -> dict[str, str]:
        return {"Authorization": f"token {self.token(user)}"}

    def url(self, path: str) -> str:
        return self.hub.service_url + path.lstrip("/")

    def direct_url(self, path: str) -> str:
        """The same path on the service's own port (bypassing the proxy)."""
        service = self.hub.api("GET", "services/repo2docker")
        return service["url"].rstrip("/") + urlsplit(self.hub.service_url).path + path.lstrip("/")

    def service_pid(self) -> int:
        return service_pid(self.hub)


def session(*, limit: int = 100, force_close: bool = False) -> aiohttp.ClientSession:
    """An aiohttp session that never uses proxies from the environment.

    ``force_close``: a new connection per request. For clients that sit idle longer than
    the proxy's keep-alive timeout (5 s in Node.js) between requests: reusing a connection
    the proxy is closing at that moment fails with ``ServerDisconnectedError``."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=limit, force_close=force_close),
        timeout=aiohttp.ClientTimeout(total=600),
        trust_env=False,
    )


async def request_json(
    s: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    headers: dict[str, str],
    body: Any = None,
) -> tuple[int, Any]:
    async with s.request(method, url, headers=headers, json=body) as resp:
        raw = await resp.read()
        return resp.status, (json.loads(raw) if raw else None)


# ---------------------------------------------------------------------------------------------
# SSE


@dataclass
class SSEEvent:
    id: int
    type: str
    data: Any
    received: float  # time.time() when the bytes ending this event were read


class SSEViewer(asyncio.Protocol):
    """One raw HTTP/1.1 SSE client that timestamps every read as early as possible.

    ``data_received`` only appends ``(time.time(), bytes)``; the response (headers, chunked
    transfer encoding, SSE framing) is parsed afterwards by :meth:`events`, so 200 viewers
    in one event loop add almost nothing to each other's receive times.
    """

    def __init__(self, request: bytes) -> None:
        self.request = request
        self.chunks: list[tuple[float, bytes]] = []
        self.connected_at: float | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.connected_at = time.time()
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        self.chunks.append((time.time(), data))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    @property
    def first_byte(self) -> float | None:
        return self.chunks[0][0] if self.chunks else None

    def status(self) -> int:
        raw = b"".join(c for _, c in self.chunks)
        line = raw.split(b"\r\n", 1)[0].decode(errors="replace")
        parts = line.split()
        return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0

    def events(self) -> list[SSEEvent]:
        """The SSE events received, each stamped with the time its last byte arrived."""
        raw = b"".join(c for _, c in self.chunks)
        ends, total = [], 0  # cumulative end offset of each read, for arrival times
        for _, c in self.chunks:
            total += len(c)
            ends.append(total)
        times = [t for t, _ in self.chunks]

        def arrival(raw_offset: int) -> float:
            return times[min(bisect.bisect_right(ends, raw_offset), len(times) - 1)]

        decoded = _http_body(raw)
        if decoded is None:
            return []
        body, pieces = decoded
        starts = [d for d, _ in pieces]

        def raw_offset(decoded: int) -> int:
            i = max(0, bisect.bisect_right(starts, decoded) - 1)
            d, r = pieces[i]
            return r + (decoded - d)

        out: list[SSEEvent] = []
        for end, fields in _sse_blocks(body):
            if "id" not in fields:
                continue
            try:
                data = json.loads(fields.get("data", "null"))
            except ValueError:
                data = fields.get("data")
            out.append(
                SSEEvent(
                    id=int(fields["id"]),
                    type=fields.get("event", "message"),
                    data=data,
                    received=arrival(raw_offset(end)),
                )
            )
        return out


def _http_body(raw: bytes) -> tuple[bytes, list[tuple[int, int]]] | None:
    """The decoded body of a raw HTTP/1.1 response, and where each decoded piece sits in
    ``raw``: ``(body, [(decoded start, raw start), ...])`` ascending; None without headers."""
    head_end = raw.find(b"\r\n\r\n")
    if head_end < 0:
        return None
    head = raw[:head_end].decode("latin-1").lower()
    pos = head_end + 4
    body = bytearray()
    pieces: list[tuple[int, int]] = []
    if "transfer-encoding: chunked" not in head:
        return raw[pos:], [(0, pos)]
    while pos < len(raw):
        line_end = raw.find(b"\r\n", pos)
        if line_end < 0:
            break
        size = int(raw[pos:line_end].split(b";")[0] or b"0", 16)
        start = line_end + 2
        if size == 0:
            break
        pieces.append((len(body), start))
        body += raw[start : start + size]
        pos = start + size + 2
    return bytes(body), pieces


def _sse_blocks(text: bytes) -> Iterator[tuple[int, dict[str, str]]]:
    """``(offset of the event's last byte, {field: value})`` of each complete SSE event."""
    start = 0
    while True:
        end = text.find(b"\n\n", start)
        if end < 0:
            return
        block = text[start:end].decode("utf-8", errors="replace")
        fields: dict[str, str] = {}
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            key, _, value = line.partition(":")
            fields[key] = value[1:] if value.startswith(" ") else value
        yield end + 1, fields
        start = end + 2


async def open_viewer(url: str, *, token: str, last_event_id: int | None = None) -> SSEViewer:
    """Connect an :class:`SSEViewer` to ``url`` (http://127.0.0.1:PORT/...)."""
    parts = urlsplit(url)
    if parts.hostname != "127.0.0.1":
        raise ValueError("benchmarks only talk to 127.0.0.1")
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {parts.netloc}",
        f"Authorization: token {token}",
        "Accept: text/event-stream",
        "Cache-Control: no-cache",
        "Connection: close",
    ]
    if last_event_id is not None:
        lines.append(f"Last-Event-ID: {last_event_id}")
    request = ("\r\n".join(lines) + "\r\n\r\n").encode()
    loop = asyncio.get_running_loop()
    _, viewer = await loop.create_connection(
        lambda: SSEViewer(request), parts.hostname, parts.port or 80
    )
    return viewer


async def follow_to_done(url: str, *, token: str, timeout: float = 600) -> list[SSEEvent]:
    """Open one viewer and wait until the stream ends (the build's ``done``)."""
    viewer = await open_viewer(url, token=token)
    try:
        async with asyncio.timeout(timeout):
            await viewer.closed
    finally:
        viewer.close()
    return viewer.events()


async def post_build(
    s: aiohttp.ClientSession, rig: Rig, body: dict[str, Any], *, user: str = USER
) -> tuple[int, Any]:
    return await request_json(
        s, "POST", rig.url("api/builds"), headers=rig.headers(user), body=body
    )


async def timed_posts(
    s: aiohttp.ClientSession, url: str, headers: dict[str, str], body: dict[str, Any], n: int
) -> list[float]:
    """Seconds of each of ``n`` identical cache-hit POSTs sent one after another.

    Raises:
        RuntimeError: an answer was not a cache hit (200 with ``cached: true``).
    """
    times = []
    for _ in range(n):
        t = time.perf_counter()
        async with s.post(url, headers=headers, json=body) as resp:
            payload = await resp.json()
        times.append(time.perf_counter() - t)
        if resp.status != 200 or not payload.get("cached"):
            raise RuntimeError(f"expected a cache hit, got {resp.status}: {payload}")
    return times
