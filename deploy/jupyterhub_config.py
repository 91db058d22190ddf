# Register repo2docker-service with JupyterHub: add this to your jupyterhub_config.py.
#
# It declares the service's custom scopes, one role per scope (granted to groups, so
# permissions are managed in the hub's admin page), and the managed service itself.
# `oauth_client_allowed_scopes` is required: without it browser sessions never carry
# the custom scopes and every user looks like they have no permission.
import os
import sys

SERVICE = "repo2docker"
PREFIX = "custom:repo2docker:"
SERVICE_PORT = int(os.environ.get("REPO2DOCKER_SERVICE_PORT", "8585"))

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
# the groups the roles below are granted to (members are managed in the hub's admin page)
c.JupyterHub.load_groups.update(
    {g: {} for g in ("repo2docker-viewers", "repo2docker-builders", "repo2docker-admins")}
)
c.JupyterHub.load_roles.extend(
    [
        {
            "name": "repo2docker-viewer",
            "description": "May open the environments page and start images.",
            "scopes": [_access, f"{PREFIX}view"],
            "groups": ["repo2docker-viewers"],
        },
        {
            "name": "repo2docker-builder",
            "description": "May build environments from git repositories.",
            "scopes": [_access, f"{PREFIX}build"],
            "groups": ["repo2docker-builders"],
        },
        {
            "name": "repo2docker-admin",
            "description": "May manage all environments, including shared ones.",
            "scopes": [_access, f"{PREFIX}admin"],
            "groups": ["repo2docker-admins"],
        },
    ]
)

c.JupyterHub.services.append(
    {
        "name": SERVICE,
        "url": f"http://127.0.0.1:{SERVICE_PORT}",
        "command": [sys.executable, "-m", "repo2docker_service"],
        # browser sessions get these scopes if the user holds them
        "oauth_client_allowed_scopes": [f"{PREFIX}view", f"{PREFIX}build", f"{PREFIX}admin"],
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
