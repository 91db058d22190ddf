"""Registries: the one setup.sh starts on 127.0.0.1:5000, and the tests' own.

- :func:`check_registry` verifies the setup.sh registry.
- :func:`start_registry` runs CNCF Distribution (Debian's ``docker-registry``) on a free
  loopback port with filesystem storage (deletes enabled unless told otherwise) and no auth,
  htpasswd (basic) auth, or token auth served by :class:`~tests.rig.registry_token.TokenServer`
  in this process.

Nothing here listens on or talks to anything but 127.0.0.1.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import urllib.error
from dataclasses import dataclass
from pathlib import Path

from tests.rig.net import free_port, http_status, no_proxy_opener
from tests.rig.parts import RealPartMissing
from tests.rig.registry_token import ISSUER, SERVICE, TokenServer
from tests.rig.wait import wait_until

REGISTRY_HOST = "127.0.0.1:5000"


def check_registry(host: str = REGISTRY_HOST, *, timeout: float = 5) -> str:
    """Verify that the registry at ``http://{host}/v2/`` answers; return ``host``.

    Raises:
        RealPartMissing: nothing answers, or not a registry.
    """
    url = f"http://{host}/v2/"
    try:
        with no_proxy_opener().open(url, timeout=timeout) as resp:
            resp.read()
    except (urllib.error.URLError, OSError) as e:
        raise RealPartMissing(f"Registry not reachable at {url}", str(e)) from e
    return host


def _htpasswd_file(path: Path, username: str, password: str) -> None:
    if shutil.which("htpasswd") is None:
        raise RealPartMissing("htpasswd missing", "apt-get install apache2-utils")
    subprocess.run(
        ["htpasswd", "-B", "-i", "-c", str(path), username],
        input=password,
        text=True,
        check=True,
        capture_output=True,
    )


@dataclass
class RegistryInstance:
    """One ``docker-registry serve`` process on 127.0.0.1:<port>."""

    workdir: Path
    port: int
    auth: str | None
    username: str = ""
    password: str = ""
    delete: bool = True
    token_server: TokenServer | None = None
    proc: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        """``127.0.0.1:<port>``."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://{self.host}"

    @property
    def config_path(self) -> Path:
        """Where its config.yml is written."""
        return self.workdir / "config.yml"

    def _auth_config(self) -> list[str]:
        if self.auth == "htpasswd":
            htpasswd = self.workdir / "htpasswd"
            _htpasswd_file(htpasswd, self.username, self.password)
            return ["auth:", "  htpasswd:", "    realm: r2ds-test", f"    path: {htpasswd}"]
        if self.auth == "token":
            assert self.token_server is not None
            return [
                "auth:",
                "  token:",
                f"    realm: {self.token_server.realm}",
                f"    service: {SERVICE}",
                f"    issuer: {ISSUER}",
                f"    rootcertbundle: {self.token_server.cert_path}",
            ]
        return []

    def write_config(self) -> None:
        """Write config.yml (storage under the workdir, the port, the auth)."""
        lines = [
            "version: 0.1",
            "log:",
            "  level: warn",
            "  accesslog:",
            "    disabled: true",
            "storage:",
            "  filesystem:",
            f"    rootdirectory: {self.workdir / 'data'}",
            "  delete:",
            f"    enabled: {'true' if self.delete else 'false'}",
            "http:",
            f"  addr: 127.0.0.1:{self.port}",
            *self._auth_config(),
        ]
        self.config_path.write_text("\n".join(lines) + "\n")

    def _answers(self) -> bool:
        """Whether ``/v2/`` answers (2xx, or 401 with auth); RuntimeError if it exited."""
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(
                f"docker-registry exited with {self.proc.returncode}: "
                + (self.workdir / "registry.log").read_text(errors="replace")[-2000:]
            )
        status = http_status(f"{self.url}/v2/")
        return status is not None and (status < 400 or status == 401)

    def start(self, *, timeout: float = 30) -> RegistryInstance:
        """Start (or restart) the process on the same port and storage; wait for ``/v2/``.

        Raises:
            RealPartMissing: no docker-registry (or htpasswd) command.
            RuntimeError: it exited, or did not answer within ``timeout`` seconds.
        """
        if shutil.which("docker-registry") is None:
            raise RealPartMissing("docker-registry missing", "apt-get install docker-registry")
        self.workdir.mkdir(parents=True, exist_ok=True)
        if not self.config_path.exists():
            self.write_config()
        with open(self.workdir / "registry.log", "ab") as log:
            self.proc = subprocess.Popen(
                ["docker-registry", "serve", str(self.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        try:
            wait_until(self._answers, timeout=timeout, what=f"the registry on {self.host}")
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"registry on {self.host} did not answer in {timeout} s") from None
        return self

    def stop(self) -> None:
        """Stop the process (storage stays: :meth:`start` brings the same registry back)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.proc = None

    def close(self) -> None:
        """Stop the process and its token server, if any."""
        self.stop()
        if self.token_server is not None:
            self.token_server.stop()

    @property
    def running(self) -> bool:
        """Whether the process runs."""
        return self.proc is not None and self.proc.poll() is None


def start_registry(
    workdir: Path,
    *,
    auth: str | None = None,
    username: str = "",
    password: str = "",
    delete: bool = True,
    anonymous_pull: bool = False,
    port: int | None = None,
) -> RegistryInstance:
    """Start a registry on a free loopback port; ``auth`` is None, "htpasswd" or "token".

    Raises:
        RealPartMissing, RuntimeError: as :meth:`RegistryInstance.start`.
    """
    token_server = None
    if auth == "token":
        token_server = TokenServer(
            workdir / "token", username=username, password=password, anonymous_pull=anonymous_pull
        ).start()
    reg = RegistryInstance(
        workdir=workdir,
        port=port or free_port(),
        auth=auth,
        username=username,
        password=password,
        delete=delete,
        token_server=token_server,
    )
    try:
        return reg.start()
    except BaseException:
        if token_server is not None:
            token_server.stop()
        raise
