"""The test rig itself: git over smart HTTP, the registry, the base image and a raw repo2docker
build, all real (started by ``bash scripts/setup.sh``)."""

from __future__ import annotations

import base64
import json
import os
import urllib.error
import urllib.request

import pytest

from tests.rig.engine import remove_image
from tests.rig.git import files_from_dir, git_env
from tests.rig.net import loopback_env, no_proxy_opener
from tests.rig.parts import EXAMPLES_DIR, repo2docker_command, run
from tests.rig.repos import dockerfile, unique

pytestmark = pytest.mark.docker

NO_PROXY = no_proxy_opener()


# --- git over smart HTTP -------------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["0", "2"])
def test_shallow_clone_and_ls_remote(git_http, tmp_path, protocol):
    name = unique("rig/shallow")
    url = git_http.create_repo(name, {"README.md": "one\n", "sub/dir/file.txt": "x\n"})
    second = git_http.commit(name, {"README.md": "two\n"}, message="second")
    tagged = git_http.tag(name, "v1", message="release v1")
    assert git_http.head(name) == second == tagged
    assert url == git_http.url(name) == f"{git_http.base_url}/{name}.git"

    env = git_env(
        {
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": "protocol.version",
            "GIT_CONFIG_VALUE_0": protocol,
        }
    )
    refs = run(["git", "ls-remote", url], env=env).stdout
    lines = dict(reversed(line.split("\t")) for line in refs.splitlines())
    assert lines["refs/heads/main"] == second
    assert lines["HEAD"] == second
    assert lines["refs/tags/v1^{}"] == second  # annotated tag, peeled

    dest = tmp_path / "clone"
    run(["git", "clone", "--depth", "1", url, str(dest)], env=env)
    assert (dest / "README.md").read_text() == "two\n"
    assert (dest / "sub/dir/file.txt").read_text() == "x\n"
    assert run(["git", "rev-parse", "HEAD"], env=env, cwd=dest).stdout.strip() == second
    assert run(["git", "rev-list", "--count", "HEAD"], env=env, cwd=dest).stdout.strip() == "1"
    assert (dest / ".git" / "shallow").exists()


def test_fetch_older_commit_by_sha(git_http, tmp_path):
    name = unique("rig/by-sha")
    git_http.create_repo(name, {"a.txt": "1\n"})
    first = git_http.head(name)
    git_http.commit(name, {"a.txt": "2\n"})
    dest = tmp_path / "clone"
    env = git_env()
    run(["git", "init", "--quiet", str(dest)], env=env)
    run(["git", "fetch", "--quiet", "--depth", "1", git_http.url(name), first], env=env, cwd=dest)
    assert run(["git", "rev-parse", "FETCH_HEAD"], env=env, cwd=dest).stdout.strip() == first


def basic_env(user: str, password: str) -> dict[str, str]:
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    return git_env(
        {
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": "http.extraHeader",
            "GIT_CONFIG_VALUE_0": f"Authorization: Basic {auth}",
        }
    )


def test_protected_repo_needs_basic_auth_in_every_url_form(git_http, tmp_path):
    """The repository decides, not the URL's spelling: ``.git`` or not, trailing slash."""
    name = unique("rig/private")
    url = git_http.create_repo(name, {"secret.txt": "s\n"}, auth=("alice", "s3cret"))
    forms = git_http.url_forms(name)
    assert forms[0] == url and len(set(forms)) == 4
    assert any(not f.rstrip("/").endswith(".git") for f in forms)
    for form in forms:
        # Plain HTTP: 401 with a Basic challenge, also for wrong credentials.
        info_refs = f"{form.rstrip('/')}/info/refs?service=git-upload-pack"
        for header in [None, "Basic " + base64.b64encode(b"alice:wrong").decode()]:
            req = urllib.request.Request(info_refs)
            if header:
                req.add_header("Authorization", header)
            with pytest.raises(urllib.error.HTTPError) as exc:
                NO_PROXY.open(req, timeout=10)
            assert exc.value.code == 401, form
            assert exc.value.headers["WWW-Authenticate"].startswith("Basic ")

        # git without credentials fails (no prompt), also with wrong ones
        for args in (["ls-remote", form], ["clone", "--depth", "1", form, str(tmp_path / "x")]):
            proc = run(["git", *args], env=git_env(), check=False)
            assert proc.returncode != 0, form
            assert "could not read Username" in proc.stderr  # got 401, asked for credentials
            assert not (tmp_path / "x" / "secret.txt").exists()
        proc = run(["git", "ls-remote", form], env=basic_env("alice", "wrong"), check=False)
        assert proc.returncode != 0, form
        assert [r.status for r in git_http.requests if name in r.path][-1] == 401

        # with them (in the environment) it works
        dest = tmp_path / f"clone-{forms.index(form)}"
        run(["git", "clone", "--depth", "1", form, str(dest)], env=basic_env("alice", "s3cret"))
        assert (dest / "secret.txt").read_text() == "s\n"
    ok = [r for r in git_http.requests if name in r.path and r.status == 200]
    assert ok and all(r.user == "alice" for r in ok)
    assert {r.path.split("/info/refs")[0] for r in ok} >= {
        f"/{name}",
        f"/{name}.git",
    }


@pytest.mark.parametrize(
    "path",
    [
        "/{name}-nope/info/refs",  # no such repository
        "/{name}.git.git/info/refs",
        "/{name}/../{name}/info/refs",  # dot segments are never resolved
        "/./{name}/info/refs",
        "/{parent}/info/refs",  # a parent directory of a repository
        "/{name}.GIT/info/refs",
    ],
)
def test_paths_naming_no_repository_get_404(git_http, path):
    """Only a path naming a repository of the server reaches git http-backend."""
    name = unique("rig/p404")
    git_http.create_repo(name, {"a.txt": "1\n"})
    target = path.format(name=name, parent=name.split("/")[0])
    url = f"{git_http.base_url}{target}?service=git-upload-pack"
    with pytest.raises(urllib.error.HTTPError) as exc:
        NO_PROXY.open(urllib.request.Request(url), timeout=10)
    assert exc.value.code == 404, target


def test_http_is_read_only(git_http, tmp_path):
    name = unique("rig/readonly")
    url = git_http.create_repo(name, {"a.txt": "1\n"})
    env = git_env()
    dest = tmp_path / "clone"
    run(["git", "clone", "--quiet", url, str(dest)], env=env)
    (dest / "b.txt").write_text("2\n")
    run(["git", "add", "b.txt"], env=env, cwd=dest)
    run(["git", "commit", "--quiet", "-m", "b"], env=env, cwd=dest)
    assert run(["git", "push", "origin", "HEAD"], env=env, cwd=dest, check=False).returncode != 0


# --- registry and base image -------------------------------------------------------------


def test_registry_catalog(registry):
    assert registry == "127.0.0.1:5000"
    with NO_PROXY.open(f"http://{registry}/v2/_catalog", timeout=10) as resp:
        assert resp.status == 200
        body = json.load(resp)
    assert isinstance(body["repositories"], list)


def test_base_image_has_ca_bundle(docker_engine, base_image):
    env = {**os.environ, **docker_engine.env}
    for path in [
        "/etc/ssl/certs/ca-certificates.crt",
        "/usr/local/share/ca-certificates/host-ca.crt",
    ]:
        run(
            ["docker", "run", "--rm", "--network", "host", base_image, "test", "-s", path],
            env=env,
            timeout=120,
        )
    config = json.loads(
        run(
            ["docker", "image", "inspect", "--format", "{{json .Config.Env}}", base_image], env=env
        ).stdout
    )
    for var in ["SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "PIP_CERT"]:
        assert f"{var}=/etc/ssl/certs/ca-certificates.crt" in config


# --- repo2docker -------------------------------------------------------------------------


def repo2docker_build(url, image, *, config, engine, extra=()):
    """Run the raw repo2docker CLI; return (completed process, parsed JSON log lines)."""
    argv = [
        repo2docker_command(),
        "--config",
        str(config),
        "--no-run",
        "--json-logs",
        "--user-id",
        "1000",
        "--user-name",
        "jovyan",
        "--image-name",
        image,
        *extra,
        url,
    ]
    env = loopback_env({**git_env(), **engine.env})
    proc = run(argv, env=env, timeout=600, check=False)
    # --json-logs writes one JSON object per line to stderr; stdout stays empty.
    events = []
    for line in proc.stderr.splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            events.append({"message": line, "phase": None, "non_json": True})
    assert proc.returncode == 0, f"repo2docker failed:\n{proc.stdout}\n{proc.stderr}"
    return proc, events


def image_labels(image, engine):
    out = run(
        ["docker", "image", "inspect", "--format", "{{json .Config.Labels}}", image],
        env={**os.environ, **engine.env},
    ).stdout
    return json.loads(out) or {}


def test_repo2docker_cli_builds_dockerfile_repo(
    git_http, docker_engine, base_image, repo2docker_config
):
    name = unique("rig/r2d")
    marker = unique("built-by-rig")
    url = git_http.create_repo(name, dockerfile(base_image, f"RUN echo {marker} > /marker.txt"))
    image = unique("r2ds-test/rig")
    try:
        proc, events = repo2docker_build(
            url, image, config=repo2docker_config, engine=docker_engine
        )
        assert events and not any(e.get("non_json") for e in events), proc.stderr
        assert any("Picked Git content provider" in e.get("message", "") for e in events)
        labels = image_labels(image, docker_engine)
        assert labels["repo2docker.repo"] == url
        # Without --ref repo2docker makes a shallow clone and labels the *requested* ref.
        assert labels["repo2docker.ref"] == "None"
        out = run(
            ["docker", "run", "--rm", "--network", "host", image, "cat", "/marker.txt"],
            env={**os.environ, **docker_engine.env},
            timeout=120,
        ).stdout
        assert out.strip() == marker
    finally:
        remove_image(image, engine=docker_engine)


def test_bundled_hello_example_builds(git_http, docker_engine, base_image, repo2docker_config):
    name = unique("rig/hello")
    url = git_http.create_repo(name, files_from_dir(EXAMPLES_DIR / "hello"))
    image = unique("r2ds-test/hello")
    try:
        sha = git_http.head(name)
        # With --ref repo2docker clones fully and checks the commit out.
        repo2docker_build(
            url, image, config=repo2docker_config, engine=docker_engine, extra=["--ref", sha]
        )
        assert image_labels(image, docker_engine)["repo2docker.ref"] == sha
        out = run(
            ["docker", "run", "--rm", "--network", "host", image, "sh", "-c", "id -u; id -un; pwd"],
            env={**os.environ, **docker_engine.env},
            timeout=120,
        ).stdout.split()
        assert out == ["1000", "jovyan", "/home/jovyan"]
    finally:
        remove_image(image, engine=docker_engine)
