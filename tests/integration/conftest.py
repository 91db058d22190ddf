"""Session fixtures of the registry-mode, builder-container and remote-engine tests.

Like the fixtures in ``tests/conftest.py`` they start real parts (from ``tests/rig``) and fail
(never skip) when a part is missing, naming what to install.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from tests.rig.engine import DockerEngine, ensure_builder_image
from tests.rig.parts import require
from tests.rig.registry import RegistryInstance, start_registry
from tests.rig.remote_engine import RemoteEngine


@pytest.fixture(scope="session")
def own_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryInstance]:
    """A registry without auth on its own loopback port that tests may stop and start
    (``reg.stop()`` / ``reg.start()``: same port, same storage)."""
    reg = require(start_registry, tmp_path_factory.mktemp("own-registry"))
    yield reg
    reg.close()


@pytest.fixture(scope="session")
def htpasswd_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryInstance]:
    """A registry with htpasswd (basic) auth: ``reg.username`` / ``reg.password``."""
    reg = require(
        start_registry,
        tmp_path_factory.mktemp("htpasswd-registry"),
        auth="htpasswd",
        username="r2ds-pusher",
        password="htpw-" + secrets.token_hex(8),
    )
    yield reg
    reg.close()


@pytest.fixture(scope="session")
def token_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryInstance]:
    """A registry with token auth; the token server (``reg.token_server``) runs in-process."""
    reg = require(
        start_registry,
        tmp_path_factory.mktemp("token-registry"),
        auth="token",
        username="r2ds-token-user",
        password="tokpw-" + secrets.token_hex(8),
    )
    yield reg
    reg.close()


@pytest.fixture(scope="session")
def builder_image(docker_engine: DockerEngine, base_image: str) -> str:
    """The repo2docker builder image for the DockerExecutor (built once per machine)."""
    return require(ensure_builder_image, base=base_image)


@pytest.fixture(scope="session")
def remote_engine(docker_engine: DockerEngine, base_image: str) -> Iterator[RemoteEngine]:
    """A second dockerd on tcp://127.0.0.1:<port> holding a copy of the base image."""
    engine = RemoteEngine()
    try:
        engine.start()
        engine.load(base_image)
    except RuntimeError as e:
        engine.stop()
        pytest.fail(f"Could not start the second Docker engine: {e}")
    yield engine
    engine.stop()
