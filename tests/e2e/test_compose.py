"""deploy/docker-compose, exercised: build its images, bring it up, build one image, spawn it.

Everything on the host network at 127.0.0.1 with free ports, a unique project name, image
tags and prefixes; torn down (containers, volumes, images) at the end. The images build FROM
local/debian:bookworm; Docker's build cache makes later runs take seconds instead of ~3 min.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import time
from pathlib import Path

import pytest

from tests.rig.api import follow_build, request
from tests.rig.engine import docker, remove_containers, remove_images
from tests.rig.git import files_from_dir
from tests.rig.net import free_port, loopback_env
from tests.rig.parts import EXAMPLES_DIR
from tests.rig.spawn import wait_ready
from tests.rig.wait import wait_until

pytestmark = [pytest.mark.hub, pytest.mark.docker]

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "docker-compose"


class Compose:
    def __init__(self, env: dict[str, str], project: str) -> None:
        self.env = env
        self.project = project
        self.base = [
            "docker",
            "compose",
            "--project-directory",
            str(DEPLOY),
            "-f",
            str(DEPLOY / "docker-compose.yml"),
            "-p",
            project,
        ]

    def __call__(self, *args: str, timeout: float = 300, check: bool = True):
        proc = subprocess.run(
            [*self.base, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"docker compose {' '.join(args)} failed ({proc.returncode}):\n"
                f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
            )
        return proc

    @property
    def hub_url(self) -> str:
        return f"http://127.0.0.1:{self.env['HUB_PORT']}"

    def logs(self) -> str:
        return self("logs", "--no-color", "--tail", "80", check=False).stdout[-6000:]


def docker_socket(host: str) -> str:
    return host[len("unix://") :] if host.startswith("unix://") else "/var/run/docker.sock"


@pytest.fixture(scope="module")
def compose(docker_engine, base_image):
    project = f"r2dc{secrets.token_hex(3)}"
    env = {
        **loopback_env(),
        **docker_engine.env,
        "COMPOSE_PROJECT_NAME": project,
        "R2D_IMAGE": f"repo2docker-service-compose:{project}",
        "R2D_REGISTRY_IMAGE": f"repo2docker-service-registry:{project}",
        "BASE_IMAGE": base_image,
        "DOCKER_SOCKET": docker_socket(docker_engine.host),
        "DOCKER_GID": str(os.stat(docker_socket(docker_engine.host)).st_gid),
        "REPO2DOCKER_SERVICE_TOKEN": secrets.token_hex(32),
        "REPO2DOCKER_SPAWNER_TOKEN": secrets.token_hex(32),
        "DEMO_PASSWORD": secrets.token_urlsafe(12),
        "DEMO_USERS": "alice",
        "DEMO_ADMINS": "admin1",
        "HUB_PORT": str(free_port()),
        "HUB_API_PORT": str(free_port()),
        "PROXY_API_PORT": str(free_port()),
        "SERVICE_PORT": str(free_port()),
        "REGISTRY_PORT": str(free_port()),
        "ALLOWED_REPO_SCHEMES": "http,https",
        "OFFLINE_BUILDS": "1",
        "IMAGE_PREFIX": f"{project}-",
        "CONTAINER_PREFIX": project,
    }
    c = Compose(env, project)
    start = time.monotonic()
    try:
        c("build", timeout=900)
        built = time.monotonic()
        c("up", "-d", timeout=300)
        wait_up(c)
        print(f"\n[compose] build {built - start:.1f} s, up {time.monotonic() - built:.1f} s")
        yield c
    finally:
        teardown(c)


def wait_up(c: Compose, timeout: float = 120) -> None:
    def healthy() -> bool:
        try:
            status, _ = request("GET", f"{c.hub_url}/services/repo2docker/health", timeout=5)
        except OSError:  # URLError: not listening yet
            return False
        return status == 200

    try:
        wait_until(healthy, timeout=timeout, interval=1, what="the compose deployment")
    except TimeoutError:
        raise AssertionError(f"compose deployment not up in {timeout} s:\n{c.logs()}") from None


def teardown(c: Compose) -> None:
    prefix = c.env["CONTAINER_PREFIX"]
    c("down", "--volumes", "--remove-orphans", "--timeout", "10", timeout=180, check=False)
    remove_containers(f"{prefix}-")
    volumes = docker("volume", "ls", "-q", "--filter", f"name={prefix}-user-", check=False)
    for volume in volumes.stdout.split():
        docker("volume", "rm", "-f", volume, check=False)
    refs = docker("images", "--format", "{{.Repository}}:{{.Tag}}", check=False).stdout.split()
    mine = [
        r
        for r in refs
        if r in (c.env["R2D_IMAGE"], c.env["R2D_REGISTRY_IMAGE"])
        or r.split("/", 1)[-1].startswith(c.env["IMAGE_PREFIX"])
    ]
    remove_images(mine)  # RuntimeError unless only "No such image"


def user_token(c: Compose, user: str) -> str:
    """An API token for ``user``, made with ``jupyterhub token`` inside the hub container."""
    out = c(
        "exec",
        "-T",
        "hub",
        "jupyterhub",
        "token",
        user,
        "-f",
        "/etc/jupyterhub/jupyterhub_config.py",
        timeout=120,
    )
    return out.stdout.strip().splitlines()[-1]


def test_compose_deployment_builds_and_spawns(compose, git_http):
    c = compose
    token = user_token(c, "alice")
    url = git_http.create_repo(f"{c.project}/hello", files_from_dir(EXAMPLES_DIR / "hello"))
    service = f"{c.hub_url}/services/repo2docker/"

    start = time.monotonic()
    status, result = request(
        "POST", service + "api/builds", token=token, body={"repo": url, "name": "hello"}
    )
    assert status == 202, f"{result}\n{c.logs()}"
    view = _HubView(c, token)
    done = follow_build(view, result["build"]["id"], "alice")
    assert done["state"] == "built", f"{done}\n{c.logs()}"
    image = done["image"]
    # pushed to the deployment's registry
    registry = f"127.0.0.1:{c.env['REGISTRY_PORT']}"
    assert image.startswith(f"{registry}/{c.env['IMAGE_PREFIX']}alice/hello:")
    status, tags = request(
        "GET", f"http://{registry}/v2/{c.env['IMAGE_PREFIX']}alice/hello/tags/list"
    )
    assert status == 200 and image.rsplit(":", 1)[1] in tags["tags"], tags
    print(f"\n[compose] build through the service: {time.monotonic() - start:.1f} s")

    start = time.monotonic()
    hub_api = f"{c.hub_url}/hub/api/users/alice"
    status, body = request("POST", hub_api + "/servers/demo", token=token, body={"image": image})
    assert status in (201, 202), f"{body}\n{c.logs()}"
    try:
        wait_ready(view, "alice", "demo")
        status, info = request("GET", f"{c.hub_url}/user/alice/demo/api/status", token=token)
        assert status == 200, info
        print(f"[compose] spawn to /api/status: {time.monotonic() - start:.1f} s")
        container = f"{c.env['CONTAINER_PREFIX']}-alice--demo"
        mounts = docker("inspect", "--format", "{{json .Mounts}}", container).stdout
        assert f"{c.env['CONTAINER_PREFIX']}-user-alice" in mounts
    finally:
        request("DELETE", hub_api + "/servers/demo", token=token, body={"remove": True})


def test_hub_and_service_run_as_non_root_without_compilers(compose):
    """The service's image (the repository's Dockerfile): uid 10001, the socket's group, no
    compiler, repo2docker at the pinned version."""
    for service in ("hub", "repo2docker"):
        ids = compose("exec", "-T", service, "id", "-u").stdout.strip()
        assert ids == "10001", service
        groups = compose("exec", "-T", service, "id", "-G").stdout.split()
        assert compose.env["DOCKER_GID"] in groups, service
    probe = compose("exec", "-T", "repo2docker", "sh", "-c", "command -v gcc cc", check=False)
    assert probe.returncode != 0 and not probe.stdout.strip()
    pinned = next(
        line.split("=", 1)[1]
        for line in (DEPLOY.parents[1] / "Dockerfile").read_text().splitlines()
        if line.startswith("ARG REPO2DOCKER_VERSION=")
    )
    version = compose("exec", "-T", "repo2docker", "repo2docker", "--version").stdout.strip()
    assert version == pinned


class _HubView:
    """What follow_build and wait_ready need from a hub: URLs, a user's token, the log."""

    def __init__(self, c: Compose, token: str) -> None:
        self.url = c.hub_url
        self.service_url = f"{c.hub_url}/services/repo2docker/"
        self._token = token
        self._compose = c

    def token_for(self, user: str) -> str:
        return self._token

    def log_text(self) -> str:
        return self._compose.logs()
