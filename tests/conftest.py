"""Session-scoped fixtures for the real parts (the helpers live in ``tests/rig``).

A missing part never skips a test: the fixture fails with a message naming
``bash scripts/setup.sh``, the command that provides it.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.rig.browser import ARTIFACTS, launch_chromium
from tests.rig.engine import DockerEngine, check_base_image, check_docker
from tests.rig.git import GitHTTPServer, start_git_http
from tests.rig.hub import (
    BINDER_ALIAS_CONFIG,
    BINDER_ALIAS_ENV,
    HUB_RATE_LIMIT,
    HUB_WEBHOOK_SECRET,
    Hub,
    start_hub,
)
from tests.rig.parts import OFFLINE_CONFIG, check_offline_config, require
from tests.rig.registry import check_registry


@pytest.fixture(scope="session")
def docker_engine() -> DockerEngine:
    """The Docker engine (``docker info`` answers, buildx installed).

    Returns a :class:`tests.rig.engine.DockerEngine`: ``host``, ``server_version``,
    ``api_version``, ``client_version``, ``buildx_version`` and ``env`` (``{"DOCKER_HOST": ...}``
    to merge into a subprocess environment).
    """
    return require(check_docker)


@pytest.fixture(scope="session")
def registry() -> str:
    """``"127.0.0.1:5000"``: the registry started by setup.sh, verified to answer ``/v2/``."""
    return require(check_registry)


@pytest.fixture(scope="session")
def base_image(docker_engine: DockerEngine) -> str:
    """``"local/debian:bookworm"``, verified to exist in the engine."""
    return require(check_base_image, engine=docker_engine)


@pytest.fixture(scope="session")
def git_http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitHTTPServer]:
    """A smart-HTTP git server on 127.0.0.1 (random port) for the whole session.

    API: ``create_repo(name, files, branch="main", *, auth=None) -> url``,
    ``commit(name, files, message=...) -> sha``, ``tag(name, tag, sha=None, *, message=None)
    -> sha``, ``head(name) -> sha``, ``url(name)``, ``repo(name)``, ``requests``, ``base_url``.
    Repository names must be unique within the session.
    """
    server = require(start_git_http, tmp_path_factory.mktemp("git-http"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def repo2docker_config() -> Path:
    """Path of repo2docker_service/repo2docker_offline_config.py (for ``repo2docker --config``)."""
    return require(check_offline_config)


@pytest.fixture(scope="session")
def hub(tmp_path_factory: pytest.TempPathFactory, git_http: GitHTTPServer) -> Iterator[Hub]:
    """A real JupyterHub + proxy managing repo2docker-service (fails, never skips).

    Build rate limit :data:`~tests.rig.hub.HUB_RATE_LIMIT`, webhook secret
    :data:`~tests.rig.hub.HUB_WEBHOOK_SECRET`; ``localhost`` is a case-insensitive host.
    The session's git server is the GitHub of launch links and BinderHub's ``gh`` provider;
    the service is also reachable as ``/services/binder/`` (BinderHub's build API,
    ``add_binder_alias``).
    """
    try:
        h = start_hub(
            tmp_path_factory.mktemp("hub"),
            service_config=(
                'c.Repo2DockerService.allowed_repo_schemes = ["http", "https"]\n'
                f"c.Executor.repo2docker_config = {str(OFFLINE_CONFIG)!r}\n"
                f"c.Repo2DockerService.image_prefix = 'r2dhub-{secrets.token_hex(3)}-'\n"
                f"c.Repo2DockerService.build_rate_limit = {HUB_RATE_LIMIT}\n"
                f"c.Repo2DockerService.webhook_secret = {HUB_WEBHOOK_SECRET!r}\n"
                # the git server answers as localhost too: treat it as a case-insensitive
                # forge there (tests/hub/test_wild_inputs.py), 127.0.0.1 stays case-sensitive
                'c.Repo2DockerService.case_insensitive_repo_hosts = ["github.com", "localhost"]\n'
                f"c.Repo2DockerService.launch_git_host = {git_http.base_url!r}\n"
                f"c.Repo2DockerService.binder_gitlab_host = {git_http.base_url!r}\n"
            ),
            # plus the documented opt-in: an "Environments" link in the hub's navbar and pages
            extra_config=BINDER_ALIAS_CONFIG
            + "from repo2docker_service.hub.config import add_navbar_link\nadd_navbar_link(c)\n",
            env=BINDER_ALIAS_ENV,
        )
    except RuntimeError as e:
        pytest.fail(f"Could not start JupyterHub: {e}")
    yield h
    h.stop()


# ---------------------------------------------------------------- browser (one per session)
@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Debian's Chromium through Playwright, one per session."""
    with sync_playwright() as p:
        b = require(launch_chromium, p)
        yield b
        b.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh page in a fresh browser context (no cookies from other tests)."""
    context = browser.new_context()
    pg = context.new_page()
    yield pg
    context.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """The directory for screenshots (``test-artifacts/``, created)."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run browser tests last.

    Playwright's sync API keeps an event loop running in the main thread while a browser
    is open, which would break every asyncio test that runs after it in the session.
    """
    items.sort(key=lambda item: "browser" in getattr(item, "fixturenames", ()))
