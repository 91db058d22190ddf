"""Fault 2: the Docker engine stops, idle and mid-build, then starts again.

The service (managed by a real hub) builds in a second dockerd of this script's own on a
loopback TCP port (``tests.rig.remote_engine``; the shared engine is never stopped). While
the engine is down: ``health`` stays 200 (liveness), ``ready`` answers 503 naming the
``docker`` part, listings answer the last good listing marked stale, a new build is refused
at once with the reason (``builds_when_down = "fail"``), and a build that was running fails
with an error naming the engine. When the engine is back everything recovers without a
restart: ready 200, listings live (the event subscription re-established, the index
resynced: an image tagged meanwhile by another writer is listed), builds succeed again.

Run alone: ``python -m tests.faults.test_engine_down`` prints the figures (seconds to
detect and to recover, builds failed and recovered).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.rig.engine import BASE_IMAGE, check_base_image, check_docker
from tests.rig.faults import (
    build_log,
    build_record,
    ended,
    git_server,
    health,
    listing,
    names,
    ready,
    start_service_hub,
    submit,
    timed_until,
    wait_for_event,
)
from tests.rig.parts import require
from tests.rig.remote_engine import RemoteEngine
from tests.rig.repos import dockerfile, unique

pytestmark = [pytest.mark.docker, pytest.mark.hub]

MARK = "fault-engine-step-started"


def build_ok(hub: Any, repo: str, name: str) -> dict[str, Any]:
    """Build (must be accepted) and wait for its end; the record."""
    status, body = submit(hub, repo, name)
    assert status in (200, 202), body
    return ended(hub, body["build"]["id"]) if body["build"] else body


def engine_idle(hub: Any, engine: RemoteEngine, repo: str, before: list[str]) -> dict[str, Any]:
    """Stop the idle engine; what the service answers; start it; time to recover."""
    engine.halt()
    halted = time.monotonic()
    assert health(hub) == 200  # liveness asks nothing

    def stale_listing() -> Any:
        status, body = listing(hub)
        assert status == 200, body  # before readiness: 502
        assert names(body) == before, body
        return body if body["stale"] else None  # until the feed noticed: the live index

    timed_until(stale_listing, timeout=60, what="a stale listing")
    timed_until(lambda: ready(hub)[0] == 503, timeout=60, what="ready 503")
    detect_s = time.monotonic() - halted
    down = ready(hub)[1]
    assert "docker" in down["down"], down
    assert "dockerd is running" in down["parts"]["docker"]["check"]
    status, refused = submit(hub, repo, "refused")
    assert status == 503 and "docker" in refused["message"], refused
    engine.resume()  # returns once dockerd answers
    recover_s, _ = timed_until(lambda: ready(hub)[0] == 200, timeout=120, what="ready 200 again")
    return {"detect_s": detect_s, "recover_s": recover_s, "refused": 1}


def engine_mid_build(hub: Any, engine: RemoteEngine, repo: str) -> dict[str, Any]:
    """Stop the engine while a build runs; the build fails naming it; recovery."""
    status, body = submit(hub, repo, "slow")
    assert status == 202, body
    build_id = body["build"]["id"]
    timed_until(lambda: MARK in build_log(hub, build_id), timeout=120, what="the slow step")
    engine.halt()  # SIGTERM: after a SIGKILL its containerd may not come back in time
    fail_s, record = timed_until(
        lambda: (lambda b: b if b["state"] in ("failed", "built") else None)(
            build_record(hub, build_id)
        ),
        timeout=120,
        what="the build to fail",
    )
    assert record["state"] == "failed", record
    assert "docker" in record["error"] and "dockerd is running" in record["error"], record
    engine.resume()
    recover_s, _ = timed_until(lambda: ready(hub)[0] == 200, timeout=120, what="ready 200 again")
    return {"build_failed_after_s": fail_s, "recover_after_mid_build_s": recover_s}


def measure(workdir: Path) -> dict[str, Any]:
    """Run the whole fault; the figures (assertions fail on wrong behaviour)."""
    require(check_docker)
    require(check_base_image)
    engine = RemoteEngine()
    try:
        engine.start()
        engine.load(BASE_IMAGE)
        with git_server(workdir / "git") as git:
            return run(workdir, engine, git)
    finally:
        engine.stop()


def run(workdir: Path, engine: RemoteEngine, git: Any) -> dict[str, Any]:
    hub = start_service_hub(workdir / "hub", docker_host=engine.host)
    try:
        quick = git.create_repo(unique("quick"), dockerfile(BASE_IMAGE, "RUN echo quick"))
        slow = git.create_repo(
            unique("slow"),
            dockerfile(BASE_IMAGE, f"RUN echo {MARK} && sleep 120", fresh=True),
        )
        assert build_ok(hub, quick, "first")["state"] == "built"
        status, body = listing(hub)
        assert status == 200 and body["stale"] is False, body
        before = names(body)
        figures = engine_idle(hub, engine, quick, before)
        # the index is live again (events followed, resynced): listings are not stale
        status, after = listing(hub)
        assert status == 200 and after["stale"] is False and names(after) == before, after
        timed_until(lambda: ready(hub)[1]["catalog"]["live"], timeout=30, what="catalog live")
        assert ready(hub)[0] == 200
        assert build_ok(hub, quick, "again")["state"] == "built"
        figures |= engine_mid_build(hub, engine, slow)
        rebuilt = build_ok(hub, quick, "recovered")
        assert rebuilt["state"] == "built", rebuilt
        status, final = listing(hub)
        assert status == 200 and names(final) == sorted([*before, "again", "recovered"]), final
        figures |= {"builds_failed": 1, "builds_refused": figures.pop("refused"), "recovered": 2}
        return figures
    finally:
        hub.stop()


def test_engine_down_idle_and_mid_build(tmp_path: Path) -> None:
    measure(tmp_path)


def test_with_builds_when_down_queue_builds_wait_for_the_engine(tmp_path: Path) -> None:
    """``c.Readiness.builds_when_down = "queue"``: a build asked for while the engine is
    down is accepted and waits in the queue, saying why; it runs once the engine is back."""
    require(check_docker)
    require(check_base_image)
    engine = RemoteEngine()
    try:
        engine.start()
        engine.load(BASE_IMAGE)
        with git_server(tmp_path / "git") as git:
            hub = start_service_hub(
                tmp_path / "hub",
                docker_host=engine.host,
                service_config='c.Readiness.builds_when_down = "queue"\n',
            )
            try:
                repo = git.create_repo(unique("queued"), dockerfile(BASE_IMAGE, "RUN echo q"))
                assert build_ok(hub, repo, "first")["state"] == "built"
                engine.halt()
                timed_until(lambda: ready(hub)[0] == 503, timeout=60, what="ready 503")
                status, body = submit(hub, repo, "waits")
                assert status == 202, body
                build_id = body["build"]["id"]
                try:
                    wait_for_event(hub, build_id, "Waiting: the docker part is down")
                except AssertionError as e:
                    raise AssertionError(f"{e}: {build_record(hub, build_id)}") from None
                assert build_record(hub, build_id)["state"] == "queued"
                engine.resume()
                assert ended(hub, build_id, timeout=300)["state"] == "built"
            finally:
                hub.stop()
    finally:
        engine.stop()
