"""Image lifecycle against the real engine and registry: tag history after three commits,
roll back and pin (kept across a restart and a later build), retention with a running
container (keep_tags=2), the dry run, unpinning; in registry mode the same roll back and
pin read back by a fresh catalog.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid

import pytest

from repo2docker_service.builds.executors import LocalExecutor
from repo2docker_service.builds.manager import BuildManager
from repo2docker_service.builds.model import BuildState
from repo2docker_service.builds.request import BuildRequest
from repo2docker_service.builds.store import BuildStore
from repo2docker_service.images.catalog import Catalog
from repo2docker_service.images.docker import DockerCatalog
from repo2docker_service.images.lifecycle import ImageLifecycle
from repo2docker_service.images.naming import DEFAULT_TEMPLATE, ImageNamer, commit_tag
from repo2docker_service.images.registry.catalog import RegistryCatalog
from repo2docker_service.images.registry.client import RegistryClient
from repo2docker_service.images.usage import EngineUsage
from repo2docker_service.sources import resolve_ref
from tests.rig.engine import docker, image_exists, local_images, remove_containers, remove_images
from tests.rig.net import loopback_env
from tests.rig.repos import dockerfile, unique
from tests.rig.wait import wait_for

pytestmark = pytest.mark.docker

RUN_PREFIX = f"r2dlc{uuid.uuid4().hex[:6]}-"
LOG = logging.getLogger("test_lifecycle")


@pytest.fixture
async def make(docker_engine, base_image, git_http, repo2docker_config):
    """Factory of (manager, catalog) pairs, local or registry mode; cleans up afterwards."""
    made: list[tuple[BuildManager, Catalog]] = []
    env = {**docker_engine.env, **{k: loopback_env()[k] for k in ("NO_PROXY", "no_proxy")}}

    async def factory(registry: str = "") -> BuildManager:
        namer = ImageNamer(template=DEFAULT_TEMPLATE, registry=registry, prefix=RUN_PREFIX)
        catalog: Catalog
        if registry:
            client = RegistryClient(registry, timeout=5, log=LOG)
            catalog = RegistryCatalog(namer=namer, client=client, cache_ttl=0, log=LOG)
        else:
            catalog = DockerCatalog(namer=namer, url=docker_engine.host, log=LOG)
        executor = LocalExecutor(
            repo2docker_config=repo2docker_config,
            env=env,
            kill_grace_period=3,
            registry=registry,
            log=LOG,
        )
        manager = BuildManager(
            executor=executor,
            catalog=catalog,
            namer=namer,
            store=BuildStore(history_limit=50),
            resolver=functools.partial(resolve_ref, env=loopback_env()),
            allowed_repo_schemes=("http",),
            concurrency=1,
            max_queue=5,
            build_timeout=180,
            build_idle_timeout=90,
            push=bool(registry),
            log=LOG,
        )
        await manager.start()
        made.append((manager, catalog))
        return manager

    yield factory
    for manager, catalog in made:
        await manager.stop()
        await catalog.close()
    remove_containers(RUN_PREFIX)
    remove_images(local_images(RUN_PREFIX))


def lifecycle_for(manager: BuildManager, *, keep: int, engine=None) -> ImageLifecycle:
    catalog = manager.catalog
    engine = engine or getattr(catalog, "engine", None)
    usage = EngineUsage(engine) if engine is not None else None
    return ImageLifecycle(catalog=catalog, usage=usage, keep_tags=keep, log=LOG)


async def build_commit(manager: BuildManager, git_http, url_name: str, url: str, n: int):
    """Commit once more on main and build it; returns the build (built)."""
    if n > 0:
        git_http.commit(url_name, {"version.txt": f"{n}\n"}, message=f"version {n}")
    result = await manager.submit(BuildRequest(owner="ada", repo=url, ref="main", name="hist"))
    assert not result.cached
    build = result.build
    await asyncio.wait_for(build.wait(), 180)
    assert build.state is BuildState.BUILT, build.log_text()
    return build


async def test_history_rollback_restart_retention(make, git_http, base_image, docker_engine):
    repo_name = unique("lifecycle/hist")
    files = {**dockerfile(base_image, "COPY version.txt /srv/"), "version.txt": "0\n"}
    url = git_http.create_repo(repo_name, files)
    manager = await make()
    builds = [await build_commit(manager, git_http, repo_name, url, n) for n in range(3)]
    commits = [b.commit for b in builds]
    life = lifecycle_for(manager, keep=2)

    # history after three commits: newest first, with what made each tag
    history = await life.history(owner_slug="ada", name="hist")
    assert [e["commit"] for e in history.tags] == commits[::-1]
    assert [e["tag"] for e in history.tags] == [commit_tag(c) for c in commits[::-1]]
    assert [e["build_id"] for e in history.tags] == [b.id for b in builds[::-1]]
    assert [e["latest"] for e in history.tags] == [True, False, False]
    assert all(e["ref"] == "main" and e["size"] > 0 and e["servers"] == [] for e in history.tags)
    assert history.servers_seen == "containers of the Docker engine"

    # roll back: latest (what spawners offer) names the first commit, pinned
    rolled = await life.set_latest(owner_slug="ada", name="hist", tag=commit_tag(commits[0]))
    assert rolled.info.commit == commits[0] and rolled.info.pinned
    assert rolled.info.image.endswith(":" + commit_tag(commits[0]))
    assert [e["latest"] for e in rolled.tags] == [False, False, True]
    assert "pinned" not in rolled.info.tags

    # a later build adds its tag and leaves the pinned latest
    fourth = await build_commit(manager, git_http, repo_name, url, 3)
    assert "latest is pinned" in fourth.log_text()
    assert (await manager.catalog.get(owner_slug="ada", name="hist")).commit == commits[0]

    # restart: a new catalog and manager read the pin back; another build leaves it too
    await manager.stop()
    await manager.catalog.close()
    manager = await make()
    again = await manager.catalog.get(owner_slug="ada", name="hist")
    assert again.commit == commits[0] and again.pinned
    fifth = await build_commit(manager, git_http, repo_name, url, 4)
    commits += [fourth.commit, fifth.commit]
    life = lifecycle_for(manager, keep=2)
    assert (await manager.catalog.get(owner_slug="ada", name="hist")).commit == commits[0]

    # a running server uses the second commit's image
    in_use = f"{manager.namer.repository(owner_slug='ada', name='hist')}:{commit_tag(commits[1])}"
    container = f"{RUN_PREFIX}server"
    docker("run", "-d", "--name", container, in_use, "sleep", "600")
    history = await life.history(owner_slug="ada", name="hist")
    assert {e["commit"]: e["servers"] for e in history.tags}[commits[1]] == [container]

    # dry run: lists what would go (only the third commit), changes nothing
    refs = {c: in_use.rpartition(":")[0] + ":" + commit_tag(c) for c in commits}
    plan = await life.prune(dry_run=True)
    mine = [r for r in plan["removed"] if RUN_PREFIX in r["reference"]]
    assert [r["reference"] for r in mine] == [refs[commits[2]]]
    kept = {k["reference"]: k["reason"] for k in plan["kept"] if RUN_PREFIX in k["reference"]}
    assert kept == {
        refs[commits[4]]: "newest",
        refs[commits[3]]: "newest",
        refs[commits[1]]: "in use",
        refs[commits[0]]: "latest",
    }
    assert plan["bytes_freed"] >= 0 and plan["dry_run"] is True
    assert all(image_exists(r) for r in refs.values())

    # the prune: exactly the third commit goes; the running server's image stays
    done = await life.prune(dry_run=False)
    assert [r["reference"] for r in done["removed"] if RUN_PREFIX in r["reference"]] == [
        refs[commits[2]]
    ]
    assert [c for c in commits if image_exists(refs[c])] == [commits[i] for i in (0, 1, 3, 4)]
    assert docker("inspect", "-f", "{{.State.Running}}", container).stdout.strip() == "true"
    disk = await life.disk(fresh=True)
    assert disk["source"] == "engine" and disk["bytes"] > 0 and disk["images"] >= 4

    # unpin: latest follows the newest build again
    unpinned = await life.set_latest(owner_slug="ada", name="hist", tag=None)
    assert unpinned.info.commit == commits[4] and not unpinned.info.pinned
    assert not image_exists(in_use.rpartition(":")[0] + ":pinned")


async def test_registry_rollback_pin_survives_a_fresh_catalog(make, git_http, base_image, registry):
    repo_name = unique("lifecycle/reg")
    files = {**dockerfile(base_image, "COPY version.txt /srv/"), "version.txt": "0\n"}
    url = git_http.create_repo(repo_name, files)
    manager = await make(registry)
    builds = [await build_commit(manager, git_http, repo_name, url, n) for n in range(2)]
    life = lifecycle_for(manager, keep=1, engine=None)
    assert life.registry_mode
    rolled = await life.set_latest(owner_slug="ada", name="hist", tag=commit_tag(builds[0].commit))
    assert rolled.info.commit == builds[0].commit and rolled.info.pinned
    assert [e["latest"] for e in rolled.tags] == [False, True]
    assert rolled.servers_seen is None and rolled.tags[0]["servers"] is None

    # a fresh catalog (a restart) reads latest and the pin from the registry
    fresh = RegistryCatalog(
        namer=manager.namer, client=RegistryClient(registry, timeout=5), cache_ttl=0
    )
    try:
        info = await fresh.get(owner_slug="ada", name="hist")
        assert info.commit == builds[0].commit and info.pinned and "pinned" not in info.tags
    finally:
        await fresh.close()

    third = await build_commit(manager, git_http, repo_name, url, 2)
    assert "latest is pinned" in third.log_text()
    plan = await life.prune(dry_run=True)
    mine = [r["reference"] for r in plan["removed"] if RUN_PREFIX in r["reference"]]
    assert mine == [rolled.tags[0]["reference"]]  # the second commit: not newest, not latest

    unpinned = await life.set_latest(owner_slug="ada", name="hist", tag=None)
    assert unpinned.info.commit == third.commit and not unpinned.info.pinned
    tags = await manager.catalog.client.tags(
        manager.namer.repository(owner_slug="ada", name="hist").removeprefix(registry + "/")
    )
    assert sorted(tags) == sorted(["latest", *(commit_tag(b.commit) for b in (*builds, third))])


async def test_periodic_prune(make, git_http, base_image):
    repo_name = unique("lifecycle/periodic")
    files = {**dockerfile(base_image, "COPY version.txt /srv/"), "version.txt": "0\n"}
    url = git_http.create_repo(repo_name, files)
    manager = await make()
    builds = [await build_commit(manager, git_http, repo_name, url, n) for n in range(2)]
    life = ImageLifecycle(catalog=manager.catalog, keep_tags=1, prune_interval=0.2, log=LOG)
    old = (
        f"{manager.namer.repository(owner_slug='ada', name='hist')}:{commit_tag(builds[0].commit)}"
    )
    assert image_exists(old)
    life.start()
    try:
        # the docker CLI off the event loop, so the periodic prune runs meanwhile
        await wait_for(
            lambda: asyncio.to_thread(lambda: not image_exists(old)),
            timeout=120,
            interval=0.2,
            what=f"the periodic prune to remove {old}",
        )
    finally:
        await life.close()
    expected = ["latest", commit_tag(builds[1].commit)]

    async def catalog_caught_up() -> bool:
        info = await manager.catalog.get(owner_slug="ada", name="hist")
        return info is not None and info.commit == builds[1].commit and info.tags == expected

    await wait_for(catalog_caught_up, timeout=30, what="the catalog to list only the kept tags")


def test_negative_settings_are_refused():
    with pytest.raises(ValueError, match="0 or more"):
        ImageLifecycle(catalog=Catalog(), usage=None, keep_tags=-1)
