"""Fixtures of the spawner unit tests (``test_spawner*.py``): a fake service, a kube config."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.rig.fake_service import start_fake_images, use_kubeconfig


@pytest.fixture(scope="module")
async def service() -> AsyncIterator[dict[str, Any]]:
    """The fake images endpoint: ``service["url"]``, ``service["requests"]``."""
    state, server = start_fake_images()
    yield state
    server.stop()


@pytest.fixture(scope="module")
def kubeconfig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """KubeSpawner reads a kube config when it is created; it never calls the API here."""
    mp = pytest.MonkeyPatch()
    path = tmp_path_factory.mktemp("kube") / "config"
    use_kubeconfig(path, mp)
    yield path
    mp.undo()
