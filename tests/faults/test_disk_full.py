"""Fault 5: the engine's disk fills up during a build.

The service builds in a second dockerd of this script's own (``tests.rig.remote_engine``)
whose data root is a small ext4 filesystem in a file, loop-mounted (about 400 MB: the base
image takes ~170 MB). A build that writes more than is left fails, saying the disk is full;
nothing else breaks: the service stays ready, listings answer, and the next small build
succeeds once the failed step's layer is gone.

Run alone: ``python -m tests.faults.test_disk_full`` prints the figures.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from tests.rig.engine import BASE_IMAGE, check_base_image, check_docker
from tests.rig.faults import (
    build_log,
    ended,
    git_server,
    health,
    listing,
    names,
    print_figures,
    ready,
    start_service_hub,
    submit,
)
from tests.rig.parts import RealPartMissing, require
from tests.rig.remote_engine import RemoteEngine
from tests.rig.repos import dockerfile, unique

pytestmark = [pytest.mark.docker, pytest.mark.hub]

DISK_MB = 400
#: more than the filesystem has left once the base image is in
FILL = "RUN head -c 500000000 /dev/zero > /fill.bin"


def loop_filesystem(image: Path, mountpoint: Path, *, size_mb: int) -> None:
    """Make an ext4 filesystem of ``size_mb`` in the file ``image`` and loop-mount it.

    Raises:
        RealPartMissing: no mkfs.ext4, or loop devices cannot be used here.
    """
    if shutil.which("mkfs.ext4") is None:
        raise RealPartMissing("mkfs.ext4 missing", "apt-get install e2fsprogs")
    with open(image, "wb") as f:
        f.truncate(size_mb * 1024 * 1024)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True, capture_output=True)
    mountpoint.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-o", "loop", str(image), str(mountpoint)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        raise RealPartMissing("cannot loop-mount a filesystem here", mounted.stderr.strip())


def free_mb(path: Path) -> float:
    """Free space of the filesystem holding ``path``, in MB."""
    return shutil.disk_usage(path).free / 1e6


def run(workdir: Path, engine: RemoteEngine, git: Any) -> dict[str, Any]:
    hub = start_service_hub(workdir / "hub", docker_host=engine.host)
    try:
        small = git.create_repo(unique("small"), dockerfile(BASE_IMAGE, "RUN echo small"))
        big = git.create_repo(unique("big"), dockerfile(BASE_IMAGE, FILL, fresh=True))
        first = ended(hub, submit(hub, small, "small")[1]["build"]["id"], timeout=600)
        assert first["state"] == "built", first
        before_mb = free_mb(engine.root / "data")
        status, body = submit(hub, big, "big")
        assert status == 202, body
        started = time.monotonic()
        failed = ended(hub, body["build"]["id"], timeout=600)
        fail_s = time.monotonic() - started
        assert failed["state"] == "failed", failed
        log = build_log(hub, failed["id"]).lower()
        assert "no space left on device" in log, log[-2000:]
        assert "no space left on device" in failed["error"].lower(), failed
        # nothing else broke: ready, listings, and the next build
        assert health(hub) == 200 and ready(hub)[0] == 200, ready(hub)
        status, after = listing(hub)
        assert status == 200 and names(after) == ["small"], after
        again = ended(hub, submit(hub, small, "again")[1]["build"]["id"], timeout=600)
        assert again["state"] == "built", again
        return {
            "disk_mb": DISK_MB,
            "free_before_mb": before_mb,
            "build_failed_after_s": fail_s,
            "free_after_mb": free_mb(engine.root / "data"),
            "builds_failed": 1,
            "builds_after": 1,
        }
    finally:
        hub.stop()


def measure(workdir: Path) -> dict[str, Any]:
    """Run the whole fault; the figures (assertions fail on wrong behaviour)."""
    require(check_docker)
    require(check_base_image)
    engine = RemoteEngine()
    try:
        loop_filesystem(workdir / "data.img", engine.root / "data", size_mb=DISK_MB)
        engine.start()
        engine.load(BASE_IMAGE)
        with git_server(workdir / "git") as git:
            return run(workdir, engine, git)
    finally:
        engine.stop()  # unmounts what is mounted under its root, the loop filesystem too


def test_disk_full_during_a_build(tmp_path: Path) -> None:
    measure(tmp_path)


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(prefix="fault-disk-") as tmp:
        print_figures("the engine's disk filled during a build", measure(Path(tmp)))
    sys.exit(0)
