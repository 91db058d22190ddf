"""Fault 6: every terminal state ends every open stream at once.

50 viewers follow one build's event stream through the hub's proxy (a real hub, the
service a process of the test's own: :mod:`tests.rig.ownservice`); the build then ends as
``failed`` (repo2docker fails), ``cancelled`` (``DELETE api/builds/{id}``), timed out
(``build_idle_timeout``), ``built``, or ``lost`` (the service stops with SIGTERM while the
local executor runs it). Each stream must end with that state's ``done`` event and close;
no handler stays open (the service's ``event_streams`` gauge is back to 0, or the
service has exited). The time from the build's ``finished`` stamp to each stream's close
is the figure (its p100); the goal is 100 ms, not asserted (the machine is shared).

Run alone for the figures: ``python -m tests.faults.test_stream_end``.
"""

from __future__ import annotations

import signal
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.rig.api import request
from tests.rig.engine import check_base_image, check_docker, local_images, remove_images
from tests.rig.git import GitHTTPServer, start_git_http
from tests.rig.hub import Hub
from tests.rig.ownservice import OwnService, SSEViewer, start_hub_with_service
from tests.rig.parts import OFFLINE_CONFIG, require
from tests.rig.repos import dockerfile, unique
from tests.rig.wait import wait_until

pytestmark = [pytest.mark.docker, pytest.mark.hub]

VIEWERS = 50
IDLE_TIMEOUT = 10
# state -> the Dockerfile's RUN step (the build prints a line every 0.2 s for a while)
STEPS = {
    "failed": "RUN for i in $(seq 1 40); do echo tick-$i; sleep 0.2; done; exit 3",
    "cancelled": "RUN for i in $(seq 1 600); do echo tick-$i; sleep 0.2; done",
    "timed out": "RUN echo tick-quiet && sleep 120",
    "built": "RUN for i in $(seq 1 40); do echo tick-$i; sleep 0.2; done",
    "lost": "RUN for i in $(seq 1 600); do echo tick-$i; sleep 0.2; done",
}
STATE = {"timed out": "failed"}  # the API's state of each case


@dataclass
class Rig:
    hub: Hub
    service: OwnService
    git: GitHTTPServer
    base_image: str
    prefix: str

    def api(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        return request(
            method, self.hub.service_url + path, token=self.hub.token_for("alice"), body=body
        )

    def open_streams(self) -> int:
        """The service's ``event_streams`` gauge (open event-stream handlers)."""
        status, text = request("GET", self.service.url + "metrics")
        assert status == 200, text
        for line in str(text).splitlines():
            if line.startswith("repo2docker_service_event_streams "):
                return int(float(line.split()[1]))
        raise AssertionError("no event_streams gauge in the metrics")


def start_rig(workdir: Path) -> Rig:
    require(check_docker)
    base = require(check_base_image)
    git = require(start_git_http, workdir / "git")
    prefix = f"r2dstream{uuid.uuid4().hex[:6]}-"
    config = "\n".join(
        [
            'c.Repo2DockerService.allowed_repo_schemes = ["http"]',
            f"c.Executor.repo2docker_config = {str(OFFLINE_CONFIG)!r}",
            f"c.Repo2DockerService.image_prefix = {prefix!r}",
            f"c.Repo2DockerService.build_idle_timeout = {IDLE_TIMEOUT}",
            "c.Repo2DockerService.metrics_require_auth = False",
            "c.Repo2DockerService.build_rate_limit = 0",
            "c.Executor.kill_grace_period = 2",
        ]
    )
    hub, service = start_hub_with_service(workdir / "hub", service_config=config + "\n")
    return Rig(hub, service, git, base, prefix)


def stop_rig(rig: Rig) -> None:
    if rig.service.proc is not None and rig.service.proc.poll() is None:
        rig.service.kill(signal.SIGTERM)
    rig.hub.stop()
    rig.git.stop()
    remove_images(local_images(rig.prefix), check=False)


def end_streams(rig: Rig, case: str) -> dict[str, Any]:
    """One case: 50 streams on a build that ends as ``case``; what they saw."""
    if rig.service.proc is None or rig.service.proc.poll() is not None:
        rig.service.start()
    repo = rig.git.create_repo(
        unique("fault6/" + case.replace(" ", "-")), dockerfile(rig.base_image, STEPS[case])
    )
    status, body = rig.api("POST", "api/builds", {"repo": repo, "name": unique("streams")})
    assert status == 202, body
    build_id = body["build"]["id"]
    token = rig.hub.token_for("alice")
    viewers = [SSEViewer(rig.hub, token, build_id) for _ in range(VIEWERS)]
    for viewer in viewers:
        viewer.follow(timeout=60)

    def started() -> bool:
        lines = [e for e in viewers[0].events if "tick-" in str(e["data"])]
        return bool(lines) and all(v.events for v in viewers)

    wait_until(started, timeout=240, what="the build's output reaching every viewer")
    if case == "cancelled":
        assert rig.api("DELETE", f"api/builds/{build_id}")[0] == 200
    elif case == "lost":
        rig.service.kill(signal.SIGTERM)
    for viewer in viewers:
        viewer.join(240)
    gauge = None if case == "lost" else rig.open_streams()
    return {"viewers": viewers, "gauge": gauge}


def check_case(case: str, got: dict[str, Any]) -> dict[str, Any]:
    """Assert every stream ended with the state and closed; return the figures."""
    viewers: list[SSEViewer] = got["viewers"]
    want = STATE.get(case, case)
    finished: set[str] = set()
    for viewer in viewers:
        assert viewer.connections == ["closed"], viewer.connections
        last = viewer.events[-1]
        assert last["event"] == "done", [e["event"] for e in viewer.events[-3:]]
        assert last["data"]["state"] == want, last["data"]
        finished.add(last["data"]["finished"])
    assert len(finished) == 1
    if case == "timed out":
        assert "no output" in str(viewers[0].events[-1]["data"]["error"])
    assert got["gauge"] in (0, None), f"{got['gauge']} event-stream handlers still open"
    end = datetime.fromisoformat(finished.pop().replace("Z", "+00:00")).timestamp()
    latencies = sorted(1000 * (v.ended_at[0] - end) for v in viewers)
    return {
        "case": case,
        "streams": len(viewers),
        "p50_ms": latencies[len(latencies) // 2],
        "p100_ms": latencies[-1],
    }


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    made = start_rig(tmp_path_factory.mktemp("fault6"))
    yield made
    stop_rig(made)


@pytest.mark.parametrize("case", list(STEPS))
def test_terminal_state_ends_every_stream(rig: Rig, case: str) -> None:
    check_case(case, end_streams(rig, case))


def main() -> None:
    """Every case once; print the table for benchmarks/README.md."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        made = start_rig(Path(tmp))
        try:
            for case in STEPS:
                started = time.monotonic()
                rows.append(check_case(case, end_streams(made, case)))
                print(rows[-1], f"({time.monotonic() - started:.0f} s)", flush=True)
        finally:
            stop_rig(made)
    print("| terminal state | streams | closed after the end: p50 | p100 |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['case']} | {r['streams']} | {r['p50_ms']:.0f} ms | {r['p100_ms']:.0f} ms |")


if __name__ == "__main__":
    main()
