"""KubeSpawner's ``profile_list`` from the images repo2docker-service lists for the user.

:func:`make_profile_list` builds an async ``KubeSpawner.profile_list`` callable from the
service's answer (one profile per image, with ``kubespawner_override`` image and limits);
KubeSpawner evaluates it again in ``load_user_options`` at spawn time, so an image the user
may no longer start is refused there. Nothing here imports kubespawner.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Any

from tornado import web

from .client import (
    TOKEN_ENV,
    ServiceClient,
    ServiceUnavailable,
    default_service_url,
    user_holds_scope,
)
from .forms import describe_limits, format_built_at

__all__ = ["image_profile", "make_profile_list"]


def image_profile(entry: dict[str, Any]) -> dict[str, Any]:
    """One KubeSpawner profile for one image of the service's answer.

    Returns:
        ``display_name``, ``slug`` (``<owner_slug>--<name>``), ``description`` (repo@ref,
        built date, limits) and ``kubespawner_override`` (``image``, and ``cpu_limit`` /
        ``mem_limit`` when the service sets them).
    """
    limits = entry.get("limits") or {}
    override: dict[str, Any] = {"image": entry["image"]}
    if limits.get("cpu"):
        override["cpu_limit"] = float(limits["cpu"])
    if limits.get("memory"):
        override["mem_limit"] = limits["memory"]
    return {
        "display_name": entry.get("display_name") or entry["name"],
        "slug": f"{entry['owner_slug']}--{entry['name']}",
        "description": (
            f"{entry.get('repo', '')}@{entry.get('ref', '')} · built "
            f"{format_built_at(entry.get('built_at'))} · {describe_limits(limits)}"
        ),
        "kubespawner_override": override,
    }


def make_profile_list(
    *,
    service_url: str | None = None,
    token: str | None = None,
    scope_prefix: str = "custom:repo2docker:",
    timeout: float = 10.0,
    hub_admins: bool = True,
) -> Callable[[Any], Awaitable[list[dict[str, Any]]]]:
    """An async ``KubeSpawner.profile_list`` callable: one profile per startable image.

    Each profile: ``display_name``, ``slug`` (``<owner_slug>--<name>``, so
    ``?profile=<slug>`` preselects it), ``description`` (repo@ref, built date, limits) and
    ``kubespawner_override`` with ``image`` and, when the service sets them, ``cpu_limit``
    and ``mem_limit``. KubeSpawner calls it for the form and again in
    ``load_user_options`` when the server starts, so the choice is checked then. The
    callable raises ``web.HTTPError(503)`` when the service cannot answer.

    Args:
        service_url: the service as the hub reaches it (default $REPO2DOCKER_SERVICE_URL or
            http://127.0.0.1:8585/services/repo2docker/; on Kubernetes e.g.
            ``http://repo2docker:8585/services/repo2docker/``).
        token: the spawner client's token (default $REPO2DOCKER_SPAWNER_TOKEN).
        scope_prefix: the service's scope prefix.
        timeout: seconds per request.
        hub_admins: hub admins may start every image (as the service's
            ``hub_admins_are_admins``).

    Usage::

        c.KubeSpawner.profile_list = make_profile_list()
    """

    async def profile_list(spawner: Any) -> list[dict[str, Any]]:
        client = ServiceClient(
            url=service_url or default_service_url(),
            token=token if token is not None else os.environ.get(TOKEN_ENV, ""),
            timeout=timeout,
        )
        admin = user_holds_scope(spawner.user, scope_prefix + "admin", hub_admins=hub_admins)
        try:
            answer = await client.images_for(spawner.user.name, admin=admin)
        except ServiceUnavailable as e:
            spawner.log.error("repo2docker profile_list for %s: %s", spawner.user.name, e)
            raise web.HTTPError(503, f"Cannot list environments right now: {e}") from None
        return [image_profile(entry) for entry in answer.get("images", [])]

    return profile_list
