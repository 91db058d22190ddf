"""The service as a process of the test's own, behind a real hub that knows it as external.

Fault tests kill the service (SIGKILL, SIGTERM) and start it again while the hub, its proxy
and the viewers' connections through the proxy stay. :func:`start_hub_with_service` starts
the service (:class:`OwnService`: ``python -m repo2docker_service`` with the environment a
hub gives a managed service) and then a hub whose ``repo2docker`` service entry has the
service's URL and API token but no command, so the hub never starts or restarts it itself.
:class:`SSEViewer` follows a build's event stream through the proxy in a thread, the way a
browser's viewer does, and resumes with ``Last-Event-ID``.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.rig.api import iter_sse
from tests.rig.hub import Hub, start_hub
from tests.rig.net import free_port, http_status, loopback_env, no_proxy_opener
from tests.rig.wait import wait_until

__all__ = ["OwnService", "SSEViewer", "start_hub_with_service"]

PREFIX = "/services/repo2docker/"


@dataclass
class OwnService:
    """``python -m repo2docker_service`` on ``port``, logging to ``workdir/service-N.log``."""

    workdir: Path
    port: int
    hub_port: int
    token: str
    config: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    runs: int = 0

    @property
    def url(self) -> str:
        """The service's own URL (not through the proxy), with its prefix."""
        return f"http://127.0.0.1:{self.port}{PREFIX}"

    @property
    def log_path(self) -> Path:
        """The log of the current (or last) run."""
        return self.workdir / f"service-{self.runs}.log"

    def log_text(self) -> str:
        """Every run's log, oldest first."""
        return "\n".join(
            (self.workdir / f"service-{n}.log").read_text(errors="replace")
            for n in range(1, self.runs + 1)
        )

    def start(self, timeout: float = 90) -> None:
        """Start a new run and wait until ``health`` answers 200 (RuntimeError if not)."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.runs += 1
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "repo2docker_service", "--port", str(self.port)],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

        def up() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"the service exited:\n{self.log_path.read_text()[-3000:]}")
            return http_status(self.url + "health") == 200

        wait_until(up, timeout=timeout, interval=0.1, what="the service")

    def kill(self, sig: int = signal.SIGKILL, timeout: float = 60) -> int:
        """Send ``sig`` to the service (only its own process) and wait until it exited.

        Returns:
            Its exit status.
        """
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid


def start_hub_with_service(
    workdir: Path, *, service_config: str, env: dict[str, str] | None = None
) -> tuple[Hub, OwnService]:
    """Start the service (own process) and a hub knowing it as an external service.

    Args:
        workdir: where the hub and the service keep their files and logs.
        service_config: the service's config file text.
        env: more environment variables of the service.

    Raises:
        RuntimeError: the service or the hub did not come up.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    port, hub_port, token = free_port(), free_port(), secrets.token_hex(16)
    config = workdir / "own_service_config.py"
    config.write_text(service_config)
    service_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("JUPYTERHUB_", "REPO2"))},
        **loopback_env(),
        **(env or {}),
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
        "REPO2DOCKER_SERVICE_CONFIG": str(config),
        "JUPYTERHUB_SERVICE_NAME": "repo2docker",
        "JUPYTERHUB_API_TOKEN": token,
        "JUPYTERHUB_API_URL": f"http://127.0.0.1:{hub_port}/hub/api",
        "JUPYTERHUB_SERVICE_PREFIX": PREFIX,
        "JUPYTERHUB_SERVICE_URL": f"http://127.0.0.1:{port}",
        "JUPYTERHUB_CLIENT_ID": "service-repo2docker",
        "JUPYTERHUB_OAUTH_CALLBACK_URL": f"{PREFIX}oauth_callback",
        "JUPYTERHUB_BASE_URL": "/",
    }
    service = OwnService(
        workdir=workdir, port=port, hub_port=hub_port, token=token, config=config, env=service_env
    )
    service.start()
    extra = f"""
c.JupyterHub.hub_bind_url = "http://127.0.0.1:{hub_port}"
_entries = c.JupyterHub.services  # a LazyConfigValue while only appended to
for _service in _entries.get_value([]) if hasattr(_entries, "get_value") else _entries:
    if _service["name"] == "repo2docker":
        _service.pop("command", None)
        _service.pop("environment", None)
        _service["url"] = "http://127.0.0.1:{port}"
        _service["api_token"] = {token!r}
"""
    try:
        hub = start_hub(workdir / "hub", extra_config=extra)
    except BaseException:
        service.kill()
        raise
    return hub, service


@dataclass
class SSEViewer:
    """Follows ``api/builds/{id}/events`` through the hub's proxy in a thread.

    Each :meth:`follow` is one connection (with ``Last-Event-ID`` once an id was seen);
    ``events`` collects everything every connection received, in order.
    """

    hub: Hub
    token: str
    build_id: str
    events: list[dict[str, Any]] = field(default_factory=list)
    connections: list[str] = field(default_factory=list)  # how each one ended
    ended_at: list[float] = field(default_factory=list)  # time.time() each one ended
    thread: threading.Thread | None = None

    @property
    def last_id(self) -> int | None:
        ids = [e["id"] for e in self.events if e.get("id") is not None]
        return ids[-1] if ids else None

    def follow(self, timeout: float = 20) -> None:
        """Start one connection in a thread (see :attr:`connections` for how it ended).

        ``timeout``: seconds without a byte (an event or a keepalive, every 15 s) after
        which the connection counts as dead, as a careful client treats it: the hub's
        proxy keeps a stream open after the service behind it died (SIGKILL).
        """
        self.thread = threading.Thread(target=self._read, args=(timeout,), daemon=True)
        self.thread.start()

    def join(self, timeout: float) -> None:
        assert self.thread is not None
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"the event stream is still open after {timeout} s"

    def _read(self, timeout: float) -> None:
        headers = {"Authorization": f"token {self.token}"}
        if self.last_id is not None:
            headers["Last-Event-ID"] = str(self.last_id)
        url = f"{self.hub.service_url}api/builds/{self.build_id}/events"
        try:
            req = urllib.request.Request(url, headers=headers)
            with no_proxy_opener().open(req, timeout=timeout) as resp:
                for event in iter_sse(resp):
                    self.events.append(
                        {
                            "id": int(event["id"]) if "id" in event else None,
                            "event": event.get("event", "message"),
                            "data": json.loads(event.get("data") or "null"),
                            "at": time.monotonic(),
                        }
                    )
            self.connections.append("closed")
        except Exception as e:  # how the connection ended is the result
            self.connections.append(f"error: {type(e).__name__}: {e}")
        self.ended_at.append(time.time())
