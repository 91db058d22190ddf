"""Git repositories served read-only over smart HTTP on 127.0.0.1, for the demo and the tests.

``git http-backend`` runs as CGI behind a small threaded ``http.server``, with optional HTTP
basic auth per repository (decided by the repository a path names, whatever its URL
form: with or without ``.git``, trailing slash), so the demo and the tests use the same kind
of URL real users give. ``scripts/demo.py`` serves the bundled example with it; the test rig
(``tests/rig/git.py``) wraps it in fixtures. It lives here, not under ``tests/``, because the
demo imports nothing from the tests, and not in the package, which has no use for it.

Nothing here sends traffic anywhere but 127.0.0.0/8.
"""

from __future__ import annotations

import base64
import hmac
import os
import re
import shutil
import ssl
import subprocess
import threading
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "repo2docker-service tests",
    "GIT_AUTHOR_EMAIL": "tests@repo2docker-service.invalid",
    "GIT_COMMITTER_NAME": "repo2docker-service tests",
    "GIT_COMMITTER_EMAIL": "tests@repo2docker-service.invalid",
}

_REPO_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*")
# request headers git http-backend must not see as HTTP_* variables
_NOT_PASSED = {"authorization", "content-type", "content-length", "transfer-encoding"}


def loopback_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: ``os.environ``) with 127.0.0.1 and localhost added to NO_PROXY."""
    env = dict(os.environ if env is None else env)
    for key in ("NO_PROXY", "no_proxy"):
        parts = [p for p in env.get(key, "").split(",") if p]
        env[key] = ",".join([*parts, *(h for h in ("127.0.0.1", "localhost") if h not in parts)])
    return env


def git_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for git commands: a fixed identity, no global/system config, no prompts.

    The user's ``~/.gitconfig`` and ``/etc/gitconfig`` are ignored (GIT_CONFIG_GLOBAL points at
    /dev/null), so every machine behaves the same. Inherited ``GIT_*`` variables are dropped;
    ``extra`` is added last.
    """
    env = {k: v for k, v in loopback_env().items() if not k.startswith("GIT_")}
    env.update(GIT_IDENTITY)
    env.update(
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_CONFIG_NOSYSTEM="1",
        GIT_TERMINAL_PROMPT="0",
    )
    env.update(extra or {})
    return env


def files_from_dir(path: str | os.PathLike[str]) -> dict[str, str]:
    """All files under ``path`` as ``{relative posix path: text}``, for ``create_repo``."""
    root = Path(path)
    return {
        p.relative_to(root).as_posix(): p.read_text()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


@dataclass
class GitRepo:
    """One repository served by :class:`GitHTTPServer`."""

    name: str
    bare: Path
    work: Path
    branch: str
    auth: tuple[str, str] | None = None


@dataclass(frozen=True)
class GitRequest:
    """One HTTP request the server answered (for assertions in tests)."""

    method: str
    path: str
    status: int
    user: str | None
    authorization_sent: bool


@dataclass
class _State:
    project_root: Path
    protocol_v2: bool = True
    repos: dict[str, GitRepo] = field(default_factory=dict)
    requests: list[GitRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _GitHTTPD(ThreadingHTTPServer):
    daemon_threads = True
    state: _State


def _split_cgi_output(out: bytes) -> tuple[bytes, bytes]:
    """(head, body) of a CGI response; the head is empty when there is no header block."""
    for sep in (b"\r\n\r\n", b"\n\n"):
        at = out.find(sep)
        if at >= 0:
            return out[:at], out[at + len(sep) :]
    return b"", out


def _cgi_headers(head: bytes) -> tuple[int, list[tuple[str, str]]]:
    """The status (``Status:``, default 200) and the other headers of a CGI response head."""
    status = 200
    headers: list[tuple[str, str]] = []
    for line in head.decode("latin-1").splitlines():
        key, _, value = line.partition(":")
        if key.lower() == "status":
            status = int(value.strip().split()[0])
        elif key:
            headers.append((key.strip(), value.strip()))
    return status, headers


class _GitHandler(BaseHTTPRequestHandler):
    server: _GitHTTPD
    protocol_version = "HTTP/1.1"
    # answer at once instead of waiting ~40 ms for the client's delayed ACK
    disable_nagle_algorithm = True
    server_version = "repo2docker-service-test-git/1"

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: object) -> None:  # silence stderr
        pass

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _find_repo(self, path: str) -> tuple[GitRepo, str] | None:
        """The repository ``path`` names, and the rest of the path after it; None if none.

        Every URL form git accepts for one repository maps to it here (``/name.git/...``,
        ``/name/...``, a trailing or doubled slash), so the repository, not the URL's
        spelling, decides whether a password is needed. The longest matching name wins
        (``a/b`` before ``a``).
        """
        segments = [s for s in path.split("/") if s]
        if any(s in (".", "..") for s in segments):
            return None
        with self.server.state.lock:
            repos = sorted(self.server.state.repos.values(), key=lambda r: -len(r.name))
        for repo in repos:
            *parents, last = repo.name.split("/")
            head = segments[: len(parents) + 1]
            if head[:-1] == parents and head[-1:] in ([last], [last + ".git"]):
                return repo, "/".join(segments[len(head) :])
        return None

    def _check_auth(self, repo: GitRepo | None) -> tuple[bool, str | None]:
        if repo is None or repo.auth is None:
            return True, None
        header = self.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return False, None
        try:
            user, _, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False, None
        ok_user = hmac.compare_digest(user.encode(), repo.auth[0].encode())
        ok_password = hmac.compare_digest(password.encode(), repo.auth[1].encode())
        return (ok_user and ok_password), (user if ok_user and ok_password else None)

    def _respond(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.send_response(status)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _serve(self) -> None:
        body = self._read_body()
        raw_path, _, query = self.path.partition("?")
        found = self._find_repo(urllib.parse.unquote(raw_path))
        repo = found[0] if found else None
        ok, user = self._check_auth(repo)
        status = 500
        try:
            if found is None:
                # nothing reaches git http-backend unless it names a repository of ours:
                # git would otherwise find one by its own rules (``name`` -> ``name.git``)
                status = 404
                self._respond(404, [("Content-Type", "text/plain")], b"no such repository\n")
                return
            if not ok:
                status = 401
                self._respond(
                    401,
                    [("WWW-Authenticate", 'Basic realm="git"'), ("Content-Type", "text/plain")],
                    b"authentication required\n",
                )
                return
            # one canonical path per repository for git http-backend
            status = self._cgi(f"/{found[0].name}.git/{found[1]}", query, body, user)
        finally:
            with self.server.state.lock:
                self.server.state.requests.append(
                    GitRequest(
                        self.command, self.path, status, user, "Authorization" in self.headers
                    )
                )

    def _cgi_env(self, path: str, query: str, body: bytes, user: str | None) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": str(self.server.state.project_root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "SERVER_SOFTWARE": self.server_version,
            "REQUEST_METHOD": self.command,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_ADDR": self.client_address[0],
        }
        if user is not None:
            env["REMOTE_USER"] = user
        for key, value in self.headers.items():
            if key.lower() == "git-protocol" and not self.server.state.protocol_v2:
                continue  # as a server (or a proxy) that never passes it on: v0 only
            if key.lower() not in _NOT_PASSED:
                # Git-Protocol (v2), Content-Encoding (gzip'ed requests), ...
                env["HTTP_" + key.upper().replace("-", "_")] = value
        return env

    def _cgi(self, path: str, query: str, body: bytes, user: str | None) -> int:
        proc = subprocess.run(
            ["git", "http-backend"],
            input=body,
            env=self._cgi_env(path, query, body, user),
            capture_output=True,
            check=False,
        )
        head, rest = _split_cgi_output(proc.stdout)
        if not head:
            msg = b"git http-backend failed: " + proc.stderr
            self._respond(500, [("Content-Type", "text/plain")], msg)
            return 500
        status, headers = _cgi_headers(head)
        self._respond(status, headers, rest)
        return status


def set_nodelay(enabled: bool) -> None:
    """Turn TCP_NODELAY on (the default) or off for connections accepted from now on.

    With it off, the server stalls on Nagle's algorithm: it writes headers and body in
    separate small segments, and the body waits for the client's delayed ACK (40 ms on
    Linux). The benchmarks measure that "stock ``http.server``" case too. Affects every
    server of this process.
    """
    _GitHandler.disable_nagle_algorithm = enabled


class GitHTTPServer:
    """Bare git repositories served read-only over smart HTTP on 127.0.0.1.

    Each repository has a work clone next to it; :meth:`create_repo` and :meth:`commit` commit
    there and push to the bare repository on disk (never over HTTP: HTTP is read-only). Commits
    use a fixed identity (:data:`GIT_IDENTITY`) and ignore the user's git config.

    Usage::

        server = GitHTTPServer(tmp_dir).start()
        url = server.create_repo("demo", {"Dockerfile": "FROM local/debian:bookworm\\n"})
        sha = server.commit("demo", {"README.md": "hi\\n"})
        server.stop()
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        tls: ssl.SSLContext | None = None,
        protocol_v2: bool = True,
    ) -> None:
        """Args: ``root``, where repositories live; ``tls``, a server context: serve
        https; ``protocol_v2`` False: never hand git the ``Git-Protocol`` header, so the
        server speaks only protocol v0 (as old git or a proxy that drops the header)."""
        self.root = Path(root)
        self._projects = self.root / "repos"
        self._work = self.root / "work"
        self._projects.mkdir(parents=True, exist_ok=True)
        self._work.mkdir(parents=True, exist_ok=True)
        self._state = _State(project_root=self._projects, protocol_v2=protocol_v2)
        self._tls = tls
        self._httpd: _GitHTTPD | None = None
        self._thread: threading.Thread | None = None
        self._repo_lock = threading.Lock()

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> GitHTTPServer:
        """Listen on a free port of 127.0.0.1 and serve in a background thread.

        Raises:
            RuntimeError: there is no ``git`` command.
        """
        if shutil.which("git") is None:
            raise RuntimeError("git not installed: no `git` command on PATH")
        httpd = _GitHTTPD(("127.0.0.1", 0), _GitHandler)
        if self._tls is not None:  # the handshake runs in the request's thread
            httpd.socket = self._tls.wrap_socket(
                httpd.socket, server_side=True, do_handshake_on_connect=False
            )
        httpd.state = self._state
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="git-http",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> GitHTTPServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- addresses --------------------------------------------------------------------------
    @property
    def port(self) -> int:
        """The port it listens on (RuntimeError before :meth:`start`)."""
        if self._httpd is None:
            raise RuntimeError("GitHTTPServer is not started")
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` (``https://`` when serving TLS)."""
        scheme = "https" if self._tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def url(self, name: str) -> str:
        """The clone URL of repository ``name`` (never with credentials in it)."""
        self._repo(name)
        return f"{self.base_url}/{name}.git"

    def url_forms(self, name: str) -> list[str]:
        """Every spelling of ``name``'s clone URL that git accepts, all served alike.

        ``.../name.git`` (:meth:`url`), ``.../name`` (GitHub and GitLab take both),
        each with a trailing slash: a private repository asks for a password in all of them.
        """
        base = f"{self.base_url}/{self._repo(name).name}"
        return [f"{base}.git", base, f"{base}/", f"{base}.git/"]

    @property
    def requests(self) -> list[GitRequest]:
        """A copy of the requests answered so far, oldest first."""
        with self._state.lock:
            return list(self._state.requests)

    # -- repositories -----------------------------------------------------------------------
    def create_repo(
        self,
        name: str,
        files: dict[str, str],
        branch: str = "main",
        *,
        auth: tuple[str, str] | None = None,
        message: str = "Initial commit",
    ) -> str:
        """Create repository ``name`` with one commit of ``files`` on ``branch``; return its URL.

        Args:
            name: path-like name (``[A-Za-z0-9._-]`` segments, ``/`` allowed); served at
                ``/{name}.git`` and every other form of :meth:`url_forms`.
            files: ``{relative path: text}``.
            branch: the default branch (HEAD of the bare repository).
            auth: ``(user, password)``: require HTTP basic auth; requests without it or with
                wrong credentials get 401 with ``WWW-Authenticate: Basic``, whichever URL
                form they use. A path naming no repository gets 404, never git's guess.
            message: commit message.

        Raises:
            ValueError: bad or already used name.
        """
        if not _REPO_NAME.fullmatch(name) or name.endswith(".git") or ".." in name:
            raise ValueError(f"bad repository name {name!r}")
        bare = self._projects / f"{name}.git"
        work = self._work / name
        with self._state.lock:
            if name in self._state.repos:
                raise ValueError(f"repository {name!r} exists already")
        bare.parent.mkdir(parents=True, exist_ok=True)
        work.mkdir(parents=True)
        self._init_bare(bare, branch)
        self._git("init", "--quiet", f"--initial-branch={branch}", cwd=work)
        self._git("remote", "add", "origin", str(bare), cwd=work)
        repo = GitRepo(name=name, bare=bare, work=work, branch=branch, auth=auth)
        with self._state.lock:
            self._state.repos[name] = repo
        self.commit(name, files, message=message)
        return self.url(name)

    def commit(
        self, name: str, files: Mapping[str, str | None], message: str = "Update files"
    ) -> str:
        """Write ``files`` (``None`` deletes a path), commit on the branch, push; return the SHA.

        Always makes a new commit (``--allow-empty``), so the SHA changes on every call.

        Raises:
            ValueError: a path leaves the repository.
        """
        repo = self._repo(name)
        with self._repo_lock:
            for rel, text in files.items():
                target = repo.work / rel
                if not target.resolve().is_relative_to(repo.work.resolve()):
                    raise ValueError(f"path {rel!r} leaves the repository")
                if text is None:
                    target.unlink(missing_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text)
            self._git("add", "--all", cwd=repo.work)
            self._git("commit", "--quiet", "--allow-empty", "-m", message, cwd=repo.work)
            self._git("push", "--quiet", "origin", f"HEAD:refs/heads/{repo.branch}", cwd=repo.work)
            return self._git("rev-parse", "HEAD", cwd=repo.work)

    def tag(
        self, name: str, tag: str, sha: str | None = None, *, message: str | None = None
    ) -> str:
        """Tag ``sha`` (default: the branch head) and push; annotated if ``message``.

        Returns the tagged commit's SHA.
        """
        repo = self._repo(name)
        with self._repo_lock:
            target = sha or self._git("rev-parse", "HEAD", cwd=repo.work)
            args = ["tag", "--annotate", "-m", message] if message else ["tag"]
            self._git(*args, "--", tag, target, cwd=repo.work)
            self._git("push", "--quiet", "origin", f"refs/tags/{tag}", cwd=repo.work)
            return self._git("rev-parse", f"{target}^{{commit}}", cwd=repo.work)

    def head(self, name: str) -> str:
        """The SHA of the branch head in the served (bare) repository."""
        repo = self._repo(name)
        return self._git("rev-parse", f"refs/heads/{repo.branch}", cwd=repo.bare)

    def repo(self, name: str) -> GitRepo:
        """The :class:`GitRepo` record of ``name`` (paths, branch, auth; KeyError if none)."""
        return self._repo(name)

    # -- internals --------------------------------------------------------------------------
    def _repo(self, name: str) -> GitRepo:
        with self._state.lock:
            try:
                return self._state.repos[name]
            except KeyError:
                raise KeyError(f"no repository {name!r}") from None

    def _init_bare(self, bare: Path, branch: str) -> None:
        self._git("init", "--quiet", "--bare", f"--initial-branch={branch}", str(bare))
        for key, value in [
            ("http.receivepack", "false"),  # read-only over HTTP, even for authenticated users
            ("http.uploadpack", "true"),
            ("uploadpack.allowReachableSHA1InWant", "true"),  # fetch by commit, as GitHub does
            ("uploadpack.allowFilter", "true"),
        ]:
            self._git("config", key, value, cwd=bare)

    def _git(self, *args: str, cwd: Path | None = None) -> str:
        proc = subprocess.run(
            ["git", *args],
            env=git_env(),
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"git {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc.stdout.strip()
