"""Who is calling and what they may do; the hub-authenticated base handlers.

JupyterHub is the identity provider. Browser users log in through the hub's OAuth
(cookie + XSRF checks, JupyterHub's own mechanism); API clients send a hub token in
``Authorization: token ...``. What a caller may do is decided by custom scopes:

- ``view``:  see own images and builds, and shared images
- ``build``: build, rebuild, cancel and delete own images (implies view)
- ``admin``: everything, for every owner, including the shared namespace
- ``spawn``: (the hub's spawner client) read which images any user may start

Every access rule lives in :class:`Caller`, once; handlers ask it and never decide access
themselves. Every handler method names the scope it needs with :func:`needs_scope`; an
unknown scope name fails at import time, not at request time.
"""

from __future__ import annotations

import functools
import hmac
import json
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.client import responses
from typing import Any, TypeVar

from jupyterhub.services.auth import HubOAuth, HubOAuthenticated, UserNotAllowed
from tornado import web

from .builds.model import Build
from .context import Services
from .errors import Forbidden, ServiceError, Unavailable
from .images.catalog import ImageInfo
from .navigation import Navigation, navigation_source
from .redact import redact_secrets

SCOPES = ("view", "build", "admin")
IMPLIED: dict[str, set[str]] = {
    "view": {"view", "build", "admin"},
    "build": {"build", "admin"},
    "admin": {"admin"},
}
#: the scope (after the prefix) that lets the hub's spawner client ask about any user
SPAWN_SCOPE = "spawn"

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


def service_scopes(scopes: Iterable[str], prefix: str) -> set[str]:
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


@dataclass(frozen=True, slots=True)
class Caller:
    """The hub user (or service) behind a request, with their parsed scopes.

    Attributes:
        name: the JupyterHub user or service name.
        kind: ``"user"`` or ``"service"`` (as JupyterHub's user model says).
        hub_admin: the hub's own admin flag.
        scopes: the short service scopes held (:data:`SCOPES`, implications expanded; all
            of them for a hub admin when hub admins are admins).
        full_scopes: every scope JupyterHub reported for the caller.
        prefix: the configured scope prefix, e.g. ``custom:repo2docker:``.
        access_help: per short scope, the role or group to ask for (``access_help``).
    """

    name: str
    kind: str
    hub_admin: bool
    scopes: frozenset[str]
    full_scopes: frozenset[str]
    prefix: str
    access_help: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_hub_model(
        cls,
        model: Mapping[str, Any],
        prefix: str,
        *,
        hub_admins_are_admins: bool = False,
        access_help: Mapping[str, str] | None = None,
    ) -> Caller:
        """A caller from JupyterHub's user model (``{"name", "kind", "admin", "scopes"}``).

        With ``hub_admins_are_admins``, a user whose hub admin flag is set holds every
        service scope (a service's admin flag never counts).
        """
        full = frozenset(model.get("scopes") or ())
        kind = str(model.get("kind") or "user")
        hub_admin = bool(model.get("admin"))
        held = service_scopes(full, prefix)
        if hub_admins_are_admins and hub_admin and kind == "user":
            held = set(SCOPES)
        return cls(
            name=str(model["name"]),
            kind=kind,
            hub_admin=hub_admin,
            scopes=frozenset(held),
            full_scopes=full,
            prefix=prefix,
            access_help=dict(access_help or {}),
        )

    def holds(self, scope: str) -> bool:
        """Whether the caller holds the short service scope ``scope`` (or one implying it)."""
        return scope in self.scopes

    def may_view(self) -> bool:
        return "view" in self.scopes

    def may_build(self) -> bool:
        return "build" in self.scopes

    def may_admin(self) -> bool:
        return "admin" in self.scopes

    def ask_for(self, scope: str) -> str:
        """What to ask a hub admin for to get ``scope``: the configured role or group."""
        return self.access_help.get(scope) or "a role with it"

    def missing(self, scope: str) -> Forbidden:
        """The 403 for lacking ``scope``, naming the full scope and whom to ask for what."""
        return Forbidden(
            f"Missing permission {self.prefix + scope!r}: ask a hub admin for {self.ask_for(scope)}"
        )

    def admin_only(self, action: str) -> Forbidden:
        """The 403 for ``action`` (e.g. ``"build shared environments"``), which only the
        admin scope allows: names the scope and what to ask for (every such refusal)."""
        return Forbidden(
            f"Only admins (scope {self.prefix + 'admin'!r}) may {action}: "
            f"ask a hub admin for {self.ask_for('admin')}"
        )

    def may_see(self, item: Build | ImageInfo) -> bool:
        """Whether the caller may see a build record or an image.

        Builds: admins see all; others their own private builds (shared builds are an
        admin's business). Images: admins see all; others their own and shared images.
        """
        if self.may_admin():
            return True
        if isinstance(item, Build):
            return not item.shared and item.owner == self.name
        return item.shared or item.owner == self.name

    def may_build_for(self, owner: str, *, shared: bool = False) -> bool:
        """Whether the caller may build (or rebuild, cancel, delete) ``owner``'s images.

        Non-admins only for themselves and never into the shared namespace.
        """
        if self.may_admin():
            return True
        return self.may_build() and not shared and owner == self.name

    def may_build_by_get(self, *, deliberate: bool) -> bool:
        """Whether a GET (BinderHub's ``build/`` API) may build for the caller themself.

        With ``build``, and only when ``deliberate`` (:meth:`BaseHandler.carries_intent`: an
        API token, or the session's XSRF token): a link never builds in the visitor's name.
        """
        return deliberate and self.may_build_for(self.name)

    def may_manage_build(self, build: Build) -> bool:
        """May cancel or dismiss ``build``: the rule of :meth:`may_build_for` for its owner."""
        return self.may_build_for(build.owner, shared=build.shared)

    def builds_owner_filter(self) -> str | None:
        """The owner whose builds a listing shows: None (everyone's) for admins."""
        return None if self.may_admin() else self.name

    def may_start(self, image: ImageInfo, username: str, *, everything: bool) -> bool:
        """Whether ``username`` may start ``image``: own and shared ones, all if ``everything``.

        ``everything`` is True when ``username`` holds the admin scope (the hub knows it,
        see :meth:`startable_for`).
        """
        return everything or image.shared or image.owner == username

    def may_launch_without_click(self, source: Navigation, *, already_theirs: bool) -> bool:
        """Whether a launch (build and/or start) may go ahead without a click on our page.

        Drive-by launches: a link on another site must never build or start anything in the
        caller's name by itself. A navigation from our own pages goes straight through; one
        from another site never does; one of unknown source (typed, bookmarked, a token
        client) only when the image already is the caller's (their own or a shared one,
        ``already_theirs``). Otherwise the caller confirms on our page (a POST with XSRF).
        """
        if source is Navigation.OURS:
            return True
        return source is Navigation.UNKNOWN and already_theirs

    def startable_for(self, username: str, *, asks_all: bool) -> bool:
        """May the caller ask which images ``username`` may start; and are they all?

        The user themself (with ``view``) asks about their own: all images when they hold
        ``admin``. A client holding ``spawn`` or ``admin`` asks about anyone and says with
        ``asks_all`` whether that user holds the admin scope; only those clients can,
        so nobody widens their own answer.

        Returns:
            ``everything``: True when every image is startable by ``username``.

        Raises:
            Forbidden: the caller may not ask about ``username``.
        """
        if self.kind == "user" and username == self.name:
            if not self.may_view():
                raise self.missing("view")
            return self.may_admin()
        if self.prefix + SPAWN_SCOPE in self.full_scopes or self.may_admin():
            return asks_all
        raise Forbidden(
            f"Only {username!r} themself, or a client with {self.prefix + SPAWN_SCOPE!r} or "
            f"{self.prefix + 'admin'!r}, may list the images {username!r} may start"
        )


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
            caller = self.caller
            if caller is None:
                if isinstance(self, APIHandler) or self.request.method != "GET":
                    raise web.HTTPError(403, "Not authenticated: log in at the hub or send a token")
                self.redirect(self.get_login_url())
                return None
            if scope is not None and not caller.holds(scope):
                raise web.HTTPError(403, caller.missing(scope).message)
            return await method(self, *args, **kwargs)

        wrapper.__scope__ = scope  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorator


class BaseHandler(HubOAuthenticated, web.RequestHandler):
    """Common base: hub authentication (resolved asynchronously) and security headers."""

    services: Services
    hub_auth: HubOAuth

    def initialize(self, *, services: Services, hub_auth: HubOAuth) -> None:
        self.services = services
        self.conf = services.settings
        self.hub_auth = hub_auth
        self.log = services.log

    def _request_summary(self) -> str:
        """What tornado's warnings and errors name a request by: never the query (it may
        carry a launch link's repository URL), and the path redacted."""
        request = self.request
        return f"{request.method} {redact_secrets(request.path)} ({request.remote_ip})"

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

    def carries_intent(self) -> bool:
        """Whether the request was sent on purpose by the caller's own client.

        True with an API token, or with the session's XSRF token in ``X-Xsrftoken`` (scripts
        of the hub's pages read it from the ``_xsrf`` cookie; other sites cannot). A link or
        redirect carries neither. JupyterHub lets cookie GETs through without it; not this.
        """
        if getattr(self, "_token_authenticated", False):
            return True
        sent = self.request.headers.get("X-Xsrftoken") or self.request.headers.get("X-Csrftoken")
        return hmac.compare_digest((sent or "").encode("utf-8", "replace"), self.xsrf_token)

    async def prepare(self) -> None:
        """Resolve the user without blocking the event loop (tornado calls this first)."""
        self._resolving_user = True
        try:
            user_model = await self.hub_auth.get_user(self, sync=False)
        except web.HTTPError as e:
            # JupyterHub's HubAuth answers 500 when the hub cannot be reached (502 when it
            # fails): the hub restarting is no error of the service
            if e.status_code not in (500, 502):
                raise
            raise Unavailable(
                "The hub cannot be reached to check your login or token (it may be "
                "restarting): try again in a few seconds",
                headers={"Retry-After": "5"},
            ) from None
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
    def caller(self) -> Caller | None:
        """The logged-in caller and their scopes (parsed once per request), or None."""
        user = self.current_user
        if not user:
            return None
        cached: Caller | None = getattr(self, "_caller", None)
        if cached is None:
            cached = Caller.from_hub_model(
                user,
                self.conf.scope_prefix,
                hub_admins_are_admins=self.conf.hub_admins_are_admins,
                access_help=self.conf.access_help,
            )
            self._caller = cached
        return cached

    def navigation(self) -> Navigation:
        """Where this request comes from (:func:`navigation_source` on its headers)."""
        return navigation_source(
            self.request.headers, host=self.request.host, base_url=self.conf.base_url
        )

    def is_cross_site(self) -> bool:
        """Whether this request comes from another site (see :func:`navigation_source`)."""
        return self.navigation() is Navigation.CROSS_SITE

    @property
    def me(self) -> Caller:
        """The caller, inside a method decorated with :func:`needs_scope` (never None)."""
        caller = self.caller
        if caller is None:
            raise web.HTTPError(403, "Not authenticated: log in at the hub or send a token")
        return caller


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
        if len(self.request.body) > self.conf.max_body_bytes:
            raise web.HTTPError(
                413,
                f"Request body is {len(self.request.body)} bytes; "
                f"at most {self.conf.max_body_bytes} are accepted",
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
        message = self.error_message(status_code, kwargs.get("exc_info"))
        exc = (kwargs.get("exc_info") or (None, None))[1]  # field/suggestions of ServiceErrors
        details = exc.details() if isinstance(exc, ServiceError) else {}
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(json.dumps({"status": status_code, "message": message, **details}))

    def error_message(self, status_code: int, exc_info: Any) -> str:
        """The message a person reads for an error (never a 5xx's internals).

        Also sets the error's own headers (e.g. Retry-After), which ``send_error`` cleared.
        """
        message = ""
        if exc_info:
            exc = exc_info[1]
            if isinstance(exc, ServiceError):
                message = exc.message
                for key, value in exc.headers.items():
                    self.set_header(key, value)
            elif isinstance(exc, web.HTTPError):
                # (log_message doubles every '%' of a message without args)
                message = exc.get_message() or ""
                if exc.reason and not message:
                    message = exc.reason
        message = redact_secrets(message)
        if not message:
            message = responses.get(status_code, "Unknown HTTP error")
        if status_code >= 500 and not (exc_info and isinstance(exc_info[1], ServiceError)):
            message = "Internal server error: see the service's log"
        return message

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
