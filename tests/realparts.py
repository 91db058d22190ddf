"""The real parts the tests use, as plain helpers (the fixtures in ``tests/conftest.py`` wrap them).

- A Docker engine with the buildx plugin, the registry on 127.0.0.1:5000 and the local base image
  ``local/debian:bookworm``: made by ``bash scripts/setup.sh``; the ``check_*`` functions only
  verify them and raise :class:`RealPartMissing` naming that command when one is missing.
- :class:`GitHTTPServer`: git repositories served read-only over smart HTTP (``git
  http-backend`` as CGI behind a small threaded ``http.server``) on 127.0.0.1, with optional HTTP
  basic auth per repository, so tests use the same kind of URL real users give.

Nothing here sends traffic anywhere but 127.0.0.0/8.
"""

from __future__ import annotations

import base64
import hmac
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

SETUP_COMMAND = "bash scripts/setup.sh"
REPO_ROOT = Path(__file__).resolve().parents[1]
REGISTRY_HOST = "127.0.0.1:5000"
BASE_IMAGE = "local/debian:bookworm"
OFFLINE_CONFIG = REPO_ROOT / "repo2docker_service" / "repo2docker_offline_config.py"
EXAMPLES_DIR = REPO_ROOT / "examples"
DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"

GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "repo2docker-service tests",
    "GIT_AUTHOR_EMAIL": "tests@repo2docker-service.invalid",
    "GIT_COMMITTER_NAME": "repo2docker-service tests",
    "GIT_COMMITTER_EMAIL": "tests@repo2docker-service.invalid",
}

_REPO_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*")


class RealPartMissing(RuntimeError):
    """A real part the tests need is not there; the message says how to get it."""

    def __init__(self, part: str, reason: str) -> None:
        super().__init__(f"{part}: run `{SETUP_COMMAND}` ({reason.strip()})")


def _no_proxy_opener() -> urllib.request.OpenerDirector:
    """A urllib opener that ignores *_proxy variables: test traffic stays on loopback."""
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


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
    /dev/null), so tests behave the same on every machine. Inherited ``GIT_*`` variables are
    dropped.
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


def run(
    argv: list[str],
    *,
    env: dict[str, str] | None = None,
    cwd: str | os.PathLike | None = None,
    timeout: float = 60,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv``, capture text output; on failure raise with stdout/stderr in the message."""
    proc = subprocess.run(
        argv,
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and proc.returncode != 0:
        raise subprocess.CalledProcessError(
            proc.returncode, argv, output=proc.stdout, stderr=proc.stderr
        )
    return proc


def files_from_dir(path: str | os.PathLike) -> dict[str, str]:
    """All files under ``path`` as ``{relative posix path: text}``, for ``create_repo``."""
    root = Path(path)
    return {
        p.relative_to(root).as_posix(): p.read_text()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


# ---------------------------------------------------------------------------------------------
# Docker engine, registry, base image


@dataclass(frozen=True)
class DockerEngine:
    """The Docker engine the tests talk to (``DOCKER_HOST``, default the local unix socket)."""

    host: str
    server_version: str
    api_version: str
    client_version: str
    buildx_version: str

    @property
    def env(self) -> dict[str, str]:
        """Variables to add to a subprocess environment so it uses this engine."""
        return {"DOCKER_HOST": self.host}


def check_docker(*, timeout: float = 30) -> DockerEngine:
    """Verify that ``docker info`` answers and buildx is installed; describe the engine.

    Raises:
        RealPartMissing: the docker CLI, the engine or the buildx plugin is missing.
    """
    part = "Docker engine not reachable"
    if shutil.which("docker") is None:
        raise RealPartMissing(part, "no `docker` command on PATH")
    host = os.environ.get("DOCKER_HOST") or DEFAULT_DOCKER_HOST
    env = {**os.environ, "DOCKER_HOST": host}
    try:
        info = run(
            ["docker", "info", "--format", "{{json .ServerVersion}}"],
            env=env,
            timeout=timeout,
            check=False,
        )
        if info.returncode != 0:
            raise RealPartMissing(
                part, f"`docker info` on {host} failed: {info.stderr or info.stdout}"
            )
        version = run(["docker", "version", "--format", "{{json .}}"], env=env, timeout=timeout)
        v = json.loads(version.stdout)
        server_version, api_version = v["Server"]["Version"], v["Server"]["ApiVersion"]
        client_version = v["Client"]["Version"]
    except subprocess.TimeoutExpired as e:
        raise RealPartMissing(part, f"`docker` did not answer within {timeout}s on {host}") from e
    except (subprocess.CalledProcessError, ValueError, KeyError, TypeError) as e:
        raise RealPartMissing(part, f"`docker version` failed on {host}: {e}") from e
    buildx = run(["docker", "buildx", "version"], env=env, timeout=timeout, check=False)
    if buildx.returncode != 0:
        raise RealPartMissing(
            "Docker buildx plugin missing (repo2docker runs `docker buildx build`)",
            buildx.stderr or buildx.stdout,
        )
    return DockerEngine(
        host=host,
        server_version=server_version,
        api_version=api_version,
        client_version=client_version,
        buildx_version=buildx.stdout.strip(),
    )


def check_registry(host: str = REGISTRY_HOST, *, timeout: float = 5) -> str:
    """Verify that the registry at ``http://{host}/v2/`` answers; return ``host``.

    Raises:
        RealPartMissing: nothing answers, or not a registry.
    """
    url = f"http://{host}/v2/"
    try:
        with _no_proxy_opener().open(url, timeout=timeout) as resp:
            resp.read()
    except (urllib.error.URLError, OSError) as e:
        raise RealPartMissing(f"Registry not reachable at {url}", str(e)) from e
    return host


def check_base_image(
    image: str = BASE_IMAGE, *, engine: DockerEngine | None = None, timeout: float = 30
) -> str:
    """Verify that ``image`` exists in the local engine; return its name.

    Raises:
        RealPartMissing: the image does not exist.
    """
    env = {**os.environ, **(engine.env if engine else {})}
    proc = run(
        ["docker", "image", "inspect", "--format", "{{.Id}}", image],
        env=env,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise RealPartMissing(f"Base image {image} missing", proc.stderr or proc.stdout)
    return image


def check_offline_config(path: Path = OFFLINE_CONFIG) -> Path:
    """Verify that the repo2docker offline config file exists; return its path."""
    if not path.is_file():
        raise RealPartMissing("repo2docker offline config missing", f"{path} does not exist")
    return path


def repo2docker_command() -> str:
    """The ``repo2docker`` executable of the venv running the tests."""
    exe = Path(sys.executable).parent / "repo2docker"
    if not exe.exists():
        found = shutil.which("repo2docker")
        if found is None:
            raise RealPartMissing("repo2docker not installed", f"{exe} does not exist")
        return found
    return str(exe)


def remove_image(image: str, *, engine: DockerEngine | None = None) -> None:
    """``docker rmi -f image``, ignoring only "No such image"."""
    env = {**os.environ, **(engine.env if engine else {})}
    proc = run(["docker", "rmi", "-f", image], env=env, check=False)
    if proc.returncode != 0 and "no such image" not in proc.stderr.lower():
        raise RuntimeError(f"docker rmi -f {image} failed: {proc.stderr}")


# ---------------------------------------------------------------------------------------------
# Git repositories over smart HTTP


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
    repos: dict[str, GitRepo] = field(default_factory=dict)
    requests: list[GitRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _GitHTTPD(ThreadingHTTPServer):
    daemon_threads = True
    state: _State


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
            chunks = []
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

    def _find_repo(self, path: str) -> GitRepo | None:
        with self.server.state.lock:
            for repo in self.server.state.repos.values():
                if path.startswith(f"/{repo.name}.git/"):
                    return repo
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
        path = urllib.parse.unquote(raw_path)
        repo = self._find_repo(path)
        ok, user = self._check_auth(repo)
        status = 500
        try:
            if not ok:
                status = 401
                self._respond(
                    401,
                    [("WWW-Authenticate", 'Basic realm="git"'), ("Content-Type", "text/plain")],
                    b"authentication required\n",
                )
                return
            status = self._cgi(path, query, body, user)
        finally:
            with self.server.state.lock:
                self.server.state.requests.append(
                    GitRequest(
                        self.command, self.path, status, user, "Authorization" in self.headers
                    )
                )

    def _cgi(self, path: str, query: str, body: bytes, user: str | None) -> int:
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
            if key.lower() in {
                "authorization",
                "content-type",
                "content-length",
                "transfer-encoding",
            }:
                continue
            # Git-Protocol (v2), Content-Encoding (gzip'ed requests), ...
            env["HTTP_" + key.upper().replace("-", "_")] = value
        proc = subprocess.run(
            ["git", "http-backend"], input=body, env=env, capture_output=True, check=False
        )
        out = proc.stdout
        sep = out.find(b"\r\n\r\n")
        head, rest = (out[:sep], out[sep + 4 :]) if sep >= 0 else (b"", out)
        if sep < 0:
            sep = out.find(b"\n\n")
            head, rest = (out[:sep], out[sep + 2 :]) if sep >= 0 else (b"", out)
        if not head:
            msg = b"git http-backend failed: " + proc.stderr
            self._respond(500, [("Content-Type", "text/plain")], msg)
            return 500
        status = 200
        headers: list[tuple[str, str]] = []
        for line in head.decode("latin-1").splitlines():
            key, _, value = line.partition(":")
            if key.lower() == "status":
                status = int(value.strip().split()[0])
            elif key:
                headers.append((key.strip(), value.strip()))
        self._respond(status, headers, rest)
        return status


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

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        self._projects = self.root / "repos"
        self._work = self.root / "work"
        self._projects.mkdir(parents=True, exist_ok=True)
        self._work.mkdir(parents=True, exist_ok=True)
        self._state = _State(project_root=self._projects)
        self._httpd: _GitHTTPD | None = None
        self._thread: threading.Thread | None = None
        self._repo_lock = threading.Lock()

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> GitHTTPServer:
        """Listen on a free port of 127.0.0.1 and serve in a background thread."""
        if shutil.which("git") is None:
            raise RealPartMissing("git not installed", "no `git` command on PATH")
        httpd = _GitHTTPD(("127.0.0.1", 0), _GitHandler)
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
        self._httpd = self._thread = None

    def __enter__(self) -> GitHTTPServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- addresses --------------------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("GitHTTPServer is not started")
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    def url(self, name: str) -> str:
        """The clone URL of repository ``name`` (never with credentials in it)."""
        self._repo(name)
        return f"{self.base_url}/{name}.git"

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
                ``/{name}.git``.
            files: ``{relative path: text}``.
            branch: the default branch (HEAD of the bare repository).
            auth: ``(user, password)``: require HTTP basic auth; requests without it or with
                wrong credentials get 401 with ``WWW-Authenticate: Basic``.
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
        self._git("init", "--quiet", "--bare", f"--initial-branch={branch}", str(bare))
        for key, value in [
            ("http.receivepack", "false"),  # read-only over HTTP, even for authenticated users
            ("http.uploadpack", "true"),
            ("uploadpack.allowReachableSHA1InWant", "true"),  # fetch by commit, as GitHub does
            ("uploadpack.allowFilter", "true"),
        ]:
            self._git("config", key, value, cwd=bare)
        self._git("init", "--quiet", f"--initial-branch={branch}", cwd=work)
        self._git("remote", "add", "origin", str(bare), cwd=work)
        repo = GitRepo(name=name, bare=bare, work=work, branch=branch, auth=auth)
        with self._state.lock:
            self._state.repos[name] = repo
        self.commit(name, files, message=message)
        return self.url(name)

    def commit(self, name: str, files: dict[str, str | None], message: str = "Update files") -> str:
        """Write ``files`` (``None`` deletes a path), commit on the branch, push; return the SHA.

        Always makes a new commit (``--allow-empty``), so the SHA changes on every call.
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
        """The :class:`GitRepo` record of ``name`` (paths, branch, auth)."""
        return self._repo(name)

    # -- internals --------------------------------------------------------------------------
    def _repo(self, name: str) -> GitRepo:
        with self._state.lock:
            try:
                return self._state.repos[name]
            except KeyError:
                raise KeyError(f"no repository {name!r}") from None

    def _git(self, *args: str, cwd: Path | None = None) -> str:
        proc = run(["git", *args], env=git_env(), cwd=cwd, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"git {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc.stdout.strip()
