"""Registry mode of the whole service.

- start-up check (the service process alone): a refused login or a URL that is not a
  registry stop the service at once with a critical message; an unreachable registry is
  logged and the service starts anyway;
- through a real hub, with the htpasswd registry and the password from the environment:
  build (push of both tags with the configured login), list from the registry, delete; with
  the registry stopped listings answer the last good list flagged ``stale`` with its age
  (``api/info`` says why) while builds are refused with 503 naming the registry (the
  default ``builds_when_down``); all is well again once the registry is back; the
  password appears nowhere in the service's log.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid

import pytest

from tests.rig.api import call, sse_events
from tests.rig.engine import local_images, remove_images
from tests.rig.hub import start_hub
from tests.rig.net import free_port, loopback_env, no_proxy_opener
from tests.rig.parts import OFFLINE_CONFIG
from tests.rig.repos import dockerfile
from tests.rig.wait import wait_until

pytestmark = pytest.mark.docker


def run_service(tmp_path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    config = tmp_path / "empty_config.py"
    config.write_text("")
    docker_config = tmp_path / "docker-config"
    docker_config.mkdir(exist_ok=True)
    full_env = {
        k: v for k, v in loopback_env().items() if not k.startswith(("JUPYTERHUB_", "REPO2"))
    }
    full_env.update(
        {"REPO2DOCKER_SERVICE_CONFIG": str(config), "DOCKER_CONFIG": str(docker_config)}
    )
    full_env.update(env or {})
    return subprocess.Popen(
        [sys.executable, "-m", "repo2docker_service", "--port", str(free_port()), *args],
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_refused_login_stops_the_service_at_start(tmp_path, htpasswd_registry):
    reg = htpasswd_registry
    proc = run_service(
        tmp_path,
        f"--registry-url={reg.host}",
        f"--Repo2DockerService.registry_username={reg.username}",
        env={"REPO2DOCKER_SERVICE_REGISTRY_PASSWORD": "not-the-password"},
    )
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1, out
    assert "[C " in out and f"Registry {reg.host}" in out and "refused" in out, out
    assert "not-the-password" not in out


def test_docker_config_login_is_used(tmp_path, htpasswd_registry):
    """The login can come from a docker config.json (as `docker login` writes it)."""
    import base64

    reg = htpasswd_registry
    path = tmp_path / "config.json"
    auth = base64.b64encode(f"{reg.username}:{reg.password}".encode()).decode()
    path.write_text(json.dumps({"auths": {reg.host: {"auth": auth}}}))
    proc = run_service(
        tmp_path,
        f"--registry-url={reg.host}",
        f"--Repo2DockerService.registry_config_file={path}",
    )
    try:
        out = wait_for_output(proc, "listening on", timeout=60)
        assert f"Registry login for {reg.host} from {path}" in out
        assert f"Registry {reg.host} answers" in out
    finally:
        stop(proc)


def test_not_a_registry_stops_the_service_at_start(tmp_path, git_http):
    host = git_http.base_url.removeprefix("http://")
    proc = run_service(tmp_path, f"--registry-url={host}")
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1, out
    assert "[C " in out and "does not answer like a registry" in out, out


def test_unreachable_registry_is_only_logged(tmp_path):
    host = f"127.0.0.1:{free_port()}"  # nothing listens there
    proc = run_service(tmp_path, f"--registry-url={host}")
    try:
        out = wait_for_output(proc, "listening on", timeout=60)
        assert "unreachable at start-up" in out and "[C " not in out, out
    finally:
        stop(proc)


def wait_for_output(proc: subprocess.Popen, text: str, *, timeout: float) -> str:
    """Collect the service's output (in a thread) until ``text`` shows up."""
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout
    while not any(text in line for line in list(lines)):
        if proc.poll() is not None:
            reader.join(5)
            raise AssertionError(f"service exited with {proc.returncode}:\n{''.join(lines)}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no {text!r} within {timeout} s:\n{''.join(lines)}")
        time.sleep(0.1)
    return "".join(lines)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


# ----------------------------------------------------------------------------- through the hub


@pytest.fixture(scope="module")
def registry_hub(tmp_path_factory, htpasswd_registry, docker_engine):
    reg = htpasswd_registry
    prefix = f"r2dsvc{uuid.uuid4().hex[:6]}-"
    try:
        hub = start_hub(
            tmp_path_factory.mktemp("registry-hub"),
            service_config=(
                'c.Repo2DockerService.allowed_repo_schemes = ["http"]\n'
                f"c.Executor.repo2docker_config = {str(OFFLINE_CONFIG)!r}\n"
                f"c.Repo2DockerService.image_prefix = {prefix!r}\n"
                f"c.Repo2DockerService.registry_url = {reg.host!r}\n"
                f"c.Repo2DockerService.registry_username = {reg.username!r}\n"
                "c.Repo2DockerService.build_rate_limit = 0\n"
                "c.Repo2DockerService.registry_cache_ttl = 1\n"
            ),
            # (the hub passes REPO2DOCKER_SERVICE_* variables on to the managed service)
            env={"REPO2DOCKER_SERVICE_REGISTRY_PASSWORD": reg.password},
        )
    except RuntimeError as e:
        pytest.fail(f"Could not start JupyterHub: {e}")
    yield hub
    hub.stop()
    remove_images(local_images(prefix))


def test_registry_mode_through_the_hub(registry_hub, htpasswd_registry, git_http, base_image):
    hub, reg = registry_hub, htpasswd_registry
    status, info = call(hub, "GET", "api/info", "alice")
    assert status == 200 and info["registry"] == reg.host

    url = git_http.create_repo(
        f"svc/regenv-{uuid.uuid4().hex[:6]}",
        dockerfile(base_image, "RUN echo svc-registry"),
    )
    status, posted = call(hub, "POST", "api/builds", "alice", {"repo": url, "name": "svcreg"})
    assert status == 202, posted
    events = sse_events(hub, posted["build"]["id"], "alice")
    done = events[-1]["data"]
    assert done["state"] == "built", done
    assert "pushing" in [e["data"]["phase"] for e in events if e["event"] == "phase"]
    status, images = call(hub, "GET", "api/images", "alice")
    mine = [i for i in images["images"] if i["name"] == "svcreg"]
    assert [(i["image"], i["latest"]) for i in mine] == [(done["image"], done["latest_image"])]
    owner_slug = mine[0]["owner_slug"]

    # registry down: listings answer the last good list, flagged stale with its age (not
    # 502/503); builds queue and fail at the push
    reg.stop()
    try:
        wait_until(
            lambda: call(hub, "GET", "api/images", "alice")[1].get("stale"),
            timeout=15,
            interval=0.3,
            what="listings to notice that the registry is down",
        )
        status, stale = call(hub, "GET", "api/images", "alice")
        assert status == 200 and stale["stale"] is True and stale["age_s"] > 0, stale
        assert [i["name"] for i in stale["images"]].count("svcreg") == 1
        status, spawnable = call(hub, "GET", "api/users/alice/images", "alice")
        assert status == 200 and spawnable["stale"] is True, spawnable
        assert "svcreg" in [i["name"] for i in spawnable["images"]]
        status, info = call(hub, "GET", "api/info", "alice")
        assert status == 200 and info["catalog"]["stale"] and not info["catalog"]["live"]
        assert "cannot be read" in info["catalog"]["note"] and info["catalog"]["since"]
        other = git_http.create_repo(
            f"svc/down-{uuid.uuid4().hex[:6]}",
            dockerfile(base_image, "RUN echo svc-down"),
        )
        # (builds_when_down = "fail", the default: refused at once, saying what is down,
        # once readiness has noticed: its checks are reused for a second or two)
        wait_until(
            lambda: call(hub, "GET", "ready", "alice")[0] == 503,
            timeout=15,
            interval=0.3,
            what="readiness to notice that the registry is down",
        )
        status, refused = call(hub, "POST", "api/builds", "alice", {"repo": other, "name": "down"})
        assert status == 503 and "registry" in refused["message"], refused
        assert call(hub, "GET", "api/builds", "alice")[0] == 200
    finally:
        reg.start()
    # back: the listing recovers by itself
    wait_until(
        lambda: call(hub, "GET", "api/images", "alice")[1].get("stale") is False,
        timeout=15,
        interval=0.3,
        what="listings to be current again",
    )
    assert call(hub, "GET", "api/info", "alice")[1]["catalog"]["live"] is True
    status, images = call(hub, "GET", "api/images", "alice")
    assert status == 200 and [i["name"] for i in images["images"]].count("svcreg") == 1

    # delete removes it from the registry
    status, _ = call(hub, "DELETE", f"api/images/{owner_slug}/svcreg", "alice")
    assert status == 204
    status, images = call(hub, "GET", "api/images", "alice")
    assert "svcreg" not in [i["name"] for i in images["images"]]
    assert call(hub, "GET", f"api/images/{owner_slug}/svcreg", "alice")[0] == 404
    opener = no_proxy_opener()
    with pytest.raises(urllib.error.HTTPError) as e:
        opener.open(f"{reg.url}/v2/", timeout=5)
    assert e.value.code == 401  # (the registry still wants a login: no anonymous access)

    assert reg.password not in hub.log_text()
