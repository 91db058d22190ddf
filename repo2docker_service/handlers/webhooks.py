"""Push webhooks from git hosts (see :mod:`repo2docker_service.webhooks`)."""

from __future__ import annotations

from tornado import web

from ..auth import APIHandler
from ..errors import NotFound
from ..webhooks import MAX_BODY_BYTES, PROVIDERS, event_kind, parse_push, rebuild_for_push, verify


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
        secret = self.conf.webhook_secret
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
        services = self.services
        answer = await rebuild_for_push(
            push,
            catalog=services.catalog,
            manager=services.manager,
            log=self.log,
            pushed=services.pushed,
        )
        self.write_json({"event": kind, **answer}, status=202 if answer["started"] else 200)


default_handlers = [(r"api/webhooks/(?P<provider>[a-z]{1,32})", WebhookHandler)]
