"""Hub config for repo2docker-service: the one definition of its scopes, groups and roles.

For ``jupyterhub_config.py`` (docker-compose, the demo, z2jh's ``extraConfig``, the TLJH
plugin):

- :func:`register_service` adds the service's custom scopes, one role per scope (granted
  to a group each, or to nobody when the authenticator manages roles) and the service
  entry, either managed by the hub (a ``command``) or external (a URL and an API token,
  e.g. a separate container);
- :func:`configure_jupyterhub` adds what the spawner helpers need: the ``spawn`` scope, a
  token-holding client with a role, the spawner settings, server token scopes for
  JupyterLab extensions, named servers for launch links;
- :func:`add_navbar_link` puts an "Environments" link in the hub's navbar and a pointer on
  its home and spawn pages (templates that extend the hub's own, never replace them);
- :func:`persistent_token` keeps a token across hub restarts;
- :func:`add_binder_alias` also exposes the service's BinderHub build API at
  ``/services/binder/`` (jupyterhub-fancy-profiles' "Build image" calls that path).

The scopes and roles are defined once, by :func:`service_scopes`, :func:`service_roles`,
:func:`spawn_scope` and :func:`spawner_role`. ``deploy/jupyterhub_config.py`` (the README's
snippet) spells the same ones out so that it works in a hub without this package;
tests/unit/test_tljh.py checks that it declares exactly these.

Hubs whose authenticator manages groups or roles (OAuth/SSO, ``manage_groups`` /
``manage_roles``): JupyterHub then refuses ``load_groups`` and role members. Nothing here
uses ``load_groups`` (the roles' groups are created by JupyterHub when it grants the roles,
and a group-managing authenticator fills them from the identity provider), and with
``manage_roles`` (:func:`authenticator_manages`) the roles are defined without members:
the authenticator grants them at login (docs/sso.md).
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import warnings
from pathlib import Path
from typing import Any

from .client import TOKEN_ENV, URL_ENV

__all__ = [
    "BINDER_PREFIX_ENV",
    "GROUPS",
    "ROLES",
    "SESSION_SCOPES",
    "TEMPLATES",
    "access_help",
    "add_binder_alias",
    "add_navbar_link",
    "add_spawner_client",
    "authenticator_manages",
    "configure_jupyterhub",
    "persistent_token",
    "register_service",
    "server_scopes",
    "service_access",
    "service_roles",
    "service_scopes",
    "spawn_scope",
    "spawner_role",
]

#: the hub templates that link the environments page (page.html, home.html, spawn.html)
TEMPLATES = Path(__file__).parent / "templates"

#: what a browser session's token may do besides the service's own scopes: read the user's
#: own servers (the environments page links the running ones; hubservers.py in the service)
SESSION_SCOPES = ("read:servers!user",)

#: groups the roles are granted to (members are managed in the hub's admin page)
GROUPS = ("repo2docker-viewers", "repo2docker-builders", "repo2docker-admins")
#: the service's environment variable naming its second prefix (``binder_prefix``)
BINDER_PREFIX_ENV = "REPO2DOCKER_SERVICE_BINDER_PREFIX"


# ------------------------------------------------------------------ scopes and roles
def service_access(service_name: str) -> str:
    """The hub scope that lets a token reach the service: ``access:services!service=<name>``."""
    return f"access:services!service={service_name}"


def service_scopes(prefix: str = "custom:repo2docker:") -> dict[str, dict[str, Any]]:
    """The service's custom scopes for ``c.JupyterHub.custom_scopes``: view < build < admin.

    The keys, in this order, are also the scopes browser sessions may carry
    (``oauth_client_allowed_scopes``).
    """
    return {
        f"{prefix}view": {
            "description": "See your own and shared environments and your builds.",
        },
        f"{prefix}build": {
            "description": "Build, rebuild, cancel and delete your own environments.",
            "subscopes": [f"{prefix}view"],
        },
        f"{prefix}admin": {
            "description": "Manage every user's environments and build shared ones.",
            "subscopes": [f"{prefix}build"],
        },
    }


#: the roles, in scope order (view, build, admin)
ROLES = ("repo2docker-viewer", "repo2docker-builder", "repo2docker-admin")


def service_roles(
    service_name: str = "repo2docker",
    prefix: str = "custom:repo2docker:",
    *,
    groups: tuple[str, str, str] | None = GROUPS,
) -> list[dict[str, Any]]:
    """One role per scope for ``c.JupyterHub.load_roles``, in the order of :data:`ROLES`.

    Args:
        service_name: the service the roles give access to.
        prefix: the service's scope prefix.
        groups: the viewer, builder and admin groups the roles are granted to; None
            grants them to nobody (an authenticator with ``manage_roles`` grants them).
    """
    access = service_access(service_name)
    roles: list[dict[str, Any]] = [
        {
            "name": ROLES[0],
            "description": "May open the environments page and start images.",
            "scopes": [access, f"{prefix}view"],
        },
        {
            "name": ROLES[1],
            "description": "May build environments from git repositories.",
            "scopes": [access, f"{prefix}build"],
        },
        {
            "name": ROLES[2],
            "description": "May manage all environments, including shared ones.",
            "scopes": [access, f"{prefix}admin"],
        },
    ]
    if groups is not None:
        for role, group in zip(roles, groups, strict=True):
            role["groups"] = [group]
    return roles


def authenticator_manages(c: Any, what: str) -> bool:
    """Whether the hub's authenticator manages ``what`` (``"groups"`` or ``"roles"``).

    True when any config section sets ``manage_<what> = True`` (``c.Authenticator``,
    ``c.GenericOAuthenticator``, or a subclass of any name such as ``c.RolesFromGroups``:
    only JupyterHub's ``Authenticator`` has these traits), or the configured authenticator
    class (a class object, not a name) defaults it to True. Only config set *before* the
    call counts: register the service after the authenticator.
    """
    key = f"manage_{what}"
    for name in list(c):
        section = c[name]
        if isinstance(section, dict) and section.get(key) is True:
            return True
    cls = c.JupyterHub.get("authenticator_class") if "JupyterHub" in c else None
    if isinstance(cls, type) and hasattr(cls, "class_traits"):
        trait = cls.class_traits().get(key)
        return bool(trait is not None and trait.default_value is True)
    return False


def access_help(groups: tuple[str, str, str] | None) -> dict[str, str]:
    """What a user lacking a scope is told to ask for, per short scope (the service's
    ``Repo2DockerService.access_help``): the role, and the group that has it if any."""
    help_ = {}
    for scope, i in (("view", 0), ("build", 1), ("admin", 2)):
        text = f"the role {ROLES[i]!r}"
        if groups is not None:
            text += f" (or membership in the group {groups[i]!r})"
        help_[scope] = text
    return help_


def spawn_scope(prefix: str = "custom:repo2docker:") -> dict[str, dict[str, Any]]:
    """The spawner client's custom scope: read which images any user may start."""
    return {
        f"{prefix}spawn": {
            "description": "Read which environments any user may start (for spawners).",
        }
    }


def spawner_role(
    client_name: str = "repo2docker-spawner",
    service_name: str = "repo2docker",
    prefix: str = "custom:repo2docker:",
) -> dict[str, Any]:
    """The role of the token-only service ``client_name`` the hub's spawner uses."""
    return {
        "name": client_name,
        "description": "The hub's spawner asks repo2docker-service what users may start.",
        "scopes": [service_access(service_name), f"{prefix}spawn"],
        "services": [client_name],
    }


# ------------------------------------------------------------------ the service
def register_service(
    c: Any,
    *,
    name: str = "repo2docker",
    scope_prefix: str = "custom:repo2docker:",
    port: int = 8585,
    url: str | None = None,
    api_token: str | None = None,
    config_file: Path | None = None,
    groups: tuple[str, str, str] = GROUPS,
    manage_roles: bool | None = None,
    hub_admins: bool = True,
    binder_alias: bool = False,
) -> None:
    """Scopes, roles and the service entry.

    Args:
        c: the hub's config.
        name: the service's name (its URL prefix is ``/services/<name>/``).
        scope_prefix: the prefix of the service's custom scopes.
        port: port of a managed service (on 127.0.0.1).
        url: an external service's URL as the hub and proxy reach it; with ``api_token``.
        api_token: an external service's token (then no process is started).
        config_file: a managed service's config file (``REPO2DOCKER_SERVICE_CONFIG``), used
            when it exists.
        groups: the viewer, builder and admin groups the roles are granted to (with a
            group-managing authenticator: the identity provider's group names).
        manage_roles: whether the authenticator grants the roles (then they have no
            members here); None asks :func:`authenticator_manages`.
        hub_admins: hub admins administer environments (the service's
            ``hub_admins_are_admins`` and the spawner's); False: only the roles count.
        binder_alias: BinderHub's build API at ``/services/binder/`` too
            (:func:`add_binder_alias`; an external service sets its own ``binder_prefix``).
    """
    if manage_roles is None:
        manage_roles = authenticator_manages(c, "roles")
    role_groups = None if manage_roles else groups
    scopes = service_scopes(scope_prefix)
    c.JupyterHub.custom_scopes.update(scopes)
    c.JupyterHub.load_roles.extend(service_roles(name, scope_prefix, groups=role_groups))
    c.Repo2DockerMixin.hub_admins_are_admins = hub_admins
    service: dict[str, Any] = {
        "name": name,
        # browser sessions get these scopes if the user holds them
        "oauth_client_allowed_scopes": [*scopes, *SESSION_SCOPES],
        "oauth_no_confirm": True,
    }
    if api_token:
        service["url"] = url or f"http://127.0.0.1:{port}"
        service["api_token"] = api_token
    else:
        environment = _managed_environment(port, role_groups, hub_admins, config_file)
        if binder_alias:
            environment[BINDER_PREFIX_ENV] = "/services/binder/"
        service["url"] = f"http://127.0.0.1:{port}"
        service["command"] = [sys.executable, "-m", "repo2docker_service", "--port", str(port)]
        service["environment"] = environment
    c.JupyterHub.services.append(service)
    if binder_alias:
        add_binder_alias(c, url=service["url"])


def _managed_environment(
    port: int,
    role_groups: tuple[str, str, str] | None,
    hub_admins: bool,
    config_file: Path | None,
) -> dict[str, str]:
    """The environment of a hub-managed service (see :func:`register_service`)."""
    environment = {
        "REPO2DOCKER_SERVICE_PORT": str(port),
        "REPO2DOCKER_SERVICE_ACCESS_HELP": json.dumps(access_help(role_groups)),
    }
    if not hub_admins:
        environment["REPO2DOCKER_SERVICE_HUB_ADMINS_ARE_ADMINS"] = "0"
    if config_file is not None and Path(config_file).exists():
        environment["REPO2DOCKER_SERVICE_CONFIG"] = str(config_file)
    return environment


def add_binder_alias(c: Any, *, url: str, name: str = "binder") -> str:
    """Route ``/services/<name>/`` to the service too, for BinderHub's build API clients.

    jupyterhub-fancy-profiles' "Build image" calls ``/services/binder/build/gh/...`` (a
    fixed path, where 2i2c's binderhub-service lives). This adds a second service entry
    with the service's URL and nothing else (no process, no token, no OAuth): the proxy
    routes the path to the service, which serves ``build/...`` there when its
    ``binder_prefix`` is ``/services/<name>/``. Tokens are checked by the service as
    everywhere (the caller needs ``access:services!service=<service>`` and the service's
    scopes); browser sessions work under the service's own prefix only. A hub that runs a
    real BinderHub under that name cannot have both.

    Args:
        c: the hub's config.
        url: the service's URL as the proxy reaches it (the service entry's ``url``).
        name: the alias (fancy-profiles needs ``binder``).

    Returns:
        The prefix to set as the service's ``binder_prefix``: ``/services/<name>/``.
    """
    c.JupyterHub.services.append({"name": name, "url": url})
    return f"/services/{name}/"


def persistent_token(path: str | os.PathLike[str]) -> str:
    """The token stored at ``path``; a new random one is written (mode 0600) if missing.

    For hub configs that need a token to stay the same across restarts (the spawner
    client's) without asking the admin to make one.
    """
    path = Path(path)
    if path.exists():
        token = path.read_text().strip()
        if token:
            return token
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token


# ------------------------------------------------------------------ the spawner
def configure_jupyterhub(
    c: Any,
    *,
    service_name: str = "repo2docker",
    service_url: str | None = None,
    scope_prefix: str = "custom:repo2docker:",
    token: str | None = None,
    client_name: str = "repo2docker-spawner",
    spawner_class: str | None = "repo2docker_service.hub.dockerspawner.Repo2DockerSpawner",
    server_token_scopes: bool = True,
    named_servers: bool = True,
    register_client: bool = True,
    navbar_link: bool = True,
) -> str:
    """Add what the spawner helpers need to a hub config (``jupyterhub_config.py``).

    Adds the spawn scope, the token-only service ``client_name`` and its role
    (:func:`add_spawner_client`), points the spawner at the service
    (``c.Repo2DockerMixin.service_url/service_token``), sets the spawner class, and does
    what the flags below say.

    Args:
        c: the config object of ``jupyterhub_config.py``.
        service_name, scope_prefix: the service's name (``c.JupyterHub.services``), scopes.
        service_url: the service as the hub process reaches it, with its prefix (default
            $REPO2DOCKER_SERVICE_URL, else ``http://127.0.0.1:8585/services/<name>/``).
        token: the client's API token. Default: $REPO2DOCKER_SPAWNER_TOKEN, else a random
            one per hub process (demos; set the variable in production).
        client_name: the token-only service the token belongs to.
        spawner_class: the spawner class, or None to leave it alone (KubeSpawner).
        server_token_scopes: servers' tokens carry :func:`server_scopes` (view).
        named_servers: ``allow_named_servers`` (launch links start named servers).
        register_client: add the token-only service to ``c.JupyterHub.services`` (False:
            it is declared elsewhere, e.g. z2jh's ``hub.services``, which keeps its token).
        navbar_link: link the service from the hub's pages (:func:`add_navbar_link`).

    Returns:
        The token (so other config, e.g. KubeSpawner's ``make_profile_list``, can use it).
    """
    token = _spawner_token(token)
    add_spawner_client(
        c,
        client_name=client_name,
        token=token if register_client else None,
        service_name=service_name,
        scope_prefix=scope_prefix,
    )
    default_url = f"http://127.0.0.1:8585/services/{service_name}/"
    c.Repo2DockerMixin.service_url = service_url or os.environ.get(URL_ENV) or default_url
    c.Repo2DockerMixin.service_token = token
    c.Repo2DockerMixin.scope_prefix = scope_prefix
    if spawner_class:
        c.JupyterHub.spawner_class = spawner_class
    if server_token_scopes:
        c.Spawner.server_token_scopes = server_scopes(service_name, scope_prefix)
    if named_servers:
        c.JupyterHub.allow_named_servers = True
    if navbar_link:
        add_navbar_link(c, service_name=service_name)
    return token


def add_navbar_link(
    c: Any,
    *,
    service_name: str = "repo2docker",
    label: str = "Environments",
    hint: str = "Build a ready-to-start environment from a git repository, or launch one:",
) -> None:
    """Link the environments page from the hub's navbar and its home and spawn pages.

    Puts :data:`TEMPLATES` first in ``c.JupyterHub.template_paths``. Its ``page.html``
    ``{% extends "templates/page.html" %}`` (the hub's own) and adds one item to the
    ``nav_bar_left_items`` block; ``home.html`` and ``spawn.html`` extend the hub's and add a
    line above its ``main`` block. Nothing of the hub's templates is replaced, so the hub's
    later changes and other templates in ``template_paths`` that extend ``templates/...``
    keep working (a second ``page.html`` earlier in the list wins over this one). The link
    shows only to users who may reach the service (the hub lists only those in ``services``).

    Args:
        c: the config object of ``jupyterhub_config.py``.
        service_name: the service's name in ``c.JupyterHub.services``.
        label: the link's text.
        hint: the sentence before the link on the home and spawn pages.
    """
    ours, current = str(TEMPLATES), c.JupyterHub.template_paths
    if isinstance(current, list):
        if ours not in current:
            c.JupyterHub.template_paths = [ours, *current]
    elif ours not in current.to_dict().get("prepend", []):
        # not set yet (a lazy value): the hub appends its own templates' path by itself
        current.prepend([ours])
    c.JupyterHub.template_vars.update(
        {
            "repo2docker_service_name": service_name,
            "repo2docker_link_label": label,
            "repo2docker_hint": hint,
        }
    )


def add_spawner_client(
    c: Any,
    *,
    client_name: str = "repo2docker-spawner",
    token: str | None,
    service_name: str = "repo2docker",
    scope_prefix: str = "custom:repo2docker:",
) -> None:
    """The spawn scope, the token-only service ``client_name`` and its role.

    Args:
        c: the hub's config.
        client_name: the token-only service (no URL, no process) the spawner's token
            belongs to.
        token: its API token; None when the service is declared elsewhere (z2jh's
            ``hub.services``), then only the scope and the role are added.
        service_name: the service the client may reach.
        scope_prefix: the service's scope prefix.
    """
    c.JupyterHub.custom_scopes.update(spawn_scope(scope_prefix))
    if token is not None:
        c.JupyterHub.services.append({"name": client_name, "api_token": token})
    c.JupyterHub.load_roles.append(spawner_role(client_name, service_name, scope_prefix))


def server_scopes(
    service_name: str = "repo2docker", prefix: str = "custom:repo2docker:"
) -> list[str]:
    """``Spawner.server_token_scopes``: the hub's defaults plus the service's view scope.

    Servers' ``$JUPYTERHUB_API_TOKEN`` then carries ``access:services!service=<service_name>``
    and ``<prefix>view`` (granted only when the user holds them), so JupyterLab extensions in
    the server can call the service.
    """
    extra = [service_access(service_name), f"{prefix}view"]
    return ["users:activity!user", "access:servers!server", *extra]


def _spawner_token(token: str | None) -> str:
    """``token``, else $REPO2DOCKER_SPAWNER_TOKEN, else a random one (with a warning)."""
    token = token or os.environ.get(TOKEN_ENV) or ""
    if not token:
        warnings.warn(
            f"${TOKEN_ENV} is not set: using a random token for this hub process",
            stacklevel=3,
        )
        token = secrets.token_hex(32)
    return token
