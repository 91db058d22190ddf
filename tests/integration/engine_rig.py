"""Docker parts for the DockerExecutor and remote-engine tests.

- :func:`ensure_builder_image`: a repo2docker builder image (``tests/integration/builder``)
  made from the local base image, with the host's docker CLI and buildx plugin copied in and
  the same jupyter-repo2docker version as the test venv. Built once per machine (the tag is
  a hash of its inputs); later sessions reuse it.
- :class:`RemoteEngine`: a second dockerd with its own data root, exec root and pid file,
  listening on ``tcp://127.0.0.1:<port>`` only, for "the engine is elsewhere" tests. It gets
  a bridge of its own (``r2dsbr<port>``, no NAT, no iptables changes, removed afterwards):
  ``--bridge none`` is not an option because dockerd then *deletes* the host's ``docker0``
  (the first engine's bridge). Images are copied into it with ``docker save | load``.

Nothing here listens on anything but 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from repo2docker import __version__ as REPO2DOCKER_VERSION

from tests.hub.hubrig import free_port
from tests.realparts import BASE_IMAGE, RealPartMissing

BUILDER_DIR = Path(__file__).parent / "builder"
BUILDX_PLUGIN = Path("/usr/libexec/docker/cli-plugins/docker-buildx")


def _docker_cli() -> Path:
    for candidate in ("/usr/bin/docker", shutil.which("docker")):
        if candidate and Path(candidate).exists():
            return Path(candidate)
    raise RealPartMissing("docker CLI missing", "apt-get install docker.io")


def builder_tag(base: str = BASE_IMAGE) -> str:
    """``local/r2ds-builder:<hash>`` of the Dockerfile, the copied binaries, base and version."""
    h = hashlib.sha256()
    for path in sorted(BUILDER_DIR.iterdir()):
        h.update(path.name.encode() + path.read_bytes())
    for binary in (_docker_cli(), BUILDX_PLUGIN):
        st = binary.stat()
        h.update(f"{binary}:{st.st_size}:{st.st_mtime_ns}".encode())
    h.update(f"{base}:{REPO2DOCKER_VERSION}".encode())
    return f"local/r2ds-builder:{h.hexdigest()[:12]}"


def ensure_builder_image(*, base: str = BASE_IMAGE, docker_env: dict | None = None) -> str:
    """Build the builder image unless it exists; return its tag (about 90 s the first time)."""
    tag = builder_tag(base)
    env = {**os.environ, **(docker_env or {})}
    if (
        subprocess.run(["docker", "image", "inspect", tag], env=env, capture_output=True).returncode
        == 0
    ):
        return tag
    if not BUILDX_PLUGIN.exists():
        raise RealPartMissing("docker buildx plugin missing", f"{BUILDX_PLUGIN} does not exist")
    with tempfile.TemporaryDirectory(prefix="r2ds-builder-") as ctx:
        for path in BUILDER_DIR.iterdir():
            shutil.copy2(path, Path(ctx) / path.name)
        shutil.copy2(_docker_cli(), Path(ctx) / "docker")
        shutil.copy2(BUILDX_PLUGIN, Path(ctx) / "docker-buildx")
        proc = subprocess.run(
            [
                "docker",
                "build",
                "--build-arg",
                f"BASE={base}",
                "--build-arg",
                f"REPO2DOCKER_VERSION={REPO2DOCKER_VERSION}",
                "-t",
                tag,
                ctx,
            ],
            env={**env, "DOCKER_BUILDKIT": "1"},
            capture_output=True,
            text=True,
            timeout=900,
        )
    if proc.returncode != 0:
        raise RealPartMissing(
            "could not build the repo2docker builder image",
            (proc.stdout + proc.stderr)[-3000:],
        )
    return tag


@dataclass
class RemoteEngine:
    """A second Docker engine on ``tcp://127.0.0.1:<port>`` (see the module docstring)."""

    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="r2dsd-", dir="/tmp")))
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None
    bridge_made: bool = False

    @property
    def bridge(self) -> str:
        return f"r2dsbr{self.port}"

    def _make_bridge(self) -> None:
        subnet = f"10.231.{self.port % 250}.1/24"
        for argv in (
            ["ip", "link", "add", "name", self.bridge, "type", "bridge"],
            ["ip", "addr", "add", subnet, "dev", self.bridge],
            ["ip", "link", "set", self.bridge, "up"],
        ):
            proc = subprocess.run(argv, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise RuntimeError(f"{' '.join(argv)}: {proc.stderr.strip()}")
            self.bridge_made = True

    @property
    def host(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        return {"DOCKER_HOST": self.host}

    def docker(self, *args: str, timeout: float = 120, check: bool = True, **kw):
        proc = subprocess.run(
            ["docker", *args],
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=timeout,
            **kw,
        )
        if check and proc.returncode != 0:
            raise RuntimeError(f"docker {' '.join(args)} on {self.host}: {proc.stderr.strip()}")
        return proc

    def start(self, *, timeout: float = 60) -> RemoteEngine:
        if shutil.which("dockerd") is None:
            raise RealPartMissing("dockerd missing", "apt-get install docker.io")
        for sub in ("data", "exec"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        had_docker0 = Path("/sys/class/net/docker0").exists()
        self._make_bridge()
        log = open(self.root / "dockerd.log", "ab")
        self.proc = subprocess.Popen(
            [
                "dockerd",
                "--data-root",
                str(self.root / "data"),
                "--exec-root",
                str(self.root / "exec"),
                "--pidfile",
                str(self.root / "dockerd.pid"),
                "-H",
                self.host,
                "--bridge",
                self.bridge,
                "--iptables=false",
                "--ip-masq=false",
                "--ip-forward=false",
                "--userland-proxy=false",
                "--cgroup-parent",
                f"/r2ds-remote-{self.port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dockerd exited: {self.log_tail()}")
            if self.docker("info", check=False, timeout=10).returncode == 0:
                if had_docker0 and not Path("/sys/class/net/docker0").exists():
                    self.stop()
                    raise RuntimeError("the second dockerd removed docker0 (bridge settings?)")
                return self
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"dockerd on {self.host} not up in {timeout} s: {self.log_tail()}"
                )
            time.sleep(0.3)

    def log_tail(self) -> str:
        return (self.root / "dockerd.log").read_text(errors="replace")[-2000:]

    def load(self, image: str, *, from_env: dict | None = None) -> None:
        """Copy ``image`` from the default engine into this one (``docker save | load``)."""
        save = subprocess.Popen(
            ["docker", "save", image],
            env={**os.environ, **(from_env or {})},
            stdout=subprocess.PIPE,
        )
        try:
            self.docker("load", stdin=save.stdout, timeout=600)
        finally:
            assert save.stdout is not None
            save.stdout.close()
            save.wait(60)
        if save.returncode != 0:
            raise RuntimeError(f"docker save {image} failed")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            for container in self.docker("ps", "-aq", check=False).stdout.split():
                self.docker("rm", "-f", container, check=False)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.proc = None
        if self.bridge_made:
            subprocess.run(["ip", "link", "del", self.bridge], capture_output=True, check=False)
            self.bridge_made = False
        # dockerd leaves its network namespace bind mount (exec/netns/default) behind;
        # unmount what is left under the root, and never remove files through a mount
        for _ in range(2):
            mounts = [
                line.split()[1]
                for line in Path("/proc/mounts").read_text().splitlines()
                if line.split()[1].startswith(f"{self.root}/")
            ]
            for mount in sorted(mounts, key=len, reverse=True):
                subprocess.run(["umount", mount], capture_output=True, check=False)
        if f" {self.root}/" not in Path("/proc/mounts").read_text():
            shutil.rmtree(self.root, ignore_errors=True)
