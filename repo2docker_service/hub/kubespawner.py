"""KubeSpawner's ``profile_list`` from the images repo2docker-service lists for the user.

:func:`make_profile_list` builds an async ``KubeSpawner.profile_list`` callable from the
service's answer (one profile per image, with ``kubespawner_override`` image and limits);
KubeSpawner evaluates it again in ``load_user_options`` at spawn time, so an image the user
may no longer start is refused there.

:func:`make_image_check` is a ``pre_spawn_hook`` for hubs whose form lets users type or
build an image (jupyterhub-fancy-profiles' unlisted choice and "Build image", whose
``kubespawner_override: {image: "{value}"}`` starts whatever the form posts): the image the
spawner is about to start must be one the admin configured, or one the service lists for
that user. Nothing here imports kubespawner.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from jupyterhub.utils import maybe_future
from tornado import web

from .client import (
    TOKEN_ENV,
    ServiceClient,
    ServiceUnavailable,
    default_service_url,
    hub_admins_from_environment,
    user_holds_scope,
)
from .forms import describe_limits, find_image, format_built_at, not_available

__all__ = ["configured_images", "image_profile", "make_image_check", "make_profile_list"]


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
    hub_admins: bool | None = None,
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
            ``hub_admins_are_admins``); None: $REPO2DOCKER_SERVICE_HUB_ADMINS_ARE_ADMINS
            (:func:`~.client.hub_admins_from_environment`).

    Usage::

        c.KubeSpawner.profile_list = make_profile_list()
    """

    async def profile_list(spawner: Any) -> list[dict[str, Any]]:
        client = ServiceClient(
            url=service_url or default_service_url(),
            token=token if token is not None else os.environ.get(TOKEN_ENV, ""),
            timeout=timeout,
        )
        admins = hub_admins_from_environment() if hub_admins is None else hub_admins
        admin = user_holds_scope(spawner.user, scope_prefix + "admin", hub_admins=admins)
        try:
            answer = await client.images_for(spawner.user.name, admin=admin)
        except ServiceUnavailable as e:
            spawner.log.error("repo2docker profile_list for %s: %s", spawner.user.name, e)
            raise web.HTTPError(503, f"Cannot list environments right now: {e}") from None
        return [image_profile(entry) for entry in answer.get("images", [])]

    return profile_list


def configured_images(profiles: Iterable[dict[str, Any]]) -> set[str]:
    """The images an admin wrote into a ``profile_list`` (profiles and option choices).

    Templated overrides (an unlisted choice's ``"{value}"``) are what users type: not these.
    """
    found: set[str] = set()
    overrides = []
    for profile in profiles:
        overrides.append(profile.get("kubespawner_override") or {})
        for option in (profile.get("profile_options") or {}).values():
            for choice in (option.get("choices") or {}).values():
                overrides.append(choice.get("kubespawner_override") or {})
    for override in overrides:
        image = override.get("image")
        if isinstance(image, str) and "{value}" not in image:
            found.add(image)
    return found


def _configured_default(spawner: Any) -> str:
    """``KubeSpawner.image`` as configured: the overrides of a former start are not config."""
    image: str = type(spawner).class_traits()["image"].default()
    for section in spawner.section_names():
        if section in spawner.config and "image" in spawner.config[section]:
            image = spawner.config[section]["image"]
    return image


def make_image_check(
    *,
    service_url: str | None = None,
    token: str | None = None,
    scope_prefix: str = "custom:repo2docker:",
    timeout: float = 10.0,
) -> Callable[[Any], Awaitable[None]]:
    """An async ``KubeSpawner.pre_spawn_hook``: start only images the user may start.

    It applies the user's choices first (KubeSpawner's ``load_user_options``, which start
    runs again with the same result), then accepts ``spawner.image`` when it is the
    configured ``KubeSpawner.image``, an image written in the ``profile_list``, or one the
    service lists for that user now (their own, shared ones, all for holders of
    ``<prefix>admin``). Anything else (another user's image, any typed name) is refused
    with 403 and the message the DockerSpawner helper gives; 503 when the service cannot
    answer.

    Args: as :func:`make_profile_list`.

    Usage (z2jh ``hub.extraConfig``, with fancy-profiles; see docs/kubernetes.md)::

        c.KubeSpawner.pre_spawn_hook = make_image_check()
    """

    async def check_image(spawner: Any) -> None:
        profiles = spawner.profile_list
        if callable(profiles):
            profiles = await maybe_future(profiles(spawner))
        allowed = {_configured_default(spawner)} | configured_images(profiles or [])
        await spawner.load_user_options()
        image, name = spawner.image, spawner.user.name
        if image in allowed:
            return
        client = ServiceClient(
            url=service_url or default_service_url(),
            token=token if token is not None else os.environ.get(TOKEN_ENV, ""),
            timeout=timeout,
        )
        admin = user_holds_scope(spawner.user, scope_prefix + "admin")
        try:
            answer = await client.images_for(name, admin=admin)
        except ServiceUnavailable as e:
            spawner.log.error("Cannot check image %s for %s: %s", image, name, e)
            raise web.HTTPError(
                503, f"Cannot check the environment right now: {e}. Try again shortly."
            ) from None
        if find_image(answer, image) is None:
            spawner.log.warning("Refusing image %r for %s: not in the service's list", image, name)
            raise web.HTTPError(403, not_available(image, name))

    return check_image
