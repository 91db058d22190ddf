"""Session-scoped fixtures for the real parts (see tests/realparts.py).

A missing part never skips a test: the fixture fails with a message naming
``bash scripts/setup.sh``, the command that provides it.
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from tests.hub.hubrig import start_hub
from tests.realparts import (
    OFFLINE_CONFIG,
    DockerEngine,
    GitHTTPServer,
    RealPartMissing,
    check_base_image,
    check_docker,
    check_offline_config,
    check_registry,
)

T = TypeVar("T")


def require(check: Callable[..., T], *args: object, **kwargs: object) -> T:
    """Return ``check(...)``; turn :class:`RealPartMissing` into a test failure (never a skip)."""
    try:
        return check(*args, **kwargs)
    except RealPartMissing as e:
        message = str(e)
    pytest.fail(message, pytrace=False)


@pytest.fixture(scope="session")
def docker_engine() -> DockerEngine:
    """The Docker engine (``docker info`` answers, buildx installed).

    Returns a :class:`tests.realparts.DockerEngine`: ``host``, ``server_version``,
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
    server = require(GitHTTPServer(tmp_path_factory.mktemp("git-http")).start)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def repo2docker_config() -> Path:
    """Path of repo2docker_service/repo2docker_offline_config.py (for ``repo2docker --config``)."""
    return require(check_offline_config)


HUB_RATE_LIMIT = 150  # build requests per user per minute in the test hub
HUB_WEBHOOK_SECRET = "hub-webhook-" + secrets.token_hex(8)


@pytest.fixture(scope="session")
def hub(tmp_path_factory):
    """A real JupyterHub + proxy managing repo2docker-service (fails, never skips)."""
    try:
        h = start_hub(
            tmp_path_factory.mktemp("hub"),
            service_config=(
                'c.Repo2DockerService.allowed_repo_schemes = ["http", "https"]\n'
                f"c.Repo2DockerService.repo2docker_config = {str(OFFLINE_CONFIG)!r}\n"
                f"c.Repo2DockerService.image_prefix = 'r2dhub-{secrets.token_hex(3)}-'\n"
                f"c.Repo2DockerService.build_rate_limit = {HUB_RATE_LIMIT}\n"
                f"c.Repo2DockerService.webhook_secret = {HUB_WEBHOOK_SECRET!r}\n"
            ),
        )
    except RuntimeError as e:
        pytest.fail(f"Could not start JupyterHub: {e}")
    yield h
    h.stop()


# ---------------------------------------------------------------- browser (one per session)
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


def chromium_path() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    pytest.fail("Debian's chromium is not installed: run `bash scripts/setup.sh`")


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=chromium_path(),
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context()
    pg = context.new_page()
    yield pg
    context.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


def pytest_collection_modifyitems(config, items):
    """Run browser tests last.

    Playwright's sync API keeps an event loop running in the main thread while a browser
    is open, which would break every asyncio test that runs after it in the session.
    """
    items.sort(key=lambda item: "browser" in getattr(item, "fixturenames", ()))
