"""Registry authentication: anonymous, HTTP basic, and the Bearer token flow.

A request is first sent with what is known to work (a cached token for its scope, or basic
auth once the registry asked for it). A ``401`` carries a challenge
(``WWW-Authenticate: Bearer realm=...,service=...,scope=...`` or ``Basic``) that
:meth:`RegistryAuth.answer` turns into the header to retry with: for Bearer a token is
fetched from the realm (with basic auth when there are credentials) and cached per scope
until shortly before it expires. Concurrent requests needing the same token share one
fetch.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Mapping
from typing import Protocol
from urllib.parse import urlencode, urlsplit

from ..dockerconfig import RegistryCredentials
from .errors import RegistryError, error_detail

__all__ = ["RegistryAuth", "Send", "parse_www_authenticate"]

_AUTH_PARAM_RE = re.compile(r'([A-Za-z][A-Za-z0-9_-]*)=(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))')

#: A token and the ``time.monotonic()`` after which it is not used any more.
_Token = tuple[str, float]


class Send(Protocol):
    """One HTTP exchange of the client (network trouble already a RegistryError)."""

    def __call__(
        self, method: str, url: str, *, headers: Mapping[str, str], redirects: bool = False
    ) -> Awaitable[tuple[int, Mapping[str, str], bytes]]:
        """Send a request; returns ``(status, headers, body)``."""
        ...


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


class RegistryAuth:
    """The ``Authorization`` headers of one client: basic, or Bearer tokens per scope.

    Args:
        credentials: login for basic auth and token requests; None: anonymous.
        send: the client's HTTP exchange (token requests follow redirects).
    """

    def __init__(self, credentials: RegistryCredentials | None, *, send: Send) -> None:
        self.credentials = credentials
        self._send = send
        self._basic = False  # the registry asked for basic auth
        self._tokens: dict[str, _Token] = {}
        self._token_fetches: dict[str, asyncio.Future[_Token]] = {}

    def clear(self) -> None:
        """Forget cached tokens (the client closed)."""
        self._tokens.clear()

    def header(self, scope: str | None) -> str | None:
        """What to send before any challenge: a cached token for the scope, or basic.

        Returns:
            The ``Authorization`` value, or None (anonymous).
        """
        cached = self._tokens.get(scope or "")
        if cached is not None and cached[1] > time.monotonic():
            return f"Bearer {cached[0]}"
        if self._basic and self.credentials is not None:
            return self.credentials.basic_header()
        return None

    async def answer(self, challenge: str, *, scope: str | None, refused: str | None) -> str | None:
        """The ``Authorization`` value that answers a ``401`` challenge.

        Args:
            challenge: the ``WWW-Authenticate`` header.
            scope: the scope the request needs (the token is cached under it).
            refused: the header the 401 answered, if any.

        Returns:
            The header to retry with; None when there is nothing new to try (the same
            basic login was refused).

        Raises:
            RegistryError: ``auth`` (a login is needed but there is none, the token server
                refused, unsupported scheme); the token server's other failures.
        """
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
            self._tokens[scope or ""] = token
            return f"Bearer {token[0]}"
        raise RegistryError(
            f"the registry asked for unsupported authentication {challenge[:100]!r}",
            kind="auth",
            status=401,
        )

    async def _token(self, realm: str, *, service: str, scope: str) -> _Token:
        """Fetch a bearer token from ``realm`` (one request per realm/service/scope at a time)."""
        key = f"{realm} {service} {scope}"
        pending = self._token_fetches.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[_Token] = asyncio.get_running_loop().create_future()
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

    def _token_url(self, realm: str, *, service: str, scope: str) -> str:
        query: list[tuple[str, str]] = []
        if service:
            query.append(("service", service))
        for one in scope.split():
            query.append(("scope", one))
        if self.credentials is not None:
            query.append(("account", self.credentials.username))
        return realm + ("&" if "?" in realm else "?") + urlencode(query) if query else realm

    async def _fetch_token(self, realm: str, *, service: str, scope: str) -> _Token:
        if urlsplit(realm).scheme not in ("http", "https"):
            raise RegistryError(f"token realm {realm!r} is not an http(s) URL", kind="auth")
        url = self._token_url(realm, service=service, scope=scope)
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
            _, detail = error_detail(body)
            raise RegistryError(
                f"the registry's token server {urlsplit(realm).netloc} answered {status}: {detail}",
                kind="unreachable" if status in (502, 503, 504) else "error",
                status=status,
            )
        return _read_token(body, realm=realm, status=status)


def _read_token(body: bytes, *, realm: str, status: int) -> _Token:
    """The token of a token server's answer and when to stop using it."""
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
