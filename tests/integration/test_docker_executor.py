"""DockerExecutor: repo2docker in a builder container (the builder image of
``tests/rig/builder``), against the real engine, git over HTTP and the base image.

- a build runs in a labelled builder container with the configured limits and host
  networking, and the container is removed afterwards;
- a service restart (manager stopped, a new manager with a new executor) adopts a running
  builder container: the build shows as ``building`` again with its log replayed and is
  finished (tags) by the new manager;
- cancelling stops and removes the builder container.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid

import aiodocker
import pytest

from repo2docker_service.builds.executors import DockerExecutor
from repo2docker_service.builds.executors.builder import LABEL_BUILDER, LABEL_IMAGE, LABEL_INSTANCE
from repo2docker_service.builds.manager import BuildManager
from repo2docker_service.builds.model import BuildState
from repo2docker_service.builds.request import BuildRequest
from repo2docker_service.builds.store import BuildStore
from repo2docker_service.images.docker import DockerCatalog
from repo2docker_service.images.labels import LABEL_BUILD_ID, ImageLabels
from repo2docker_service.images.naming import DEFAULT_TEMPLATE, ImageNamer
from repo2docker_service.sources import resolve_ref
from tests.rig.engine import remove_image
from tests.rig.net import loopback_env
from tests.rig.repos import dockerfile, unique
from tests.rig.wait import wait_for

pytestmark = pytest.mark.docker

RUN_PREFIX = f"r2dde{uuid.uuid4().hex[:6]}-"
LOG = logging.getLogger("test_docker_executor")


async def builders(instance: str) -> list[dict]:
    async with aiodocker.Docker() as docker:
        found = await docker.containers.list(
            all=True, filters={"label": [f"{LABEL_BUILDER}=true", f"{LABEL_INSTANCE}={instance}"]}
        )
        return [await c.show() for c in found]


@pytest.fixture
async def make(docker_engine, base_image, builder_image, repo2docker_config):
    """Factory of managers with a DockerExecutor; one ``instance`` label per test."""
    made: list[tuple[BuildManager, DockerCatalog, DockerExecutor]] = []
    instance = f"test-{uuid.uuid4().hex[:8]}"

    async def factory(*, build_timeout: float = 180, **executor_kwargs) -> BuildManager:
        namer = ImageNamer(template=DEFAULT_TEMPLATE, prefix=RUN_PREFIX)
        catalog = DockerCatalog(namer=namer, url=docker_engine.host, log=LOG)
        executor = DockerExecutor(
            builder_image=builder_image,
            docker_host=docker_engine.host,
            repo2docker_config=repo2docker_config,
            instance=instance,
            kill_grace_period=2,
            builder_env={k: v for k, v in loopback_env().items() if k.lower() == "no_proxy"},
            log=LOG,
            **executor_kwargs,
        )
        manager = BuildManager(
            executor=executor,
            catalog=catalog,
            namer=namer,
            store=BuildStore(history_limit=50),
            resolver=functools.partial(resolve_ref, env=loopback_env()),
            allowed_repo_schemes=("http",),
            build_timeout=build_timeout,
            build_idle_timeout=120,
            log=LOG,
        )
        await manager.start()
        made.append((manager, catalog, executor))
        return manager

    factory.instance = instance
    yield factory
    for manager, catalog, executor in made:
        executor._detached = False
        await manager.stop()
        await executor.close()
        await catalog.close()
    async with aiodocker.Docker() as docker:
        for container in await docker.containers.list(
            all=True, filters={"label": [f"{LABEL_INSTANCE}={instance}"]}
        ):
            await container.delete(force=True)
        for image in await docker.images.list():
            for tag in image.get("RepoTags") or []:
                if tag.startswith(RUN_PREFIX):
                    remove_image(tag)


async def test_build_in_builder_container(make, git_http, base_image):
    manager = await make(builder_cpu_limit=1.5, builder_memory_limit="1G")
    url = git_http.create_repo(
        unique("dex/plain"), dockerfile(base_image, "RUN echo in-builder", fresh=True)
    )
    result = await manager.submit(BuildRequest(owner="eve", repo=url, name="plain"))
    build = result.build
    # while it runs: a labelled container with the limits and host networking
    running = await wait_for(lambda: builders(make.instance), timeout=30, what="the builder")
    info = running[0]
    labels = info["Config"]["Labels"]
    assert labels[LABEL_IMAGE] == build.image and labels[LABEL_BUILD_ID] == build.id
    assert info["HostConfig"]["NetworkMode"] == "host"
    assert info["HostConfig"]["NanoCpus"] == 1_500_000_000
    assert info["HostConfig"]["Memory"] == 1 << 30
    assert "repo2docker" in info["Config"]["Cmd"] and url in info["Config"]["Cmd"]
    await asyncio.wait_for(build.wait(), 180)
    assert build.state is BuildState.BUILT, build.log_text()
    assert "in-builder" in build.log_text()
    image = await manager.catalog.engine.client().images.inspect(build.image)
    assert ImageLabels.parse(image["Config"]["Labels"]).build_id == build.id
    assert await manager.catalog.exists(build.latest_image)
    assert await builders(make.instance) == []  # removed after the build


async def test_restart_adopts_running_builder(make, git_http, base_image):
    first = await make()
    url = git_http.create_repo(
        unique("dex/adopt"),
        dockerfile(
            base_image,
            "RUN echo before-restart",
            "RUN sleep 6",
            "RUN echo after-restart",
            fresh=True,
        ),
    )
    build = (await first.submit(BuildRequest(owner="fay", repo=url, name="adopt"))).build
    await wait_for(
        lambda: asyncio.sleep(0, "before-restart" in build.log_text()),
        timeout=60,
        what="the first RUN step",
    )
    # the service stops (SIGTERM): the builder container keeps running
    await first.stop()
    running = await builders(make.instance)
    assert len(running) == 1 and running[0]["State"]["Running"], running

    # a new service process: new executor, new manager, empty store
    second = await make()
    assert second.get(build.id) is None
    await second.recover()
    adopted = second.get(build.id)
    assert adopted is not None and adopted is not build
    assert adopted.state is BuildState.BUILDING and adopted.image == build.image
    assert adopted.owner == "fay" and adopted.commit == build.commit
    await asyncio.wait_for(adopted.wait(), 120)
    assert adopted.state is BuildState.BUILT, adopted.log_text()
    log = adopted.log_text()
    assert "before-restart" in log and "after-restart" in log  # replayed from the start
    assert await second.catalog.exists(adopted.latest_image)
    assert await builders(make.instance) == []
    # and a new request for it is a cache hit
    assert (await second.submit(BuildRequest(owner="fay", repo=url, name="adopt"))).cached


async def test_cancel_removes_builder(make, git_http, base_image):
    manager = await make()
    url = git_http.create_repo(
        unique("dex/cancel"), dockerfile(base_image, "RUN sleep 300", fresh=True)
    )
    build = (await manager.submit(BuildRequest(owner="gus", repo=url, name="cancel"))).build
    await wait_for(
        lambda: asyncio.sleep(0, "RUN sleep 300" in build.log_text()),
        timeout=60,
        what="the sleep step",
    )
    cancelled = await manager.cancel(build.id)
    assert cancelled.state is BuildState.CANCELLED
    await wait_for(
        lambda: _no_builders(make.instance),
        timeout=20,
        what="the builder to go",
    )
    assert not await manager.catalog.exists(build.image)


# A Dockerfile's RUN steps run in the engine's BuildKit, outside the builder container's
# memory cgroup: what grows inside it is repo2docker, git (a big clone) and the buildx
# client. This stands in for them: a process of the builder allocating 256 MiB (written,
# so resident) before repo2docker starts, in a container limited to 64M, which the
# kernel's OOM killer stops.
GREEDY = [
    "sh",
    "-c",
    'echo allocating; python3 -c \'x = b"x" * (256 << 20)\' && exec repo2docker "$@"',
    "repo2docker",
]


async def test_builder_out_of_memory_says_so(make, git_http, base_image):
    manager = await make(builder_memory_limit="64M", builder_repo2docker_command=GREEDY)
    url = git_http.create_repo(unique("dex/oom"), dockerfile(base_image, "RUN echo never"))
    build = (await manager.submit(BuildRequest(owner="oona", repo=url, name="oom"))).build
    await asyncio.wait_for(build.wait(), 120)
    cause = "repo2docker in the builder container ran out of memory (limit 64M)"
    assert build.state is BuildState.FAILED
    assert build.error == (f"{cause} and was killed (exit status 137); last output: Killed"), (
        build.log_text()
    )
    logs = [e.data["message"] for e in build.events() if e.type == "log"]
    assert logs[:2] == ["allocating", "Killed"]  # the shell says it, repo2docker cannot
    assert logs[-1] == (
        f"{cause} and was killed (exit status 137) "
        "(an administrator can raise DockerExecutor.builder_memory_limit)"
    )
    await wait_for(lambda: _no_builders(make.instance), timeout=20, what="the builder to go")


async def _no_builders(instance: str) -> bool:
    return await builders(instance) == []
