"""Image API handlers: one environment with its tag history, delete, roll back, prune.

Each parses, asks the Caller, calls one catalog or lifecycle method, serializes
(``images/lifecycle.py`` holds the rules).
"""

from __future__ import annotations

from typing import Any

from ..auth import APIHandler, needs_scope
from ..errors import InvalidInput, NotFound
from ..images.catalog import ImageInfo
from ..images.reference import is_valid_tag


def parse_latest_body(body: dict[str, Any]) -> str | None:
    """``{"tag": "<commit tag>"}`` pins ``latest`` there; ``{"tag": null}`` unpins.

    Raises:
        InvalidInput: another field, a missing ``tag``, or one that is not a tag.
    """
    unknown = sorted(set(body) - {"tag"})
    if unknown or "tag" not in body:
        raise InvalidInput(
            'Send {"tag": "<a commit tag from the history>"} to roll back and pin latest, '
            'or {"tag": null} to unpin it'
        )
    tag = body["tag"]
    if tag is None:
        return None
    if not isinstance(tag, str) or not is_valid_tag(tag):
        raise InvalidInput("Field 'tag' must be a tag from the environment's history, or null")
    return tag


def parse_prune_body(body: dict[str, Any]) -> bool:
    """``{"dry_run": bool}`` (default false) -> dry_run.

    Raises:
        InvalidInput: another field, or ``dry_run`` not a boolean.
    """
    unknown = sorted(set(body) - {"dry_run"})
    dry_run = body.get("dry_run", False)
    if unknown or not isinstance(dry_run, bool):
        raise InvalidInput('Send {"dry_run": true} to see what would go, or {} to prune')
    return dry_run


class ImageHandler(APIHandler):
    async def _visible(self, owner_slug: str, name: str) -> ImageInfo:
        image = await self.services.catalog.get(owner_slug=owner_slug, name=name)
        if image is None or not self.me.may_see(image):
            raise NotFound(f"No image {owner_slug}/{name} that you can see")
        return image

    @needs_scope("view")
    async def get(self, owner_slug: str, name: str) -> None:
        """The environment with every commit tag, newest first."""
        found = await self.services.lifecycle.history(owner_slug=owner_slug, name=name)
        if found is None or not self.me.may_see(found.info):
            raise NotFound(f"No image {owner_slug}/{name} that you can see")
        self.write_json(found.to_dict())

    @needs_scope("build")
    async def delete(self, owner_slug: str, name: str) -> None:
        image = await self._visible(owner_slug, name)
        if not self.me.may_build_for(image.owner, shared=image.shared):
            raise self.me.admin_only("delete shared or other users' images")
        force = self.get_argument("force", "false").lower() in ("1", "true", "yes")
        await self.services.catalog.delete(owner_slug=owner_slug, name=name, force=force)
        self.set_status(204)
        self.finish()


class LatestHandler(ImageHandler):
    @needs_scope("build")
    async def post(self, owner_slug: str, name: str) -> None:
        """Roll ``latest`` back to a tag and pin it, or unpin (ownership as for delete)."""
        tag = parse_latest_body(self.get_json_body())
        image = await self._visible(owner_slug, name)
        if not self.me.may_build_for(image.owner, shared=image.shared):
            raise self.me.admin_only("roll back shared or other users' environments")
        found = await self.services.lifecycle.set_latest(owner_slug=owner_slug, name=name, tag=tag)
        self.services.log.info(
            "%s/%s: latest %s by %s",
            owner_slug,
            name,
            f"pinned at {tag}" if tag else "unpinned",
            self.me.name,
        )
        self.write_json(found.to_dict())


class PruneHandler(APIHandler):
    @needs_scope("admin")
    async def post(self) -> None:
        """Apply the retention rule to every environment (or only report, with dry_run)."""
        dry_run = parse_prune_body(self.get_json_body())
        report = await self.services.lifecycle.prune(dry_run=dry_run)
        self.write_json(report)


_IMG = r"(?P<owner_slug>[a-z0-9._-]{1,128})/(?P<name>[a-z0-9._-]{1,63})"
default_handlers = [
    (r"api/images/prune", PruneHandler),
    (rf"api/images/{_IMG}", ImageHandler),
    (rf"api/images/{_IMG}/latest", LatestHandler),
]
