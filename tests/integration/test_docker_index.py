"""DockerCatalog's event-fed index against the real engine.

Images are changed behind the catalog's back with the docker CLI (as another writer would);
the index must follow within a few seconds, and must always agree with a catalog that asks
the engine on every call (``watch=False``). Image names use a prefix unique to this run.
"""

from __future__ import annotations

import uuid

import pytest

from repo2docker_service.builds.model import Build
from repo2docker_service.images.docker import DockerCatalog
from repo2docker_service.images.naming import ImageNamer, escape_owner
from tests.rig.engine import docker, remove_images
from tests.rig.wait import eventually

pytestmark = pytest.mark.docker

PREFIX = f"r2dix{uuid.uuid4().hex[:8]}-"


def build_labelled(engine, base: str, namer: ImageNamer, owner: str, name: str, commit: str):
    """A labelled image tagged with its commit tag (what a build leaves); returns the ref."""
    slug = escape_owner(owner)
    ref = namer.reference(owner_slug=slug, name=name, tag=commit[:12])
    build = Build(
        owner=owner,
        owner_slug=slug,
        shared=False,
        name=name,
        repo=f"http://127.0.0.1/{name}.git",
        ref="main",
        commit=commit,
        image=ref,
        latest_image=namer.reference(owner_slug=slug, name=name, tag="latest"),
    )
    labels = build.image_labels().to_labels()
    label_args = [a for k, v in labels.items() for a in ("--label", f"{k}={v}")]
    docker("build", "-q", "-t", ref, *label_args, "-", env=engine.env, input=f"FROM {base}\n")
    return ref


async def snapshot(catalog: DockerCatalog):
    return [
        (i.owner, i.name, i.commit, i.image, i.latest, tuple(i.tags))
        for i in await catalog.list_images()
    ]


async def test_index_follows_other_writers(docker_engine, base_image):
    namer = ImageNamer(prefix=PREFIX)
    catalog = DockerCatalog(namer=namer, url=docker_engine.host)
    truth = DockerCatalog(namer=namer, url=docker_engine.host, watch=False)
    refs: list[str] = []
    try:
        assert await catalog.list_images() == []
        assert catalog.live, "the first listing starts the event watcher"

        # another writer builds and tags an image
        c1, c2 = "1" * 40, "2" * 40
        first = build_labelled(docker_engine, base_image, namer, "alice", "env", c1)
        refs.append(first)
        latest = namer.reference(owner_slug="alice", name="env", tag="latest")
        refs.append(latest)
        docker("tag", first, latest, env=docker_engine.env)

        async def shows_first():
            return await snapshot(catalog) == [
                ("alice", "env", c1, first, latest, ("latest", c1[:12]))
            ]

        assert await eventually(shows_first), await snapshot(catalog)
        assert await snapshot(catalog) == await snapshot(truth)

        # a rebuild moves latest to a new image
        second = build_labelled(docker_engine, base_image, namer, "alice", "env", c2)
        refs.append(second)
        docker("tag", second, latest, env=docker_engine.env)

        async def shows_second():
            infos = await catalog.list_images()
            return len(infos) == 1 and infos[0].commit == c2 and len(infos[0].tags) == 3

        assert await eventually(shows_second), await snapshot(catalog)
        assert await snapshot(catalog) == await snapshot(truth)
        info = await catalog.image_info(first)
        assert info is not None and info.commit == c1 and info.image == first

        # removing tags behind the catalog's back
        docker("rmi", latest, second, env=docker_engine.env)

        async def only_first_left():
            infos = await catalog.list_images()
            return [(i.commit, tuple(i.tags)) for i in infos] == [(c1, (c1[:12],))]

        assert await eventually(only_first_left), await snapshot(catalog)
        assert await snapshot(catalog) == await snapshot(truth)
        assert catalog.live
    finally:
        remove_images(refs, engine=docker_engine, check=False)
        await catalog.close()
        await truth.close()


async def test_index_recovers_when_the_event_stream_drops(docker_engine, base_image):
    namer = ImageNamer(prefix=PREFIX + "drop-")
    catalog = DockerCatalog(namer=namer, url=docker_engine.host)
    refs: list[str] = []
    try:
        await catalog.list_images()
        assert catalog.live
        # cut the stream, change the engine while nobody listens: the watcher notices,
        # lists from the engine meanwhile, reconnects and re-reads everything
        await catalog.engine.client().events.stop()
        ref = build_labelled(docker_engine, base_image, namer, "bob", "tools", "3" * 40)
        refs.append(ref)

        async def shows_ref():
            return [i.image for i in await catalog.list_images()] == [ref]

        assert await eventually(shows_ref), await snapshot(catalog)

        async def live_again():
            return catalog.live

        assert await eventually(live_again, timeout=15), "the watcher did not reconnect"
        assert [i.image for i in await catalog.list_images()] == [ref]
        # own writes show at once
        latest = namer.reference(owner_slug="bob", name="tools", tag="latest")
        refs.append(latest)
        await catalog.tag(ref, latest)
        assert [i.latest for i in await catalog.list_images()] == [latest]
        assert await catalog.remove_tag(latest)
        assert [i.latest for i in await catalog.list_images()] == [None]
        removed = await catalog.delete(owner_slug="bob", name="tools")
        assert removed == [ref]
        assert await catalog.list_images() == []
    finally:
        remove_images(refs, engine=docker_engine, check=False)
        await catalog.close()
