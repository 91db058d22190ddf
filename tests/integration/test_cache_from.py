"""Rebuilds that reuse layers: a notebook-only change on an engine that has only the registry.

The repository's Dockerfile installs its "requirements" (a ``RUN`` step that needs no
network) before it copies the content. The first build runs on the default engine and
pushes to a registry; the notebook changes; the rebuild runs on a second, fresh dockerd
(``remote_engine``) that never built anything of this repository, with the service's own
``--cache-from`` (the environment's ``latest`` in the registry). With the executors'
default ``inline_build_cache`` the rebuild's log says the requirements step was
``CACHED``; with it off, the fresh engine runs that step again (buildx 0.13 with the
engine's default ``docker`` driver: an image without inline cache metadata cannot serve as
cache to another engine). Times are measured in ``benchmarks/bench_cache_from.py``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import uuid

import pytest

from repo2docker_service.builds.executors import LocalExecutor
from repo2docker_service.builds.manager import BuildManager
from repo2docker_service.builds.model import Build, BuildState
from repo2docker_service.builds.request import BuildRequest
from repo2docker_service.builds.store import BuildStore
from repo2docker_service.images.naming import DEFAULT_TEMPLATE, ImageNamer
from repo2docker_service.images.registry.catalog import RegistryCatalog
from repo2docker_service.images.registry.client import RegistryClient
from repo2docker_service.sources import resolve_ref
from tests.rig.net import loopback_env
from tests.rig.parts import OFFLINE_CONFIG
from tests.rig.repos import dockerfile, unique

pytestmark = pytest.mark.docker

LOG = logging.getLogger("test_cache_from")


@pytest.fixture(scope="module")
def r2d_config(tmp_path_factory):
    """The offline repo2docker config plus ``--network none`` (the second engine's bridge
    has no NAT; nothing here needs a network)."""
    path = tmp_path_factory.mktemp("cachefrom-r2d") / "repo2docker_config.py"
    path.write_text(
        OFFLINE_CONFIG.read_text()
        + '\nc.DockerEngine.extra_buildx_build_args = ["--network", "none"]\n'
    )
    return path


def step_cached(log: str, marker: str) -> bool | None:
    """Whether the BuildKit step whose command contains ``marker`` was ``CACHED`` in a
    ``--progress plain`` log (``#7 [2/3] RUN ...`` then ``#7 CACHED``); None: no such step."""
    ids = {m.group(1) for m in re.finditer(r"^(#\d+) \[[^\]]*\] .*" + re.escape(marker), log, re.M)}
    if not ids:
        return None
    return any(re.search(rf"^{re.escape(i)} CACHED\s*$", log, re.M) for i in ids)


async def build_once(executor: LocalExecutor, catalog, namer, req: BuildRequest) -> Build:
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
    try:
        result = await manager.submit(req)
        assert result.build is not None
        await asyncio.wait_for(result.build.wait(), 300)
        return result.build
    finally:
        await manager.stop()


@pytest.mark.parametrize("inline", [True, False], ids=["inline-cache", "no-inline-cache"])
async def test_notebook_only_rebuild_on_a_fresh_engine_reuses_the_requirements_layer(
    inline, remote_engine, git_http, base_image, own_registry, r2d_config
):
    marker = f"requirements-{uuid.uuid4().hex[:12]}"
    install = f"RUN echo {marker} && sleep 2 && mkdir -p /opt/req && echo deps > /opt/req/ok"
    files = {**dockerfile(base_image, install, "COPY . /home/content"), "nb.ipynb": "{}\n"}
    name = unique("cachefrom/repo")
    url = git_http.create_repo(name, files)
    prefix = f"r2dcf{uuid.uuid4().hex[:6]}-"
    namer = ImageNamer(template=DEFAULT_TEMPLATE, registry=own_registry.host, prefix=prefix)
    catalog = RegistryCatalog(namer=namer, client=RegistryClient(own_registry.host), log=LOG)
    remote = {**remote_engine.env, **{k: loopback_env()[k] for k in ("NO_PROXY", "no_proxy")}}
    common = {"repo2docker_config": r2d_config, "inline_build_cache": inline, "log": LOG}
    req = BuildRequest(owner="cara", repo=url, ref="main", name="cached")
    try:
        first = await build_once(LocalExecutor(env=loopback_env(), **common), catalog, namer, req)
        assert first.state is BuildState.BUILT, first.log_text()
        assert step_cached(first.log_text(), marker) is False  # it really ran once

        git_http.commit(name, {"nb.ipynb": '{"cells": []}\n'})  # the notebook only
        rebuild = await build_once(LocalExecutor(env=remote, **common), catalog, namer, req)
        assert rebuild.state is BuildState.BUILT, rebuild.log_text()
        assert rebuild.commit != first.commit
        log = rebuild.log_text()
        # the service handed over its previous image: BuildKit looked it up in the registry
        assert f"importing cache manifest from {first.latest_image}" in log, log[-3000:]
        assert step_cached(log, marker) is inline, log[-3000:]
    finally:
        await catalog.close()
