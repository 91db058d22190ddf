"""Push webhooks from git hosts (see :mod:`repo2docker_service.webhooks`)."""

from __future__ import annotations

from typing import Any

from tornado import web

from ..auth import APIHandler
from ..builds.model import BuildRequest
from ..errors import NotFound, ServiceError
from ..webhooks import MAX_BODY_BYTES, PROVIDERS, event_kind, matches, parse_push, verify


class WebhookHandler(APIHandler):
    """``POST api/webhooks/{provider}``: rebuild the environments that track a pushed branch.

    Git hosts have no hub token: the request is authenticated by the shared
    ``webhook_secret`` (an HMAC signature of the body, or GitLab's token), checked before
    anything else is read. No hub user is resolved and no cookie is read, so there is no
    browser session to protect with XSRF.
    """

    async def prepare(self) -> None:  # no hub round-trip: the secret authenticates
        return

    def check_xsrf_cookie(self) -> None:  # cookies are never used here
        return

    async def post(self, provider: str) -> None:
        secret = self.app.webhook_secret
        if not secret:
            raise NotFound("Webhooks are not enabled: the admin has to set webhook_secret")
        if provider not in PROVIDERS:
            raise NotFound(f"Unknown webhook provider {provider!r}; use one of {PROVIDERS}")
        body = self.request.body
        if len(body) > MAX_BODY_BYTES:
            raise web.HTTPError(413, f"Webhook body over {MAX_BODY_BYTES} bytes")
        verify(provider, self.request.headers, body, secret)
        kind = event_kind(provider, self.request.headers)
        if kind == "ping":
            self.write_json({"event": "ping", "message": "pong"})
            return
        if kind not in ("push", "tag_push"):
            self.write_json({"event": kind, "message": "ignored: only push events rebuild"})
            return
        push = parse_push(provider, body)
        images = [i for i in await self.app.catalog.list_images() if matches(i.repo, i.ref, push)]
        started, joined, cached, failed = [], 0, 0, 0
        for image in images:
            req = BuildRequest(
                owner=image.owner,
                repo=image.repo,
                ref=image.ref,
                name=image.name,
                display_name=image.display_name,
                shared=image.shared,
                hints=dict(image.hints),
            )
            try:
                result = await self.app.manager.submit(req)
            except ServiceError as e:
                failed += 1
                self.log.warning(
                    "webhook (%s): rebuild of %s not started: %s", provider, image.image, e
                )
                continue
            if result.cached:
                cached += 1
            elif result.joined:
                joined += 1
            else:
                started.append(result.build.id)
                self.log.info(
                    "webhook (%s): rebuilding %s (build %s)", provider, image.image, result.build.id
                )
        answer: dict[str, Any] = {
            "event": kind,
            "matched": len(images),
            "started": started,
            "joined": joined,
            "cached": cached,
            "failed": failed,
        }
        self.write_json(answer, status=202 if started else 200)


default_handlers = [(r"api/webhooks/(?P<provider>[a-z]{1,32})", WebhookHandler)]
