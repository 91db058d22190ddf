"""Readiness: whether the service can build and list now, part by part (``GET ready``).

``health`` is liveness (the process answers; it asks nothing else). Readiness asks each
part the service depends on:

- ``hub``: the hub's REST API answers (``GET {api}/``, no token: it names its version);
- ``docker``: the Docker engine builds run in answers (its version);
- ``registry`` (registry mode): the registry answers ``GET /v2/`` with the login;
- the catalog: live, or serving its last good listing (stale), or nothing to list;
- the build queue: builds queued and running.

The service is *ready* when every part answers: it can then build and list. The answer is
cheap and bounded: the parts are asked concurrently, each within ``check_timeout``, at most
once per ``cache_seconds`` (concurrent callers share one round), never blocking the loop.

The answer goes to probes that carry no token, so it names parts, states, times and what to
check, never an address, a version, a user or a credential; the details (where, the error)
go to the log when a part goes down or comes back.

:class:`Readiness` is also the build manager's gate (:mod:`.builds.gate`): with
``builds_when_down`` it decides whether builds fail at once or wait in the queue while the
engine or the registry is down.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from traitlets import Enum, Float, Unicode, default
from traitlets.config import LoggingConfigurable

from .builds.executors import Executor
from .builds.gate import WHEN_DOWN, WhenDown
from .errors import ServiceError
from .images.catalog import Catalog
from .images.dockerengine import DockerEngine
from .images.registry.catalog import RegistryCatalog
from .images.registry.client import RegistryClient
from .images.registry.errors import RegistryError

__all__ = ["PartState", "Readiness", "ReadinessReport"]

#: what an administrator checks when a part is down (the public answer says only this)
WHAT_TO_CHECK = {
    "hub": "check that JupyterHub runs and JUPYTERHUB_API_URL points at its API",
    "docker": "check that dockerd is running and DOCKER_HOST points at it",
    "registry": "check that the registry is running, registry_url and the registry login",
}
#: parts builds need (the hub is needed by every request, builds included)
BUILD_PARTS = ("docker", "registry")


def iso(when: float | None) -> str | None:
    """Unix time as ISO 8601 UTC to the second (``2026-11-30T05:40:01Z``), or None."""
    if when is None:
        return None
    return datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class PartState:
    """One part's last answer.

    Attributes:
        name: ``hub``, ``docker`` or ``registry``.
        up: whether it answered.
        since: Unix time of the last change of ``up`` (or of the first check).
        detail: what failed, for the log only ("" when up).
    """

    name: str
    up: bool
    since: float
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        """``{"up", "since", "check"}`` (``check``: what to check, when down)."""
        out: dict[str, Any] = {"up": self.up, "since": iso(self.since)}
        if not self.up:
            out["check"] = WHAT_TO_CHECK[self.name]
        return out

    def reason(self) -> str:
        """One line for a refused build: the part, since when, what to check."""
        return f"the {self.name} part is down since {iso(self.since)}: {WHAT_TO_CHECK[self.name]}"


@dataclass
class ReadinessReport:
    """One round of checks.

    Attributes:
        parts: each part's state, by name.
        catalog: the catalog's freshness (``live``, ``stale``, ``since``, ...).
        queue: ``{"queued", "running"}``.
        checked_at: Unix time of the round.
        when_down: what builds do while a part is down.
    """

    parts: dict[str, PartState]
    catalog: Mapping[str, Any]
    queue: Mapping[str, int]
    checked_at: float
    when_down: WhenDown

    @property
    def can_list(self) -> bool:
        """Whether listings answer (live, or from the last good read)."""
        return bool(self.catalog.get("live") or self.catalog.get("stale"))

    @property
    def down(self) -> list[str]:
        """The parts that do not answer, plus ``catalog`` when nothing can be listed."""
        names = [name for name, part in self.parts.items() if not part.up]
        return names if self.can_list else [*names, "catalog"]

    @property
    def ready(self) -> bool:
        """Whether the service can build and list."""
        return not self.down

    def to_dict(self) -> dict[str, Any]:
        """The JSON body of ``GET ready`` (documented in openapi.yaml)."""
        return {
            "ready": self.ready,
            "down": self.down,
            "checked_at": iso(self.checked_at),
            "parts": {name: part.to_dict() for name, part in self.parts.items()},
            "catalog": dict(self.catalog),
            "queue": dict(self.queue),
            "builds_when_down": self.when_down,
        }


class Readiness(LoggingConfigurable):
    """The parts' states, checked cheaply; the build manager's gate.

    Args:
        engine: the Docker engine builds run in (closed by :meth:`close`).
        registry: the registry client in registry mode, else None.
        catalog: whose ``state()`` is reported (without its note).
        queue_status: ``() -> {"queued", "running", ...}`` (the manager's ``status``),
            set after the manager is made.
    """

    cache_seconds = Float(
        1.5,
        min=0,
        help="""Seconds a readiness answer is reused (GET ready, and the build gate) before
        the parts are asked again. 0 asks on every request.""",
    ).tag(config=True)

    check_timeout = Float(
        2.0,
        min=0.001,
        help="""Seconds each part (hub API, Docker engine, registry) has to answer a
        readiness check before it counts as down. Must be above 0.""",
    ).tag(config=True)

    hub_api_url = Unicode(
        help="""The hub's REST API asked by readiness checks. Default: $JUPYTERHUB_API_URL
        (set by the hub for its services), else http://127.0.0.1:8081/hub/api, as
        JupyterHub's HubAuth does.""",
    ).tag(config=True)

    @default("hub_api_url")
    def _default_hub_api_url(self) -> str:
        return os.environ.get("JUPYTERHUB_API_URL") or "http://127.0.0.1:8081/hub/api"

    builds_when_down = Enum(
        list(WHEN_DOWN),
        default_value="fail",
        help="""What builds do while the Docker engine or the registry does not answer:
        "fail" refuses new builds at once (503 naming the part and since when) and fails
        queued builds when their turn comes; "queue" keeps accepting builds, which wait in
        the queue (cancellable) until the part answers again. A build running when the
        part goes down fails either way, its error naming the part.""",
    ).tag(config=True)

    def __init__(
        self,
        *,
        engine: DockerEngine,
        registry: RegistryClient | None,
        catalog: Catalog,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.engine = engine
        self.registry = registry
        self.catalog = catalog
        self.queue_status: Callable[[], Mapping[str, Any]] = dict
        self._parts: dict[str, PartState] = {}
        self._last: ReadinessReport | None = None
        self._round: asyncio.Task[ReadinessReport] | None = None

    @classmethod
    def for_parts(cls, *, executor: Executor, catalog: Catalog, **kwargs: Any) -> Readiness:
        """Readiness of the engine ``executor`` builds in (its ``docker_host`` when it has
        one, else ``DOCKER_HOST``), the registry of a registry ``catalog``, and the hub.

        Args:
            kwargs: traits and traitlets' ``parent``, ``config``, ``log``.
        """
        engine_url = getattr(executor, "docker_host", None) or None
        registry = catalog.client if isinstance(catalog, RegistryCatalog) else None
        return cls(
            engine=DockerEngine(url=engine_url),
            registry=registry,
            catalog=catalog,
            **kwargs,
        )

    @property
    def when_down(self) -> WhenDown:
        """``builds_when_down`` (the gate's protocol)."""
        choice: WhenDown = self.builds_when_down
        return choice

    async def close(self) -> None:
        """Release the engine client."""
        await self.engine.close()

    async def report(self, *, fresh: bool = False) -> ReadinessReport:
        """The parts' states (reused for ``cache_seconds``; one round at a time).

        Args:
            fresh: ask the parts again even if the last answer is recent.
        """
        last = self._last
        if not fresh and last is not None and time.time() - last.checked_at < self.cache_seconds:
            return last
        if self._round is None or self._round.done():
            self._round = asyncio.create_task(self._check_all(), name="readiness")
        return await asyncio.shield(self._round)

    async def blocking(self, *, fresh: bool = False) -> str | None:
        """What keeps builds from running, or None (see :class:`.builds.gate.PartsGate`)."""
        report = await self.report(fresh=fresh)
        down = [report.parts[n] for n in BUILD_PARTS if n in report.parts]
        reasons = [part.reason() for part in down if not part.up]
        return "; ".join(reasons) or None

    async def _check_all(self) -> ReadinessReport:
        checks: dict[str, Callable[[], Awaitable[None]]] = {
            "hub": self._check_hub,
            "docker": self._check_engine,
        }
        if self.registry is not None:
            checks["registry"] = self._check_registry
        errors = await asyncio.gather(*(self._bounded(check) for check in checks.values()))
        now = time.time()
        for name, error in zip(checks, errors, strict=True):
            self._update(name, error, now)
        catalog = self.catalog.state().to_dict()
        catalog.pop("note", None)  # it may name the registry: the log has it
        queue = self.queue_status()
        self._last = ReadinessReport(
            parts={name: self._parts[name] for name in checks},
            catalog=catalog,
            queue={"queued": int(queue.get("queued", 0)), "running": int(queue.get("running", 0))},
            checked_at=now,
            when_down=self.when_down,
        )
        return self._last

    def _update(self, name: str, error: str | None, now: float) -> None:
        """Record one answer; log when a part goes down or comes back."""
        before = self._parts.get(name)
        up = error is None
        if before is not None and before.up == up:
            before.detail = error or ""
            return
        self._parts[name] = PartState(name=name, up=up, since=now, detail=error or "")
        if not up:
            self.log.error("readiness: %s is down: %s", name, error)
        elif before is not None:
            self.log.warning("readiness: %s answers again", name)

    async def _bounded(self, check: Callable[[], Awaitable[None]]) -> str | None:
        """Run one check within ``check_timeout``; its error text, or None when it answered."""
        try:
            async with asyncio.timeout(self.check_timeout):
                await check()
        except TimeoutError:
            return f"no answer within {self.check_timeout:g} s"
        except (ServiceError, RegistryError, HTTPClientError, OSError) as e:
            return str(e) or type(e).__name__
        return None

    async def _check_hub(self) -> None:
        request = HTTPRequest(
            self.hub_api_url.rstrip("/") + "/",
            request_timeout=self.check_timeout,
            connect_timeout=self.check_timeout,
        )
        try:
            await AsyncHTTPClient().fetch(request)
        except HTTPClientError as e:
            if e.code >= 500 or e.code == 599:
                raise
            # any other answer (401, 404, ...) means the hub's API is there

    async def _check_engine(self) -> None:
        await self.engine.check(limit=self.check_timeout)

    async def _check_registry(self) -> None:
        assert self.registry is not None
        await self.registry.check()
