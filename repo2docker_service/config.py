"""The service's configuration traits, grouped by concern (the Application mixes them in).

Every option stays ``c.Repo2DockerService.<name>`` in config files and on the command line: these
are plain ``HasTraits`` mixins of :class:`~repo2docker_service.app.Repo2DockerService`, split off so
that the Application module holds wiring only; executor options live on the executor classes
(``c.LocalExecutor``, ``c.DockerExecutor``).
"""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import urlparse

from traitlets import (
    Bool,
    Dict,
    Float,
    HasTraits,
    Integer,
    List,
    TraitError,
    Type,
    Unicode,
    default,
    validate,
)

from .repoid import DEFAULT_CASE_INSENSITIVE_HOSTS
from .sizes import SizeError, normalize_memory
from .streamconfig import EventStreamConfig

__all__ = ["BuildsConfig", "ImagesConfig", "ServerConfig", "SpawnConfig"]


class ServerConfig(EventStreamConfig):
    """Where the service listens, how it authenticates, what it accepts, event streams."""

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
        8585,
        min=1,
        max=65535,
        help="""TCP port the service listens on.

        Default: the port of JUPYTERHUB_SERVICE_URL when the hub manages the service,
        else 8585. 1 to 65535 (0 is refused: the hub could not find the service).
        """,
    ).tag(config=True)

    @default("port")
    def _default_port(self) -> int:
        url = os.environ.get("JUPYTERHUB_SERVICE_URL")
        port = urlparse(url).port if url else None
        return port or 8585

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
        value = "/" + str(proposal["value"]).strip("/") + "/"
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

        The service checks `<prefix>view`, `<prefix>build` and `<prefix>admin`. Declare them in
        `c.JupyterHub.custom_scopes`, grant them through roles, and list them in the service's
        `oauth_client_allowed_scopes` (otherwise browser sessions never carry them).
        """,
    ).tag(config=True)

    max_body_bytes = Integer(
        64 * 1024,
        min=1,
        help="""Largest request body the service accepts, in bytes (webhooks: 2 MiB); at least 1.

        Larger bodies get a 413 JSON answer and never reach a handler: refused by their
        Content-Length before they are read (or, without one, as soon as they pass it), read to
        their end and dropped up to 16 MiB (so clients and the hub's proxy get the answer),
        answered at once beyond. Build requests are small JSON objects. 0 is refused at start.""",
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

    hub_admins_are_admins = Bool(
        True,
        help="""Whether hub admins (JupyterHub's admin flag) administer environments.

        True (default): a hub admin may do everything the `<prefix>admin` scope allows,
        without holding it. False: only the service's scopes count. Default:
        $REPO2DOCKER_SERVICE_HUB_ADMINS_ARE_ADMINS ("0" or "false" turns it off), else True.
        Hub-side, the spawner's `Repo2DockerMixin.hub_admins_are_admins` should agree.""",
    ).tag(config=True)

    @default("hub_admins_are_admins")
    def _default_hub_admins_are_admins(self) -> bool:
        value = os.environ.get("REPO2DOCKER_SERVICE_HUB_ADMINS_ARE_ADMINS", "1")
        return value.strip().lower() not in {"0", "false", "no", "off"}

    access_help = Dict(
        value_trait=Unicode(),
        help="""What a user lacking a scope is told to ask a hub admin for, per scope.

        Keys `view`, `build`, `admin`; values name a role or group, e.g. `{"build": "the group
        'data-science' in Keycloak"}`. Missing keys fall back to the default roles and groups.
        Default: $REPO2DOCKER_SERVICE_ACCESS_HELP (JSON, set by `register_service`), else the roles
        repo2docker-viewer/-builder/-admin and the groups repo2docker-viewers/-builders/-admins.
        """,
    ).tag(config=True)

    @default("access_help")
    def _default_access_help(self) -> dict[str, str]:
        raw = os.environ.get("REPO2DOCKER_SERVICE_ACCESS_HELP", "")
        try:
            value = json.loads(raw) if raw else {}
        except ValueError:
            return {}
        items = value.items() if isinstance(value, dict) else ()
        return {k: str(v) for k, v in items if k in DEFAULT_ACCESS_HELP}


#: what a user lacking a scope is told to ask for, unless configured (access_help)
DEFAULT_ACCESS_HELP = {
    "view": "the role 'repo2docker-viewer' (or membership in the group 'repo2docker-viewers')",
    "build": "the role 'repo2docker-builder' (or membership in the group 'repo2docker-builders')",
    "admin": "the role 'repo2docker-admin' (or membership in the group 'repo2docker-admins')",
}


class ImagesConfig(HasTraits):
    """Where images live (engine or registry) and how they are named."""

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
        else ~/.docker/config.json, if it exists. Credential helpers (`credHelpers`,
        `credsStore`) run as docker runs them. The same login is used for pushes.
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
        min=0,
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
        value = str(proposal["value"])
        for field in ("{owner}", "{name}", "{tag}"):
            if field not in value:
                raise ValueError(f"image_name_template must contain {field}: {value!r}")
        return value


class BuildsConfig(HasTraits):
    """How builds run: the executor, capacity, timeouts, which repositories, history."""

    executor_class = Type(
        "repo2docker_service.builds.executors.LocalExecutor",
        klass="repo2docker_service.builds.executors.Executor",
        help="""How builds run.

        LocalExecutor (default) runs repo2docker as a subprocess of the service.
        DockerExecutor (`repo2docker_service.builds.executors.DockerExecutor`) runs it in a
        builder container (`c.DockerExecutor.builder_image`) in the Docker engine; its builds
        survive a restart of the service, which follows them again. Executors read their own
        options: `c.LocalExecutor.*`, `c.DockerExecutor.*`, and `c.Executor.*` for both.
        """,
    ).tag(config=True)

    build_concurrency = Integer(
        2,
        min=1,
        help="""How many builds run at the same time (builds). Each build is CPU- and
        disk-heavy. At least 1: 0 is refused at start-up (use `max_queue` 0 for no waiting).
        """,
    ).tag(config=True)

    max_queue = Integer(
        20,
        min=0,
        help="""How many builds may wait for a free slot.

        Further requests get 429 Too Many Requests with Retry-After. 0 means no waiting:
        only `build_concurrency` builds are accepted at a time.
        """,
    ).tag(config=True)

    build_timeout = Float(
        3600,
        min=0,
        help="Seconds a build may run in total before it is stopped and failed. 0: no limit.",
    ).tag(config=True)

    build_idle_timeout = Float(
        300,
        min=0,
        help="""Seconds a build may go without printing any output before it is stopped.

        Default 300 (5 minutes). 0: no limit. Catches builds stuck on a prompt or a dead
        network, and builders that died without a word (e.g. killed for memory while the
        engine's log stream stays open), within minutes rather than at `build_timeout`.
        A Dockerfile step that prints nothing for 5 minutes is rare (package installs and
        downloads print, and progress bars count as output); raise it if yours do that.
        """,
    ).tag(config=True)

    allowed_repo_schemes = List(
        Unicode(),
        default_value=["https"],
        help="""URL schemes users may build from.

        Default only https. Add "http" for plain-HTTP git servers on a trusted network, "file" only
        for tests and demos (it lets users read repositories on the service's host).
        """,
    ).tag(config=True)

    allowed_repo_hosts = List(
        Unicode(),
        help="""Host names users may build from, e.g. ["github.com", "gitlab.example.org"].

        Empty (default): any host. Set it to keep builds to your own git servers.
        """,
    ).tag(config=True)

    case_insensitive_repo_hosts = List(
        Unicode(),
        default_value=list(DEFAULT_CASE_INSENSITIVE_HOSTS),
        help="""Git hosts whose owner and repository names ignore case, e.g. "github.com".

        On these hosts https://github.com/Org/Repo and https://github.com/org/repo.git are
        one repository: webhooks, launch links, the name check of a build and the UI treat
        them as one. Default: github.com and gitlab.com. GitLab (self-hosted too), Gitea,
        Forgejo (codeberg.org) and Bitbucket ignore case as well: add their host names.
        Leave out plain git servers (git-http-backend, file systems): their paths are
        case-sensitive. Empty: case always counts.
        """,
    ).tag(config=True)

    history_limit = Integer(
        200,
        min=0,
        help="""How many finished builds (with their logs) are kept in memory for listing
        (builds). 0: none; queued and running builds are always kept.
        """,
    ).tag(config=True)

    log_limit_bytes = Integer(
        2 * 1024 * 1024,
        min=0,
        help="""Bytes of log kept per build in memory.

        Past this, the oldest log lines are dropped (state events are always kept) and the
        log says so: a line when the first ones go, and the count when the build ends.
        Carriage-return progress frames never fill it: each line keeps only its last frame,
        as a terminal shows it. 0: no limit.
        """,
    ).tag(config=True)

    build_rate_limit = Integer(
        30,
        min=0,
        help="""Build requests one user may make per `build_rate_period` seconds.

        Requests over it get 429 Too Many Requests with Retry-After. Cache hits count
        too (each one contacts the git server). 0: no limit. Admins are limited as well.
        """,
    ).tag(config=True)

    build_rate_period = Float(
        60,
        min=0,
        help="""Length in seconds of the window `build_rate_limit` counts requests in.
        Only used when `build_rate_limit` is above 0.
        """,
    ).tag(config=True)


class SpawnConfig(HasTraits):
    """What spawners are told (machine profiles, default limits), launch links, BinderHub's API."""

    machine_profiles = List(
        Dict(),
        help="""Machine profiles users pick from, e.g. [{"name": "small", "display_name": "Small (1
        CPU, 2 GB)", "cpu": 1, "memory": "2G"}].

        `memory` is a size as for `default_memory_limit` ('16GB' and '16 GiB' are 16G); a number
        without a unit is GiB here, as tljh-repo2docker writes profiles. Profiles are handed to
        spawners with canonical sizes ('16G'); a bad profile stops the service at start-up. Empty:
        users give cpu/memory hints directly (bounded by the defaults below).
        """,
    ).tag(config=True)

    default_cpu_limit = Float(
        0, min=0, help="CPU limit suggested to spawners when an image has no hint. 0: no limit."
    ).tag(config=True)

    default_memory_limit = Unicode(
        "",
        help="""Memory limit suggested to spawners when an image has no hint, and the cap of memory
        hints.

        A size with a unit: '512M', '2G', '16GB', '2Gi', '2 GiB', '1.5G' (every unit is a power of
        1024), or a whole number of bytes; at least 64M. Handed to spawners in canonical form
        ('16GB' -> '16G'). Empty or '0': no limit. Anything else stops the service at start-up.
        """,
    ).tag(config=True)

    @validate("default_memory_limit")
    def _validate_default_memory_limit(self, proposal: dict[str, Any]) -> str:
        try:
            return normalize_memory(proposal["value"], what="default_memory_limit") or ""
        except SizeError as e:
            raise TraitError(str(e)) from None

    launch_git_host = Unicode(
        "https://github.com",
        help="""Git host that short launch links point at.

        `v2/gh/<org>/<repo>/<ref>` builds `<launch_git_host>/<org>/<repo>` at `<ref>`
        (like Binder's GitHub links). Set it to your GitLab or Gitea base URL to make
        short links point there; the URL's scheme must be in `allowed_repo_schemes`.
        """,
    ).tag(config=True)

    binder_gitlab_host = Unicode(
        "https://gitlab.com",
        help="""GitLab host of BinderHub's `gl` provider (`GET build/gl/<project>/<ref>`).

        It builds `<binder_gitlab_host>/<project>.git` (the project path URL-quoted,
        subgroups included); `gh` uses `launch_git_host`. Scheme: see `allowed_repo_schemes`.
        """,
    ).tag(config=True)

    @validate("launch_git_host", "binder_gitlab_host")
    def _validate_git_host(self, proposal: dict[str, Any]) -> str:
        value, name = str(proposal["value"]).rstrip("/"), proposal["trait"].name
        if not urlparse(value).scheme or not urlparse(value).netloc:
            raise ValueError(f"{name} must be a URL like https://github.com: {value!r}")
        return value

    binder_prefix = Unicode(
        help="""A second URL prefix, besides `base_url`, serving `build/<provider>/<spec>`.

        e.g. /services/binder/ when the hub registers a service named `binder` with this
        service's URL (fancy-profiles calls /services/binder/build/...; see
        `register_service(binder_alias=True)` in repo2docker_service.hub.config). Only the
        build API is served there, for token clients (cookies stay under `base_url`).
        Empty: nowhere else. Default: $REPO2DOCKER_SERVICE_BINDER_PREFIX, else empty.
        """,
    ).tag(config=True)

    @default("binder_prefix")
    def _default_binder_prefix(self) -> str:
        value = os.environ.get("REPO2DOCKER_SERVICE_BINDER_PREFIX", "").strip().strip("/")
        return f"/{value}/" if value else ""

    @validate("binder_prefix")
    def _validate_binder_prefix(self, proposal: dict[str, Any]) -> str:
        value = str(proposal["value"]).strip().strip("/")
        return f"/{value}/" if value else ""
