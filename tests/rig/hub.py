"""A real JupyterHub + configurable-http-proxy with repo2docker-service as a managed service.

Used by the hub, UI and end-to-end tests, the benchmarks and scripts/fuzz_api.py. The hub
loads the project's own ``deploy/jupyterhub_config.py`` (the snippet the README shows) and adds
test users (:data:`USERS`, password :data:`PASSWORD`), groups and a client service that can
mint tokens.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from tests.rig.net import free_port, http_status, no_proxy_opener
from tests.rig.parts import REPO_ROOT
from tests.rig.wait import wait_until

SETUP_HINT = "run `bash scripts/test.sh` (or `bash scripts/setup.sh`) first"
PASSWORD = "test-password-" + "r2d"
HUB_RATE_LIMIT = 150  # build requests per user per minute in the session's test hub
HUB_WEBHOOK_SECRET = "hub-webhook-" + secrets.token_hex(8)  # the session hub's webhook secret
# hub config (extra_config) exposing the service as /services/binder/ too, the way
# register_service(binder_alias=True) does: a second service entry with the service's URL.
# The service learns its second prefix from BINDER_ALIAS_ENV in the hub's environment (the
# deploy config passes REPO2DOCKER_SERVICE_* variables on to the service).
BINDER_ALIAS_CONFIG = """
import os
from repo2docker_service.hub.config import add_binder_alias
add_binder_alias(c, url="http://127.0.0.1:" + os.environ["REPO2DOCKER_SERVICE_PORT"])
"""
BINDER_ALIAS_ENV = {"REPO2DOCKER_SERVICE_BINDER_PREFIX": "/services/binder/"}

# username -> group (None: no access to the service at all)
USERS: dict[str, str | None] = {
    "alice": "repo2docker-builders",
    "bob": "repo2docker-viewers",
    "carol": None,
    "dave": "repo2docker-access-only",
    "admin1": "repo2docker-admins",
    # look-alike names: their image owners must never collide
    "a.b": "repo2docker-builders",
    "a-b": "repo2docker-builders",
    "josé": "repo2docker-builders",
    "flooder": "repo2docker-builders",  # used up by the rate-limit test
    "flooder2": "repo2docker-builders",  # used up by the BinderHub API's rate-limit test
}


def chp_path() -> str:
    """The configurable-http-proxy executable (RuntimeError if not installed)."""
    found = shutil.which("configurable-http-proxy")
    if not found:
        raise RuntimeError(f"configurable-http-proxy not found on PATH: {SETUP_HINT}")
    return found


@dataclass
class Hub:
    """A running hub: URLs, the client token and helpers for the REST API."""

    url: str  # public URL (through the proxy), no trailing slash
    workdir: Path
    client_token: str
    proc: subprocess.Popen[bytes]
    service_config: Path
    tokens: dict[str, str] = field(default_factory=dict)
    #: how it was started (for :meth:`restart`)
    config: Path | None = None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def service_url(self) -> str:
        """The service's URL through the proxy, with a trailing slash."""
        return f"{self.url}/services/repo2docker/"

    def api(
        self, method: str, path: str, body: dict[str, Any] | None = None, token: str | None = None
    ) -> Any:
        """Call the hub's REST API (default: as the client service); the parsed JSON or None.

        Raises:
            urllib.error.HTTPError: an error status.
        """
        req = urllib.request.Request(
            f"{self.url}/hub/api/{path.lstrip('/')}",
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"token {token or self.client_token}"},
        )
        with no_proxy_opener().open(req, timeout=30) as resp:
            raw = resp.read()
            return json.loads(raw) if raw else None

    def token_for(self, username: str) -> str:
        """An API token of ``username`` carrying all of the user's permissions (cached)."""
        if username not in self.tokens:
            try:
                self.api("POST", f"users/{quote(username)}")
            except urllib.error.HTTPError as e:
                if e.code != 409:  # already exists
                    raise
            model = self.api(
                "POST", f"users/{quote(username)}/tokens", {"note": "tests", "scopes": ["inherit"]}
            )
            self.tokens[username] = model["token"]
        return self.tokens[username]

    def log_text(self) -> str:
        """The hub's log (the service logs into it too)."""
        return (self.workdir / "hub.log").read_text(errors="replace")

    def restart(self, *, timeout: float = 60) -> None:
        """Stop the hub and start it again with the same config, database and cookie
        secret; wait until the service answers through the proxy.

        Raises:
            RuntimeError: it did not come back within ``timeout`` seconds.
        """
        assert self.config is not None
        self.stop()
        self.proc = _launch_hub(self.workdir, self.config, self.env, mode="a")
        wait_healthy(self, timeout)

    def stop(self) -> None:
        """SIGTERM the hub (it stops the proxy and the service); SIGKILL after 15 s."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


def _users_config() -> str:
    """The dummy authenticator, the test users' groups and the access-only role."""
    groups: dict[str, list[str]] = {}
    for user, group in USERS.items():
        if group:
            groups.setdefault(group, []).append(user)
    return f"""
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = {PASSWORD!r}
c.Authenticator.allow_all = True
c.Authenticator.admin_users = {{"admin1"}}
c.JupyterHub.load_groups.update({json.dumps({g: {"users": u} for g, u in groups.items()})})
c.JupyterHub.load_roles.append({{
    "name": "repo2docker-access-only",
    "scopes": ["access:services!service=repo2docker"],
    "groups": ["repo2docker-access-only"],
}})
"""


def write_hub_config(
    workdir: Path,
    *,
    proxy_port: int,
    client_token: str,
    extra_config: str = "",
    auth_config: str | None = None,
) -> Path:
    """Write ``workdir/jupyterhub_config.py``: the deploy config plus the test users.

    ``auth_config`` replaces the dummy authenticator and the users' groups; the deploy
    config is then pasted after it, as the README asks (the SSO tests' authenticator).
    """
    hub_port, chp_api_port = free_port(), free_port()
    config = workdir / "jupyterhub_config.py"
    deploy = REPO_ROOT / "deploy" / "jupyterhub_config.py"
    # the README's way: the snippet pasted after the authenticator's settings (a
    # load_subconfig'd file would not see them); the other hubs load it as a file
    head = (
        f"{auth_config}\n{deploy.read_text()}"
        if auth_config is not None
        else f"load_subconfig({str(deploy)!r})\n"
    )
    config.write_text(
        head
        + f"""
c.JupyterHub.bind_url = "http://127.0.0.1:{proxy_port}"
c.JupyterHub.hub_bind_url = "http://127.0.0.1:{hub_port}"
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{chp_api_port}"
c.ConfigurableHTTPProxy.command = [{chp_path()!r}]
c.JupyterHub.db_url = "sqlite:///{workdir}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "{workdir}/jupyterhub_cookie_secret"
c.JupyterHub.pid_file = "{workdir}/jupyterhub.pid"
c.JupyterHub.services.append({{"name": "test-client", "api_token": {client_token!r}}})
c.JupyterHub.load_roles.append({{
    "name": "test-client",
    "scopes": ["admin:users", "admin:groups", "tokens", "list:services", "read:services"],
    "services": ["test-client"],
}})
"""
        + ("" if auth_config is not None else _users_config())
        + (f"\n# extra_config from start_hub()\n{extra_config}\n" if extra_config else "")
    )
    return config


def _launch_hub(
    workdir: Path, config: Path, env: Mapping[str, str], *, mode: str = "w"
) -> subprocess.Popen[bytes]:
    """``python -m jupyterhub -f config --debug`` in ``workdir``, logging to hub.log
    (``mode`` ``"a"``: appended)."""
    with open(workdir / "hub.log", mode) as log:
        return subprocess.Popen(
            [sys.executable, "-m", "jupyterhub", "-f", str(config), "--debug"],
            cwd=workdir,
            env=dict(env),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def wait_healthy(hub: Hub, timeout: float = 60) -> Hub:
    """Wait until the service's health answers 200 through the proxy (RuntimeError if not)."""

    def healthy() -> bool:
        if hub.proc.poll() is not None:
            raise RuntimeError(
                f"JupyterHub exited with {hub.proc.returncode}:\n{hub.log_text()[-3000:]}"
            )
        return http_status(hub.service_url + "health") == 200

    try:
        wait_until(healthy, timeout=timeout, interval=0.3, what="the hub and the service")
    except TimeoutError:
        hub.stop()
        raise RuntimeError(
            f"hub/service not up after {timeout:.0f} s:\n{hub.log_text()[-3000:]}"
        ) from None
    return hub


def start_hub(
    workdir: Path,
    *,
    service_config: str = "",
    env: Mapping[str, str] | None = None,
    extra_config: str = "",
    auth_config: str | None = None,
) -> Hub:
    """Start a hub (and through it the service); wait until both answer via the proxy.

    ``service_config`` is the service's config file; ``extra_config`` is Python appended to
    the generated jupyterhub_config.py (e.g. a spawner); it can read the service's port from
    ``$REPO2DOCKER_SERVICE_PORT``. ``auth_config`` replaces the test users' authenticator
    (see :func:`write_hub_config`).

    Raises:
        RuntimeError: no proxy installed, or the hub exited or was not up within 60 s.
    """
    chp_path()
    workdir.mkdir(parents=True, exist_ok=True)
    proxy_port, service_port = free_port(), free_port()
    client_token = secrets.token_hex(16)
    config = write_hub_config(
        workdir,
        proxy_port=proxy_port,
        client_token=client_token,
        extra_config=extra_config,
        auth_config=auth_config,
    )
    svc_config = workdir / "repo2docker_service_config.py"
    svc_config.write_text(service_config)
    path = (env or {}).get("PATH") or os.environ.get("PATH", "")
    hub_env = {
        **os.environ,
        **(env or {}),
        "REPO2DOCKER_SERVICE_PORT": str(service_port),
        "REPO2DOCKER_SERVICE_CONFIG": str(svc_config),
        # (env may bring its own PATH, e.g. with a docker credential helper on it)
        "PATH": f"{Path(sys.executable).parent}:{path}",
    }
    hub = Hub(
        url=f"http://127.0.0.1:{proxy_port}",
        workdir=workdir,
        client_token=client_token,
        proc=_launch_hub(workdir, config, hub_env),
        service_config=svc_config,
        config=config,
        env=hub_env,
    )
    return wait_healthy(hub)
