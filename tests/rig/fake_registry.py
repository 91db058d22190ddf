"""A fake-registry front: hosted registries' manners over a real ``docker-registry``.

This is our own code, a **fake**, because Docker Hub, GHCR, ECR and Harbor cannot run here.
:class:`RegistryFront` is an HTTP reverse proxy on 127.0.0.1 in front of a real CNCF
Distribution registry without auth (:func:`tests.rig.registry.start_registry`). Everything the
real registry does (uploads, manifests, tags, deletes, ``_catalog``) passes through; the front
adds what the hosted registries do differently, switched at run time through
:class:`FrontBehaviour` (``front.behaviour.catalog_404 = True``):

- ``auth``: ``"none"``; ``"basic"`` (``username``/``password``, 401 with ``Basic`` challenge);
  ``"token"``: Bearer tokens from the token realm (:class:`~tests.rig.registry_token
  .TokenServer`, reused: it checks the basic login, wants ``service`` and, with
  ``require_scope``, ``scope``, accepts and records ``account``, and signs tokens valid for
  ``token_ttl`` seconds; :meth:`RegistryFront.expire_tokens` expires every token issued so
  far). A missing, expired or too narrow token gets ``401`` with
  ``WWW-Authenticate: Bearer realm=...,service=...,scope=...`` as Distribution sends it.
- ``catalog_404`` / ``catalog_401``: ``/v2/_catalog`` answers 404 (GHCR) or 401 (Docker Hub).
- ``unknown_repo_status`` (401 as Docker Hub, 403, 404): the answer to manifest and tag
  reads of a repository that does not exist yet, even with a valid token. A token that grants
  ``push`` on the repository is exempt (Docker Hub answers those with 404), so pushes of new
  repositories still work through the front.
- ``delay_seconds``: every answer of the registry API waits that long first (a registry
  that is slow but still answers; the token realm is not delayed).
- ``attestation_index``: a manifest PUT by tag of an image manifest (what ``docker push`` and
  buildx without provenance send) is stored under its digest and the tag gets an OCI image
  index listing an ``unknown/unknown`` attestation manifest (annotated
  ``vnd.docker.reference.type: attestation-manifest``, listed *first*) and the image with its
  platform, as buildx pushes with provenance on. A client that does not accept indexes gets
  the platform image instead (as Docker Hub answers; docker 20.10 reads back what it
  pushed). :meth:`RegistryFront.attest` does the same to a tag already in the registry.

Pushes go through the front (request bodies are streamed, ``Location`` headers point at the
front because the ``Host`` header is passed on). The front counts what it answered
(:attr:`RegistryFront.answers`) so tests can check what a client asked.

Nothing here listens on or talks to anything but 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from tests.rig.oci import (
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    attest_tag,
    backend_call,
    digest_of,
)
from tests.rig.registry import RegistryInstance, start_registry
from tests.rig.registry_token import SERVICE, TokenServer

__all__ = ["FrontBehaviour", "RegistryFront", "start_front"]

_IMAGE_MANIFESTS = (OCI_MANIFEST, DOCKER_MANIFEST)
_REPO_PATH = re.compile(r"^/v2/(?P<name>.+?)/(?P<kind>manifests|tags|blobs)(?P<rest>/.*)?$")
#: not passed on (hop-by-hop, the front's own auth, lengths aiohttp sets itself)
_HOP_BY_HOP = frozenset(
    "connection keep-alive proxy-authenticate proxy-authorization te trailer "
    "transfer-encoding upgrade authorization content-length".split()
)
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


@dataclass
class FrontBehaviour:
    """What the front does differently from the real registry (see the module docstring).

    Every field may be changed while the front serves.
    """

    auth: str = "none"
    catalog_404: bool = False
    catalog_401: bool = False
    unknown_repo_status: int = 0
    attestation_index: bool = False
    delay_seconds: float = 0.0

    @property
    def unknown_repo_401(self) -> bool:
        """Docker Hub's 401 for a repository that does not exist yet."""
        return self.unknown_repo_status == 401

    @unknown_repo_401.setter
    def unknown_repo_401(self, on: bool) -> None:
        self.unknown_repo_status = 401 if on else 0


def _error(status: int, code: str, message: str, headers: Mapping[str, str] = {}) -> web.Response:
    body = json.dumps({"errors": [{"code": code, "message": message, "detail": None}]})
    return web.Response(
        status=status, text=body, content_type="application/json", headers=dict(headers)
    )


def _needed(method: str, path: str) -> tuple[str, str, str]:
    """``(type, name, action)`` a request needs: ``registry:catalog:*`` or a repository's."""
    if path.startswith("/v2/_catalog"):
        return "registry", "catalog", "*"
    m = _REPO_PATH.match(path)
    if not m:
        return "", "", ""
    action = {"GET": "pull", "HEAD": "pull", "DELETE": "delete"}.get(method, "push")
    return "repository", m.group("name"), action


def _grants(claims: Mapping[str, Any], kind: str, name: str, action: str) -> bool:
    for entry in claims.get("access") or []:
        if entry.get("type") == kind and entry.get("name") == name:
            actions = entry.get("actions") or []
            if action in actions or "*" in actions:
                return True
    return False


@dataclass
class RegistryFront:
    """The front on 127.0.0.1:<port> over ``backend`` (see the module docstring).

    Attributes:
        backend: the real registry (no auth).
        behaviour: the switches.
        username, password: the login for ``basic`` and for the token realm.
        token_server: the token realm (``token_server.expires_in`` is the tokens' lifetime).
        answers: ``(method, path, status)`` of every answer, in order.
    """

    backend: RegistryInstance
    workdir: Path
    username: str = "front-user"
    password: str = "front-pass"
    behaviour: FrontBehaviour = field(default_factory=FrontBehaviour)
    answers: list[tuple[str, str, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.token_server = TokenServer(
            self.workdir / "token",
            username=self.username,
            password=self.password,
            require_scope=True,
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.port = 0
        self._lock = threading.Lock()
        self._expired_before = 0

    # ------------------------------------------------------------------ addresses
    @property
    def host(self) -> str:
        """``127.0.0.1:<port>`` (what image names use)."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://{self.host}"

    @property
    def token_ttl(self) -> int:
        """Seconds a token is valid."""
        return self.token_server.expires_in

    @token_ttl.setter
    def token_ttl(self, seconds: int) -> None:
        self.token_server.expires_in = seconds

    # ------------------------------------------------------------------ auth
    def _challenge(self, kind: str, name: str, action: str, *, error: str = "") -> dict[str, str]:
        if self.behaviour.auth == "basic":
            return {"WWW-Authenticate": 'Basic realm="fake-front"'}
        params = f'Bearer realm="{self.token_server.realm}",service="{SERVICE}"'
        if kind:
            actions = "pull,push" if action == "push" else action
            params += f',scope="{kind}:{name}:{actions}"'
        if error:
            params += f',error="{error}"'
        return {"WWW-Authenticate": params}

    def _claims(self, request: web.Request) -> dict[str, Any] | None:
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not value:
            return None
        claims = self.token_server.verify(value.strip())
        if claims is not None and int(claims.get("iat", 0)) <= self._expired_before:
            return None
        return claims

    def expire_tokens(self) -> None:
        """Every token issued so far counts as expired from now on (as if their lifetime
        had passed: docker clients keep a token for at least 60 s whatever ``expires_in``
        says, so a short ``token_ttl`` breaks pushes). Tokens issued within the same second
        count as expired too: wait a second before asking for new ones."""
        self._expired_before = int(time.time())

    def _refuse(self, request: web.Request) -> web.Response | None:
        """The 401 for a request the configured auth does not let through, or None."""
        kind, name, action = _needed(request.method, request.path)
        if self.behaviour.auth == "basic":
            expected = (
                "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
            )
            given = request.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), expected.encode()):
                return _error(
                    401, "UNAUTHORIZED", "authentication required", self._challenge("", "", "")
                )
            return None
        if self.behaviour.auth != "token":
            return None
        claims = self._claims(request)
        if claims is not None and (not kind or _grants(claims, kind, name, action)):
            return None
        error = "insufficient_scope" if claims is not None else ""
        return _error(
            401,
            "UNAUTHORIZED",
            "authentication required",
            self._challenge(kind, name, action, error=error),
        )

    # ------------------------------------------------------------------ the proxy
    async def _backend_status(self, method: str, path: str) -> int:
        assert self._session is not None
        async with self._session.request(method, self.backend.url + path) as resp:
            await resp.read()
            return resp.status

    async def _unknown_repo(self, request: web.Request) -> web.Response | None:
        """The hosted registries' answer for reads of a repository that does not exist."""
        status = self.behaviour.unknown_repo_status
        m = _REPO_PATH.match(request.path)
        if (
            not status
            or not m
            or m.group("kind") == "blobs"
            or request.method not in ("GET", "HEAD")
        ):
            return None
        name = m.group("name")
        claims = self._claims(request)
        if claims is not None and _grants(claims, "repository", name, "push"):
            return None
        if await self._backend_status("GET", f"/v2/{name}/tags/list") != 404:
            return None
        if status == 401:
            headers = self._challenge("repository", name, "pull", error="insufficient_scope")
            return _error(401, "UNAUTHORIZED", "authentication required", headers)
        if status == 403:
            return _error(403, "DENIED", "requested access to the resource is denied")
        return _error(status, "NAME_UNKNOWN", "repository name not known to registry")

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if self.behaviour.delay_seconds > 0:
            await asyncio.sleep(self.behaviour.delay_seconds)
        answer: web.StreamResponse | None = self._refuse(request)
        path = request.path
        if answer is None and path.startswith("/v2/_catalog"):
            if self.behaviour.catalog_401:
                kind, name, action = "registry", "catalog", "*"
                answer = _error(
                    401,
                    "UNAUTHORIZED",
                    "authentication required",
                    self._challenge(kind, name, action),
                )
            elif self.behaviour.catalog_404:
                answer = _error(404, "NOT_FOUND", "page not found")
        if answer is None:
            answer = await self._unknown_repo(request)
        if answer is None and self.behaviour.attestation_index:
            answer = await self._attested_put(request) or await self._platform_image(request)
        if answer is None:
            answer = await self._forward(request)
        with self._lock:
            self.answers.append((request.method, path, answer.status))
        return answer

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        # a multidict: Docker sends one Accept header per manifest type, and a registry
        # that sees only the last converts (another digest: pushes then fail)
        headers = CIMultiDict(
            (k, v) for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP
        )
        data: Any = None
        if request.body_exists:
            data = request.content.iter_any()
            if request.content_length is not None:
                headers["Content-Length"] = str(request.content_length)
        url = self.backend.url + request.path_qs
        async with self._session.request(
            request.method, url, headers=headers, data=data, allow_redirects=False
        ) as resp:
            out_headers = {k: v for k, v in resp.headers.items() if k.lower() not in _HOP_BY_HOP}
            if request.method == "HEAD":
                if "Content-Length" in resp.headers:
                    out_headers["Content-Length"] = resp.headers["Content-Length"]
                return web.Response(status=resp.status, headers=out_headers)
            answer = web.StreamResponse(status=resp.status, headers=out_headers)
            if resp.content_length is not None:
                answer.content_length = resp.content_length
            await answer.prepare(request)
            async for chunk in resp.content.iter_any():
                await answer.write(chunk)
            await answer.write_eof()
            return answer

    # ------------------------------------------------------------------ attestations
    async def _backend(
        self, method: str, path: str, *, body: bytes = b"", ctype: str = ""
    ) -> tuple[int, dict[str, str], bytes]:
        assert self._session is not None
        return await backend_call(
            self._session, self.backend.url, method, path, body=body, ctype=ctype
        )

    async def _index_for(self, name: str, tag: str, image: bytes, media_type: str) -> str:
        assert self._session is not None
        return await attest_tag(self._session, self.backend.url, name, tag, image, media_type)

    async def _attested_put(self, request: web.Request) -> web.Response | None:
        m = _REPO_PATH.match(request.path)
        media_type = request.headers.get("Content-Type", "").split(";")[0].strip()
        if not (request.method == "PUT" and m and m.group("kind") == "manifests"):
            return None
        ref = (m.group("rest") or "/").lstrip("/")
        if _DIGEST.match(ref) or media_type not in _IMAGE_MANIFESTS:
            return None
        image = await request.read()
        await self._index_for(m.group("name"), ref, image, media_type)
        digest = digest_of(image)
        return web.Response(
            status=201,
            headers={
                "Docker-Content-Digest": digest,
                "Location": f"/v2/{m.group('name')}/manifests/{digest}",
            },
        )

    async def _platform_image(self, request: web.Request) -> web.Response | None:
        """An index read by a client that does not accept indexes (docker 20.10 reads the
        tag it just pushed) gets the index's platform image, as Docker Hub answers."""
        m = _REPO_PATH.match(request.path)
        accept = request.headers.get("Accept", "")
        if not (m and m.group("kind") == "manifests" and request.method in ("GET", "HEAD")):
            return None
        if OCI_INDEX in accept:
            return None
        name, ref = m.group("name"), (m.group("rest") or "/").lstrip("/")
        status, headers, body = await self._backend("GET", f"/v2/{name}/manifests/{ref}")
        if status != 200 or headers.get("Content-Type", "").split(";")[0] != OCI_INDEX:
            return None
        image = next(
            (e for e in json.loads(body)["manifests"] if e["platform"]["os"] != "unknown"), None
        )
        if image is None:
            return None
        status, headers, body = await self._backend(
            "GET", f"/v2/{name}/manifests/{image['digest']}"
        )
        out = {
            "Content-Type": headers.get("Content-Type", ""),
            "Docker-Content-Digest": image["digest"],
            "Content-Length": str(len(body)),
        }
        return web.Response(
            status=status, body=None if request.method == "HEAD" else body, headers=out
        )

    def attest(self, name: str, tag: str) -> str:
        """Turn ``name:tag`` (an image manifest in the registry) into an attested index.

        Returns:
            The index's digest.
        """

        async def run() -> str:
            status, headers, body = await self._backend("GET", f"/v2/{name}/manifests/{tag}")
            if status != 200:
                raise RuntimeError(f"{name}:{tag} answered {status}")
            media_type = headers.get("Content-Type", "").split(";")[0]
            return await self._index_for(name, tag, body, media_type)

        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(60)

    # ------------------------------------------------------------------ life
    def start(self) -> RegistryFront:
        """Serve on a free port of 127.0.0.1 (and start the token realm) in a thread."""
        self.token_server.start()
        ready = threading.Event()
        errors: list[BaseException] = []

        async def serve() -> None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=600), trust_env=False, auto_decompress=False
            )
            app = web.Application(client_max_size=1024**3)
            app.router.add_route("*", "/{tail:.*}", self._handle)
            self._runner = web.AppRunner(app, access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            server = site._server
            assert server is not None and server.sockets
            self.port = int(server.sockets[0].getsockname()[1])

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(serve())
            except BaseException as e:
                errors.append(e)
                ready.set()
                return
            ready.set()
            loop.run_forever()

        threading.Thread(target=run, daemon=True, name="registry-front").start()
        ready.wait(30)
        if errors:
            raise errors[0]
        return self

    def stop(self) -> None:
        """Stop serving (the backend registry stays; :meth:`close` stops it too)."""
        loop = self._loop
        if loop is None:
            return

        async def down() -> None:
            if self._runner is not None:
                await self._runner.cleanup()
            if self._session is not None:
                await self._session.close()

        asyncio.run_coroutine_threadsafe(down(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        self._loop = None
        self.token_server.stop()

    def close(self) -> None:
        """Stop the front, its token realm and the backend registry."""
        self.stop()
        self.backend.close()

    def answered(self, status: int) -> list[tuple[str, str]]:
        """``(method, path)`` of the answers with ``status`` so far."""
        with self._lock:
            return [(m, p) for m, p, s in self.answers if s == status]


def start_front(
    workdir: Path,
    *,
    behaviour: FrontBehaviour | None = None,
    username: str = "front-user",
    password: str = "front-pass",
) -> RegistryFront:
    """Start a real registry (no auth) under ``workdir`` and a front over it.

    Raises:
        RealPartMissing: no ``docker-registry``.
    """
    backend = start_registry(workdir / "backend")
    front = RegistryFront(
        backend=backend,
        workdir=workdir,
        username=username,
        password=password,
        behaviour=behaviour or FrontBehaviour(),
    )
    try:
        return front.start()
    except BaseException:
        backend.close()
        raise
