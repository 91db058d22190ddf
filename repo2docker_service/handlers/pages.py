"""HTML pages and the OAuth callback."""

from __future__ import annotations

from typing import Any

from jupyterhub.services.auth import HubOAuth, HubOAuthCallbackHandler
from jupyterhub.utils import url_path_join
from tornado import web

from .._version import __version__
from ..auth import BaseHandler, needs_scope
from ..context import Services
from ..redact import redact_secrets


class PageHandler(BaseHandler):
    """Base for HTML pages: renders templates with the hub's look."""

    def template_namespace(self) -> dict[str, Any]:
        hub_prefix = self.hub_auth.hub_prefix
        return {
            "version": __version__,
            "base_url": self.conf.base_url,
            "hub_prefix": hub_prefix,
            "static_hub": url_path_join(hub_prefix, "static/"),
            "user": self.current_user,
            "scopes": sorted(self.caller.scopes) if self.caller else [],
            "scope_prefix": self.conf.scope_prefix,
            "xsrf_token": self.xsrf_token.decode() if self.current_user else "",
        }

    def render_template(self, name: str, **ns: Any) -> str:
        template = self.services.templates.get_template(name)
        return template.render(static_url=self.static_url, **ns)

    def render_page(self, name: str, **kwargs: Any) -> None:
        ns = self.template_namespace()
        ns.update(kwargs)
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.finish(self.render_template(name, **ns))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        message = ""
        exc_info = kwargs.get("exc_info")
        if exc_info and isinstance(exc_info[1], web.HTTPError):
            # (log_message doubles every '%' of a message without args)
            message = redact_secrets(exc_info[1].get_message() or "")
        if status_code >= 500:
            message = "Internal server error: see the service's log."
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        ns = {
            "version": __version__,
            "base_url": self.conf.base_url,
            "hub_prefix": self.hub_auth.hub_prefix,
            "static_hub": url_path_join(self.hub_auth.hub_prefix, "static/"),
            "user": None,
            "scopes": [],
            "status_code": status_code,
            "message": message,
            "xsrf_token": "",
        }
        self.finish(self.render_template("error.html", **ns))


class HomeHandler(PageHandler):
    """The environments page."""

    @needs_scope(None)
    async def get(self) -> None:
        me = self.me
        if not me.may_view():
            full = me.prefix + "view"
            raise web.HTTPError(
                403,
                f"You are logged in as {me.name}, but you lack the permission {full!r} "
                f"to see environments. Ask a hub admin for {me.ask_for('view')}.",
            )
        cpu = self.conf.default_cpu_limit
        self.render_page(
            "index.html",
            # shown as the add dialog's defaults (api/info does not carry them)
            default_cpu_limit=f"{cpu:g}" if cpu else "",
            default_memory_limit=self.conf.default_memory_limit,
            # the log viewer reconnects after 3 keepalive intervals of silence (logs.js)
            event_keepalive=f"{self.conf.event_keepalive_interval:g}",
        )


class NotFoundPageHandler(PageHandler):
    """Any other address: the error page in the hub's look, not tornado's bare 404."""

    async def get(self, *args: str) -> None:
        raise web.HTTPError(
            404,
            "There is no page at this address. The environments page is linked below.",
        )


class OAuthCallbackHandler(HubOAuthCallbackHandler):
    """Finishes the hub's OAuth flow (jupyterhub.services.auth)."""

    def initialize(self, *, services: Services, hub_auth: HubOAuth) -> None:
        self.hub_auth = hub_auth


default_handlers = [
    (r"", HomeHandler),
    (r"oauth_callback", OAuthCallbackHandler),
]
