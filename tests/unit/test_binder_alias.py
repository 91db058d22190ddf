"""The ``binder`` alias: the hub's service entries and the service's second prefix.

The hub side is checked on JupyterHub's own config object (``JupyterHub(config=c)`` loads the
entries as the hub does); tests/hub/test_binder.py drives a real hub with the alias.
"""

import pytest
from jupyterhub.app import JupyterHub
from traitlets.config import Config

from repo2docker_service.app import Repo2DockerService
from repo2docker_service.hub.config import BINDER_PREFIX_ENV, add_binder_alias, register_service


def services(c: Config) -> dict[str, dict]:
    return {s["name"]: s for s in JupyterHub(config=c).services}


def test_managed_service_with_alias():
    c = Config()
    register_service(c, port=8600, binder_alias=True)
    found = services(c)
    assert found["binder"] == {"name": "binder", "url": "http://127.0.0.1:8600"}
    assert found["repo2docker"]["environment"][BINDER_PREFIX_ENV] == "/services/binder/"


def test_external_service_with_alias():
    """An external service is told its prefix in its own config (the docs say so)."""
    c = Config()
    register_service(c, url="http://r2d:8585", api_token="t" * 32, binder_alias=True)
    found = services(c)
    assert found["binder"] == {"name": "binder", "url": "http://r2d:8585"}
    assert "environment" not in found["repo2docker"]


def test_no_alias_by_default():
    c = Config()
    register_service(c)
    assert set(services(c)) == {"repo2docker"}


def test_add_binder_alias_returns_the_prefix_to_serve():
    c = Config()
    assert add_binder_alias(c, url="http://127.0.0.1:1", name="builds") == "/services/builds/"
    assert services(c)["builds"]["url"] == "http://127.0.0.1:1"


@pytest.mark.parametrize(
    ("value", "prefix"),
    [
        ("/services/binder/", "/services/binder/"),
        ("services/binder", "/services/binder/"),
        ("/services/binder", "/services/binder/"),
        ("", ""),
        ("/", ""),
    ],
)
def test_service_binder_prefix(monkeypatch, tmp_path, value, prefix):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("REPO2DOCKER_SERVICE_CONFIG", raising=False)
    monkeypatch.setenv(BINDER_PREFIX_ENV, value)
    Repo2DockerService.clear_instance()
    try:
        app = Repo2DockerService()
        app.initialize([])
        assert app.binder_prefix == prefix
    finally:
        Repo2DockerService.clear_instance()


def test_gitlab_host_must_be_a_url(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    Repo2DockerService.clear_instance()
    try:
        app = Repo2DockerService()
        with pytest.raises(ValueError, match="binder_gitlab_host"):
            app.binder_gitlab_host = "gitlab.example.org"
        app.binder_gitlab_host = "https://gitlab.example.org/"
        assert app.binder_gitlab_host == "https://gitlab.example.org"
    finally:
        Repo2DockerService.clear_instance()
