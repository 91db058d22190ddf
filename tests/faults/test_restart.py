"""Fault 1: the service killed (SIGKILL) or stopped (SIGTERM) mid-build, then started again.

A real hub and proxy stay up; the service is a process of the test's own
(:mod:`tests.rig.ownservice`). A viewer follows a 120-line build through the proxy, the
service gets the signal after line 40, starts again, and the viewer resumes with
``Last-Event-ID``. A table of variants: SIGTERM/SIGKILL x local executor/builder container x
the viewer resumes while the build still runs ("before") or after it ended ("after"; with
the builder container the service also stays down until the builder container exited).

- local executor (with ``db_url``: a SQLite file): the build is reported ``lost``
  (SIGTERM: to the open stream before it closes; SIGKILL: to the resumed stream, numbered
  after the viewer's ``Last-Event-ID``) and listed as lost after the restart; no
  half-built image is listed. (Without ``db_url`` a build killed with the service leaves
  no trace once repo2docker dies of the broken pipe: after the restart it is unknown.)
- builder container: no stream hears of a state the build is not in (SIGTERM used to say
  "cancelled: the service is shutting down" and ``done`` while the build went on); the
  restarted service adopts the build, the resumed stream has every line exactly once
  (ids stay the same across the adoption) and ends with ``done`` as ``built``;
- in both: the image list after equals the list before (plus the build's image when built).

Run alone for the table of figures: ``python -m tests.faults.test_restart``.
"""

from __future__ import annotations

import re
import signal
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.rig.api import request
from tests.rig.engine import (
    check_base_image,
    check_docker,
    docker,
    ensure_builder_image,
    local_images,
    remove_images,
)
from tests.rig.git import GitHTTPServer, start_git_http
from tests.rig.hub import Hub
from tests.rig.net import loopback_env
from tests.rig.ownservice import OwnService, SSEViewer, start_hub_with_service
from tests.rig.parts import OFFLINE_CONFIG, require
from tests.rig.repos import dockerfile, unique
from tests.rig.wait import wait_until

pytestmark = [pytest.mark.docker, pytest.mark.hub]

LINES = 120
KILL_AFTER = 40  # the signal comes once the viewer has this line
LINE = re.compile(r"\bline-(\d+)\b")
VARIANTS = [
    (sig, executor, resume)
    for sig in ("SIGTERM", "SIGKILL")
    for executor in ("local", "builder")
    for resume in ("before", "after")
]


@dataclass
class Rig:
    hub: Hub
    service: OwnService
    git: GitHTTPServer
    base_image: str
    builder_image: str
    prefix: str

    def configure(self, executor: str) -> None:
        """Write the service's config for ``executor`` (read at its next start)."""
        lines = [
            'c.Repo2DockerService.allowed_repo_schemes = ["http"]',
            f"c.Executor.repo2docker_config = {str(OFFLINE_CONFIG)!r}",
            f"c.Repo2DockerService.image_prefix = {self.prefix!r}",
            "c.Executor.kill_grace_period = 2",
        ]
        if executor == "local":
            # the local executor's build leaves no trace but its record: repo2docker dies
            # of the broken pipe once the killed service stops reading its output
            db = self.service.workdir / "history.db"
            lines.append(f"c.BuildHistory.db_url = {f'sqlite:///{db}'!r}")
        if executor == "builder":
            no_proxy = {k: v for k, v in loopback_env().items() if k.lower() == "no_proxy"}
            lines += [
                "from repo2docker_service.builds.executors import DockerExecutor",
                "c.Repo2DockerService.executor_class = DockerExecutor",
                f"c.DockerExecutor.builder_image = {self.builder_image!r}",
                f"c.DockerExecutor.builder_env = {no_proxy!r}",
            ]
        self.service.config.write_text("\n".join(lines) + "\n")

    def api(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        return request(
            method, self.hub.service_url + path, token=self.hub.token_for("alice"), body=body
        )

    def images(self) -> set[str]:
        """The listed environments as ``"image (tags t1,t2)"``."""
        status, body = self.api("GET", "api/images")
        assert status == 200, body
        return {f"{i['image']} (tags {','.join(sorted(i['tags']))})" for i in body["images"]}


def start_rig(workdir: Path) -> Rig:
    """The parts: engine, base and builder images, git server, hub, the service (local)."""
    require(check_docker)
    base = require(check_base_image)
    builder = require(ensure_builder_image, base=base)
    git = require(start_git_http, workdir / "git")
    prefix = f"r2dfault{uuid.uuid4().hex[:6]}-"
    rig = Rig(None, None, git, base, builder, prefix)  # type: ignore[arg-type]
    hub, service = start_hub_with_service(workdir / "hub", service_config="")
    rig.hub, rig.service = hub, service
    rig.service.kill(signal.SIGTERM)
    return rig


def stop_rig(rig: Rig) -> None:
    if rig.service.proc is not None:
        rig.service.kill(signal.SIGTERM)
    rig.hub.stop()
    rig.git.stop()
    remove_images(local_images(rig.prefix), check=False)
    listed = docker(
        "ps",
        "-a",
        "--filter",
        "label=repo2docker-service.builder=true",
        "--format",
        '{{.ID}} {{.Label "repo2docker-service.image"}}',
    ).stdout.split("\n")
    ids = [line.split()[0] for line in listed if f" {rig.prefix}" in line]
    if ids:
        docker("rm", "-f", *ids, check=False)


def builders_running(build_id: str) -> list[str]:
    """Ids of running builder containers of ``build_id``."""
    out = docker("ps", "-q", "--filter", f"label=repo2docker-service.build-id={build_id}")
    return out.stdout.split()


def line_numbers(events: list[dict[str, Any]]) -> list[int]:
    """The ``line-N`` numbers of the log events, in the order received."""
    found = []
    for event in events:
        if event["event"] == "log":
            match = LINE.search(str(event["data"].get("message", "")))
            if match and "echo" not in event["data"]["message"]:
                found.append(int(match.group(1)))
    return found


def run_variant(rig: Rig, sig: str, executor: str, resume: str) -> dict[str, Any]:
    """One variant of the table; returns what happened (asserted by the caller)."""
    rig.configure(executor)
    rig.service.start()
    before = rig.images()
    repo = rig.git.create_repo(
        unique(f"fault1/{executor}"),
        dockerfile(
            rig.base_image,
            f"RUN for i in $(seq 1 {LINES}); do echo line-$i; sleep 0.1; done",
            fresh=True,
        ),
    )
    name = unique("lines")
    status, body = rig.api("POST", "api/builds", {"repo": repo, "ref": "main", "name": name})
    assert status == 202, body
    build_id = body["build"]["id"]
    viewer = SSEViewer(rig.hub, rig.hub.token_for("alice"), build_id)
    viewer.follow()
    wait_until(
        lambda: KILL_AFTER in line_numbers(viewer.events), timeout=240, what=f"line-{KILL_AFTER}"
    )
    rig.service.kill(getattr(signal, sig))
    if resume == "after" and executor == "builder":
        wait_until(lambda: not builders_running(build_id), timeout=240, what="the builder")
    restarted = time.monotonic()
    rig.service.start()  # at once, as by hand (the hub would take up to its poll interval)
    viewer.join(60)  # the first connection has ended with the service (or gone quiet)
    first = list(viewer.events)
    if resume == "after":

        def ended() -> bool:
            status, record = rig.api("GET", f"api/builds/{build_id}")
            return status == 404 or record.get("state") in ("built", "failed", "cancelled", "lost")

        wait_until(ended, timeout=240, what="the build's end")
    record = rig.api("GET", f"api/builds/{build_id}")
    resumed_at = None
    if not any(e["event"] == "done" for e in first) and record[0] == 200:
        viewer.follow()
        viewer.join(240)
        later = viewer.events[len(first) :]
        resumed_at = later[0]["at"] - restarted if later else None
    status, record = rig.api("GET", f"api/builds/{build_id}")
    status_log, log = rig.api("GET", f"api/builds/{build_id}/logs")
    after = rig.images()
    rig.service.kill(signal.SIGTERM)
    return {
        "first": first,
        "events": viewer.events,
        "connections": viewer.connections,
        "record": record if status == 200 else None,
        "log": log if status_log == 200 else "",
        "before": before,
        "after": after,
        "resumed_s": resumed_at,
    }


def check_variant(sig: str, executor: str, resume: str, got: dict[str, Any]) -> dict[str, Any]:
    """Assert what the variant must show; return its figures."""
    events, first = got["events"], got["first"]
    ids = [e["id"] for e in events if e["id"] is not None]
    assert ids == sorted(set(ids)), f"event ids repeat or go back: {ids}"
    dones = [e for e in events if e["event"] == "done"]
    assert len(dones) == 1, f"one done event, at the end: {[e['event'] for e in events]}"
    final = dones[0]["data"]
    if got["record"] is not None:
        assert final["state"] == got["record"]["state"], "the stream said what the build is"
    if sig == "SIGTERM":
        # a stopping service ends its streams itself, and cleanly (no read timeout)
        assert got["connections"][0] == "closed", got["connections"]
    numbers = line_numbers(events)
    missing = sorted(set(range(1, LINES + 1)) - set(numbers))
    repeated = len(numbers) - len(set(numbers))
    if executor == "local":
        assert final["state"] == "lost", final
        assert got["record"] is not None and got["record"]["state"] == "lost"
        assert got["after"] == got["before"], "no half-built image is listed"
    else:
        # no stream may report a state the build is not in
        states = [e["data"].get("phase") for e in first if e["event"] == "phase"]
        assert not {"cancelled", "failed", "lost"} & set(states), states
        assert not [e for e in first if e["event"] == "done"], "no done before the end"
        if sig == "SIGTERM":
            notes = [e for e in first if e["id"] is None]
            assert notes and "restarting" in notes[-1]["data"]["message"], first[-2:]
        assert final["state"] == "built", final
        assert missing == [] and repeated == 0, (missing, repeated)
        assert numbers == sorted(numbers), "lines in order"
        new = got["after"] - got["before"]
        assert got["before"] <= got["after"] and len(new) == 1, (got["before"], got["after"])
        assert new.pop().startswith(final["image"] + " "), "only the build's image is new"
    return {
        "variant": f"{sig} {executor} {resume}",
        "state": final["state"],
        "missing": len(missing) if executor == "builder" else "-",
        "repeated": repeated,
        "resumed_s": got["resumed_s"],
    }


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    made = start_rig(tmp_path_factory.mktemp("fault1"))
    yield made
    stop_rig(made)


@pytest.mark.parametrize(("sig", "executor", "resume"), VARIANTS)
def test_restart_mid_build(rig: Rig, sig: str, executor: str, resume: str) -> None:
    got = run_variant(rig, sig, executor, resume)
    check_variant(sig, executor, resume, got)


def main() -> None:
    """Run every variant and print the table (figures for benchmarks/README.md)."""
    with tempfile.TemporaryDirectory() as tmp:
        made = start_rig(Path(tmp))
        rows = []
        try:
            for variant in VARIANTS:
                rows.append(check_variant(*variant, run_variant(made, *variant)))
                print(rows[-1], flush=True)
        finally:
            stop_rig(made)
    print("| variant | ended as | lines missing | lines repeated | resumed after restart |")
    print("|---|---|---|---|---|")
    for row in rows:
        took = "-" if row["resumed_s"] is None else f"{row['resumed_s']:.1f} s"
        print(
            f"| {row['variant']} | {row['state']} | {row['missing']} | {row['repeated']} | {took} |"
        )


if __name__ == "__main__":
    main()
