"""Named servers with a ``name_template`` lacking ``{servername}``: each server its own
container, and a container that is not a server's own is never removed.

The e2e hub's DockerSpawner has ``name_template = "{prefix}-{username}"`` (see
``tests/rig/spawn.py``), as many admins configured it; real JupyterHub, DockerSpawner,
proxy, service and dockerd.
"""

from __future__ import annotations

import json
import time

import pytest

from repo2docker_service.hub.dockernames import owner_labels
from tests.rig.api import request
from tests.rig.engine import docker
from tests.rig.spawn import CONTAINER_PREFIX, container_of, stop_server, wait_ready

pytestmark = [pytest.mark.hub, pytest.mark.docker]


def spawn(hub, user, server, image):
    return request(
        "POST",
        f"{hub.url}/hub/api/users/{user}/servers/{server}",
        token=hub.token_for(user),
        body={"image": image},
        timeout=120,
    )


def server_status(hub, user, server):
    return request("GET", f"{hub.url}/user/{user}/{server}/api/status", token=hub.token_for(user))[
        0
    ]


def labels_of(name):
    return json.loads(docker("inspect", name).stdout)[0]["Config"]["Labels"]


def test_two_named_servers_get_two_containers(e2e_hub, hello_image):
    image = hello_image["image"]
    servers = ("one", "two")
    try:
        for server in servers:
            status, body = spawn(e2e_hub, "alice", server, image)
            assert status in (201, 202), body
        for server in servers:
            wait_ready(e2e_hub, "alice", server)
            assert server_status(e2e_hub, "alice", server) == 200
            # its own container, labelled as this server's
            assert labels_of(container_of("alice", server)).items() >= (
                owner_labels("alice", server).items()
            )
        # the template as configured would have named both "{prefix}-alice"
        assert docker("inspect", f"{CONTAINER_PREFIX}-alice", check=False).returncode != 0
        stop_server(e2e_hub, "alice", "two")
        deadline = time.monotonic() + 60
        while docker("inspect", container_of("alice", "two"), check=False).returncode == 0:
            assert time.monotonic() < deadline, "server two's container was not removed"
            time.sleep(0.5)
        # stopping one left the other running
        assert server_status(e2e_hub, "alice", "one") == 200
        assert docker("inspect", container_of("alice", "one"), check=False).returncode == 0
    finally:
        for server in servers:
            stop_server(e2e_hub, "alice", server)


def test_a_container_that_is_not_the_servers_is_left_alone(e2e_hub, hello_image, base_image):
    """A container under the server's name that this server did not start (someone's, or
    another server's under an old template): a clear refusal, and it survives clean-up."""
    server = "taken"
    name = container_of("alice", server)
    docker("create", "--name", name, "--label", "made-by=test", base_image, "true")
    try:
        status, body = spawn(e2e_hub, "alice", server, hello_image["image"])
        assert status == 409, body
        assert "is taken by a container that is not this server's" in body["message"]
        assert name in body["message"]
        # the hub cleaned up the failed start (spawner.stop) without touching it
        deadline = time.monotonic() + 60
        while True:
            _, model = request(
                "GET", f"{e2e_hub.url}/hub/api/users/alice", token=e2e_hub.token_for("alice")
            )
            entry = (model or {}).get("servers", {}).get(server)
            if not entry or not (entry.get("pending") or entry.get("ready")):
                break
            assert time.monotonic() < deadline, entry
            time.sleep(0.5)
        assert labels_of(name) == {"made-by": "test"}
        assert "leaving it alone" in e2e_hub.log_text()
    finally:
        stop_server(e2e_hub, "alice", server)
        docker("rm", "-f", name, check=False)
