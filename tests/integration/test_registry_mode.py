"""Registry mode against real registries: BuildManager + LocalExecutor (repo2docker --push)
+ RegistryCatalog.

- the shared registry of the rig (127.0.0.1:5000, no auth): build, push of both tags,
  listing from the registry with the local images removed, cache hit from a manifest HEAD,
  delete;
- a registry of this session that the test stops: push failure -> ``failed`` with the
  reason, listings answer the last good listing flagged stale, builds still queue, and
  everything works again once the registry is back;
- registries with htpasswd (basic) and token auth: pushes with the configured login (a
  per-build DOCKER_CONFIG), listing through basic auth and the Bearer token flow, refused
  logins.
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
from repo2docker_service.errors import NotFound, Unavailable
from repo2docker_service.images.dockerconfig import RegistryCredentials
from repo2docker_service.images.naming import DEFAULT_TEMPLATE, ImageNamer, commit_tag
from repo2docker_service.images.registry.catalog import RegistryCatalog
from repo2docker_service.images.registry.client import RegistryClient
from repo2docker_service.images.registry.errors import RegistryError
from repo2docker_service.sources import resolve_ref
from tests.rig.engine import local_images, remove_images
from tests.rig.net import loopback_env
from tests.rig.repos import dockerfile, unique
from tests.rig.wait import eventually

pytestmark = pytest.mark.docker

RUN_PREFIX = f"r2dreg{uuid.uuid4().hex[:6]}-"
LOG = logging.getLogger("test_registry_mode")


@pytest.fixture
async def make(docker_engine, base_image, git_http, repo2docker_config):
    """Factory of registry-mode managers; closes them and removes local images afterwards."""
    made: list[tuple[BuildManager, RegistryCatalog]] = []
    env = {**docker_engine.env}
    for key in ("NO_PROXY", "no_proxy"):
        env[key] = loopback_env()[key]

    async def factory(
        registry: str,
        *,
        credentials: RegistryCredentials | None = None,
        push_credentials: RegistryCredentials | None = None,
        cache_ttl: float = 30,
    ) -> BuildManager:
        namer = ImageNamer(template=DEFAULT_TEMPLATE, registry=registry, prefix=RUN_PREFIX)
        client = RegistryClient(registry, credentials=credentials, timeout=5, log=LOG)
        catalog = RegistryCatalog(namer=namer, client=client, cache_ttl=cache_ttl, log=LOG)
        executor = LocalExecutor(
            repo2docker_config=repo2docker_config,
            env=env,
            kill_grace_period=3,
            registry=registry,
            registry_credentials=push_credentials or credentials,
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
            push=True,
            log=LOG,
        )
        await manager.start()
        made.append((manager, catalog))
        return manager

    yield factory
    for manager, catalog in made:
        await manager.stop()
        await catalog.close()
    remove_images(local_images(RUN_PREFIX))


async def finished(build, timeout: float = 180):
    await asyncio.wait_for(build.wait(), timeout)
    return build


async def build_env(manager, git_http, base_image, *, owner: str, name: str, marker: str):
    url = git_http.create_repo(unique(f"reg/{name}"), dockerfile(base_image, f"RUN echo {marker}"))
    result = await manager.submit(BuildRequest(owner=owner, repo=url, ref="main", name=name))
    assert not result.cached
    build = await finished(result.build)
    return url, build


# ----------------------------------------------------------------------------- shared registry


async def test_build_push_list_cache_hit_delete(make, git_http, base_image, registry):
    manager = await make(registry)
    catalog: RegistryCatalog = manager.catalog
    url, build = await build_env(
        manager, git_http, base_image, owner="ada", name="regenv", marker="registry-mode"
    )
    assert build.state is BuildState.BUILT, build.log_text()
    phases = [e.data["phase"] for e in build.events() if e.type == "phase"]
    assert phases[-3:] == ["building", "pushing", "built"]
    assert build.image.startswith(f"{registry}/{RUN_PREFIX}ada/regenv:")

    # both tags are in the registry, on the same manifest
    name = build.image.removeprefix(f"{registry}/").rpartition(":")[0]
    client = catalog.client
    assert sorted(await client.tags(name)) == sorted(["latest", commit_tag(build.commit)])
    commit_ref = await client.head_manifest(name, commit_tag(build.commit))
    latest_ref = await client.head_manifest(name, "latest")
    assert commit_ref is not None and commit_ref.digest == latest_ref.digest

    # the catalog reads the registry, not the engine: remove the local copies
    remove_images(local_images(f"{RUN_PREFIX}ada/regenv"))
    assert local_images(f"{RUN_PREFIX}ada/regenv") == []
    fresh = RegistryCatalog(
        namer=catalog.namer, client=RegistryClient(registry, timeout=5), cache_ttl=30
    )
    try:
        infos = [i for i in await fresh.list_images(owner="ada") if i.name == "regenv"]
        assert len(infos) == 1, infos
        info = infos[0]
        assert info.image == build.image and info.latest == build.latest_image
        assert info.tags == ["latest", commit_tag(build.commit)]
        assert (info.repo, info.commit, info.owner) == (url, build.commit, "ada")
        assert info.build_id == build.id and info.size and info.size > 0
        assert (await fresh.get(owner_slug="ada", name="regenv")).to_dict() == info.to_dict()
    finally:
        await fresh.close()

    # cache hit: answered from a manifest HEAD, nothing built, no local image needed
    again = await manager.submit(BuildRequest(owner="ada", repo=url, ref="main", name="regenv"))
    assert again.cached and again.build is None
    assert again.image.image == build.image and again.image.latest == build.latest_image
    assert local_images(f"{RUN_PREFIX}ada/regenv") == []

    # delete removes the manifests (both tags) and the listing forgets it at once
    removed = await catalog.delete(owner_slug="ada", name="regenv")
    assert sorted(removed) == sorted([build.image, build.latest_image])
    assert await client.head_manifest(name, commit_tag(build.commit)) is None
    assert await client.head_manifest(name, "latest") is None
    assert [i for i in await catalog.list_images(owner="ada") if i.name == "regenv"] == []
    assert await catalog.get(owner_slug="ada", name="regenv") is None
    with pytest.raises(NotFound):
        await catalog.delete(owner_slug="ada", name="regenv")
    # and the next request builds again
    rebuilt = await manager.submit(BuildRequest(owner="ada", repo=url, ref="main", name="regenv"))
    assert not rebuilt.cached
    assert (await finished(rebuilt.build)).state is BuildState.BUILT
    # (leave the shared registry as it was)
    await catalog.delete(owner_slug="ada", name="regenv")


# ----------------------------------------------------------------------------- registry down


async def test_push_failure_then_recovery(make, git_http, base_image, own_registry):
    manager = await make(own_registry.host)
    catalog: RegistryCatalog = manager.catalog
    url = git_http.create_repo(unique("reg/down"), dockerfile(base_image, "RUN echo down"))
    own_registry.stop()
    try:
        # listing: 503 with a message saying what to check
        with pytest.raises(Unavailable, match="Cannot reach the registry") as err:
            await catalog.list_images()
        assert own_registry.host in err.value.message and err.value.status_code == 503
        # builds still queue (the cache check cannot ask the registry) and then fail at push
        result = await manager.submit(BuildRequest(owner="bea", repo=url, name="down"))
        assert not result.cached and result.build is not None
        build = await finished(result.build)
        assert build.state is BuildState.FAILED
        assert "push" in build.error.lower() and own_registry.host in build.error, build.error
        LOG.info("push failure reason: %s", build.error)
        # the service keeps answering
        assert manager.status()["running"] == 0
    finally:
        own_registry.start()
    # back: the same request builds, pushes and is listed
    again = await manager.submit(BuildRequest(owner="bea", repo=url, name="down"))
    assert not again.cached
    rebuilt = await finished(again.build)
    assert rebuilt.state is BuildState.BUILT, rebuilt.log_text()
    listed = [i for i in await catalog.list_images(owner="bea") if i.name == "down"]
    assert [i.image for i in listed] == [rebuilt.image]
    assert (await manager.submit(BuildRequest(owner="bea", repo=url, name="down"))).cached


async def test_listing_answers_stale_while_registry_down(make, own_registry):
    manager = await make(own_registry.host, cache_ttl=0.2)
    catalog: RegistryCatalog = manager.catalog
    before = await catalog.list_images()  # a good listing exists
    own_registry.stop()
    try:
        await asyncio.sleep(0.3)
        # answered at once while the background refresh fails ...
        await catalog.list_images()
        listing = catalog.listing
        await eventually(
            lambda: listing.refreshing is None or listing.refreshing.done(), timeout=5, interval=0.1
        )
        # ... after which the last good listing is answered, flagged stale
        assert [i.image for i in await catalog.list_images()] == [i.image for i in before]
        assert catalog.state().stale and catalog.state().last_good_age_s > 0.3
        with pytest.raises(Unavailable):
            await catalog.exists(f"{own_registry.host}/{RUN_PREFIX}x/y:latest")
    finally:
        own_registry.start()
    # back: the retries find it by themselves, with no listing asked
    assert await eventually(lambda: catalog.state().live, timeout=15, interval=0.2)
    assert not catalog.state().stale


# ----------------------------------------------------------------------------- auth


@pytest.mark.parametrize("kind", ["htpasswd", "token"])
async def test_authenticated_registry(kind, request, make, git_http, base_image):
    reg = request.getfixturevalue(f"{kind}_registry")
    creds = RegistryCredentials(reg.username, reg.password)

    # a wrong password is refused with a message naming the settings to check
    wrong = RegistryClient(reg.host, credentials=RegistryCredentials(reg.username, "nope"))
    anonymous = RegistryClient(reg.host)
    try:
        for client in (wrong, anonymous):
            with pytest.raises(RegistryError) as err:
                await client.check()
            assert err.value.kind == "auth" and "registry_password" in err.value.message
    finally:
        await wrong.close()
        await anonymous.close()

    manager = await make(reg.host, credentials=creds)
    await manager.catalog.start()  # GET /v2/ with the login
    url, build = await build_env(
        manager, git_http, base_image, owner="cyd", name=f"auth-{kind}", marker=kind
    )
    assert build.state is BuildState.BUILT, build.log_text()
    assert reg.password not in build.log_text()
    infos = [i for i in await manager.catalog.list_images(owner="cyd") if i.name == f"auth-{kind}"]
    assert [i.image for i in infos] == [build.image]
    assert infos[0].latest == build.latest_image
    assert (await manager.submit(BuildRequest(owner="cyd", repo=url, name=f"auth-{kind}"))).cached
    if kind == "token":
        scopes = {
            s
            for user, params, status in reg.token_server.requests
            if status == 200
            for s in params.get("scope", [])
        }
        assert "registry:catalog:*" in scopes
        assert any(s.endswith(":push,pull") or s.endswith(":pull,push") for s in scopes), scopes
        assert {user for user, _, status in reg.token_server.requests if status == 200} == {
            reg.username
        }


async def test_push_with_refused_login_fails_clearly(make, git_http, base_image, htpasswd_registry):
    reg = htpasswd_registry
    manager = await make(
        reg.host,
        credentials=RegistryCredentials(reg.username, reg.password),
        push_credentials=RegistryCredentials(reg.username, "wrong-password"),
    )
    url = git_http.create_repo(unique("reg/refused"), dockerfile(base_image, "RUN echo refused"))
    build = await finished(
        (await manager.submit(BuildRequest(owner="dee", repo=url, name="refused"))).build
    )
    assert build.state is BuildState.FAILED
    assert "401" in build.error or "unauthorized" in build.error.lower(), build.error
    assert "wrong-password" not in build.log_text() + build.error
    assert [i for i in await manager.catalog.list_images(owner="dee")] == []
