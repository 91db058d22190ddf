"""What the fault scripts (``tests/faults/``) share: a hub whose service uses the engine or
registry a script breaks, probes of readiness, health and listings, timing, and figures.

Each script is a pytest test and runs alone (``python -m tests.faults.<name>``) printing its
figures; both start their own parts here, on 127.0.0.1, and stop them.
"""

from __future__ import annotations

import json
import secrets
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from tests.rig.api import iter_sse, request
from tests.rig.git import GitHTTPServer, start_git_http
from tests.rig.hub import Hub, start_hub
from tests.rig.net import no_proxy_opener
from tests.rig.parts import OFFLINE_CONFIG

T = TypeVar("T")

#: the builder of the fault scripts (a member of repo2docker-builders in the rig's hub)
USER = "alice"


def service_environment(env: Mapping[str, str]) -> str:
    """Hub config giving the managed service ``env`` (e.g. ``DOCKER_HOST``), the way an
    admin does: the service entry's ``environment`` (the hub passes little else on)."""
    return (
        "_services = c.JupyterHub.services\n"
        "# a loaded subconfig leaves a lazy (appended-to) list: make it concrete\n"
        "if hasattr(_services, 'get_value'):\n"
        "    _services = _services.get_value([])\n"
        "for _svc in _services:\n"
        "    if _svc['name'] == 'repo2docker':\n"
        f"        _svc.setdefault('environment', {{}}).update({dict(env)!r})\n"
    )


def repo2docker_config(workdir: Path, *, no_network: bool) -> Path:
    """The offline repo2docker config, plus ``--network none`` for an engine without NAT
    (the rig's second dockerd)."""
    path = workdir / "repo2docker_config.py"
    extra = '\nc.DockerEngine.extra_buildx_build_args = ["--network", "none"]\n'
    path.write_text(OFFLINE_CONFIG.read_text() + (extra if no_network else ""))
    return path


def start_service_hub(
    workdir: Path,
    *,
    docker_host: str | None = None,
    registry: str | None = None,
    service_config: str = "",
    extra_config: str = "",
) -> Hub:
    """A hub managing the service, which uses ``docker_host`` (else the shared engine) and
    pushes to ``registry`` (``127.0.0.1:<port>``; None: local mode)."""
    workdir.mkdir(parents=True, exist_ok=True)
    r2d = repo2docker_config(workdir, no_network=docker_host is not None)
    config = (
        'c.Repo2DockerService.allowed_repo_schemes = ["http", "https"]\n'
        f"c.Executor.repo2docker_config = {str(r2d)!r}\n"
        f"c.Repo2DockerService.image_prefix = 'r2dfault-{secrets.token_hex(3)}-'\n"
        + (f"c.Repo2DockerService.registry_url = {registry!r}\n" if registry else "")
        + service_config
    )
    env = {"DOCKER_HOST": docker_host} if docker_host else {}
    return start_hub(
        workdir, service_config=config, extra_config=service_environment(env) + extra_config
    )


@contextmanager
def git_server(workdir: Path) -> Iterator[GitHTTPServer]:
    """A smart-HTTP git server for the script's repositories, stopped afterwards."""
    server = start_git_http(workdir)
    try:
        yield server
    finally:
        server.stop()


def ready(hub: Hub) -> tuple[int, Any]:
    """``GET ready`` (no token): (status, body)."""
    return request("GET", hub.service_url + "ready", timeout=30)


def health(hub: Hub) -> int:
    """``GET health`` (no token): the status."""
    return request("GET", hub.service_url + "health", timeout=30)[0]


def listing(hub: Hub, user: str = USER) -> tuple[int, Any]:
    """``GET api/images`` as ``user``: (status, body)."""
    return request("GET", hub.service_url + "api/images", token=hub.token_for(user), timeout=60)


def names(body: Any) -> list[str]:
    """The environment names of a listing body, sorted."""
    return sorted(i["name"] for i in body["images"])


def submit(hub: Hub, repo: str, name: str, *, user: str = USER, **fields: Any) -> tuple[int, Any]:
    """``POST api/builds`` as ``user``: (status, body)."""
    body = {"repo": repo, "ref": "main", "name": name, **fields}
    return request(
        "POST", hub.service_url + "api/builds", token=hub.token_for(user), body=body, timeout=120
    )


def build_record(hub: Hub, build_id: str, user: str = USER) -> dict[str, Any]:
    """``GET api/builds/{id}``: the build record."""
    status, body = request(
        "GET", hub.service_url + f"api/builds/{build_id}", token=hub.token_for(user)
    )
    assert status == 200, body
    return dict(body)


def build_log(hub: Hub, build_id: str, user: str = USER) -> str:
    """``GET api/builds/{id}/logs``: the log text."""
    status, body = request(
        "GET", hub.service_url + f"api/builds/{build_id}/logs", token=hub.token_for(user)
    )
    return body if status == 200 and isinstance(body, str) else json.dumps(body)


def ended(hub: Hub, build_id: str, *, timeout: float = 300) -> dict[str, Any]:
    """Poll the build until it has ended; its record."""
    return timed_until(
        lambda: (lambda b: b if b["state"] in TERMINAL else None)(build_record(hub, build_id)),
        timeout=timeout,
        what=f"build {build_id} to end",
    )[1]


TERMINAL = ("built", "failed", "cancelled", "lost")


def timed_until(
    check: Callable[[], T | None], *, timeout: float, interval: float = 0.2, what: str = ""
) -> tuple[float, T]:
    """Call ``check`` until it returns something truthy: (seconds it took, that value).

    Raises:
        AssertionError: still falsy after ``timeout`` seconds.
    """
    start = time.monotonic()
    while True:
        value = check()
        if value:
            return time.monotonic() - start, value
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def print_figures(title: str, figures: Mapping[str, Any]) -> None:
    """Print one line per figure (``name: value``) under ``title``."""
    print(f"== {title}")
    for key, value in figures.items():
        shown = f"{value:.1f}" if isinstance(value, float) else value
        print(f"{key}: {shown}")


def wait_for_event(
    hub: Hub, build_id: str, text: str, *, user: str = USER, timeout: float = 60
) -> str:
    """Follow the build's event stream until an event's data holds ``text``; that data.

    Raises:
        AssertionError: the stream ended, or ``timeout`` seconds passed, without it.
    """
    req = urllib.request.Request(
        hub.service_url + f"api/builds/{build_id}/events",
        headers={"Authorization": f"token {hub.token_for(user)}"},
    )
    with no_proxy_opener().open(req, timeout=timeout) as resp:
        for event in iter_sse(resp):
            if text in event.get("data", ""):
                return event["data"]
    raise AssertionError(f"the event stream of {build_id} ended without {text!r}")
