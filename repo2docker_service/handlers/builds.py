"""Build and image API handlers: parse, check scope and ownership, call the manager."""

from __future__ import annotations

import asyncio
from typing import Any

from tornado.iostream import StreamClosedError

from ..auth import APIHandler, needs_scope
from ..builds.model import Build, BuildRequest
from ..errors import Forbidden, InvalidInput, NotFound
from ..sources import GitCredentials

# every field POST api/builds accepts; anything else is rejected (documented in openapi.yaml)
BUILD_FIELDS: dict[str, type | tuple[type, ...]] = {
    "repo": str,
    "ref": str,
    "name": str,
    "display_name": str,
    "force": bool,
    "shared": bool,
    "owner": str,
    "profile": str,
    "cpu": (str, int, float),
    "memory": str,
    "credentials": dict,
}
KEEPALIVE_SECONDS = 15.0


def parse_build_request(body: dict[str, Any], *, username: str) -> BuildRequest:
    """Turn a JSON body into a BuildRequest, or raise InvalidInput saying what is wrong."""
    unknown = sorted(set(body) - set(BUILD_FIELDS))
    if unknown:
        raise InvalidInput(
            f"Unknown field(s): {', '.join(unknown)}. Allowed: {', '.join(BUILD_FIELDS)}"
        )
    for key, kind in BUILD_FIELDS.items():
        value = body.get(key)
        if value is None:
            continue
        if isinstance(value, bool) and kind is not bool:
            raise InvalidInput(f"Field '{key}' has the wrong type")
        if not isinstance(value, kind):
            names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
            raise InvalidInput(f"Field '{key}' must be of type {names}")
    if not body.get("repo"):
        raise InvalidInput("Field 'repo' is required: the URL of a git repository")
    credentials = None
    if body.get("credentials") is not None:
        creds = body["credentials"]
        user, password = creds.get("username", ""), creds.get("password", creds.get("token"))
        extra = set(creds) - {"username", "password", "token"}
        if extra or not isinstance(user, str) or not isinstance(password, str) or not password:
            raise InvalidInput(
                'Field \'credentials\' must be {"username": ..., "password": ...} with strings'
            )
        try:
            credentials = GitCredentials(username=user or "git", password=password)
        except ValueError as e:
            raise InvalidInput(f"Field 'credentials' is not usable: {e}") from None
    hints = {k: str(body[k]) for k in ("profile", "cpu", "memory") if body.get(k) not in (None, "")}
    return BuildRequest(
        owner=body.get("owner") or username,
        repo=body["repo"],
        ref=body.get("ref") or "HEAD",
        name=body.get("name") or None,
        display_name=body.get("display_name") or None,
        force=bool(body.get("force", False)),
        shared=bool(body.get("shared", False)),
        hints=hints,
        credentials=credentials,
    )


class BuildsMixin:
    """Ownership rules shared by the build handlers (decided server-side from records)."""

    def visible_build(self, build_id: str) -> Build:
        build = self.app.manager.get(build_id)
        if build is None or not self.may_see_build(build):
            # the same answer whether it does not exist or is someone else's
            raise NotFound(f"No build {build_id!r} that you can see")
        return build

    def may_see_build(self, build: Build) -> bool:
        return "admin" in self.scopes or (not build.shared and build.owner == self.username)


class BuildsHandler(BuildsMixin, APIHandler):
    @needs_scope("view")
    async def get(self) -> None:
        owner = None if "admin" in self.scopes else self.username
        builds = [b for b in self.app.manager.list(owner=owner) if self.may_see_build(b)]
        self.write_json({"builds": [b.to_dict() for b in builds]})

    @needs_scope("build")
    async def post(self) -> None:
        self.app.rate_limiter.check(self.username)
        req = parse_build_request(self.get_json_body(), username=self.username)
        if (req.shared or req.owner != self.username) and "admin" not in self.scopes:
            what = "shared environments" if req.shared else f"environments for {req.owner!r}"
            raise Forbidden(f"Only admins (scope {self.app.scope_prefix}admin) may build {what}")
        result = await self.app.manager.submit(req)
        if result.cached:
            self.write_json(
                {"cached": True, "joined": False, "build": None, "image": result.image.to_dict()}
            )
            return
        build = result.build
        self.set_header("Location", f"{self.app.base_url}api/builds/{build.id}")
        self.write_json(
            {"cached": False, "joined": result.joined, "build": build.to_dict(), "image": None},
            status=200 if result.joined else 202,
        )


class BuildHandler(BuildsMixin, APIHandler):
    @needs_scope("view")
    async def get(self, build_id: str) -> None:
        self.write_json(self.visible_build(build_id).to_dict())

    @needs_scope("build")
    async def delete(self, build_id: str) -> None:
        build = self.visible_build(build_id)
        build = await self.app.manager.cancel(build.id)
        self.write_json(build.to_dict())


class BuildLogsHandler(BuildsMixin, APIHandler):
    @needs_scope("view")
    async def get(self, build_id: str) -> None:
        build = self.visible_build(build_id)
        self.set_header("Content-Type", "text/plain; charset=UTF-8")
        self.set_header("Content-Disposition", f'attachment; filename="build-{build.id}.log"')
        self.finish(build.log_text())


class BuildEventsHandler(BuildsMixin, APIHandler):
    """Server-sent events: replay after Last-Event-ID, then follow live until done."""

    @needs_scope("view")
    async def get(self, build_id: str) -> None:
        build = self.visible_build(build_id)
        after_raw = self.request.headers.get("Last-Event-ID") or self.get_argument(
            "last_event_id", "0"
        )
        try:
            after = int(after_raw)
        except ValueError:
            raise InvalidInput("Last-Event-ID must be an integer event id") from None
        self.set_header("Content-Type", "text/event-stream; charset=UTF-8")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")
        streams = self.app.metrics.event_streams
        streams.inc()
        try:
            await self.flush()
            while True:
                batch = await build.wait_events(after, max_wait=KEEPALIVE_SECONDS)
                if not batch:
                    if build.ended:
                        break
                    self.write(": keepalive\n\n")
                else:
                    self.write("".join(event.to_sse() for event in batch))
                    after = batch[-1].id
                await self.flush()
                if batch and batch[-1].type == "done":
                    break
        except StreamClosedError:
            return  # the viewer left; the build goes on regardless
        finally:
            streams.dec()
        # let every other viewer write the final events before any teardown runs
        await asyncio.sleep(0)
        self.finish()


class ImagesHandler(APIHandler):
    @needs_scope("view")
    async def get(self) -> None:
        images = await self.app.catalog.list_images()
        visible = [i.to_json() for i in images if self.may_see_image(i)]
        self.write_json_text('{"images": [' + ", ".join(visible) + "]}")

    def may_see_image(self, image: Any) -> bool:
        return "admin" in self.scopes or image.shared or image.owner == self.username


class ImageHandler(ImagesHandler):
    async def _visible(self, owner_slug: str, name: str) -> Any:
        image = await self.app.catalog.get(owner_slug=owner_slug, name=name)
        if image is None or not self.may_see_image(image):
            raise NotFound(f"No image {owner_slug}/{name} that you can see")
        return image

    @needs_scope("view")
    async def get(self, owner_slug: str, name: str) -> None:
        image = await self._visible(owner_slug, name)
        self.write_json(image.to_dict())

    @needs_scope("build")
    async def delete(self, owner_slug: str, name: str) -> None:
        image = await self._visible(owner_slug, name)
        if "admin" not in self.scopes and (image.shared or image.owner != self.username):
            raise Forbidden("Only admins may delete shared or other users' images")
        force = self.get_argument("force", "false").lower() in ("1", "true", "yes")
        await self.app.catalog.delete(owner_slug=owner_slug, name=name, force=force)
        self.set_status(204)
        self.finish()


_ID = r"(?P<build_id>[A-Za-z0-9_-]{1,64})"
_IMG = r"(?P<owner_slug>[a-z0-9._-]{1,128})/(?P<name>[a-z0-9._-]{1,63})"
default_handlers = [
    (r"api/builds", BuildsHandler),
    (rf"api/builds/{_ID}", BuildHandler),
    (rf"api/builds/{_ID}/logs", BuildLogsHandler),
    (rf"api/builds/{_ID}/events", BuildEventsHandler),
    (r"api/images", ImagesHandler),
    (rf"api/images/{_IMG}", ImageHandler),
]
