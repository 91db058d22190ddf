"""Fault 3: the registry stops while idle and mid-push, then starts again.

The service (managed by a real hub, registry mode) pushes to a registry of this script's own
(``tests.rig.registry``: CNCF Distribution on a loopback port; the shared one on :5000 is
never stopped). While it is down: ``ready`` answers 503 naming the ``registry`` part,
listings answer the last good listing marked stale, a new build is refused at once with the
reason (``builds_when_down = "fail"``). A build whose push is cut off fails naming the
registry, and ``latest`` in the registry still names the image it named before. When the
registry is back: ready 200, listings live, the same build succeeds and moves ``latest``.

Run alone: ``python -m tests.faults.test_registry_down`` prints the figures.
"""

from __future__ import annotations

import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.rig.engine import BASE_IMAGE, check_base_image, check_docker, docker, remove_images
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
    timed_until,
)
from tests.rig.net import no_proxy_opener
from tests.rig.parts import require
from tests.rig.registry import RegistryInstance, start_registry
from tests.rig.repos import dockerfile, unique

pytestmark = [pytest.mark.docker, pytest.mark.hub]

ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)
#: a layer big enough that its push takes a while on loopback (random: no compression)
BIG_LAYER = "RUN head -c 400000000 /dev/urandom > /big.bin"


def latest_digest(reg: RegistryInstance, reference: str) -> str:
    """The digest ``latest`` names in the registry (``reference`` is any of its tags)."""
    repository = reference.removeprefix(reg.host + "/").rsplit(":", 1)[0]
    req = urllib.request.Request(
        f"{reg.url}/v2/{repository}/manifests/latest", method="HEAD", headers={"Accept": ACCEPT}
    )
    with no_proxy_opener().open(req, timeout=30) as resp:
        return str(resp.headers["Docker-Content-Digest"])


def registry_idle(hub: Any, reg: RegistryInstance, repo: str, before: list[str]) -> dict:
    """Stop the idle registry; what the service answers; start it; time to recover."""
    reg.stop()
    stopped = time.monotonic()
    assert health(hub) == 200

    timed_until(lambda: ready(hub)[0] == 503, timeout=60, what="ready 503")
    detect_s = time.monotonic() - stopped
    down = ready(hub)[1]
    assert down["down"] == ["registry"], down

    def stale_listing() -> Any:
        status, body = listing(hub)
        assert status == 200, body  # before: 503 once the snapshot was dropped
        assert names(body) == before, body
        return body if body["stale"] else None  # a young snapshot answers first

    timed_until(stale_listing, timeout=60, what="a stale listing")
    stale_s = time.monotonic() - stopped
    status, refused = submit(hub, repo, "refused")
    assert status == 503 and "registry" in refused["message"], refused
    reg.start()
    recover_s, _ = timed_until(lambda: ready(hub)[0] == 200, timeout=60, what="ready 200 again")
    return {"detect_s": detect_s, "listing_stale_after_s": stale_s, "recover_s": recover_s}


def registry_mid_push(
    hub: Any, reg: RegistryInstance, repo: str, latest_before: tuple[str, str]
) -> dict:
    """Stop the registry while a build pushes; the build fails naming it; latest stays."""
    status, body = submit(hub, repo, "data")
    assert status == 202, body
    build_id = body["build"]["id"]
    timed_until(
        lambda: "pushing" in build_log(hub, build_id).lower(),
        timeout=300,
        interval=0.05,
        what="the push to start",
    )
    reg.stop()
    stopped = time.monotonic()
    record = ended(hub, build_id, timeout=300)
    fail_s = time.monotonic() - stopped
    assert record["state"] == "failed", record
    assert "registry" in record["error"], record
    reg.start()
    recover_s, _ = timed_until(lambda: ready(hub)[0] == 200, timeout=60, what="ready 200 again")
    assert latest_digest(reg, latest_before[0]) == latest_before[1]
    rebuilt = ended(hub, submit(hub, repo, "data")[1]["build"]["id"], timeout=600)
    assert rebuilt["state"] == "built", rebuilt
    assert latest_digest(reg, latest_before[0]) != latest_before[1]
    return {"build_failed_after_s": fail_s, "recover_after_mid_push_s": recover_s}


def run(workdir: Path, reg: RegistryInstance, git: Any) -> dict[str, Any]:
    hub = start_service_hub(workdir / "hub", registry=reg.host)
    try:
        name = unique("data")
        repo = git.create_repo(name, dockerfile(BASE_IMAGE, "RUN echo first"))
        first = ended(hub, submit(hub, repo, "data")[1]["build"]["id"], timeout=600)
        assert first["state"] == "built", first
        status, body = listing(hub)
        assert status == 200 and body["stale"] is False, body
        before = names(body)
        figures = registry_idle(hub, reg, repo, before)
        status, after = listing(hub)
        assert status == 200 and names(after) == before, after
        timed_until(lambda: not listing(hub)[1]["stale"], timeout=30, what="a live listing")
        latest = (first["image"], latest_digest(reg, first["image"]))
        git.commit(name, dockerfile(BASE_IMAGE, BIG_LAYER, fresh=True), message="big")
        figures |= registry_mid_push(hub, reg, repo, latest)
        return figures | {"builds_failed": 1, "builds_refused": 1, "recovered": 1}
    finally:
        hub.stop()
        # the engine keeps what it pushed: every reference to this run's registry
        listed = docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
        remove_images([r for r in listed if r.startswith(reg.host + "/")], check=False)


def measure(workdir: Path) -> dict[str, Any]:
    """Run the whole fault; the figures (assertions fail on wrong behaviour)."""
    require(check_docker)
    require(check_base_image)
    reg = start_registry(workdir / "registry")
    try:
        with git_server(workdir / "git") as git:
            return run(workdir, reg, git)
    finally:
        reg.close()


def test_registry_down_idle_and_mid_push(tmp_path: Path) -> None:
    measure(tmp_path)


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(prefix="fault-registry-") as tmp:
        print_figures("the registry stopped idle and mid-push", measure(Path(tmp)))
    sys.exit(0)
