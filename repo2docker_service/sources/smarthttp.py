"""git's protocol v2 ``ls-refs`` over smart HTTP, on kept-alive connections.

How a listing goes (gitprotocol-v2, "HTTP Transport"; gitprotocol-http, "Smart Clients"):

1. ``GET <repo>/info/refs?service=git-upload-pack`` with ``Git-Protocol: version=2``: the
   capability advertisement (``version 2``, ``ls-refs``, ``object-format``...). A server
   that answers with a v0/v1 ref advertisement (or a dumb server, or anything but 200)
   does not speak v2 to us: :class:`NotServed`.
2. ``POST <repo>/git-upload-pack`` with ``Git-Protocol: version=2`` and the pkt-lines
   ``command=ls-refs``, delim, ``peel``, ``ref-prefix <p>``..., flush. The answer lists
   ``<oid> <refname>[ peeled:<oid>]`` lines up to a flush.

Protocol v2 is stateless over HTTP ("Clients MUST NOT require state to be kept on server
side"): the advertisement of step 1 says what the server can do, not where its refs are, so
:class:`SmartHTTPClient` asks for it once per repository and then answers each listing with
step 2 alone, one round trip on a kept-alive connection. The refs themselves are never
kept: every listing asks the server. When a step-2 request fails the advertisement is
forgotten, so a server that changed is asked again next time.

Why own code: dulwich's ``HttpGitClient.get_refs`` speaks v2 ``ls-refs`` with ref prefixes
and pools connections (urllib3), but it is synchronous (every resolution would hold a
thread) and repeats step 1 on every call (two round trips). The service already has an
async HTTP client (aiohttp, per-host kept-alive connection pools); only the pkt-line
framing (four hex digits of length) is written here.

Credentials go in an ``Authorization: Basic`` header sent only to the repository's own
``scheme://host:port`` (redirects are never followed), never in a URL or a message.
"""

from __future__ import annotations

import base64
import ssl
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from .._version import __version__
from .credentials import GitCredentials
from .refs import FULL_SHA_RE

__all__ = ["NotServed", "SmartHTTPClient", "parse_pkt_lines", "pkt_line"]

#: The largest ``ls-refs`` answer read, in bytes (a listing of every branch and tag of a
#: very large repository); a larger one is :class:`NotServed` (``git ls-remote`` reads it).
MAX_ANSWER_BYTES = 32 * 1024 * 1024
#: How many repositories' capability advertisements are kept (least recently used go).
MAX_REMEMBERED = 1024

_FLUSH, _DELIM, _RESPONSE_END = b"0000", b"0001", b"0002"
_ADVERTISEMENT = "application/x-git-upload-pack-advertisement"
_RESULT = "application/x-git-upload-pack-result"


class NotServed(Exception):
    """This path cannot answer (no v2, an HTTP error, a redirect, an odd answer): the
    caller asks ``git ls-remote``, whose answer and errors are the reference. The message
    names the reason without any secret.

    Attributes:
        no_v2: the server answered, without protocol v2 (a v0/v1 or dumb server): asking it
            with v2 again is pointless.
    """

    def __init__(self, reason: str, *, no_v2: bool = False) -> None:
        super().__init__(reason)
        self.no_v2 = no_v2


def pkt_line(data: bytes) -> bytes:
    """One pkt-line: four lowercase hex digits of length (including themselves), then
    ``data`` (gitprotocol-common, "pkt-line Format")."""
    return b"%04x" % (len(data) + 4) + data


def parse_pkt_lines(data: bytes) -> list[bytes | None]:
    """Split ``data`` into pkt-lines; flush, delim and response-end packets are None.

    Raises:
        NotServed: a length is not hex, or is shorter than 4 or runs past the end.
    """
    out: list[bytes | None] = []
    at = 0
    while at < len(data):
        head = data[at : at + 4]
        if head in (_FLUSH, _DELIM, _RESPONSE_END):
            out.append(None)
            at += 4
            continue
        try:
            size = int(head, 16)
        except ValueError:
            raise NotServed("malformed pkt-line length") from None
        if size < 4 or at + size > len(data):
            raise NotServed("truncated pkt-line")
        out.append(data[at + 4 : at + size])
        at += size
    return out


def _v2_capabilities(body: bytes) -> frozenset[str]:
    """The capabilities of a v2 advertisement (after an optional ``# service=`` block).

    Raises:
        NotServed: it is a v0/v1 ref advertisement, or v2 without ``ls-refs``.
    """
    lines = [p.rstrip(b"\n") if p is not None else None for p in parse_pkt_lines(body)]
    if lines and lines[0] is not None and lines[0].startswith(b"# service="):
        lines = lines[lines.index(None) + 1 :] if None in lines else []
    if not lines or lines[0] != b"version 2":
        raise NotServed("the server answered without protocol v2", no_v2=True)
    caps = frozenset(p.decode("utf-8", "replace") for p in lines[1:] if p is not None)
    if not any(c == "ls-refs" or c.startswith("ls-refs=") for c in caps):
        raise NotServed("the server's protocol v2 has no ls-refs", no_v2=True)
    return caps


def _ls_refs_body(caps: frozenset[str], prefixes: Sequence[str], *, symrefs: bool = False) -> bytes:
    command = [b"command=ls-refs\n"]
    if any(c.startswith("agent=") for c in caps):
        command.append(f"agent=repo2docker-service/{__version__}\n".encode())
    if "object-format=sha1" in caps:
        command.append(b"object-format=sha1\n")
    args = [b"peel\n", *([b"symrefs\n"] if symrefs else [])]
    args += [f"ref-prefix {p}\n".encode() for p in prefixes]
    return b"".join(map(pkt_line, command)) + _DELIM + b"".join(map(pkt_line, args)) + _FLUSH


def _parse_ls_refs(body: bytes) -> tuple[dict[str, str], dict[str, str]]:
    """``({refname: oid}, {symref: target})`` of an ls-refs answer, in the server's order; a
    peeled tag also as ``<name>^{}`` (as ``git ls-remote`` prints it).

    Raises:
        NotServed: an ``ERR`` packet, or a line that is not ``<oid> <refname>...``.
    """
    refs: dict[str, str] = {}
    symrefs: dict[str, str] = {}
    for packet in parse_pkt_lines(body):
        if packet is None:
            break
        line = packet.rstrip(b"\n").decode("utf-8", "replace")
        if line.startswith("ERR "):
            raise NotServed(f"the server said: {line[4:200]}")
        oid, _, rest = line.partition(" ")
        name, *attributes = rest.split(" ")
        if not FULL_SHA_RE.fullmatch(oid) or not name:
            raise NotServed("malformed ls-refs line")
        refs.setdefault(name, oid.lower())
        for attribute in attributes:
            key, _, value = attribute.partition(":")
            if key == "peeled" and FULL_SHA_RE.fullmatch(value):
                refs.setdefault(f"{name}^{{}}", value.lower())
            elif key == "symref-target" and value:
                symrefs.setdefault(name, value)
    return refs, symrefs


@dataclass(frozen=True, slots=True)
class _Endpoint:
    """Where one repository's requests go and how they travel."""

    base: str  # the repository URL without query, fragment or trailing '/'
    proxy: str | None
    ssl: ssl.SSLContext | bool


class SmartHTTPClient:
    """Lists refs of http(s) repositories with protocol v2 ``ls-refs`` (module doc).

    Owns one aiohttp session: a kept-alive connection pool per ``scheme://host:port`` (and
    TLS context); :meth:`close` it.

    Args:
        keepalive_timeout: seconds an idle connection stays open for the next request.
    """

    def __init__(self, *, keepalive_timeout: float = 60) -> None:
        self._keepalive = keepalive_timeout
        self._session: aiohttp.ClientSession | None = None
        self._caps: OrderedDict[str, frozenset[str]] = OrderedDict()
        self._contexts: dict[tuple[str | None, str | None], ssl.SSLContext] = {}

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = (
                aiohttp.TCPConnector(keepalive_timeout=self._keepalive)
                if self._keepalive > 0
                else aiohttp.TCPConnector(force_close=True)
            )
            self._session = aiohttp.ClientSession(
                connector=connector, auto_decompress=True, trust_env=False
            )
        return self._session

    async def close(self) -> None:
        """Close the connections (the client may be used again: it reopens)."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    def remembers(self, repo: str) -> bool:
        """Whether ``repo``'s capability advertisement is known (a listing is one request)."""
        return repo in self._caps

    async def ls_refs(
        self,
        repo: str,
        prefixes: Sequence[str],
        *,
        credentials: GitCredentials | None,
        env: Mapping[str, str],
        timeout: float,  # noqa: ASYNC109 - one budget for both requests
        symrefs: bool = False,
    ) -> tuple[dict[str, str], dict[str, str]]:
        """The refs of ``repo`` starting with any of ``prefixes``, asked now.

        Args:
            repo: an ``http``/``https`` repository URL (checked by ``validate_repo_url``).
            prefixes: ``ref-prefix`` arguments (``HEAD``, ``refs/heads/main``, ...).
            credentials: sent as ``Authorization: Basic`` to the repository's origin.
            env: where proxies (``https_proxy``, ``no_proxy``...) and CA files
                (``GIT_SSL_CAINFO``/``GIT_SSL_CAPATH``, else ``SSL_CERT_FILE``/``_DIR``, else
                the system's) are read, as git reads them.
            timeout: seconds for the whole listing.
            symrefs: also ask where symbolic refs point (``HEAD`` -> ``refs/heads/main``).

        Returns:
            ``({refname: sha}, {symref: target})``, in the server's order; annotated tags
            also as ``refname^{}`` (their commit); the second is empty unless ``symrefs``.

        Raises:
            NotServed: see the class; ``git ls-remote`` is the one to ask then.
            TimeoutError: ``timeout`` passed.
        """
        endpoint = self._endpoint(repo, env)
        headers = {
            "Git-Protocol": "version=2",
            "User-Agent": f"git/repo2docker-service-{__version__}",
        }
        if credentials is not None:
            token = f"{credentials.username}:{credentials.password}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(token).decode("ascii")
        budget = aiohttp.ClientTimeout(total=timeout)
        caps = self._caps.get(repo)
        if caps is None:
            caps = await self._advertisement(endpoint, headers, budget)
            self._remember(repo, caps)
        else:
            self._caps.move_to_end(repo)
        try:
            body = _ls_refs_body(caps, prefixes, symrefs=symrefs)
            return await self._post(endpoint, headers, budget, body)
        except NotServed:
            self._caps.pop(repo, None)  # the server may have changed: ask it again next time
            raise

    def _remember(self, repo: str, caps: frozenset[str]) -> None:
        self._caps[repo] = caps
        while len(self._caps) > MAX_REMEMBERED:
            self._caps.popitem(last=False)

    async def _advertisement(
        self, endpoint: _Endpoint, headers: dict[str, str], budget: aiohttp.ClientTimeout
    ) -> frozenset[str]:
        url = f"{endpoint.base}/info/refs?service=git-upload-pack"
        body = await self._request("GET", url, endpoint, headers, budget, _ADVERTISEMENT)
        return _v2_capabilities(body)

    async def _post(
        self,
        endpoint: _Endpoint,
        headers: dict[str, str],
        budget: aiohttp.ClientTimeout,
        body: bytes,
    ) -> tuple[dict[str, str], dict[str, str]]:
        post_headers = {
            **headers,
            "Content-Type": "application/x-git-upload-pack-request",
            "Accept": _RESULT,
        }
        url = f"{endpoint.base}/git-upload-pack"
        answer = await self._request("POST", url, endpoint, post_headers, budget, _RESULT, body)
        return _parse_ls_refs(answer)

    async def _request(
        self,
        method: str,
        url: str,
        endpoint: _Endpoint,
        headers: dict[str, str],
        budget: aiohttp.ClientTimeout,
        content_type: str,
        data: bytes | None = None,
    ) -> bytes:
        try:
            async with self._http().request(
                method,
                url,
                headers=headers,
                data=data,
                timeout=budget,
                allow_redirects=False,
                proxy=endpoint.proxy,
                ssl=endpoint.ssl,
            ) as resp:
                if resp.status != 200:
                    raise NotServed(f"HTTP {resp.status} from {method} {_path_of(url)}")
                if resp.content_type != content_type:  # a dumb server, or not git at all
                    what = resp.content_type or "no content type"
                    raise NotServed(f"{what} from {method} {_path_of(url)}", no_v2=True)
                if (resp.content_length or 0) > MAX_ANSWER_BYTES:
                    raise NotServed("the answer is too large")
                body = await resp.content.read(MAX_ANSWER_BYTES + 1)
        except aiohttp.ClientError as e:
            raise NotServed(f"{type(e).__name__} on {method} {_path_of(url)}") from None
        if len(body) > MAX_ANSWER_BYTES:
            raise NotServed("the answer is too large")
        return body

    def _endpoint(self, repo: str, env: Mapping[str, str]) -> _Endpoint:
        parts = urlsplit(repo)
        base = urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))
        context: ssl.SSLContext | bool = False
        if parts.scheme == "https":
            if env.get("GIT_SSL_NO_VERIFY"):
                raise NotServed("GIT_SSL_NO_VERIFY is set: left to git")
            context = self._context(env)
        return _Endpoint(
            base=base, proxy=_proxy_for(parts.scheme, parts.hostname, env), ssl=context
        )

    def _context(self, env: Mapping[str, str]) -> ssl.SSLContext:
        """A verifying TLS context trusting the CA files git would (see :meth:`ls_refs`)."""
        cafile = env.get("GIT_SSL_CAINFO") or env.get("SSL_CERT_FILE") or None
        capath = env.get("GIT_SSL_CAPATH") or env.get("SSL_CERT_DIR") or None
        key = (cafile, capath)
        if key not in self._contexts:
            try:
                self._contexts[key] = ssl.create_default_context(cafile=cafile, capath=capath)
            except (OSError, ssl.SSLError) as e:
                raise NotServed(f"CA files unreadable ({type(e).__name__})") from None
        return self._contexts[key]


def _path_of(url: str) -> str:
    """A URL's path only, for messages (never its host's user info or query)."""
    return urlsplit(url).path


def _proxy_for(scheme: str, host: str | None, env: Mapping[str, str]) -> str | None:
    """The proxy ``env`` names for ``scheme`` (``https_proxy``, then ``HTTPS_PROXY``), unless
    ``no_proxy``/``NO_PROXY`` exempts ``host``: ``*``, the host itself, or a domain it is in
    (``example.org`` and ``.example.org`` both cover ``git.example.org``), as curl, and so
    git, reads it."""
    proxy = env.get(f"{scheme}_proxy") or env.get(f"{scheme.upper()}_PROXY")
    if not proxy or host is None:
        return None
    host = host.lower().rstrip(".")
    for entry in (env.get("no_proxy") or env.get("NO_PROXY") or "").split(","):
        entry = entry.strip().lower().lstrip(".")
        if entry == "*" or (entry and (host == entry or host.endswith("." + entry))):
            return None
    return proxy
