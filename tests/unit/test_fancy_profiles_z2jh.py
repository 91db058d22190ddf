"""deploy/z2jh/fancy-profiles.yaml, checked offline with the real fancy-profiles and KubeSpawner.

The overlay's ``hub.extraConfig`` runs the way the chart runs it (``exec`` with
``get_secret_value`` in scope) after the service's own entry; the result configures a real
KubeSpawner (dummy kube config, ``_mock``), whose options form is fancy-profiles' (from
PyPI), and whose ``pre_spawn_hook`` checks the image the form posts against the fake service
of tests/rig/fake_service.py. The values are validated against the chart's schema.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from kubespawner import KubeSpawner
from tornado import web
from traitlets.config import Config

from tests.rig.fake_service import ALICE_IMAGE, BOB_IMAGE, TOKEN, User
from tests.rig.z2jh import schema_errors, values_schema

pytestmark = pytest.mark.usefixtures("kubeconfig")

REPO = Path(__file__).resolve().parents[2]
OVERLAY = REPO / "deploy" / "z2jh" / "fancy-profiles.yaml"


def overlay() -> dict:
    return yaml.safe_load(OVERLAY.read_text())


def hub_config(service_url: str, monkeypatch: pytest.MonkeyPatch) -> Config:
    """The overlay's extraConfig, as the chart runs it (the service's URL from the hub env)."""
    monkeypatch.setenv("REPO2DOCKER_SERVICE_URL", service_url)
    c = Config()
    c.JupyterHub.extra_handlers = []
    secrets = {"hub.services.repo2docker-spawner.apiToken": TOKEN}
    namespace = {"c": c, "get_secret_value": lambda key, default=None: secrets[key]}
    for _, code in sorted(overlay()["hub"]["extraConfig"].items()):
        exec(compile(code, "hub.extraConfig", "exec"), namespace)
    return c


def test_overlay_validates_against_the_charts_schema():
    assert schema_errors(values_schema(), overlay()) == []
    assert overlay()["hub"]["services"]["binder"]["url"] == "http://repo2docker-service:8585"


async def test_form_is_fancy_profiles_with_dynamic_image_building(service, monkeypatch):
    c = hub_config(service["url"], monkeypatch)
    assert c.JupyterHub.extra_handlers[0][0] == "/fancy-profiles/static/(.*)"
    spawner = KubeSpawner(_mock=True, user=User("alice"), config=c)
    form = await spawner.get_options_form()
    assert "/hub/fancy-profiles/static/dist/form.js" in form
    assert '"dynamic_image_building": {"enabled": true}' in form


@pytest.mark.parametrize(
    ("image", "status"),
    [
        (ALICE_IMAGE["image"], None),  # what "Build image" gave alice
        ("quay.io/jupyter/base-notebook:2025-12-01", None),  # a configured choice
        (BOB_IMAGE["image"], 403),  # another user's
        ("docker.io/anything/typed:1", 403),
    ],
)
async def test_posted_image_is_checked(service, monkeypatch, image, status):
    c = hub_config(service["url"], monkeypatch)
    spawner = KubeSpawner(_mock=True, user=User("alice"), config=c)
    spawner.user_options = spawner.run_options_from_form(
        {"profile": ["custom"], "profile-option-custom--image--unlisted-choice": [image]}
    )
    if status is None:
        await spawner.run_pre_spawn_hook()
        assert spawner.image == image
        return
    with pytest.raises(web.HTTPError) as refused:
        await spawner.run_pre_spawn_hook()
    assert refused.value.status_code == status
