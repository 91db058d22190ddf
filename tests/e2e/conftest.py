"""End-to-end fixtures: a second real hub whose spawner is the service's DockerSpawner helper.

The hub (JupyterHub + configurable-http-proxy + the service, all on 127.0.0.1) starts
spawned servers with DockerSpawner on the host network (see ``tests/rig/spawn.py``). The
bundled example (examples/hello, with jupyterhub-singleuser) is built once per session through
the service's API as alice; the slow part (pip installing JupyterHub and JupyterLab, about
70 s) is cached by Docker's build cache afterwards, so later sessions and the launch tests take
seconds.

Everything these tests create is named with a random prefix and removed at the end.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.rig.api import build
from tests.rig.engine import DockerEngine
from tests.rig.git import GitHTTPServer, files_from_dir
from tests.rig.hub import Hub, start_hub
from tests.rig.parts import EXAMPLES_DIR, OFFLINE_CONFIG
from tests.rig.spawn import (
    RUN,
    SPAWNER_CONFIG,
    cleanup_docker,
    e2e_service_config,
    stop_all_servers,
)


@pytest.fixture(scope="session")
def e2e_git(git_http: GitHTTPServer) -> tuple[GitHTTPServer, str]:
    """The git server, with the bundled example as ``e2e-<run>/hello``."""
    url = git_http.create_repo(f"e2e-{RUN}/hello", files_from_dir(EXAMPLES_DIR / "hello"))
    return git_http, url


@pytest.fixture(scope="session")
def e2e_hub(
    tmp_path_factory: pytest.TempPathFactory,
    docker_engine: DockerEngine,
    base_image: str,
    git_http: GitHTTPServer,
) -> Iterator[Hub]:
    """A hub with Repo2DockerHostSpawner; the service builds with the offline config."""
    try:
        hub = start_hub(
            tmp_path_factory.mktemp("e2e-hub"),
            service_config=e2e_service_config(OFFLINE_CONFIG, git_http.base_url),
            extra_config=SPAWNER_CONFIG,
            env=docker_engine.env,
        )
    except RuntimeError as e:
        pytest.fail(f"Could not start JupyterHub for the e2e tests: {e}")
    try:
        yield hub
    finally:
        stop_all_servers(hub)
        hub.stop()
        cleanup_docker()


@pytest.fixture(scope="session")
def hello_image(e2e_hub: Hub, e2e_git: tuple[GitHTTPServer, str]) -> dict[str, Any]:
    """alice's build of the bundled example (jupyterhub-singleuser), built once per session."""
    _, url = e2e_git
    start = time.monotonic()
    image = build(e2e_hub, "alice", repo=url, name="hello", display_name="Hello example")
    print(f"\n[e2e] example image {image['image']} ready in {time.monotonic() - start:.1f} s")
    return image
