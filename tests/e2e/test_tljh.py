"""The TLJH plugin inside The Littlest JupyterHub itself, on the real Docker engine.

TLJH's source comes from its git mirror (tests/rig/upstream.py; the module skips, naming the
mirror, when it is absent). ``<prefix>/hub`` is laid out as TLJH's bootstrap and installer
do, with TLJH's own installer functions installing this package as the plugin, the way
docs/tljh.md's install does (``--plugin "repo2docker-service[dockerspawner]" --admin <name>``;
the details and what is left out are in tests/rig/tljh.py). The hub starts through TLJH's
own ``tljh/jupyterhub_config.py`` (which applies ``config/config.yaml`` and calls the plugin
through TLJH's plugin manager), without systemd. TLJH's escape hatch
``config/jupyterhub_config.d/`` overrides only what cannot work here:

- the proxy: configurable-http-proxy instead of traefik (TLJH's installer downloads the
  traefik binary from GitHub, which this machine cannot reach);
- the public address: 127.0.0.1 on a free port (TLJH: traefik on :80, every interface);
- a token-only client service that creates the admin user and its token.

The hub (15001) and the service (8585) keep TLJH's and the plugin's fixed ports, so two
sessions running this module at once on one machine collide (the second fails naming the
port).

Everything else is TLJH's and the plugin's: FirstUseAuthenticator, the admin from
config.yaml, the idle culler, the plugin's Docker spawner on the host network with its
per-user volume, ``pull_policy = "never"``.

Time (2 cores, load average 2-8): 46-83 s in all when TLJH's requirements venv
(kept under ~/.cache/repo2docker-service/tljh-hub-env, tests/rig/tljh.py) and the image's
layers are cached; the first run on a machine adds 30-80 s for that venv and about a minute
for the image's pip layer.
"""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from tests.rig.api import build, request
from tests.rig.engine import DockerEngine, docker, local_images, remove_images
from tests.rig.git import GitHTTPServer
from tests.rig.hub import Hub
from tests.rig.parts import OFFLINE_CONFIG
from tests.rig.repos import dockerfile
from tests.rig.spawn import wait_ready
from tests.rig.tljh import install_hub_env, start_tljh_hub
from tests.rig.upstream import TLJH, mirror

RUN = secrets.token_hex(3)
ADMIN = f"tljhadmin{RUN}"  # an admin through config.yaml (the installer's --admin), no group
IMAGE_PREFIX = f"r2dtljh-{RUN}-"
SERVER = "tljh"
CONTAINER = f"jupyter-{ADMIN}--{SERVER}"  # DockerSpawner's default name for named servers
VOLUME = f"repo2docker-user-{ADMIN}"  # the plugin's per-user volume

pytestmark = [pytest.mark.hub, pytest.mark.docker]


@pytest.fixture(scope="module")
def tljh_hub(
    tmp_path_factory: pytest.TempPathFactory, docker_engine: DockerEngine, base_image: str
) -> Iterator[Hub]:
    """TLJH's hub with the plugin; removes its server, volume and images afterwards."""
    src = mirror(TLJH).extract(tmp_path_factory.mktemp("tljh-src"))
    prefix = tmp_path_factory.mktemp("tljh-prefix")
    try:
        python = install_hub_env(src, prefix, ADMIN)
    except subprocess.CalledProcessError as e:
        pytest.fail(f"TLJH's hub environment: {e}\n{e.stdout}\n{e.stderr}"[-5000:])
    service_config = (
        'c.Repo2DockerService.allowed_repo_schemes = ["http", "https"]\n'
        f"c.Executor.repo2docker_config = {str(OFFLINE_CONFIG)!r}\n"
        f"c.Repo2DockerService.image_prefix = {IMAGE_PREFIX!r}\n"
    )
    try:
        hub = start_tljh_hub(src, prefix, python, service_config)
    except RuntimeError as e:
        pytest.fail(f"TLJH's hub did not start: {e}")
    try:
        yield hub
    finally:
        request(
            "DELETE",
            f"{hub.url}/hub/api/users/{ADMIN}/servers/{SERVER}",
            token=hub.client_token,
            body={"remove": True},
        )
        hub.stop()
        docker("rm", "-f", CONTAINER, check=False)
        docker("volume", "rm", VOLUME, check=False)
        mine = local_images(IMAGE_PREFIX)
        if mine:
            remove_images(mine)


def singleuser_repo(base_image: str, hub_version: str) -> dict[str, str]:
    """A Dockerfile repository whose image the hub can start: jupyterhub-singleuser of the
    hub's major.minor (TLJH pins JupyterHub 5), a non-root user, the volume's mount point."""
    major_minor = ".".join(hub_version.split(".")[:2])
    return dockerfile(
        base_image,
        "RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-venv"
        " && rm -rf /var/lib/apt/lists/*",
        "RUN python3 -m venv /opt/venv && /opt/venv/bin/pip install --no-cache-dir"
        f' "jupyterhub=={major_minor}.*" jupyter_server',
        "ENV PATH=/opt/venv/bin:$PATH",
        "RUN useradd --create-home --uid 1000 --user-group --shell /bin/bash jovyan",
        "USER jovyan",
        "WORKDIR /home/jovyan",
        "RUN mkdir -p /home/jovyan/work",
        'CMD ["jupyterhub-singleuser"]',
    )


def test_the_service_answers_and_the_hub_admin_administers(tljh_hub: Hub):
    status, info = request(
        "GET", tljh_hub.service_url + "api/info", token=tljh_hub.token_for(ADMIN)
    )
    assert status == 200, info
    # config.yaml's admin is in no group: hub admins administer environments by default
    assert info["user"]["name"] == ADMIN
    assert info["user"]["scopes"] == ["admin", "build", "view"], info
    # TLJH's loader ran: its config.yaml defaults, its culler, the plugin's spawner
    status, hub_info = request("GET", f"{tljh_hub.url}/hub/api/info", token=tljh_hub.client_token)
    assert status == 200, hub_info
    assert hub_info["version"].startswith("5."), hub_info  # TLJH pins JupyterHub 5
    assert hub_info["authenticator"]["class"].endswith("FirstUseAuthenticator"), hub_info
    assert hub_info["spawner"]["class"].endswith("Repo2DockerHostSpawner"), hub_info
    status, services = request(
        "GET", f"{tljh_hub.url}/hub/api/services", token=tljh_hub.client_token
    )
    assert status == 200 and {"cull-idle", "repo2docker"} <= set(services), services


def test_a_build_runs_and_a_server_starts_from_it_with_the_users_volume(
    tljh_hub: Hub, git_http: GitHTTPServer, base_image: str
):
    _, hub_info = request("GET", f"{tljh_hub.url}/hub/api/")
    url = git_http.create_repo(
        f"tljh-{RUN}/hello", singleuser_repo(base_image, hub_info["version"])
    )
    image = build(tljh_hub, ADMIN, repo=url, name="hello")
    assert image["image"].startswith(f"{IMAGE_PREFIX}{ADMIN}/hello:"), image

    token = tljh_hub.token_for(ADMIN)
    status, body = request(
        "POST",
        f"{tljh_hub.url}/hub/api/users/{ADMIN}/servers/{SERVER}",
        token=token,
        body={"image": image["image"]},
    )
    assert status in (201, 202), body
    wait_ready(tljh_hub, ADMIN, SERVER, timeout=120)
    status, answer = request("GET", f"{tljh_hub.url}/user/{ADMIN}/{SERVER}/api/status", token=token)
    assert status == 200, answer  # the server answers through the proxy

    inspected: list[dict[str, Any]] = json.loads(docker("inspect", CONTAINER).stdout)
    assert inspected[0]["Config"]["Image"] == image["image"]
    mounts = {m.get("Name"): m for m in inspected[0]["Mounts"]}
    assert mounts[VOLUME]["Destination"] == "/home/jovyan/work", mounts
    assert mounts[VOLUME]["Type"] == "volume"
