"""The TLJH plugin, called the way TLJH calls plugins, on a TLJH-shaped config.

TLJH (the-littlest-jupyterhub, not on PyPI) builds a ``pluggy.PluginManager("tljh")`` with the
hook specifications of ``tljh/hooks.py``, loads plugins from the ``tljh`` entry point group,
and calls ``tljh_custom_jupyterhub_config(c=c)`` after its own settings in
``tljh/jupyterhub_config.py``. The specs and the config below mirror those files.
"""

from __future__ import annotations

import itertools
import stat
import subprocess
import sys
import tomllib
import types
from pathlib import Path

import pluggy
import pytest
from jupyterhub.app import JupyterHub
from jupyterhub.auth import Authenticator
from traitlets import Bool
from traitlets.config import Config

from repo2docker_service._version import MIN_PYTHON, check_python
from repo2docker_service.hub import tljh
from repo2docker_service.hub.config import (
    GROUPS,
    SESSION_SCOPES,
    authenticator_manages,
    register_service,
    service_roles,
    service_scopes,
)

REPO = Path(__file__).resolve().parents[2]


def tljh_hookspecs() -> types.ModuleType:
    """The hook specifications of tljh/hooks.py (same names and arguments)."""
    hookspec = pluggy.HookspecMarker("tljh")
    mod = types.ModuleType("tljh_hooks")

    @hookspec
    def tljh_extra_user_conda_packages():
        """Extra conda packages for the user environment."""

    @hookspec
    def tljh_extra_user_pip_packages():
        """Extra pip packages for the user environment."""

    @hookspec
    def tljh_extra_hub_pip_packages():
        """Extra pip packages for the hub environment."""

    @hookspec
    def tljh_extra_apt_packages():
        """Extra apt packages."""

    @hookspec
    def tljh_custom_jupyterhub_config(c):
        """Custom traitlets config for JupyterHub."""

    @hookspec
    def tljh_config_post_install(config):
        """Modify the on-disk tljh-config after installation."""

    @hookspec
    def tljh_post_install():
        """Run after installation."""

    @hookspec
    def tljh_new_user_create(username):
        """Run after a new user was added."""

    for fn in (
        tljh_extra_user_conda_packages,
        tljh_extra_user_pip_packages,
        tljh_extra_hub_pip_packages,
        tljh_extra_apt_packages,
        tljh_custom_jupyterhub_config,
        tljh_config_post_install,
        tljh_post_install,
        tljh_new_user_create,
    ):
        setattr(mod, fn.__name__, fn)
    return mod


@pytest.fixture
def pm():
    manager = pluggy.PluginManager("tljh")
    manager.add_hookspecs(tljh_hookspecs())
    # as tljh.utils.get_plugin_manager does: plugins come from the entry point group
    manager.load_setuptools_entrypoints("tljh")
    return manager


@pytest.fixture
def tljh_config(tmp_path, monkeypatch):
    """The config TLJH's jupyterhub_config.py has built when it calls the plugins."""
    monkeypatch.setenv("TLJH_INSTALL_PREFIX", str(tmp_path))
    monkeypatch.delenv("REPO2DOCKER_SPAWNER_TOKEN", raising=False)
    c = Config()
    c.JupyterHub.spawner_class = "tljh.user_creating_spawner.UserCreatingSpawner"
    c.JupyterHub.cleanup_servers = False
    c.JupyterHub.hub_port = 15001
    c.TraefikProxy.should_start = False  # (TLJH's proxy_class "traefik_file" is not installed here)
    c.SystemdSpawner.default_shell = "/bin/bash"
    # configurer.apply_config: limits and the idle culler service
    c.Spawner.mem_limit = "2G"
    c.Spawner.cpu_limit = 1.0
    c.JupyterHub.services = []
    c.JupyterHub.services.append(
        {"name": "cull-idle", "admin": True, "command": [sys.executable, "-m", "culler"]}
    )
    return c


def test_plugin_is_found_through_the_tljh_entry_point(pm):
    assert pm.get_plugin("repo2docker_service") is tljh


def test_extra_hub_pip_packages(pm):
    packages = list(set(itertools.chain(*pm.hook.tljh_extra_hub_pip_packages())))
    assert any(p.startswith("dockerspawner") for p in packages)


def test_custom_config_adds_service_spawner_and_roles(pm, tljh_config, tmp_path):
    c = tljh_config
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "repo2docker_service_config.py").write_text("# service config\n")
    pm.hook.tljh_custom_jupyterhub_config(c=c)

    app = JupyterHub(config=c)
    assert app.spawner_class.__name__ == "Repo2DockerHostSpawner"
    names = [s["name"] for s in app.services]
    assert names == ["cull-idle", "repo2docker", "repo2docker-spawner"]
    service = app.services[1]
    assert service["url"] == "http://127.0.0.1:8585"
    assert service["command"][-2:] == ["--port", "8585"]
    assert service["environment"]["REPO2DOCKER_SERVICE_CONFIG"] == str(
        tmp_path / "config" / "repo2docker_service_config.py"
    )
    assert set(app.custom_scopes) == {
        "custom:repo2docker:view",
        "custom:repo2docker:build",
        "custom:repo2docker:admin",
        "custom:repo2docker:spawn",
    }
    roles = {r["name"]: r for r in app.load_roles}
    assert roles["repo2docker-spawner"]["scopes"] == [
        "access:services!service=repo2docker",
        "custom:repo2docker:spawn",
    ]
    assert roles["repo2docker-spawner"]["services"] == ["repo2docker-spawner"]
    assert app.load_groups == {}  # the roles' groups are created by the hub when granted
    assert {tuple(r.get("groups", ())) for r in app.load_roles} >= {(g,) for g in tljh.GROUPS}
    assert app.allow_named_servers is True
    assert app.cleanup_servers is False

    # the spawner gets the service's address and the stored token; TLJH's limits stay
    spawner = app.spawner_class(config=app.config, user=types.SimpleNamespace(name="alice"))
    assert spawner.service_url == "http://127.0.0.1:8585/services/repo2docker/"
    token_file = tmp_path / "state" / "repo2docker-spawner-token"
    assert spawner.service_token == token_file.read_text().strip()
    assert app.services[2]["api_token"] == spawner.service_token
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert spawner.pull_policy == "never"
    assert (spawner.network_name, spawner.ip) == ("host", "127.0.0.1")
    assert spawner.mem_limit == 2 * 1024**3 and spawner.cpu_limit == 1.0
    # each user's files in their own volume, outliving the container
    assert spawner.volumes == {"repo2docker-user-{username}": "/home/jovyan/work"}
    assert spawner.volume_binds == {
        "repo2docker-user-alice": {"bind": "/home/jovyan/work", "mode": "rw"}
    }


def test_admins_volumes_are_kept(pm, tljh_config):
    tljh_config.DockerSpawner.volumes = {"/srv/data": "/home/jovyan/data"}
    pm.hook.tljh_custom_jupyterhub_config(c=tljh_config)
    assert tljh_config.DockerSpawner.volumes == {"/srv/data": "/home/jovyan/data"}


def test_token_survives_a_hub_restart(pm, tljh_config):
    pm.hook.tljh_custom_jupyterhub_config(c=tljh_config)
    first = JupyterHub(config=tljh_config).services[-1]["api_token"]
    again = Config()
    pm.hook.tljh_custom_jupyterhub_config(c=again)
    assert JupyterHub(config=again).services[-1]["api_token"] == first


# authenticator settings an admin may have set before the snippet (SSO hubs)
AUTHENTICATOR_CONFIGS = {
    "plain": {},
    "manage_groups": {"Authenticator": {"manage_groups": True}},
    "oauth_manage_groups": {
        "GenericOAuthenticator": {"manage_groups": True, "auth_state_groups_key": "groups"}
    },
    "manage_roles": {"Authenticator": {"manage_roles": True}},
    "oauth_manage_groups_and_roles": {
        "GenericOAuthenticator": {"manage_groups": True, "manage_roles": True}
    },
    "roles_off": {"GitHubOAuthenticator": {"manage_roles": False}},
    # docs/sso.md's subclass: its section name does not end in "Authenticator"
    "subclass_manage_roles": {"RolesFromGroups": {"manage_groups": True, "manage_roles": True}},
}


@pytest.mark.parametrize("auth", sorted(AUTHENTICATOR_CONFIGS))
def test_registration_matches_deploy_jupyterhub_config(tljh_config, monkeypatch, auth):
    """The plugin registers the service as deploy/jupyterhub_config.py (the README's) does,
    for hubs whose authenticator manages groups and/or roles too."""
    monkeypatch.delenv("REPO2DOCKER_SERVICE_PORT", raising=False)
    deploy, plugin = Config(AUTHENTICATOR_CONFIGS[auth]), Config(AUTHENTICATOR_CONFIGS[auth])
    code = (REPO / "deploy" / "jupyterhub_config.py").read_text()
    exec(compile(code, "deploy/jupyterhub_config.py", "exec"), {"c": deploy})
    register_service(plugin)
    a, b = JupyterHub(config=deploy), JupyterHub(config=plugin)
    assert a.custom_scopes == b.custom_scopes
    assert a.load_roles == b.load_roles
    assert a.load_groups == b.load_groups == {}  # JupyterHub refuses it with manage_groups
    sa, sb = a.services[0], b.services[0]
    for key in ("name", "url", "oauth_client_allowed_scopes", "oauth_no_confirm"):
        assert sa[key] == sb[key], key
    # and both are exactly the one definition in repo2docker_service.hub.config
    managed = "roles" in auth and auth != "roles_off"
    assert authenticator_manages(deploy, "roles") is managed
    assert a.custom_scopes == service_scopes("custom:repo2docker:")
    assert a.load_roles == service_roles(
        "repo2docker", "custom:repo2docker:", groups=None if managed else GROUPS
    )
    # JupyterHub refuses role members when the authenticator manages roles
    members = [r for r in a.load_roles if r.get("groups") or r.get("users")]
    assert (members == []) is managed
    assert sa["oauth_client_allowed_scopes"] == [
        *service_scopes("custom:repo2docker:"),
        *SESSION_SCOPES,
    ]


def test_authenticator_class_default_counts():
    """An authenticator class whose manage_roles defaults to True counts as managing."""

    class RolesFromIdP(Authenticator):
        manage_roles = Bool(True, config=True)

    c = Config()
    c.JupyterHub.authenticator_class = RolesFromIdP
    assert authenticator_manages(c, "roles") is True
    assert authenticator_manages(c, "groups") is False
    register_service(c)
    assert all("groups" not in r for r in JupyterHub(config=c).load_roles)


@pytest.mark.parametrize(
    "version, refused",
    [
        ((3, 9, 18), True),  # Debian 11
        ((3, 10, 12), True),  # Ubuntu 22.04
        ((3, 11, 0), False),
        ((3, 11, 2), False),  # Debian 12
        ((3, 12, 3), False),  # Ubuntu 24.04
        ((3, 13, 5), False),  # Debian 13
        ((4, 0, 0), False),
    ],
)
def test_an_unsupported_python_is_refused_with_a_clear_error(version, refused):
    if not refused:
        check_python(version)
        return
    with pytest.raises(RuntimeError) as e:
        check_python(version)
    shown = ".".join(map(str, version))
    assert f"this is Python {shown} ({sys.executable})" in str(e.value)
    assert "needs Python 3.11 or newer" in str(e.value)
    assert "docs/tljh.md" in str(e.value)


def test_the_python_check_runs_when_the_plugin_is_imported():
    """What TLJH's plugin manager does on a hub env with Python 3.10: import the plugin."""
    code = (
        "import sys; sys.version_info = (3, 10, 12, 'final', 0)\n"
        "import repo2docker_service.hub.tljh\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=False
    )
    assert proc.returncode == 1
    assert "RuntimeError: repo2docker-service needs Python 3.11 or newer" in proc.stderr
    assert "this is Python 3.10.12" in proc.stderr


def test_the_minimum_is_requires_python():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == ">=" + ".".join(map(str, MIN_PYTHON))
