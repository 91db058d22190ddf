"""Registry down or slow (issue 16): a registry that still answers, but slowly, through the
fake front (tests/rig/fake_registry.py, ``delay_seconds``) over a real registry.

The client's ``timeout`` (``registry_timeout``) bounds each request and how long a listing
waits for the registry. Once one listing succeeded, listings answer the last good list
flagged ``stale`` with its age instead of waiting for the refresh; the readiness report
(the body of ``GET ready``) says the registry is down; switching the delay off brings
listings back to live. No assertion on speed: a listing that waited for the whole refresh
would answer it fresh, which is what the ``stale`` checks catch.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from repo2docker_service.builds.model import Build
from repo2docker_service.errors import Unavailable
from repo2docker_service.images.dockerengine import DockerEngine
from repo2docker_service.images.naming import DEFAULT_TEMPLATE, ImageNamer
from repo2docker_service.images.registry.catalog import RegistryCatalog
from repo2docker_service.images.registry.client import RegistryClient
from repo2docker_service.readiness import Readiness
from tests.rig.fake_registry import FrontBehaviour, start_front
from tests.rig.oci import push_test_image
from tests.rig.parts import require

#: the client's timeout in these tests (seconds)
TIMEOUT = 1.0
#: a guard against a hang, far above anything the behaviour needs (seconds)
HANG = 60.0


@pytest.fixture(scope="module")
def front(tmp_path_factory):
    f = require(start_front, tmp_path_factory.mktemp("slow-front"))
    yield f
    f.close()


def service(front) -> RegistryCatalog:
    """A service's catalog with cache_ttl 0: every listing asks the registry first."""
    client = RegistryClient(front.host, timeout=TIMEOUT)
    namer = ImageNamer(template=DEFAULT_TEMPLATE, registry=front.host, prefix="slow-")
    return RegistryCatalog(namer=namer, client=client, cache_ttl=0)


async def built(front, catalog: RegistryCatalog, name: str) -> None:
    """What a build leaves: a labelled image pushed, ``latest`` moved (into the index)."""
    reference = catalog.namer.reference(owner_slug="ada", name=name, tag="v1")
    latest = reference.replace(":v1", ":latest")
    build = Build(
        owner="ada",
        owner_slug="ada",
        name=name,
        repo=f"https://git.example/ada/{name}",
        ref="main",
        commit="a" * 40,
        image=reference,
        latest_image=latest,
        id=f"b-{name}",
    )
    repository = reference.removeprefix(f"{front.host}/").partition(":")[0]
    push_test_image(front.url, repository, "v1", labels=build.image_labels().to_labels())
    await catalog.tag(reference, latest)


async def names(catalog: RegistryCatalog) -> list[str]:
    return [i.name for i in await asyncio.wait_for(catalog.list_images(), HANG)]


async def until_live(catalog: RegistryCatalog) -> list[str]:
    deadline = time.monotonic() + HANG
    while True:
        listed = await names(catalog)
        if catalog.state().live:
            return listed
        assert time.monotonic() < deadline, catalog.state()
        await asyncio.sleep(0.2)


async def test_slow_registry_answers_the_last_good_listing(front):
    front.behaviour = FrontBehaviour(catalog_404=True)
    first, other = service(front), service(front)
    ready = Readiness(
        engine=DockerEngine(),
        registry=first.client,
        catalog=first,
        check_timeout=TIMEOUT / 2,
        cache_seconds=0,
    )
    try:
        await built(front, first, "env")
        assert await names(first) == ["env"] and first.state().live
        assert first.client.timeout == TIMEOUT

        # slow but answering: each request within the timeout, a refresh (index manifest
        # and its new blob) longer than it: the listing does not wait for it
        await built(front, other, "two")
        front.behaviour.delay_seconds = TIMEOUT * 0.8
        assert await names(first) == ["env"]  # the last good list ...
        state = first.state()
        assert state.stale and state.last_good_age_s is not None, state  # ... flagged stale
        assert "did not answer a listing within 1 s" in state.note
        await asyncio.wait_for(asyncio.shield(first.listing.refreshing), HANG)
        front.behaviour.delay_seconds = 0
        assert await until_live(first) == ["env", "two"]  # the refresh went on and landed

        # answers delayed beyond the timeout: stale, with its age, every time
        front.behaviour.delay_seconds = TIMEOUT * 3
        for _ in range(3):
            assert await names(first) == ["env", "two"]
            state = first.state()
            assert state.stale and not state.live and state.since is not None, state
            assert state.freshness()["stale"] is True and state.freshness()["age_s"] >= 0
        report = (await ready.report(fresh=True)).to_dict()
        assert report["parts"]["registry"]["up"] is False, report
        assert "registry" in report["down"] and report["ready"] is False
        assert report["catalog"]["stale"] is True, report

        # the delay switched off: listings live again, the registry up
        front.behaviour.delay_seconds = 0
        assert await until_live(first) == ["env", "two"]
        assert not first.state().stale
        report = (await ready.report(fresh=True)).to_dict()
        assert report["parts"]["registry"]["up"] is True, report
        assert report["catalog"]["stale"] is False, report
    finally:
        front.behaviour.delay_seconds = 0
        await ready.close()
        await first.close()
        await other.close()


async def test_slow_registry_before_any_listing_is_503(front):
    """No good listing yet: a listing does not wait past the timeout; it answers 503."""
    front.behaviour = FrontBehaviour(catalog_404=True, delay_seconds=TIMEOUT * 3)
    fresh = service(front)
    try:
        with pytest.raises(Unavailable, match="Cannot reach the registry") as err:
            await asyncio.wait_for(fresh.list_images(), HANG)
        assert err.value.status_code == 503
        assert not fresh.state().live and not fresh.state().stale
        front.behaviour.delay_seconds = 0
        assert "env" in await until_live(fresh)
    finally:
        front.behaviour.delay_seconds = 0
        await fresh.close()
