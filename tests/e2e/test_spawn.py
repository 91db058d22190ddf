"""Build the bundled example, spawn it with DockerSpawner through the hub, reach the server.

Real JupyterHub + proxy + repo2docker-service + dockerd; spawned containers on the host
network at 127.0.0.1; alice (build), bob (view), admin1 (admin).
"""

from __future__ import annotations

import json
import textwrap
import time

import pytest
from playwright.sync_api import expect

from tests.rig.api import build, request
from tests.rig.browser import login
from tests.rig.engine import docker
from tests.rig.spawn import container_of, stop_server, wait_ready

pytestmark = [pytest.mark.hub, pytest.mark.docker]


def spawn_api(hub, user, server, body):
    return request(
        "POST",
        f"{hub.url}/hub/api/users/{user}/servers/{server}",
        token=hub.token_for(user),
        body=body,
        timeout=120,
    )


def test_service_answers_which_images_a_user_may_start(e2e_hub, hello_image):
    url = e2e_hub.service_url + "api/users/alice/images"
    status, answer = request("GET", url, token=e2e_hub.token_for("alice"))
    assert status == 200, answer
    entry = next(i for i in answer["images"] if i["image"] == hello_image["image"])
    assert entry["limits"] == {"cpu": 1.0, "memory": "1G", "profile": None, "source": "default"}
    assert hello_image["latest"] in entry["references"]
    # bob may not ask about alice, and his own answer does not list her private image
    status, answer = request("GET", url, token=e2e_hub.token_for("bob"))
    assert status == 403 and "custom:repo2docker:spawn" in answer["message"]
    status, answer = request(
        "GET", e2e_hub.service_url + "api/users/bob/images", token=e2e_hub.token_for("bob")
    )
    assert status == 200
    assert hello_image["image"] not in [i["image"] for i in answer["images"]]
    # an admin may ask about anyone
    status, answer = request("GET", url, token=e2e_hub.token_for("admin1"))
    assert status == 200 and hello_image["image"] in [i["image"] for i in answer["images"]]


def test_spawn_through_the_rest_api_reaches_the_server(e2e_hub, hello_image):
    server = "api"
    start = time.monotonic()
    status, body = spawn_api(e2e_hub, "alice", server, {"image": hello_image["image"]})
    assert status in (201, 202), body
    try:
        wait_ready(e2e_hub, "alice", server)
        status, info = request(
            "GET",
            f"{e2e_hub.url}/user/alice/{server}/api/status",
            token=e2e_hub.token_for("alice"),
        )
        assert status == 200, info
        print(f"\n[e2e] REST spawn to /api/status: {time.monotonic() - start:.1f} s")
        # the service tells alice (asking the hub with her own token) that it runs
        status, answer = request(
            "GET", e2e_hub.service_url + "api/servers", token=e2e_hub.token_for("alice")
        )
        assert status == 200, answer
        assert answer["available"] is True
        mine = {s["name"]: s for s in answer["servers"]}
        assert mine[server]["url"] == f"/user/alice/{server}/"
        assert mine[server]["ready"] is True
        assert mine[server]["image"] == hello_image["image"]
        # bob's answer is his own: nothing of alice's
        status, answer = request(
            "GET", e2e_hub.service_url + "api/servers", token=e2e_hub.token_for("bob")
        )
        assert status == 200 and server not in {s["name"] for s in answer["servers"]}

        # limits from the service's defaults were applied to the container
        inspect = json.loads(docker("inspect", container_of("alice", server)).stdout)[0]
        assert inspect["Config"]["Image"] == hello_image["image"]
        assert inspect["HostConfig"]["NetworkMode"] == "host"
        assert inspect["HostConfig"]["Memory"] == 1024**3
        assert inspect["HostConfig"]["CpuQuota"] == inspect["HostConfig"]["CpuPeriod"] == 100000
    finally:
        stop_server(e2e_hub, "alice", server)


def test_a_profile_size_as_admins_type_it_reaches_the_container(e2e_hub, e2e_git, hello_image):
    """machine_profiles has {"memory": "16GB"}: listed as 16G, and DockerSpawner starts it."""
    _, url = e2e_git
    image = build(e2e_hub, "alice", repo=url, name="hello-big", profile="big")
    status, answer = request(
        "GET", e2e_hub.service_url + "api/users/alice/images", token=e2e_hub.token_for("alice")
    )
    assert status == 200, answer
    assert answer["machine_profiles"] == [
        {"slug": "big", "display_name": "big", "cpu": 1.0, "memory": "16G"}
    ]
    entry = next(i for i in answer["images"] if i["image"] == image["image"])
    assert entry["limits"] == {"cpu": 1.0, "memory": "16G", "profile": "big", "source": "profile"}
    server = "big"
    status, body = spawn_api(e2e_hub, "alice", server, {"image": image["image"]})
    assert status in (201, 202), body
    try:
        wait_ready(e2e_hub, "alice", server)
        inspect = json.loads(docker("inspect", container_of("alice", server)).stdout)[0]
        assert inspect["HostConfig"]["Memory"] == 16 * 1024**3
    finally:
        stop_server(e2e_hub, "alice", server)


SERVER_TOKEN_PROBE = textwrap.dedent(
    """
    import json, os, sys, urllib.error, urllib.request
    base = sys.argv[1]
    out = {}
    for path in ("api/info", "api/users/alice/images", "api/builds"):
        req = urllib.request.Request(
            base + path,
            headers={"Authorization": "token " + os.environ["JUPYTERHUB_API_TOKEN"]},
        )
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(req, timeout=30) as resp:
                out[path] = [resp.status, json.loads(resp.read())]
        except urllib.error.HTTPError as e:
            out[path] = [e.code, json.loads(e.read() or b"null")]
    print(json.dumps(out))
    """
)


def test_server_token_can_call_the_service_from_inside_the_container(e2e_hub, hello_image):
    """configure_jupyterhub gives servers' $JUPYTERHUB_API_TOKEN the service's view scope."""
    server = "token"
    status, body = spawn_api(e2e_hub, "alice", server, {"image": hello_image["image"]})
    assert status in (201, 202), body
    try:
        wait_ready(e2e_hub, "alice", server)
        result = docker(
            "exec",
            container_of("alice", server),
            "python3",
            "-c",
            SERVER_TOKEN_PROBE,
            e2e_hub.service_url,
        )
        out = json.loads(result.stdout)
        status, info = out["api/info"]
        assert status == 200, out
        assert info["user"]["name"] == "alice"
        # view only: the server can read, never build (alice herself may build)
        assert info["user"]["scopes"] == ["view"]
        status, images = out["api/users/alice/images"]
        assert status == 200 and hello_image["image"] in [i["image"] for i in images["images"]]
        assert out["api/builds"][0] == 200
    finally:
        stop_server(e2e_hub, "alice", server)


def test_rest_api_refuses_another_users_private_image(e2e_hub, hello_image):
    status, body = spawn_api(e2e_hub, "bob", "steal", {"image": hello_image["image"]})
    try:
        assert status == 403, body
        assert "not available to bob" in body["message"]
    finally:
        stop_server(e2e_hub, "bob", "steal")
    status, body = spawn_api(e2e_hub, "bob", "any", {"image": "local/debian:bookworm"})
    try:
        assert status == 403, body
    finally:
        stop_server(e2e_hub, "bob", "any")
    # no image at all: a clear 400, not DockerSpawner's default image
    status, body = spawn_api(e2e_hub, "alice", "empty", {})
    try:
        assert status == 400 and "Choose an environment" in body["message"], body
    finally:
        stop_server(e2e_hub, "alice", "empty")


@pytest.mark.browser
def test_spawn_through_the_form_in_chromium(e2e_hub, hello_image, page, artifacts):
    server = "form"
    login(page, e2e_hub, "alice")
    try:
        page.goto(f"{e2e_hub.url}/hub/spawn/alice/{server}")
        choice = page.locator(f'.repo2docker-image[data-image="{hello_image["image"]}"]')
        assert choice.locator(".r2d-display-name").inner_text() == "Hello example"
        assert choice.locator(".r2d-repo").inner_text() == f"{hello_image['repo']}@main"
        assert "UTC" in choice.locator(".r2d-built").inner_text()
        page.screenshot(path=str(artifacts / "e2e-spawn-form.png"), full_page=True)
        choice.locator("input[type=radio]").check()
        start = time.monotonic()
        page.locator("#spawn_form input[type=submit], #spawn_form button[type=submit]").click()
        page.wait_for_url(f"**/user/alice/{server}/**", timeout=180_000)
        print(f"\n[e2e] form spawn to the server: {time.monotonic() - start:.1f} s")
        page.screenshot(path=str(artifacts / "e2e-spawned-server.png"))
        response = page.goto(f"{e2e_hub.url}/user/alice/{server}/api/status")
        assert response.status == 200
        assert "started" in response.json()
        # the environments page (browser session: the OAuth token's read:servers!user)
        # shows the environment's running server with a link to it
        page.goto(e2e_hub.service_url)
        row = page.locator(f'#environments-body tr[data-name="{hello_image["name"]}"]')
        expect(row.locator(".r2d-server-state")).to_have_text("server running")
        expect(row.locator('[data-action="open"]')).to_have_attribute(
            "href", f"/user/alice/{server}/"
        )
    finally:
        stop_server(e2e_hub, "alice", server)


@pytest.mark.browser
def test_form_refuses_another_users_image_with_a_message(e2e_hub, hello_image, page, artifacts):
    login(page, e2e_hub, "bob")
    try:
        response = page.goto(f"{e2e_hub.url}/hub/spawn/bob/steal?image={hello_image['image']}")
        assert response.status == 403
        message = page.locator(".alert-danger, .alert").first.inner_text()
        assert "not available to bob" in message
        # the form is shown again, without alice's image
        assert page.locator(f'[data-image="{hello_image["image"]}"]').count() == 0
        page.screenshot(path=str(artifacts / "e2e-spawn-refused.png"), full_page=True)
    finally:
        stop_server(e2e_hub, "bob", "steal")
