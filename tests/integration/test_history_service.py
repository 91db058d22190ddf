"""``c.BuildHistory.db_url`` through the whole service: history and logs survive a restart.

The service (a process of the test's own behind a real hub, :mod:`tests.rig.ownservice`)
keeps its history in a SQLite file. A build is built, the service is stopped and started:
the build, its state and its log answer as before. Dismissed, it stays gone after the next
restart. Without ``db_url`` (the default) the same build is unknown after a restart.
"""

from __future__ import annotations

import signal
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.rig.api import follow_build, request
from tests.rig.engine import local_images, remove_images
from tests.rig.hub import Hub
from tests.rig.ownservice import OwnService, start_hub_with_service
from tests.rig.parts import OFFLINE_CONFIG
from tests.rig.repos import dockerfile, unique

pytestmark = [pytest.mark.docker, pytest.mark.hub]

PREFIX = f"r2dhist{uuid.uuid4().hex[:6]}-"


def config(db: Path | None) -> str:
    lines = [
        'c.Repo2DockerService.allowed_repo_schemes = ["http"]',
        f"c.Executor.repo2docker_config = {str(OFFLINE_CONFIG)!r}",
        f"c.Repo2DockerService.image_prefix = {PREFIX!r}",
    ]
    if db is not None:
        lines.append(f"c.BuildHistory.db_url = {f'sqlite:///{db}'!r}")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def parts(
    tmp_path_factory: pytest.TempPathFactory, docker_engine: Any, base_image: str
) -> Iterator[tuple[Hub, OwnService, Path]]:
    workdir = tmp_path_factory.mktemp("history")
    db = workdir / "history.db"
    hub, service = start_hub_with_service(workdir / "hub", service_config=config(db))
    yield hub, service, db
    if service.proc is not None and service.proc.poll() is None:
        service.kill(signal.SIGTERM)
    hub.stop()
    remove_images(local_images(PREFIX), check=False)


def restart(service: OwnService, text: str) -> None:
    service.kill(signal.SIGTERM)
    service.config.write_text(text)
    service.start()


def test_history_and_log_survive_a_restart(parts, git_http, base_image):
    hub, service, db = parts
    token = hub.token_for("alice")

    def api(method: str, path: str, body: Any = None) -> tuple[int, Any]:
        return request(method, hub.service_url + path, token=token, body=body)

    repo = git_http.create_repo(
        unique("history/kept"), dockerfile(base_image, "RUN echo kept-line-1 && echo kept-line-2")
    )
    status, body = api("POST", "api/builds", {"repo": repo, "name": unique("kept")})
    assert status == 202, body
    build_id = body["build"]["id"]
    assert follow_build(hub, build_id, "alice")["state"] == "built"
    before = api("GET", f"api/builds/{build_id}")[1]
    log = api("GET", f"api/builds/{build_id}/logs")[1]
    assert "kept-line-2" in log

    restart(service, config(db))
    assert api("GET", f"api/builds/{build_id}") == (200, before)
    assert api("GET", f"api/builds/{build_id}/logs") == (200, log)
    listed = api("GET", "api/builds")[1]["builds"]
    assert build_id in [b["id"] for b in listed]

    assert api("POST", f"api/builds/{build_id}/dismiss")[0] == 204
    restart(service, config(db))
    assert api("GET", f"api/builds/{build_id}")[0] == 404, "a dismissed build stays gone"

    # the default: no database, nothing kept across a restart
    status, body = api("POST", "api/builds", {"repo": repo, "name": unique("again"), "force": True})
    assert status == 202, body
    other = body["build"]["id"]
    follow_build(hub, other, "alice")
    restart(service, config(None))
    assert api("GET", f"api/builds/{other}")[0] == 404
