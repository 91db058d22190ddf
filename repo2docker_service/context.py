"""What a request handler may use: the typed :class:`Services` bundle.

The Application builds one :class:`Services` at start-up and hands it to every handler
through Tornado's ``initialize``; handlers never see the Application. That keeps the
handlers' reach narrow and visible here: the build manager, the catalog, metrics, the rate
limiter, and the few settings a handler reads (:class:`HandlerSettings`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jinja2

from .builds.manager import BuildManager
from .hubservers import HubServers
from .images.catalog import Catalog
from .images.lifecycle import ImageLifecycle
from .metrics import ServiceMetrics
from .ratelimit import RateLimiter
from .readiness import Readiness
from .sources.resolver import PushedCommits

__all__ = ["HandlerSettings", "Services"]


@dataclass(frozen=True, slots=True)
class HandlerSettings:
    """The configuration values handlers read (copied from the app's traits at start).

    Attributes:
        base_url: the service's URL prefix, ending in ``/`` (e.g. ``/services/repo2docker/``).
        scope_prefix: prefix of the service's custom scopes, e.g. ``custom:repo2docker:``.
        max_body_bytes: largest JSON request body accepted, in bytes.
        machine_profiles: the admin's machine profiles as configured (list of dicts).
        default_cpu_limit: CPU limit for images without a hint, in CPUs; 0 means none.
        default_memory_limit: memory limit for images without a hint (``"2G"``); "" none.
        metrics_require_auth: whether ``GET metrics`` needs the admin scope.
        webhook_secret: the push-webhook secret; "" means webhooks are off.
        launch_git_host: host URL of ``v2/gh/<org>/<repo>`` launch links and of BinderHub's
            ``gh`` provider.
        binder_prefix: the second prefix serving ``build/...`` (``/services/binder/``), or "".
        binder_gitlab_host: host URL of BinderHub's ``gl`` provider.
        allowed_repo_schemes: URL schemes a repository URL may use.
        hub_admins_are_admins: hub admins hold every service scope.
        event_keepalive_interval: seconds between keepalives on a quiet event stream; 0
            means none.
        access_help: per short scope, what a user lacking it is told to ask for.
        facts: what ``api/info`` tells about the service (executor, registry, prefix,
            limits); JSON-ready.
    """

    base_url: str = "/"
    scope_prefix: str = "custom:repo2docker:"
    max_body_bytes: int = 1 << 20
    machine_profiles: Sequence[Mapping[str, Any]] = ()
    default_cpu_limit: float = 0.0
    default_memory_limit: str = ""
    metrics_require_auth: bool = True
    webhook_secret: str = field(default="", repr=False)
    launch_git_host: str = "https://github.com"
    binder_prefix: str = ""
    binder_gitlab_host: str = "https://gitlab.com"
    allowed_repo_schemes: tuple[str, ...] = ("https",)
    hub_admins_are_admins: bool = True
    event_keepalive_interval: float = 15.0
    access_help: Mapping[str, str] = field(default_factory=dict)
    facts: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Services:
    """The components and settings a handler works with; built once by the app.

    Attributes:
        manager: submits, lists, follows and cancels builds.
        catalog: lists, finds and deletes built images.
        metrics: Prometheus metrics of this service.
        rate_limiter: builds per user per period.
        settings: the configuration values handlers read.
        log: the service's logger.
        templates: the Jinja environment of the UI's templates (autoescaping on).
        servers: asks the hub which servers the caller runs (with the caller's token).
        lifecycle: tag history, roll back, retention and disk space of the images.
        readiness: each part's state (``GET ready``).
        pushed: commits signed push webhooks announce to the ref resolver.
    """

    manager: BuildManager
    catalog: Catalog
    metrics: ServiceMetrics
    rate_limiter: RateLimiter
    settings: HandlerSettings
    log: logging.Logger
    templates: jinja2.Environment
    servers: HubServers
    lifecycle: ImageLifecycle
    readiness: Readiness
    pushed: PushedCommits = field(default_factory=PushedCommits)
