"""The repo2docker-service Application: every configuration trait, wiring, start and stop.

Run as a JupyterHub service (managed or external)::

    repo2docker-service --config repo2docker_service_config.py

JupyterHub sets ``JUPYTERHUB_SERVICE_PREFIX``, ``JUPYTERHUB_API_TOKEN``,
``JUPYTERHUB_API_URL`` and friends for managed services; the defaults below read them.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import shutil
import signal
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import jinja2
from jupyterhub.services.auth import HubOAuth
from jupyterhub.utils import url_path_join
from tornado import web
from tornado.httpserver import HTTPServer
from traitlets import (
    Bool,
    Dict,
    Float,
    Integer,
    List,
    Type,
    Unicode,
    default,
    validate,
)
from traitlets.config import Application, catch_config_error

from ._version import __version__
from .context import HandlerSettings, Services
from .errors import UpstreamError
from .handlers import default_handlers
from .metrics import ServiceMetrics

HERE = Path(__file__).parent
DEFAULT_CONFIG_FILE = "repo2docker_service_config.py"

aliases = {
    "ip": "Repo2DockerService.ip",
    "port": "Repo2DockerService.port",
    "base-url": "Repo2DockerService.base_url",
    "config": "Repo2DockerService.config_file",
    "log-level": "Application.log_level",
    "registry-url": "Repo2DockerService.registry_url",
    "image-prefix": "Repo2DockerService.image_prefix",
    "build-concurrency": "Repo2DockerService.build_concurrency",
    "max-queue": "Repo2DockerService.max_queue",
    "build-timeout": "Repo2DockerService.build_timeout",
    "repo2docker-config": "Repo2DockerService.repo2docker_config",
}

flags = {
    "debug": (
        {"Application": {"log_level": logging.DEBUG}},
        "Log at DEBUG level.",
    ),
    "generate-config": (
        {"Repo2DockerService": {"generate_config": True}},
        "Write a default config file (with every option commented out) and exit.",
    ),
}


class Repo2DockerService(Application):
    """Build JupyterHub user environments from git repositories with repo2docker."""

    name = "repo2docker-service"
    version = __version__
    description = """
    A JupyterHub service that turns a git repository and ref into a Docker image with
    repo2docker, keeps a catalog of those images (read back from Docker or a registry),
    streams build logs, and tells spawners which images each user may start.
    """
    examples = """
    repo2docker-service --port 8585 --config repo2docker_service_config.py
    repo2docker-service --generate-config
    """
    aliases = aliases
    flags = flags

    @default("log_level")
    def _default_log_level(self) -> int:
        return logging.INFO

    @default("log_datefmt")
    def _default_log_datefmt(self) -> str:
        return "%Y-%m-%d %H:%M:%S"

    @default("log_format")
    def _default_log_format(self) -> str:
        return "[%(levelname)1.1s %(asctime)s.%(msecs).03d %(name)s] %(message)s"

    # ------------------------------------------------------------------ server
    config_file = Unicode(
        help="""Path of the Python config file to load (like jupyterhub_config.py).

        Default: $REPO2DOCKER_SERVICE_CONFIG, else repo2docker_service_config.py in the
        current directory. A missing file is fine when it is the default name; a missing
        file that was named explicitly is an error.
        """,
    ).tag(config=True)

    @default("config_file")
    def _default_config_file(self) -> str:
        return os.environ.get("REPO2DOCKER_SERVICE_CONFIG") or DEFAULT_CONFIG_FILE

    generate_config = Bool(
        False, help="Write the default config file to `config_file` and exit."
    ).tag(config=True)

    ip = Unicode(
        help="""IP address the service listens on.

        Default: the host of JUPYTERHUB_SERVICE_URL when the hub manages the service,
        else 127.0.0.1. Use 0.0.0.0 only when the hub or proxy reaches the service
        from another host or container.
        """,
    ).tag(config=True)

    @default("ip")
    def _default_ip(self) -> str:
        url = os.environ.get("JUPYTERHUB_SERVICE_URL")
        return (urlparse(url).hostname or "127.0.0.1") if url else "127.0.0.1"

    port = Integer(
        help="""TCP port the service listens on.

        Default: the port of JUPYTERHUB_SERVICE_URL when the hub manages the service,
        else 8585.
        """,
    ).tag(config=True)

    @default("port")
    def _default_port(self) -> int:
        url = os.environ.get("JUPYTERHUB_SERVICE_URL")
        if url and urlparse(url).port:
            return int(urlparse(url).port)
        return 8585

    base_url = Unicode(
        help="""URL prefix the service is served under, e.g. /services/repo2docker/.

        Default: $JUPYTERHUB_SERVICE_PREFIX (set by JupyterHub), else /services/repo2docker/.
        Always starts and ends with a slash.
        """,
    ).tag(config=True)

    @default("base_url")
    def _default_base_url(self) -> str:
        return os.environ.get("JUPYTERHUB_SERVICE_PREFIX") or "/services/repo2docker/"

    @validate("base_url")
    def _validate_base_url(self, proposal: dict[str, Any]) -> str:
        value = "/" + proposal["value"].strip("/") + "/"
        return value.replace("//", "/")

    service_name = Unicode(
        help="""Name of this service in JupyterHub (`c.JupyterHub.services`).

        Default: $JUPYTERHUB_SERVICE_NAME, else "repo2docker". Used in scope filters
        such as `access:services!service=<name>`.
        """,
    ).tag(config=True)

    @default("service_name")
    def _default_service_name(self) -> str:
        return os.environ.get("JUPYTERHUB_SERVICE_NAME") or "repo2docker"

    cookie_secret_file = Unicode(
        "",
        help="""File holding the secret (hex) that signs the service's cookies.

        Empty (default): the secret is derived from the service's JupyterHub API token
        with HMAC, so it survives service restarts without any file on disk while the
        token stays the same. Set a file when the token changes between restarts.
        """,
    ).tag(config=True)

    # ------------------------------------------------------------------ scopes
    scope_prefix = Unicode(
        "custom:repo2docker:",
        help="""Prefix of the custom JupyterHub scopes this service checks.

        The service checks `<prefix>view`, `<prefix>build` and `<prefix>admin`. Declare
        them in `c.JupyterHub.custom_scopes`, grant them through roles, and list them in
        the service's `oauth_client_allowed_scopes` (otherwise browser sessions never
        carry them).
        """,
    ).tag(config=True)

    # ------------------------------------------------------------------ images
    registry_url = Unicode(
        "",
        help="""Registry images are pushed to, as host[:port] (e.g. 127.0.0.1:5000).

        Empty (default): no registry; images stay in the local Docker engine (as on TLJH).
        With a registry, builds push and the catalog comes from the registry.
        """,
    ).tag(config=True)

    registry_username = Unicode(
        "",
        help="Username for the registry (empty: anonymous, or from `registry_config_file`).",
    ).tag(config=True)

    registry_password = Unicode(
        help="""Password or token for the registry.

        Default: $REPO2DOCKER_SERVICE_REGISTRY_PASSWORD. Prefer the environment variable
        over writing secrets in config files.
        """,
    ).tag(config=True)

    @default("registry_password")
    def _default_registry_password(self) -> str:
        return os.environ.get("REPO2DOCKER_SERVICE_REGISTRY_PASSWORD", "")

    registry_config_file = Unicode(
        "",
        help="""A docker config.json to read the registry login from (its `auths` entry for
        `registry_url`, as `docker login` writes it).

        Used when `registry_username` is empty. Empty (default): $DOCKER_CONFIG/config.json,
        else ~/.docker/config.json, if it exists. Credential helpers (`credsStore`,
        `credHelpers`) are not run. The same login is used for pushes.
        """,
    ).tag(config=True)

    registry_api_url = Unicode(
        "",
        help="""Base URL of the registry's API (OCI Distribution, `/v2/`).

        Empty (default): http://<registry_url> for loopback registries (127.0.0.0/8,
        localhost), else https://<registry_url>, as Docker does. Set it for a registry
        Docker reaches as an insecure (plain HTTP) registry, or when the service reaches
        the registry under another address than the engines that push to it.
        """,
    ).tag(config=True)

    registry_cache_ttl = Float(
        30,
        help="""Seconds the image listing read from the registry is reused.

        After this, listings answer from the old copy while one refresh runs in the
        background; the service's own builds and deletes update it at once, changes made
        by others show up after at most this long. 0: read the registry for every listing
        (slow with many images). Cache hits of builds always ask the registry.
        """,
    ).tag(config=True)

    image_prefix = Unicode(
        "r2d-",
        help="""Prefix put before the owner part of every image name.

        Keeps the service's images apart from other images in the same engine or
        registry; e.g. "r2d-" gives images like `r2d-alice/myenv:0123456789ab`.
        """,
    ).tag(config=True)

    image_name_template = Unicode(
        "{registry}{prefix}{owner}/{name}:{tag}",
        help="""Template of image references.

        Fields: registry (registry_url plus "/" or empty), prefix (image_prefix), owner
        (the escaped JupyterHub username, or "shared"), name (environment name), tag
        (12-character commit, or "latest"). The owner field must stay in the template:
        it is what keeps users' images apart.
        """,
    ).tag(config=True)

    @validate("image_name_template")
    def _validate_template(self, proposal: dict[str, Any]) -> str:
        value = proposal["value"]
        for field in ("{owner}", "{name}", "{tag}"):
            if field not in value:
                raise ValueError(f"image_name_template must contain {field}: {value!r}")
        return value

    # ------------------------------------------------------------------ builds
    executor_class = Type(
        "repo2docker_service.builds.executors.LocalExecutor",
        klass="repo2docker_service.builds.executors.Executor",
        help="""How builds run.

        LocalExecutor (default) runs repo2docker as a subprocess of the service.
        DockerExecutor (`repo2docker_service.builds.executors.DockerExecutor`) runs it in a
        builder container (`builder_image`) in the Docker engine; its builds survive a
        restart of the service, which follows them again.
        """,
    ).tag(config=True)

    repo2docker_command = List(
        Unicode(),
        help="""Command that runs repo2docker, as a list.

        Default: the `repo2docker` next to this Python, else `repo2docker` on PATH.
        """,
    ).tag(config=True)

    @default("repo2docker_command")
    def _default_repo2docker_command(self) -> list[str]:
        local = Path(sys.executable).parent / "repo2docker"
        if local.exists():
            return [str(local)]
        return [shutil.which("repo2docker") or "repo2docker"]

    repo2docker_config = Unicode(
        "",
        help="""A repo2docker config file passed with --config to every build.

        Empty: none. Use it to restrict content providers (e.g. offline hubs) or set
        repo2docker defaults. The bundled `repo2docker_offline_config.py` allows only
        Git and Local sources.
        """,
    ).tag(config=True)

    repo2docker_extra_args = List(
        Unicode(),
        help="""Extra command-line arguments for every repo2docker run.

        e.g. ['--build-memory-limit', '4G']. Never put secrets here: argv is visible in
        the process list.
        """,
    ).tag(config=True)

    build_user_id = Integer(
        1000, help="User id of the user inside built images (repo2docker --user-id)."
    ).tag(config=True)

    build_user_name = Unicode(
        "jovyan", help="User name inside built images (repo2docker --user-name)."
    ).tag(config=True)

    builder_image = Unicode(
        "quay.io/jupyterhub/repo2docker:main",
        help="""Image that runs repo2docker for the DockerExecutor.

        It needs repo2docker, git, sh, base64 and the docker CLI with the buildx plugin
        (the upstream repo2docker image has them; pin a version tag). It must be in the
        engine: it is never pulled by the service. Not used by LocalExecutor.
        """,
    ).tag(config=True)

    builder_repo2docker_command = List(
        Unicode(),
        default_value=["repo2docker"],
        help="Command that runs repo2docker inside `builder_image` (DockerExecutor).",
    ).tag(config=True)

    builder_network = Unicode(
        "host",
        help="""Network of builder containers (DockerExecutor): host, bridge or a network name.

        host (default) lets builds reach git servers and registries on the engine host's
        loopback addresses.
        """,
    ).tag(config=True)

    builder_cpu_limit = Float(
        0,
        help="""CPUs of each builder container (DockerExecutor). 0: no limit.

        This limits repo2docker, git and the docker client; the image build itself runs
        in the engine's BuildKit.
        """,
    ).tag(config=True)

    builder_memory_limit = Unicode(
        "",
        help="Memory of each builder container (DockerExecutor), e.g. '2G'. Empty: no limit.",
    ).tag(config=True)

    builder_env = Dict(
        Unicode(),
        help="""Extra environment variables of builder containers (DockerExecutor), e.g.
        proxies or BUILDX_BUILDER. Never secrets: `docker inspect` shows them.
        """,
    ).tag(config=True)

    build_concurrency = Integer(
        2,
        help="How many builds run at the same time. Each build is CPU- and disk-heavy.",
    ).tag(config=True)

    max_queue = Integer(
        20,
        help="""How many builds may wait for a free slot.

        Further requests get 429 Too Many Requests with Retry-After. 0 means no waiting:
        only `build_concurrency` builds are accepted at a time.
        """,
    ).tag(config=True)

    build_timeout = Float(
        3600,
        help="Seconds a build may run in total before it is stopped and failed. 0: no limit.",
    ).tag(config=True)

    build_idle_timeout = Float(
        900,
        help="""Seconds a build may go without printing any output before it is stopped.

        0: no limit. Catches builds stuck on a prompt or a dead network.
        """,
    ).tag(config=True)

    allowed_repo_schemes = List(
        Unicode(),
        default_value=["https"],
        help="""URL schemes users may build from.

        Default only https. Add "http" for plain-HTTP git servers on a trusted network,
        "file" only for tests and demos (it lets users read repositories on the
        service's host).
        """,
    ).tag(config=True)

    allowed_repo_hosts = List(
        Unicode(),
        help="""Host names users may build from, e.g. ["github.com", "gitlab.example.org"].

        Empty (default): any host. Set it to keep builds to your own git servers.
        """,
    ).tag(config=True)

    history_limit = Integer(
        200,
        help="How many finished builds (with their logs) are kept in memory for listing.",
    ).tag(config=True)

    log_limit_bytes = Integer(
        2 * 1024 * 1024,
        help="""Bytes of log kept per build in memory.

        Past this, the oldest log lines are dropped (state events are always kept).
        """,
    ).tag(config=True)

    # ------------------------------------------------------------------ spawning hints
    machine_profiles = List(
        Dict(),
        help="""Machine profiles users pick from, e.g.
        [{"name": "small", "display_name": "Small (1 CPU, 2 GB)", "cpu": 1, "memory": "2G"}].

        Empty: users give cpu/memory hints directly (bounded by the defaults below).
        """,
    ).tag(config=True)

    default_cpu_limit = Float(
        0, help="CPU limit suggested to spawners when an image has no hint. 0: no limit."
    ).tag(config=True)

    default_memory_limit = Unicode(
        "",
        help="""Memory limit suggested to spawners when an image has no hint.

        e.g. '2G'. Empty: no limit.
        """,
    ).tag(config=True)

    webhook_secret = Unicode(
        help="""Shared secret of push webhooks (`POST api/webhooks/{github,gitea,gitlab}`).

        Empty (the default): webhooks are off and the endpoint answers 404. Set, a push to
        a branch rebuilds every environment built from that repository and branch (or
        `HEAD` when it is the default branch). Put the same secret in the git host's
        webhook settings (GitHub/Gitea sign the body with it, GitLab sends it as
        `X-Gitlab-Token`). Default: $REPO2DOCKER_SERVICE_WEBHOOK_SECRET.
        """,
    ).tag(config=True)

    @default("webhook_secret")
    def _default_webhook_secret(self) -> str:
        return os.environ.get("REPO2DOCKER_SERVICE_WEBHOOK_SECRET", "")

    metrics_require_auth = Bool(
        True,
        help="""Whether `GET metrics` (Prometheus) needs the admin scope.

        True: scrape with a hub API token of a user or service holding
        `custom:repo2docker:admin`. False: anyone who can reach the service's URL may read
        the metrics (counts and states only: no names, repositories or logs).
        """,
    ).tag(config=True)

    build_rate_limit = Integer(
        30,
        help="""Build requests one user may make per `build_rate_period` seconds.

        Requests over it get 429 Too Many Requests with Retry-After. Cache hits count
        too (each one contacts the git server). 0: no limit. Admins are limited as well.
        """,
    ).tag(config=True)

    build_rate_period = Float(
        60, help="Length in seconds of the window `build_rate_limit` counts requests in."
    ).tag(config=True)

    max_body_bytes = Integer(
        64 * 1024,
        help="""Largest request body the API accepts, in bytes.

        Larger bodies get 413 with a message. Build requests are small JSON objects.
        """,
    ).tag(config=True)

    # ------------------------------------------------------------------ launch links
    launch_git_host = Unicode(
        "https://github.com",
        help="""Git host that short launch links point at.

        `v2/gh/<org>/<repo>/<ref>` builds `<launch_git_host>/<org>/<repo>` at `<ref>`
        (like Binder's GitHub links). Set it to your GitLab or Gitea base URL to make
        short links point there; the URL's scheme must be in `allowed_repo_schemes`.
        """,
    ).tag(config=True)

    @validate("launch_git_host")
    def _validate_launch_git_host(self, proposal: dict[str, Any]) -> str:
        value = proposal["value"].rstrip("/")
        if not urlparse(value).scheme or not urlparse(value).netloc:
            raise ValueError(f"launch_git_host must be a URL like https://github.com: {value!r}")
        return value

    # ------------------------------------------------------------------ lifecycle
    @catch_config_error
    def initialize(self, argv: list[str] | None = None) -> None:
        """Parse the command line, load the config file and build the components."""
        super().initialize(argv)
        if self.generate_config:
            return
        self.load_config_file_named(self.config_file)

    def load_config_file_named(self, path: str) -> None:
        """Load ``path`` if it exists; a missing file given explicitly is an error."""
        p = Path(path)
        if not p.exists():
            if path != DEFAULT_CONFIG_FILE:
                self.log.critical("Config file not found: %s", path)
                self.exit(1)
            return
        self.log.info("Loading config from %s", p)
        self.load_config_file(p.name, path=str(p.parent.resolve()))

    def cookie_secret(self) -> bytes:
        """The cookie-signing secret: from `cookie_secret_file` or derived from the token."""
        if self.cookie_secret_file:
            return bytes.fromhex(Path(self.cookie_secret_file).read_text().strip())
        token = os.environ.get("JUPYTERHUB_API_TOKEN", "")
        if not token:
            return os.urandom(32)
        return hmac.new(
            token.encode(), b"repo2docker-service cookie secret", hashlib.sha256
        ).digest()

    def make_hub_auth(self) -> HubOAuth:
        """The HubOAuth object every handler authenticates with."""
        hub_auth = HubOAuth(parent=self, cache_max_age=60)
        return hub_auth

    def make_services(self) -> Services:
        """The bundle handlers get: components from :meth:`init_components` + settings."""
        settings = HandlerSettings(
            base_url=self.base_url,
            scope_prefix=self.scope_prefix,
            max_body_bytes=self.max_body_bytes,
            machine_profiles=tuple(self.machine_profiles),
            default_cpu_limit=self.default_cpu_limit,
            default_memory_limit=self.default_memory_limit,
            metrics_require_auth=self.metrics_require_auth,
            webhook_secret=self.webhook_secret,
            launch_git_host=self.launch_git_host,
            allowed_repo_schemes=tuple(self.allowed_repo_schemes),
            facts={
                "executor": self.executor_class.__name__,
                "registry": self.registry_url or None,
                "image_prefix": self.image_prefix,
                "limits": {
                    "build_concurrency": self.build_concurrency,
                    "max_queue": self.max_queue,
                    "build_timeout": self.build_timeout,
                    "build_idle_timeout": self.build_idle_timeout,
                },
                "allowed_repo_schemes": list(self.allowed_repo_schemes),
                "machine_profiles": self.machine_profiles,
            },
        )
        return Services(
            manager=self.manager,
            catalog=self.catalog,
            metrics=self.metrics,
            rate_limiter=self.rate_limiter,
            settings=settings,
            log=self.log,
        )

    def make_web_app(self) -> web.Application:
        """Assemble the Tornado application with all handlers."""
        hub_auth = self.make_hub_auth()
        context = {"services": self.make_services(), "hub_auth": hub_auth}
        routes = []
        for path, handler_cls in default_handlers:
            routes.append((url_path_join(self.base_url, path), handler_cls, context))
        settings = {
            "cookie_secret": self.cookie_secret(),
            "xsrf_cookies": True,
            "static_path": str(HERE / "static"),
            "static_url_prefix": url_path_join(self.base_url, "static/"),
            "jinja2_env": jinja2.Environment(
                loader=jinja2.FileSystemLoader(str(HERE / "templates")),
                autoescape=True,
            ),
            "log_function": self._log_request,
        }
        return web.Application(routes, **settings)

    def _log_request(self, handler: web.RequestHandler) -> None:
        status = handler.get_status()
        level = logging.INFO if status < 400 else logging.WARNING
        if handler.request.path.endswith("/health") and status < 400:
            level = logging.DEBUG
        self.log.log(
            level,
            "%d %s %s %.1fms",
            status,
            handler.request.method,
            handler.request.path,  # never the query: it may carry a launch repo URL
            1000.0 * handler.request.request_time(),
        )

    def init_components(self) -> None:
        """Build the namer, catalog, executor, store and build manager from config."""
        from .builds.manager import BuildManager
        from .images.docker import DockerCatalog
        from .images.naming import ImageNamer
        from .ratelimit import RateLimiter
        from .store import BuildStore

        try:
            self.namer = ImageNamer(
                template=self.image_name_template,
                registry=self.registry_url,
                prefix=self.image_prefix,
            )
        except ValueError as e:
            self.log.critical(
                "Invalid image naming settings (image_name_template=%r, registry_url=%r, "
                "image_prefix=%r): %s",
                self.image_name_template,
                self.registry_url,
                self.image_prefix,
                e,
            )
            self.exit(1)
        self.rate_limiter = RateLimiter(limit=self.build_rate_limit, period=self.build_rate_period)
        credentials = self.registry_credentials() if self.registry_url else None
        if self.registry_url:
            from .images.registry import RegistryCatalog, RegistryClient

            client = RegistryClient(
                self.registry_url,
                api_url=self.registry_api_url or None,
                credentials=credentials,
                log=self.log,
            )
            self.catalog = RegistryCatalog(
                namer=self.namer, client=client, cache_ttl=self.registry_cache_ttl, log=self.log
            )
        else:
            self.catalog = DockerCatalog(namer=self.namer, log=self.log)
        self.executor = self.executor_class(**self._executor_kwargs(credentials))
        self.store = BuildStore(history_limit=self.history_limit)
        self.metrics = ServiceMetrics(catalog=self.catalog)
        self.manager = BuildManager(
            metrics=self.metrics,
            executor=self.executor,
            catalog=self.catalog,
            namer=self.namer,
            store=self.store,
            allowed_repo_schemes=tuple(self.allowed_repo_schemes),
            allowed_repo_hosts=tuple(self.allowed_repo_hosts),
            concurrency=self.build_concurrency,
            max_queue=self.max_queue,
            build_timeout=self.build_timeout,
            build_idle_timeout=self.build_idle_timeout,
            log_limit_bytes=self.log_limit_bytes,
            push=bool(self.registry_url),
            log=self.log,
        )
        self.metrics.attach(manager=self.manager)

    def registry_credentials(self) -> Any:
        """The registry login: `registry_username`/`password`, else the docker config.

        Returns:
            ``RegistryCredentials`` or None (anonymous). Exits on an unreadable docker
            config file.
        """
        from .images.registry import (
            RegistryCredentials,
            docker_config_credentials,
            load_docker_config,
        )

        if self.registry_username:
            return RegistryCredentials(self.registry_username, self.registry_password)
        path = self.registry_config_file or str(
            Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker") / "config.json"
        )
        try:
            found = docker_config_credentials(load_docker_config(path), self.registry_url)
        except (OSError, ValueError) as e:
            self.log.critical("Cannot read the registry login from %s: %s", path, e)
            self.exit(1)
        if found is not None:
            self.log.info("Registry login for %s from %s", self.registry_url, path)
        elif self.registry_config_file:
            self.log.warning("%s has no login for %s", path, self.registry_url)
        return found

    def _executor_kwargs(self, credentials: Any) -> dict[str, Any]:
        """Constructor arguments of `executor_class` (LocalExecutor or DockerExecutor)."""
        from .builds.executors import DockerExecutor

        kwargs: dict[str, Any] = {
            "user_id": self.build_user_id,
            "user_name": self.build_user_name,
            "extra_args": list(self.repo2docker_extra_args),
            "repo2docker_config": self.repo2docker_config or None,
            "registry": self.registry_url,
            "registry_credentials": credentials,
            "log": self.log,
        }
        if issubclass(self.executor_class, DockerExecutor):
            kwargs.update(
                builder_image=self.builder_image,
                repo2docker_command=list(self.builder_repo2docker_command),
                network=self.builder_network,
                cpu_limit=self.builder_cpu_limit,
                memory_limit=self.builder_memory_limit,
                builder_env=dict(self.builder_env),
                instance=f"{self.service_name}:{self.registry_url}/{self.image_prefix}",
            )
        else:
            kwargs["repo2docker_command"] = list(self.repo2docker_command)
        return kwargs

    async def check_registry(self) -> None:
        """Check the registry once at start: `GET /v2/` with the configured login.

        A wrong URL (not a registry, TLS mismatch) or a refused login is fatal: it is
        logged as critical and the service exits. An unreachable registry is only logged:
        the service starts, listings answer 503 and builds fail at the push until the
        registry is back.
        """
        from .images.registry import RegistryError

        try:
            await self.catalog.start()
        except RegistryError as e:
            where = f"{self.registry_url} ({self.catalog.client.api_url})"
            if e.kind == "unreachable":
                self.log.error(
                    "Registry %s is unreachable at start-up: %s. Starting anyway; listings "
                    "answer 503 until it is back.",
                    where,
                    e,
                )
                return
            self.log.critical("Registry %s cannot be used: %s", where, e)
            await self.catalog.close()
            self.exit(1)
        self.log.info("Registry %s answers", self.registry_url)

    async def start_async(self) -> None:
        """Start serving until SIGTERM/SIGINT."""
        self.init_components()
        if self.registry_url:
            await self.check_registry()
        await self.manager.start()
        try:
            await self.manager.recover()
        except UpstreamError as e:
            # keep serving: the page and API say what is wrong until the engine is back
            self.log.error("Could not read images (%s catalog): %s", self.catalog.name, e)
        self.web_app = self.make_web_app()
        # tornado refuses far larger bodies outright; handlers answer 413 past max_body_bytes
        self.http_server = HTTPServer(
            self.web_app, xheaders=True, max_body_size=max(self.max_body_bytes * 4, 8 << 20)
        )
        self.http_server.listen(self.port, self.ip)
        self.log.info(
            "repo2docker-service %s listening on http://%s:%d%s",
            __version__,
            self.ip,
            self.port,
            self.base_url,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        self.log.info("Shutting down")
        self.http_server.stop()
        await self.stop_async()

    async def stop_async(self) -> None:
        """Stop running builds and release the Docker clients."""
        await self.manager.stop()
        await self.executor.close()
        await self.catalog.close()

    def start(self) -> None:
        if self.generate_config:
            self.write_default_config()
            return
        asyncio.run(self.start_async())

    def write_default_config(self) -> None:
        path = Path(self.config_file)
        if path.exists():
            self.log.critical("Refusing to overwrite existing %s", path)
            self.exit(1)
        path.write_text(self.generate_config_file())
        print(f"Wrote default config to {path}")


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    Repo2DockerService.launch_instance(argv)
