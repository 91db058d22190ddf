"""Private repositories: credentials reach git (ls-remote and repo2docker's clone) through
the environment only, and a known secret appears nowhere else.

Places searched for the secret (and for a URL carrying it):
- argv of every process (``/proc/*/cmdline``) and ``ps auxww``, sampled while the build runs;
- the API: POST answer, GET build, build list, log download, SSE events, image list and
  image detail;
- the image: ``docker inspect`` (labels, config, history) and ``docker history --no-trunc``;
- the service's own log (``hub.log``), and the builder container's ``docker inspect``
  (DockerExecutor, also with a registry login for the push).
The git server's request log proves the clone itself authenticated (a POST
``git-upload-pack`` by that user), and the records drop the credentials when the build ends.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import subprocess
import threading
import time
import uuid
from pathlib import Path

import aiodocker
import pytest

from repo2docker_service.builds.executors import DockerExecutor
from repo2docker_service.builds.executors.builder import LABEL_INSTANCE
from repo2docker_service.builds.manager import BuildManager
from repo2docker_service.builds.model import BuildState
from repo2docker_service.builds.request import BuildRequest
from repo2docker_service.builds.store import BuildStore
from repo2docker_service.images.dockerconfig import RegistryCredentials
from repo2docker_service.images.naming import DEFAULT_TEMPLATE, ImageNamer
from repo2docker_service.images.registry.catalog import RegistryCatalog
from repo2docker_service.images.registry.client import RegistryClient
from repo2docker_service.sources import GitCredentials, resolve_ref
from tests.rig.api import call, sse_events
from tests.rig.engine import docker, local_images, remove_images
from tests.rig.net import loopback_env
from tests.rig.repos import dockerfile, unique

pytestmark = [pytest.mark.docker]

LOG = logging.getLogger("test_private_repos")


class ProcessWatcher:
    """Samples every process's argv (``/proc/*/cmdline``) and ``ps auxww`` in a thread."""

    def __init__(self, needles: list[str], expect: tuple[str, ...] = ()) -> None:
        self.needles = needles
        self.expect = ("repo2docker", "buildx", *expect)
        self.hits: list[str] = []
        self.samples = 0
        self.saw: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ProcessWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            texts = []
            for entry in Path("/proc").iterdir():
                if entry.name.isdigit():
                    try:
                        texts.append(
                            (entry / "cmdline")
                            .read_bytes()
                            .replace(b"\0", b" ")
                            .decode(errors="replace")
                        )
                    except OSError:
                        pass
            texts.append(
                subprocess.run(["ps", "auxww"], capture_output=True, text=True, check=False).stdout
            )
            blob = "\n".join(texts)
            for word in self.expect:
                if word in blob:
                    self.saw.add(word)
            for needle in self.needles:
                if needle in blob:
                    self.hits.append(
                        next(line for line in blob.splitlines() if needle in line)[:300]
                    )
            self.samples += 1
            self._stop.wait(0.05)


def clone_authenticated(git_http, name: str, user: str) -> bool:
    return any(
        r.method == "POST" and f"/{name}.git/git-upload-pack" in r.path and r.user == user
        for r in git_http.requests
    )


# ----------------------------------------------------------------------------- via the hub


@pytest.mark.hub
def test_private_build_through_the_hub_leaks_nothing(hub, git_http, base_image):
    secret = "s3cr3t-" + uuid.uuid4().hex
    user = "priv-" + uuid.uuid4().hex[:6]
    name = unique("private/hub")
    url = git_http.create_repo(
        name,
        dockerfile(base_image, f"RUN echo private-build {name} && sleep 2"),
        auth=(user, secret),
    )
    needles = [secret, f"{user}:{secret}"]
    body = {
        "repo": url,
        "ref": "main",
        "name": "privhub",
        "credentials": {"username": user, "password": secret},
    }
    with ProcessWatcher(needles, expect=(url,)) as watcher:
        status, posted = call(hub, "POST", "api/builds", "alice", body)
        assert status == 202, posted
        build_id = posted["build"]["id"]
        events = sse_events(hub, build_id, "alice")
    assert events[-1]["data"]["state"] == "built", events[-1]
    assert watcher.hits == [], watcher.hits
    # the sampling saw the build's processes (repo2docker with the URL, buildx)
    assert watcher.samples > 10 and watcher.saw == set(watcher.expect), watcher.saw
    # the clone itself authenticated with the credentials (the service only does ls-remote)
    assert clone_authenticated(git_http, name, user)

    image = events[-1]["data"]["image"]
    owner_slug, env = image.rpartition(":")[0].split("/")[-2:]
    texts = {
        "POST answer": json.dumps(posted),
        "events": json.dumps(events),
        "GET build": json.dumps(call(hub, "GET", f"api/builds/{build_id}", "alice")),
        "build list": json.dumps(call(hub, "GET", "api/builds", "alice")),
        "log download": call(hub, "GET", f"api/builds/{build_id}/logs", "alice", raw=True)[
            2
        ].decode(),
        "image list": json.dumps(call(hub, "GET", "api/images", "alice")),
        "image detail": json.dumps(call(hub, "GET", f"api/images/{owner_slug}/{env}", "alice")),
        "docker inspect": docker("image", "inspect", image).stdout,
        "docker history": docker("history", "--no-trunc", image).stdout,
        "service log": hub.log_text(),
        "cached answer": json.dumps(call(hub, "POST", "api/builds", "alice", body)),
    }
    assert "private-build" in texts["log download"]
    assert json.loads(texts["cached answer"])[1]["cached"] is True
    for where, text in texts.items():
        for needle in needles:
            assert needle not in text, f"secret found in {where}"
    assert f"{user}@" not in texts["docker inspect"] and url in texts["docker inspect"]
    # without credentials the repository cannot be read in any URL form (with or without
    # ``.git``, trailing slash): a clear 422, still no secret
    forms = git_http.url_forms(name)
    assert any(not form.rstrip("/").endswith(".git") for form in forms)
    for form in forms:
        status, refused = call(hub, "POST", "api/builds", "alice", {"repo": form, "name": "x"})
        assert status == 422 and "could not read" in refused["message"], (form, refused)
        assert secret not in json.dumps(refused)


# ----------------------------------------------------------------------------- DockerExecutor


async def test_private_build_in_builder_container_with_registry_login(
    docker_engine, base_image, builder_image, repo2docker_config, git_http, htpasswd_registry
):
    """Git credentials and the registry login reach the builder container via stdin only."""
    reg = htpasswd_registry
    secret = "s3cr3t-" + uuid.uuid4().hex
    user = "dpriv-" + uuid.uuid4().hex[:6]
    name = unique("private/builder")
    url = git_http.create_repo(
        name,
        dockerfile(base_image, f"RUN echo private-in-builder {name} && sleep 2"),
        auth=(user, secret),
    )
    needles = [secret, f"{user}:{secret}", reg.password]
    prefix = f"r2dpriv{uuid.uuid4().hex[:6]}-"
    instance = f"priv-{uuid.uuid4().hex[:8]}"
    login = RegistryCredentials(reg.username, reg.password)
    namer = ImageNamer(template=DEFAULT_TEMPLATE, registry=reg.host, prefix=prefix)
    catalog = RegistryCatalog(namer=namer, client=RegistryClient(reg.host, credentials=login))
    executor = DockerExecutor(
        builder_image=builder_image,
        docker_host=docker_engine.host,
        repo2docker_config=repo2docker_config,
        instance=instance,
        registry=reg.host,
        registry_credentials=login,
        builder_env={k: v for k, v in loopback_env().items() if k.lower() == "no_proxy"},
        log=LOG,
    )
    manager = BuildManager(
        executor=executor,
        catalog=catalog,
        namer=namer,
        store=BuildStore(),
        resolver=functools.partial(resolve_ref, env=loopback_env()),
        allowed_repo_schemes=("http",),
        push=True,
        log=LOG,
    )
    await manager.start()
    inspected: list[str] = []
    try:
        req = BuildRequest(
            owner="hal", repo=url, name="privbuilder", credentials=GitCredentials(user, secret)
        )
        with ProcessWatcher(needles, expect=(url,)) as watcher:
            result = await manager.submit(req)
            build = result.build
            assert req.credentials is None  # the request keeps no copy
            assert build.credentials is not None  # held for the build only
            async with aiodocker.Docker(url=docker_engine.host) as client:
                deadline = time.monotonic() + 120
                while not build.terminal and time.monotonic() < deadline:
                    for c in await client.containers.list(
                        all=True, filters={"label": [f"{LABEL_INSTANCE}={instance}"]}
                    ):
                        try:
                            inspected.append(json.dumps(await c.show()))
                        except aiodocker.DockerError:
                            pass
                    await asyncio.sleep(0.2)
            await asyncio.wait_for(build.wait(), 120)
        assert build.state is BuildState.BUILT, build.log_text()
        assert build.credentials is None
        assert inspected, "never saw the builder container"
        assert any("R2DS_SECRETS_ON_STDIN=1" in text for text in inspected)
        assert watcher.hits == [], watcher.hits
        assert watcher.saw == set(watcher.expect), watcher.saw
        assert clone_authenticated(git_http, name, user)
        info = await catalog.image_info(build.image)
        assert info is not None and info.latest == build.latest_image
        texts = {
            "builder docker inspect": "\n".join(inspected),
            "log": build.log_text(),
            "events": "".join(e.to_sse() for e in build.events()),
            "record": json.dumps(build.to_dict()) + json.dumps(result.to_dict()),
            "catalog": json.dumps(info.to_dict()),
            "docker inspect": docker("image", "inspect", build.image).stdout,
            "docker history": docker("history", "--no-trunc", build.image).stdout,
        }
        assert "private-in-builder" in texts["log"]
        for where, text in texts.items():
            for needle in needles:
                assert needle not in text, f"secret found in {where}"
    finally:
        await manager.stop()
        await executor.close()
        await catalog.close()
        remove_images(local_images(prefix))
