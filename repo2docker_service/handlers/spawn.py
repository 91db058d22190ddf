"""The spawner API: which images may user X start, with which limits.

``GET api/users/{name}/images`` answers the hub's spawner (DockerSpawner/KubeSpawner helpers
in :mod:`repo2docker_service.spawner`) and JupyterLab extensions. Who may ask:

- the user themself (with ``<prefix>view``): their own images and shared ones (all of them
  when they hold ``<prefix>admin``);
- a caller holding ``<prefix>admin``: about anyone;
- a caller holding ``<prefix>spawn`` (the hub's spawner client; see ``deploy/`` and
  ``docs/kubernetes.md``): about anyone. This scope reads the whole catalog and nothing else.

The images a user may start are their own and the shared ones; all images when that user
holds ``<prefix>admin``. A caller asking about someone else says so with ``?admin=true``
(the hub knows the user's scopes, the service does not); only ``spawn``/``admin`` callers
can ask about others, so nobody can widen their own answer.
"""

from __future__ import annotations

from typing import Any

from ..auth import APIHandler, needs_scope
from ..errors import Forbidden, UpstreamError
from ..images.docker import split_reference
from ..limits import normalize_profiles, resolve_limits

#: the scope (after the prefix) that lets a client ask about any user
SPAWN_SCOPE = "spawn"

TRUE = ("1", "true", "yes")


def startable(images: list[Any], *, username: str, everything: bool) -> list[Any]:
    """The images ``username`` may start: own + shared, or all when ``everything``."""
    if everything:
        return list(images)
    return [i for i in images if i.shared or (i.owner == username)]


def spawn_model(image: Any, *, limits: dict[str, Any]) -> dict[str, Any]:
    """The API shape of one startable image: the image fields + references + limits."""
    model = image.to_dict()
    repository, _ = split_reference(image.image)
    model["references"] = [f"{repository}:{tag}" for tag in image.tags] or [image.image]
    model["limits"] = limits
    return model


class UserImagesHandler(APIHandler):
    """``GET api/users/{name}/images``."""

    def _full_scopes(self) -> set[str]:
        return set((self.current_user or {}).get("scopes", []))

    @needs_scope(None)  # checked below: view for oneself, spawn or admin for anyone
    async def get(self, name: str) -> None:
        app = self.app
        caller_is_user = self.current_user.get("kind", "user") == "user"
        spawn_client = app.scope_prefix + SPAWN_SCOPE in self._full_scopes()
        if caller_is_user and name == self.username:
            if "view" not in self.scopes:
                raise Forbidden(
                    f"Missing permission {app.scope_prefix + 'view'!r}: ask a hub admin to "
                    "grant you a role with it"
                )
            everything = "admin" in self.scopes
        elif spawn_client or "admin" in self.scopes:
            everything = self.get_argument("admin", "false").lower() in TRUE
        else:
            raise Forbidden(
                f"Only {name!r} themself, or a client with {app.scope_prefix + SPAWN_SCOPE!r} or "
                f"{app.scope_prefix + 'admin'!r}, may list the images {name!r} may start"
            )
        try:
            profiles = normalize_profiles(app.machine_profiles)
        except ValueError as e:
            raise UpstreamError(f"machine_profiles is misconfigured: {e}") from None
        images = startable(await app.catalog.list_images(), username=name, everything=everything)
        models = []
        for image in images:
            limits = resolve_limits(
                image.hints,
                machine_profiles=app.machine_profiles,
                default_cpu=app.default_cpu_limit,
                default_memory=app.default_memory_limit,
            )
            models.append(spawn_model(image, limits=limits.to_dict()))
        self.write_json(
            {
                "user": name,
                "all": everything,
                "images": models,
                "machine_profiles": profiles,
                "defaults": {
                    "cpu": app.default_cpu_limit or None,
                    "memory": app.default_memory_limit or None,
                },
            }
        )


default_handlers = [
    (r"api/users/(?P<name>[^/]+)/images", UserImagesHandler),
]
