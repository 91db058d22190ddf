"""SSO hubs: an authenticator that manages groups (and roles) starts with the README's config.

JupyterHub refuses ``load_groups`` when ``Authenticator.manage_groups`` is set and role
members when ``manage_roles`` is set. Two real hubs, each configured as the README asks (the
authenticator's settings, then ``deploy/jupyterhub_config.py`` verbatim), with
:class:`tests.rig.sso.IdPAuthenticator`, which reproduces what OAuthenticator does with the
provider's answer (groups from ``auth_state`` through ``auth_state_groups_key``):

- ``groups``: ``manage_groups``; the provider's groups are the snippet's group names, and
  the roles (granted to those groups) follow;
- ``roles``: ``manage_groups`` and ``manage_roles``; the roles have no members in the config
  and the authenticator grants them from the provider's groups (``data-science`` builds...).

Users log in through the hub's login form (so the authenticator runs), then use API tokens.
A subset of the ownership matrix (tests/hub/test_permissions.py) is asserted per hub; a hub
admin outside every group administers environments (hub admins are admins by default).
"""

from __future__ import annotations

import secrets

import pytest

from tests.rig.api import call, follow_build
from tests.rig.engine import BASE_IMAGE
from tests.rig.hub import start_hub
from tests.rig.parts import OFFLINE_CONFIG, REPO_ROOT
from tests.rig.repos import dockerfile
from tests.rig.sso import hub_login

pytestmark = [pytest.mark.hub, pytest.mark.docker]

SSO_PASSWORD = "sso-" + secrets.token_hex(6)

# user -> the identity provider's groups, per mode; "root1" is a hub admin in no group
IDP_USERS = {
    "groups": {
        "ana": ["repo2docker-builders", "staff"],
        "ben": ["repo2docker-viewers"],
        "cy": ["repo2docker-admins"],
        "dee": ["staff"],
        "root1": [],
    },
    "roles": {
        "ana": ["data-science", "staff"],
        "ben": ["lab-viewers"],
        "cy": ["platform"],
        "dee": ["marketing"],
        "root1": [],
    },
}
ROLES_FROM_GROUPS = {
    "lab-viewers": "repo2docker-viewer",
    "data-science": "repo2docker-builder",
    "platform": "repo2docker-admin",
}
# what each user may do: their scopes in api/info (None: cannot reach the service at all)
EXPECTED_SCOPES = {
    "ana": ["build", "view"],
    "ben": ["view"],
    "cy": ["admin", "build", "view"],
    "dee": None,
    "root1": ["admin", "build", "view"],
}


def auth_config(mode: str) -> str:
    """The authenticator's settings, as an admin writes them before the README's snippet."""
    lines = [
        "import sys",
        f"sys.path.insert(0, {str(REPO_ROOT)!r})",
        'c.JupyterHub.authenticator_class = "tests.rig.sso.IdPAuthenticator"',
        f"c.IdPAuthenticator.idp_users = {IDP_USERS[mode]!r}",
        f"c.IdPAuthenticator.password = {SSO_PASSWORD!r}",
        "c.Authenticator.allow_all = True",
        'c.Authenticator.admin_users = {"root1"}',
        "c.IdPAuthenticator.manage_groups = True",
    ]
    if mode == "roles":
        lines += [
            "c.IdPAuthenticator.manage_roles = True",
            f"c.IdPAuthenticator.roles_from_groups = {ROLES_FROM_GROUPS!r}",
        ]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module", params=["groups", "roles"])
def sso_hub(request, tmp_path_factory, base_image, git_http):
    mode = request.param
    try:
        hub = start_hub(
            tmp_path_factory.mktemp(f"sso-{mode}"),
            service_config=(
                'c.Repo2DockerService.allowed_repo_schemes = ["http", "https"]\n'
                f"c.Executor.repo2docker_config = {str(OFFLINE_CONFIG)!r}\n"
                f"c.Repo2DockerService.image_prefix = 'r2dsso-{secrets.token_hex(3)}-'\n"
            ),
            auth_config=auth_config(mode),
        )
    except RuntimeError as e:
        pytest.fail(f"The hub did not start with an authenticator managing {mode}: {e}")
    try:
        for user in IDP_USERS[mode]:
            assert hub_login(hub.url, user, SSO_PASSWORD) == 302, user
        hub.mode = mode  # type: ignore[attr-defined]
        hub.repo = git_http.create_repo(  # type: ignore[attr-defined]
            f"sso/{mode}", dockerfile(BASE_IMAGE, f"RUN echo sso {mode}")
        )
        yield hub
    finally:
        hub.stop()


def test_roles_follow_the_identity_providers_groups(sso_hub):
    for user, scopes in EXPECTED_SCOPES.items():
        status, info = call(sso_hub, "GET", "api/info", user)
        if scopes is None:
            assert status == 403, (user, info)
        else:
            assert status == 200, (user, info)
            assert info["user"]["scopes"] == scopes, user
    model = sso_hub.api("GET", "users/ana")
    assert "staff" in model["groups"]  # the provider's groups are the hub's groups
    if sso_hub.mode == "roles":
        assert "repo2docker-builder" in model["roles"]
        assert "user" in model["roles"]


def _build(hub, user, body):
    status, result = call(hub, "POST", "api/builds", user, body)
    assert status in (200, 202), result
    if result["build"] is not None:
        assert follow_build(hub, result["build"]["id"], user)["state"] == "built"
    return result["build"] or result["image"]


def test_ownership_matrix_subset(sso_hub):
    """Builders build their own, viewers only look, admins (by role or hub admin) manage."""
    repo = sso_hub.repo
    ana = _build(sso_hub, "ana", {"repo": repo, "name": "sso-ana"})
    _build(sso_hub, "cy", {"repo": repo, "name": "sso-ben", "owner": "ben"})
    images = {i["name"]: i for i in call(sso_hub, "GET", "api/images", "cy")[1]["images"]}
    ana_img, ben_img = images["sso-ana"], images["sso-ben"]
    ana_path = f"api/images/{ana_img['owner_slug']}/sso-ana"
    ben_path = f"api/images/{ben_img['owner_slug']}/sso-ben"
    cells = [
        # (user, method, path, body, expected status)
        ("ben", "POST", "api/builds", {"repo": repo, "name": "x"}, 403),  # view: no build
        ("ben", "GET", ben_path, None, 200),  # own
        ("ben", "GET", ana_path, None, 404),  # another's: hidden
        ("ana", "POST", "api/builds", {"repo": repo, "name": "sso-ben", "owner": "ben"}, 403),
        ("ana", "DELETE", ben_path, None, 404),
        ("ana", "GET", f"api/builds/{ana['id']}", None, 200),
        ("cy", "GET", ana_path, None, 200),  # admin by the provider's group
        ("cy", "DELETE", f"api/builds/{ana['id']}", None, 409),  # may cancel; it is done
        ("root1", "GET", ana_path, None, 200),  # hub admin, in no group
        ("root1", "POST", "api/builds", {"repo": repo, "name": "sso-ben", "owner": "ben"}, 200),
        ("dee", "GET", "api/images", None, 403),  # no role at all
    ]
    for user, method, path, body, expected in cells:
        status, answer = call(sso_hub, method, path, user, body)
        assert status == expected, (user, method, path, answer)
