"""The end-to-end hub: its spawner starts the images the service built.

The hub (JupyterHub + configurable-http-proxy + the service, all on 127.0.0.1) starts spawned
servers with ``repo2docker_service.hub.dockerspawner`` on the host network. Everything a session
creates is named with the random :data:`RUN` prefix and removed by :func:`cleanup_docker`.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any, Protocol

from tests.rig.api import request
from tests.rig.engine import local_images, remove_containers, remove_images
from tests.rig.hub import Hub
from tests.rig.wait import wait_until

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
# as many admins' configs have it (older DockerSpawner docs): no {{servername}}. The helper
# names named servers "{{prefix}}-{{username}}--{{servername}}" anyway (container_of)
c.DockerSpawner.name_template = "{{prefix}}-{{username}}"
c.DockerSpawner.pull_policy = "never"
c.DockerSpawner.remove = True
c.Spawner.start_timeout = 180
c.Spawner.http_timeout = 120
"""


def e2e_service_config(offline_config: Path, git_host: str) -> str:
    """The service's config in the e2e hub: offline builds, small limits, launch links."""
    return (
        'c.Repo2DockerService.allowed_repo_schemes = ["http", "https"]\n'
        f"c.Executor.repo2docker_config = {str(offline_config)!r}\n"
        f"c.Repo2DockerService.image_prefix = {IMAGE_PREFIX!r}\n"
        "c.Repo2DockerService.default_cpu_limit = 1\n"
        'c.Repo2DockerService.default_memory_limit = "1G"\n'
        # written as admins type it (DockerSpawner's mem_limit would refuse "16GB" itself)
        'c.Repo2DockerService.machine_profiles = [{"name": "big", "cpu": 1, "memory": "16GB"}]\n'
        f"c.Repo2DockerService.launch_git_host = {git_host!r}\n"
    )


class HubView(Protocol):
    """What :func:`wait_ready` needs of a hub: a rig :class:`~tests.rig.hub.Hub`, or a view
    of a deployment (the compose test's)."""

    url: str  # public URL, no trailing slash

    def token_for(self, user: str) -> str:
        """An API token of ``user``."""
        ...

    def log_text(self) -> str:
        """The hub's recent log, for error messages."""
        ...


def wait_ready(hub: HubView, user: str, server: str, timeout: float = 180) -> dict[str, Any]:
    """Poll the hub until the named server is ready; return its model.

    Raises:
        AssertionError: the server is gone, or not ready within ``timeout`` seconds.
    """
    last: list[Any] = [None]

    def ready() -> dict[str, Any] | None:
        status, model = request("GET", f"{hub.url}/hub/api/users/{user}", token=hub.token_for(user))
        last[0] = model
        entry = (model or {}).get("servers", {}).get(server) if status == 200 else None
        if entry and entry.get("ready"):
            return dict(entry)
        if status == 200 and entry is None:
            raise AssertionError(f"server {user}/{server} is gone: {hub.log_text()[-3000:]}")
        return None

    try:
        return wait_until(ready, timeout=timeout, interval=0.5, what=f"server {user}/{server}")
    except TimeoutError:
        raise AssertionError(
            f"server {user}/{server} not ready in {timeout} s: {last[0]}\n{hub.log_text()[-3000:]}"
        ) from None


def stop_server(hub: Hub, user: str, server: str) -> None:
    """Ask the hub to stop and remove ``user``'s named server (the answer is not checked)."""
    request(
        "DELETE",
        f"{hub.url}/hub/api/users/{user}/servers/{server}",
        token=hub.token_for(user),
        body={"remove": True},
    )


def stop_all_servers(hub: Hub, users: tuple[str, ...] = ("alice", "bob", "admin1")) -> None:
    """Stop every named server of ``users``."""
    for user in users:
        status, model = request("GET", f"{hub.url}/hub/api/users/{user}", token=hub.token_for(user))
        for server in (model or {}).get("servers", {}) if status == 200 else []:
            stop_server(hub, user, server)


def container_of(user: str, server: str) -> str:
    """The container a named server runs in: DockerSpawner's default template, which the
    helper uses for named servers when the configured one (:data:`SPAWNER_CONFIG`) lacks
    ``{servername}``."""
    return f"{CONTAINER_PREFIX}-{user}--{server}"


def cleanup_docker() -> None:
    """Remove this run's containers and images (RuntimeError unless only 'not found')."""
    remove_containers(CONTAINER_PREFIX)
    mine = local_images(IMAGE_PREFIX, label="repo2docker-service.owner")
    if mine:
        remove_images(mine)
