"""The KubeSpawner check for images users type or build (jupyterhub-fancy-profiles).

A real KubeSpawner (no cluster: a dummy kube config, ``_mock``) with fancy-profiles' kind of
``profile_list`` (an option with choices and an unlisted choice whose override is
``image: "{value}"``), the form data KubeSpawner parses, and the fake images endpoint of the
service on 127.0.0.1.
"""

from __future__ import annotations

import pytest
from kubespawner import KubeSpawner
from tornado import web
from traitlets.config import Config

from repo2docker_service.hub.forms import not_available
from repo2docker_service.hub.kubespawner import configured_images, make_image_check
from tests.rig.fake_service import ALICE_IMAGE, BOB_IMAGE, SHARED_IMAGE, TOKEN, User

pytestmark = pytest.mark.usefixtures("kubeconfig")

CONFIGURED = "quay.io/jupyter/base-notebook:2026-01-01"
PANGEO = "pangeo/pangeo-notebook:2023.09.11"
# the shape of fancy-profiles' example config (its jupyterhub_config.py)
PROFILES = [
    {
        "display_name": "Build or bring your own image",
        "slug": "custom",
        "default": True,
        "profile_options": {
            "image": {
                "display_name": "Image",
                "dynamic_image_building": {"enabled": True},
                "unlisted_choice": {
                    "enabled": True,
                    "display_name": "Custom image",
                    "validation_regex": "^.+:.+$",
                    "kubespawner_override": {"image": "{value}"},
                },
                "choices": {
                    "pangeo": {
                        "display_name": "Pangeo",
                        "kubespawner_override": {"image": PANGEO},
                    }
                },
            }
        },
    },
    {"display_name": "No options", "slug": "plain"},
]


def kube(service, name="alice", token=TOKEN):
    c = Config()
    c.KubeSpawner.image = CONFIGURED
    c.KubeSpawner.profile_list = PROFILES
    c.KubeSpawner.pre_spawn_hook = make_image_check(service_url=service["url"], token=token)
    return KubeSpawner(_mock=True, user=User(name), config=c)


def choose(spawner, image=None, choice=None, profile="custom"):
    """What the form posts (fancy-profiles' ImageBuilder fills the unlisted choice)."""
    form = {"profile": [profile]}
    if image is not None:
        form[f"profile-option-{profile}--image--unlisted-choice"] = [image]
    if choice is not None:
        form[f"profile-option-{profile}--image"] = [choice]
    spawner.user_options = spawner.run_options_from_form(form)


@pytest.mark.parametrize(
    "image",
    [
        ALICE_IMAGE["image"],
        ALICE_IMAGE["latest"],  # any reference the service lists
        SHARED_IMAGE["image"],
    ],
)
async def test_built_image_of_the_user_starts(service, image):
    spawner = kube(service)
    choose(spawner, image=image)
    asked = len(service["requests"])
    await spawner.run_pre_spawn_hook()
    assert spawner.image == image
    assert [r["name"] for r in service["requests"][asked:]] == ["alice"]


@pytest.mark.parametrize(
    "image",
    [
        BOB_IMAGE["image"],  # another user's
        "r2d-alice/hello:ffffffffffff",  # a tag the service does not list
        "docker.io/evil/miner:latest",  # anything typed
        f"{ALICE_IMAGE['image']} ",  # a look-alike
    ],
)
async def test_other_images_are_refused_with_the_dockerspawner_message(service, image):
    spawner = kube(service)
    choose(spawner, image=image)
    with pytest.raises(web.HTTPError) as refused:
        await spawner.run_pre_spawn_hook()
    assert refused.value.status_code == 403
    assert refused.value.log_message == not_available(image, "alice")


@pytest.mark.parametrize(
    ("profile", "choice", "image"),
    [("custom", "pangeo", PANGEO), ("plain", None, CONFIGURED)],
)
async def test_configured_images_start_without_asking(service, profile, choice, image):
    spawner = kube(service)
    choose(spawner, choice=choice, profile=profile)
    asked = len(service["requests"])
    await spawner.run_pre_spawn_hook()
    assert spawner.image == image
    assert len(service["requests"]) == asked


async def test_a_former_override_is_not_configuration(service):
    """KubeSpawner keeps overrides on the spawner: a refused image stays in spawner.image.
    The next start of a profile without an image must not count it as configured."""
    spawner = kube(service)
    choose(spawner, image=BOB_IMAGE["image"])
    with pytest.raises(web.HTTPError):
        await spawner.run_pre_spawn_hook()
    assert spawner.image == BOB_IMAGE["image"]
    choose(spawner, profile="plain")
    with pytest.raises(web.HTTPError) as refused:
        await spawner.run_pre_spawn_hook()
    assert refused.value.status_code == 403


async def test_service_down_is_503(service):
    spawner = kube(service, token="wrong")
    choose(spawner, image=ALICE_IMAGE["image"])
    with pytest.raises(web.HTTPError) as refused:
        await spawner.run_pre_spawn_hook()
    assert refused.value.status_code == 503


def test_configured_images_skip_templates():
    assert configured_images(PROFILES) == {PANGEO}
    assert configured_images([{"kubespawner_override": {"image": "a:1"}}, {}]) == {"a:1"}
