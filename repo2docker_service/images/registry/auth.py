"""Registry authentication: anonymous, HTTP basic, and the Bearer token flow.

A request is first sent with what is known to work (a cached token for its scope, or basic
auth once the registry asked for it). A ``401`` carries a challenge
(``WWW-Authenticate: Bearer realm=...,service=...,scope=...`` or ``Basic``) that
:meth:`RegistryAuth.answer` turns into the header to retry with: for Bearer a token is
fetched from the realm (with basic auth when there are credentials; with an identity token,
a POST of distribution's OAuth2 ``refresh_token`` grant) and cached per scope until shortly
before it expires. Concurrent requests needing the same token share one fetch.

The login comes from a :class:`~..registrylogin.RegistryLogin`: when the token server (or
the registry, for basic auth) refuses it, it is read again once (a credential helper's
secret may have been renewed) before the refusal is reported.
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
from ..registrylogin import CredentialHelperError, RegistryLogin
from .errors import RegistryError, error_detail

__all__ = ["RegistryAuth", "Send", "parse_www_authenticate"]

_AUTH_PARAM_RE = re.compile(r'([A-Za-z][A-Za-z0-9_-]*)=(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))')

#: A token and the ``time.monotonic()`` after which it is not used any more.
_Token = tuple[str, float]


class Send(Protocol):
    """One HTTP exchange of the client (network trouble already a RegistryError)."""

    def __call__(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        data: bytes | None = None,
        max_body: int = 4 * 1024 * 1024,
        redirects: bool = False,
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
        login: where the login comes from (read again when refused).
        send: the client's HTTP exchange (token requests follow redirects).
    """

    def __init__(self, login: RegistryLogin, *, send: Send) -> None:
        self.login = login
        self._send = send
        self._basic = False  # the registry asked for basic auth
        self._tokens: dict[str, _Token] = {}
        self._token_fetches: dict[str, asyncio.Future[_Token]] = {}
        self._basic_ok: str | None = None  # a basic header the registry accepted

    @property
    def credentials(self) -> RegistryCredentials | None:
        """The login as last read (None: anonymous)."""
        return self.login.current

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
        credentials = self.login.current
        if self._basic and credentials is not None and not credentials.identity_token:
            return credentials.basic_header()
        return None

    async def send(
        self,
        method: str,
        target: str,
        *,
        headers: Mapping[str, str],
        data: bytes | None,
        max_body: int,
        scope: str | None,
    ) -> tuple[int, Mapping[str, str], bytes, str | None]:
        """One request with its challenges answered: ``(status, headers, body, the
        Authorization value sent last)``. A fresh token that gets a 401 is not replaced.

        Raises:
            RegistryError: as :meth:`answer`, and the exchange's network trouble.
        """
        sent = self.header(scope)
        for attempt in (1, 2, 3):
            auth = {"Authorization": sent} if sent else {}
            status, answer_headers, body = await self._send(
                method, target, headers={**headers, **auth}, data=data, max_body=max_body
            )
            fresh_token = attempt > 1 and bool(sent and sent.startswith("Bearer "))
            if status != 401 or attempt == 3 or fresh_token:
                break
            challenge = answer_headers.get("WWW-Authenticate", "")
            retry = await self.answer(challenge, scope=scope, refused=sent)
            if retry is None:  # nothing new to try: the login was refused
                break
            sent = retry
        if status < 300 and sent and sent.startswith("Basic "):
            self._basic_ok = sent
        return status, answer_headers, body, sent

    async def accepted(self, sent: str | None, *, api_url: str) -> bool:
        """Whether the registry accepted the login of a request that was refused: no login
        was asked for, its token request succeeded (a Bearer token), or the basic login
        opens ``/v2/`` (asked once per login)."""
        if sent is None or sent.startswith("Bearer ") or sent == self._basic_ok:
            return True
        status, _, _ = await self._send("GET", f"{api_url}/v2/", headers={"Authorization": sent})
        if status < 300:
            self._basic_ok = sent
        return status < 300

    async def read_login(self, *, refresh: bool = False) -> RegistryCredentials | None:
        """The login now (read again when due or ``refresh``).

        Raises:
            RegistryError: ``auth``: the credential helper failed, the config is unreadable.
        """
        try:
            return await self.login.get(refresh=refresh)
        except (CredentialHelperError, ValueError, OSError) as e:
            raise RegistryError(
                f"cannot read the registry login: {e}", kind="auth", status=None
            ) from None

    async def answer(self, challenge: str, *, scope: str | None, refused: str | None) -> str | None:
        """The ``Authorization`` value that answers a ``401`` challenge.

        Args:
            challenge: the ``WWW-Authenticate`` header.
            scope: the scope the request needs (the token is cached under it).
            refused: the header the 401 answered, if any.

        Returns:
            The header to retry with; None when there is nothing new to try (the same
            basic login was refused, also after reading the login again).

        Raises:
            RegistryError: ``auth`` (a login is needed but there is none, the token server
                refused, unsupported scheme); the token server's other failures.
        """
        scheme, params = parse_www_authenticate(challenge)
        if scheme == "basic":
            return await self._basic_answer(refused)
        if scheme == "bearer" and params.get("realm"):
            # a challenge without a scope (``/v2/``) gets the request's: realms that want
            # a scope refuse a token request without one
            token = await self._token(
                params["realm"],
                service=params.get("service", ""),
                scope=params.get("scope") or scope or "",
            )
            self._tokens[scope or ""] = token
            return f"Bearer {token[0]}"
        raise RegistryError(
            f"the registry asked for unsupported authentication {challenge[:100]!r}",
            kind="auth",
            status=401,
        )

    async def _basic_answer(self, refused: str | None) -> str | None:
        credentials = await self.read_login()
        header = _basic(credentials)
        if header is not None and refused == header and self.login.rereadable:
            header = _basic(await self.read_login(refresh=True))
        if header is None:
            raise RegistryError(
                "the registry requires a login (basic auth): set registry_username and "
                "registry_password, or registry_config_file",
                kind="auth",
                status=401,
            )
        self._basic = True
        return None if refused == header else header

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

    async def _fetch_token(self, realm: str, *, service: str, scope: str) -> _Token:
        """A token; a refusal reads the login again once and retries if it changed."""
        if urlsplit(realm).scheme not in ("http", "https"):
            raise RegistryError(f"token realm {realm!r} is not an http(s) URL", kind="auth")
        credentials = await self.read_login()
        status, body = await self._token_request(realm, service, scope, credentials)
        if status in (401, 403) and self.login.rereadable:
            again = await self.read_login(refresh=True)
            if again != credentials:
                credentials = again
                status, body = await self._token_request(realm, service, scope, credentials)
        if status in (401, 403):
            who = "the configured credentials" if credentials else "anonymous access"
            raise RegistryError(
                f"the registry's token server {urlsplit(realm).netloc} refused {who} "
                f"(HTTP {status}); check registry_username/registry_password or the "
                "docker config's login (credential helper)",
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

    async def _token_request(
        self, realm: str, service: str, scope: str, credentials: RegistryCredentials | None
    ) -> tuple[int, bytes]:
        """One token request: GET with basic auth, or (identity token) the OAuth2 POST."""
        if credentials is not None and credentials.identity_token:
            form: list[tuple[str, str]] = [
                ("grant_type", "refresh_token"),
                ("service", service),
                ("client_id", "repo2docker-service"),
                ("refresh_token", credentials.identity_token),
            ]
            form += [("scope", one) for one in scope.split()]
            status, _, body = await self._send(
                "POST",
                realm,
                headers={"Content-Type": "application/x-www-form-urlencoded"},
                data=urlencode(form).encode(),
                redirects=True,
            )
            return status, body
        query: list[tuple[str, str]] = [("service", service)] if service else []
        query += [("scope", one) for one in scope.split()]
        headers = {}
        if credentials is not None:
            query.append(("account", credentials.username))
            headers["Authorization"] = credentials.basic_header()
        url = realm + ("&" if "?" in realm else "?") + urlencode(query) if query else realm
        status, _, body = await self._send("GET", url, headers=headers, redirects=True)
        return status, body


def _basic(credentials: RegistryCredentials | None) -> str | None:
    """The basic ``Authorization`` value of a login (None: none, or an identity token)."""
    if credentials is None or credentials.identity_token:
        return None
    return credentials.basic_header()


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
