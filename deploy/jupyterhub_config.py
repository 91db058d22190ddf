# Register repo2docker-service with JupyterHub: add this to your jupyterhub_config.py,
# after your authenticator's settings.
#
# It declares the service's custom scopes, one role per scope (granted to groups, so
# permissions are managed in the hub's admin page or by your identity provider's groups),
# and the managed service itself. `oauth_client_allowed_scopes` is required: without it
# browser sessions never carry the custom scopes and every user looks like they have no
# permission. Hub admins administer environments too (set
# REPO2DOCKER_SERVICE_HUB_ADMINS_ARE_ADMINS=0 in the hub's environment to turn that off:
# the service and the hub-side spawner helpers both read it).
import os
import sys

SERVICE = "repo2docker"
PREFIX = "custom:repo2docker:"
SERVICE_PORT = int(os.environ.get("REPO2DOCKER_SERVICE_PORT", "8585"))
# the viewer, builder and admin groups the roles are granted to; JupyterHub creates them.
# With an authenticator that manages groups (SSO), name your identity provider's groups.
GROUPS = ("repo2docker-viewers", "repo2docker-builders", "repo2docker-admins")
# An authenticator that manages roles (`manage_roles = True`, in any section: a subclass
# such as c.RolesFromGroups counts too) grants the roles itself at login, and JupyterHub then
# refuses role members here: the roles get none.
_roles_managed = any(
    isinstance(c[name], dict) and c[name].get("manage_roles") is True for name in list(c)
)

c.JupyterHub.custom_scopes.update(
    {
        f"{PREFIX}view": {
            "description": "See your own and shared environments and your builds.",
        },
        f"{PREFIX}build": {
            "description": "Build, rebuild, cancel and delete your own environments.",
            "subscopes": [f"{PREFIX}view"],
        },
        f"{PREFIX}admin": {
            "description": "Manage every user's environments and build shared ones.",
            "subscopes": [f"{PREFIX}build"],
        },
    }
)

_access = f"access:services!service={SERVICE}"
_roles = [
    {
        "name": "repo2docker-viewer",
        "description": "May open the environments page and start images.",
        "scopes": [_access, f"{PREFIX}view"],
    },
    {
        "name": "repo2docker-builder",
        "description": "May build environments from git repositories.",
        "scopes": [_access, f"{PREFIX}build"],
    },
    {
        "name": "repo2docker-admin",
        "description": "May manage all environments, including shared ones.",
        "scopes": [_access, f"{PREFIX}admin"],
    },
]
if not _roles_managed:
    for _role, _group in zip(_roles, GROUPS, strict=True):
        _role["groups"] = [_group]
# extend, never assign: a later `c.JupyterHub.load_roles = [...]` would drop these roles
c.JupyterHub.load_roles.extend(_roles)

c.JupyterHub.services.append(
    {
        "name": SERVICE,
        "url": f"http://127.0.0.1:{SERVICE_PORT}",
        "command": [sys.executable, "-m", "repo2docker_service"],
        # browser sessions get these scopes if the user holds them; read:servers!user: the
        # environments page shows which environments have a running server of the user
        "oauth_client_allowed_scopes": [
            f"{PREFIX}view",
            f"{PREFIX}build",
            f"{PREFIX}admin",
            "read:servers!user",
        ],
        # users already logged in at the hub are not asked to confirm
        "oauth_no_confirm": True,
        "environment": {
            # config for the service itself; see `repo2docker-service --help-all`
            key: value
            for key, value in os.environ.items()
            if key.startswith("REPO2DOCKER_SERVICE_")
        },
    }
)
