"""Ask repo2docker-service, from the hub, which images a user may start.

The spawner authenticates to the service with a JupyterHub API token whose owner (a
"service" without URL, default ``repo2docker-spawner``) holds
``access:services!service=repo2docker`` and ``custom:repo2docker:spawn``. That scope lets
it read which images any user may start, and nothing else. Whether the user holds the
service's admin scope (then every image is startable) is read from the hub's own role
data, in the hub process (:func:`user_holds_scope`), and passed along as ``?admin=true``.
"""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import quote

from jupyterhub.scopes import get_scopes_for
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

__all__ = [
    "DEFAULT_SERVICE_URL",
    "TOKEN_ENV",
    "URL_ENV",
    "ServiceClient",
    "ServiceUnavailable",
    "default_service_url",
    "scopes_held",
    "user_holds_scope",
]

DEFAULT_SERVICE_URL = "http://127.0.0.1:8585/services/repo2docker/"
#: environment variable holding the spawner client's token (set it in the hub's environment)
TOKEN_ENV = "REPO2DOCKER_SPAWNER_TOKEN"  # noqa: S105 (a variable name, not a secret)
#: environment variable holding the service's URL as the hub process reaches it
URL_ENV = "REPO2DOCKER_SERVICE_URL"


def default_service_url() -> str:
    """The service's URL as the hub reaches it: ``$REPO2DOCKER_SERVICE_URL`` or the default."""
    return os.environ.get(URL_ENV) or DEFAULT_SERVICE_URL


class ServiceUnavailable(Exception):
    """The service could not answer (down, wrong URL, bad token); the message says which."""


class ServiceClient:
    """Asks repo2docker-service which images a user may start.

    Args:
        url: the service's base URL as the hub reaches it, e.g.
            ``http://127.0.0.1:8585/services/repo2docker/`` (ends with the service prefix).
        token: a JupyterHub API token holding ``access:services!service=<name>`` and
            ``<prefix>spawn`` (or ``<prefix>admin``).
        timeout: seconds for one request.
    """

    def __init__(self, *, url: str, token: str, timeout: float = 10.0) -> None:
        self.url = url if url.endswith("/") else url + "/"
        self.token = token
        self.timeout = timeout

    async def images_for(self, username: str, *, admin: bool = False) -> dict[str, Any]:
        """``GET api/users/{username}/images``.

        Args:
            username: the JupyterHub user.
            admin: the user holds the service's admin scope (every image is startable).

        Returns:
            The JSON answer: ``{"user", "all", "images": [...], "machine_profiles", "defaults"}``;
            each image has ``image``, ``references``, ``display_name``, ``repo``, ``ref``,
            ``built_at``, ``limits`` (``cpu``, ``memory``) among others.

        Raises:
            ServiceUnavailable: no answer, or an error answer (message included).
        """
        if not self.token:
            raise ServiceUnavailable(
                f"no token for repo2docker-service: set ${TOKEN_ENV} in the hub's environment "
                "(see repo2docker_service.hub.config.configure_jupyterhub)"
            )
        url = f"{self.url}api/users/{quote(username, safe='')}/images"
        if admin:
            url += "?admin=true"
        request = HTTPRequest(
            url,
            headers={"Authorization": f"token {self.token}", "Accept": "application/json"},
            request_timeout=self.timeout,
            connect_timeout=self.timeout,
        )
        try:
            response = await AsyncHTTPClient().fetch(request)
        except HTTPClientError as e:
            raise ServiceUnavailable(
                f"repo2docker-service at {self.url} answered {e.code}" + _error_message(e)
            ) from None
        except (OSError, TimeoutError) as e:
            raise ServiceUnavailable(
                f"repo2docker-service at {self.url} cannot be reached ({e}): is it running?"
            ) from None
        answer: dict[str, Any] = json.loads(response.body)
        return answer


def _error_message(error: HTTPClientError) -> str:
    """``": <message>"`` from the service's JSON error body, or ``""``."""
    if error.response is None or not error.response.body:
        return ""
    try:
        message = json.loads(error.response.body).get("message", "")
    except (ValueError, AttributeError):
        return ""
    return f": {message}" if message else ""


HUB_ADMINS_ENV = "REPO2DOCKER_SERVICE_HUB_ADMINS_ARE_ADMINS"


def hub_admins_from_environment() -> bool:
    """Whether hub admins administer environments, as the hub's environment says.

    The README's snippet hands every ``REPO2DOCKER_SERVICE_*`` variable of the hub's
    environment to the service, whose ``hub_admins_are_admins`` defaults to
    ``$REPO2DOCKER_SERVICE_HUB_ADMINS_ARE_ADMINS``; the hub-side helpers read the same
    variable the same way ("0", "false", "no" or "off" turn it off), so both sides agree.
    """
    value = os.environ.get(HUB_ADMINS_ENV, "1")
    return value.strip().lower() not in {"0", "false", "no", "off"}


def user_holds_scope(user: Any, scope: str, *, hub_admins: bool = False) -> bool:
    """Whether a hub user holds ``scope`` through their roles and groups (hub process only).

    Args:
        user: ``spawner.user`` (a ``jupyterhub.user.User``); anything without an
            ``orm_user`` gives False.
        scope: a full scope such as ``custom:repo2docker:admin``.
        hub_admins: a hub admin holds every scope (the service's ``hub_admins_are_admins``).
    """
    if hub_admins and getattr(user, "admin", False) is True:
        return True
    return scope in scopes_held(user)


def scopes_held(user: Any) -> set[str]:
    """The scopes a hub user holds through roles and groups, expanded (hub process only);
    ``set()`` for anything without an ``orm_user``."""
    orm_user = getattr(user, "orm_user", None)
    if orm_user is None:
        return set()
    return set(get_scopes_for(orm_user))
