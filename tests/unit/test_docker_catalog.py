"""DockerCatalog without an engine: grouping of tags by labels, and the unreachable engine."""

from __future__ import annotations

import pytest

from repo2docker_service.builds.model import Build
from repo2docker_service.errors import Unavailable, UpstreamError
from repo2docker_service.images.docker import DockerCatalog
from repo2docker_service.images.dockerindex import epoch, item_from_inspect
from repo2docker_service.images.naming import ImageNamer, escape_owner
from repo2docker_service.images.reference import split_reference
from tests.rig.net import free_port

REG = "127.0.0.1:5000"


def labels_for(owner: str, name: str, commit: str, *, shared=False, built_at=None) -> dict:
    slug = "shared" if shared else escape_owner(owner)
    build = Build(
        owner=owner,
        owner_slug=slug,
        shared=shared,
        name=name,
        repo=f"https://git.example.org/{name}",
        ref="main",
        commit=commit,
        image=f"x/{name}:{commit[:12]}",
        latest_image=f"x/{name}:latest",
        hints={"memory": "1G"},
    )
    labels = build.image_labels().to_labels()
    if built_at:
        labels["repo2docker-service.built-at"] = built_at
    return labels


@pytest.fixture
def catalog():
    # watch=False: these tests feed the engine's answers by hand
    return DockerCatalog(namer=ImageNamer(registry=REG, prefix="r2d-"), watch=False)


def as_inspect(it: dict) -> dict:
    """What ``images.inspect`` answers for a list item."""
    return {
        "Id": it["Id"],
        "RepoTags": it["RepoTags"] or [],
        "Config": {"Labels": it["Labels"]},
        "Created": "2026-01-01T00:00:01.123456789Z",
        "Size": it["Size"],
    }


def feed(catalog, monkeypatch, items, mode):
    """Answer from ``items``: the engine on every call ("engine"), or the index ("index")."""

    async def fake_list(*, repository=None):
        return items

    async def fake_inspect(reference):
        for it in items:
            if it["Id"] == reference or reference in (it["RepoTags"] or []):
                return as_inspect(it)
        return None

    async def ready():
        return True

    monkeypatch.setattr(catalog.engine, "inspect", fake_inspect)
    if mode == "engine":
        monkeypatch.setattr(catalog.engine, "list_labelled", fake_list)
    else:
        catalog.index.load(items)
        monkeypatch.setattr(catalog, "_index_ready", ready)

        async def no_list(*, repository=None):
            raise AssertionError("the index must answer without listing the engine")

        monkeypatch.setattr(catalog.engine, "list_labelled", no_list)


def item(image_id, tags, labels, size=100):
    return {"Id": image_id, "RepoTags": tags, "Labels": labels, "Size": size, "Created": 1}


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("a/b:c", ("a/b", "c")),
        ("a/b", ("a/b", "latest")),
        ("127.0.0.1:5000/a/b", ("127.0.0.1:5000/a/b", "latest")),
        ("127.0.0.1:5000/a/b:v1", ("127.0.0.1:5000/a/b", "v1")),
    ],
)
def test_split_reference(reference, expected):
    assert split_reference(reference) == expected


@pytest.mark.parametrize("mode", ["engine", "index"])
async def test_groups_tags_per_environment(catalog, monkeypatch, mode):
    a1, a2 = "a" * 40, "b" * 40
    items = [
        item(
            "sha256:old",
            [f"{REG}/r2d-alice/env:{a1[:12]}"],
            labels_for("alice", "env", a1, built_at="2026-01-01T00:00:00Z"),
        ),
        item(
            "sha256:new",
            [f"{REG}/r2d-alice/env:{a2[:12]}", f"{REG}/r2d-alice/env:latest"],
            labels_for("alice", "env", a2, built_at="2026-02-01T00:00:00Z"),
            size=222,
        ),
        # shared environment
        item(
            "sha256:sh",
            [f"{REG}/r2d-shared/tools:{a1[:12]}"],
            labels_for("root", "tools", a1, shared=True),
        ),
        # tagged into bob's namespace, but the labels say alice: ignored
        item("sha256:fake", [f"{REG}/r2d-bob/env:latest"], labels_for("alice", "env", a1)),
        # other images on the engine: ignored
        item("sha256:other", ["local/debian:bookworm"], labels_for("alice", "env", a1)),
        item("sha256:dangling", None, labels_for("alice", "env", a1)),
        item("sha256:foreign", [f"{REG}/r2d-carol/env:latest"], {"maintainer": "x"}),
    ]

    feed(catalog, monkeypatch, items, mode)
    everything = await catalog.list_images()
    assert [(i.owner_slug, i.name) for i in everything] == [("alice", "env"), ("shared", "tools")]
    env = everything[0]
    assert env.to_dict() == {
        "owner": "alice",
        "shared": False,
        "owner_slug": "alice",
        "name": "env",
        "display_name": "env",
        "repo": "https://git.example.org/env",
        "ref": "main",
        "commit": a2,
        "image": f"{REG}/r2d-alice/env:{a2[:12]}",
        "latest": f"{REG}/r2d-alice/env:latest",
        "tags": ["latest", a2[:12], a1[:12]],
        "size": 222,
        "built_at": "2026-02-01T00:00:00Z",
        "build_id": env.build_id,
        "hints": {"memory": "1G"},
        "pinned": False,
    }
    assert [i.name for i in await catalog.list_images(owner="alice")] == ["env"]
    assert [i.name for i in await catalog.list_images(owner="alice", include_shared=True)] == [
        "env",
        "tools",
    ]
    assert await catalog.list_images(owner="bob") == []
    assert (await catalog.get(owner_slug="shared", name="tools")).shared is True
    assert await catalog.get(owner_slug="bob", name="env") is None
    old = await catalog.image_info(f"{REG}/r2d-alice/env:{a1[:12]}")
    assert old.image.endswith(a1[:12]) and old.commit == a1 and old.tags[0] == "latest"
    assert await catalog.image_info(f"{REG}/r2d-bob/env:latest") is None


# a free port (bound and released): nothing listens there; port 1 is not safe when other
# test runs on the machine start servers on any port they are given
@pytest.mark.parametrize(
    "url", ["unix:///nonexistent/docker.sock", f"tcp://127.0.0.1:{free_port()}"]
)
async def test_unreachable_engine_is_unavailable(url):
    """An engine that does not answer is a 503 (Unavailable, an UpstreamError) saying
    what to check; a listing says there was no earlier one to show."""
    catalog = DockerCatalog(namer=ImageNamer(prefix="r2d-"), url=url, request_timeout=5)
    try:
        for call in (
            catalog.start(),
            catalog.exists("a/b:c"),
            catalog.list_images(),
            catalog.tag("a/b:c", "a/b:latest"),
        ):
            with pytest.raises(Unavailable) as info:
                await call
            assert isinstance(info.value, UpstreamError) and info.value.status_code == 503
            assert url in info.value.message and "dockerd is running" in info.value.message
    finally:
        await catalog.close()


def test_created_and_inspect_items():
    assert epoch(1700000000) == 1700000000
    assert epoch("2026-01-01T00:00:01.123456789Z") == 1767225601
    assert epoch("garbage") == 0
    it = item_from_inspect(
        {"Id": "sha256:x", "RepoTags": None, "Config": {"Labels": None}, "Size": 5}
    )
    assert it == {"Id": "sha256:x", "RepoTags": [], "Labels": {}, "Created": 0, "Size": 5}


async def test_index_follows_events(catalog, monkeypatch):
    """Each event re-reads the one image it names; a reference names one image."""
    a1, a2 = "a" * 40, "b" * 40
    env = f"{REG}/r2d-alice/env"
    engine = {
        "sha256:old": item(
            "sha256:old", [f"{env}:{a1[:12]}", f"{env}:latest"], labels_for("alice", "env", a1)
        ),
    }

    async def fake_inspect(reference):
        for it in engine.values():
            if it["Id"] == reference or reference in it["RepoTags"]:
                return as_inspect(it)
        return None

    async def ready():
        return True

    monkeypatch.setattr(catalog.engine, "inspect", fake_inspect)
    monkeypatch.setattr(catalog, "_index_ready", ready)
    catalog.index.load(list(engine.values()))

    async def tags():
        return {i.name: (i.commit, i.tags) for i in await catalog.list_images()}

    assert await tags() == {"env": (a1, ["latest", a1[:12]])}

    # a rebuild: a new image takes `latest` (Docker sends "tag" for the new image only)
    engine["sha256:old"] = {**engine["sha256:old"], "RepoTags": [f"{env}:{a1[:12]}"]}
    engine["sha256:new"] = item(
        "sha256:new", [f"{env}:{a2[:12]}", f"{env}:latest"], labels_for("alice", "env", a2)
    )
    await catalog.feed.on_event({"Type": "image", "Action": "tag", "Actor": {"ID": "sha256:new"}})
    assert await tags() == {"env": (a2, ["latest", a2[:12], a1[:12]])}
    assert catalog.index.by_tag[f"{env}:latest"] == "sha256:new"

    # pushes change nothing; an untag re-reads the image; a delete drops it
    await catalog.feed.on_event({"Action": "push", "Actor": {"ID": f"{env}:latest"}})
    engine["sha256:old"]["RepoTags"] = []
    await catalog.feed.on_event({"Action": "untag", "Actor": {"ID": "sha256:old"}})
    assert "sha256:old" not in catalog.index.items
    assert await tags() == {"env": (a2, ["latest", a2[:12]])}
    del engine["sha256:new"]
    await catalog.feed.on_event({"Action": "delete", "Actor": {"ID": "sha256:new"}})
    assert await tags() == {}
    assert catalog.index.by_tag == {}

    # images without the service's labels are never indexed
    engine["sha256:foreign"] = item("sha256:foreign", [f"{env}:latest"], {"maintainer": "x"})
    await catalog.feed.on_event({"Action": "load", "Actor": {"ID": f"{env}:latest"}})
    assert catalog.index.items == {}

    # own writes update the index without waiting for the event
    catalog.index.load([item("sha256:n", [f"{env}:{a2[:12]}"], labels_for("alice", "env", a2))])
    catalog.index.drop_tag(f"{env}:{a2[:12]}")
    assert await tags() == {}


async def test_engine_down_listings_are_the_last_good_one_marked_stale(catalog, monkeypatch):
    """Once a listing was read, an engine that stops answering leaves listings answering
    the last good read, marked stale with since when; a failure answer (5xx) is no reason
    to serve old data; the next good read is live again. Before any good read: 503."""
    a1 = "a" * 40
    items = [
        item(
            "sha256:a",
            [f"{REG}/r2d-alice/env:{a1[:12]}", f"{REG}/r2d-alice/env:latest"],
            labels_for("alice", "env", a1),
        ),
    ]
    answer: dict = {"down": True}

    async def engine_list(*, repository=None):
        if answer["down"] is True:
            raise Unavailable("Cannot reach the Docker engine at tcp://x: check dockerd")
        if answer["down"] == "broken":
            raise UpstreamError("Docker engine failed")
        return items

    monkeypatch.setattr(catalog.engine, "list_labelled", engine_list)
    with pytest.raises(Unavailable) as info:
        await catalog.list_images()
    assert "No listing was read since the service started" in info.value.message
    assert catalog.state().to_dict()["live"] is False
    answer["down"] = False
    assert [i.name for i in await catalog.list_images()] == ["env"]
    assert catalog.state().to_dict() | {"last_good_age_s": 0} == {
        "live": True,
        "stale": False,
        "since": None,
        "last_good_age_s": 0,
        "source": "engine",
        "note": "",
    }
    answer["down"] = True
    assert [i.name for i in await catalog.list_images()] == ["env"]
    assert (await catalog.get(owner_slug=escape_owner("alice"), name="env")).commit == a1
    state = catalog.state().to_dict()
    assert state["stale"] is True and state["live"] is False and state["since"] > 0
    answer["down"] = "broken"
    with pytest.raises(UpstreamError):
        await catalog.list_images()
    answer["down"] = False
    await catalog.list_images()
    assert catalog.state().to_dict()["stale"] is False
