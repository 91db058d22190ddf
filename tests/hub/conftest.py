import pytest

from .hubrig import start_hub


@pytest.fixture(scope="session")
def hub(tmp_path_factory):
    """A real JupyterHub + proxy managing repo2docker-service (fails, never skips)."""
    try:
        h = start_hub(
            tmp_path_factory.mktemp("hub"),
            service_config='c.Repo2DockerService.allowed_repo_schemes = ["http", "https"]\n',
        )
    except RuntimeError as e:
        pytest.fail(f"Could not start JupyterHub: {e}")
    yield h
    h.stop()
