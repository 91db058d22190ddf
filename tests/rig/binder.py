"""The real ``@jupyterhub/binderhub-client`` (npm), run in Node against the service.

``scripts/setup.sh`` installs it with ``npm ci`` from the committed
``tests/rig/npm-clients/package-lock.json`` into ``.cache/npm-clients/``;
``binder_client.mjs`` drives it the way jupyterhub-fancy-profiles does and prints every
event it yields as a JSON line. Nothing here reimplements the protocol: what the tests read
is what the client made of the service's stream.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.rig.net import loopback_env
from tests.rig.parts import REPO_ROOT, RealPartMissing

NPM_CLIENTS = REPO_ROOT / ".cache" / "npm-clients"
RUNNER = Path(__file__).with_name("binder_client.mjs")
CLIENT = NPM_CLIENTS / "node_modules" / "@jupyterhub" / "binderhub-client" / "lib" / "client.js"


def check_binderhub_client() -> Path:
    """The installed client's ``client.js``.

    Raises:
        RealPartMissing: no ``node``, or the npm clients are not installed.
    """
    if shutil.which("node") is None:
        raise RealPartMissing("node not installed", "no `node` command on PATH")
    if not CLIENT.is_file():
        raise RealPartMissing("@jupyterhub/binderhub-client not installed", f"no {CLIENT}")
    return CLIENT


@dataclass
class BinderFetch:
    """One running client: ``events()`` waits for it and returns what it yielded."""

    proc: subprocess.Popen[str]
    timeout: float

    def events(self) -> list[dict[str, Any]]:
        """Every event the client yielded, in order (the runner's end marker removed).

        Raises:
            AssertionError: the client did not end by itself (timeout, crash).
        """
        try:
            out, err = self.proc.communicate(timeout=self.timeout + 30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
        lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        assert self.proc.returncode == 0 and lines and lines[-1] == {"end": True}, (
            f"binderhub-client did not finish (exit {self.proc.returncode}):\n{out}\n{err}"
        )
        return lines[:-1]


def start_fetch(
    endpoint: str,
    spec: str,
    *,
    token: str | None = None,
    cookie: str | None = None,
    xsrf: str | None = None,
    build_only: bool = True,
    stop_after: str | None = None,
    timeout: float = 300,
) -> BinderFetch:
    """Start the client on ``<endpoint><spec>`` (``endpoint`` ends in ``build/``).

    Args:
        token: an API token (the client sends ``Authorization: Bearer``).
        cookie, xsrf: a browser session instead: the Cookie header and the ``_xsrf`` value
            the page's ``document.cookie`` shows (the client sends it as ``X-Xsrftoken``).
        build_only: BinderRepository's ``buildOnly`` option.
        stop_after: close the stream after the first event of that phase.
        timeout: seconds before the runner gives up.
    """
    options = {
        "clientsDir": str(NPM_CLIENTS),
        "endpoint": endpoint,
        "spec": spec,
        "apiToken": token,
        "cookie": cookie,
        "xsrf": xsrf,
        "buildOnly": build_only,
        "stopAfter": stop_after,
        "timeoutMs": int(timeout * 1000),
    }
    proc = subprocess.Popen(
        ["node", str(RUNNER), json.dumps(options)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=loopback_env(),
    )
    return BinderFetch(proc, timeout)


def binder_fetch(endpoint: str, spec: str, **kwargs: Any) -> list[dict[str, Any]]:
    """Run the client to its end (see :func:`start_fetch`); the events it yielded."""
    return start_fetch(endpoint, spec, **kwargs).events()
