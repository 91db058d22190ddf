"""Fault 4: the hub restarts while the service runs.

The service runs as an *external* JupyterHub service (as in the compose and z2jh
deployments: the hub only proxies to it), started by this script; the hub (with its proxy)
is stopped and started again on the same database and cookie secret. While the hub is away,
requests straight to the service never answer 500: a token the service checked recently
still works, an unknown one gets 503 saying the hub cannot be reached, ``ready`` is 503
naming the hub and ``health`` 200. After the restart, API tokens keep working and a browser
session (Chromium, logged in before) reaches the environments page again, with or without
going through the hub's login.

Run alone: ``python -m tests.faults.test_hub_restart`` prints the figures.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, sync_playwright

from tests.rig.api import request
from tests.rig.browser import launch_chromium, login
from tests.rig.faults import print_figures, timed_until
from tests.rig.hub import Hub, start_hub
from tests.rig.net import free_port, http_status
from tests.rig.parts import OFFLINE_CONFIG, require
from tests.rig.wait import wait_until

pytestmark = [pytest.mark.hub, pytest.mark.browser]

PREFIX = "/services/repo2docker/"


def external_service_config(port: int, token: str, hub_port: int) -> str:
    """Hub config: the repo2docker service is external (url + token, no command)."""
    return f"""
_services = c.JupyterHub.services
if hasattr(_services, "get_value"):
    _services = _services.get_value([])
for _svc in _services:
    if _svc["name"] == "repo2docker":
        _svc.pop("command", None)
        _svc.pop("environment", None)
        _svc["url"] = "http://127.0.0.1:{port}"
        _svc["api_token"] = {token!r}
c.JupyterHub.hub_bind_url = "http://127.0.0.1:{hub_port}"
"""


@contextmanager
def external_service(workdir: Path, port: int, token: str, hub_port: int) -> Iterator[str]:
    """The service as its own process (what JupyterHub sets for a managed one, as the
    compose file does); yields its URL. Stopped afterwards."""
    config = workdir / "service_config.py"
    config.write_text(f"c.Executor.repo2docker_config = {str(OFFLINE_CONFIG)!r}\n")
    env = {
        **os.environ,
        "JUPYTERHUB_API_TOKEN": token,
        "JUPYTERHUB_API_URL": f"http://127.0.0.1:{hub_port}/hub/api",
        "JUPYTERHUB_SERVICE_NAME": "repo2docker",
        "JUPYTERHUB_SERVICE_PREFIX": PREFIX,
        "JUPYTERHUB_SERVICE_URL": f"http://127.0.0.1:{port}",
        "JUPYTERHUB_CLIENT_ID": "service-repo2docker",
        "REPO2DOCKER_SERVICE_CONFIG": str(config),
    }
    with open(workdir / "service.log", "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "repo2docker_service"],
            cwd=workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}{PREFIX}"
    try:
        wait_until(lambda: http_status(url + "health") == 200, timeout=60, what="the service")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def environments_page(page: Page, hub: Hub) -> tuple[int, str]:
    """Open the environments page in the browser: (status, final URL)."""
    response = page.goto(hub.service_url)
    assert response is not None
    return response.status, page.url


def while_hub_down(direct: str, known: str, unknown: str) -> dict[str, Any]:
    """What the service answers straight (not through the proxy) while the hub is away."""
    statuses = []
    assert request("GET", direct + "health")[0] == 200
    for token in (known, unknown):
        status, body = request("GET", direct + "api/images", token=token)
        statuses.append(status)
    assert 500 not in statuses, statuses
    assert statuses[0] == 200, statuses  # checked moments ago: HubAuth's cache answers
    assert statuses[1] == 503, statuses  # before: 500 "Failed to connect to Hub API"
    status, body = timed_until(
        lambda: (lambda r: r if r[0] == 503 else None)(request("GET", direct + "ready")),
        timeout=30,
        what="ready 503",
    )[1]
    assert "hub" in body["down"], body
    return {"answers_while_down": ",".join(map(str, statuses))}


def run(workdir: Path, page: Page) -> dict[str, Any]:
    port, hub_port, token = free_port(), free_port(), secrets.token_hex(16)
    with external_service(workdir, port, token, hub_port) as direct:
        hub = start_hub(
            workdir / "hub", extra_config=external_service_config(port, token, hub_port)
        )
        try:
            known = hub.token_for("alice")
            unknown = hub.token_for("a.b")  # never shown to the service before the restart
            assert request("GET", hub.service_url + "api/images", token=known)[0] == 200
            login(page, hub, "alice")
            assert environments_page(page, hub) == (200, hub.service_url)
            hub.stop()
            figures = while_hub_down(direct, known, unknown)
            started = time.monotonic()
            hub.restart()
            restart_s = time.monotonic() - started
            for tok in (known, unknown):
                status, body = request("GET", hub.service_url + "api/images", token=tok)
                assert status == 200, body
            status, where = environments_page(page, hub)
            relogin = not where.startswith(hub.service_url)
            if relogin:  # the session went through the hub's login again
                login(page, hub, "alice")
                status, where = environments_page(page, hub)
            assert (status, where) == (200, hub.service_url)
            ready_s, _ = timed_until(
                lambda: request("GET", direct + "ready")[0] == 200, timeout=30, what="ready"
            )
            return figures | {
                "hub_restart_s": restart_s,
                "ready_after_restart_s": ready_s,
                "browser_session": "login again" if relogin else "kept",
            }
        finally:
            hub.stop()


def measure(workdir: Path) -> dict[str, Any]:
    """Run the whole fault; the figures (assertions fail on wrong behaviour)."""
    with sync_playwright() as p:
        browser = require(launch_chromium, p)
        try:
            page = browser.new_context().new_page()
            return run(workdir, page)
        finally:
            browser.close()


def test_hub_restart_keeps_tokens_and_sessions(tmp_path: Path) -> None:
    measure(tmp_path)


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(prefix="fault-hub-") as tmp:
        print_figures("the hub restarted while the service runs", measure(Path(tmp)))
    sys.exit(0)
