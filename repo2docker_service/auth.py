"""Authentication and authorization: JupyterHub OAuth/token login, scopes, base handlers.

JupyterHub is the identity provider. Browser users log in through the hub's OAuth
(cookie + XSRF checks, JupyterHub's own mechanism); API clients send a hub token in
``Authorization: token ...``. What a caller may do is decided by custom scopes:

- ``view``:  see own images and builds, and shared images
- ``build``: build, rebuild, cancel and delete own images (implies view)
- ``admin``: everything, for every owner, including the shared namespace

Every handler method names the scope it needs with :func:`needs_scope`; an unknown
scope name fails at import time, not at request time.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable
from http.client import responses
from typing import TYPE_CHECKING, Any, TypeVar

from jupyterhub.services.auth import HubOAuth, HubOAuthenticated, UserNotAllowed
from tornado import web

from .errors import ServiceError

if TYPE_CHECKING:
    from .app import Repo2DockerService

SCOPES = ("view", "build", "admin")
IMPLIED: dict[str, set[str]] = {
    "view": {"view", "build", "admin"},
    "build": {"build", "admin"},
    "admin": {"admin"},
}

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


def service_scopes(scopes: set[str] | list[str], prefix: str) -> set[str]:
    """The short names (view/build/admin) among a user's full JupyterHub scopes.

    Args:
        scopes: the scopes JupyterHub reports for the caller's token.
        prefix: the configured scope prefix, e.g. ``custom:repo2docker:``.

    Returns:
        The subset of :data:`SCOPES` the caller holds, expanded by implication
        (admin implies build implies view).
    """
    held = {s[len(prefix) :] for s in scopes if s.startswith(prefix)} & set(SCOPES)
    return {short for short in SCOPES if IMPLIED[short] & held}


def needs_scope(scope: str | None) -> Callable[[F], F]:
    """Decorate a handler method: the caller must be logged in and hold ``scope``.

    ``None`` means any logged-in user with access to the service. Unknown scope names
    raise ``ValueError`` when the module is imported.
    """
    if scope is not None and scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}; expected one of {SCOPES}")

    def decorator(method: F) -> F:
        @functools.wraps(method)
        async def wrapper(self: BaseHandler, *args: Any, **kwargs: Any) -> Any:
            if self.current_user is None:
                if isinstance(self, APIHandler) or self.request.method != "GET":
                    raise web.HTTPError(403, "Not authenticated: log in at the hub or send a token")
                self.redirect(self.get_login_url())
                return None
            if scope is not None and scope not in self.scopes:
                full = self.app.scope_prefix + scope
                raise web.HTTPError(
                    403,
                    f"Missing permission {full!r}: ask a hub admin to grant you a role with it",
                )
            return await method(self, *args, **kwargs)

        wrapper.__scope__ = scope  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorator


class BaseHandler(HubOAuthenticated, web.RequestHandler):
    """Common base: hub authentication (resolved asynchronously) and security headers."""

    app: Repo2DockerService
    hub_auth: HubOAuth

    def initialize(self, *, app: Repo2DockerService, hub_auth: HubOAuth) -> None:
        self.app = app
        self.hub_auth = hub_auth
        self.log = app.log

    def set_default_headers(self) -> None:
        self.set_header("Content-Security-Policy", "frame-ancestors 'none'")
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Referrer-Policy", "same-origin")

    def check_xsrf_cookie(self) -> None:
        """XSRF stays on for cookie (browser) sessions; token requests don't need it.

        Tornado calls this before :meth:`prepare`, when the user is not known yet. A
        request carrying a token is let through here; if that token turns out invalid,
        the hub's cookie fallback inside :meth:`prepare` calls this again, now with the
        user resolution started, and then the full JupyterHub XSRF check applies.
        """
        if getattr(self, "_token_authenticated", False):
            return
        if not getattr(self, "_resolving_user", False) and self.hub_auth.get_token(
            self, in_cookie=False
        ):
            return
        self.hub_auth.check_xsrf_cookie(self)

    async def prepare(self) -> None:
        """Resolve the user without blocking the event loop (tornado calls this first)."""
        self._resolving_user = True
        user_model = await self.hub_auth.get_user(self, sync=False)
        if not user_model:
            self._hub_auth_user_cache = None
            return
        try:
            self._hub_auth_user_cache = self.check_hub_user(user_model)
        except UserNotAllowed:
            self._hub_auth_user_cache = None
            self._not_allowed = user_model

    def get_current_user(self) -> dict[str, Any] | None:
        return getattr(self, "_hub_auth_user_cache", None)

    @property
    def scopes(self) -> set[str]:
        """Short service scopes (view/build/admin) the caller holds."""
        user = self.current_user
        if not user:
            return set()
        # asked once per listed item: parse the user's scopes once per request
        cached = getattr(self, "_scopes_cache", None)
        if cached is None or cached[0] is not user:
            cached = (user, service_scopes(user.get("scopes", []), self.app.scope_prefix))
            self._scopes_cache = cached
        return cached[1]

    @property
    def username(self) -> str:
        return self.current_user["name"] if self.current_user else ""


class APIHandler(BaseHandler):
    """JSON API base: errors are ``{"status": code, "message": ...}`` as in JupyterHub."""

    def get_login_url(self) -> str:
        # never redirect API calls to a login page
        raise web.HTTPError(403)

    def check_referer(self) -> bool:
        return True

    def set_default_headers(self) -> None:
        super().set_default_headers()
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.set_header("Cache-Control", "no-store")

    def write_json(self, model: Any, *, status: int = 200) -> None:
        self.set_status(status)
        self.finish(json.dumps(model, default=str))

    def write_json_text(self, text: str, *, status: int = 200) -> None:
        """Answer with JSON that is already serialized."""
        self.set_status(status)
        self.finish(text)

    def get_json_body(self) -> dict[str, Any]:
        """The request body as a JSON object, or 400 saying what is wrong."""
        if len(self.request.body) > self.app.max_body_bytes:
            raise web.HTTPError(
                413,
                f"Request body is {len(self.request.body)} bytes; "
                f"at most {self.app.max_body_bytes} are accepted",
            )
        if not self.request.body:
            raise web.HTTPError(400, "Request body is empty: send a JSON object")
        try:
            body = json.loads(self.request.body)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise web.HTTPError(400, f"Request body is not valid JSON: {e}") from None
        if not isinstance(body, dict):
            raise web.HTTPError(400, "Request body must be a JSON object")
        return body

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc_info = kwargs.get("exc_info")
        message = ""
        if exc_info:
            exc = exc_info[1]
            if isinstance(exc, ServiceError):
                message = exc.message
                # send_error() cleared the headers: set the error's own (e.g. Retry-After)
                for key, value in exc.headers.items():
                    self.set_header(key, value)
            elif isinstance(exc, web.HTTPError):
                message = (
                    exc.log_message % exc.args
                    if exc.log_message and exc.args
                    else (exc.log_message or "")
                )
                if getattr(exc, "reason", None) and not message:
                    message = exc.reason
        if not message:
            message = responses.get(status_code, "Unknown HTTP error")
        if status_code >= 500 and not (exc_info and isinstance(exc_info[1], ServiceError)):
            message = "Internal server error: see the service's log"
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(json.dumps({"status": status_code, "message": message}))

    def _handle_request_exception(self, e: BaseException) -> None:
        if isinstance(e, ServiceError):
            if self._finished:
                return
            self.log.info(
                "%s %s -> %d: %s", self.request.method, self.request.path, e.status_code, e.message
            )
            self.send_error(e.status_code, exc_info=(type(e), e, e.__traceback__))
            return
        super()._handle_request_exception(e)
