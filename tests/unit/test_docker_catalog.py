"""DockerCatalog without an engine: grouping of tags by labels, and the unreachable engine."""

from __future__ import annotations

import asyncio

import pytest
from aiodocker.exceptions import DockerError

from repo2docker_service.builds.model import Build, image_labels
from repo2docker_service.errors import UpstreamError
from repo2docker_service.images import docker as docker_module
from repo2docker_service.images.docker import DockerCatalog, split_reference
from repo2docker_service.images.naming import ImageNamer, escape_owner

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
    labels = image_labels(build)
    if built_at:
        labels["repo2docker-service.built-at"] = built_at
    return labels


@pytest.fixture
def catalog():
    return DockerCatalog(namer=ImageNamer(registry=REG, prefix="r2d-"))


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


async def test_groups_tags_per_environment(catalog, monkeypatch):
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

    async def fake_list(*, repository=None):
        return items

    async def fake_inspect(reference):
        for it in items:
            if reference in (it["RepoTags"] or []):
                return {**it, "Config": {"Labels": it["Labels"]}}
        return None

    monkeypatch.setattr(catalog, "_list_ours", fake_list)
    monkeypatch.setattr(catalog, "_inspect", fake_inspect)
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


@pytest.mark.parametrize("url", ["unix:///nonexistent/docker.sock", "tcp://127.0.0.1:1"])
async def test_unreachable_engine_is_upstream_error(url):
    catalog = DockerCatalog(namer=ImageNamer(prefix="r2d-"), url=url, request_timeout=5)
    try:
        for call in (
            catalog.start(),
            catalog.exists("a/b:c"),
            catalog.list_images(),
            catalog.tag("a/b:c", "a/b:latest"),
        ):
            with pytest.raises(UpstreamError) as info:
                await call
            assert info.value.status_code == 502
            assert url in info.value.message and "dockerd is running" in info.value.message
    finally:
        await catalog.close()


class FakeImages:
    """The part of ``aiodocker.Docker().images`` the catalog uses, over a dict of items."""

    def __init__(self, items):
        self.items = items
        self.list_calls = 0
        self.fail = False
        self.gate: asyncio.Event | None = None

    async def list(self, *, filters=None):
        self.list_calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise DockerError(900, {"message": "cannot connect"})
        return [dict(i, RepoTags=list(i["RepoTags"])) for i in self.items]

    def _find(self, reference):
        for i in self.items:
            if reference in i["RepoTags"]:
                return i
        raise DockerError(404, {"message": f"no such image: {reference}"})

    async def inspect(self, reference):
        i = self._find(reference)
        return {"Id": i["Id"], "RepoTags": list(i["RepoTags"]), "Config": {"Labels": i["Labels"]}}

    async def tag(self, source, repository, *, tag):
        i = self._find(source)
        i["RepoTags"].append(f"{repository}:{tag}")

    async def delete(self, reference, **kwargs):
        i = self._find(reference)
        i["RepoTags"].remove(reference)


class FakeDocker:
    def __init__(self, items):
        self.images = FakeImages(items)

    async def close(self):
        pass


def env_item(n, owner="alice"):
    commit = f"{n:040d}"
    return item(
        f"sha256:{n}",
        [f"{REG}/r2d-{owner}/env{n}:{commit[:12]}"],
        labels_for(owner, f"env{n}", commit),
    )


@pytest.fixture
def fake():
    catalog = DockerCatalog(namer=ImageNamer(registry=REG, prefix="r2d-"), list_ttl=5.0)
    docker = FakeDocker([env_item(1), env_item(2)])
    catalog._docker = docker
    return catalog, docker.images


@pytest.fixture
def clock(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(docker_module.time, "monotonic", lambda: now[0])
    return now


async def test_listing_cached_within_ttl(fake, clock):
    catalog, images = fake
    first = await catalog.list_images()
    assert [i.name for i in first] == ["env1", "env2"]
    clock[0] += 4
    assert [i.name for i in await catalog.list_images()] == ["env1", "env2"]
    assert images.list_calls == 1


async def test_concurrent_cold_callers_share_one_listing(fake):
    catalog, images = fake
    images.gate = asyncio.Event()
    calls = [asyncio.create_task(catalog.list_images()) for _ in range(5)]
    await asyncio.sleep(0.01)
    images.gate.set()
    results = await asyncio.gather(*calls)
    assert images.list_calls == 1
    assert all([i.name for i in r] == ["env1", "env2"] for r in results)


async def test_stale_served_while_one_refresh_runs(fake, clock):
    catalog, images = fake
    await catalog.list_images()
    images.items.append(env_item(3))  # another writer (docker by hand)
    clock[0] += 6
    images.gate = asyncio.Event()
    stale = await asyncio.gather(*(catalog.list_images() for _ in range(5)))
    assert all([i.name for i in r] == ["env1", "env2"] for r in stale)
    await asyncio.sleep(0.01)
    assert images.list_calls == 2  # one background refresh for the five callers
    images.gate.set()
    await catalog._listing_task
    assert [i.name for i in await catalog.list_images()] == ["env1", "env2", "env3"]
    assert images.list_calls == 2


async def test_own_writes_invalidate(fake, clock):
    catalog, images = fake
    await catalog.list_images()
    await catalog.delete(owner_slug="alice", name="env1", force=True)
    assert [i.name for i in await catalog.list_images()] == ["env2"]
    assert await catalog.get(owner_slug="alice", name="env1") is None
    commit = f"{2:040d}"
    await catalog.tag(f"{REG}/r2d-alice/env2:{commit[:12]}", f"{REG}/r2d-alice/env2:latest")
    (env2,) = await catalog.list_images()
    assert env2.latest == f"{REG}/r2d-alice/env2:latest"
    assert await catalog.remove_tag(f"{REG}/r2d-alice/env2:latest") is True
    (env2,) = await catalog.list_images()
    assert env2.latest is None
    assert images.list_calls >= 4


async def test_write_during_refresh_is_not_overwritten(fake, clock):
    catalog, images = fake
    images.gate = asyncio.Event()
    pending = asyncio.create_task(catalog.list_images())
    await asyncio.sleep(0.01)
    images.gate.set()
    images.gate = None
    # the listing in flight read env1; the delete lands before it stores its result
    images.items[0]["RepoTags"].clear()
    catalog._invalidate()
    await pending
    assert [i.name for i in await catalog.list_images()] == ["env2"]


async def test_refresh_failure_drops_cache_and_raises(fake, clock):
    catalog, images = fake
    await catalog.list_images()
    images.fail = True
    clock[0] += 6
    assert len(await catalog.list_images()) == 2  # stale, refresh started
    with pytest.raises(DockerError):
        await catalog._listing_task
    assert catalog._listing is None
    with pytest.raises(UpstreamError):
        await catalog.list_images()
    images.fail = False
    assert len(await catalog.list_images()) == 2


async def test_image_info_inspects(fake):
    catalog, images = fake
    commit = f"{1:040d}"
    info = await catalog.image_info(f"{REG}/r2d-alice/env1:{commit[:12]}")
    assert info is not None and info.commit == commit
    assert images.list_calls == 1  # a hit lists the repository for its tags
    assert await catalog.image_info(f"{REG}/r2d-alice/env1:{'f' * 12}") is None
    assert await catalog.exists(f"{REG}/r2d-alice/env1:{'f' * 12}") is False
    assert images.list_calls == 1  # misses only inspect
    # tagged into bob's namespace: the labels say alice
    images.items[0]["RepoTags"].append(f"{REG}/r2d-bob/env1:latest")
    assert await catalog.image_info(f"{REG}/r2d-bob/env1:latest") is None
