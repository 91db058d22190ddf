"""Build and image API handlers: parse, ask the Caller, call the manager or catalog."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from tornado.iostream import StreamClosedError

from ..auth import APIHandler, needs_scope
from ..builds.events import EventType, keepalive_sse, unnumbered_sse
from ..builds.model import Build
from ..builds.request import BuildRequest
from ..errors import InvalidInput, NotFound
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
    "memory": (str, int, float),
    "credentials": dict,
}


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


class BuildsMixin(APIHandler):
    """Finds a build the caller may see (decided by the Caller from the record)."""

    def visible_build(self, build_id: str) -> Build:
        build = self.services.manager.get(build_id)
        if build is None or not self.me.may_see(build):
            # the same answer whether it does not exist or is someone else's
            raise NotFound(f"No build {build_id!r} that you can see")
        return build

    def managed_build(self, build_id: str) -> Build:
        """A build the caller may see and change (cancel, dismiss); 404 or 403 otherwise."""
        build = self.visible_build(build_id)
        if not self.me.may_manage_build(build):
            raise self.me.admin_only("change other users' or shared builds")
        return build


class BuildsHandler(BuildsMixin):
    @needs_scope("view")
    async def get(self) -> None:
        me = self.me
        builds = self.services.manager.list(owner=me.builds_owner_filter())
        self.write_json({"builds": [b.to_dict() for b in builds if me.may_see(b)]})

    @needs_scope("build")
    async def post(self) -> None:
        me = self.me
        self.services.rate_limiter.check(me.name)
        req = parse_build_request(self.get_json_body(), username=me.name)
        if not me.may_build_for(req.owner, shared=req.shared):
            what = "shared environments" if req.shared else f"environments for {req.owner!r}"
            raise me.admin_only(f"build {what}")
        result = await self.services.manager.submit(req)
        if result.image is not None:
            self.write_json(
                {"cached": True, "joined": False, "build": None, "image": result.image.to_dict()}
            )
            return
        build = result.build
        assert build is not None  # a submit answers with an image or a build
        self.set_header("Location", f"{self.conf.base_url}api/builds/{build.id}")
        self.write_json(
            {"cached": False, "joined": result.joined, "build": build.to_dict(), "image": None},
            status=200 if result.joined else 202,
        )


class BuildHandler(BuildsMixin):
    @needs_scope("view")
    async def get(self, build_id: str) -> None:
        self.write_json(self.visible_build(build_id).to_dict())

    @needs_scope("build")
    async def delete(self, build_id: str) -> None:
        """Cancel a queued or running build (the record stays: see BuildDismissHandler)."""
        build = self.managed_build(build_id)
        build = await self.services.manager.cancel(build.id)
        self.write_json(build.to_dict())


class BuildDismissHandler(BuildsMixin):
    @needs_scope("build")
    async def post(self, build_id: str) -> None:
        """Forget an ended build's record and log (never an image)."""
        build = self.managed_build(build_id)
        self.services.manager.dismiss(build.id)
        self.services.log.info(
            "build %s (owner %s): dismissed by %s", build.id, build.owner, self.me.name
        )
        self.set_status(204)
        self.finish()


class BuildLogsHandler(BuildsMixin):
    @needs_scope("view")
    async def get(self, build_id: str) -> None:
        build = self.visible_build(build_id)
        self.set_header("Content-Type", "text/plain; charset=UTF-8")
        self.set_header("Content-Disposition", f'attachment; filename="build-{build.id}.log"')
        self.finish(build.log_text())


class BuildEventsHandler(BuildsMixin):
    """Server-sent events: replay after Last-Event-ID, then follow live until done.

    While the build is quiet, a ``keepalive`` event every ``event_keepalive_interval``
    seconds (the one timer of the stream: ``wait_events``' timeout, gone when it returns).
    """

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
        interval = self.conf.event_keepalive_interval
        streams = self.services.metrics.event_streams
        streams.inc()
        try:
            await self.flush()
            while True:
                batch = await build.wait_events(after, max_wait=interval or None)
                if not batch:
                    if build.ended:
                        break
                    if build.detached:
                        # the build goes on without this service: say so (no id, no
                        # state change) and end the stream; the viewer resumes later
                        note = {
                            "phase": build.state.value,
                            "message": build.detached,
                            "detached": True,
                        }
                        self.write(unnumbered_sse(EventType.PHASE, note))
                        await self.flush()
                        break
                    self.write(keepalive_sse(interval))
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


class ServersHandler(APIHandler):
    @needs_scope("view")
    async def get(self) -> None:
        """The caller's own servers, asked of the hub with the caller's own token."""
        token = self.hub_auth.get_token(self) or ""
        available, servers = await self.services.servers.running(token)
        self.write_json({"available": available, "servers": [s.to_dict() for s in servers]})


class ImagesHandler(APIHandler):
    @needs_scope("view")
    async def get(self) -> None:
        me = self.me
        images = await self.services.catalog.list_images()
        visible = [i.to_json() for i in images if me.may_see(i)]
        freshness = json.dumps(self.services.catalog.state().freshness())
        self.write_json_text('{"images": [' + ", ".join(visible) + "], " + freshness[1:])


_ID = r"(?P<build_id>[A-Za-z0-9_-]{1,64})"
default_handlers = [
    (r"api/builds", BuildsHandler),
    (rf"api/builds/{_ID}", BuildHandler),
    (rf"api/builds/{_ID}/logs", BuildLogsHandler),
    (rf"api/builds/{_ID}/dismiss", BuildDismissHandler),
    (rf"api/builds/{_ID}/events", BuildEventsHandler),
    (r"api/servers", ServersHandler),
    (r"api/images", ImagesHandler),
]
