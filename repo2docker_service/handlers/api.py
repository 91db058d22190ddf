"""JSON API handlers."""

from __future__ import annotations

from importlib.resources import files

from repo2docker import __version__ as repo2docker_version

from .._version import __version__
from ..auth import APIHandler, BaseHandler, needs_scope


class HealthHandler(BaseHandler):
    """Liveness: no authentication, no secrets."""

    async def prepare(self) -> None:  # no hub round-trip for health checks
        return

    def get(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish({"status": "ok", "version": __version__})


class OpenAPIHandler(BaseHandler):
    """The API contract (public, like the hub's own REST API docs)."""

    async def prepare(self) -> None:
        return

    def get(self) -> None:
        self.set_header("Content-Type", "application/yaml; charset=UTF-8")
        self.finish(files("repo2docker_service").joinpath("openapi.yaml").read_text())


class InfoHandler(APIHandler):
    """Service facts and the caller's identity and scopes."""

    @needs_scope(None)
    async def get(self) -> None:
        app = self.app
        user = self.current_user
        self.write_json(
            {
                "version": __version__,
                "repo2docker_version": repo2docker_version,
                "executor": app.executor_class.__name__,
                "registry": app.registry_url or None,
                "image_prefix": app.image_prefix,
                "limits": {
                    "build_concurrency": app.build_concurrency,
                    "max_queue": app.max_queue,
                    "build_timeout": app.build_timeout,
                    "build_idle_timeout": app.build_idle_timeout,
                },
                "allowed_repo_schemes": list(app.allowed_repo_schemes),
                "machine_profiles": app.machine_profiles,
                "user": {
                    "name": user["name"],
                    "kind": user.get("kind", "user"),
                    "admin": bool(user.get("admin")),
                    "scopes": sorted(self.scopes),
                },
            }
        )


class NotFoundAPIHandler(APIHandler):
    """Any other path under api/: a JSON 404 (not tornado's HTML page)."""

    async def prepare(self) -> None:
        from ..errors import NotFound

        raise NotFound(f"No such API endpoint: {self.request.path}")


class MetricsHandler(APIHandler):
    """Prometheus metrics; the admin scope is needed unless `metrics_require_auth` is off."""

    async def get(self) -> None:
        if self.app.metrics_require_auth:
            await self._get_as_admin()
        else:
            self._write_metrics()

    @needs_scope("admin")
    async def _get_as_admin(self) -> None:
        self._write_metrics()

    def _write_metrics(self) -> None:
        from ..metrics import CONTENT_TYPE_LATEST

        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.finish(self.app.metrics.exposition())


default_handlers = [
    (r"health", HealthHandler),
    (r"metrics", MetricsHandler),
    (r"api/openapi.yaml", OpenAPIHandler),
    (r"api/info", InfoHandler),
]
