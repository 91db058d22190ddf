"""Registries for the registry-mode tests: CNCF Distribution (Debian's ``docker-registry``)
instances on loopback ports, with no auth, htpasswd (basic) auth, or token auth served by a
small JWT token server in this process.

- :func:`start_registry` writes a config (filesystem storage, deletes enabled unless told
  otherwise) and starts ``docker-registry serve`` on ``127.0.0.1:<free port>``.
- :class:`TokenServer` implements the Docker token flow's token endpoint
  (``GET /token?service=...&scope=...`` with basic auth) and signs ES256 JWTs with a
  self-signed certificate made with ``cryptography``; the registry trusts that certificate
  (``auth.token.rootcertbundle``) and the token carries it in its ``x5c`` header.

Nothing here listens on or talks to anything but 127.0.0.1.
"""

from __future__ import annotations

import base64
import datetime as dt
import hmac
import json
import os
import secrets
import shutil
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.hub.hubrig import free_port
from tests.realparts import RealPartMissing

SERVICE = "r2ds-test-registry"
ISSUER = "r2ds-test-token-issuer"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# ---------------------------------------------------------------------------------- tokens
class _TokenHandler(BaseHTTPRequestHandler):
    server: _TokenHTTPD
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send(self, status: int, body: dict, headers: dict[str, str] | None = None) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(raw)

    def do_GET(self) -> None:
        ts = self.server.token_server
        path, _, query = self.path.partition("?")
        params = urllib.parse.parse_qs(query)
        if path != "/token":
            self._send(404, {"error": "not found"})
            return
        user = None
        header = self.headers.get("Authorization", "")
        if header:
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
            if not ok:
                ts.record(None, params, 401)
                self._send(401, {"errors": [{"code": "UNAUTHORIZED", "message": "bad login"}]})
                return
            user = name
        if user is None and not ts.anonymous_pull:
            ts.record(None, params, 401)
            self._send(401, {"errors": [{"code": "UNAUTHORIZED", "message": "login needed"}]})
            return
        if params.get("service", [""])[0] != SERVICE:
            ts.record(user, params, 400)
            self._send(400, {"errors": [{"code": "DENIED", "message": "unknown service"}]})
            return
        access = []
        for scope in params.get("scope", []):
            for one in scope.split(" "):
                parts = one.split(":")
                if len(parts) < 3:
                    continue
                kind, name, actions = parts[0], ":".join(parts[1:-1]), parts[-1].split(",")
                if user is None:
                    actions = [a for a in actions if a == "pull"]
                access.append({"type": kind, "name": name, "actions": actions})
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


class _TokenHTTPD(ThreadingHTTPServer):
    daemon_threads = True
    token_server: TokenServer


@dataclass
class TokenServer:
    """A Docker registry token endpoint on 127.0.0.1 signing ES256 JWTs.

    Authenticated users (``username``/``password``) get every action they ask for;
    anonymous requests get 401 unless ``anonymous_pull`` (then pull only).
    """

    workdir: Path
    username: str
    password: str
    anonymous_pull: bool = False
    expires_in: int = 300
    requests: list[tuple[str | None, dict, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        self.workdir.mkdir(parents=True, exist_ok=True)
        self._key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ISSUER)])
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        self.cert_path = self.workdir / "token-cert.pem"
        self.cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        self._x5c = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
        self._httpd: _TokenHTTPD | None = None
        self._lock = threading.Lock()

    def record(self, user: str | None, params: dict, status: int) -> None:
        with self._lock:
            self.requests.append((user, params, status))

    def sign(self, *, subject: str, access: list[dict]) -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

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

    def start(self) -> TokenServer:
        httpd = _TokenHTTPD(("127.0.0.1", 0), _TokenHandler)
        httpd.token_server = self
        self._httpd = httpd
        threading.Thread(target=httpd.serve_forever, daemon=True, name="token-server").start()
        return self

    @property
    def realm(self) -> str:
        assert self._httpd is not None
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/token"

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None


# ---------------------------------------------------------------------------------- registry
@dataclass
class RegistryInstance:
    """One ``docker-registry serve`` process on 127.0.0.1:<port>."""

    workdir: Path
    port: int
    auth: str | None
    username: str = ""
    password: str = ""
    delete: bool = True
    token_server: TokenServer | None = None
    proc: subprocess.Popen | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def config_path(self) -> Path:
        return self.workdir / "config.yml"

    def write_config(self) -> None:
        lines = [
            "version: 0.1",
            "log:",
            "  level: warn",
            "  accesslog:",
            "    disabled: true",
            "storage:",
            "  filesystem:",
            f"    rootdirectory: {self.workdir / 'data'}",
            "  delete:",
            f"    enabled: {'true' if self.delete else 'false'}",
            "http:",
            f"  addr: 127.0.0.1:{self.port}",
        ]
        if self.auth == "htpasswd":
            htpasswd = self.workdir / "htpasswd"
            if shutil.which("htpasswd") is None:
                raise RealPartMissing("htpasswd missing", "apt-get install apache2-utils")
            subprocess.run(
                ["htpasswd", "-B", "-i", "-c", str(htpasswd), self.username],
                input=self.password,
                text=True,
                check=True,
                capture_output=True,
            )
            lines += [
                "auth:",
                "  htpasswd:",
                "    realm: r2ds-test",
                f"    path: {htpasswd}",
            ]
        elif self.auth == "token":
            assert self.token_server is not None
            lines += [
                "auth:",
                "  token:",
                f"    realm: {self.token_server.realm}",
                f"    service: {SERVICE}",
                f"    issuer: {ISSUER}",
                f"    rootcertbundle: {self.token_server.cert_path}",
            ]
        self.config_path.write_text("\n".join(lines) + "\n")

    def start(self, *, timeout: float = 30) -> RegistryInstance:
        """Start (or restart) the process on the same port and storage; wait for ``/v2/``."""
        if shutil.which("docker-registry") is None:
            raise RealPartMissing("docker-registry missing", "apt-get install docker-registry")
        self.workdir.mkdir(parents=True, exist_ok=True)
        if not self.config_path.exists():
            self.write_config()
        log = open(self.workdir / "registry.log", "ab")
        self.proc = subprocess.Popen(
            ["docker-registry", "serve", str(self.config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"docker-registry exited with {self.proc.returncode}: "
                    + (self.workdir / "registry.log").read_text(errors="replace")[-2000:]
                )
            try:
                opener.open(f"{self.url}/v2/", timeout=2).close()
                return self
            except urllib.error.HTTPError as e:
                if e.code == 401:
                    return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"registry on {self.host} did not answer in {timeout} s")
            time.sleep(0.1)

    def stop(self) -> None:
        """Stop the process (storage stays: :meth:`start` brings the same registry back)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.proc = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def start_registry(
    workdir: Path,
    *,
    auth: str | None = None,
    username: str = "",
    password: str = "",
    delete: bool = True,
    anonymous_pull: bool = False,
    port: int | None = None,
) -> RegistryInstance:
    """Start a registry on a free loopback port; ``auth`` is None, "htpasswd" or "token"."""
    token_server = None
    if auth == "token":
        token_server = TokenServer(
            workdir / "token", username=username, password=password, anonymous_pull=anonymous_pull
        ).start()
    reg = RegistryInstance(
        workdir=workdir,
        port=port or free_port(),
        auth=auth,
        username=username,
        password=password,
        delete=delete,
        token_server=token_server,
    )
    try:
        return reg.start()
    except BaseException:
        if token_server is not None:
            token_server.stop()
        raise
