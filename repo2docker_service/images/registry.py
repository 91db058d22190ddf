"""The image catalog read from a registry through the OCI Distribution API.

Two layers:

:class:`RegistryClient`
    A small client of the Distribution API (``/v2/``): repository catalog (``_catalog``,
    paginated with ``Link`` headers), tag lists, manifests (HEAD/GET with ``Accept`` for all
    four kinds: OCI image manifest and index, Docker v2 manifest and manifest list, since
    buildx pushes indexes), image config blobs (for the labels; for an index the
    ``linux/amd64`` manifest, else the first one), manifest PUT (a registry-side tag) and
    manifest DELETE (when the registry allows it).

    Authentication: anonymous; HTTP basic (e.g. the CNCF registry's ``htpasswd``); the
    Bearer token flow (``WWW-Authenticate: Bearer realm=...,service=...,scope=...``: a token
    is fetched from the realm, with basic auth when there are credentials, and cached per
    scope until it expires). Credentials come from configuration or a docker
    ``config.json`` (``auths`` entries with a base64 ``auth`` or ``username``/``password``;
    ``credsStore``/``credHelpers`` are not run).

    Every request goes through one choke point (:meth:`RegistryClient._request`) that turns
    network, TLS, HTTP and protocol trouble into :class:`RegistryError` with a ``kind``
    saying what went wrong. A missing manifest is ``None``, a missing repository an empty
    tag list.

:class:`RegistryCatalog`
    The :class:`~repo2docker_service.images.catalog.Catalog` the service uses when
    ``registry_url`` is set. It answers the same methods as
    :class:`~repo2docker_service.images.docker.DockerCatalog` from the registry and turns
    :class:`RegistryError` into the service's errors (unreachable: ``Unavailable`` 503;
    refused or broken: ``UpstreamError`` 502; deletes not allowed: ``Conflict`` 409).

Caching (RegistryCatalog):

- Image metadata (labels, size) is cached **by manifest digest**. A digest names immutable
  content, so these entries never go stale; the cache is bounded (least recently used
  entries go first).
- The **listing** (which repositories exist, which tags they have, which digest each tag
  points at) is a snapshot refreshed from the registry. A snapshot younger than
  ``cache_ttl`` seconds is used as is. An older one is still answered at once while one
  background refresh reads the registry again (stale-while-revalidate); one older than
  ``max_stale`` seconds (or none at all) is refreshed before answering. A refresh that
  cannot reach the registry drops the snapshot, so listings then answer 503 until the
  registry is back. A refresh reads ``_catalog``, every repository's tag list and a
  manifest HEAD of ``latest`` and of new tags; known commit tags keep their digest except
  in a full refresh (a HEAD of every tag) at least every ``max_stale`` seconds.
- **Invalidation**: the service's own writes (a build's tags, deletes) update the affected
  repository in the snapshot at once, so a user sees their own build or delete in the next
  listing. Changes made by anything else (another replica, a manual push or delete) show
  up after at most ``cache_ttl`` seconds plus one refresh. ``cache_ttl = 0`` turns the
  listing cache off.
- Cache hits of builds (:meth:`RegistryCatalog.image_info`) always ask the registry: a
  manifest HEAD for the exact reference (plus, with a stale snapshot, the tag list).
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import json
import logging
import os
import re
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from ipaddress import ip_address
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

import aiohttp

from ..builds.model import parse_labels
from ..errors import Conflict, NotFound, Unavailable, UpstreamError
from .catalog import Catalog, ImageInfo, select_images
from .naming import SHARED_OWNER, ImageNamer, escape_owner, is_valid_tag

__all__ = [
    "MANIFEST_ACCEPT",
    "ImageDetails",
    "ManifestRef",
    "RegistryCatalog",
    "RegistryClient",
    "RegistryCredentials",
    "RegistryError",
    "default_api_url",
    "docker_config_credentials",
    "load_docker_config",
    "parse_www_authenticate",
    "write_docker_config",
]

MEDIA_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MEDIA_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
#: Media types of manifests that list other manifests (one per platform).
INDEX_TYPES = frozenset({MEDIA_OCI_INDEX, MEDIA_DOCKER_LIST})
#: ``Accept`` of every manifest request: buildx pushes OCI indexes, ``docker push`` Docker v2.
MANIFEST_ACCEPT = ", ".join(
    [MEDIA_OCI_MANIFEST, MEDIA_OCI_INDEX, MEDIA_DOCKER_MANIFEST, MEDIA_DOCKER_LIST]
)
LATEST = "latest"

_DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")
_AUTH_PARAM_RE = re.compile(r'([A-Za-z][A-Za-z0-9_-]*)=(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))')
_LINK_RE = re.compile(r"<([^>]*)>\s*;\s*rel=\"?next\"?")
_MAX_ERROR_BODY = 300
_MAX_MANIFEST_BYTES = 4 * 1024 * 1024
_MAX_CONFIG_BYTES = 8 * 1024 * 1024


# ---------------------------------------------------------------------------- errors
class RegistryError(Exception):
    """A registry request failed.

    Attributes:
        message: what happened, for an administrator (never a credential).
        kind: ``"unreachable"`` (connection refused, DNS, timeout, 502/503/504),
            ``"bad_url"`` (TLS failure, or the URL does not answer like a registry),
            ``"auth"`` (credentials missing or refused, token server refused),
            ``"denied"`` (403: authenticated but not allowed), ``"unsupported"`` (the
            registry does not offer this, e.g. deletes disabled: 405), ``"error"``
            (anything else: 4xx/5xx, malformed answers).
        status: the HTTP status, when there was an answer.
        code: the first Distribution error code of the answer (``MANIFEST_UNKNOWN``, ...).
    """

    def __init__(
        self, message: str, *, kind: str, status: int | None = None, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.status = status
        self.code = code

    def __str__(self) -> str:
        return self.message


# ---------------------------------------------------------------------------- credentials
@dataclass(frozen=True)
class RegistryCredentials:
    """A registry username and password (or token); ``repr`` never shows the password."""

    username: str
    password: str = field(repr=False)

    def __repr__(self) -> str:
        return f"RegistryCredentials(username={self.username!r}, password='***')"

    def basic_header(self) -> str:
        """The ``Authorization: Basic ...`` value."""
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()


def load_docker_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a docker ``config.json``.

    Returns:
        The parsed object; ``{}`` when the file does not exist.

    Raises:
        ValueError: the file exists but is not a JSON object.
    """
    p = Path(path)
    try:
        text = p.read_text()
    except FileNotFoundError:
        return {}
    try:
        data = json.loads(text)
    except ValueError as e:
        raise ValueError(f"{p} is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{p} does not hold a JSON object")
    return data


def _auth_keys(registry: str) -> list[str]:
    """Keys a docker config may use for ``registry`` (as ``docker login`` writes them)."""
    return [
        registry,
        f"https://{registry}",
        f"http://{registry}",
        f"https://{registry}/v2/",
        f"http://{registry}/v2/",
        f"https://{registry}/v1/",
    ]


def docker_config_credentials(
    config: Mapping[str, Any], registry: str
) -> RegistryCredentials | None:
    """Credentials for ``registry`` from a parsed docker ``config.json``.

    Looks in ``auths`` under ``host[:port]`` and its ``http(s)://`` forms, taking a base64
    ``auth`` (``user:password``) or ``username``/``password``. ``identitytoken`` (an OAuth
    refresh token) and credential helpers (``credsStore``, ``credHelpers``) are not used.

    Args:
        config: the parsed file (see :func:`load_docker_config`).
        registry: ``host[:port]``.

    Returns:
        The credentials, or None when the file has none for that registry.

    Raises:
        ValueError: the entry exists but its ``auth`` is not base64 of ``user:password``.
    """
    auths = config.get("auths")
    if not isinstance(auths, Mapping):
        return None
    for key in _auth_keys(registry):
        entry = auths.get(key)
        if not isinstance(entry, Mapping):
            continue
        if entry.get("auth"):
            try:
                raw = base64.b64decode(str(entry["auth"]), validate=True).decode()
            except (ValueError, UnicodeDecodeError):
                raise ValueError(
                    f"docker config entry {key!r}: 'auth' is not base64 of user:password"
                ) from None
            user, sep, password = raw.partition(":")
            if not sep:
                raise ValueError(f"docker config entry {key!r}: 'auth' has no ':'")
            return RegistryCredentials(user, password)
        if entry.get("username") and entry.get("password"):
            return RegistryCredentials(str(entry["username"]), str(entry["password"]))
    return None


def write_docker_config(
    directory: str | os.PathLike[str],
    *,
    registry: str,
    credentials: RegistryCredentials,
    base_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """Write a docker client config directory that logs in to ``registry``.

    Used for one build's ``DOCKER_CONFIG``: the ``docker``/``buildx`` client that pushes
    reads the login from it, so no ``docker login`` (and no password in any argv) is
    needed. The base config (``base_dir/config.json``, default ``$DOCKER_CONFIG`` or
    ``~/.docker``) is copied with the login merged in; its ``buildx`` and ``cli-plugins``
    directories are linked so buildx still finds its builders (``BUILDX_BUILDER``).
    ``config.json`` is created with mode 0600 in a directory of mode 0700.

    Args:
        directory: where to write (created if missing).
        registry: ``host[:port]``.
        credentials: the login.
        base_dir: the docker config directory to start from.

    Returns:
        ``directory`` as a Path (set ``DOCKER_CONFIG`` to it).
    """
    target = Path(directory)
    target.mkdir(mode=0o700, parents=True, exist_ok=True)
    base = Path(base_dir or os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker")
    try:
        config = load_docker_config(base / "config.json")
    except ValueError:
        config = {}
    auths = dict(config.get("auths") or {})
    for key in _auth_keys(registry):
        auths.pop(key, None)
    raw = f"{credentials.username}:{credentials.password}".encode()
    auths[registry] = {"auth": base64.b64encode(raw).decode()}
    config["auths"] = auths
    # a credential store would be asked instead of the auth entry above
    config.pop("credsStore", None)
    helpers = dict(config.get("credHelpers") or {})
    helpers.pop(registry, None)
    if helpers:
        config["credHelpers"] = helpers
    else:
        config.pop("credHelpers", None)
    path = target / "config.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(config, f)
    for sub in ("buildx", "cli-plugins", "contexts"):
        source = base / sub
        link = target / sub
        if source.is_dir() and not link.exists():
            link.symlink_to(source, target_is_directory=True)
    return target


# ---------------------------------------------------------------------------- parsing
def parse_www_authenticate(header: str) -> tuple[str, dict[str, str]]:
    """Split a ``WWW-Authenticate`` challenge.

    Args:
        header: e.g. ``Bearer realm="https://auth.example/token",service="reg",scope="..."``.

    Returns:
        ``(scheme, params)`` with the scheme lowercased (``"bearer"``, ``"basic"``) and the
        parameters unquoted.
    """
    scheme, _, rest = header.strip().partition(" ")
    params = {}
    for m in _AUTH_PARAM_RE.finditer(rest):
        value = m.group(2) if m.group(2) is not None else m.group(3)
        params[m.group(1).lower()] = re.sub(r"\\(.)", r"\1", value or "")
    return scheme.lower(), params


def next_link(header: str | None, base: str) -> str | None:
    """The ``rel="next"`` URL of a ``Link`` header, resolved against ``base``; or None."""
    if not header:
        return None
    m = _LINK_RE.search(header)
    return urljoin(base, m.group(1)) if m else None


def default_api_url(registry: str) -> str:
    """The API base URL for ``host[:port]``: ``http://`` for loopback hosts, else ``https://``.

    Docker itself talks plain HTTP to registries on 127.0.0.0/8 (and ``localhost``) and
    HTTPS to every other registry unless the engine lists it in ``insecure-registries``;
    set ``registry_api_url`` for such a registry.
    """
    host = urlsplit(f"//{registry}").hostname or ""
    loopback = host == "localhost"
    try:
        loopback = loopback or ip_address(host).is_loopback
    except ValueError:
        pass
    return f"{'http' if loopback else 'https'}://{registry}"


def _error_detail(body: bytes) -> tuple[str | None, str]:
    """``(code, message)`` of a Distribution error body (or a cut-down raw body)."""
    try:
        data = json.loads(body)
        first = data["errors"][0]
        return str(first.get("code") or ""), str(first.get("message") or first.get("code"))
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        text = body[:_MAX_ERROR_BODY].decode("utf-8", "replace").strip()
        return None, " ".join(text.split())


def _is_digest(reference: str) -> bool:
    return _DIGEST_RE.fullmatch(reference) is not None


# ---------------------------------------------------------------------------- client
@dataclass(frozen=True)
class ManifestRef:
    """What a manifest HEAD says about a reference.

    Attributes:
        digest: ``sha256:...`` of the manifest (the content address of the image).
        media_type: the manifest's media type (one of the four in :data:`MANIFEST_ACCEPT`).
        size: bytes of the manifest.
    """

    digest: str
    media_type: str
    size: int


@dataclass(frozen=True)
class ImageDetails:
    """An image as read from its manifest and config blob.

    Attributes:
        digest: digest of the top-level manifest (index or image manifest).
        media_type: its media type.
        labels: ``config.Labels`` of the image (of the chosen platform for an index).
        size: bytes of the config and layers (compressed, as stored in the registry).
        created: the config's ``created`` time (ISO 8601) or "".
        platform: ``os/architecture`` of the image described.
    """

    digest: str
    media_type: str
    labels: dict[str, str]
    size: int
    created: str
    platform: str


class RegistryClient:
    """A client of one registry's Distribution API.

    Owns one ``aiohttp`` session, created on first use; :meth:`close` releases it. It does
    not use proxy settings from the environment.

    Args:
        registry: ``host[:port]`` as it appears in image names.
        api_url: base URL of the API (default :func:`default_api_url`).
        credentials: login for basic auth and token requests; None: anonymous.
        timeout: seconds per request (connect + answer).
        max_connections: connections kept to the registry (and token server).
        log: the logger to use.
    """

    def __init__(
        self,
        registry: str,
        *,
        api_url: str | None = None,
        credentials: RegistryCredentials | None = None,
        timeout: float = 10.0,
        max_connections: int = 32,
        log: logging.Logger | None = None,
    ) -> None:
        self.registry = registry
        self.api_url = (api_url or default_api_url(registry)).rstrip("/")
        self.credentials = credentials
        self.timeout = timeout
        self.max_connections = max_connections
        self.log = log or logging.getLogger("repo2docker_service.registry")
        self._session: aiohttp.ClientSession | None = None
        self._basic = False  # the registry asked for basic auth
        self._tokens: dict[str, tuple[str, float]] = {}
        self._token_fetches: dict[str, asyncio.Future[str]] = {}

    def __repr__(self) -> str:
        return f"RegistryClient({self.api_url!r}, credentials={self.credentials!r})"

    # ------------------------------------------------------------------ connection
    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.max_connections),
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                trust_env=False,
                auto_decompress=True,
            )
        return self._session

    async def close(self) -> None:
        """Close the session (a later call opens a new one); cached tokens are dropped."""
        session, self._session = self._session, None
        self._tokens.clear()
        if session is not None:
            await session.close()

    # ------------------------------------------------------------------ choke point
    async def _send(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        data: bytes | None = None,
        max_body: int = _MAX_MANIFEST_BYTES,
        redirects: bool = False,
    ) -> tuple[int, Mapping[str, str], bytes]:
        """One HTTP exchange; network and TLS trouble become :class:`RegistryError`."""
        try:
            async with self._client().request(
                method,
                url,
                headers=dict(headers),
                data=data,
                allow_redirects=redirects,
            ) as resp:
                chunks: list[bytes] = []
                size = 0
                if method != "HEAD":
                    # (read() of a stream returns what has arrived, not the whole body)
                    async for chunk in resp.content.iter_any():
                        size += len(chunk)
                        if size > max_body:
                            raise RegistryError(
                                f"{method} {url} answered more than {max_body} bytes",
                                kind="error",
                                status=resp.status,
                            )
                        chunks.append(chunk)
                return resp.status, resp.headers, b"".join(chunks)
        except RegistryError:
            raise
        except aiohttp.ClientSSLError as e:
            raise RegistryError(
                f"TLS with {url} failed ({e}); if the registry speaks plain HTTP, set "
                "registry_api_url to its http:// URL",
                kind="bad_url",
            ) from None
        except aiohttp.InvalidURL as e:
            raise RegistryError(f"invalid registry URL {e}", kind="bad_url") from None
        except TimeoutError:
            raise RegistryError(
                f"{urlsplit(url).netloc} did not answer within {self.timeout:g} s",
                kind="unreachable",
            ) from None
        except (aiohttp.ClientError, OSError) as e:
            raise RegistryError(
                f"cannot connect to {urlsplit(url).netloc} ({e or type(e).__name__})",
                kind="unreachable",
            ) from None

    async def _request(
        self,
        method: str,
        path: str,
        *,
        scope: str | None,
        headers: Mapping[str, str] | None = None,
        data: bytes | None = None,
        ok: Sequence[int] = (200,),
        missing: Sequence[int] = (),
        max_body: int = _MAX_MANIFEST_BYTES,
        url: str | None = None,
    ) -> tuple[int, Mapping[str, str], bytes]:
        """The choke point: one API request with authentication and error mapping.

        Args:
            method: HTTP method.
            path: path under the API URL (``/v2/...``), or ignored when ``url`` is given.
            scope: the token scope this request needs (``repository:NAME:pull``, ...), used
                to reuse cached tokens; the registry's challenge decides what is asked for.
            headers: extra request headers.
            data: request body.
            ok: statuses that are success.
            missing: statuses returned as they are (e.g. 404 for "no such manifest").
            max_body: largest body read.
            url: a full URL (pagination links).

        Returns:
            ``(status, headers, body)`` for a status in ``ok`` or ``missing``.

        Raises:
            RegistryError: everything else.
        """
        target = url or f"{self.api_url}{path}"
        sent_auth = self._auth_header(scope)
        for attempt in (1, 2):
            req_headers = {**(headers or {}), **({"Authorization": sent_auth} if sent_auth else {})}
            status, resp_headers, body = await self._send(
                method, target, headers=req_headers, data=data, max_body=max_body
            )
            if status != 401 or attempt == 2:
                break
            challenge = resp_headers.get("WWW-Authenticate", "")
            sent_auth = await self._answer_challenge(challenge, scope=scope, refused=sent_auth)
            if sent_auth is None:  # nothing new to try: the login was refused
                break
        return self._check(method, target, status, resp_headers, body, ok=ok, missing=missing)

    def _check(
        self,
        method: str,
        url: str,
        status: int,
        headers: Mapping[str, str],
        body: bytes,
        *,
        ok: Sequence[int],
        missing: Sequence[int],
    ) -> tuple[int, Mapping[str, str], bytes]:
        if status in ok or status in missing:
            return status, headers, body
        code, detail = _error_detail(body)
        where = f"{method} {urlsplit(url).path}"
        if status == 401:
            who = "the configured credentials" if self.credentials else "anonymous access"
            raise RegistryError(
                f"the registry refused {who} ({where}: {detail or 'unauthorized'}); check "
                "registry_username/registry_password or the docker config",
                kind="auth",
                status=status,
                code=code,
            )
        if status == 403:
            raise RegistryError(
                f"the registry denied {where}: {detail or 'forbidden'}",
                kind="denied",
                status=status,
                code=code,
            )
        if status == 405 or code == "UNSUPPORTED":
            raise RegistryError(
                f"the registry does not support {where}: {detail or 'method not allowed'}",
                kind="unsupported",
                status=status,
                code=code,
            )
        if status in (502, 503, 504):
            raise RegistryError(
                f"the registry is unavailable ({where} answered {status}: {detail})",
                kind="unreachable",
                status=status,
                code=code,
            )
        raise RegistryError(
            f"{where} answered {status}: {detail or 'no details'}",
            kind="error",
            status=status,
            code=code,
        )

    # ------------------------------------------------------------------ auth
    def _auth_header(self, scope: str | None) -> str | None:
        """What to send before any challenge: a cached token for the scope, or basic."""
        cached = self._tokens.get(scope or "")
        if cached is not None and cached[1] > time.monotonic():
            return f"Bearer {cached[0]}"
        if self._basic and self.credentials is not None:
            return self.credentials.basic_header()
        return None

    async def _answer_challenge(
        self, challenge: str, *, scope: str | None, refused: str | None
    ) -> str | None:
        scheme, params = parse_www_authenticate(challenge)
        if scheme == "basic":
            if self.credentials is None:
                raise RegistryError(
                    "the registry requires a login (basic auth): set registry_username and "
                    "registry_password, or registry_config_file",
                    kind="auth",
                    status=401,
                )
            self._basic = True
            header = self.credentials.basic_header()
            return None if refused == header else header
        if scheme == "bearer" and params.get("realm"):
            token = await self._token(
                params["realm"], service=params.get("service", ""), scope=params.get("scope", "")
            )
            self._tokens[scope or ""] = (token[0], token[1])
            return f"Bearer {token[0]}"
        raise RegistryError(
            f"the registry asked for unsupported authentication {challenge[:100]!r}",
            kind="auth",
            status=401,
        )

    async def _token(self, realm: str, *, service: str, scope: str) -> tuple[str, float]:
        """Fetch a bearer token from ``realm`` (one request per realm/service/scope at a time)."""
        key = f"{realm} {service} {scope}"
        pending = self._token_fetches.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._token_fetches[key] = future
        try:
            result = await self._fetch_token(realm, service=service, scope=scope)
            future.set_result(result)
            return result
        except BaseException as e:
            future.set_exception(e)
            future.exception()  # retrieved: waiters get it, nobody else needs to
            raise
        finally:
            self._token_fetches.pop(key, None)

    async def _fetch_token(self, realm: str, *, service: str, scope: str) -> tuple[str, float]:
        if urlsplit(realm).scheme not in ("http", "https"):
            raise RegistryError(f"token realm {realm!r} is not an http(s) URL", kind="auth")
        query: list[tuple[str, str]] = []
        if service:
            query.append(("service", service))
        for one in scope.split():
            query.append(("scope", one))
        if self.credentials is not None:
            query.append(("account", self.credentials.username))
        url = realm + ("&" if "?" in realm else "?") + urlencode(query) if query else realm
        headers = {}
        if self.credentials is not None:
            headers["Authorization"] = self.credentials.basic_header()
        status, _, body = await self._send("GET", url, headers=headers, redirects=True)
        if status in (401, 403):
            who = "the configured credentials" if self.credentials else "anonymous access"
            raise RegistryError(
                f"the registry's token server {urlsplit(realm).netloc} refused {who} "
                f"(HTTP {status}); check registry_username/registry_password",
                kind="auth",
                status=status,
            )
        if status != 200:
            _, detail = _error_detail(body)
            raise RegistryError(
                f"the registry's token server {urlsplit(realm).netloc} answered {status}: {detail}",
                kind="unreachable" if status in (502, 503, 504) else "error",
                status=status,
            )
        try:
            data = json.loads(body)
            token = data.get("token") or data.get("access_token")
            expires_in = float(data.get("expires_in") or 60)
        except (ValueError, AttributeError, TypeError):
            token, expires_in = None, 0.0
        if not token or not isinstance(token, str):
            raise RegistryError(
                f"the token server {urlsplit(realm).netloc} answered without a token",
                kind="error",
                status=status,
            )
        # renew a little early; never trust a lifetime below 10 s
        return token, time.monotonic() + max(expires_in - 10, 10)

    # ------------------------------------------------------------------ API
    async def check(self) -> None:
        """``GET /v2/`` with authentication: the registry answers and accepts the login.

        Raises:
            RegistryError: ``unreachable``; ``auth`` (login missing or refused);
                ``bad_url`` (TLS failure, or the URL does not answer like a registry).
        """
        try:
            _, headers, _ = await self._request("GET", "/v2/", scope=None)
        except RegistryError as e:
            if e.kind == "error" and e.status is not None and e.status < 500:
                raise RegistryError(
                    f"{self.api_url}/v2/ does not answer like a registry ({e.message}); "
                    "check registry_url / registry_api_url",
                    kind="bad_url",
                    status=e.status,
                ) from None
            raise
        version = headers.get("Docker-Distribution-API-Version", "")
        if version and not version.startswith("registry/2"):
            raise RegistryError(
                f"{self.api_url}/v2/ answered API version {version!r}, not registry/2.0",
                kind="bad_url",
            )

    async def catalog(self, *, page_size: int = 1000) -> list[str]:
        """Every repository name (without the registry host), following ``Link`` pages.

        Raises:
            RegistryError: e.g. ``denied``/``unsupported`` when the registry does not offer
                ``_catalog`` to this login.
        """
        names: list[str] = []
        url: str | None = f"{self.api_url}/v2/_catalog?n={page_size}"
        seen: set[str] = set()
        while url and url not in seen:
            seen.add(url)
            _, headers, body = await self._request(
                "GET", "", url=url, scope="registry:catalog:*", max_body=_MAX_CONFIG_BYTES
            )
            try:
                page = json.loads(body).get("repositories") or []
            except (ValueError, AttributeError):
                raise RegistryError("_catalog answered malformed JSON", kind="error") from None
            names.extend(str(n) for n in page)
            url = next_link(headers.get("Link"), url)
        return names

    async def tags(self, name: str, *, page_size: int = 1000) -> list[str]:
        """Tags of repository ``name``; ``[]`` when the repository does not exist."""
        tags: list[str] = []
        url: str | None = f"{self.api_url}/v2/{name}/tags/list?n={page_size}"
        seen: set[str] = set()
        while url and url not in seen:
            seen.add(url)
            status, headers, body = await self._request(
                "GET",
                "",
                url=url,
                scope=f"repository:{name}:pull",
                missing=(404,),
                max_body=_MAX_CONFIG_BYTES,
            )
            if status == 404:
                return tags
            try:
                page = json.loads(body).get("tags") or []
            except (ValueError, AttributeError):
                raise RegistryError(
                    f"tags of {name} answered malformed JSON", kind="error"
                ) from None
            tags.extend(str(t) for t in page)
            url = next_link(headers.get("Link"), url)
        return tags

    async def head_manifest(self, name: str, reference: str) -> ManifestRef | None:
        """``HEAD /v2/<name>/manifests/<reference>`` with every manifest type accepted.

        Returns:
            The digest and media type, or None when there is no such manifest (or
            repository).
        """
        status, headers, _ = await self._request(
            "HEAD",
            f"/v2/{name}/manifests/{reference}",
            scope=f"repository:{name}:pull",
            headers={"Accept": MANIFEST_ACCEPT},
            missing=(404,),
        )
        if status == 404:
            return None
        digest = headers.get("Docker-Content-Digest", "")
        media_type = headers.get("Content-Type", "").split(";")[0].strip()
        if not digest and _is_digest(reference):
            digest = reference
        if not digest:  # some registries only send the digest on GET
            got = await self.get_manifest(name, reference)
            return got[0] if got else None
        return ManifestRef(
            digest=digest, media_type=media_type, size=int(headers.get("Content-Length") or 0)
        )

    async def get_manifest(self, name: str, reference: str) -> tuple[ManifestRef, bytes] | None:
        """``GET`` a manifest (any of the four kinds).

        Returns:
            ``(ManifestRef, raw bytes)``, or None when there is no such manifest.
        """
        status, headers, body = await self._request(
            "GET",
            f"/v2/{name}/manifests/{reference}",
            scope=f"repository:{name}:pull",
            headers={"Accept": MANIFEST_ACCEPT},
            missing=(404,),
        )
        if status == 404:
            return None
        digest = headers.get("Docker-Content-Digest") or (
            "sha256:" + hashlib.sha256(body).hexdigest()
        )
        media_type = headers.get("Content-Type", "").split(";")[0].strip()
        if not media_type or media_type == "application/json":
            try:
                media_type = str(json.loads(body).get("mediaType") or media_type)
            except (ValueError, AttributeError):
                pass
        return ManifestRef(digest=digest, media_type=media_type, size=len(body)), body

    async def get_blob(
        self, name: str, digest: str, *, max_bytes: int = _MAX_CONFIG_BYTES
    ) -> bytes:
        """A blob (the image config) by digest, following a redirect to storage without
        sending the registry's credentials there.

        Raises:
            RegistryError: also when the blob is missing or its digest does not match.
        """
        status, headers, body = await self._request(
            "GET",
            f"/v2/{name}/blobs/{digest}",
            scope=f"repository:{name}:pull",
            ok=(200, 301, 302, 303, 307, 308),
            max_body=max_bytes,
        )
        if status != 200:
            location = headers.get("Location")
            if not location:
                raise RegistryError(f"blob {digest} redirect without Location", kind="error")
            target = urljoin(f"{self.api_url}/v2/{name}/blobs/{digest}", location)
            status, headers, body = await self._send(
                "GET", target, headers={}, max_body=max_bytes, redirects=True
            )
            if status != 200:
                raise RegistryError(
                    f"blob {digest} storage answered {status}", kind="error", status=status
                )
        algorithm, _, expected = digest.partition(":")
        if algorithm == "sha256" and hashlib.sha256(body).hexdigest() != expected:
            raise RegistryError(f"blob {digest} does not match its digest", kind="error")
        return body

    async def image_details(self, name: str, reference: str) -> ImageDetails | None:
        """Manifest and config of an image: labels, size, creation time.

        For an index (OCI index or Docker manifest list, as buildx pushes) the ``linux/amd64``
        manifest is described, else the first one that is not an attestation.

        Returns:
            The details, or None when there is no such manifest.
        """
        got = await self.get_manifest(name, reference)
        if got is None:
            return None
        top, raw = got
        manifest = _json_object(raw, what=f"manifest {name}@{top.digest}")
        media_type = top.media_type or str(manifest.get("mediaType", ""))
        platform = ""
        if media_type in INDEX_TYPES or "manifests" in manifest:
            child = _pick_platform(manifest.get("manifests") or [])
            if child is None:
                raise RegistryError(f"index {name}@{top.digest} lists no image", kind="error")
            plat = child.get("platform") or {}
            platform = f"{plat.get('os', '')}/{plat.get('architecture', '')}".strip("/")
            got_child = await self.get_manifest(name, str(child["digest"]))
            if got_child is None:
                raise RegistryError(
                    f"index {name}@{top.digest} names a missing manifest {child['digest']}",
                    kind="error",
                )
            manifest = _json_object(got_child[1], what=f"manifest {name}@{child['digest']}")
        config_desc = manifest.get("config") or {}
        config_digest = str(config_desc.get("digest") or "")
        if not config_digest:
            raise RegistryError(f"manifest {name}@{top.digest} has no config", kind="error")
        config = _json_object(
            await self.get_blob(name, config_digest), what=f"config {config_digest}"
        )
        labels = (config.get("config") or {}).get("Labels") or {}
        if not platform:
            platform = f"{config.get('os', '')}/{config.get('architecture', '')}".strip("/")
        size = int(config_desc.get("size") or 0) + sum(
            int(layer.get("size") or 0) for layer in manifest.get("layers") or []
        )
        return ImageDetails(
            digest=top.digest,
            media_type=media_type,
            labels={str(k): str(v) for k, v in labels.items()},
            size=size,
            created=str(config.get("created") or ""),
            platform=platform,
        )

    async def put_manifest(self, name: str, tag: str, *, media_type: str, body: bytes) -> str:
        """Store ``body`` as the manifest of ``name:tag`` (a registry-side tag).

        Returns:
            The digest the registry reports.
        """
        _, headers, _ = await self._request(
            "PUT",
            f"/v2/{name}/manifests/{tag}",
            scope=f"repository:{name}:pull,push",
            headers={"Content-Type": media_type},
            data=body,
            ok=(200, 201, 202),
        )
        return headers.get("Docker-Content-Digest") or "sha256:" + hashlib.sha256(body).hexdigest()

    async def delete_manifest(self, name: str, digest: str) -> bool:
        """Delete the manifest ``digest`` of ``name`` (every tag pointing at it goes with it).

        Returns:
            True if deleted, False if it did not exist.

        Raises:
            RegistryError: ``unsupported`` when the registry does not allow deletes.
        """
        if not _is_digest(digest):
            raise ValueError(f"not a digest: {digest!r}")
        status, _, _ = await self._request(
            "DELETE",
            f"/v2/{name}/manifests/{digest}",
            scope=f"repository:{name}:delete",
            ok=(200, 202, 204),
            missing=(404,),
        )
        return status != 404


def _json_object(raw: bytes, *, what: str) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except ValueError:
        raise RegistryError(f"{what} is not JSON", kind="error") from None
    if not isinstance(data, dict):
        raise RegistryError(f"{what} is not a JSON object", kind="error")
    return data


def _pick_platform(manifests: list[Any]) -> dict[str, Any] | None:
    """``linux/amd64`` from an index, else the first entry that is not an attestation."""
    candidates = [
        m
        for m in manifests
        if isinstance(m, dict)
        and m.get("digest")
        and (m.get("annotations") or {}).get("vnd.docker.reference.type") != "attestation-manifest"
        and (m.get("platform") or {}).get("os") != "unknown"
    ]
    for m in candidates:
        plat = m.get("platform") or {}
        if plat.get("os") == "linux" and plat.get("architecture") == "amd64":
            return m
    return candidates[0] if candidates else None


# ---------------------------------------------------------------------------- catalog
@dataclass
class _Meta:
    """Cached facts about one manifest digest (immutable content)."""

    labels: dict[str, Any] | None  # parse_labels() of the image, None if not ours
    size: int
    created: str


@dataclass
class _Repo:
    """One repository as last read: tag -> digest."""

    tags: dict[str, str]
    read_at: float


@dataclass
class _Entry:
    tag: str
    digest: str
    meta: _Meta


class RegistryCatalog(Catalog):
    """Catalog of the service's images in a registry (see the module docstring for caching).

    The service's repositories are found in the registry's ``_catalog`` by their names (the
    namer's pattern) and checked against their labels like
    :class:`~repo2docker_service.images.docker.DockerCatalog` does: a tag whose image
    labels name another owner or name is ignored.

    Args:
        namer: how image references are made (its ``registry`` is this registry).
        client: the registry client (owned by the catalog: :meth:`close` closes it).
        cache_ttl: seconds a listing snapshot is used without a refresh (0: no cache).
        max_stale: seconds after which a snapshot is refreshed before answering (at least
            ``cache_ttl``); between the two, the old snapshot is answered while a
            background refresh runs.
        concurrency: registry requests at the same time during a refresh.
        meta_cache_size: manifest digests whose labels are kept.
        log: the logger to use.
    """

    name = "registry"

    def __init__(
        self,
        *,
        namer: ImageNamer,
        client: RegistryClient,
        cache_ttl: float = 30.0,
        max_stale: float = 300.0,
        concurrency: int = 16,
        meta_cache_size: int = 20000,
        log: logging.Logger | None = None,
    ) -> None:
        if not namer.registry:
            raise ValueError("RegistryCatalog needs a namer with a registry")
        self.namer = namer
        self.client = client
        self.cache_ttl = max(0.0, float(cache_ttl))
        self.max_stale = max(self.cache_ttl, float(max_stale))
        self.log = log or logging.getLogger("repo2docker_service.catalog")
        self._limit = asyncio.Semaphore(max(1, concurrency))
        self._meta: OrderedDict[str, _Meta] = OrderedDict()
        self._meta_cache_size = meta_cache_size
        self._repos: dict[str, _Repo] = {}
        self._snapshot_at: float | None = None
        self._full_at: float | None = None  # last refresh that HEADed every tag
        self._refreshing: asyncio.Task[None] | None = None
        #: repository -> time of the service's own last write to it
        self._touched: dict[str, float] = {}
        #: repository -> (the _Repo it was computed from, its ImageInfo or None)
        self._infos: dict[str, tuple[_Repo, ImageInfo | None]] = {}
        self._warned: set[tuple[str, str]] = set()

    def __repr__(self) -> str:
        return f"RegistryCatalog({self.client.api_url!r}, namer={self.namer!r})"

    # ------------------------------------------------------------------ plumbing
    @property
    def registry(self) -> str:
        return self.namer.registry

    def _api_name(self, repository: str) -> str:
        """Repository name without the registry host (as the API paths use it)."""
        return repository.removeprefix(f"{self.registry}/")

    def _split(self, reference: str) -> tuple[str, str]:
        """``(repository, tag-or-digest)`` of a full reference (``repo:tag``, ``repo@digest``)."""
        if "@" in reference:
            repository, _, digest = reference.partition("@")
            return repository, digest
        repository, sep, tag = reference.rpartition(":")
        if not sep or "/" in tag:
            return reference, LATEST
        return repository, tag

    @asynccontextmanager
    async def _upstream(self, what: str) -> AsyncIterator[None]:
        """Turn :class:`RegistryError` into the service's errors (the catalog's choke point)."""
        try:
            yield
        except RegistryError as e:
            where = f"the registry {self.client.api_url}"
            if e.kind == "unreachable":
                raise Unavailable(
                    f"Cannot reach {where} while {what}: {e.message}. Check that the registry "
                    "is running and registry_url / registry_api_url point at it; builds "
                    "still queue and listings work again once it is back."
                ) from None
            if e.kind == "unsupported":
                raise Conflict(f"{where} cannot do this ({what}): {e.message}") from None
            raise UpstreamError(f"{where} failed while {what}: {e.message}") from None

    async def start(self) -> None:
        """Check that the registry answers and accepts the login (``GET /v2/``).

        Raises:
            RegistryError: as :meth:`RegistryClient.check` (the app decides what is fatal).
        """
        await self.client.check()

    async def close(self) -> None:
        """Stop a background refresh and close the client."""
        task, self._refreshing = self._refreshing, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await self.client.close()

    # ------------------------------------------------------------------ reading the registry
    async def _meta_for(self, name: str, digest: str) -> _Meta:
        meta = self._meta.get(digest)
        if meta is not None:
            self._meta.move_to_end(digest)
            return meta
        async with self._limit:
            details = await self.client.image_details(name, digest)
        if details is None:  # deleted between HEAD and GET
            meta = _Meta(labels=None, size=0, created="")
        else:
            meta = _Meta(
                labels=parse_labels(details.labels), size=details.size, created=details.created
            )
            self._meta[digest] = meta
            while len(self._meta) > self._meta_cache_size:
                self._meta.popitem(last=False)
        return meta

    async def _head(self, name: str, tag: str) -> ManifestRef | None:
        async with self._limit:
            return await self.client.head_manifest(name, tag)

    async def _read_repo(self, repository: str, *, known: _Repo | None = None) -> _Repo | None:
        """Read the tags of one repository and the digest behind each (None: no tags).

        With ``known`` (the last read), only ``latest`` and tags new since then get a
        manifest HEAD; the other tags keep their digest (a commit tag only moves when that
        commit is rebuilt with ``force``; the service's own rebuilds re-read the
        repository fully, others' are caught by the full refresh every ``max_stale``).
        """
        name = self._api_name(repository)
        async with self._limit:
            tags = [t for t in await self.client.tags(name) if is_valid_tag(t)]
        found: dict[str, str] = {}
        heads = []
        for tag in tags:
            if known is not None and tag != LATEST and tag in known.tags:
                found[tag] = known.tags[tag]
            else:
                heads.append(tag)
        refs = await asyncio.gather(*(self._head(name, tag) for tag in heads))
        found.update(
            {tag: ref.digest for tag, ref in zip(heads, refs, strict=True) if ref is not None}
        )
        found = {tag: found[tag] for tag in tags if tag in found}
        await asyncio.gather(*(self._meta_for(name, d) for d in set(found.values())))
        if not found:
            return None
        return _Repo(tags=found, read_at=time.monotonic())

    async def _update_repo(self, repository: str) -> _Repo | None:
        """Re-read one repository into the snapshot (the invalidation of our own writes)."""
        repo = await self._read_repo(repository)
        self._touched[repository] = time.monotonic()
        if repo is None:
            self._repos.pop(repository, None)
        else:
            self._repos[repository] = repo
        return repo

    async def _refresh_all(self) -> None:
        started = time.monotonic()
        full = self._full_at is None or started - self._full_at > self.max_stale
        names = await self.client.catalog()
        ours = [
            f"{self.registry}/{n}"
            for n in names
            if self.namer.parse(f"{self.registry}/{n}") is not None
        ]
        previous = {} if full else self._repos
        repos = await asyncio.gather(*(self._read_repo(r, known=previous.get(r)) for r in ours))
        fresh = {r: repo for r, repo in zip(ours, repos, strict=True) if repo is not None}
        # the service's own writes during this refresh are newer than what it read
        for repository, when in list(self._touched.items()):
            if when < started:
                del self._touched[repository]
            elif repository in self._repos:
                fresh[repository] = self._repos[repository]
            else:
                fresh.pop(repository, None)
        self._repos = fresh
        self._snapshot_at = started
        if full:
            self._full_at = started
        self.log.debug(
            "registry listing %s: %d repositories in %.2f s",
            "read" if full else "refreshed",
            len(fresh),
            time.monotonic() - started,
        )

    def _start_refresh(self) -> asyncio.Task[None]:
        task = self._refreshing
        if task is None or task.done():
            task = asyncio.create_task(self._refresh_guarded(), name="registry-refresh")
            task.add_done_callback(_ignore_result)
            self._refreshing = task
        return task

    async def _refresh(self) -> None:
        """One refresh at a time; concurrent callers wait for the same one."""
        await asyncio.shield(self._start_refresh())

    async def _refresh_guarded(self) -> None:
        try:
            await self._refresh_all()
        except RegistryError as e:
            # nothing stale is answered once the registry is known to be unreachable
            self._snapshot_at = self._full_at = None
            self._repos = {}
            self.log.warning("registry refresh failed: %s", e)
            raise

    async def _snapshot(self) -> dict[str, _Repo]:
        """The repositories, refreshed as the cache rules say."""
        now = time.monotonic()
        age = None if self._snapshot_at is None else now - self._snapshot_at
        async with self._upstream("listing images"):
            if self.cache_ttl <= 0 or age is None or age > self.max_stale:
                await self._refresh()
            elif age > self.cache_ttl:
                self._start_refresh()
        return self._repos

    # ------------------------------------------------------------------ building infos
    def _entries(self, repository: str, repo: _Repo) -> list[_Entry]:
        key = self.namer.parse(repository)
        entries = []
        for tag, digest in repo.tags.items():
            meta = self._meta.get(digest)
            if meta is None or meta.labels is None:
                continue
            if key != (_expected_slug(meta.labels), meta.labels["name"]):
                if (repository, tag) not in self._warned:
                    self._warned.add((repository, tag))
                    self.log.warning(
                        "ignoring %s:%s: its labels say owner %r, name %r",
                        repository,
                        tag,
                        meta.labels["owner"],
                        meta.labels["name"],
                    )
                continue
            entries.append(_Entry(tag=tag, digest=digest, meta=meta))
        return entries

    def _info(
        self, repository: str, entries: list[_Entry], *, focus: str | None = None
    ) -> ImageInfo:
        owner_slug, name = self.namer.parse(repository) or ("", "")
        latest = next((e for e in entries if e.tag == LATEST), None)
        newest_first = sorted(
            entries, key=lambda e: (e.meta.labels["built_at"], e.meta.created, e.tag), reverse=True
        )
        current = next((e for e in entries if e.tag == focus), None) or latest or newest_first[0]
        labels = current.meta.labels
        assert labels is not None
        tag = current.tag
        if tag == LATEST:
            tag = next(
                (e.tag for e in newest_first if e.tag != LATEST and e.digest == current.digest),
                LATEST,
            )
        tags = [LATEST] if latest else []
        tags += [e.tag for e in newest_first if e.tag != LATEST]
        return ImageInfo(
            owner=labels["owner"],
            shared=labels["shared"],
            owner_slug=owner_slug,
            name=name,
            display_name=labels["display_name"],
            repo=labels["repo"],
            ref=labels["ref"],
            commit=labels["commit"],
            image=f"{repository}:{tag}",
            latest=f"{repository}:{LATEST}" if latest else None,
            tags=tags,
            size=current.meta.size or None,
            built_at=labels["built_at"] or None,
            build_id=labels["build_id"],
            hints=dict(labels["hints"]),
            scheme=labels["scheme"],
        )

    # ------------------------------------------------------------------ Catalog API
    async def exists(self, reference: str) -> bool:
        """Whether ``reference`` exists in the registry (a manifest HEAD).

        Raises:
            Unavailable: the registry is unreachable.
            UpstreamError: it refused or failed.
        """
        repository, ref = self._split(reference)
        if not repository.startswith(f"{self.registry}/"):
            return False
        async with self._upstream(f"looking up {reference}"):
            return await self.client.head_manifest(self._api_name(repository), ref) is not None

    async def image_id(self, reference: str) -> str | None:
        """The manifest digest behind ``reference`` (what ``tag`` can restore), or None."""
        repository, ref = self._split(reference)
        if not repository.startswith(f"{self.registry}/"):
            return None
        async with self._upstream(f"looking up {reference}"):
            found = await self.client.head_manifest(self._api_name(repository), ref)
        return found.digest if found else None

    async def image_info(self, reference: str) -> ImageInfo | None:
        """Describe the image ``reference`` (the build cache check: one manifest HEAD, the
        labels from the digest cache, the repository's tags from a fresh snapshot or the
        registry).

        Returns:
            ImageInfo whose ``image`` is ``reference``, or None when absent or not ours.

        Raises:
            Unavailable: the registry is unreachable.
            UpstreamError: it refused or failed.
        """
        repository, tag = self._split(reference)
        if self.namer.parse(repository) is None or _is_digest(tag):
            return None
        name = self._api_name(repository)
        async with self._upstream(f"looking up {reference}"):
            head = await self.client.head_manifest(name, tag)
            if head is None:
                return None
            await self._meta_for(name, head.digest)
            repo = self._repos.get(repository)
            fresh = (
                repo is not None
                and self.cache_ttl > 0
                and time.monotonic() - repo.read_at <= self.cache_ttl
                and repo.tags.get(tag) == head.digest
            )
            if not fresh:
                repo = await self._update_repo(repository)
        if repo is None:
            return None
        repo = _Repo(tags={**repo.tags, tag: head.digest}, read_at=repo.read_at)
        entries = self._entries(repository, repo)
        if not any(e.tag == tag for e in entries):
            return None
        return self._info(repository, entries, focus=tag)

    async def list_images(
        self, *, owner: str | None = None, include_shared: bool = False
    ) -> list[ImageInfo]:
        """The service's environments in the registry (from the listing snapshot).

        Raises:
            Unavailable: the registry is unreachable (and there is no usable snapshot).
            UpstreamError: it refused or failed.
        """
        repos = await self._snapshot()
        infos = []
        known = self._infos
        self._infos = {}
        for repository, repo in repos.items():
            cached = known.get(repository)
            if cached is None or cached[0].tags != repo.tags:
                entries = self._entries(repository, repo)
                cached = (repo, self._info(repository, entries) if entries else None)
            self._infos[repository] = cached
            if cached[1] is not None:
                infos.append(cached[1])
        # copies: the cached records stay as they are whatever callers do
        return [
            dataclasses.replace(i, tags=list(i.tags), hints=dict(i.hints))
            for i in select_images(infos, owner=owner, include_shared=include_shared)
        ]

    async def get(self, *, owner_slug: str, name: str) -> ImageInfo | None:
        """One environment, read from the registry (and updated in the snapshot).

        Raises:
            Unavailable: the registry is unreachable.
        """
        try:
            repository = self.namer.repository(owner_slug=owner_slug, name=name)
        except ValueError:
            return None
        async with self._upstream(f"reading {repository}"):
            repo = await self._update_repo(repository)
        if repo is None:
            return None
        entries = self._entries(repository, repo)
        return self._info(repository, entries) if entries else None

    async def tag(self, source: str, target: str) -> None:
        """Point ``target`` at the manifest of ``source`` inside the registry (manifest GET +
        PUT; no layers move). ``source`` is a reference, ``repository@digest`` or a bare
        digest of ``target``'s repository.

        Raises:
            NotFound: ``source`` does not exist.
            Unavailable, UpstreamError: registry trouble.
        """
        target_repo, target_tag = self._split(target)
        if _is_digest(source):
            source_repo, source_ref = target_repo, source
        else:
            source_repo, source_ref = self._split(source)
        if source_repo != target_repo:
            raise UpstreamError(f"cannot tag {source} as {target}: only tags within one repository")
        name = self._api_name(target_repo)
        async with self._upstream(f"tagging {source} as {target}"):
            got = await self.client.get_manifest(name, source_ref)
            if got is None:
                raise NotFound(f"image {source} not found in the registry")
            ref, body = got
            await self.client.put_manifest(name, target_tag, media_type=ref.media_type, body=body)
            await self._update_repo(target_repo)
        self.log.info("tagged %s as %s in the registry", source, target)

    async def remove_tag(self, reference: str) -> bool:
        """Delete the manifest ``reference`` points at.

        The Distribution API has no "untag": deleting the manifest also removes every
        other tag of the repository that points at the same digest.

        Returns:
            True if removed, False if there was no such reference.

        Raises:
            Conflict: the registry does not allow deletes.
            Unavailable, UpstreamError: registry trouble.
        """
        repository, ref = self._split(reference)
        name = self._api_name(repository)
        async with self._upstream(f"removing {reference}"):
            head = await self.client.head_manifest(name, ref)
            if head is None:
                return False
            removed = await self.client.delete_manifest(name, head.digest)
            await self._update_repo(repository)
        return removed

    async def push(self, reference: str) -> None:
        """Nothing to push: builds push with repo2docker and tags are set in the registry.

        Checks that ``reference`` is there.

        Raises:
            UpstreamError: it is not.
        """
        if not await self.exists(reference):
            raise UpstreamError(f"{reference} is not in the registry after the build pushed it")

    async def delete(self, *, owner_slug: str, name: str, force: bool = False) -> list[str]:
        """Delete every manifest of an environment (all its tags).

        ``force`` changes nothing: the registry cannot tell whether servers run the image
        (running servers keep their pulled copy).

        Returns:
            The references removed.

        Raises:
            NotFound: no such environment.
            Conflict: the registry does not allow deletes (``storage.delete.enabled``).
            Unavailable, UpstreamError: registry trouble.
        """
        try:
            repository = self.namer.repository(owner_slug=owner_slug, name=name)
        except ValueError:
            raise NotFound(f"no image {owner_slug}/{name}") from None
        api_name = self._api_name(repository)
        async with self._upstream(f"deleting {repository}"):
            repo = await self._update_repo(repository)
            entries = self._entries(repository, repo) if repo else []
            if not entries:
                raise NotFound(f"no image {owner_slug}/{name}")
            for digest in dict.fromkeys(e.digest for e in entries):
                await self.client.delete_manifest(api_name, digest)
            await self._update_repo(repository)
        removed = [f"{repository}:{e.tag}" for e in entries]
        self.log.info("deleted %s from the registry (%d tags)", repository, len(removed))
        return removed


def _expected_slug(labels: Mapping[str, Any]) -> str | None:
    if labels["shared"]:
        return SHARED_OWNER
    try:
        return escape_owner(labels["owner"])
    except (TypeError, ValueError):
        return None


def _ignore_result(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()  # logged by _refresh_guarded; marks it retrieved
