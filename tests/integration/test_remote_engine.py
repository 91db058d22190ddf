"""Remote engines: builds and the catalog follow ``DOCKER_HOST`` to a Docker engine
elsewhere, here a second dockerd listening on a loopback TCP port (``remote_engine``: its
own data root and bridge; builds run with ``--network none`` all the same, nothing they do
needs a network).

- LocalExecutor + DockerCatalog: the image is built in and listed from the remote engine,
  and never appears in the default one;
- registry mode: the remote engine pushes to the registry and the catalog lists it there;
- DockerExecutor: the builder container runs in the remote engine and repo2docker in it
  talks to that engine over ``DOCKER_HOST=tcp://...`` (host network).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid

import pytest

from repo2docker_service.builds.executors import DockerExecutor, LocalExecutor
from repo2docker_service.builds.manager import BuildManager
from repo2docker_service.builds.model import BuildState
from repo2docker_service.builds.request import BuildRequest
from repo2docker_service.builds.store import BuildStore
from repo2docker_service.images.docker import DockerCatalog
from repo2docker_service.images.naming import DEFAULT_TEMPLATE, ImageNamer
from repo2docker_service.images.registry.catalog import RegistryCatalog
from repo2docker_service.images.registry.client import RegistryClient
from repo2docker_service.sources import resolve_ref
from tests.rig.engine import image_exists
from tests.rig.net import loopback_env
from tests.rig.parts import OFFLINE_CONFIG
from tests.rig.repos import dockerfile, unique

pytestmark = pytest.mark.docker

RUN_PREFIX = f"r2drem{uuid.uuid4().hex[:6]}-"
LOG = logging.getLogger("test_remote_engine")


@pytest.fixture(scope="module")
def remote_r2d_config(tmp_path_factory):
    """The offline repo2docker config plus ``--network none`` for the bridge-less engine."""
    path = tmp_path_factory.mktemp("remote-r2d") / "repo2docker_config.py"
    path.write_text(
        OFFLINE_CONFIG.read_text()
        + '\nc.DockerEngine.extra_buildx_build_args = ["--network", "none"]\n'
    )
    return path


async def run_manager(manager: BuildManager, req: BuildRequest):
    await manager.start()
    try:
        result = await manager.submit(req)
        await asyncio.wait_for(result.build.wait(), 180)
        return result.build
    finally:
        await manager.stop()


def manager_for(*, executor, catalog, namer, push=False) -> BuildManager:
    return BuildManager(
        executor=executor,
        catalog=catalog,
        namer=namer,
        store=BuildStore(),
        resolver=functools.partial(resolve_ref, env=loopback_env()),
        allowed_repo_schemes=("http",),
        push=push,
        log=LOG,
    )


def remote_env(remote_engine) -> dict[str, str]:
    env = {**remote_engine.env}
    for key in ("NO_PROXY", "no_proxy"):
        env[key] = loopback_env()[key]
    return env


async def test_build_and_list_on_remote_engine(
    remote_engine, git_http, base_image, remote_r2d_config
):
    namer = ImageNamer(template=DEFAULT_TEMPLATE, prefix=RUN_PREFIX)
    catalog = DockerCatalog(namer=namer, url=remote_engine.host, log=LOG)
    executor = LocalExecutor(
        repo2docker_config=remote_r2d_config, env=remote_env(remote_engine), log=LOG
    )
    url = git_http.create_repo(
        unique("remote/local"), dockerfile(base_image, "RUN echo remote > /marker")
    )
    try:
        build = await run_manager(
            manager_for(executor=executor, catalog=catalog, namer=namer),
            BuildRequest(owner="ida", repo=url, name="remote"),
        )
        assert build.state is BuildState.BUILT, build.log_text()
        infos = await catalog.list_images(owner="ida")
        assert [i.image for i in infos] == [build.image]
        assert remote_engine.docker("image", "inspect", build.latest_image).returncode == 0
        assert not image_exists(build.image) and not image_exists(build.latest_image)
    finally:
        await catalog.close()


async def test_registry_mode_on_remote_engine(
    remote_engine, git_http, base_image, remote_r2d_config, own_registry
):
    namer = ImageNamer(template=DEFAULT_TEMPLATE, registry=own_registry.host, prefix=RUN_PREFIX)
    catalog = RegistryCatalog(namer=namer, client=RegistryClient(own_registry.host), log=LOG)
    executor = LocalExecutor(
        repo2docker_config=remote_r2d_config, env=remote_env(remote_engine), log=LOG
    )
    url = git_http.create_repo(
        unique("remote/reg"), dockerfile(base_image, "RUN echo pushed > /marker")
    )
    try:
        build = await run_manager(
            manager_for(executor=executor, catalog=catalog, namer=namer, push=True),
            BuildRequest(owner="jan", repo=url, name="remotereg"),
        )
        assert build.state is BuildState.BUILT, build.log_text()
        infos = await catalog.list_images(owner="jan")
        assert [(i.image, i.latest) for i in infos] == [(build.image, build.latest_image)]
        assert not image_exists(build.image)
    finally:
        await catalog.close()


async def test_docker_executor_on_remote_engine(
    remote_engine, git_http, base_image, builder_image, remote_r2d_config
):
    remote_engine.load(builder_image)
    namer = ImageNamer(template=DEFAULT_TEMPLATE, prefix=RUN_PREFIX)
    catalog = DockerCatalog(namer=namer, url=remote_engine.host, log=LOG)
    executor = DockerExecutor(
        builder_image=builder_image,
        docker_host=remote_engine.host,
        repo2docker_config=remote_r2d_config,
        instance=f"remote-{uuid.uuid4().hex[:6]}",
        builder_env={k: v for k, v in loopback_env().items() if k.lower() == "no_proxy"},
        log=LOG,
    )
    url = git_http.create_repo(
        unique("remote/dex"), dockerfile(base_image, "RUN echo dex > /marker")
    )
    try:
        build = await run_manager(
            manager_for(executor=executor, catalog=catalog, namer=namer),
            BuildRequest(owner="kit", repo=url, name="remotedex"),
        )
        assert build.state is BuildState.BUILT, build.log_text()
        assert [i.image for i in await catalog.list_images(owner="kit")] == [build.image]
        assert not image_exists(build.image)
        assert remote_engine.docker("ps", "-aq").stdout.strip() == ""  # builder removed
    finally:
        await executor.close()
        await catalog.close()
