"""Prometheus metrics of the service (``GET metrics``).

One :class:`ServiceMetrics` per application, with its own registry (so several services in
one process, as in the tests, never share counters). What it counts:

- ``repo2docker_service_build_requests_total{result}``: answers to ``POST api/builds``:
  ``cached``, ``joined``, ``queued``, ``queue_full``, ``invalid`` (bad input),
  ``source_error`` (the repository or ref cannot be read), ``error`` (anything else);
- ``repo2docker_service_builds_total{state}``: builds that ended, by final state (``built``,
  ``failed``, ``cancelled``, ``lost``);
- ``repo2docker_service_build_duration_seconds{state}``: start to end of builds that ran;
- ``repo2docker_service_event_streams``: open SSE streams of build events;

and, read when scraped: ``repo2docker_service_builds_active{state}`` (queued, building,
pushing), ``repo2docker_service_build_capacity`` (``build_concurrency + max_queue``) and, for
the Docker catalog, ``repo2docker_service_catalog_index_live`` (1 while the image index
follows the engine's events, 0 while listings ask the engine on every request).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

from .builds.model import Build, BuildState
from .builds.request import SubmitResult
from .errors import InvalidInput, QueueFull, SourceError

if TYPE_CHECKING:
    from .builds.manager import BuildManager

__all__ = ["CONTENT_TYPE_LATEST", "ServiceMetrics"]

PREFIX = "repo2docker_service"
#: build durations range from seconds (cache-warm Dockerfiles) to an hour (the timeout)
DURATION_BUCKETS = (5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, float("inf"))
_ACTIVE = (BuildState.QUEUED, BuildState.BUILDING, BuildState.PUSHING)


class BuildCounts(Protocol):
    """What the scrape-time build gauges read (the build manager)."""

    concurrency: int
    max_queue: int

    def list(self) -> list[Build]:
        """Every stored build."""
        ...


def request_result(exc: BaseException | None, *, cached: bool = False, joined: bool = False) -> str:
    """The ``result`` label of one ``POST api/builds`` answer."""
    if exc is None:
        return "cached" if cached else "joined" if joined else "queued"
    if isinstance(exc, QueueFull):
        return "queue_full"
    if isinstance(exc, InvalidInput):
        return "invalid"
    if isinstance(exc, SourceError):
        return "source_error"
    return "error"


class ServiceMetrics:
    """The service's metrics: it observes the build manager (a
    :class:`~repo2docker_service.builds.observer.BuildObserver`, see :meth:`observe`); the
    SSE handler counts its streams in :attr:`event_streams`.

    Args:
        manager: the build manager (read at scrape time for the active builds), or None.
        catalog: the image catalog (its ``live`` flag, when it has one), or None.
    """

    def __init__(self, *, manager: BuildCounts | None = None, catalog: object = None) -> None:
        self.registry = CollectorRegistry()
        self.build_requests = Counter(
            f"{PREFIX}_build_requests",
            "Answers to POST api/builds, by result",
            ["result"],
            registry=self.registry,
        )
        self.builds = Counter(
            f"{PREFIX}_builds",
            "Builds that ended, by final state",
            ["state"],
            registry=self.registry,
        )
        self.build_duration = Histogram(
            f"{PREFIX}_build_duration_seconds",
            "Seconds from the start to the end of builds that ran, by final state",
            ["state"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.event_streams = Gauge(
            f"{PREFIX}_event_streams",
            "Open server-sent event streams of builds",
            registry=self.registry,
        )
        self._live = _LiveCollector(manager, catalog)
        self.registry.register(self._live)

    def observe(self, manager: BuildManager) -> None:
        """Count ``manager``'s answered requests and ended builds, and read its active
        builds when scraped."""
        manager.add_observer(self)
        self.attach(manager=manager)

    def attach(self, *, manager: BuildCounts | None = None, catalog: object = None) -> None:
        """Set what the scrape-time gauges read (when made before the manager)."""
        if manager is not None:
            self._live.manager = manager
        if catalog is not None:
            self._live.catalog = catalog

    def request(self, result: str) -> None:
        """Count one answer to ``POST api/builds`` (``result``: see :func:`request_result`)."""
        self.build_requests.labels(result=result).inc()

    def request_answered(self, result: SubmitResult | None, error: Exception | None) -> None:
        """The manager answered a build request (``BuildObserver``)."""
        if error is not None or result is None:
            self.request(request_result(error))
        else:
            self.request(request_result(None, cached=result.cached, joined=result.joined))

    def build_ended(self, build: Build) -> None:
        """Count an ended build by its final state, and its duration if it ran
        (``BuildObserver``)."""
        state = build.state.value
        self.builds.labels(state=state).inc()
        if build.duration is not None:
            self.build_duration.labels(state=state).observe(build.duration)

    def exposition(self) -> bytes:
        """The text format Prometheus scrapes."""
        return generate_latest(self.registry)


class _LiveCollector(Collector):
    """Gauges read from the manager and the catalog when scraped."""

    def __init__(self, manager: BuildCounts | None, catalog: object) -> None:
        self.manager = manager
        self.catalog = catalog

    def describe(self) -> list[Any]:
        return []  # collected at scrape time only

    def collect(self) -> Iterator[GaugeMetricFamily]:
        if self.manager is not None:
            try:
                builds = self.manager.list()
                active = GaugeMetricFamily(
                    f"{PREFIX}_builds_active",
                    "Builds queued or running now, by state",
                    labels=["state"],
                )
                for state in _ACTIVE:
                    active.add_metric([state.value], sum(1 for b in builds if b.state is state))
                yield active
                yield GaugeMetricFamily(
                    f"{PREFIX}_build_capacity",
                    "Builds that may be active at once (build_concurrency + max_queue)",
                    value=self.manager.concurrency + self.manager.max_queue,
                )
            except Exception:  # a scrape must never fail because of one gauge
                logging.getLogger(__name__).exception("collecting build gauges")
        live = getattr(self.catalog, "live", None)
        if isinstance(live, bool):
            yield GaugeMetricFamily(
                f"{PREFIX}_catalog_index_live",
                "1 while the image index follows the Docker engine's events, else 0",
                value=1 if live else 0,
            )
