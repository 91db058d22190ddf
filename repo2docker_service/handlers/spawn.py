"""The spawner API: which images may user X start, with which limits.

``GET api/users/{name}/images`` answers the hub's spawner (DockerSpawner/KubeSpawner helpers
in :mod:`repo2docker_service.hub`) and JupyterLab extensions. Who may ask:

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
from ..errors import UpstreamError
from ..images.catalog import ImageInfo
from ..images.reference import split_reference
from ..limits import normalize_profiles, resolve_limits

TRUE = ("1", "true", "yes")


def spawn_model(image: ImageInfo, *, limits: dict[str, Any]) -> dict[str, Any]:
    """The API shape of one startable image: the image fields + references + limits."""
    model = image.to_dict()
    repository, _ = split_reference(image.image)
    model["references"] = [f"{repository}:{tag}" for tag in image.tags] or [image.image]
    model["limits"] = limits
    return model


class UserImagesHandler(APIHandler):
    """``GET api/users/{name}/images``."""

    @needs_scope(None)  # the Caller decides: view for oneself, spawn or admin for anyone
    async def get(self, name: str) -> None:
        me, conf = self.me, self.conf
        asks_all = self.get_argument("admin", "false").lower() in TRUE
        everything = me.startable_for(name, asks_all=asks_all)
        try:
            profiles = normalize_profiles(conf.machine_profiles)
        except ValueError as e:
            raise UpstreamError(f"machine_profiles is misconfigured: {e}") from None
        images = await self.services.catalog.list_images()
        models = []
        for image in images:
            if not me.may_start(image, name, everything=everything):
                continue
            limits = resolve_limits(
                image.hints,
                machine_profiles=conf.machine_profiles,
                default_cpu=conf.default_cpu_limit,
                default_memory=conf.default_memory_limit,
            )
            models.append(spawn_model(image, limits=limits.to_dict()))
        self.write_json(
            {
                "user": name,
                "all": everything,
                "images": models,
                **self.services.catalog.state().freshness(),
                "machine_profiles": profiles,
                "defaults": {
                    "cpu": conf.default_cpu_limit or None,
                    "memory": conf.default_memory_limit or None,
                },
            }
        )


default_handlers = [
    (r"api/users/(?P<name>[^/]+)/images", UserImagesHandler),
]
