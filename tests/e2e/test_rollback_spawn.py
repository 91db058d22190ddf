"""Roll back, then spawn: the hub's spawner starts the old commit.

alice builds the bundled example at two commits (only README.md differs), rolls `latest`
back to the first through the API, and starts a server of the image the service now offers
her (DockerSpawner with the service's helper, through the hub's REST API). The server's
README is the first commit's, and so is the commit label of its container's image.
"""

from __future__ import annotations

import pytest

from tests.rig.api import build, request
from tests.rig.engine import docker
from tests.rig.git import files_from_dir
from tests.rig.parts import EXAMPLES_DIR
from tests.rig.spawn import RUN, container_of, stop_server, wait_ready

pytestmark = [pytest.mark.hub, pytest.mark.docker]


def test_rolled_back_environment_spawns_the_old_commit(e2e_hub, e2e_git, hello_image):
    git, _ = e2e_git
    repo = f"e2e-{RUN}/rollback"
    files = files_from_dir(EXAMPLES_DIR / "hello")
    files["README.md"] = f"version one {RUN}\n"
    url = git.create_repo(repo, files)
    first = build(e2e_hub, "alice", repo=url, name="rollback")
    git.commit(repo, {"README.md": f"version two {RUN}\n"})
    second = build(e2e_hub, "alice", repo=url, name="rollback")
    assert first["commit"] != second["commit"]
    token = e2e_hub.token_for("alice")
    path = f"api/images/{second['owner_slug']}/rollback"

    status, rolled = request(
        "POST",
        e2e_hub.service_url + path + "/latest",
        token=token,
        body={"tag": first["commit"][:12]},
    )
    assert status == 200, rolled
    status, offered = request("GET", e2e_hub.service_url + "api/users/alice/images", token=token)
    entry = next(i for i in offered["images"] if i["name"] == "rollback")
    assert entry["commit"] == first["commit"] and entry["image"] == first["image"]

    server = "rollback"
    status, body = request(
        "POST",
        f"{e2e_hub.url}/hub/api/users/alice/servers/{server}",
        token=token,
        body={"image": entry["image"]},
        timeout=120,
    )
    assert status in (201, 202), body
    try:
        wait_ready(e2e_hub, "alice", server)
        status, readme = request(
            "GET",
            f"{e2e_hub.url}/user/alice/{server}/api/contents/README.md?content=1",
            token=token,
        )
        assert status == 200, readme
        assert readme["content"] == f"version one {RUN}\n"
        label = docker(
            "inspect",
            "-f",
            '{{index .Config.Labels "repo2docker-service.commit"}}',
            container_of("alice", server),
        ).stdout.strip()
        assert label == first["commit"]
        # the history says which server runs it
        status, history = request("GET", e2e_hub.service_url + path, token=token)
        runs = {e["commit"]: e["servers"] for e in history["history"]}
        assert runs[first["commit"]] == [container_of("alice", server)]
        assert runs[second["commit"]] == []
    finally:
        stop_server(e2e_hub, "alice", server)
