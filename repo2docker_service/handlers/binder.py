"""``GET build/<provider>/<spec>``: BinderHub's build API, a second door to the same manager.

``@jupyterhub/binderhub-client`` and jupyterhub-fancy-profiles' "Build image" call it
(fancy-profiles at ``/services/binder/build/gh/<org>/<repo>/<ref>?build_only=true``; see
``binder_prefix``) and read the event stream until ``ready`` with ``imageName``. The
protocol's shapes live in :mod:`..binder`; here: parse, ask the Caller, one manager call.

- ``build_only=true`` is required: this service builds and never launches (the hub's spawner
  starts the image). Without it the answer is a ``failed`` event saying so.
- Errors are ``failed`` events with ``status_code`` on an HTTP 200 stream, as BinderHub sends
  them: EventSource clients show the message, where a 4xx shows only the status and a 429 or
  5xx makes binderhub-client reconnect forever.
- A user with ``build`` who asks on purpose (API token, or the session's XSRF token:
  ``Caller.may_build_by_get``) gets ``BuildManager.submit``, the call ``POST api/builds``
  makes (rate limit, ownership, naming, cache, dedup, queue). Everyone else (``view`` only,
  or a bare navigation) gets ``ready`` for an existing image they may start, else ``failed``.
- Dropping the connection never touches the build; asking again joins it (the manager's
  dedup) and, with ``Last-Event-ID``, resumes where the stream broke.
"""

from __future__ import annotations

import asyncio
from typing import Any

from tornado.iostream import StreamClosedError

from ..auth import APIHandler, needs_scope
from ..binder import (
    FOUND_MESSAGE,
    BinderSpec,
    binder_events,
    failed_event,
    parse_spec,
    ready_event,
    resume_after,
    split_build_path,
    sse,
    wants_build_only,
)
from ..builds.model import Build, EventType
from ..builds.request import BuildRequest
from ..errors import Forbidden, InvalidInput
from ..launches import plan_launch
from ..sources import validate_repo_url

BUILD_ONLY_MESSAGE = (
    "This service builds images and never launches servers: add ?build_only=true "
    "(BinderRepository's buildOnly option; fancy-profiles sends it), then start the image "
    "from the hub's spawn page"
)


class BinderBuildHandler(APIHandler):
    """``GET build/<provider>/<spec>[?build_only=true]`` -> ``text/event-stream``."""

    def set_default_headers(self) -> None:
        super().set_default_headers()
        self.set_header("Content-Type", "text/event-stream; charset=UTF-8")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")

    #: the status a refusal would have had (the request log shows it, not the 200)
    refused_status: int | None = None

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Every refusal is a ``failed`` event on a 200 stream (see the module's doc)."""
        message = self.error_message(status_code, kwargs.get("exc_info"))
        self.refused_status = status_code
        self.set_status(200)
        self.finish(sse(failed_event(message, status_code=status_code)))

    @needs_scope("view")
    async def get(self, provider: str, spec: str) -> None:
        me, conf = self.me, self.conf
        provider, raw_spec = split_build_path(
            self.request.path, (conf.base_url, conf.binder_prefix)
        )
        wanted = parse_spec(
            provider,
            raw_spec,
            github_host=conf.launch_git_host,
            gitlab_host=conf.binder_gitlab_host,
        )
        if not wants_build_only(self.get_query_argument("build_only", "")):
            raise InvalidInput(BUILD_ONLY_MESSAGE)
        if not me.may_build_by_get(deliberate=self.carries_intent()):
            await self._existing(wanted)
            return
        self.services.rate_limiter.check(me.name)
        result = await self.services.manager.submit(
            BuildRequest(owner=me.name, repo=wanted.repo, ref=wanted.ref)
        )
        if result.image is not None:
            self._answer_ready(wanted, result.image.image, result.image.commit)
            return
        assert result.build is not None  # a submit answers with an image or a build
        await self._follow(result.build, wanted)

    @property
    def launch_host(self) -> str:
        """``binder_launch_host``: this service's public URL (its ``v2/`` links live there)."""
        return f"{self.request.protocol}://{self.request.host}{self.conf.base_url}"

    def _answer_ready(self, wanted: BinderSpec, image: str, commit: str) -> None:
        event = ready_event(
            wanted, image=image, commit=commit, launch_host=self.launch_host, message=FOUND_MESSAGE
        )
        self.finish(sse(event))

    async def _existing(self, wanted: BinderSpec) -> None:
        """``ready`` for an image the caller may start already, else Forbidden (a ``failed``)."""
        me = self.me
        repo = validate_repo_url(wanted.repo, allowed_schemes=self.conf.allowed_repo_schemes)
        everything = me.may_admin()
        # the launch links' rule: repository identity, abbreviated commits resolved alike
        plan = await plan_launch(
            manager=self.services.manager,
            catalog=self.services.catalog,
            username=me.name,
            builds=False,
            startable=lambda i: me.may_start(i, me.name, everything=everything),
            repo=repo,
            ref=wanted.ref,
            name=None,
        )
        image = plan.image
        if image is not None:
            self._answer_ready(wanted, image.image, image.commit)
            return
        if me.may_build_for(me.name):
            raise Forbidden(
                "This request carries neither an API token nor your hub session's XSRF token "
                "(X-Xsrftoken), so it starts no build: a link from another site must never "
                "build in your name. binderhub-client sends the token from the page's _xsrf "
                "cookie, or pass it an API token."
            )
        raise Forbidden(
            f"No environment built from {repo} at {wanted.ref} exists that you can start, "
            f"and you may not build one: you lack the permission {me.prefix + 'build'!r}. "
            "Ask someone who may build to build it as a shared environment, or a hub admin "
            f"for {me.ask_for('build')}."
        )

    async def _follow(self, build: Build, wanted: BinderSpec) -> None:
        """Stream the build as BinderHub events until it ends; keepalives while quiet."""
        after = resume_after(self.request.headers.get("Last-Event-ID"), build.id)
        launch_host = self.launch_host
        streams = self.services.metrics.event_streams
        streams.inc()
        try:
            await self.flush()
            while True:
                batch = await build.wait_events(
                    after, max_wait=self.conf.event_keepalive_interval or None
                )
                if not batch and (build.ended or build.detached):
                    break  # detached: the build goes on; the client asks again later
                if not batch:
                    self.write(":keepalive\n\n")
                for event in batch:
                    event_id = f"{build.id}:{event.id}"
                    for out in binder_events(event, wanted, launch_host=launch_host):
                        self.write(sse(out, event_id=event_id))
                    after = event.id
                await self.flush()
                if batch and batch[-1].type == EventType.DONE:
                    break
        except StreamClosedError:
            return  # the client left; the build goes on, a new request joins it
        finally:
            streams.dec()
        await asyncio.sleep(0)  # let other viewers write the final events first
        self.finish()


# the provider and spec are re-read from the undecoded path (split_build_path)
binder_handlers = [(r"build/(?P<provider>[^/]+)/(?P<spec>.+)", BinderBuildHandler)]
default_handlers = binder_handlers
