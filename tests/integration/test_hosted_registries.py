"""The whole service against a registry that behaves like the hosted ones, through a real hub.

The fake front (tests/rig/fake_registry.py, over a real docker-registry) asks for Bearer
tokens from a realm that wants ``service`` and ``scope``, answers 401 (as Docker Hub does)
to reads of a repository that does not exist yet, expires every token mid-way, and turns
every pushed tag into an OCI index with an attestation manifest listed first (as buildx
with provenance). The login comes from a docker credential helper, a small
script on PATH named in the docker config's ``credHelpers``; its secret changes mid-way.

Through it: a build (POST api/builds answered 502 before the missing-vs-refused rule), a
cache hit, a listing after the tokens expired, a listing after the login was rotated, a
restart of the service that lists the same images, a delete; the secrets appear in no log
and no answer. A helper that fails stops the service at start with a clear message. The
DockerExecutor's builder container pushes with the helper's login through the same front.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import secrets
import stat
import subprocess
import sys
import time
import uuid

import aiodocker
import pytest

from repo2docker_service.builds.executors import DockerExecutor
from repo2docker_service.builds.executors.builder import LABEL_INSTANCE
from repo2docker_service.builds.manager import BuildManager
from repo2docker_service.builds.model import BuildState
from repo2docker_service.builds.request import BuildRequest
from repo2docker_service.builds.store import BuildStore
from repo2docker_service.images.naming import DEFAULT_TEMPLATE, ImageNamer
from repo2docker_service.images.registry.catalog import RegistryCatalog
from repo2docker_service.images.registry.client import RegistryClient
from repo2docker_service.images.registrylogin import RegistryLogin
from repo2docker_service.sources import resolve_ref
from tests.rig.api import call, sse_events
from tests.rig.engine import local_images, remove_images
from tests.rig.fake_registry import FrontBehaviour, RegistryFront, start_front
from tests.rig.hub import Hub, start_hub
from tests.rig.net import free_port, loopback_env
from tests.rig.parts import OFFLINE_CONFIG, require
from tests.rig.repos import dockerfile

pytestmark = pytest.mark.docker

PREFIX = f"r2dhost{uuid.uuid4().hex[:6]}-"
HELPER = "r2dstest"


def write_helper(bin_dir, secret_file, calls_file) -> None:
    """``docker-credential-r2dstest``: the login from ``secret_file``, one line per call."""
    path = bin_dir / f"docker-credential-{HELPER}"
    path.write_text(
        "#!/bin/sh\n"
        '[ "$1" = get ] || exit 2\n'
        f'server=$(cat); echo "$server" >> {calls_file}\n'
        f"cat {secret_file}\n"
    )
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def set_login(front: RegistryFront, secret_file, password: str) -> None:
    front.password = front.token_server.password = password
    secret_file.write_text(
        json.dumps({"ServerURL": front.host, "Username": front.username, "Secret": password})
    )


@pytest.fixture(scope="module")
def hosted(tmp_path_factory, docker_engine):
    work = tmp_path_factory.mktemp("hosted")
    front = require(start_front, work / "front", password="pw-" + secrets.token_hex(8))
    front.behaviour = FrontBehaviour(auth="token", unknown_repo_status=401, attestation_index=True)
    bin_dir = work / "bin"
    bin_dir.mkdir()
    secret_file, calls = work / "secret.json", work / "calls"
    set_login(front, secret_file, front.password)
    write_helper(bin_dir, secret_file, calls)
    docker_config = work / "docker-config.json"
    docker_config.write_text(json.dumps({"credHelpers": {front.host: HELPER}}))
    service_config = (
        'c.Repo2DockerService.allowed_repo_schemes = ["http"]\n'
        f"c.Executor.repo2docker_config = {str(OFFLINE_CONFIG)!r}\n"
        f"c.Repo2DockerService.image_prefix = {PREFIX!r}\n"
        f"c.Repo2DockerService.registry_url = {front.host!r}\n"
        f"c.Repo2DockerService.registry_config_file = {str(docker_config)!r}\n"
        "c.Repo2DockerService.build_rate_limit = 0\n"
        "c.Repo2DockerService.registry_cache_ttl = 1\n"
    )
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}"}
    state = {"front": front, "secret_file": secret_file, "calls": calls, "passwords": []}
    state["passwords"].append(front.password)

    def start(name: str) -> Hub:
        try:
            return start_hub(work / name, service_config=service_config, env=env)
        except RuntimeError as e:
            pytest.fail(f"Could not start JupyterHub: {e}")

    state["start"] = start
    yield state
    front.close()
    remove_images(local_images(PREFIX))


def test_build_cache_hit_listing_restart_delete(hosted, git_http, base_image):
    answers: list[str] = []

    def ask(hub: Hub, *args: object) -> tuple[object, ...]:
        """``call``, keeping every answer to look for secrets in."""
        result = call(hub, *args)  # type: ignore[arg-type]
        answers.append(json.dumps(result))
        return result

    front: RegistryFront = hosted["front"]
    hub = hosted["start"]("hub1")
    try:
        url = git_http.create_repo(
            f"hosted/env-{uuid.uuid4().hex[:6]}", dockerfile(base_image, "RUN echo hosted")
        )
        status, posted = ask(hub, "POST", "api/builds", "alice", {"repo": url, "name": "hosted"})
        assert status == 202, posted  # was 502: "registry refused the configured credentials"
        events = sse_events(hub, posted["build"]["id"], "alice")
        answers.append(json.dumps(events))
        done = events[-1]["data"]
        assert done["state"] == "built", [
            [e["data"] for e in events][-5:],
            front.answered(401)[-10:],
            [(r[1].get("scope"), r[2]) for r in front.token_server.requests][-10:],
            front.answers[-30:],
        ]
        assert front.answered(401), "the front never asked for a login"
        # the tag is an attested index; the service took the platform image's labels
        status, images = ask(hub, "GET", "api/images", "alice")
        mine = [i for i in images["images"] if i["name"] == "hosted"]
        assert status == 200 and [i["image"] for i in mine] == [done["image"]], images
        assert mine[0]["repo"] == url
        owner_slug = mine[0]["owner_slug"]

        # a cache hit
        status, again = ask(hub, "POST", "api/builds", "alice", {"repo": url, "name": "hosted"})
        assert status == 200 and again["cached"] is True, again
        assert again["image"]["image"] == done["image"]

        # every token expires between listings: fetched again, never a refusal
        front.expire_tokens()
        time.sleep(1.1 + 1)  # (registry_cache_ttl 1 s: the next listing reads the registry)
        refused_before = [r for r in front.token_server.requests if r[2] != 200]
        status, images = ask(hub, "GET", "api/images", "alice")
        assert status == 200 and "hosted" in [i["name"] for i in images["images"]]
        assert [r for r in front.token_server.requests if r[2] != 200] == refused_before

        # the helper's secret rotates: the refused token request reads the login again
        calls_before = len(hosted["calls"].read_text().splitlines())
        new_password = "pw-" + secrets.token_hex(8)
        hosted["passwords"].append(new_password)
        set_login(front, hosted["secret_file"], new_password)
        front.expire_tokens()
        time.sleep(1.1)
        status, images = ask(hub, "GET", f"api/images/{owner_slug}/hosted", "alice")
        assert status == 200, images
        calls = hosted["calls"].read_text().splitlines()
        assert len(calls) > calls_before and set(calls) == {front.host}
    finally:
        hub.stop()
    logs = hub.log_text()

    # a restarted service lists the same images; a delete removes them
    hub = hosted["start"]("hub2")
    try:
        status, images = ask(hub, "GET", "api/images", "alice")
        assert status == 200 and [
            i["image"] for i in images["images"] if i["name"] == "hosted"
        ] == [done["image"]]
        status, _ = ask(hub, "DELETE", f"api/images/{owner_slug}/hosted", "alice")
        assert status == 204
        status, images = ask(hub, "GET", "api/images", "alice")
        assert status == 200 and "hosted" not in [i["name"] for i in images["images"]]
        # a name that was deleted is free again (the repository is unknown: a 401 there
        # means "not there yet")
        assert ask(hub, "GET", f"api/images/{owner_slug}/hosted", "alice")[0] == 404
    finally:
        hub.stop()
    logs += hub.log_text()
    for password in hosted["passwords"]:
        assert password not in logs
        assert password not in "\n".join(answers)
    assert "Registry login for" in logs and f"docker-credential-{HELPER}" in logs


def test_failing_helper_stops_the_service_at_start(tmp_path, hosted):
    front: RegistryFront = hosted["front"]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    broken = bin_dir / "docker-credential-broken"
    broken.write_text("#!/bin/sh\necho 'vault sealed'; exit 1\n")
    broken.chmod(0o755)
    docker_config = tmp_path / "config.json"
    docker_config.write_text(json.dumps({"credsStore": "broken"}))
    config = tmp_path / "empty_config.py"
    config.write_text("")
    env = {k: v for k, v in loopback_env().items() if not k.startswith(("JUPYTERHUB_", "REPO2"))}
    env.update(
        {
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "REPO2DOCKER_SERVICE_CONFIG": str(config),
        }
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "repo2docker_service",
            "--port",
            str(free_port()),
            f"--registry-url={front.host}",
            f"--Repo2DockerService.registry_config_file={docker_config}",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "[C " in out and f"Registry {front.host}" in out, out
    assert "cannot read the registry login" in out
    assert "docker-credential-broken get failed with exit status 1: vault sealed" in out


async def test_builder_container_pushes_with_the_helpers_login(
    tmp_path, monkeypatch, hosted, git_http, base_image, builder_image, repo2docker_config
):
    """The DockerExecutor's builder container gets the helper's login (resolved, on stdin)
    and pushes through the front; the secret is in no container's configuration."""
    front: RegistryFront = hosted["front"]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    write_helper(bin_dir, hosted["secret_file"], hosted["calls"])
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    docker_config = tmp_path / "config.json"
    docker_config.write_text(json.dumps({"credHelpers": {front.host: HELPER}}))
    login = RegistryLogin.from_settings(
        front.host,
        username="",
        password="",
        config_file=str(docker_config),
        refresh_interval=0,
        helper_timeout=10,
    )
    namer = ImageNamer(template=DEFAULT_TEMPLATE, registry=front.host, prefix=PREFIX)
    catalog = RegistryCatalog(namer=namer, client=RegistryClient(front.host, login=login))
    instance = f"hosted-{uuid.uuid4().hex[:8]}"
    executor = DockerExecutor(
        builder_image=builder_image,
        repo2docker_config=repo2docker_config,
        instance=instance,
        registry=front.host,
        registry_login=login,
        builder_env={k: v for k, v in loopback_env().items() if k.lower() == "no_proxy"},
    )
    manager = BuildManager(
        executor=executor,
        catalog=catalog,
        namer=namer,
        store=BuildStore(),
        resolver=functools.partial(resolve_ref, env=loopback_env()),
        allowed_repo_schemes=("http",),
        push=True,
    )
    await manager.start()
    inspected: list[str] = []
    try:
        url = git_http.create_repo(
            f"hosted/builder-{uuid.uuid4().hex[:6]}",
            dockerfile(base_image, "RUN echo hosted-builder && sleep 2"),
        )
        build = (await manager.submit(BuildRequest(owner="hal", repo=url, name="hb"))).build
        async with aiodocker.Docker() as docker:
            while not build.terminal:
                for c in await docker.containers.list(
                    all=True, filters={"label": [f"{LABEL_INSTANCE}={instance}"]}
                ):
                    with contextlib.suppress(aiodocker.DockerError):
                        inspected.append(json.dumps(await c.show()))
                await asyncio.sleep(0.2)
        assert build.state is BuildState.BUILT, build.log_text()
        info = await catalog.image_info(build.image)
        assert info is not None and info.latest == build.latest_image and info.repo == url
        assert inspected, "never saw the builder container"
        for password in hosted["passwords"]:
            assert password not in "\n".join(inspected) + build.log_text()
    finally:
        await manager.stop()
        await executor.close()
        await catalog.close()
