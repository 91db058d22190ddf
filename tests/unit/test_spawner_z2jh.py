"""deploy/z2jh/values.yaml, checked offline.

The chart's jupyterhub_config.py turns ``hub.services``, ``hub.loadRoles`` and ``hub.config``
into traitlets config and then ``exec``s each ``hub.extraConfig`` entry with its helpers
(``get_config``, ``get_secret_value``) in scope. This test does the same with a stub ``c``,
loads the result into a real JupyterHub app and a real KubeSpawner, and asks the profile_list
callable for a user against the fake service of tests/rig/fake_service.py.

tests/unit/test_z2jh_values.py validates the values against the chart's values.schema.yaml;
tests/unit/test_z2jh_hub_config.py runs them through the chart's own jupyterhub_config.py
(from its mirror). This one needs no mirror.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from jupyterhub.app import JupyterHub
from kubespawner import KubeSpawner
from traitlets.config import Config

from tests.rig.fake_service import TOKEN, User

# KubeSpawner reads a kube config when it is created (the fixture is in conftest.py)
pytestmark = pytest.mark.usefixtures("kubeconfig")

VALUES = Path(__file__).resolve().parents[2] / "deploy" / "z2jh" / "values.yaml"


def z2jh_config(values: dict, secrets: dict) -> Config:
    """What the chart's jupyterhub_config.py does with these values (the relevant parts)."""
    c = Config()
    c.JupyterHub.spawner_class = "kubespawner.KubeSpawner"
    c.JupyterHub.services = []
    c.JupyterHub.load_roles = []
    hub = copy.deepcopy(values["hub"])

    def get_config(key, default=None):
        node = values
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        return copy.deepcopy(node)

    def get_secret_value(key, default="never-explicitly-set"):
        return secrets.get(key, default)

    for key, svc in hub.get("services", {}).items():
        svc.setdefault("name", key)
        svc.pop("apiToken", None)
        svc["api_token"] = get_secret_value(f"hub.services.{key}.apiToken")
        c.JupyterHub.services.append(svc)
    for key, role in hub.get("loadRoles", {}).items():
        role.setdefault("name", key)
        c.JupyterHub.load_roles.append(role)
    if hub.get("allowNamedServers"):
        c.JupyterHub.allow_named_servers = True
    for section, cfg in hub.get("config", {}).items():
        c[section].update(cfg)
    namespace = {"c": c, "get_config": get_config, "get_secret_value": get_secret_value}
    for _, code in sorted(hub.get("extraConfig", {}).items()):
        exec(compile(code, "hub.extraConfig", "exec"), namespace)
    return c


def load():
    values = yaml.safe_load(VALUES.read_text())
    secrets = {
        "hub.services.repo2docker.apiToken": "service-token",
        "hub.services.repo2docker-spawner.apiToken": TOKEN,
    }
    return values, z2jh_config(values, secrets)


def test_values_give_a_valid_hub_config():
    values, c = load()
    app = JupyterHub(config=c)
    services = {s["name"]: s for s in app.services}
    assert services["repo2docker"]["url"] == "http://repo2docker-service:8585"
    assert services["repo2docker-spawner"]["api_token"] == TOKEN
    assert "custom:repo2docker:spawn" in app.custom_scopes
    assert {"custom:repo2docker:view", "custom:repo2docker:admin"} <= set(app.custom_scopes)
    roles = {r["name"]: r for r in app.load_roles}
    assert roles["repo2docker-spawner"]["scopes"] == [
        "access:services!service=repo2docker",
        "custom:repo2docker:spawn",
    ]
    assert app.load_groups == {}  # JupyterHub refuses it under manage_groups (SSO hubs)
    assert roles["repo2docker-builder"]["groups"] == ["repo2docker-builders"]
    assert app.allow_named_servers is True
    assert app.spawner_class is KubeSpawner  # extraConfig kept KubeSpawner
    # nothing of the service runs in the hub pod any more (repo2docker-service.yaml)
    assert "extraContainers" not in values["hub"]


async def test_profile_list_from_the_values_works_with_kubespawner(service, monkeypatch):
    values, c = load()
    # hub.extraEnv sets where the spawner reaches the service; here: the fake service
    assert values["hub"]["extraEnv"]["REPO2DOCKER_SERVICE_URL"] == (
        "http://repo2docker-service:8585/services/repo2docker/"
    )
    monkeypatch.setenv("REPO2DOCKER_SERVICE_URL", service["url"])
    spawner = KubeSpawner(_mock=True, config=c, user=User("alice"))
    assert callable(spawner.profile_list)
    assert "custom:repo2docker:view" in spawner.server_token_scopes
    spawner.user_options = {"profile": "shared--course"}
    await spawner.load_user_options()
    assert spawner.image == "r2d-shared/course:aaaaaaaaaaaa"
    assert service["requests"][-1]["auth"] == f"token {TOKEN}"
