"""Hub admins and environment administration, on two real hubs with the README's config.

By default a hub admin administers environments without any group
(``hub_admins_are_admins``). The README's snippet turns that off through
``REPO2DOCKER_SERVICE_HUB_ADMINS_ARE_ADMINS=0`` in the hub's environment (it passes the
``REPO2DOCKER_SERVICE_*`` variables on to the service); then only the roles count, and a hub
admin without the role is refused, on the API and on the page, with the role and the group
to ask for. Two hub admins: ``hubroot`` in no group, ``hubbuilder`` in the builders' group.
"""

from __future__ import annotations

import secrets

import pytest

from tests.rig.api import call
from tests.rig.engine import BASE_IMAGE
from tests.rig.hub import start_hub
from tests.rig.parts import OFFLINE_CONFIG
from tests.rig.repos import dockerfile

pytestmark = [pytest.mark.hub, pytest.mark.docker]

ADMINS_CONFIG = """
c.Authenticator.admin_users = {"admin1", "hubroot", "hubbuilder"}
"""
# hub_admins_are_admins -> user -> scopes in api/info
SCOPES = {
    "default": {"hubroot": ["admin", "build", "view"], "hubbuilder": ["admin", "build", "view"]},
    "off": {"hubroot": [], "hubbuilder": ["build", "view"]},
}


@pytest.fixture(scope="module", params=["default", "off"])
def admins_hub(request, tmp_path_factory, base_image, git_http):
    mode = request.param
    env = {"REPO2DOCKER_SERVICE_HUB_ADMINS_ARE_ADMINS": "0"} if mode == "off" else {}
    try:
        hub = start_hub(
            tmp_path_factory.mktemp(f"admins-{mode}"),
            service_config=(
                'c.Repo2DockerService.allowed_repo_schemes = ["http", "https"]\n'
                f"c.Executor.repo2docker_config = {str(OFFLINE_CONFIG)!r}\n"
                f"c.Repo2DockerService.image_prefix = 'r2dadm-{secrets.token_hex(3)}-'\n"
            ),
            extra_config=ADMINS_CONFIG,
            env=env,
        )
    except RuntimeError as e:
        pytest.fail(f"The hub did not start ({mode}): {e}")
    for user in SCOPES[mode]:
        hub.token_for(user)  # creates the user, before the service sees any of its tokens
    hub.api("POST", "groups/repo2docker-builders/users", {"users": ["hubbuilder"]})
    hub.mode = mode  # type: ignore[attr-defined]
    hub.repo = git_http.create_repo(  # type: ignore[attr-defined]
        f"admins/{mode}-{secrets.token_hex(3)}", dockerfile(BASE_IMAGE, f"RUN echo {mode}")
    )
    yield hub
    hub.stop()


def test_scopes_of_hub_admins(admins_hub):
    for user, scopes in SCOPES[admins_hub.mode].items():
        status, info = call(admins_hub, "GET", "api/info", user)
        assert status == 200, (user, info)
        assert info["user"]["scopes"] == scopes, (admins_hub.mode, user)
        model = admins_hub.api("GET", f"users/{user}")
        assert model["admin"] is True, model


def test_the_page_of_a_hub_admin_in_no_group(admins_hub):
    status, headers, body = call(
        admins_hub, "GET", "", "hubroot", headers={"Accept": "text/html"}, raw=True
    )
    page = body.decode()
    if admins_hub.mode == "default":
        assert status == 200, page[-2000:]
        return
    assert status == 403, page[-2000:]
    assert headers["Content-Type"].startswith("text/html")
    assert "You are logged in as hubroot" in page
    assert "the role &#39;repo2docker-viewer&#39;" in page
    assert "the group &#39;repo2docker-viewers&#39;" in page


def test_an_admin_action_by_a_hub_admin_without_the_admin_role(admins_hub):
    """A shared environment needs the admin scope; hubbuilder has build through its group."""
    body = {"repo": admins_hub.repo, "name": f"team-{admins_hub.mode}", "shared": True}
    status, result = call(admins_hub, "POST", "api/builds", "hubbuilder", body)
    if admins_hub.mode == "default":
        assert status in (200, 202), result
        return
    assert status == 403, result
    assert "'repo2docker-admin'" in result["message"], result
    assert "'repo2docker-admins'" in result["message"], result
    # their own environments still build: the builders' role holds
    own = {"repo": admins_hub.repo, "name": "own"}
    status, result = call(admins_hub, "POST", "api/builds", "hubbuilder", own)
    assert status in (200, 202), result
