"""A service killed mid-build (SIGKILL) leaves a repo2docker process behind; the next
start stops it and reports the build as lost, not as built."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import uuid

import pytest

from repo2docker_service.builds.executors import LocalExecutor
from repo2docker_service.builds.executors.local import find_orphan_builds
from repo2docker_service.builds.manager import BuildManager
from repo2docker_service.builds.model import BuildState
from repo2docker_service.builds.store import BuildStore
from repo2docker_service.images.docker import DockerCatalog
from repo2docker_service.images.naming import DEFAULT_TEMPLATE, ImageNamer
from tests.rig.net import loopback_env
from tests.rig.repos import dockerfile
from tests.rig.wait import eventually

pytestmark = pytest.mark.docker

# a stand-in for the service process: its argv names repo2docker_service, as the real one does
SERVICE_SCRIPT = textwrap.dedent(
    """
    import asyncio, functools, json, logging, sys
    import repo2docker_service
    from repo2docker_service.builds.executors import LocalExecutor
    from repo2docker_service.builds.manager import BuildManager
    from repo2docker_service.builds.request import BuildRequest
    from repo2docker_service.builds.store import BuildStore
    from repo2docker_service.images.docker import DockerCatalog
    from repo2docker_service.images.naming import DEFAULT_TEMPLATE, ImageNamer
    from repo2docker_service.sources import resolve_ref

    prefix, repo, config, docker_host, env = sys.argv[1:6]
    env = json.loads(env)

    async def main():
        namer = ImageNamer(template=DEFAULT_TEMPLATE, prefix=prefix)
        catalog = DockerCatalog(namer=namer, url=docker_host)
        manager = BuildManager(
            executor=LocalExecutor(repo2docker_config=config, env=env),
            catalog=catalog, namer=namer, store=BuildStore(history_limit=5),
            resolver=functools.partial(resolve_ref, env=env),
            allowed_repo_schemes=("http",),
        )
        await manager.start()
        result = await manager.submit(BuildRequest(owner="alice", repo=repo, ref="main"))
        build = result.build
        async for event in build.follow():
            if event.type == "log" and "sleeping-now" in event.data.get("message", ""):
                print(json.dumps({"id": build.id, "image": build.image}), flush=True)
        await asyncio.sleep(3600)

    asyncio.run(main())
    """
)


async def test_killed_service_build_is_reported_lost(
    docker_engine, base_image, git_http, repo2docker_config
):
    prefix = f"r2dlost{uuid.uuid4().hex[:6]}-"
    repo = git_http.create_repo(
        f"lost/{prefix}",
        dockerfile(base_image, "RUN echo sleeping-now && sleep 300"),
    )
    env = {**os.environ, **docker_engine.env, **loopback_env()}
    service = subprocess.Popen(
        [
            sys.executable,
            "-c",
            SERVICE_SCRIPT,
            prefix,
            repo,
            str(repo2docker_config),
            docker_engine.host,
            json.dumps({**docker_engine.env, **loopback_env(), "PATH": os.environ["PATH"]}),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = await asyncio.wait_for(asyncio.to_thread(service.stdout.readline), 120)
        started = json.loads(line)
    finally:
        service.send_signal(signal.SIGKILL)  # a crash: no cleanup runs
        service.wait(10)

    orphans = [pid for pid, args in find_orphan_builds() if any(prefix in a for a in args)]
    assert len(orphans) == 1, "the killed service's repo2docker should still be running"

    namer = ImageNamer(template=DEFAULT_TEMPLATE, prefix=prefix)
    catalog = DockerCatalog(namer=namer, url=docker_engine.host)
    manager = BuildManager(
        executor=LocalExecutor(repo2docker_config=str(repo2docker_config), kill_grace_period=3),
        catalog=catalog,
        namer=namer,
        store=BuildStore(history_limit=5),
        log=logging.getLogger("test_lost"),
    )
    try:
        await manager.recover()
        build = manager.get(started["id"])
        assert build is not None, "the lost build is listed"
        assert build.state is BuildState.LOST
        assert build.owner == "alice" and build.image == started["image"]
        assert "stopped while this build was running" in build.error
        await eventually(
            lambda: not os.path.exists(f"/proc/{orphans[0]}"), timeout=10, interval=0.1
        )
        assert not [p for p, a in find_orphan_builds() if any(prefix in x for x in a)]
        assert not await catalog.exists(started["image"]), "a lost build tags no image"
    finally:
        await catalog.close()
