"""End-to-end fixtures: a second real hub whose spawner is repo2docker_service.hub.dockerspawner.

The hub (JupyterHub + configurable-http-proxy + the service, all on 127.0.0.1) starts
spawned servers with DockerSpawner on the host network. The bundled example
(examples/hello, with jupyterhub-singleuser) is built once per session through the service's
API as alice; the slow part (pip installing JupyterHub and JupyterLab, about 70 s) is cached
by Docker's build cache afterwards, so later sessions and the launch tests take seconds.

Everything these tests create is named with a random prefix and removed at the end.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from tests.hub.hubrig import start_hub
from tests.realparts import EXAMPLES_DIR as EXAMPLES
from tests.realparts import OFFLINE_CONFIG, files_from_dir, loopback_env

RUN = secrets.token_hex(3)
CONTAINER_PREFIX = f"r2de2e-{RUN}"
IMAGE_PREFIX = f"r2de2e-{RUN}-"
SPAWNER_TOKEN = secrets.token_hex(24)

SPAWNER_CONFIG = f"""
import os
from repo2docker_service.hub.config import configure_jupyterhub

PORT = os.environ["REPO2DOCKER_SERVICE_PORT"]
configure_jupyterhub(
    c,
    service_url=f"http://127.0.0.1:{{PORT}}/services/repo2docker/",
    token={SPAWNER_TOKEN!r},
    spawner_class="repo2docker_service.hub.dockerspawner.Repo2DockerHostSpawner",
)
c.DockerSpawner.prefix = {CONTAINER_PREFIX!r}
c.DockerSpawner.pull_policy = "never"
c.DockerSpawner.remove = True
c.Spawner.start_timeout = 180
c.Spawner.http_timeout = 120
"""


def docker(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["docker", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=check,
        env=loopback_env(),
    )


def request(method, url, *, token=None, body=None, timeout=60):
    """(status, parsed JSON or text) for a request on loopback; never raises for HTTP errors."""
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"token {token}"
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=timeout) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode(errors="replace")


def follow_build(hub, build_id, user, timeout=600):
    """Read the build's SSE stream to the end; return the final build record."""
    req = urllib.request.Request(
        hub.service_url + f"api/builds/{build_id}/events",
        headers={"Authorization": f"token {hub.token_for(user)}"},
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    done = None
    with opener.open(req, timeout=timeout) as resp:
        event = None
        for raw in resp:
            line = raw.decode(errors="replace").rstrip("\n")
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event == "done":
                done = json.loads(line[6:])
    assert done is not None, "the event stream ended without a done event"
    return done


def build(hub, user, *, repo, name, ref="main", display_name=None, shared=False):
    """Build through the API (or take the cached image); return the image model."""
    body = {"repo": repo, "ref": ref, "name": name}
    if display_name:
        body["display_name"] = display_name
    if shared:
        body["shared"] = True
    status, result = request(
        "POST", hub.service_url + "api/builds", token=hub.token_for(user), body=body
    )
    assert status in (200, 202), result
    if not result["cached"]:
        done = follow_build(hub, result["build"]["id"], user)
        assert done["state"] == "built", done
    status, images = request("GET", hub.service_url + "api/images", token=hub.token_for(user))
    assert status == 200, images
    owner = "" if shared else user
    matches = [i for i in images["images"] if i["name"] == name and i["owner"] == owner]
    assert matches, images
    return matches[0]


def wait_ready(hub, user, server, timeout=180):
    """Poll the hub until the named server is ready; return its model."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        status, model = request("GET", f"{hub.url}/hub/api/users/{user}", token=hub.token_for(user))
        last = model
        entry = (model or {}).get("servers", {}).get(server) if status == 200 else None
        if entry and entry.get("ready"):
            return entry
        if status == 200 and entry is None:
            raise AssertionError(f"server {user}/{server} is gone: {hub.log_text()[-3000:]}")
        time.sleep(0.5)
    raise AssertionError(f"server {user}/{server} not ready in {timeout} s: {last}")


def stop_server(hub, user, server):
    request(
        "DELETE",
        f"{hub.url}/hub/api/users/{user}/servers/{server}",
        token=hub.token_for(user),
        body={"remove": True},
    )


def container_of(user, server):
    """The container DockerSpawner runs for a named server (its default name template)."""
    return f"{CONTAINER_PREFIX}-{user}--{server}"


@pytest.fixture(scope="session")
def e2e_git(git_http):
    """The git server, with the bundled example as ``e2e-<run>/hello``."""
    url = git_http.create_repo(f"e2e-{RUN}/hello", files_from_dir(EXAMPLES / "hello"))
    return git_http, url


@pytest.fixture(scope="session")
def e2e_hub(tmp_path_factory, docker_engine, base_image, git_http):
    """A hub with Repo2DockerHostSpawner; the service builds with the offline config."""
    try:
        hub = start_hub(
            tmp_path_factory.mktemp("e2e-hub"),
            service_config=(
                'c.Repo2DockerService.allowed_repo_schemes = ["http", "https"]\n'
                f"c.Repo2DockerService.repo2docker_config = {str(OFFLINE_CONFIG)!r}\n"
                f"c.Repo2DockerService.image_prefix = {IMAGE_PREFIX!r}\n"
                "c.Repo2DockerService.default_cpu_limit = 1\n"
                'c.Repo2DockerService.default_memory_limit = "1G"\n'
                f"c.Repo2DockerService.launch_git_host = {git_http.base_url!r}\n"
            ),
            extra_config=SPAWNER_CONFIG,
            env=docker_engine.env,
        )
    except RuntimeError as e:
        pytest.fail(f"Could not start JupyterHub for the e2e tests: {e}")
    try:
        yield hub
    finally:
        for user in ("alice", "bob", "admin1"):
            status, model = request(
                "GET", f"{hub.url}/hub/api/users/{user}", token=hub.token_for(user)
            )
            for server in (model or {}).get("servers", {}) if status == 200 else []:
                stop_server(hub, user, server)
        hub.stop()
        cleanup_docker()


def cleanup_docker():
    """Remove this run's containers and images (ignoring only 'not found')."""
    out = docker("ps", "-aq", "--filter", f"name={CONTAINER_PREFIX}", check=False).stdout.split()
    if out:
        docker("rm", "-f", *out, check=False)
    refs = docker(
        "images",
        "--format",
        "{{.Repository}}:{{.Tag}}",
        "--filter",
        "label=repo2docker-service.owner",
    ).stdout.split()
    mine = [r for r in refs if r.startswith(IMAGE_PREFIX) or f"/{IMAGE_PREFIX}" in r]
    if mine:
        result = docker("rmi", "-f", *mine, check=False)
        if result.returncode != 0 and "No such image" not in result.stderr:
            raise RuntimeError(f"could not remove images {mine}: {result.stderr}")


@pytest.fixture(scope="session")
def hello_image(e2e_hub, e2e_git):
    """alice's build of the bundled example (jupyterhub-singleuser), built once per session."""
    _, url = e2e_git
    start = time.monotonic()
    image = build(e2e_hub, "alice", repo=url, name="hello", display_name="Hello example")
    print(f"\n[e2e] example image {image['image']} ready in {time.monotonic() - start:.1f} s")
    return image
