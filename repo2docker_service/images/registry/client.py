"""A small client of a registry's OCI Distribution API (``/v2/``).

It reads the repository catalog (``_catalog``, paginated with ``Link`` headers), tag lists,
manifests (HEAD/GET with ``Accept`` for all four kinds, see :mod:`.manifest`), image config
blobs (for the labels), and writes manifests (PUT: a registry-side tag) and deletes them
(when the registry allows it). Authentication is in :mod:`.auth`.

Every request goes through one choke point (:meth:`RegistryClient._request`) that turns
network, TLS, HTTP and protocol trouble into :class:`~.errors.RegistryError` with a
``kind`` saying what went wrong. A missing manifest is ``None``, a missing repository an
empty tag list.

**Missing or refused** (one rule for builds, cache checks and listings, in
:meth:`RegistryClient._request`): hosted registries answer reads of a repository that does
not exist yet with 401 (Docker Hub) or 403, even to a valid token. Such an answer means "not
there yet" when the login was accepted (the token request succeeded, the basic login opens
``/v2/``, or none was asked for) and the repository is not known to exist (read from,
listed by ``_catalog`` since the last delete there, or listed by the service's index when
last read, see :mod:`.index`). Only a refused token request or login,
or a refusal on a known repository, is an authentication error.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from urllib.parse import urljoin, urlsplit

import aiohttp

from ..dockerconfig import RegistryCredentials
from ..reference import is_digest
from ..registrylogin import RegistryLogin
from .auth import RegistryAuth
from .errors import RegistryError, answer_error
from .http import Answer as _Answer
from .http import exchange
from .manifest import (
    MANIFEST_ACCEPT,
    ImageDetails,
    ManifestRef,
    config_digest,
    describe_image,
    digest_of,
    index_child,
    is_index,
    json_object,
    manifest_media_type,
)
from .urls import api_base_url, default_api_url, next_link

__all__ = ["RegistryClient", "default_api_url", "next_link"]

_MAX_MANIFEST_BYTES = 4 * 1024 * 1024
_MAX_CONFIG_BYTES = 8 * 1024 * 1024
_REDIRECTS = (301, 302, 303, 307, 308)


class RegistryClient:
    """A client of one registry's Distribution API.

    Owns one ``aiohttp`` session, created on first use; :meth:`close` releases it. It does
    not use proxy settings from the environment.

    Args:
        registry: ``host[:port]`` as it appears in image names.
        api_url: base URL of the API (default :func:`default_api_url`).
        credentials: login for basic auth and token requests; None: anonymous.
        login: where the login comes from (read again when refused or due); overrides
            ``credentials``.
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
        login: RegistryLogin | None = None,
        timeout: float = 10.0,
        max_connections: int = 32,
        log: logging.Logger | None = None,
    ) -> None:
        self.registry = registry
        self.api_url = api_base_url(registry, api_url)
        self.timeout = timeout
        self.max_connections = max_connections
        self.log = log or logging.getLogger("repo2docker_service.registry")
        self._session: aiohttp.ClientSession | None = None
        #: where the login comes from
        self.login = login or RegistryLogin.of(credentials, registry)
        self._auth = RegistryAuth(self.login, send=self._send)
        #: repositories known to exist (read from, listed by ``_catalog`` or the index)
        self.known: set[str] = set()

    def __repr__(self) -> str:
        return f"RegistryClient({self.api_url!r}, credentials={self.credentials!r})"

    @property
    def credentials(self) -> RegistryCredentials | None:
        """The login used for basic auth and token requests (None: anonymous)."""
        return self._auth.credentials

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
        self._auth.clear()
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
    ) -> _Answer:
        """One HTTP exchange; network and TLS trouble become :class:`RegistryError`."""
        return await exchange(
            self._client(),
            method,
            url,
            headers=headers,
            data=data,
            max_body=max_body,
            redirects=redirects,
            time_limit=self.timeout,
        )

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
        repository: str | None = None,
    ) -> _Answer:
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
            repository: the repository a read of manifests or tags is about: a 401/403
                that means "not there yet" (module docstring) is returned as 404.

        Returns:
            ``(status, headers, body)`` for a status in ``ok`` or ``missing``.

        Raises:
            RegistryError: everything else.
        """
        target = url or f"{self.api_url}{path}"
        status, resp_headers, body, sent_auth = await self._auth.send(
            method, target, headers=headers or {}, data=data, max_body=max_body, scope=scope
        )
        if repository is not None:
            if status < 300:
                self.known.add(repository)
            elif (
                status in (401, 403)
                and repository not in self.known
                and await self._auth.accepted(sent_auth, api_url=self.api_url)
            ):
                status = 404  # "not there yet" (module docstring)
        if status in ok or status in missing:
            return status, resp_headers, body
        where = f"{method} {urlsplit(target).path}"
        raise answer_error(where, status, body, logged_in=self.credentials is not None)

    # ------------------------------------------------------------------ API
    async def check(self) -> None:
        """``GET /v2/`` with authentication: the registry answers and accepts the login.

        Raises:
            RegistryError: ``unreachable``; ``auth`` (login missing, unreadable or refused);
                ``bad_url`` (TLS failure, or the URL does not answer like a registry).
        """
        await self._auth.read_login()  # (a credential helper runs now)
        try:
            # any scope proves the login; some token realms refuse requests without one
            _, headers, _ = await self._request("GET", "/v2/", scope="registry:catalog:*")
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

    async def _pages(
        self,
        url: str,
        *,
        scope: str,
        key: str,
        what: str,
        missing: Sequence[int] = (),
        repository: str | None = None,
    ) -> AsyncIterator[list[str] | None]:
        """The ``key`` lists of a paginated listing, following ``Link`` headers.

        Yields:
            Each page's entries; None (and no more) for a status in ``missing``.

        Raises:
            RegistryError: also when a page is not JSON (``what`` names the listing).
        """
        next_url: str | None = url
        seen: set[str] = set()
        while next_url and next_url not in seen:
            seen.add(next_url)
            status, headers, body = await self._request(
                "GET",
                "",
                url=next_url,
                scope=scope,
                missing=missing,
                max_body=_MAX_CONFIG_BYTES,
                repository=repository,
            )
            if status in missing:
                yield None
                return
            try:
                page = json.loads(body).get(key) or []
            except (ValueError, AttributeError):
                raise RegistryError(f"{what} answered malformed JSON", kind="error") from None
            yield [str(entry) for entry in page]
            next_url = next_link(headers.get("Link"), next_url)

    async def catalog(self, *, page_size: int = 1000) -> list[str]:
        """Every repository name (without the registry host), following ``Link`` pages.

        Raises:
            RegistryError: e.g. ``denied``/``unsupported`` when the registry does not offer
                ``_catalog`` to this login.
        """
        names: list[str] = []
        url = f"{self.api_url}/v2/_catalog?n={page_size}"
        async for page in self._pages(
            url, scope="registry:catalog:*", key="repositories", what="_catalog"
        ):
            names.extend(page or [])
        self.known.update(names)
        return names

    async def tags(self, name: str, *, page_size: int = 1000) -> list[str]:
        """Tags of repository ``name``; ``[]`` when the repository does not exist."""
        tags: list[str] = []
        async for page in self._pages(
            f"{self.api_url}/v2/{name}/tags/list?n={page_size}",
            scope=f"repository:{name}:pull",
            key="tags",
            what=f"tags of {name}",
            missing=(404,),
            repository=name,
        ):
            if page is None:
                return tags
            tags.extend(page)
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
            repository=name,
        )
        if status == 404:
            return None
        digest = headers.get("Docker-Content-Digest", "")
        media_type = headers.get("Content-Type", "").split(";")[0].strip()
        if not digest and is_digest(reference):
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
            repository=name,
        )
        if status == 404:
            return None
        digest = headers.get("Docker-Content-Digest") or digest_of(body)
        media_type = manifest_media_type(headers.get("Content-Type", ""), body)
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
            ok=(200, *_REDIRECTS),
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

    async def put_blob(self, name: str, body: bytes) -> str:
        """Store ``body`` as a blob of ``name`` (skipped when the registry has it): a
        ``POST`` opening an upload, then one ``PUT`` of the whole body with its digest
        (the monolithic upload of the OCI Distribution spec).

        Returns:
            The blob's digest (``sha256:...``).

        Raises:
            RegistryError: the registry refused or failed.
        """
        digest = digest_of(body)
        scope = f"repository:{name}:pull,push"
        status, _, _ = await self._request(
            "HEAD", f"/v2/{name}/blobs/{digest}", scope=scope, missing=(404,)
        )
        if status == 200:
            return digest
        _, headers, _ = await self._request(
            "POST", f"/v2/{name}/blobs/uploads/", scope=scope, ok=(202,)
        )
        location = urljoin(f"{self.api_url}/v2/{name}/blobs/uploads/", headers.get("Location", ""))
        join = "&" if "?" in location else "?"
        await self._request(
            "PUT",
            "",
            url=f"{location}{join}digest={digest}",
            scope=scope,
            headers={"Content-Type": "application/octet-stream"},
            data=body,
            ok=(201, 204),
        )
        return digest

    async def image_details(self, name: str, reference: str) -> ImageDetails | None:
        """Manifest and config of an image: labels, size, creation time.

        For an index (OCI index or Docker manifest list, as buildx pushes) the ``linux/amd64``
        manifest is described, else the first one that is not an attestation.

        Returns:
            The details, or None when there is no such manifest.

        Raises:
            RegistryError: also for a malformed manifest or config, or an index naming a
                missing manifest.
        """
        got = await self.get_manifest(name, reference)
        if got is None:
            return None
        top, raw = got
        where = f"{name}@{top.digest}"
        manifest = json_object(raw, what=f"manifest {where}")
        media_type = top.media_type or str(manifest.get("mediaType", ""))
        platform = ""
        if is_index(media_type, manifest):
            child, platform = index_child(manifest, where=where)
            got_child = await self.get_manifest(name, child)
            if got_child is None:
                raise RegistryError(f"index {where} names a missing manifest {child}", kind="error")
            manifest = json_object(got_child[1], what=f"manifest {name}@{child}")
        blob = config_digest(manifest, where=where)
        config = json_object(await self.get_blob(name, blob), what=f"config {blob}")
        return describe_image(
            digest=top.digest,
            media_type=media_type,
            manifest=manifest,
            config=config,
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
        return headers.get("Docker-Content-Digest") or digest_of(body)

    async def delete_manifest(self, name: str, digest: str) -> bool:
        """Delete the manifest ``digest`` of ``name`` (every tag pointing at it goes with it).

        Returns:
            True if deleted, False if it did not exist.

        Raises:
            ValueError: ``digest`` is not a digest.
            RegistryError: ``unsupported`` when the registry does not allow deletes.
        """
        if not is_digest(digest):
            raise ValueError(f"not a digest: {digest!r}")
        status, _, _ = await self._request(
            "DELETE",
            f"/v2/{name}/manifests/{digest}",
            scope=f"repository:{name}:delete",
            ok=(200, 202, 204),
            missing=(404,),
        )
        # it may hold nothing now: a later 401/403 there is "not there yet" again
        self.known.discard(name)
        return status != 404
