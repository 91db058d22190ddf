"""The token endpoint of the Docker registry token flow, for registries with token auth.

:class:`TokenServer` answers ``GET /token?service=...&scope=...`` (with basic auth) and signs
ES256 JWTs with a self-signed certificate made with ``cryptography``; the registry trusts that
certificate (``auth.token.rootcertbundle``) and the token carries it in its ``x5c`` header.

Nothing here listens on anything but 127.0.0.1.
"""

from __future__ import annotations

import base64
import datetime as dt
import hmac
import json
import secrets
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.x509.oid import NameOID

SERVICE = "r2ds-test-registry"
ISSUER = "r2ds-test-token-issuer"

Params = dict[str, list[str]]


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _requested_access(
    params: Params, *, anonymous: bool, revoked: frozenset[str] = frozenset()
) -> list[dict[str, Any]]:
    """The ``access`` claim for the ``scope`` parameters; anonymous callers get pull only;
    nothing on a ``revoked`` repository (the token is still issued: the token spec grants
    the subset of what was asked that the caller may have)."""
    access: list[dict[str, Any]] = []
    for scope in params.get("scope", []):
        for one in scope.split(" "):
            parts = one.split(":")
            if len(parts) < 3:
                continue
            kind, name, actions = parts[0], ":".join(parts[1:-1]), parts[-1].split(",")
            if anonymous:
                actions = [a for a in actions if a == "pull"]
            if kind == "repository" and name in revoked:
                continue
            access.append({"type": kind, "name": name, "actions": actions})
    return access


class _TokenHandler(BaseHTTPRequestHandler):
    server: _TokenHTTPD
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send(self, status: int, body: dict[str, Any]) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def _deny(self, user: str | None, params: Params, status: int, code: str, msg: str) -> None:
        self.server.token_server.record(user, params, status)
        self._send(status, {"errors": [{"code": code, "message": msg}]})

    def _login(self) -> tuple[bool, str | None]:
        """(credentials acceptable, user): no Authorization header is (True, None)."""
        ts = self.server.token_server
        header = self.headers.get("Authorization", "")
        if not header:
            return True, None
        scheme, _, value = header.partition(" ")
        try:
            name, _, password = base64.b64decode(value).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            name, password = "", ""
        ok = (
            scheme.lower() == "basic"
            and hmac.compare_digest(name.encode(), ts.username.encode())
            and hmac.compare_digest(password.encode(), ts.password.encode())
        )
        return ok, (name if ok else None)

    def do_GET(self) -> None:
        ts = self.server.token_server
        path, _, query = self.path.partition("?")
        params = urllib.parse.parse_qs(query)
        if path != "/token":
            self._send(404, {"error": "not found"})
            return
        ok, user = self._login()
        if not ok:
            self._deny(None, params, 401, "UNAUTHORIZED", "bad login")
            return
        if user is None and not ts.anonymous_pull:
            self._deny(None, params, 401, "UNAUTHORIZED", "login needed")
            return
        if params.get("service", [""])[0] != SERVICE:
            self._deny(user, params, 400, "DENIED", "unknown service")
            return
        if ts.require_scope and not params.get("scope"):
            self._deny(user, params, 400, "DENIED", "scope missing")
            return
        access = _requested_access(params, anonymous=user is None, revoked=frozenset(ts.revoked))
        token = ts.sign(subject=user or "", access=access)
        ts.record(user, params, 200)
        self._send(
            200,
            {
                "token": token,
                "access_token": token,
                "expires_in": ts.expires_in,
                "issued_at": dt.datetime.now(dt.UTC).isoformat(),
            },
        )

    def do_POST(self) -> None:
        """The OAuth2 ``refresh_token`` grant (distribution's token spec): an identity token
        in place of the basic login."""
        ts = self.server.token_server
        length = int(self.headers.get("Content-Length") or 0)
        params = urllib.parse.parse_qs(self.rfile.read(length).decode())
        if self.path.partition("?")[0] != "/token":
            self._send(404, {"error": "not found"})
            return
        given = params.get("refresh_token", [""])[0]
        if (
            params.get("grant_type") != ["refresh_token"]
            or not ts.identity_token
            or not hmac.compare_digest(given.encode(), ts.identity_token.encode())
        ):
            self._deny(None, params, 401, "UNAUTHORIZED", "bad refresh token")
            return
        if params.get("service", [""])[0] != SERVICE:
            self._deny(ts.username, params, 400, "DENIED", "unknown service")
            return
        access = _requested_access(params, anonymous=False, revoked=frozenset(ts.revoked))
        token = ts.sign(subject=ts.username, access=access)
        ts.record(ts.username, params, 200)
        self._send(200, {"access_token": token, "expires_in": ts.expires_in})


class _TokenHTTPD(ThreadingHTTPServer):
    daemon_threads = True
    token_server: TokenServer


def _self_signed(key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ISSUER)])
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )


@dataclass
class TokenServer:
    """A Docker registry token endpoint on 127.0.0.1 signing ES256 JWTs.

    Authenticated users (``username``/``password``) get every action they ask for;
    anonymous requests get 401 unless ``anonymous_pull`` (then pull only). With
    ``require_scope`` a request without ``scope`` is refused (400), as Docker Hub's token
    server does for requests it cannot grant anything. ``account`` is accepted (and
    recorded) as docker sends it. ``requests`` records ``(user, query parameters, status)``
    of every answer. Fields may be changed while it serves (e.g. a new ``password``, a
    shorter ``expires_in``); :meth:`verify` checks the tokens it signed. A POST with the
    OAuth2 ``refresh_token`` grant is accepted when the token is ``identity_token``.
    Repositories in ``revoked`` get no access in tokens (what a login that lost access to
    one repository gets from Docker Hub's realm).
    """

    workdir: Path
    username: str
    password: str
    anonymous_pull: bool = False
    expires_in: int = 300
    require_scope: bool = False
    identity_token: str = ""
    #: repositories the login lost access to: tokens are issued, granting nothing there
    revoked: set[str] = field(default_factory=set)
    requests: list[tuple[str | None, Params, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._key = ec.generate_private_key(ec.SECP256R1())
        cert = _self_signed(self._key)
        self.cert_path = self.workdir / "token-cert.pem"
        self.cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        self._x5c = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
        self._httpd: _TokenHTTPD | None = None
        self._lock = threading.Lock()

    def record(self, user: str | None, params: Params, status: int) -> None:
        """Remember one answer (thread-safe)."""
        with self._lock:
            self.requests.append((user, params, status))

    def sign(self, *, subject: str, access: list[dict[str, Any]]) -> str:
        """A JWT for ``subject`` granting ``access``, valid for ``expires_in`` seconds."""
        now = int(time.time())
        header = {"typ": "JWT", "alg": "ES256", "x5c": [self._x5c]}
        claims = {
            "iss": ISSUER,
            "sub": subject,
            "aud": SERVICE,
            "exp": now + self.expires_in,
            "nbf": now - 10,
            "iat": now,
            "jti": secrets.token_hex(8),
            "access": access,
        }
        signing_input = (
            _b64url(json.dumps(header).encode()) + "." + _b64url(json.dumps(claims).encode())
        )
        der = self._key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        return signing_input + "." + _b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))

    def verify(self, token: str) -> dict[str, Any] | None:
        """The claims of a token this server signed and that has not expired (no leeway).

        Returns:
            The claims, or None (bad signature, another audience, expired, malformed).
        """
        try:
            head, body, sig = token.split(".")
            raw = base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4))
            der = encode_dss_signature(
                int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
            )
            self._key.public_key().verify(der, f"{head}.{body}".encode(), ec.ECDSA(hashes.SHA256()))
            claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        except (ValueError, InvalidSignature):
            return None
        if not isinstance(claims, dict) or claims.get("aud") != SERVICE:
            return None
        return claims if float(claims.get("exp", 0)) > time.time() else None

    def start(self) -> TokenServer:
        """Listen on a free port of 127.0.0.1 and serve in a background thread."""
        httpd = _TokenHTTPD(("127.0.0.1", 0), _TokenHandler)
        httpd.token_server = self
        self._httpd = httpd
        threading.Thread(target=httpd.serve_forever, daemon=True, name="token-server").start()
        return self

    @property
    def realm(self) -> str:
        """The token endpoint's URL (for the registry's ``auth.token.realm``)."""
        assert self._httpd is not None
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/token"

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
