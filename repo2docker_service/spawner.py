"""Spawner helpers: start servers from the images repo2docker-service built.

The service never starts servers; the hub's spawner asks it which images a user may start
(``GET api/users/{name}/images``) and with which limits. Three pieces:

- :class:`Repo2DockerSpawner` (DockerSpawner) with an options form listing the user's
  images (display name, repo@ref, built date, limits), ``?image=<reference>`` in the spawn
  URL to preselect/start one, and a check at spawn time, asynchronously in ``start()``,
  that the image is one the service lists for that user now. ``allowed_images`` is never
  used (and never ``"*"``). One line of config::

      c.JupyterHub.spawner_class = "repo2docker_service.spawner.Repo2DockerSpawner"

  :class:`Repo2DockerMixin` carries the logic for other DockerSpawner subclasses;
  :class:`Repo2DockerHostSpawner` adds host networking for one-machine hubs bound to
  127.0.0.1 (tests, the demo).
- :func:`make_profile_list`: an async ``KubeSpawner.profile_list`` callable built from the
  same answer (one profile per image, with ``kubespawner_override`` image and limits);
  KubeSpawner evaluates it again in ``load_user_options`` at spawn time, so an image the
  user may no longer start is refused there.
- :func:`configure_jupyterhub`: the hub config the helpers need (the ``spawn`` scope, a
  token-holding client with a role, the spawner settings, server token scopes for
  JupyterLab extensions, named servers for launch links).

The spawner authenticates to the service with a JupyterHub API token whose owner (a
"service" without URL, default ``repo2docker-spawner``) holds
``access:services!service=repo2docker`` and ``custom:repo2docker:spawn``. That scope lets
it read which images any user may start, and nothing else. Whether the user holds the
service's admin scope (then every image is startable) is read from the hub's own role
data, in the hub process, and passed along as ``?admin=true``.
"""

from __future__ import annotations

import html
import json
import os
import secrets
import socket
import warnings
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlparse

from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from traitlets import Bool, Float, Unicode, default
from traitlets.config import Configurable

__all__ = [
    "DEFAULT_SERVICE_URL",
    "TOKEN_ENV",
    "Repo2DockerHostSpawner",
    "Repo2DockerMixin",
    "Repo2DockerSpawner",
    "ServiceClient",
    "ServiceUnavailable",
    "configure_jupyterhub",
    "format_built_at",
    "make_profile_list",
    "render_options_form",
    "user_holds_scope",
]

DEFAULT_SERVICE_URL = "http://127.0.0.1:8585/services/repo2docker/"
#: environment variable holding the spawner client's token (set it in the hub's environment)
TOKEN_ENV = "REPO2DOCKER_SPAWNER_TOKEN"  # noqa: S105 (a variable name, not a secret)
#: environment variable holding the service's URL as the hub process reaches it
URL_ENV = "REPO2DOCKER_SERVICE_URL"


class ServiceUnavailable(Exception):
    """The service could not answer (down, wrong URL, bad token); the message says which."""


class ServiceClient:
    """Asks repo2docker-service which images a user may start.

    Args:
        url: the service's base URL as the hub reaches it, e.g.
            ``http://127.0.0.1:8585/services/repo2docker/`` (ends with the service prefix).
        token: a JupyterHub API token holding ``access:services!service=<name>`` and
            ``<prefix>spawn`` (or ``<prefix>admin``).
        timeout: seconds for one request.
    """

    def __init__(self, *, url: str, token: str, timeout: float = 10.0) -> None:
        self.url = url if url.endswith("/") else url + "/"
        self.token = token
        self.timeout = timeout

    async def images_for(self, username: str, *, admin: bool = False) -> dict[str, Any]:
        """``GET api/users/{username}/images``.

        Args:
            username: the JupyterHub user.
            admin: the user holds the service's admin scope (every image is startable).

        Returns:
            The JSON answer: ``{"user", "all", "images": [...], "machine_profiles", "defaults"}``;
            each image has ``image``, ``references``, ``display_name``, ``repo``, ``ref``,
            ``built_at``, ``limits`` (``cpu``, ``memory``) among others.

        Raises:
            ServiceUnavailable: no answer, or an error answer (message included).
        """
        if not self.token:
            raise ServiceUnavailable(
                f"no token for repo2docker-service: set ${TOKEN_ENV} in the hub's environment "
                "(see repo2docker_service.spawner.configure_jupyterhub)"
            )
        url = f"{self.url}api/users/{quote(username, safe='')}/images"
        if admin:
            url += "?admin=true"
        request = HTTPRequest(
            url,
            headers={"Authorization": f"token {self.token}", "Accept": "application/json"},
            request_timeout=self.timeout,
            connect_timeout=self.timeout,
        )
        try:
            response = await AsyncHTTPClient().fetch(request)
        except HTTPClientError as e:
            message = ""
            if e.response is not None and e.response.body:
                try:
                    message = json.loads(e.response.body).get("message", "")
                except (ValueError, AttributeError):
                    message = ""
            raise ServiceUnavailable(
                f"repo2docker-service at {self.url} answered {e.code}"
                + (f": {message}" if message else "")
            ) from None
        except (OSError, TimeoutError) as e:
            raise ServiceUnavailable(
                f"repo2docker-service at {self.url} cannot be reached ({e}): is it running?"
            ) from None
        return json.loads(response.body)


# ------------------------------------------------------------------------- helpers
def user_holds_scope(user: Any, scope: str) -> bool:
    """Whether a hub user holds ``scope`` through their roles and groups (hub process only).

    Args:
        user: ``spawner.user`` (a ``jupyterhub.user.User``); anything else gives False.
        scope: a full scope such as ``custom:repo2docker:admin``.
    """
    orm_user = getattr(user, "orm_user", None)
    if orm_user is None:
        return False
    from jupyterhub.scopes import get_scopes_for

    return scope in get_scopes_for(orm_user)


def format_built_at(value: str | None) -> str:
    """``2026-11-23T08:56:00.12Z`` -> ``2026-11-23 08:56 UTC`` (unknown: ``unknown date``)."""
    if not value:
        return "unknown date"
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    return when.strftime("%Y-%m-%d %H:%M UTC")


def describe_limits(limits: dict[str, Any] | None) -> str:
    """``1 CPU, 2G memory`` / ``no limits``."""
    limits = limits or {}
    parts = []
    if limits.get("cpu"):
        parts.append(f"{limits['cpu']:g} CPU")
    if limits.get("memory"):
        parts.append(f"{limits['memory']} memory")
    return ", ".join(parts) or "no limits"


def find_image(answer: dict[str, Any], requested: str) -> dict[str, Any] | None:
    """The entry of ``answer["images"]`` that ``requested`` (an image reference) belongs to."""
    for entry in answer.get("images", []):
        if requested == entry.get("image") or requested in entry.get("references", []):
            return entry
    return None


def render_options_form(
    answer: dict[str, Any] | None,
    *,
    selected: str | None = None,
    service_page: str = "/services/repo2docker/",
    error: str | None = None,
) -> str:
    """The options form HTML: one radio button per image (all text escaped).

    Args:
        answer: the service's answer (``ServiceClient.images_for``), or None on error.
        selected: the reference to preselect (default: the first image).
        service_page: link to the service's environments page (to build one).
        error: a message shown instead of the list when the service could not answer.
    """
    esc = html.escape
    if error is not None:
        return (
            '<div class="alert alert-danger" id="repo2docker-error" role="alert">'
            f"The list of environments is not available: {esc(error)}</div>"
            '<input type="hidden" name="image" value="">'
        )
    images = (answer or {}).get("images", [])
    if not images:
        return (
            '<p id="repo2docker-no-images">You have no environments to start yet. '
            f'<a href="{esc(service_page)}">Build one from a git repository</a> first.</p>'
            '<input type="hidden" name="image" value="">'
        )
    if selected is None or find_image(answer, selected) is None:
        selected = images[0]["image"]
    chosen = find_image(answer, selected)
    rows = []
    for i, entry in enumerate(images):
        checked = " checked" if entry is chosen else ""
        value = selected if entry is chosen else entry["image"]
        badge = (
            ' <span class="badge text-bg-secondary">shared</span>'
            if entry.get("shared")
            else (
                f' <span class="badge text-bg-light">{esc(entry.get("owner", ""))}</span>'
                if answer.get("all") and entry.get("owner") != answer.get("user")
                else ""
            )
        )
        rows.append(
            f'<div class="form-check mb-2 repo2docker-image" data-image="{esc(entry["image"])}">'
            f'<input class="form-check-input" type="radio" name="image" id="r2d-image-{i}" '
            f'value="{esc(value)}"{checked} required>'
            f'<label class="form-check-label" for="r2d-image-{i}">'
            f'<strong class="r2d-display-name">{esc(entry.get("display_name") or entry["name"])}'
            f"</strong>{badge}<br>"
            f'<small class="text-body-secondary"><span class="r2d-repo">'
            f"{esc(entry.get('repo', ''))}@{esc(entry.get('ref', ''))}</span>"
            f' · built <span class="r2d-built">{esc(format_built_at(entry.get("built_at")))}'
            f"</span> · {esc(describe_limits(entry.get('limits')))}</small>"
            "</label></div>"
        )
    return (
        '<fieldset id="repo2docker-images"><legend class="h6">Choose an environment</legend>'
        + "".join(rows)
        + "</fieldset>"
    )


def _first(value: Any) -> Any:
    if isinstance(value, list):
        return value[0] if value else None
    return value


def options_from_form(formdata: dict[str, Any]) -> dict[str, Any]:
    """Form (or query) data -> ``user_options``: ``{"image": reference}`` or ``{}``."""
    image = _first(formdata.get("image"))
    return {"image": image} if image else {}


def free_port(ip: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``ip`` right now."""
    with socket.socket() as s:
        s.bind((ip, 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------------- DockerSpawner
class Repo2DockerMixin(Configurable):
    """Options form, spawn-time check and limits from repo2docker-service.

    Mix into a DockerSpawner subclass before DockerSpawner (see :class:`Repo2DockerSpawner`).
    Config section: ``c.Repo2DockerMixin`` (or the concrete class name).
    """

    service_url = Unicode(
        help=f"""URL of repo2docker-service as the hub process reaches it, with its prefix.

        Default: ${URL_ENV}, else {DEFAULT_SERVICE_URL} (a hub-managed service on
        its default port). The service's own address is fine (no need to go through the
        proxy).
        """,
    ).tag(config=True)

    @default("service_url")
    def _default_service_url(self) -> str:
        return os.environ.get(URL_ENV) or DEFAULT_SERVICE_URL

    service_token = Unicode(
        help=f"""JupyterHub API token the spawner sends to the service.

        Its owner needs `access:services!service=<service>` and `<prefix>spawn` (see
        `configure_jupyterhub`). Default: ${TOKEN_ENV}.
        """,
    ).tag(config=True)

    @default("service_token")
    def _default_service_token(self) -> str:
        return os.environ.get(TOKEN_ENV, "")

    service_timeout = Float(
        10.0, help="Seconds to wait for the service's answer before giving up."
    ).tag(config=True)

    scope_prefix = Unicode(
        "custom:repo2docker:",
        help="The service's scope prefix (Repo2DockerService.scope_prefix).",
    ).tag(config=True)

    require_image = Bool(
        True,
        help="""Refuse to start without an image chosen from the service's list.

        False: a spawn without a choice starts the configured `DockerSpawner.image`.
        """,
    ).tag(config=True)

    apply_limits = Bool(
        True,
        help="""Set cpu_limit / mem_limit from the service's answer for the chosen image.

        A limit the service leaves open (null) keeps this spawner's configured value.
        """,
    ).tag(config=True)

    # ------------------------------------------------------------ asking the service
    def _service_client(self) -> ServiceClient:
        return ServiceClient(
            url=self.service_url, token=self.service_token, timeout=self.service_timeout
        )

    def _user_is_admin(self) -> bool:
        return user_holds_scope(self.user, self.scope_prefix + "admin")

    async def startable_images(self) -> dict[str, Any]:
        """The service's answer for this spawner's user (raises ServiceUnavailable)."""
        return await self._service_client().images_for(self.user.name, admin=self._user_is_admin())

    def _service_page(self) -> str:
        return urlparse(self.service_url).path or "/"

    def _requested_in_query(self) -> str | None:
        handler = getattr(self, "handler", None)
        if handler is None:
            return None
        try:
            return handler.get_argument("image", None) or handler.get_argument("opt-image", None)
        except Exception:
            return None

    async def _render_form(self, spawner: Any = None) -> str:
        try:
            answer = await self.startable_images()
        except ServiceUnavailable as e:
            self.log.error("repo2docker options form for %s: %s", self.user.name, e)
            return render_options_form(None, error=str(e))
        selected = self._requested_in_query() or _first(self.user_options.get("image"))
        return render_options_form(answer, selected=selected, service_page=self._service_page())

    @default("options_form")
    def _default_options_form(self) -> Callable[[Any], Awaitable[str]]:
        return self._render_form

    @default("options_from_form")
    def _default_options_from_form(self) -> Callable[[dict[str, Any]], dict[str, Any]]:
        return options_from_form

    def options_from_query(self, query_data: dict[str, Any]) -> dict[str, Any]:
        """``/hub/spawn/<user>/<server>?image=<reference>`` starts that image."""
        return options_from_form(query_data)

    async def resolve_image(self, requested: Any) -> dict[str, Any]:
        """Check ``requested`` against the service's list for this user, now.

        Returns:
            The service's entry for the image (with ``limits``).

        Raises:
            web.HTTPError: 400 no/odd choice, 403 not startable for this user,
                503 the service cannot answer.
        """
        name = self.user.name
        if not isinstance(requested, str) or not requested.strip():
            raise web.HTTPError(400, "Choose an environment to start.")
        try:
            answer = await self.startable_images()
        except ServiceUnavailable as e:
            self.log.error("Cannot check image %s for %s: %s", requested, name, e)
            raise web.HTTPError(
                503, f"Cannot check the environment right now: {e}. Try again shortly."
            ) from None
        entry = find_image(answer, requested)
        if entry is None:
            self.log.warning("Refusing image %r for %s: not in the service's list", requested, name)
            raise web.HTTPError(
                403,
                f"The environment {requested!r} is not available to {name}: it is not yours, "
                "not shared, or no longer exists. Choose one of the environments listed here.",
            )
        return entry

    def set_limits(self, entry: dict[str, Any]) -> None:
        """Apply the service's limits for ``entry`` as cpu_limit / mem_limit."""
        if not self.apply_limits:
            return
        limits = entry.get("limits") or {}
        if limits.get("cpu"):
            self.cpu_limit = float(limits["cpu"])
        if limits.get("memory"):
            self.mem_limit = limits["memory"]
        self.log.info(
            "Limits for %s from %s: cpu=%s memory=%s",
            self.user.name,
            limits.get("source", "service"),
            self.cpu_limit,
            self.mem_limit,
        )


try:
    from dockerspawner import DockerSpawner as _DockerSpawner
except ImportError:  # the service itself does not need DockerSpawner
    _DockerSpawner = None


if _DockerSpawner is not None:

    class Repo2DockerSpawner(Repo2DockerMixin, _DockerSpawner):
        """DockerSpawner that starts the images repo2docker-service lists for the user."""

        async def check_allowed(self, image: str) -> str:
            """DockerSpawner's check, asynchronous and against the service (not allowed_images)."""
            entry = await self.resolve_image(image)
            self.set_limits(entry)
            return image

        async def start(self):
            if not self.user_options.get("image") and self.require_image:
                raise web.HTTPError(400, "Choose an environment to start.")
            if self.allowed_images == "*":
                raise web.HTTPError(
                    500, "DockerSpawner.allowed_images = '*' is refused by Repo2DockerSpawner"
                )
            return await super().start()

    class Repo2DockerHostSpawner(Repo2DockerSpawner):
        """Repo2DockerSpawner on the host network, each server on a free port of 127.0.0.1.

        For hubs on one machine that listen on 127.0.0.1 (the demo, the tests): containers
        share the host's network, so they reach the hub, the registry and git servers on
        loopback. Set `ip` to another address of this host to listen elsewhere.
        """

        @default("network_name")
        def _default_network_name(self) -> str:
            return "host"

        @default("use_internal_ip")
        def _default_use_internal_ip(self) -> bool:
            return True

        @default("ip")
        def _default_ip(self) -> str:
            return "127.0.0.1"

        async def start(self):
            self.port = free_port(self.ip)
            return await super().start()

        async def get_ip_and_port(self):
            return self.ip, self.port

else:  # pragma: no cover - only without dockerspawner

    def __getattr__(name: str) -> Any:
        if name in ("Repo2DockerSpawner", "Repo2DockerHostSpawner"):
            raise ImportError(f"{name} needs dockerspawner: pip install dockerspawner")
        raise AttributeError(name)


# ------------------------------------------------------------------------- KubeSpawner
def make_profile_list(
    *,
    service_url: str | None = None,
    token: str | None = None,
    scope_prefix: str = "custom:repo2docker:",
    timeout: float = 10.0,
) -> Callable[[Any], Awaitable[list[dict[str, Any]]]]:
    """An async ``KubeSpawner.profile_list`` callable: one profile per startable image.

    Each profile: ``display_name``, ``slug`` (``<owner_slug>--<name>``, so
    ``?profile=<slug>`` preselects it), ``description`` (repo@ref, built date, limits) and
    ``kubespawner_override`` with ``image`` and, when the service sets them, ``cpu_limit``
    and ``mem_limit``. KubeSpawner calls it for the form and again in
    ``load_user_options`` when the server starts, so the choice is checked then.

    Args:
        service_url: the service as the hub reaches it (default ${URL_ENV} or
            http://127.0.0.1:8585/services/repo2docker/; on Kubernetes e.g.
            ``http://repo2docker:8585/services/repo2docker/``).
        token: the spawner client's token (default ${TOKEN_ENV}).
        scope_prefix: the service's scope prefix.
        timeout: seconds per request.

    Usage::

        c.KubeSpawner.profile_list = make_profile_list()
    """

    async def profile_list(spawner: Any) -> list[dict[str, Any]]:
        client = ServiceClient(
            url=service_url or os.environ.get(URL_ENV) or DEFAULT_SERVICE_URL,
            token=token if token is not None else os.environ.get(TOKEN_ENV, ""),
            timeout=timeout,
        )
        admin = user_holds_scope(spawner.user, scope_prefix + "admin")
        try:
            answer = await client.images_for(spawner.user.name, admin=admin)
        except ServiceUnavailable as e:
            spawner.log.error("repo2docker profile_list for %s: %s", spawner.user.name, e)
            raise web.HTTPError(503, f"Cannot list environments right now: {e}") from None
        profiles = []
        for entry in answer.get("images", []):
            limits = entry.get("limits") or {}
            override: dict[str, Any] = {"image": entry["image"]}
            if limits.get("cpu"):
                override["cpu_limit"] = float(limits["cpu"])
            if limits.get("memory"):
                override["mem_limit"] = limits["memory"]
            profiles.append(
                {
                    "display_name": entry.get("display_name") or entry["name"],
                    "slug": f"{entry['owner_slug']}--{entry['name']}",
                    "description": (
                        f"{entry.get('repo', '')}@{entry.get('ref', '')} · built "
                        f"{format_built_at(entry.get('built_at'))} · {describe_limits(limits)}"
                    ),
                    "kubespawner_override": override,
                }
            )
        return profiles

    return profile_list


# ------------------------------------------------------------------------- hub config
def configure_jupyterhub(
    c: Any,
    *,
    service_name: str = "repo2docker",
    service_url: str | None = None,
    scope_prefix: str = "custom:repo2docker:",
    token: str | None = None,
    client_name: str = "repo2docker-spawner",
    spawner_class: str | None = "repo2docker_service.spawner.Repo2DockerSpawner",
    server_token_scopes: bool = True,
    named_servers: bool = True,
    register_client: bool = True,
) -> str:
    """Add what the spawner helpers need to a hub config (``jupyterhub_config.py``).

    - declares ``<prefix>spawn`` in ``c.JupyterHub.custom_scopes``;
    - registers a token-only service ``client_name`` (no URL, no process) with ``token``
      and a role ``<client_name>`` holding exactly ``access:services!service=<service_name>``
      and ``<prefix>spawn``;
    - points the spawner at the service (``c.Repo2DockerMixin.service_url/service_token``)
      and sets ``c.JupyterHub.spawner_class`` (unless ``spawner_class`` is None);
    - with ``server_token_scopes``: servers' ``$JUPYTERHUB_API_TOKEN`` also carries
      ``access:services!service=<service_name>`` and ``<prefix>view`` (granted only when the
      user holds them), so JupyterLab extensions in the server can call the service;
    - with ``named_servers``: ``allow_named_servers`` (launch links start named servers).

    Args:
        c: the config object of ``jupyterhub_config.py``.
        service_name: the service's name in ``c.JupyterHub.services``.
        service_url: the service as the hub process reaches it, with its prefix (default
            ${URL_ENV}, else ``http://127.0.0.1:8585/services/<service_name>/``).
        scope_prefix: the service's scope prefix.
        token: the client's API token. Default: ${TOKEN_ENV}; if that is unset too, a random
            token for this hub process (fine for demos; each restart then leaves an unused
            token in the hub database, so set the variable in production).
        client_name: the token-only service the token belongs to.
        spawner_class: the spawner class to set, or None to leave it alone (KubeSpawner).
        server_token_scopes: give servers' tokens the service's view scope.
        named_servers: enable named servers.
        register_client: add the token-only service to ``c.JupyterHub.services``; False
            when it is declared elsewhere (z2jh's ``hub.services``, which also keeps its token).

    Returns:
        The token (so other config, e.g. KubeSpawner's ``make_profile_list``, can use it).
    """
    token = token or os.environ.get(TOKEN_ENV) or ""
    if not token:
        warnings.warn(
            f"${TOKEN_ENV} is not set: using a random token for this hub process",
            stacklevel=2,
        )
        token = secrets.token_hex(32)
    service_url = (
        service_url or os.environ.get(URL_ENV) or f"http://127.0.0.1:8585/services/{service_name}/"
    )
    access = f"access:services!service={service_name}"
    c.JupyterHub.custom_scopes.update(
        {
            f"{scope_prefix}spawn": {
                "description": "Read which environments any user may start (for spawners).",
            }
        }
    )
    if register_client:
        c.JupyterHub.services.append({"name": client_name, "api_token": token})
    c.JupyterHub.load_roles.append(
        {
            "name": client_name,
            "description": "The hub's spawner asks repo2docker-service what users may start.",
            "scopes": [access, f"{scope_prefix}spawn"],
            "services": [client_name],
        }
    )
    c.Repo2DockerMixin.service_url = service_url
    c.Repo2DockerMixin.service_token = token
    c.Repo2DockerMixin.scope_prefix = scope_prefix
    if spawner_class:
        c.JupyterHub.spawner_class = spawner_class
    if server_token_scopes:
        extra = [access, f"{scope_prefix}view"]
        c.Spawner.server_token_scopes = ["users:activity!user", "access:servers!server", *extra]
    if named_servers:
        c.JupyterHub.allow_named_servers = True
    return token
