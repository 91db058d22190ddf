"""Real builds: BuildManager + LocalExecutor (repo2docker subprocess) + DockerCatalog.

Everything is real: dockerd with buildx, repo2docker with the offline config, git repositories
over smart HTTP on 127.0.0.1 and Dockerfiles FROM the local base image (``bash
scripts/setup.sh`` makes them). Image names use a prefix unique to this run; every test
removes its images (ignoring only "not found").
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
import uuid

import aiodocker
import pytest

from repo2docker_service.builds.executors import LocalExecutor
from repo2docker_service.builds.manager import BuildManager
from repo2docker_service.builds.model import BuildState
from repo2docker_service.builds.request import BuildRequest
from repo2docker_service.builds.store import BuildStore
from repo2docker_service.errors import Conflict, NotFound, QueueFull
from repo2docker_service.images.docker import DockerCatalog
from repo2docker_service.images.labels import ImageLabels
from repo2docker_service.images.naming import DEFAULT_TEMPLATE, ImageNamer, commit_tag
from repo2docker_service.sources import GitCredentials, resolve_ref
from tests.rig.net import loopback_env, no_proxy_opener
from tests.rig.procs import processes_with
from tests.rig.repos import dockerfile, unique
from tests.rig.wait import wait_for

pytestmark = pytest.mark.docker

RUN_PREFIX = f"r2dit{uuid.uuid4().hex[:8]}-"
SECRET = "pw-" + uuid.uuid4().hex
LOG = logging.getLogger("test_builds")


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture
async def rig(docker_engine, base_image, git_http, repo2docker_config):
    """Factory of managers wired to the real parts; cleans up managers and images."""
    made: list[tuple[BuildManager, DockerCatalog]] = []
    env = {**docker_engine.env}
    for key in ("NO_PROXY", "no_proxy"):
        env[key] = loopback_env()[key]

    async def make(
        *,
        registry: str = "",
        push: bool = False,
        concurrency: int = 1,
        max_queue: int = 5,
        build_timeout: float = 120,
        build_idle_timeout: float = 60,
    ) -> BuildManager:
        namer = ImageNamer(template=DEFAULT_TEMPLATE, registry=registry, prefix=RUN_PREFIX)
        catalog = DockerCatalog(namer=namer, url=docker_engine.host, log=LOG)
        await catalog.start()
        executor = LocalExecutor(
            repo2docker_config=repo2docker_config,
            env=env,
            kill_grace_period=3,
            log=LOG,
        )
        manager = BuildManager(
            executor=executor,
            catalog=catalog,
            namer=namer,
            store=BuildStore(history_limit=50),
            resolver=functools.partial(resolve_ref, env=loopback_env()),
            allowed_repo_schemes=("http",),
            concurrency=concurrency,
            max_queue=max_queue,
            build_timeout=build_timeout,
            build_idle_timeout=build_idle_timeout,
            push=push,
            log=LOG,
        )
        await manager.start()
        made.append((manager, catalog))
        return manager

    yield make
    for manager, catalog in made:
        await manager.stop()
        await catalog.close()
    await remove_run_images(docker_engine.host)


async def remove_run_images(url: str) -> None:
    async with aiodocker.Docker(url=url) as docker:
        for container in await docker.containers.list(all=True):
            if RUN_PREFIX in str(container._container.get("Image", "")):
                try:
                    await container.delete(force=True)
                except aiodocker.DockerError as e:
                    if e.status != 404:
                        raise
        for image in await docker.images.list():
            for tag in image.get("RepoTags") or []:
                if RUN_PREFIX in tag:
                    try:
                        await docker.images.delete(tag, force=True)
                    except aiodocker.DockerError as e:
                        if e.status != 404:
                            raise


async def finished(build, timeout: float = 120):
    await asyncio.wait_for(build.wait(), timeout)
    return build


async def inspect(manager: BuildManager, reference: str) -> dict:
    return await manager.catalog.engine.client().images.inspect(reference)


# ----------------------------------------------------------------------------- tests


async def test_build_cache_new_commit_force_and_restart(rig, git_http, base_image):
    manager = await rig()
    name = unique("envs/first")
    url = git_http.create_repo(name, dockerfile(base_image, f'RUN echo "built {name}"'))
    first_sha = git_http.head(name)

    t0 = time.monotonic()
    result = await manager.submit(
        BuildRequest(owner="alice", repo=url, ref="main", name="first", hints={"cpu": "1"})
    )
    assert not result.cached and not result.joined
    build = await finished(result.build)
    LOG.info("first build took %.1f s", time.monotonic() - t0)
    assert build.state is BuildState.BUILT, build.log_text()
    assert build.commit == first_sha
    assert build.image == f"{RUN_PREFIX}alice/first:{commit_tag(first_sha)}"
    log = build.log_text()
    assert f"built {name}" in log and "Using DockerBuildPack builder" in log
    labels = ImageLabels.parse((await inspect(manager, build.image))["Config"]["Labels"])
    assert labels is not None and labels.owner == "alice" and labels.commit == first_sha
    assert labels.repo == url and labels.ref == "main" and labels.hints == {"cpu": "1"}
    first_id = (await inspect(manager, build.image))["Id"]
    assert (await inspect(manager, build.latest_image))["Id"] == first_id

    # same commit again: cached, nothing built
    again = await manager.submit(BuildRequest(owner="alice", repo=url, ref="main", name="first"))
    assert again.cached and again.build is None
    assert again.image.image == build.image and again.image.latest == build.latest_image
    assert len(manager.list()) == 1

    # a new commit on the branch: new tag, latest moves, the old tag stays
    second_sha = git_http.commit(name, dockerfile(base_image, 'RUN echo "second"'))
    second = await finished(
        (
            await manager.submit(BuildRequest(owner="alice", repo=url, ref="main", name="first"))
        ).build
    )
    assert second.state is BuildState.BUILT, second.log_text()
    assert second.image.endswith(commit_tag(second_sha))
    second_id = (await inspect(manager, second.image))["Id"]
    assert (await inspect(manager, second.latest_image))["Id"] == second_id != first_id
    assert await manager.catalog.exists(build.image)

    # force: rebuilt although the image exists; the replaced image is gone
    forced = await finished(
        (
            await manager.submit(
                BuildRequest(owner="alice", repo=url, ref="main", name="first", force=True)
            )
        ).build
    )
    assert forced.state is BuildState.BUILT, forced.log_text()
    assert "Reusing existing image" not in forced.log_text()
    forced_info = await inspect(manager, forced.image)
    assert forced_info["Id"] != second_id
    assert ImageLabels.parse(forced_info["Config"]["Labels"]).build_id == forced.id
    assert (await inspect(manager, forced.latest_image))["Id"] == forced_info["Id"]
    assert not await manager.catalog.exists(second_id)

    infos = await manager.catalog.list_images(owner="alice")
    mine = [i for i in infos if i.name == "first"]
    assert len(mine) == 1
    info = mine[0]
    assert info.image == forced.image and info.latest == forced.latest_image
    assert info.tags == ["latest", commit_tag(second_sha), commit_tag(first_sha)]
    assert info.commit == second_sha and info.size > 0

    # simulated restart: a new catalog and manager see the same images
    restarted = await rig()
    assert restarted.list() == []
    assert await restarted.recover() >= 1
    again = await restarted.catalog.list_images(owner="alice")
    assert [i.to_dict() for i in again if i.name == "first"] == [info.to_dict()]
    cached = await restarted.submit(BuildRequest(owner="alice", repo=url, name="first"))
    assert cached.cached


async def test_identical_concurrent_submits_build_once(rig, git_http, base_image):
    manager = await rig()
    name = unique("envs/same")
    url = git_http.create_repo(name, dockerfile(base_image, "RUN echo same"))
    results = await asyncio.gather(
        *(manager.submit(BuildRequest(owner="bob", repo=url, name="same")) for _ in range(2))
    )
    assert results[0].build is results[1].build
    assert sorted(r.joined for r in results) == [False, True]
    build = await finished(results[0].build)
    assert build.state is BuildState.BUILT, build.log_text()
    assert len(manager.list()) == 1


async def test_queue_positions_and_queue_full(rig, git_http, base_image):
    manager = await rig(concurrency=1, max_queue=2)
    urls = []
    for n in range(4):
        name = unique(f"envs/queue{n}")
        extra = "RUN sleep 2" if n == 0 else f"RUN echo queue{n}"
        urls.append(git_http.create_repo(name, dockerfile(base_image, extra)))
    builds = []
    for n in range(3):
        result = await manager.submit(BuildRequest(owner="carol", repo=urls[n], name=f"q{n}"))
        builds.append(result.build)
    assert builds[0].state is BuildState.BUILDING
    assert [b.position for b in builds[1:]] == [1, 2]
    assert [b.state for b in builds[1:]] == [BuildState.QUEUED] * 2
    with pytest.raises(QueueFull) as full:
        await manager.submit(BuildRequest(owner="carol", repo=urls[3], name="q3"))
    assert full.value.headers["Retry-After"].isdigit()
    for build in builds:
        await finished(build)
    assert [b.state for b in builds] == [BuildState.BUILT] * 3
    positions = [e.data["position"] for e in builds[2].events() if e.type == "phase"]
    assert [p for p in positions if p] == [2, 1]


def assert_no_build_processes(build) -> None:
    left = processes_with(build.image)
    assert left == [], f"processes of build {build.id} left: {left}"


async def start_sleeper(manager, git_http, base_image, owner: str, seconds: int):
    """Submit a build that sleeps in a RUN step; return it once the sleep runs."""
    name = unique("envs/sleep")
    url = git_http.create_repo(name, dockerfile(base_image, f"RUN sleep {seconds}"))
    build = (await manager.submit(BuildRequest(owner=owner, repo=url, name="sleeper"))).build
    await wait_for(
        lambda: processes_with(f"sleep {seconds}"), timeout=60, what=f"sleep {seconds} to run"
    )
    # the step's header travels buildx -> repo2docker -> the service after the step starts
    # (or, with a short build_timeout on a loaded machine, the build ends first)
    await wait_for(
        lambda: f"RUN sleep {seconds}" in build.log_text() or build.terminal,
        timeout=60,
        what="the RUN step's log",
    )
    if build.terminal:
        return build
    procs = processes_with(build.image)
    assert any("repo2docker" in cmd for _, cmd in procs), procs
    assert any("buildx" in cmd for _, cmd in procs), procs
    return build


async def test_cancel_running_build_kills_process_group(rig, git_http, base_image):
    manager = await rig()
    seconds = 300 + uuid.uuid4().int % 600
    build = await start_sleeper(manager, git_http, base_image, "dave", seconds)
    t0 = time.monotonic()
    cancelled = await manager.cancel(build.id)
    LOG.info("cancel took %.1f s", time.monotonic() - t0)
    assert cancelled.state is BuildState.CANCELLED and cancelled.error == "cancelled"
    assert_no_build_processes(build)
    # buildkit stops the RUN step once its client went away
    await wait_for(
        lambda: not processes_with(f"sleep {seconds}"), timeout=30, what="the RUN step to stop"
    )
    assert not await manager.catalog.exists(build.image)
    assert f"RUN sleep {seconds}" in build.log_text()
    with pytest.raises(Conflict):
        await manager.cancel(build.id)


async def test_build_timeout_kills_process_group(rig, git_http, base_image):
    manager = await rig(build_timeout=5, build_idle_timeout=0)
    seconds = 300 + uuid.uuid4().int % 600
    build = await start_sleeper(manager, git_http, base_image, "erin", seconds)
    await finished(build, timeout=30)
    assert build.state is BuildState.FAILED and build.error == "timed out after 5 s"
    # killed by the timeout, long before the RUN step's sleep (>= 300 s) could end; no
    # tighter wall-clock bound (the machine may be loaded: it once took over 15 s in CI)
    assert 5 <= build.duration < seconds / 2
    assert_no_build_processes(build)
    await wait_for(
        lambda: not processes_with(f"sleep {seconds}"), timeout=30, what="the RUN step to stop"
    )
    assert not await manager.catalog.exists(build.image)


async def test_idle_timeout_kills_process_group(rig, git_http, base_image):
    manager = await rig(build_timeout=120, build_idle_timeout=3)
    seconds = 300 + uuid.uuid4().int % 600
    build = await start_sleeper(manager, git_http, base_image, "frank", seconds)
    await finished(build, timeout=30)
    assert build.state is BuildState.FAILED and build.error == "no output for 3 s"
    assert_no_build_processes(build)
    await wait_for(
        lambda: not processes_with(f"sleep {seconds}"), timeout=30, what="the RUN step to stop"
    )


async def test_failing_build_keeps_log(rig, git_http, base_image):
    manager = await rig()
    name = unique("envs/broken")
    url = git_http.create_repo(name, dockerfile(base_image, "RUN echo about-to-fail-42 && exit 3"))
    build = await finished(
        (await manager.submit(BuildRequest(owner="gina", repo=url, name="broken"))).build
    )
    assert build.state is BuildState.FAILED
    assert build.error.startswith("repo2docker exited with status 1: ")
    assert "exit code: 3" in build.error
    assert "about-to-fail-42" in build.log_text()
    assert build.events()[-1].type == "done"
    assert not await manager.catalog.exists(build.image)
    assert not await manager.catalog.exists(build.latest_image)
    assert await manager.catalog.get(owner_slug="gina", name="broken") is None


async def test_follow_resumes_on_real_build(rig, git_http, base_image):
    manager = await rig()
    name = unique("envs/follow")
    url = git_http.create_repo(
        name, dockerfile(base_image, *[f"RUN echo step-{n}" for n in range(3)])
    )
    build = (await manager.submit(BuildRequest(owner="hank", repo=url, name="follow"))).build
    first = []
    async for event in build.follow():
        first.append(event)
        if len(first) == 5:
            break
    rest = [e async for e in build.follow(after=first[-1].id)]
    events = first + rest
    assert [e.id for e in events] == list(range(1, len(events) + 1))
    assert events[-1].type == "done" and events[-1].data["state"] == "built"
    assert [e.id for e in events] == [e.id for e in build.events()]
    # every log event is one line, no JSON wrapper left
    logs = [e.data["message"] for e in events if e.type == "log"]
    assert logs and not any("\n" in m or "\r" in m or m.startswith('{"message"') for m in logs)


async def test_progress_frames_collapse_to_one_line(rig, git_http, base_image):
    """A build step printing 10,000 carriage-return frames gives a handful of log events.

    (BuildKit clips a step's output beyond 200 KiB/s: 10,000 frames stay under it.)
    """
    manager = await rig()
    name = unique("envs/frames")
    frames = 10_000
    url = git_http.create_repo(
        name,
        dockerfile(
            base_image,
            f"RUN for i in $(seq 1 {frames}); do printf '\\rframe %d' $i; done; "
            f"echo; echo after-frames {name}",  # the name: never a cached step
        ),
    )
    build = await finished(
        (await manager.submit(BuildRequest(owner="fran", repo=url, name="frames"))).build
    )
    assert build.state is BuildState.BUILT, build.log_text()
    logs = [e.data["message"] for e in build.events() if e.type == "log"]
    # the step's frames are one line, its last frame, as a terminal shows them
    shown = [m for m in logs if "frame " in m and "printf" not in m]
    assert shown == [f"frame {frames}"], "\n".join(logs)
    assert any(m.endswith(f"after-frames {name}") for m in logs), "\n".join(logs)
    assert len(logs) < 200, len(logs)  # the rest of a build's log is a few dozen lines


async def test_private_repo_credentials_stay_secret(rig, git_http, base_image, caplog):
    caplog.set_level(logging.DEBUG)
    manager = await rig()
    name = unique("envs/private")
    url = git_http.create_repo(
        name, dockerfile(base_image, "RUN echo private"), auth=("ivy", SECRET)
    )
    creds = GitCredentials("ivy", SECRET)
    result = await manager.submit(
        BuildRequest(owner="ivy", repo=url, name="private", credentials=creds)
    )
    build = await finished(result.build)
    assert build.state is BuildState.BUILT, build.log_text()
    argv = manager.executor.command_line(build, push=False, cache_from=[], labels={})
    inspected = await inspect(manager, build.image)
    blob = "".join(
        [
            json.dumps(result.to_dict()),
            json.dumps(argv),
            "".join(e.to_sse() for e in build.events()),
            json.dumps(inspected["Config"]["Labels"]),
            json.dumps([i.to_dict() for i in await manager.catalog.list_images()]),
            caplog.text,
        ]
    )
    assert SECRET not in blob
    # without credentials the source cannot be read, whichever URL form names it; with
    # them every form resolves to the built commit
    for form in git_http.url_forms(name):
        with pytest.raises(Exception, match="could not read"):
            await manager.submit(BuildRequest(owner="ivy", repo=form, name="private2"))
        resolved = await resolve_ref(form, "main", credentials=creds, env=loopback_env())
        assert resolved == build.commit, form


async def test_push_to_registry(rig, git_http, base_image, registry):
    manager = await rig(registry=registry, push=True)
    name = unique("envs/pushed")
    url = git_http.create_repo(name, dockerfile(base_image, "RUN echo pushed"))
    build = await finished(
        (await manager.submit(BuildRequest(owner="jo", repo=url, name="pushed"))).build
    )
    assert build.state is BuildState.BUILT, build.log_text()
    phases = [e.data["phase"] for e in build.events() if e.type == "phase"]
    assert phases[-3:] == ["building", "pushing", "built"]
    repository = build.image.rpartition(":")[0].removeprefix(f"{registry}/")
    opener = no_proxy_opener()
    with opener.open(f"http://{registry}/v2/{repository}/tags/list", timeout=10) as resp:
        tags = json.loads(resp.read())["tags"]
    assert sorted(tags) == sorted(["latest", commit_tag(build.commit)])
    assert await manager.catalog.exists(build.image)


async def test_delete_refuses_image_in_use(rig, git_http, base_image, docker_engine):
    manager = await rig()
    name = unique("envs/inuse")
    url = git_http.create_repo(name, dockerfile(base_image, "RUN echo in-use"))
    build = await finished(
        (await manager.submit(BuildRequest(owner="kim", repo=url, name="inuse"))).build
    )
    assert build.state is BuildState.BUILT
    docker = manager.catalog.engine.client()
    container = await docker.containers.create(config={"Image": build.image, "Cmd": ["true"]})
    try:
        with pytest.raises(Conflict, match="1 container"):
            await manager.catalog.delete(owner_slug="kim", name="inuse")
        assert await manager.catalog.exists(build.latest_image)
    finally:
        await container.delete(force=True)
    removed = await manager.catalog.delete(owner_slug="kim", name="inuse")
    assert sorted(removed) == sorted([build.image, build.latest_image])
    assert await manager.catalog.get(owner_slug="kim", name="inuse") is None
    with pytest.raises(NotFound):
        await manager.catalog.delete(owner_slug="kim", name="inuse")
