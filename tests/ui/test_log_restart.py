"""The log viewer across a stalled stream and a restart of the service (issue 18, fault 1).

A hub and proxy of the test's own in front of a service process of the test's own
(:mod:`tests.rig.ownservice`), builds in builder containers (so they outlive the service) and
``event_keepalive_interval`` 2 s. The page follows an 80-line build that is quiet for 8 s
after line 20:

- quiet build: the page receives ``keepalive`` events (no id) and does not reconnect;
- stalled stream: the service is stopped with SIGSTOP (no byte on the stream, the proxy
  keeps it open, as after a SIGKILL): the page notices within 3 intervals and reconnects
  once the service answers again (before, it stayed "Live" and waited forever);
- SIGTERM while the build goes on: the page shows "The service is restarting;
  reconnecting…" (before, the id-less note was dropped as already seen); SIGKILL: the proxy
  may keep the stream open with nothing on it, and the page reconnects after 3 intervals.
  Once the service is started again the page resumes; the log ends with every line exactly
  once.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.rig.engine import (
    check_base_image,
    check_docker,
    docker,
    ensure_builder_image,
    local_images,
    remove_images,
)
from tests.rig.envpage import action, add_environment, count_lines, open_page
from tests.rig.git import start_git_http
from tests.rig.net import loopback_env
from tests.rig.ownservice import SSEViewer, start_hub_with_service
from tests.rig.parts import OFFLINE_CONFIG, require
from tests.rig.repos import dockerfile, unique

pytestmark = [pytest.mark.hub, pytest.mark.browser, pytest.mark.docker]

LINES = 80
QUIET_AFTER = 20
KEEPALIVE = 2  # s; the page reconnects after 3 intervals of silence
TIMEOUT = 240_000  # ms


def service_config(prefix: str, builder_image: str) -> str:
    no_proxy = {k: v for k, v in loopback_env().items() if k.lower() == "no_proxy"}
    return "\n".join(
        [
            'c.Repo2DockerService.allowed_repo_schemes = ["http"]',
            f"c.Executor.repo2docker_config = {str(OFFLINE_CONFIG)!r}",
            f"c.Repo2DockerService.image_prefix = {prefix!r}",
            f"c.Repo2DockerService.event_keepalive_interval = {KEEPALIVE}",
            "from repo2docker_service.builds.executors import DockerExecutor",
            "c.Repo2DockerService.executor_class = DockerExecutor",
            f"c.DockerExecutor.builder_image = {builder_image!r}",
            f"c.DockerExecutor.builder_env = {no_proxy!r}",
        ]
    )


def connections(page: Page) -> int:
    return page.evaluate("window.repo2dockerService.logs.stream.connections")


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGKILL"])
def test_log_viewer_survives_a_stall_and_a_restart(page: Page, tmp_path: Path, sig: str) -> None:
    require(check_docker)
    base = require(check_base_image)
    builder = require(ensure_builder_image, base=base)
    git = require(start_git_http, tmp_path / "git")
    prefix = f"r2duilog{os.getpid()}-"
    hub, service = start_hub_with_service(
        tmp_path / "hub", service_config=service_config(prefix, builder)
    )
    build_id = None
    try:
        loop = "do echo line-$i; sleep 0.15; done"
        repo = git.create_repo(
            unique("uilog"),
            dockerfile(
                base,
                f"RUN for i in $(seq 1 {QUIET_AFTER}); {loop}; sleep 8; "
                f"for i in $(seq {QUIET_AFTER + 1} {LINES}); {loop}",
                fresh=True,
            ),
        )
        name = unique("uilog")
        open_page(page, hub, "alice")
        body = add_environment(page, repo=repo, ref="main", name=name)
        build_id = body["build"]["id"]
        viewer = SSEViewer(hub, hub.token_for("alice"), build_id)  # sees what the page cannot
        viewer.follow(timeout=60)
        action(page, name, "logs").click()
        dialog, output = page.locator("#logs-dialog"), page.locator("#logs-output")
        expect(output).to_contain_text(f"line-{QUIET_AFTER}", timeout=TIMEOUT)
        before_quiet = connections(page)
        expect(output).to_contain_text(f"line-{QUIET_AFTER + 1}", timeout=TIMEOUT)
        keepalives = [e for e in viewer.events if e["event"] == "keepalive"]
        assert keepalives and all(e["id"] is None for e in keepalives), viewer.events[-5:]
        assert keepalives[0]["data"] == {"interval": KEEPALIVE}
        assert connections(page) == before_quiet, "the page reconnected during a quiet build"

        # stalled: no byte on the stream, the proxy keeps it open
        expect(output).to_contain_text("line-30", timeout=TIMEOUT)
        os.kill(service.pid, signal.SIGSTOP)
        try:
            expect(dialog).to_have_attribute("data-connection", "reconnecting", timeout=30_000)
        finally:
            os.kill(service.pid, signal.SIGCONT)
        expect(dialog).to_have_attribute("data-connection", "live", timeout=60_000)
        stalled = connections(page)
        assert stalled > before_quiet

        # stopped while the build goes on: the note, then the resumed log
        expect(output).to_contain_text("line-45", timeout=TIMEOUT)
        service.kill(getattr(signal, sig))
        if sig == "SIGTERM":
            expect(dialog).to_have_attribute("data-connection", "restarting", timeout=30_000)
            expect(page.locator("#logs-connection")).to_have_text(
                "The service is restarting; reconnecting…"
            )
        else:
            expect(dialog).to_have_attribute("data-connection", "reconnecting", timeout=30_000)
        service.start()
        expect(page.locator("#logs-phase")).to_have_text("built", timeout=TIMEOUT)
        expect(page.locator("#logs-connection")).to_have_text("Finished")
        assert connections(page) > stalled
        counts = count_lines(output.inner_text(), "line", LINES)
        assert all(c == 1 for c in counts.values()), {n: c for n, c in counts.items() if c != 1}
    finally:
        if service.proc is not None and service.proc.poll() is None:
            service.kill(signal.SIGTERM)
        hub.stop()
        git.stop()
        remove_images(local_images(prefix), check=False)
        if build_id is not None:
            builders = docker(
                "ps", "-aq", "--filter", f"label=repo2docker-service.build-id={build_id}"
            ).stdout.split()
            if builders:
                docker("rm", "-f", *builders, check=False)
