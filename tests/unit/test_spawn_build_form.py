"""The spawn form's "Build from a repository" choice (hub/buildform.py): the HTML, the
scopes of its token, and who gets it. The browser side: tests/e2e/test_spawn_build.py."""

from __future__ import annotations

import re

import pytest

from repo2docker_service.hub import dockerspawner
from repo2docker_service.hub.buildform import (
    BuildFormSettings,
    service_name_of,
    token_scopes,
)
from repo2docker_service.hub.dockerspawner import Repo2DockerSpawner
from repo2docker_service.hub.forms import render_options_form
from tests.rig.fake_service import ALICE_IMAGE, SHARED_IMAGE, TOKEN, User

pytestmark = pytest.mark.usefixtures("kubeconfig")

ACCESS = "access:services!service=repo2docker"
BUILD = "custom:repo2docker:build"
SETTINGS = BuildFormSettings(
    service_page="/services/repo2docker/",
    user='al"<ice>',
    scopes=(ACCESS, BUILD),
    token_seconds=3600,
)


@pytest.mark.parametrize(
    ("held", "expected"),
    [
        ({ACCESS, BUILD, "custom:repo2docker:view"}, (ACCESS, BUILD)),
        ({"access:services", BUILD}, (ACCESS, BUILD)),  # hub admins: access unfiltered
        ({ACCESS, "custom:repo2docker:admin", BUILD}, (ACCESS, BUILD)),  # admin implies build
        ({ACCESS, "custom:repo2docker:view"}, ()),  # view only: no build choice
        ({BUILD}, ()),  # cannot reach the service
        ({"access:services!service=other", BUILD}, ()),
        (set(), ()),
    ],
)
def test_token_scopes(held, expected):
    assert token_scopes(held, service_name="repo2docker", scope_prefix="custom:repo2docker:") == (
        expected
    )


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/services/repo2docker/", "repo2docker"),
        ("/services/binder", "binder"),
        ("/jupyter/services/envs/", "envs"),
        ("/", "repo2docker"),
        ("/somewhere/else/", "repo2docker"),
    ],
)
def test_service_name_of(path, name):
    assert service_name_of(path) == name


def build_inputs(form: str) -> list[str]:
    return re.findall(r'<input id="r2d-build-[^>]*>', form)


def test_build_choice_comes_last_unchecked_and_hidden_until_the_script_runs():
    answer = {"user": "alice", "all": False, "images": [ALICE_IMAGE, SHARED_IMAGE]}
    form = render_options_form(answer, build=SETTINGS)
    assert form.index('value="r2d-alice/hello:7c71e06654c1" checked') < form.index(
        'id="r2d-build-choice"'
    )
    assert '<div class="form-check mb-2" id="r2d-build-choice-row" hidden>' in form
    assert 'id="r2d-build-choice" value="">' in form  # not checked
    assert '<div id="r2d-build" class="border rounded p-3 mb-3" hidden' in form
    assert '<script type="module" src="/services/repo2docker/static/js/spawnform.js">' in form
    # everything escaped; the build fields are never posted with the spawn form
    assert 'data-user="al&quot;&lt;ice&gt;"' in form and '"<ice>' not in form
    assert f'data-scopes="{ACCESS} {BUILD}"' in form
    assert 'data-token-seconds="3600"' in form
    inputs = build_inputs(form)
    assert len(inputs) == 2 and not any(" name=" in i for i in inputs)
    # every field has a label and a place for its error
    for field in ("repo", "ref"):
        assert f'<label for="r2d-build-{field}"' in form
        assert f'id="r2d-build-{field}-feedback" class="invalid-feedback"' in form
    assert 'role="log"' in form and 'role="status"' in form


def test_without_images_the_build_choice_is_chosen():
    form = render_options_form({"images": []}, build=SETTINGS)
    assert 'id="r2d-build-choice" value="" checked>' in form
    assert '<input type="hidden" name="image"' not in form
    assert 'href="/services/repo2docker/"' in form and "no environments" in form


def test_without_build_settings_the_form_is_unchanged():
    answer = {"user": "alice", "all": False, "images": [ALICE_IMAGE]}
    assert "r2d-build" not in render_options_form(answer)
    assert "r2d-build" not in render_options_form({"images": []})
    # the service did not answer: no choice at all
    assert "r2d-build" not in render_options_form(None, error="down", build=SETTINGS)


@pytest.mark.parametrize(
    ("held", "enabled", "offered"),
    [
        ({ACCESS, BUILD}, True, True),
        ({ACCESS, "custom:repo2docker:view"}, True, False),
        ({ACCESS, BUILD}, False, False),
    ],
)
async def test_the_spawner_offers_the_choice_to_builders(
    service, monkeypatch, held, enabled, offered
):
    monkeypatch.setattr(dockerspawner, "scopes_held", lambda user: set(held))
    spawner = Repo2DockerSpawner(
        user=User("alice"),
        service_url=service["url"],
        service_token=TOKEN,
        build_from_form=enabled,
        build_token_seconds=600,
    )
    assert spawner.service_name == "repo2docker"
    form = await spawner.get_options_form()
    assert ('id="r2d-build-choice"' in form) is offered
    if offered:
        assert 'data-user="alice"' in form and 'data-token-seconds="600"' in form
