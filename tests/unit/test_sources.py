"""Repo URL and ref validation, git credentials, and ref resolution against real git repos."""

import asyncio
import base64
import os
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from repo2docker_service.errors import InvalidInput, ServiceError, SourceError
from repo2docker_service.sources import (
    GitCredentials,
    resolve_ref,
    validate_ref,
    validate_repo_url,
)
from tests.rig.procs import alive
from tests.rig.wait import wait_for

PASSWORD = "p@ss w0rd $HOME `id` 'q\" \\n %s"


def git_env(home: Path) -> dict[str, str]:
    """A hermetic environment for git: no user config, no proxies."""
    return {"PATH": os.environ["PATH"], "HOME": str(home)}


def run_git(*args: str, cwd: Path, env: dict[str, str]) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    ).stdout.strip()


# ---------------------------------------------------------------------------
# validate_repo_url


@pytest.mark.parametrize(
    "url, message",
    [
        ("", "non-empty"),
        (None, "non-empty"),
        (b"https://github.com/org/repo", "non-empty"),
        ("ext::sh -c touch% /tmp/pwned", "whitespace"),
        ("ext::sh%20-c%20touch%20/tmp/pwned", "ext::"),
        ("fd::17", "transport::address"),
        ("testgit::https://github.com/org/repo", "transport::address"),
        ("--upload-pack=touch /tmp/pwned", "whitespace"),
        ("--upload-pack=x", "start with '-'"),
        ("-oProxyCommand=x", "start with '-'"),
        ("file:///etc", "scheme 'file' is not allowed"),
        ("file:///etc", "allowed_repo_schemes"),
        ("http://github.com/org/repo", "scheme 'http' is not allowed; allowed schemes: https"),
        ("git://github.com/org/repo", "scheme 'git' is not allowed"),
        ("ssh://git@github.com/org/repo", "scheme 'ssh' is not allowed"),
        ("https://user:pw@github.com/org/repo", "'credentials' field"),
        ("https://ghp_token@github.com/org/repo", "'credentials' field"),
        ("https://:pw@github.com/org/repo", "'credentials' field"),
        ("https://github.com/org/repo\r\nHost: evil", "control characters"),
        ("https://github.com/org/repo\n", "control characters"),
        ("https://github.com/org/repo\x00", "control characters"),
        ("https://github.com/org/\x1b[31mrepo", "control characters"),
        ("https://github.com/org/repo\u202e", "control characters"),
        ("https://git hub.com/org/repo", "whitespace"),
        ("https://github.com/org/repo%0a", "percent-encoded control"),
        ("https://github.com/org/repo%00", "percent-encoded control"),
        ("https://github.com/org/repo%E2%80%AE", "percent-encoded control"),
        pytest.param("https://github.com/" + "a" * 10240, "too long", id="10kB"),
        ("git@github.com:org/repo.git", "URL like https://"),
        ("github.com/org/repo", "URL like https://"),
        ("/srv/repo", "URL like https://"),
        ("https:///org/repo", "no host"),
        ("https://", "no host"),
        ("https://github.com:99999/org/repo", "malformed"),
        ("https://github.com:x/org/repo", "malformed"),
        ("https://exa%mple.com/repo", "not a valid host"),
        ("https://-oProxyCommand=x/repo", "not a valid host"),
        ("https://github.com\\@evil.example/repo", "backslash"),
    ],
)
def test_repo_url_rejected(url, message):
    with pytest.raises(InvalidInput) as e:
        validate_repo_url(url)
    assert e.value.status_code == 400
    assert message in e.value.message
    assert e.value.details() == {"field": "repo"}  # forms show it on the URL field


@pytest.mark.parametrize(
    "url, schemes, message",
    [
        ("ssh://-oProxyCommand=touch%20x/repo", ["ssh"], "not a valid host"),
        ("ssh://-oProxyCommand=x@host/repo", ["ssh"], "user name or password"),
        ("ssh://git:pw@github.com/org/repo", ["ssh"], "user name or password"),
        ("file://relative/path", ["file"], "absolute path"),
        ("file:relative", ["file"], "URL like"),
        ("file:///srv/repo?x=1", ["file"], "query"),
        ("ext::sh -c id", ["https", "file", "ssh"], "whitespace"),
        ("https://github.com/org/repo", ["http"], "allowed schemes: http."),
        ("https://github.com/org/repo", [], "allowed schemes: none"),
    ],
)
def test_repo_url_rejected_with_schemes(url, schemes, message):
    with pytest.raises(InvalidInput) as e:
        validate_repo_url(url, allowed_schemes=schemes)
    assert message in e.value.message


def test_repo_url_unsupported_scheme_is_a_config_error():
    with pytest.raises(ValueError, match="unsupported"):
        validate_repo_url("https://github.com/org/repo", allowed_schemes=["https", "ext"])


@pytest.mark.parametrize(
    "url, schemes, expected",
    [
        ("https://github.com/org/repo", None, "https://github.com/org/repo"),
        ("https://github.com/org/repo.git", None, "https://github.com/org/repo.git"),
        ("HTTPS://GitHub.com/Org/Repo", None, "https://github.com/Org/Repo"),
        ("https://gitlab.example.org:8443/g/sub/repo", None, None),
        ("https://[::1]:8443/repo", None, None),
        ("https://127.0.0.1/repo", None, None),
        ("https://github.com/org/repo?ref=x#frag", None, None),
        ("https://github.com/org/r%C3%A9po", None, None),
        ("https://example.org/my%20repo", None, None),
        ("https://github.com/org/répo", None, None),
        ("https://github.com/a::b", None, None),
        ("http://git.internal/repo", ["https", "http"], None),
        ("git://git.internal/repo", ["git"], None),
        ("ssh://git@github.com/org/repo", ["ssh"], None),
        ("file:///srv/repo", ["file"], None),
        ("file://localhost/srv/repo", ["file"], "file:///srv/repo"),
    ],
)
def test_repo_url_accepted(url, schemes, expected):
    kwargs = {} if schemes is None else {"allowed_schemes": schemes}
    assert validate_repo_url(url, **kwargs) == (expected or url)


def test_repo_url_max_length():
    url = "https://github.com/" + "a" * 100
    assert validate_repo_url(url, max_length=len(url)) == url
    with pytest.raises(InvalidInput, match="too long"):
        validate_repo_url(url + "a", max_length=len(url))


# ---------------------------------------------------------------------------
# validate_ref


@pytest.mark.parametrize(
    "ref",
    [
        "HEAD",
        "main",
        "feature/x",
        "v1.0",
        "v1.0-rc.1",
        "refs/heads/main",
        "refs/tags/v1",
        "refs/pull/1/head",
        "abc1234",
        "0123456789abcdef0123456789abcdef01234567",
        "ünïcode",
        "a@b",
        "a.lockx",
        "x.lock.y",
        pytest.param("a" * 255, id="a*255"),
    ],
)
def test_ref_accepted(ref):
    assert validate_ref(ref) == ref


@pytest.mark.parametrize(
    "ref",
    [
        "",
        None,
        "-main",
        "--upload-pack=x",
        "-oProxyCommand",
        "a..b",
        "a b",
        "a~1",
        "a^",
        "a^{}",
        "a:b",
        "a?",
        "a*",
        "a[",
        "a\\b",
        "a@{1}",
        "@",
        "a/",
        "/a",
        "a//b",
        "a.",
        ".a",
        "a/.b",
        "a.lock",
        "a/b.lock/c",
        "a\x00",
        "a\x7f",
        "a\tb",
        "a\nb",
        "a\u200bb",
        pytest.param("a" * 256, id="a*256"),
    ],
)
def test_ref_rejected(ref):
    with pytest.raises(InvalidInput) as e:
        validate_ref(ref)
    assert e.value.status_code == 400
    assert e.value.field == "ref"


# ---------------------------------------------------------------------------
# GitCredentials


def test_credentials_repr_hides_password():
    creds = GitCredentials("bob", PASSWORD)
    for text in (repr(creds), str(creds), f"{creds}", repr([creds])):
        assert PASSWORD not in text
        assert "bob" in text
        assert "***" in text


@pytest.mark.parametrize("field", ["username", "password"])
@pytest.mark.parametrize("bad", ["a\nb", "a\rb", "a\x00b"])
def test_credentials_reject_unsendable_values(field, bad):
    values = {"username": "bob", "password": "pw"} | {field: bad}
    with pytest.raises(ValueError, match=field):
        GitCredentials(**values)


def test_credentials_env_keeps_secret_out_of_the_helper():
    env = GitCredentials("bob", PASSWORD).git_env(url="https://example.com/org/repo")
    assert env["GIT_TERMINAL_PROMPT"] == "0"
    assert [k for k, v in env.items() if PASSWORD in v] == ["R2DS_GIT_PASSWORD"]
    assert env["GIT_CONFIG_KEY_1"] == "credential.https://example.com.helper"
    assert "R2DS_GIT_PASSWORD" in env["GIT_CONFIG_VALUE_1"]


def credential_fill(env: dict[str, str], host: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["git", "credential", "fill"],
        input=f"protocol=https\nhost={host}\n\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_credential_helper_hands_credentials_to_git(tmp_path):
    creds = GitCredentials("bob", PASSWORD)
    env = git_env(tmp_path) | creds.git_env(url="https://example.com/org/repo.git")
    result = credential_fill(env, "example.com")
    assert result.returncode == 0, result.stderr
    assert f"username=bob\npassword={PASSWORD}\n" in result.stdout

    # another host (e.g. after a redirect) gets nothing, and git does not prompt
    result = credential_fill(env, "evil.example")
    assert result.returncode != 0
    assert PASSWORD not in result.stdout + result.stderr

    # unscoped: any host
    env = git_env(tmp_path) | creds.git_env()
    result = credential_fill(env, "evil.example")
    assert f"password={PASSWORD}\n" in result.stdout


def test_credential_helper_disables_configured_helpers(tmp_path):
    """A credential.helper in the user's config never sees (or stores) the secret."""
    store = tmp_path / "store"
    (tmp_path / ".gitconfig").write_text(f"[credential]\n\thelper = store --file={store}\n")
    approve = f"protocol=https\nhost=example.com\nusername=bob\npassword={PASSWORD}\n\n"

    # the configured helper is real: without our env it writes the password to disk
    subprocess.run(
        ["git", "credential", "approve"], input=approve, env=git_env(tmp_path), text=True
    )
    assert "bob:p%40ss%20w0rd" in store.read_text()
    store.unlink()

    env = git_env(tmp_path) | GitCredentials("bob", PASSWORD).git_env()
    subprocess.run(["git", "credential", "approve"], input=approve, env=env, text=True)
    assert not store.exists()
    assert f"password={PASSWORD}\n" in credential_fill(env, "example.com").stdout
    assert not store.exists()


# ---------------------------------------------------------------------------
# resolve_ref against real repositories


class Repo:
    def __init__(self, path: Path, env: dict[str, str]) -> None:
        self.path = path
        self.url = f"file://{path}"
        self.env = env
        self.shas: dict[str, str] = {}

    def git(self, *args: str) -> str:
        return run_git(*args, cwd=self.path, env=self.env)


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Repo:
    home = tmp_path_factory.mktemp("home")
    env = git_env(home) | {
        "GIT_AUTHOR_NAME": "Test",
        "GIT_AUTHOR_EMAIL": "test@example.org",
        "GIT_COMMITTER_NAME": "Test",
        "GIT_COMMITTER_EMAIL": "test@example.org",
    }
    path = tmp_path_factory.mktemp("repo") / "repo.git"
    path.mkdir()
    repo = Repo(path, env)
    repo.git("init", "-q", "-b", "main")
    (path / "README").write_text("one\n")
    repo.git("add", "README")
    repo.git("commit", "-q", "-m", "one")
    repo.shas["main"] = repo.git("rev-parse", "HEAD")
    repo.git("tag", "-a", "v1.0", "-m", "release 1.0")
    repo.shas["v1.0-object"] = repo.git("rev-parse", "v1.0")
    repo.git("checkout", "-q", "-b", "feature")
    (path / "README").write_text("two\n")
    repo.git("commit", "-q", "-am", "two")
    repo.shas["feature"] = repo.git("rev-parse", "HEAD")
    repo.git("tag", "light")
    # a branch and a tag with the same name: the branch wins, like git checkout
    repo.git("branch", "dup", "main")
    repo.git("tag", "-a", "dup", "-m", "dup", "feature")
    # a branch whose name looks like a short SHA
    repo.git("branch", "abcdef1", "feature")
    repo.git("checkout", "-q", "main")
    assert repo.shas["v1.0-object"] != repo.shas["main"]
    return repo


@pytest.mark.parametrize(
    "ref, expected",
    [
        ("HEAD", "main"),
        ("main", "main"),
        ("refs/heads/main", "main"),
        ("feature", "feature"),
        ("v1.0", "main"),  # annotated tag: its commit, not the tag object
        ("refs/tags/v1.0", "main"),
        ("light", "feature"),
        ("dup", "main"),
        ("refs/tags/dup", "feature"),
        ("abcdef1", "feature"),
    ],
)
async def test_resolve_ref(repo, tmp_path, ref, expected):
    sha = await resolve_ref(repo.url, ref, env=git_env(tmp_path))
    assert sha == repo.shas[expected]


async def test_resolve_ref_default_env(repo):
    before = dict(os.environ)
    assert await resolve_ref(repo.url, "feature") == repo.shas["feature"]
    assert dict(os.environ) == before


async def test_resolve_full_sha_needs_no_network():
    sha = "0123456789ABCDEF0123456789ABCDEF01234567"
    assert await resolve_ref("https://unreachable.invalid/x", sha) == sha.lower()


async def test_resolve_unknown_ref(repo, tmp_path):
    with pytest.raises(SourceError) as e:
        await resolve_ref(repo.url, "nope", env=git_env(tmp_path))
    assert e.value.status_code == 422
    # a few existing branches, the default one first (issue 17 item 6), in the message too
    assert e.value.field == "ref"
    assert e.value.suggestions == ["main", "abcdef1", "dup", "feature"]
    assert e.value.message == (
        f"ref 'nope' not found in {repo.url}; existing branches: main, abcdef1, dup, feature"
    )


async def test_resolve_unknown_ref_close_to_a_branch(repo, tmp_path):
    with pytest.raises(SourceError) as e:
        await resolve_ref(repo.url, "featrue", env=git_env(tmp_path))
    assert e.value.suggestions[:2] == ["main", "feature"]


async def test_resolve_unknown_ref_in_a_repository_without_branches(tmp_path):
    empty = tmp_path / "empty.git"
    subprocess.run(["git", "init", "-q", "--bare", str(empty)], check=True)
    with pytest.raises(SourceError) as e:
        await resolve_ref(str(empty), "main", env=git_env(tmp_path))
    assert (e.value.field, e.value.suggestions) == ("ref", [])
    assert e.value.message == f"ref 'main' not found in {empty}"
    assert e.value.details() == {"field": "ref"}


async def test_an_unreadable_repository_is_about_the_repo_field(tmp_path):
    with pytest.raises(SourceError) as e:
        await resolve_ref(str(tmp_path / "missing.git"), "main", env=git_env(tmp_path))
    assert e.value.message.startswith("could not read ") and e.value.field == "repo"


# abbreviated commits: (prefix of, length, known commits, expected: a key of repo.shas,
# a known commit, or the start of the refusal)
ABBREVIATED = [
    ("feature", 10, [], "feature"),
    ("feature", 7, [], "feature"),
    ("main", 7, [], "main"),
    ("main", 39, [], "main"),
    ("MAIN", 12, [], "main"),  # upper case hex
    ("feature", 8, ["f" * 40], "feature"),  # a known commit elsewhere changes nothing
    # the commit of a built environment that is no branch or tag tip any more
    ("f" * 40, 7, ["f" * 40, "e" * 40], "f" * 40),
    ("f" * 40, 7, ["F" * 40], "f" * 40),
    # nothing, or more than one, starts with it
    ("0" * 40, 7, [], "commit '0000000' not found in"),
    ("f" * 40, 7, ["f" * 40, "f" * 39 + "e"], "commit 'fffffff' is ambiguous in"),
]


@pytest.mark.parametrize(("of", "length", "known", "expected"), ABBREVIATED)
async def test_resolve_abbreviated_commit(repo, tmp_path, of, length, known, expected):
    full = repo.shas.get(of.lower(), of)
    prefix = full[:length].upper() if of.isupper() else full[:length]
    resolve = resolve_ref(repo.url, prefix, env=git_env(tmp_path), known_commits=known)
    if " " not in expected:
        assert await resolve == repo.shas.get(expected, expected)
        return
    with pytest.raises(SourceError) as e:
        await resolve
    assert e.value.status_code == 422
    assert e.value.message.startswith(expected), e.value.message
    assert e.value.message.endswith("give the full 40-character commit SHA")


async def test_a_built_commit_next_to_a_tip_is_ambiguous(repo, tmp_path):
    main = repo.shas["main"]
    other = main[:-1] + ("1" if main.endswith("0") else "0")
    with pytest.raises(SourceError, match=f"commit '{main[:7]}' is ambiguous"):
        await resolve_ref(repo.url, main[:7], env=git_env(tmp_path), known_commits=[other])


async def test_a_branch_named_like_a_commit_wins(repo, tmp_path):
    sha = await resolve_ref(repo.url, "abcdef1", env=git_env(tmp_path))
    assert sha == repo.shas["feature"]


async def test_resolve_invalid_ref(repo):
    with pytest.raises(InvalidInput):
        await resolve_ref(repo.url, "--upload-pack=touch /tmp/pwned")


async def test_resolve_unreachable_path(tmp_path):
    url = f"file://{tmp_path}/missing"
    with pytest.raises(SourceError) as e:
        await resolve_ref(url, "HEAD", env=git_env(tmp_path))
    assert e.value.message.startswith(f"could not read {url}: ")
    assert "does not appear to be a git repository" in e.value.message


async def test_resolve_ext_transport_is_blocked(tmp_path):
    marker = tmp_path / "pwned"
    with pytest.raises(SourceError):
        await resolve_ref(f"ext::touch {marker}", "HEAD", env=git_env(tmp_path))
    assert not marker.exists()


async def test_resolve_missing_git(repo):
    with pytest.raises(ServiceError, match="not found") as e:
        await resolve_ref(repo.url, "main", git="/nonexistent/git")
    assert e.value.status_code == 500


# ---------------------------------------------------------------------------
# the subprocess contract, seen through a fake git


def fake_git(tmp_path: Path, body: str) -> str:
    script = tmp_path / "fake-git"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)
    return str(script)


async def test_git_argv_and_env(tmp_path):
    record = tmp_path / "record"
    git = fake_git(
        tmp_path,
        f'for a in "$@"; do echo "arg=$a"; done > {record}; env | sort >> {record}\n'
        'printf "0123456789abcdef0123456789abcdef01234567\\trefs/heads/main\\n"',
    )
    creds = GitCredentials("bob", PASSWORD)
    sha = await resolve_ref(
        "https://example.com/org/repo",
        "main",
        credentials=creds,
        git=git,
        env={"PATH": os.environ["PATH"], "MARKER": "1"},
    )
    assert sha == "0123456789abcdef0123456789abcdef01234567"
    lines = record.read_text().splitlines()
    args = [line[4:] for line in lines if line.startswith("arg=")]
    assert args == ["ls-remote", "--", "https://example.com/org/repo", "main", "main^{}"]
    assert all(PASSWORD not in a for a in args)
    env = dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("arg="))
    assert env["MARKER"] == "1"
    assert env["GIT_TERMINAL_PROMPT"] == "0"
    assert env["GIT_ASKPASS"] == "false"
    assert env["GIT_ALLOW_PROTOCOL"] == "file:git:http:https:ssh"
    assert env["GIT_CONFIG_KEY_1"] == "credential.https://example.com.helper"
    assert env["R2DS_GIT_USERNAME"] == "bob"
    assert "HOME" not in env  # the given env is the base, nothing else leaks in


async def test_git_stderr_is_trimmed_and_scrubbed(tmp_path):
    git = fake_git(
        tmp_path,
        'for i in 1 2 3 4 5 6 7 8; do echo "line $i" >&2; done\n'
        'printf "progress 1%%\\rfatal: bad password %s\\n" "$R2DS_GIT_PASSWORD" >&2\n'
        "exit 128",
    )
    with pytest.raises(SourceError) as e:
        await resolve_ref(
            "https://example.com/x",
            "main",
            credentials=GitCredentials("bob", PASSWORD),
            git=git,
            env=git_env(tmp_path),
        )
    message = e.value.message
    assert PASSWORD not in message
    assert message == (
        "could not read https://example.com/x:"
        " line 6; line 7; line 8; progress 1%; fatal: bad password ***"
    )


async def wait_for_file(path: Path, timeout: float = 10) -> str:
    return await wait_for(
        lambda: path.exists() and path.read_text().strip(),
        timeout=timeout,
        interval=0.02,
        what=f"{path} to be written",
    )


def hanging_git(tmp_path: Path) -> tuple[str, Path]:
    pids = tmp_path / "pids"
    git = fake_git(tmp_path, f"sleep 60 &\necho $$ $! > {pids}.tmp; mv {pids}.tmp {pids}\nwait")
    return git, pids


async def assert_all_gone(pids: list[int]) -> None:
    await wait_for(
        lambda: not any(alive(pid) for pid in pids),
        timeout=5,
        interval=0.02,
        what="git and its children to exit",
    )


async def test_a_cancel_while_git_starts_kills_its_whole_group(tmp_path, monkeypatch):
    """A cancel that lands while asyncio is still starting git (its pipes being connected,
    git and its helpers already running) ends them all at once: before, asyncio killed git
    alone and the cancel waited until git's helpers closed the pipes (60 s once in CI)."""
    git, pidfile = hanging_git(tmp_path)
    real_start = asyncio.create_subprocess_exec
    release = asyncio.Event()

    async def slow_start(*args, **kwargs):
        proc = await real_start(*args, **kwargs)
        await release.wait()  # still starting when the cancel comes
        return proc

    monkeypatch.setattr(asyncio, "create_subprocess_exec", slow_start)
    task = asyncio.ensure_future(
        resolve_ref("https://example.com/x", "main", git=git, env=git_env(tmp_path))
    )
    pids = [int(p) for p in (await wait_for_file(pidfile)).split()]
    task.cancel()
    await asyncio.sleep(0.1)
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    await assert_all_gone(pids)


async def test_timeout_kills_the_process_group(tmp_path):
    git, pidfile = hanging_git(tmp_path)
    start = time.monotonic()
    with pytest.raises(SourceError) as e:
        await resolve_ref(
            "https://example.com/x", "main", git=git, timeout=0.5, env=git_env(tmp_path)
        )
    assert time.monotonic() - start < 5
    assert e.value.message == "timed out after 0.5 s contacting https://example.com/x"
    await assert_all_gone([int(p) for p in pidfile.read_text().split()])


async def test_cancel_kills_the_process_group(tmp_path):
    git, pidfile = hanging_git(tmp_path)
    task = asyncio.ensure_future(
        resolve_ref("https://example.com/x", "main", git=git, env=git_env(tmp_path))
    )
    pids = [int(p) for p in (await wait_for_file(pidfile)).split()]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await assert_all_gone(pids)


# ---------------------------------------------------------------------------
# credentials over real HTTP (git http-backend behind Basic auth)


class GitHTTPHandler(BaseHTTPRequestHandler):
    root: str
    authorization: str

    def log_message(self, format, *args):
        pass

    def do_GET(self):
        self.serve()

    def do_POST(self):
        self.serve()

    def serve(self):
        if self.headers.get("Authorization") != self.authorization:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        path, _, query = self.path.partition("?")
        env = {
            "PATH": os.environ["PATH"],
            "GIT_PROJECT_ROOT": self.root,
            "GIT_HTTP_EXPORT_ALL": "1",
            "REQUEST_METHOD": self.command,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
            "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
            "REMOTE_USER": "bob",
            "REMOTE_ADDR": "127.0.0.1",
        }
        out = subprocess.run(
            ["git", "http-backend"], input=body, env=env, capture_output=True, timeout=30
        ).stdout
        head, _, payload = out.partition(b"\r\n\r\n")
        status, headers = 200, []
        for line in head.decode().split("\r\n"):
            key, _, value = line.partition(":")
            if key.lower() == "status":
                status = int(value.split()[0])
            elif key:
                headers.append((key, value.strip()))
        self.send_response(status)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture
def http_repo(repo):
    handler = type(
        "Handler",
        (GitHTTPHandler,),
        {
            "root": str(repo.path.parent),
            "authorization": "Basic " + base64.b64encode(f"bob:{PASSWORD}".encode()).decode(),
        },
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/{repo.path.name}"
    server.shutdown()
    server.server_close()


async def test_credentials_authenticate_over_http(repo, http_repo, tmp_path):
    creds = GitCredentials("bob", PASSWORD)
    sha = await resolve_ref(http_repo, "feature", credentials=creds, env=git_env(tmp_path))
    assert sha == repo.shas["feature"]


async def test_missing_credentials_fail_without_prompting(http_repo, tmp_path):
    with pytest.raises(SourceError) as e:
        await resolve_ref(http_repo, "main", env=git_env(tmp_path), timeout=20)
    assert e.value.message.startswith(f"could not read {http_repo}: ")


async def test_wrong_password_is_not_echoed(http_repo, tmp_path):
    wrong = GitCredentials("bob", "not-the-" + "password-123")
    with pytest.raises(SourceError) as e:
        await resolve_ref(http_repo, "main", credentials=wrong, env=git_env(tmp_path))
    assert "not-the-password-123" not in e.value.message
    assert "Authentication failed" in e.value.message


def test_allowed_hosts_restricts_repo_hosts():
    from repo2docker_service.errors import InvalidInput
    from repo2docker_service.sources import validate_repo_url

    assert validate_repo_url("https://Git.Example.org/a/b", allowed_hosts=["git.example.org"])
    with pytest.raises(InvalidInput, match="allowed_repo_hosts"):
        validate_repo_url("https://github.com/a/b", allowed_hosts=["git.example.org"])
    assert validate_repo_url("https://github.com/a/b", allowed_hosts=[])
