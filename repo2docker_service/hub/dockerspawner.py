"""DockerSpawner that starts the images repo2docker-service lists for the user.

The service never starts servers; the hub's spawner asks it which images a user may start
(``GET api/users/{name}/images``, :class:`~.client.ServiceClient`) and with which limits.

:class:`Repo2DockerSpawner` (DockerSpawner) has an options form listing the user's images
(display name, repo@ref, built date, limits; :mod:`.forms`), takes ``?image=<reference>`` in
the spawn URL to preselect/start one, and checks at spawn time, asynchronously in
``start()``, that the image is one the service lists for that user now. ``allowed_images``
is never used (and never ``"*"``). One line of config::

    c.JupyterHub.spawner_class = "repo2docker_service.hub.dockerspawner.Repo2DockerSpawner"

:class:`Repo2DockerMixin` carries the logic for other DockerSpawner subclasses;
:class:`Repo2DockerHostSpawner` adds host networking for one-machine hubs bound to
127.0.0.1 (tests, the demo). ``configure_jupyterhub`` (:mod:`.config`) sets it all up.
"""

from __future__ import annotations

import inspect
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from tornado import web
from traitlets import Bool, Float, Int, Unicode, default
from traitlets.config import Configurable

from .buildform import BuildFormSettings, service_name_of, token_scopes
from .client import (
    DEFAULT_SERVICE_URL,
    TOKEN_ENV,
    URL_ENV,
    ServiceClient,
    ServiceUnavailable,
    default_service_url,
    hub_admins_from_environment,
    scopes_held,
    user_holds_scope,
)
from .dockernames import owned_by, owner_labels, safe_name_template
from .forms import (
    find_image,
    first_value,
    not_available,
    options_from_form,
    render_options_form,
)

try:
    from docker.errors import APIError, NotFound
    from dockerspawner import DockerSpawner
except ImportError as e:  # pragma: no cover - only in a hub without dockerspawner
    raise ImportError(
        "repo2docker_service.hub.dockerspawner needs dockerspawner: pip install dockerspawner"
    ) from e

__all__ = ["Repo2DockerHostSpawner", "Repo2DockerMixin", "Repo2DockerSpawner", "free_port"]


def free_port(ip: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``ip`` right now."""
    with socket.socket() as s:
        s.bind((ip, 0))
        port: int = s.getsockname()[1]
        return port


class Repo2DockerMixin(Configurable):
    """Options form, spawn-time check and limits from repo2docker-service.

    Mix into a DockerSpawner subclass before DockerSpawner (see :class:`Repo2DockerSpawner`).
    Config section: ``c.Repo2DockerMixin`` (or the concrete class name).
    """

    if TYPE_CHECKING:  # provided by jupyterhub.spawner.Spawner, which this is mixed into
        user: Any
        handler: web.RequestHandler | None
        log: logging.Logger
        user_options: dict[str, Any]
        cpu_limit: float | None
        mem_limit: int | str | None

    service_url = Unicode(
        help=f"""URL of repo2docker-service as the hub process reaches it, with its prefix.

        Default: ${URL_ENV}, else {DEFAULT_SERVICE_URL} (a hub-managed service on
        its default port). The service's own address is fine (no need to go through the
        proxy).
        """,
    ).tag(config=True)

    @default("service_url")
    def _default_service_url(self) -> str:
        return default_service_url()

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

    build_from_form = Bool(
        True,
        help="""Offer "Build from a repository" in the options form (users holding the
        service's build scope): repository, ref, Build, the live log, then the built image
        is selected. False: the form lists existing environments only.
        """,
    ).tag(config=True)

    build_token_seconds = Int(
        4 * 3600,
        help="""Lifetime, in seconds, of the API token the form's "Build" asks the hub for
        (scopes: reaching the service and building; deleted when the build ends). 0: the
        hub's default (`JupyterHub.token_expires_in_max_seconds`, else no expiry).
        """,
    ).tag(config=True)

    service_name = Unicode(
        help="""The service's name in `c.JupyterHub.services`, for the form token's
        `access:services!service=<name>`. Default: from `service_url`'s path
        (`/services/<name>/`), else `repo2docker`.
        """,
    ).tag(config=True)

    @default("service_name")
    def _default_service_name(self) -> str:
        return service_name_of(urlparse(self.service_url).path)

    hub_admins_are_admins = Bool(
        True,
        help="""Whether hub admins may start every image, as holders of `<prefix>admin`.

        Keep it equal to the service's `Repo2DockerService.hub_admins_are_admins`
        (`register_service(hub_admins=...)` sets both). Default: the hub's
        $REPO2DOCKER_SERVICE_HUB_ADMINS_ARE_ADMINS ("0" or "false" turns it off), the
        variable the README's snippet hands to the service, else True.
        """,
    ).tag(config=True)

    @default("hub_admins_are_admins")
    def _default_hub_admins_are_admins(self) -> bool:
        return hub_admins_from_environment()

    # ------------------------------------------------------------ asking the service
    def _service_client(self) -> ServiceClient:
        return ServiceClient(
            url=self.service_url, token=self.service_token, timeout=self.service_timeout
        )

    def _user_is_admin(self) -> bool:
        return user_holds_scope(
            self.user, self.scope_prefix + "admin", hub_admins=self.hub_admins_are_admins
        )

    async def startable_images(self) -> dict[str, Any]:
        """The service's answer for this spawner's user (raises ServiceUnavailable)."""
        return await self._service_client().images_for(self.user.name, admin=self._user_is_admin())

    # ------------------------------------------------------------ the options form
    def _service_page(self) -> str:
        return urlparse(self.service_url).path or "/"

    def _requested_in_query(self) -> str | None:
        handler = getattr(self, "handler", None)
        if handler is None:
            return None
        try:
            requested: str | None = handler.get_argument("image", None) or handler.get_argument(
                "opt-image", None
            )
        except Exception:
            return None
        return requested

    async def _render_form(self, spawner: Any = None) -> str:
        try:
            answer = await self.startable_images()
        except ServiceUnavailable as e:
            self.log.error("repo2docker options form for %s: %s", self.user.name, e)
            return render_options_form(None, error=str(e))
        selected = self._requested_in_query() or first_value(self.user_options.get("image"))
        return render_options_form(
            answer,
            selected=selected,
            service_page=self._service_page(),
            build=self._build_form_settings(),
        )

    def _build_form_settings(self) -> BuildFormSettings | None:
        """The form's build choice, for users who may build (see :mod:`.buildform`)."""
        if not self.build_from_form:
            return None
        scopes = token_scopes(
            scopes_held(self.user), service_name=self.service_name, scope_prefix=self.scope_prefix
        )
        if not scopes:
            return None
        return BuildFormSettings(
            service_page=self._service_page(),
            user=self.user.name,
            scopes=scopes,
            token_seconds=self.build_token_seconds,
        )

    @default("options_form")
    def _default_options_form(self) -> Callable[[Any], Awaitable[str]]:
        return self._render_form

    @default("options_from_form")
    def _default_options_from_form(self) -> Callable[[dict[str, Any]], dict[str, Any]]:
        return options_from_form

    def options_from_query(self, query_data: dict[str, Any]) -> dict[str, Any]:
        """``/hub/spawn/<user>/<server>?image=<reference>`` starts that image."""
        return options_from_form(query_data)

    # ------------------------------------------------------------ at spawn time
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
            raise web.HTTPError(403, not_available(requested, name))
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


# dockerspawner ships no type information: DockerSpawner is Any to mypy
class Repo2DockerSpawner(Repo2DockerMixin, DockerSpawner):  # type: ignore[misc]
    """DockerSpawner that starts the images repo2docker-service lists for the user.

    One container per server, and never another's (:mod:`.dockernames`): a
    ``name_template`` that cannot tell two servers apart (no ``{servername}`` while named
    servers are allowed, no ``{username}``, an ambiguous separator) is completed with the
    missing part (``--{servername}``, ``-{username}``) for the servers it would mix up,
    with a warning in the hub's log; the default server keeps its configured name. The
    containers it creates carry :data:`~.dockernames.LABEL_USER` and
    :data:`~.dockernames.LABEL_SERVER`, and a container that is not this server's (by those
    labels, else by its ``JUPYTERHUB_USER`` / ``JUPYTERHUB_SERVER_NAME``) is never adopted,
    stopped or removed: a start that finds one under its name fails with a 409 naming it.
    """

    if TYPE_CHECKING:  # DockerSpawner's, which is Any to mypy
        extra_create_kwargs: Any

    # ------------------------------------------------------------ whose container
    def _object_name_default(self) -> str:
        """The container's name, from a template that tells this server from the others
        (DockerSpawner calls this for the default and when the image changes)."""
        template, problems = safe_name_template(self.name_template, named=bool(self.name))
        for problem in problems:
            self.log.warning(
                "%s; %s's server %r is named with %r instead",
                problem,
                self.user.name,
                self.name,
                template,
            )
        name: str = self._render_templates(template)
        return name

    @default("object_name")
    def _default_safe_object_name(self) -> str:
        return self._object_name_default()

    def _is_mine(self, obj: dict[str, Any]) -> bool:
        """``obj`` (``docker inspect``) is this server's container (always, for services)."""
        return self.object_type != "container" or owned_by(obj, self.user.name, self.name)

    async def get_object(self) -> dict[str, Any] | None:
        """DockerSpawner's lookup by name, refusing a container that is not this server's.

        Returns:
            The container, or None when there is none or it belongs to someone else (then
            ``object_id`` is cleared, so nothing of this server acts on it).
        """
        obj: dict[str, Any] | None = await super().get_object()
        if obj is not None and not self._is_mine(obj):
            self.log.warning(
                "Container %s (id %s) is not %s's server %r: leaving it alone",
                self.object_name,
                str(obj.get("Id", ""))[:12],
                self.user.name,
                self.name,
            )
            self.object_id = ""
            return None
        return obj

    async def _mine_by_id(self, action: str) -> bool:
        """Whether ``object_id`` names this server's container (checked before ``action``)."""
        if self.object_type != "container":
            return True
        if not self.object_id:
            return False
        try:
            obj = await self.docker("inspect_container", self.object_id)
        except NotFound:
            return False  # gone already
        if self._is_mine(obj):
            return True
        self.log.warning(
            "Not going to %s container %s: it is not %s's server %r",
            action,
            self.object_id[:12],
            self.user.name,
            self.name,
        )
        return False

    async def stop_object(self) -> None:
        """Stop the container, only if it is this server's."""
        if await self._mine_by_id("stop"):
            await super().stop_object()

    async def remove_object(self) -> None:
        """Remove the container, only if it is this server's."""
        if await self._mine_by_id("remove"):
            await super().remove_object()

    async def create_object(self) -> dict[str, Any]:
        """DockerSpawner's create, with :func:`~.dockernames.owner_labels` added to the
        configured ``extra_create_kwargs`` (which stay as they are)."""
        configured: Any = self.extra_create_kwargs
        # DockerSpawner formats these strings with its template namespace: keep braces
        labels = {
            k: v.replace("{", "{{").replace("}", "}}")
            for k, v in owner_labels(self.user.name, self.name).items()
        }

        async def with_labels(spawner: Any) -> dict[str, Any]:
            extra = self._eval_if_callable(configured)
            if inspect.isawaitable(extra):
                extra = await extra
            merged = dict(extra or {})
            merged["labels"] = {**(merged.get("labels") or {}), **labels}
            return merged

        self.extra_create_kwargs = with_labels
        try:
            created: dict[str, Any] = await super().create_object()
        finally:
            self.extra_create_kwargs = configured
        return created

    async def check_allowed(self, image: str) -> str:
        """DockerSpawner's check, asynchronous and against the service (not allowed_images)."""
        entry = await self.resolve_image(image)
        self.set_limits(entry)
        return image

    async def start(self) -> tuple[str, int]:
        """Refuse a start without a chosen image, or with ``allowed_images = "*"``.

        Returns:
            DockerSpawner's ``(ip, port)`` of the started server.

        Raises:
            web.HTTPError: 400 no image chosen, 500 ``allowed_images`` is ``"*"``; and those
                of :meth:`resolve_image` (through ``check_allowed``).
        """
        if not self.user_options.get("image") and self.require_image:
            raise web.HTTPError(400, "Choose an environment to start.")
        if self.allowed_images == "*":
            raise web.HTTPError(
                500, "DockerSpawner.allowed_images = '*' is refused by Repo2DockerSpawner"
            )
        try:
            started: tuple[str, int] = await super().start()
        except APIError as e:
            if e.status_code != 409:
                raise
            # the name is taken by a container get_object() refused: not this server's
            raise web.HTTPError(
                409,
                f"Cannot start {self.user.name}'s server {self.name!r}: the container name "
                f"{self.object_name} is taken by a container that is not this server's "
                "(left alone). An administrator can remove it, or set "
                "DockerSpawner.name_template so that each server gets its own name.",
            ) from None
        return started


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

    async def start(self) -> tuple[str, int]:
        """Pick a free port on ``ip``, then start (see :meth:`Repo2DockerSpawner.start`)."""
        self.port = free_port(self.ip)
        return await super().start()

    async def get_ip_and_port(self) -> tuple[str, int]:
        """The server listens on this host's ``ip`` and the port picked in :meth:`start`."""
        return self.ip, self.port
