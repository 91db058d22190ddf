"""Register repo2docker-service with a hub from Python (TLJH plugin, docker-compose).

:func:`register_service` adds to a ``jupyterhub_config.py`` config exactly what
``deploy/jupyterhub_config.py`` (the README's snippet) adds: the custom scopes, one group and
one role per scope, and the service, either managed by the hub (a ``command``) or external
(a URL and an API token, e.g. a separate container). tests/unit/test_tljh.py checks that both
stay the same.
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path
from typing import Any

__all__ = ["GROUPS", "persistent_token", "register_service"]

#: groups the roles are granted to (members are managed in the hub's admin page)
GROUPS = ("repo2docker-viewers", "repo2docker-builders", "repo2docker-admins")


def register_service(
    c: Any,
    *,
    name: str = "repo2docker",
    scope_prefix: str = "custom:repo2docker:",
    port: int = 8585,
    url: str | None = None,
    api_token: str | None = None,
    config_file: Path | None = None,
) -> None:
    """Scopes, groups, roles and the service entry.

    Args:
        c: the hub's config.
        name: the service's name (its URL prefix is ``/services/<name>/``).
        scope_prefix: the prefix of the service's custom scopes.
        port: port of a managed service (on 127.0.0.1).
        url: an external service's URL as the hub and proxy reach it; with ``api_token``.
        api_token: an external service's token (then no process is started).
        config_file: a managed service's config file (``REPO2DOCKER_SERVICE_CONFIG``), used
            when it exists.
    """
    p = scope_prefix
    c.JupyterHub.custom_scopes.update(
        {
            f"{p}view": {
                "description": "See your own and shared environments and your builds.",
            },
            f"{p}build": {
                "description": "Build, rebuild, cancel and delete your own environments.",
                "subscopes": [f"{p}view"],
            },
            f"{p}admin": {
                "description": "Manage every user's environments and build shared ones.",
                "subscopes": [f"{p}build"],
            },
        }
    )
    access = f"access:services!service={name}"
    c.JupyterHub.load_groups.update({g: {} for g in GROUPS})
    c.JupyterHub.load_roles.extend(
        [
            {
                "name": "repo2docker-viewer",
                "description": "May open the environments page and start images.",
                "scopes": [access, f"{p}view"],
                "groups": ["repo2docker-viewers"],
            },
            {
                "name": "repo2docker-builder",
                "description": "May build environments from git repositories.",
                "scopes": [access, f"{p}build"],
                "groups": ["repo2docker-builders"],
            },
            {
                "name": "repo2docker-admin",
                "description": "May manage all environments, including shared ones.",
                "scopes": [access, f"{p}admin"],
                "groups": ["repo2docker-admins"],
            },
        ]
    )
    service: dict[str, Any] = {
        "name": name,
        # browser sessions get these scopes if the user holds them
        "oauth_client_allowed_scopes": [f"{p}view", f"{p}build", f"{p}admin"],
        "oauth_no_confirm": True,
    }
    if api_token:
        service["url"] = url or f"http://127.0.0.1:{port}"
        service["api_token"] = api_token
    else:
        environment = {"REPO2DOCKER_SERVICE_PORT": str(port)}
        if config_file is not None and Path(config_file).exists():
            environment["REPO2DOCKER_SERVICE_CONFIG"] = str(config_file)
        service["url"] = f"http://127.0.0.1:{port}"
        service["command"] = [sys.executable, "-m", "repo2docker_service", "--port", str(port)]
        service["environment"] = environment
    c.JupyterHub.services.append(service)


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
