"""A second dockerd on ``tcp://127.0.0.1:<port>``, for "the engine is elsewhere" tests.

It has its own data root, exec root and pid file, and listens on loopback only. It gets a
bridge of its own (``r2dsbr<port>``, no NAT, no iptables changes, removed afterwards):
``--bridge none`` is not an option because dockerd then *deletes* the host's ``docker0`` (the
first engine's bridge). Images are copied into it with ``docker save | load``.

:meth:`RemoteEngine.halt` stops only the daemon (data, bridge and port stay) and
:meth:`RemoteEngine.resume` starts it again on them: the fault tests' "the engine went away
and came back" (never done to the shared engine).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tests.rig.engine import docker
from tests.rig.net import free_port
from tests.rig.parts import RealPartMissing
from tests.rig.wait import wait_until

DOCKER0 = Path("/sys/class/net/docker0")


def _fresh_root() -> Path:
    return Path(tempfile.mkdtemp(prefix="r2dsd-", dir="/tmp"))


@dataclass
class RemoteEngine:
    """A second Docker engine on ``tcp://127.0.0.1:<port>`` (see the module docstring)."""

    root: Path = field(default_factory=_fresh_root)
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    bridge_made: bool = False

    @property
    def bridge(self) -> str:
        """The name of its own bridge interface."""
        return f"r2dsbr{self.port}"

    @property
    def host(self) -> str:
        """Its ``DOCKER_HOST`` value."""
        return f"tcp://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        """Variables to add to a subprocess environment so it uses this engine."""
        return {"DOCKER_HOST": self.host}

    def docker(
        self, *args: str, timeout: float = 120, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """``docker *args`` against this engine (RuntimeError on failure when ``check``)."""
        return docker(*args, env=self.env, timeout=timeout, check=check)

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

    def _dockerd_argv(self) -> list[str]:
        return [
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
        ]

    def _answers(self) -> bool:
        """Whether ``docker info`` answers (RuntimeError if dockerd exited)."""
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"dockerd exited: {self.log_tail()}")
        try:
            return self.docker("info", check=False, timeout=10).returncode == 0
        except subprocess.TimeoutExpired:  # a starting daemon on a loaded machine
            return False

    def start(self, *, timeout: float = 60) -> RemoteEngine:
        """Start dockerd and wait until it answers.

        Raises:
            RealPartMissing: no dockerd.
            RuntimeError: the bridge, dockerd or its start failed (it is stopped again).
        """
        if shutil.which("dockerd") is None:
            raise RealPartMissing("dockerd missing", "apt-get install docker.io")
        for sub in ("data", "exec"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        had_docker0 = DOCKER0.exists()
        self._make_bridge()
        self._launch(timeout)
        if had_docker0 and not DOCKER0.exists():
            self.stop()
            raise RuntimeError("the second dockerd removed docker0 (bridge settings?)")
        return self

    def _launch(self, timeout: float) -> None:
        """Start dockerd on the existing root and bridge; wait until it answers."""
        with open(self.root / "dockerd.log", "ab") as log:
            self.proc = subprocess.Popen(
                self._dockerd_argv(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        try:
            wait_until(self._answers, timeout=timeout, interval=0.3, what=f"dockerd on {self.host}")
        except TimeoutError:
            self.stop()
            raise RuntimeError(
                f"dockerd on {self.host} not up in {timeout} s: {self.log_tail()}"
            ) from None

    def halt(self, *, kill: bool = False) -> None:
        """Stop the daemon only (SIGTERM; SIGKILL with ``kill``), keeping its data, bridge
        and port for :meth:`resume`; containers it ran stop with it."""
        if self.proc is None or self.proc.poll() is not None:
            return
        if kill:
            os.killpg(self.proc.pid, signal.SIGKILL)
        else:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def resume(self, *, timeout: float = 60) -> None:
        """Start the daemon again after :meth:`halt` (same data root, bridge and port).

        Raises:
            RuntimeError: it did not come up (it is stopped and removed then).
        """
        (self.root / "dockerd.pid").unlink(missing_ok=True)
        self._launch(timeout)

    def log_tail(self) -> str:
        """The last 2000 characters of dockerd's log."""
        return (self.root / "dockerd.log").read_text(errors="replace")[-2000:]

    def load(self, image: str, *, from_env: Mapping[str, str] | None = None) -> None:
        """Copy ``image`` from the default engine into this one (``docker save | load``).

        Raises:
            RuntimeError: save or load failed.
        """
        save = subprocess.Popen(
            ["docker", "save", image],
            env={**os.environ, **(from_env or {})},
            stdout=subprocess.PIPE,
        )
        try:
            docker("load", env=self.env, stdin=save.stdout, timeout=600)
        finally:
            assert save.stdout is not None
            save.stdout.close()
            save.wait(60)
        if save.returncode != 0:
            raise RuntimeError(f"docker save {image} failed")

    def stop(self) -> None:
        """Remove its containers, stop dockerd, delete the bridge and the root directory."""
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
        self._remove_root()

    def _remove_root(self) -> None:
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
