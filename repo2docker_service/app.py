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
import signal
from pathlib import Path
from typing import Any

import jinja2
from jupyterhub.services.auth import HubOAuth
from jupyterhub.utils import url_path_join
from tornado import web
from tornado.httpserver import HTTPServer
from traitlets import Bool, TraitError, Unicode, default
from traitlets.config import Application, catch_config_error

from ._version import __version__
from .bodylimit import MAX_DRAIN_BYTES, BodyLimit
from .builds.executors import DockerExecutor, Executor, LocalExecutor
from .builds.history import BuildHistory
from .builds.manager import BuildManager
from .builds.store import BuildStore
from .config import DEFAULT_ACCESS_HELP, BuildsConfig, ImagesConfig, ServerConfig, SpawnConfig
from .context import HandlerSettings, Services
from .errors import UpstreamError
from .handlers import binder_handlers, default_handlers, fallback_handlers
from .hubservers import HubServers
from .images.catalog import Catalog
from .images.docker import DockerCatalog
from .images.lifecycle import ImageLifecycle
from .images.naming import ImageNamer
from .images.registry.catalog import RegistryCatalog
from .images.registry.client import RegistryClient
from .images.registry.errors import RegistryError
from .images.registrylogin import RegistryLogin
from .limits import normalize_profiles
from .metrics import ServiceMetrics
from .ratelimit import RateLimiter
from .readiness import Readiness
from .redact import install_log_redaction
from .registryconfig import RegistryLoginConfig
from .repoid import RepoIdentity
from .sources.commits import check_commit
from .sources.resolver import PushedCommits, RefResolver
from .webhooks import MAX_BODY_BYTES

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
    "repo2docker-config": "Executor.repo2docker_config",
}

flags = {
    "debug": ({"Application": {"log_level": logging.DEBUG}}, "Log at DEBUG level."),
    "generate-config": (
        {"Repo2DockerService": {"generate_config": True}},
        "Write a default config file (with every option commented out) and exit.",
    ),
}


class Repo2DockerService(
    ServerConfig, ImagesConfig, RegistryLoginConfig, BuildsConfig, SpawnConfig, Application
):
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

    #: parts that read their own options, c.<Class>.* (c.Executor.* too), for --help-all
    classes = [LocalExecutor, DockerExecutor, RefResolver, ImageLifecycle, Readiness, BuildHistory]

    # ------------------------------------------------------------------ lifecycle
    @catch_config_error
    def initialize(self, argv: list[str] | None = None) -> None:
        """Parse the command line, load the config file and build the components."""
        self.install_log_redaction()
        super().initialize(argv)
        if self.generate_config:
            return
        self.load_config_file_named(self.config_file)
        self.install_log_redaction()  # again: logging config may have made new handlers

    def install_log_redaction(self) -> None:
        """Redact credentials in every log record of the service and of tornado (the
        loggers and their handlers; see :mod:`repo2docker_service.redact`)."""
        names = ("tornado.access", "tornado.application", "tornado.general", "")
        install_log_redaction([self.log, *(logging.getLogger(n) for n in names)])

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
        return HubOAuth(parent=self, cache_max_age=60)

    def make_services(self) -> Services:
        """The bundle handlers get: components from :meth:`init_components` + settings."""
        settings = HandlerSettings(
            base_url=self.base_url,
            scope_prefix=self.scope_prefix,
            max_body_bytes=self.max_body_bytes,
            machine_profiles=tuple(self.profiles),
            default_cpu_limit=self.default_cpu_limit,
            default_memory_limit=self.default_memory_limit,
            metrics_require_auth=self.metrics_require_auth,
            webhook_secret=self.webhook_secret,
            launch_git_host=self.launch_git_host,
            binder_prefix=self.binder_prefix,
            binder_gitlab_host=self.binder_gitlab_host,
            allowed_repo_schemes=tuple(self.allowed_repo_schemes),
            hub_admins_are_admins=self.hub_admins_are_admins,
            event_keepalive_interval=self.event_keepalive_interval,
            access_help={**DEFAULT_ACCESS_HELP, **self.access_help},
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
                "case_insensitive_repo_hosts": sorted(
                    RepoIdentity.from_hosts(self.case_insensitive_repo_hosts).case_insensitive_hosts
                ),
                "machine_profiles": self.profiles,
            },
        )
        return Services(
            manager=self.manager,
            catalog=self.catalog,
            metrics=self.metrics,
            rate_limiter=self.rate_limiter,
            settings=settings,
            log=self.log,
            templates=jinja2.Environment(
                loader=jinja2.FileSystemLoader(str(HERE / "templates")),
                autoescape=True,
            ),
            # the hub's API as HubAuth finds it ($JUPYTERHUB_API_URL, set by the hub)
            servers=HubServers(HubOAuth(parent=self).api_url),
            pushed=self.pushed_commits,
            lifecycle=self.lifecycle,
            readiness=self.readiness,
        )

    def make_web_app(self) -> web.Application:
        """Assemble the Tornado application with all handlers."""
        hub_auth = self.make_hub_auth()
        context = {"services": self.make_services(), "hub_auth": hub_auth}
        routes = []
        for path, handler_cls in default_handlers:
            routes.append((url_path_join(self.base_url, path), handler_cls, context))
        if self.binder_prefix and self.binder_prefix != self.base_url:
            for path, handler_cls in binder_handlers:
                routes.append((url_path_join(self.binder_prefix, path), handler_cls, context))
        for path, handler_cls in fallback_handlers:
            routes.append((url_path_join(self.base_url, path), handler_cls, context))
        settings = {
            "cookie_secret": self.cookie_secret(),
            "xsrf_cookies": True,
            "static_path": str(HERE / "static"),
            "static_url_prefix": url_path_join(self.base_url, "static/"),
            "log_function": self._log_request,
        }
        return web.Application(routes, **settings)

    def make_body_limit(self, web_app: web.Application) -> BodyLimit:
        """``web_app`` behind the body limit: `max_body_bytes`, webhooks MAX_BODY_BYTES."""
        hooks = url_path_join(self.base_url, "api/webhooks/")

        def limit_for(path: str) -> int:
            return MAX_BODY_BYTES if path.startswith(hooks) else self.max_body_bytes

        return BodyLimit(web_app, limit_for=limit_for, log=self.log)

    def _log_request(self, handler: web.RequestHandler) -> None:
        # an event stream sends a refusal as an event on a 200: log the refusal's status
        status = getattr(handler, "refused_status", None) or handler.get_status()
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
        self.profiles = self.make_profiles()
        self.namer = self.make_namer()
        self.rate_limiter = RateLimiter(limit=self.build_rate_limit, period=self.build_rate_period)
        login = self.registry_login() if self.registry_url else None
        self.catalog = self.make_catalog(login)
        self.executor = self.make_executor(login)
        history = BuildHistory.of(parent=self, log=self.log)  # None unless db_url is set
        self.store = BuildStore(history_limit=self.history_limit, history=history)
        self.readiness = Readiness.for_parts(
            executor=self.executor, catalog=self.catalog, parent=self
        )
        self.metrics = ServiceMetrics(catalog=self.catalog)
        self.pushed_commits = PushedCommits()
        self.ref_resolver = RefResolver(parent=self, pushed=self.pushed_commits)
        self.manager = BuildManager(
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
            repo_identity=RepoIdentity.from_hosts(self.case_insensitive_repo_hosts),
            machine_profiles=[p["slug"] for p in self.profiles],
            commit_checker=check_commit,
            resolver=self.ref_resolver,
            gate=self.readiness,
            log=self.log,
        )
        self.readiness.queue_status = self.manager.status
        self.metrics.observe(self.manager)
        # containers are asked of the catalog's engine, or DOCKER_HOST's
        self.lifecycle = ImageLifecycle(parent=self, catalog=self.catalog, log=self.log)

    def make_profiles(self) -> list[dict[str, Any]]:
        """`machine_profiles` normalized (slugs, canonical sizes); exits when one is invalid."""
        try:
            return normalize_profiles(self.machine_profiles)
        except ValueError as e:
            self.log.critical("Invalid machine_profiles: %s", e)
            self.exit(1)
            raise  # not reached: exit raises SystemExit

    def make_namer(self) -> ImageNamer:
        """The image namer; exits with the reason when the naming settings are invalid."""
        try:
            return ImageNamer(
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
            raise  # not reached: exit raises SystemExit

    def make_catalog(self, login: RegistryLogin | None) -> Catalog:
        """The registry's catalog when `registry_url` is set, else the local engine's."""
        if not self.registry_url:
            return DockerCatalog(namer=self.namer, log=self.log)
        client = RegistryClient(
            self.registry_url,
            api_url=self.registry_api_url or None,
            login=login,
            timeout=self.registry_timeout if self.registry_timeout > 0 else 10.0,
            log=self.log,
        )
        return RegistryCatalog(
            namer=self.namer, client=client, cache_ttl=self.registry_cache_ttl, log=self.log
        )

    def registry_login(self) -> RegistryLogin:
        """The registry login (see :meth:`RegistryLogin.from_settings`); exits on an
        unreadable docker config file."""
        try:
            return RegistryLogin.from_settings(
                self.registry_url,
                username=self.registry_username,
                password=self.registry_password,
                config_file=self.registry_config_file,
                refresh_interval=self.registry_login_refresh,
                helper_timeout=self.registry_credential_helper_timeout,
                log=self.log,
            )
        except (OSError, ValueError) as e:
            self.log.critical("Cannot read the registry login: %s", e)
            self.exit(1)
            raise  # not reached: exit raises SystemExit

    def make_executor(self, login: RegistryLogin | None) -> Executor:
        """The `executor_class`, configured from its own options (`c.LocalExecutor.*`,
        `c.DockerExecutor.*`, `c.Executor.*`) and wired to the registry and this service.

        Args:
            login: the registry login for pushes, or None.

        Exits with the reason when an executor option is invalid (e.g. `build_user_id` 0,
        a `builder_memory_limit` that is not a size).
        """
        try:
            executor: Executor = self.executor_class(
                parent=self,
                registry=self.registry_url,
                registry_credentials=login.current if login else None,
                registry_login=login,
                instance=f"{self.service_name}:{self.registry_url}/{self.image_prefix}",
                log=self.log,
            )
        except (TraitError, ValueError) as e:
            self.log.critical("Invalid %s settings: %s", self.executor_class.__name__, e)
            self.exit(1)
            raise  # not reached: exit raises SystemExit
        return executor

    async def check_registry(self) -> None:
        """Check the registry once at start: the login is read (a credential helper runs),
        then `GET /v2/` with it.

        A login that cannot be read (a failing credential helper), a wrong URL (not a
        registry, TLS mismatch) or a refused login is fatal: it is
        logged as critical and the service exits. An unreachable registry is only logged:
        the service starts, listings answer 503 and builds fail at the push until the
        registry is back.
        """
        catalog = self.catalog
        assert isinstance(catalog, RegistryCatalog)  # called in registry mode only
        try:
            await catalog.start()
        except RegistryError as e:
            where = f"{self.registry_url} ({catalog.client.api_url})"
            if e.kind == "unreachable":
                self.log.error(
                    "Registry %s is unreachable at start-up: %s. Starting anyway; listings "
                    "answer 503 until it is back.",
                    where,
                    e,
                )
                return
            self.log.critical("Registry %s cannot be used: %s", where, e)
            await catalog.close()
            self.exit(1)
        self.log.info("Registry %s answers", self.registry_url)

    async def start_async(self) -> None:
        """Start serving until SIGTERM/SIGINT."""
        try:  # the parts check their own options (c.Readiness, c.ImageLifecycle, ...)
            self.init_components()
        except (TraitError, ValueError) as e:
            self.log.critical("Bad config encountered while starting: %s", e)
            self.exit(1)
        if self.registry_url:
            await self.check_registry()
        if not await self.store.open():  # the history database (db_url) said why not
            self.exit(1)
        await self.manager.start()
        self.lifecycle.start()
        try:
            await self.manager.recover()
        except UpstreamError as e:
            # keep serving: the page and API say what is wrong until the engine is back
            self.log.error("Could not read images (%s catalog): %s", self.catalog.name, e)
        self.web_app = self.make_web_app()
        # bodies over the limit are answered 413 by BodyLimit, the largest ones at once
        self.http_server = HTTPServer(
            self.make_body_limit(self.web_app), xheaders=True, max_body_size=MAX_DRAIN_BYTES
        )
        self.http_server.listen(self.port, self.ip)
        url = f"http://{self.ip}:{self.port}{self.base_url}"
        self.log.info("repo2docker-service %s listening on %s", __version__, url)
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
        await self.lifecycle.close()
        await self.store.close()
        await self.executor.close()
        await self.catalog.close()
        await self.ref_resolver.close()
        await self.readiness.close()

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
