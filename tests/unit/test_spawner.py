"""Spawner helpers against a fake service on 127.0.0.1 and the real spawner classes.

DockerSpawner's and KubeSpawner's own code paths run here (options form, options_from_form /
query, check_allowed, KubeSpawner's profile handling in load_user_options); no Docker
engine or cluster is needed. The real service endpoint is exercised in tests/e2e.
"""

from __future__ import annotations

import pytest
from kubespawner import KubeSpawner
from tornado import web
from traitlets.config import Config

from repo2docker_service.hub.client import TOKEN_ENV
from repo2docker_service.hub.config import configure_jupyterhub
from repo2docker_service.hub.dockerspawner import Repo2DockerHostSpawner, Repo2DockerSpawner
from repo2docker_service.hub.forms import render_options_form
from repo2docker_service.hub.kubespawner import make_profile_list
from tests.rig.fake_service import ALICE_IMAGE, SHARED_IMAGE, TOKEN, User

# KubeSpawner reads a kube config when it is created (the fixture is in conftest.py)
pytestmark = pytest.mark.usefixtures("kubeconfig")


def docker_spawner(service, name="alice", **kw):
    kw.setdefault("service_url", service["url"])
    kw.setdefault("service_token", TOKEN)
    return Repo2DockerSpawner(user=User(name), **kw)


# ------------------------------------------------------------------------ form
def test_form_lists_images_with_repo_ref_and_date_escaped():
    answer = {"user": "alice", "all": False, "images": [ALICE_IMAGE, SHARED_IMAGE]}
    form = render_options_form(answer)
    assert "Hello &lt;b&gt;world&lt;/b&gt;" in form and "<b>world" not in form
    assert "https://git.example.org/hello.git@main" in form
    assert "2026-11-23 08:56 UTC" in form
    assert "1.5 CPU, 2G memory" in form
    assert "shared" in form
    # the first image is preselected
    first = form.index('value="r2d-alice/hello:7c71e06654c1" checked')
    assert first > 0


def test_form_preselects_a_listed_reference_only():
    answer = {"user": "alice", "all": False, "images": [ALICE_IMAGE, SHARED_IMAGE]}
    form = render_options_form(answer, selected="r2d-shared/course:latest")
    assert 'value="r2d-shared/course:latest" checked' in form
    form = render_options_form(answer, selected="evil/image:latest")
    assert "evil" not in form
    assert 'value="r2d-alice/hello:7c71e06654c1" checked' in form


def test_form_without_images_points_at_the_service_page():
    form = render_options_form({"images": []}, service_page="/services/repo2docker/")
    assert 'href="/services/repo2docker/"' in form and "no environments" in form


async def test_docker_spawner_form_asks_the_service_for_this_user(service):
    spawner = docker_spawner(service)
    form = await spawner.get_options_form()
    assert "Hello &lt;b&gt;world" in form and "Course" in form
    assert "Bob" not in form
    last = service["requests"][-1]
    assert last == {"name": "alice", "auth": f"token {TOKEN}", "admin": None}


async def test_docker_spawner_form_shows_service_errors(service):
    spawner = docker_spawner(service, service_token="wrong")
    form = await spawner.get_options_form()
    assert 'id="repo2docker-error"' in form
    assert "403" in form and "custom:repo2docker:spawn" in form


def test_options_from_form_and_query():
    spawner = Repo2DockerSpawner(user=User("alice"))
    assert spawner.run_options_from_form({"image": ["r2d-alice/hello:latest"]}) == {
        "image": "r2d-alice/hello:latest"
    }
    assert spawner.options_from_query({"image": ["x:1"]}) == {"image": "x:1"}
    assert spawner.run_options_from_form({}) == {}
    # never the DockerSpawner default form built from allowed_images
    assert spawner.allowed_images == {}


# ------------------------------------------------------------------------ spawn check
async def test_check_allowed_accepts_listed_references_and_sets_limits(service):
    spawner = docker_spawner(service)
    assert await spawner.check_allowed("r2d-alice/hello:0123456789ab") == (
        "r2d-alice/hello:0123456789ab"
    )
    assert spawner.cpu_limit == 1.5
    assert spawner.mem_limit == 2 * 1024**3
    shared = docker_spawner(service)
    shared.cpu_limit = 0.25
    await shared.check_allowed("r2d-shared/course:latest")
    assert shared.cpu_limit == 0.25  # the service sets no limit: the configured one stays


@pytest.mark.parametrize(
    "image", ["r2d-bob/secret:bbbbbbbbbbbb", "quay.io/jupyter/base-notebook:latest", "r2d-alice/x"]
)
async def test_check_allowed_refuses_other_images_with_a_clear_message(service, image):
    spawner = docker_spawner(service)
    with pytest.raises(web.HTTPError) as e:
        await spawner.check_allowed(image)
    assert e.value.status_code == 403
    assert "not available to alice" in e.value.log_message


async def test_check_allowed_when_the_service_is_down_is_503(service):
    spawner = docker_spawner(service, service_url="http://127.0.0.1:9/services/repo2docker/")
    with pytest.raises(web.HTTPError) as e:
        await spawner.check_allowed("r2d-alice/hello:latest")
    assert e.value.status_code == 503


async def test_start_without_a_choice_is_refused(service):
    spawner = docker_spawner(service)
    spawner.user_options = {}
    with pytest.raises(web.HTTPError) as e:
        await spawner.start()
    assert e.value.status_code == 400 and "Choose an environment" in e.value.log_message


async def test_allowed_images_star_is_refused(service):
    spawner = docker_spawner(service, allowed_images="*")
    spawner.user_options = {"image": "r2d-alice/hello:latest"}
    with pytest.raises(web.HTTPError) as e:
        await spawner.start()
    assert "refused" in e.value.log_message


def test_host_spawner_defaults():
    spawner = Repo2DockerHostSpawner(user=User("alice"))
    assert (spawner.network_name, spawner.use_internal_ip, spawner.ip) == (
        "host",
        True,
        "127.0.0.1",
    )


def test_config_reaches_the_mixin_through_traitlets():
    c = Config()
    token = configure_jupyterhub(c, token="t0k", service_url="http://127.0.0.1:1234/services/x/")
    assert token == "t0k"
    spawner = Repo2DockerSpawner(user=User("alice"), config=c)
    assert spawner.service_url == "http://127.0.0.1:1234/services/x/"
    assert spawner.service_token == "t0k"
    assert "custom:repo2docker:view" in c.Spawner.server_token_scopes


def test_token_from_the_environment(monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, "from-env")
    assert Repo2DockerSpawner(user=User("alice")).service_token == "from-env"
    assert configure_jupyterhub(Config()) == "from-env"


# ------------------------------------------------------------------------ KubeSpawner
def kube(service, name="alice", token=TOKEN):
    return KubeSpawner(
        _mock=True,
        user=User(name),
        profile_list=make_profile_list(service_url=service["url"], token=token),
    )


async def test_profile_list_with_kubespawner_form(service):
    spawner = kube(service)
    form = await spawner.get_options_form()
    assert "Course" in form and "git.example.org/hello.git@main" in form
    assert "Bob" not in form


async def test_profile_list_choice_is_applied_by_kubespawner(service):
    spawner = kube(service)
    spawner.user_options = spawner.run_options_from_form({"profile": ["alice--hello"]})
    await spawner.load_user_options()
    assert spawner.image == "r2d-alice/hello:7c71e06654c1"
    assert spawner.cpu_limit == 1.5
    assert spawner.mem_limit == 2 * 1024**3


async def test_profile_list_default_is_the_first_image(service):
    spawner = kube(service)
    spawner.user_options = {}
    await spawner.load_user_options()
    assert spawner.image == "r2d-alice/hello:7c71e06654c1"


async def test_kubespawner_refuses_a_profile_the_user_may_not_start(service):
    spawner = kube(service)
    spawner.user_options = {"profile": "bob--secret"}
    with pytest.raises(ValueError, match="No such profile"):
        await spawner.load_user_options()
    # and an image smuggled into user_options through the REST API is ignored
    spawner = kube(service)
    spawner.user_options = {"profile": "alice--hello", "image": "r2d-bob/secret:bbbbbbbbbbbb"}
    await spawner.load_user_options()
    assert spawner.image == "r2d-alice/hello:7c71e06654c1"


async def test_profile_list_service_errors_are_503(service):
    spawner = kube(service, token="nope")
    spawner.user_options = {"profile": "alice--hello"}
    with pytest.raises(web.HTTPError) as e:
        await spawner.load_user_options()
    assert e.value.status_code == 503


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, True), ("1", True), ("true", True), ("0", False), ("false", False),
     (" FALSE ", False), ("no", False), ("off", False), ("", True)],
)  # fmt: skip
def test_spawner_hub_admins_default_follows_the_hubs_environment(monkeypatch, value, expected):
    """The README's snippet hands $REPO2DOCKER_SERVICE_HUB_ADMINS_ARE_ADMINS to the service;
    the spawner in the hub reads the same variable, so both sides agree without more config."""
    if value is None:
        monkeypatch.delenv("REPO2DOCKER_SERVICE_HUB_ADMINS_ARE_ADMINS", raising=False)
    else:
        monkeypatch.setenv("REPO2DOCKER_SERVICE_HUB_ADMINS_ARE_ADMINS", value)
    assert Repo2DockerSpawner().hub_admins_are_admins is expected
    config = Config()
    config.Repo2DockerMixin.hub_admins_are_admins = not expected
    assert Repo2DockerSpawner(config=config).hub_admins_are_admins is (not expected)
