"""JSON API handlers."""

from __future__ import annotations

from importlib.resources import files

from repo2docker import __version__ as repo2docker_version

from .._version import __version__
from ..auth import APIHandler, BaseHandler, needs_scope
from ..errors import NotFound
from ..metrics import CONTENT_TYPE_LATEST


class HealthHandler(BaseHandler):
    """Liveness: no authentication, no secrets."""

    async def prepare(self) -> None:  # no hub round-trip for health checks
        return

    def get(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish({"status": "ok", "version": __version__})


class ReadyHandler(BaseHandler):
    """Readiness: each part's state; 503 when the service cannot build or list.

    Public like ``health`` (probes carry no token): the body says nothing sensitive (see
    :mod:`repo2docker_service.readiness`).
    """

    async def prepare(self) -> None:  # no hub round-trip: the hub is one of the parts
        return

    async def get(self) -> None:
        report = await self.services.readiness.report()
        self.set_status(200 if report.ready else 503)
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.finish(report.to_dict())


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
        """With ``?disk=1`` (admins) also the images' disk space (a report up to 60 s old;
        ``?disk=fresh`` measures now): ``system df`` can take seconds on a busy engine."""
        me = self.me
        disk = None
        wanted = self.get_argument("disk", "")
        if wanted:
            if not me.may_admin():
                raise me.missing("admin")
            disk = await self.services.lifecycle.disk(fresh=wanted == "fresh")
        self.write_json(
            {
                "version": __version__,
                "repo2docker_version": repo2docker_version,
                **self.conf.facts,
                "catalog": self.services.catalog.state().to_dict(),
                "user": {
                    "name": me.name,
                    "kind": me.kind,
                    "admin": me.hub_admin,
                    "scopes": sorted(me.scopes),
                },
                **({"disk": disk} if disk is not None else {}),
            }
        )


class NotFoundAPIHandler(APIHandler):
    """Any other path under api/: a JSON 404 (not tornado's HTML page)."""

    async def prepare(self) -> None:
        raise NotFound(f"No such API endpoint: {self.request.path}")


class MetricsHandler(APIHandler):
    """Prometheus metrics; the admin scope is needed unless `metrics_require_auth` is off."""

    async def get(self) -> None:
        if self.conf.metrics_require_auth:
            await self._get_as_admin()
        else:
            self._write_metrics()

    @needs_scope("admin")
    async def _get_as_admin(self) -> None:
        self._write_metrics()

    def _write_metrics(self) -> None:
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.finish(self.services.metrics.exposition())


default_handlers = [
    (r"health", HealthHandler),
    (r"ready", ReadyHandler),
    (r"metrics", MetricsHandler),
    (r"api/openapi.yaml", OpenAPIHandler),
    (r"api/info", InfoHandler),
]
