"""deploy/z2jh/values.yaml through zero-to-jupyterhub's own hub config, without a cluster.

The chart's ``files/hub/jupyterhub_config.py`` and ``z2jh.py`` (from the chart's git mirror;
skipped, naming it, without) are loaded by a real ``JupyterHub`` application, reading the
values from a Secret and ConfigMap laid out as the chart mounts them
(tests/rig/z2jh.py:lay_out_hub_pod says what is written by hand in place of Helm). The
config runs every part of the chart's config that needs no cluster, then this project's
``hub.extraConfig``; the result configures a real KubeSpawner (dummy kube config) whose
profile list asks the fake service of tests/rig/fake_service.py.

Not run: Helm's template rendering (no helm binary in any registry here), so resource names
and generated secrets are the test's; the Kubernetes API (KubeSpawner starts no pod);
``hub.db`` other than the default sqlite-pvc.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from jupyterhub.app import JupyterHub
from kubespawner import KubeSpawner
from tornado.httpclient import AsyncHTTPClient

from tests.rig.fake_service import TOKEN, User
from tests.rig.z2jh import SERVICE_ENV, lay_out_hub_pod

pytestmark = pytest.mark.usefixtures("kubeconfig")

VALUES = Path(__file__).resolve().parents[2] / "deploy" / "z2jh" / "values.yaml"
SECRETS = {
    "hub.services.repo2docker.apiToken": "service-token",
    "hub.services.repo2docker-spawner.apiToken": TOKEN,
    "hub.config.JupyterHub.cookie_secret": "ab" * 32,
    "hub.config.CryptKeeper.keys": "cd" * 32,
    "hub.config.ConfigurableHTTPProxy.auth_token": "proxy-token",
}


def load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, service_url: str) -> JupyterHub:
    """A JupyterHub app with the chart's config loaded; the hub pod's environment is
    hub.extraEnv plus Kubernetes' service variables, the service's URL the fake one."""
    pytest.importorskip(
        "pycurl", reason="the chart's config needs pycurl (z2jh's hub image has it)"
    )
    values: dict[str, Any] = yaml.safe_load(VALUES.read_text())
    config = lay_out_hub_pod(tmp_path, values, SECRETS)
    for key, value in {**values["hub"]["extraEnv"], **SERVICE_ENV}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("REPO2DOCKER_SERVICE_URL", service_url)
    monkeypatch.setenv("POD_NAMESPACE", "jupyterhub")
    # the chart's config puts its directory on sys.path, imports z2jh and switches tornado
    # to the curl client for the whole process: undone afterwards
    monkeypatch.setattr(sys, "path", list(sys.path))
    saved = AsyncHTTPClient._save_configuration()
    app = JupyterHub()
    try:
        app.load_config_file(str(config))
    finally:
        AsyncHTTPClient._restore_configuration(saved)
        sys.modules.pop("z2jh", None)
    return app


async def test_the_charts_hub_config_runs_the_values(tmp_path, monkeypatch, service):
    app = load(tmp_path, monkeypatch, service["url"])
    # the chart's own settings, from the merged values
    assert app.spawner_class is KubeSpawner
    assert app.hub_connect_url == "http://hub:8081"
    assert app.config.ConfigurableHTTPProxy.api_url == "http://proxy-api:8001"
    assert app.cookie_secret == bytes.fromhex("ab" * 32)
    assert app.allow_named_servers is True  # hub.allowNamedServers
    assert app.config.KubeSpawner.uid == 1000  # singleuser.uid
    # hub.services with the Secret's tokens, hub.loadRoles, hub.config
    services = {s["name"]: s for s in app.services}
    assert services["repo2docker"]["url"] == "http://repo2docker-service:8585"
    assert services["repo2docker"]["api_token"] == "service-token"
    assert services["repo2docker-spawner"]["api_token"] == TOKEN
    roles = {r["name"]: r for r in app.load_roles}
    assert roles["repo2docker-builder"]["groups"] == ["repo2docker-builders"]
    # hub.extraConfig ran after them, with the chart's get_secret_value
    assert roles["repo2docker-spawner"]["services"] == ["repo2docker-spawner"]
    assert {"view", "build", "admin", "spawn"} == {s.rsplit(":", 1)[1] for s in app.custom_scopes}
    assert app.config.Repo2DockerMixin.service_token == TOKEN
    assert app.config.Repo2DockerMixin.service_url == service["url"]

    spawner = KubeSpawner(_mock=True, config=app.config, user=User("alice"))
    assert spawner.uid == 1000
    assert spawner.cmd is None  # singleuser.cmd: null, so the image's own CMD
    spawner.user_options = {"profile": "shared--course"}
    await spawner.load_user_options()
    assert spawner.image == "r2d-shared/course:aaaaaaaaaaaa"
    assert service["requests"][-1]["auth"] == f"token {TOKEN}"
