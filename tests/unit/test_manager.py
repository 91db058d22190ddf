"""BuildManager with a fake executor, catalog and resolver (queueing, joining, timeouts...)."""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass, field

import pytest

from repo2docker_service.builds.executors import BuildFailed, Executor, LostBuild
from repo2docker_service.builds.manager import BuildManager
from repo2docker_service.builds.model import BuildState
from repo2docker_service.builds.request import BuildRequest
from repo2docker_service.builds.store import BuildStore
from repo2docker_service.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    QueueFull,
    SourceError,
    Unavailable,
    UpstreamError,
)
from repo2docker_service.images.catalog import Catalog, ImageInfo
from repo2docker_service.images.labels import LABEL_OWNER, LABEL_SHARED, ImageLabels
from repo2docker_service.images.naming import ImageNamer, escape_owner
from repo2docker_service.sources import GitCredentials
from repo2docker_service.sources.commits import commit_not_found

SECRET = "tok-3f9a8b7c6d5e4f"


# ----------------------------------------------------------------------------- fakes


def sha_for(repo: str, ref: str) -> str:
    return hashlib.sha1(f"{repo}@{ref}".encode()).hexdigest()


class FakeResolver:
    def __init__(self):
        self.calls = []
        self.overrides: dict[tuple[str, str], str] = {}

    async def __call__(self, repo, ref, *, credentials=None, timeout=30, known_commits=()):
        self.calls.append((repo, ref, credentials))
        await asyncio.sleep(0)
        if "missing" in repo:
            raise SourceError(f"could not read {repo}: not found")
        return self.overrides.get((repo, ref), sha_for(repo, ref))


@dataclass
class Script:
    """What the fake executor does for one repo."""

    lines: list[str] = field(default_factory=lambda: ["step 1", "step 2"])
    interval: float = 0.0
    hang: bool = False  # after the lines, wait until cancelled
    fail: str | None = None
    gate: asyncio.Event | None = None  # wait for this before finishing
    leave_image: bool = False  # on failure, leave a tagged image (repo2docker did)
    kind: str = "log"  # "progress": output without a new line (collapsed frames)


class FakeExecutor(Executor):
    name = "fake"

    def __init__(self, catalog: FakeCatalog):
        self.catalog = catalog
        self.scripts: dict[str, Script] = {}
        self.calls = []
        self.started: dict[str, asyncio.Event] = {}
        self.cancelled: list[str] = []

    def started_event(self, repo: str) -> asyncio.Event:
        return self.started.setdefault(repo, asyncio.Event())

    async def build(self, build, *, on_line, push, cache_from, labels, credentials):
        script = self.scripts.get(build.repo, Script())
        self.calls.append(
            dict(
                build=build,
                push=push,
                cache_from=list(cache_from),
                labels=dict(labels),
                credentials=credentials,
            )
        )
        self.started_event(build.repo).set()
        try:
            for line in script.lines:
                on_line(script.kind, {"message": line})
                if script.interval:
                    await asyncio.sleep(script.interval)
            if script.gate is not None:
                await script.gate.wait()
            if script.hang:
                await asyncio.Event().wait()
            if script.fail:
                if script.leave_image:
                    self.catalog.images[build.image] = dict(labels)
                raise BuildFailed(script.fail)
            self.catalog.images[build.image] = dict(labels)
            self.catalog.pushed.extend([build.image] if push else [])
        except asyncio.CancelledError:
            self.cancelled.append(build.id)
            raise


class FakeCatalog(Catalog):
    name = "fake"

    def __init__(self, namer: ImageNamer):
        self.namer = namer
        self.images: dict[str, dict[str, str]] = {}  # reference -> labels
        self.removed: list[str] = []
        self.pushed: list[str] = []
        self.tagged: list[tuple[str, str]] = []
        self.fail_push = False

    async def exists(self, reference):
        await asyncio.sleep(0)
        return reference in self.images

    async def image_info(self, reference):
        await asyncio.sleep(0)
        labels = ImageLabels.parse(self.images.get(reference))
        if labels is None:
            return None
        owner_slug, name = self.namer.parse(reference.rpartition(":")[0])
        return ImageInfo(
            owner=labels.owner,
            shared=labels.shared,
            owner_slug=owner_slug,
            name=name,
            display_name=labels.display_name,
            repo=labels.repo,
            ref=labels.ref,
            commit=labels.commit,
            image=reference,
            latest=None,
            hints=labels.hints,
        )

    async def get(self, *, owner_slug, name):
        latest = self.namer.reference(owner_slug=owner_slug, name=name, tag="latest")
        return await self.image_info(latest) if latest in self.images else None

    async def list_images(self, *, owner=None, include_shared=False):
        return [await self.image_info(r) for r in self.images if not r.endswith(":latest")]

    async def image_id(self, reference):
        labels = self.images.get(reference)
        return None if labels is None else "id:" + labels["repo2docker-service.build-id"]

    async def tag(self, source, target):
        if source.startswith("id:"):
            source = next(
                r
                for r, labels in self.images.items()
                if "id:" + labels["repo2docker-service.build-id"] == source
            )
        self.images[target] = self.images[source]
        self.tagged.append((source, target))

    async def remove_tag(self, reference):
        self.removed.append(reference)
        return self.images.pop(reference, None) is not None

    async def push(self, reference):
        await asyncio.sleep(0.01)
        if self.fail_push:
            raise UpstreamError(f"pushing {reference} failed: registry down")
        self.pushed.append(reference)


@pytest.fixture
def namer():
    return ImageNamer(template="{registry}{prefix}{owner}/{name}:{tag}", prefix="r2d-")


@pytest.fixture
def parts(namer):
    catalog = FakeCatalog(namer)
    return catalog, FakeExecutor(catalog), FakeResolver()


@pytest.fixture
def catalog(parts):
    return parts[0]


@pytest.fixture
def executor(parts):
    return parts[1]


@pytest.fixture
def resolver(parts):
    return parts[2]


@pytest.fixture
async def make_manager(parts, namer):
    catalog, executor, resolver = parts
    managers = []

    async def make(**kw):
        args = dict(
            executor=executor,
            catalog=catalog,
            namer=namer,
            store=BuildStore(history_limit=kw.pop("history_limit", 50)),
            resolver=resolver,
            concurrency=1,
            max_queue=5,
            build_timeout=30,
            build_idle_timeout=30,
            cancel_wait=5,
        )
        args.update(kw)
        manager = BuildManager(**args)
        await manager.start()
        managers.append(manager)
        return manager

    yield make
    for manager in managers:
        await manager.stop()


def req(repo="https://git.example.org/alice/env", **kw) -> BuildRequest:
    return BuildRequest(owner=kw.pop("owner", "alice"), repo=repo, **kw)


async def done(build, timeout=5):
    await asyncio.wait_for(build.wait(), timeout)
    return build


# ----------------------------------------------------------------------------- submit


async def test_build_then_cache_hit(make_manager, catalog, executor):
    manager = await make_manager()
    first = await manager.submit(req(ref="main", display_name="My Env", hints={"cpu": "1"}))
    assert not first.cached and not first.joined
    build = await done(first.build)
    assert build.state is BuildState.BUILT, build.error
    assert (
        build.image == f"r2d-alice/env:{sha_for('https://git.example.org/alice/env', 'main')[:12]}"
    )
    assert (build.image, build.latest_image) in catalog.tagged
    assert build.latest_image == "r2d-alice/env:latest"
    call = executor.calls[0]
    assert call["labels"][LABEL_OWNER] == "alice"
    assert call["labels"]["repo2docker-service.display-name"] == "My Env"
    assert call["labels"]["repo2docker-service.hint.cpu"] == "1"
    assert call["cache_from"] == [] and call["push"] is False
    assert [e.data["message"] for e in build.events() if e.type == "log"] == ["step 1", "step 2"]

    second = await manager.submit(req(ref="main"))
    assert second.cached and second.build is None and second.image.image == build.image
    assert second.image.display_name == "My Env"
    assert len(executor.calls) == 1
    json.dumps(second.to_dict())


async def test_new_commit_builds_with_cache_from_latest(make_manager, catalog, executor, resolver):
    manager = await make_manager()
    await done((await manager.submit(req(ref="main"))).build)
    resolver.overrides[("https://git.example.org/alice/env", "main")] = "f" * 40
    build = await done((await manager.submit(req(ref="main"))).build)
    assert build.state is BuildState.BUILT
    assert build.image.endswith(":ffffffffffff")
    assert executor.calls[1]["cache_from"] == ["r2d-alice/env:latest"]
    assert catalog.tagged[-1] == (build.image, "r2d-alice/env:latest")


async def test_identical_requests_join(make_manager, executor):
    gate = asyncio.Event()
    executor.scripts["https://git.example.org/alice/env"] = Script(gate=gate)
    manager = await make_manager()
    results = await asyncio.gather(*(manager.submit(req()) for _ in range(3)))
    forced = await manager.submit(req(force=True))
    builds = {id(r.build) for r in [*results, forced]}
    assert len(builds) == 1
    assert sum(r.joined for r in results) == 2 and forced.joined
    gate.set()
    await done(results[0].build)
    assert len(executor.calls) == 1
    # a different owner never joins alice's build
    other = await manager.submit(req(owner="bob"))
    assert not other.joined and other.build.image.startswith("r2d-bob/")


async def test_queue_positions_concurrency_one(make_manager, executor):
    gates = {}
    for n in range(3):
        gates[n] = asyncio.Event()
        executor.scripts[f"https://git.example.org/alice/r{n}"] = Script(gate=gates[n])
    manager = await make_manager(concurrency=1, max_queue=5)
    builds = []
    for n in range(3):
        builds.append((await manager.submit(req(f"https://git.example.org/alice/r{n}"))).build)
    await asyncio.wait_for(executor.started_event(builds[0].repo).wait(), 2)
    assert [b.state for b in builds] == [BuildState.BUILDING, BuildState.QUEUED, BuildState.QUEUED]
    assert [b.position for b in builds] == [None, 1, 2]
    assert manager.status()["queued"] == 2 and manager.status()["running"] == 1
    gates[0].set()
    await done(builds[0])
    await asyncio.wait_for(executor.started_event(builds[1].repo).wait(), 2)
    assert builds[2].position == 1
    gates[1].set()
    gates[2].set()
    for b in builds:
        await done(b)
    assert [b.state for b in builds] == [BuildState.BUILT] * 3
    # the last build saw its position go 2 -> 1 in phase events
    positions = [e.data["position"] for e in builds[2].events() if e.type == "phase"]
    assert [p for p in positions if p is not None] == [2, 1]


async def test_concurrency_two_runs_two(make_manager, executor):
    gate = asyncio.Event()
    for n in range(3):
        executor.scripts[f"https://git.example.org/alice/c{n}"] = Script(gate=gate)
    manager = await make_manager(concurrency=2)
    builds = [
        (await manager.submit(req(f"https://git.example.org/alice/c{n}"))).build for n in range(3)
    ]
    await asyncio.wait_for(executor.started_event(builds[1].repo).wait(), 2)
    assert [b.state for b in builds] == [
        BuildState.BUILDING,
        BuildState.BUILDING,
        BuildState.QUEUED,
    ]
    gate.set()
    for b in builds:
        await done(b)


async def test_queue_full(make_manager, executor):
    gate = asyncio.Event()
    for n in range(4):
        executor.scripts[f"https://git.example.org/alice/q{n}"] = Script(gate=gate)
    manager = await make_manager(concurrency=1, max_queue=2)
    accepted = [
        (await manager.submit(req(f"https://git.example.org/alice/q{n}"))).build for n in range(3)
    ]
    with pytest.raises(QueueFull) as info:
        await manager.submit(req("https://git.example.org/alice/q3"))
    assert info.value.status_code == 429
    assert info.value.retry_after > 0
    assert info.value.headers["Retry-After"] == str(info.value.retry_after)
    assert len(manager.list()) == 3
    # joining an identical build is still possible when full
    assert (await manager.submit(req("https://git.example.org/alice/q2"))).joined
    gate.set()
    for b in accepted:
        await done(b)
    # room again
    assert (await manager.submit(req("https://git.example.org/alice/q3"))).build is not None


async def test_max_queue_zero_accepts_only_free_slots(make_manager, executor):
    gate = asyncio.Event()
    executor.scripts["https://git.example.org/alice/z0"] = Script(gate=gate)
    manager = await make_manager(concurrency=1, max_queue=0)
    first = (await manager.submit(req("https://git.example.org/alice/z0"))).build
    with pytest.raises(QueueFull):
        await manager.submit(req("https://git.example.org/alice/z1"))
    gate.set()
    await done(first)


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "kw",
    [
        dict(repo="http://git.example.org/alice/env"),  # scheme not allowed
        dict(repo="ext::sh -c touch% /tmp/pwned"),
        dict(repo="-oProxyCommand=x"),
        dict(repo="https://user:pw@git.example.org/x"),
        dict(ref="--upload-pack=touch"),
        dict(ref="a..b"),
        dict(name="Bad Name"),
        dict(hints={"cpu": "lots"}),
        dict(hints={"gpu": "1"}),
        dict(display_name="a\nb"),
    ],
)
async def test_invalid_input_queues_nothing(make_manager, kw, resolver):
    manager = await make_manager()
    repo = kw.pop("repo", "https://git.example.org/alice/env")
    with pytest.raises(InvalidInput):
        await manager.submit(req(repo, **kw))
    assert resolver.calls == [] and manager.list() == []


async def test_source_error_queues_nothing(make_manager):
    manager = await make_manager()
    with pytest.raises(SourceError):
        await manager.submit(req("https://git.example.org/alice/missing"))
    assert manager.list() == []


async def test_name_derived_and_shared_namespace(make_manager, executor):
    manager = await make_manager()
    result = await manager.submit(
        req("https://git.example.org/org/Data-Science.git", owner="admin", shared=True)
    )
    build = await done(result.build)
    assert build.name == "data-science" and build.owner_slug == "shared"
    assert build.image.startswith("r2d-shared/data-science:")
    labels = executor.calls[0]["labels"]
    assert labels[LABEL_OWNER] == "" and labels[LABEL_SHARED] == "true"
    assert build.owner == "admin" and build.shared
    assert manager.list(owner="bob", include_shared=True) == [build]
    assert manager.list(owner="bob") == []


A_REPO = "https://git.example.org/a/analysis"
B_REPO = "https://git.example.org/b/analysis"


async def test_same_name_other_repository_never_replaces_an_environment(make_manager, catalog):
    manager = await make_manager()
    first = await done((await manager.submit(req(A_REPO))).build)
    assert first.name == "analysis"
    # no name: a distinct one is derived; a given name another repository holds: 409
    second = await done((await manager.submit(req(B_REPO))).build)
    assert second.name == "b-analysis" and second.display_name == "b-analysis"
    with pytest.raises(Conflict, match=f"'analysis' is built from {A_REPO}"):
        await manager.submit(req(B_REPO, name="analysis"))
    with pytest.raises(Conflict):
        await manager.submit(req(B_REPO, name="analysis", force=True))
    assert len(manager.list()) == 2
    assert (await catalog.get(owner_slug="alice", name="analysis")).repo == A_REPO
    assert (await catalog.get(owner_slug="alice", name="b-analysis")).repo == B_REPO
    # the same repositories again (any spelling) keep their own environments
    again = (await manager.submit(req(B_REPO + ".git/"))).build  # (the fake: a new commit)
    assert (await done(again)).name == "b-analysis"
    assert (await manager.submit(req(A_REPO, name="analysis"))).cached
    # another owner's namespace is apart
    assert (await done((await manager.submit(req(B_REPO, owner="bob"))).build)).name == "analysis"


async def test_latest_never_moves_to_another_repository(make_manager, catalog, monkeypatch):
    manager = await make_manager()
    first = await done((await manager.submit(req(A_REPO))).build)

    async def unavailable(**kw):
        raise Unavailable("registry down")

    # the name check before queueing cannot tell (the catalog is unavailable)...
    monkeypatch.setattr(catalog, "get", unavailable)
    second = await done((await manager.submit(req(B_REPO, name="analysis"))).build)
    # ...so the build stops before it moves latest: the first environment stays
    assert second.state is BuildState.FAILED
    assert second.error.startswith("the name 'analysis' is taken: your environment 'analysis'")
    assert f"is built from {A_REPO}, and stays as it was" in second.error
    assert catalog.images["r2d-alice/analysis:latest"] == catalog.images[first.image]
    assert second.image not in catalog.images


async def test_a_queued_build_holds_its_name(make_manager, executor):
    manager = await make_manager()
    gate = asyncio.Event()
    executor.scripts[A_REPO] = Script(gate=gate)
    first = (await manager.submit(req(A_REPO))).build
    with pytest.raises(Conflict, match="'analysis' is taken"):
        await manager.submit(req(B_REPO, name="analysis"))
    second = (await manager.submit(req(B_REPO))).build
    assert second.name == "b-analysis"
    gate.set()
    assert (await done(first)).state is BuildState.BUILT
    assert (await done(second)).state is BuildState.BUILT


async def test_owner_escaped(make_manager):
    manager = await make_manager()
    build = (await manager.submit(req(owner="Alice.Smith@example.org"))).build
    assert build.owner_slug == escape_owner("Alice.Smith@example.org")
    assert build.image.startswith(f"r2d-{build.owner_slug}/env:")
    await done(build)


# ----------------------------------------------------------------------------- failure


async def test_failure_keeps_log_and_removes_partial_image(make_manager, catalog, executor):
    repo = "https://git.example.org/alice/broken"
    executor.scripts[repo] = Script(
        lines=["#5 RUN exit 3", "ERROR: failed to solve"], fail="exit 3", leave_image=True
    )
    manager = await make_manager()
    build = await done((await manager.submit(req(repo))).build)
    assert build.state is BuildState.FAILED and build.error == "exit 3"
    assert "ERROR: failed to solve" in build.log_text()
    assert build.image in catalog.removed and build.image not in catalog.images
    assert build.latest_image not in catalog.images
    done_event = build.events()[-1]
    assert done_event.type == "done" and done_event.data["state"] == "failed"
    assert done_event.data["error"] == "exit 3"


async def test_force_removes_old_tag_and_rebuilds(make_manager, catalog, executor):
    manager = await make_manager()
    first = await done((await manager.submit(req())).build)
    assert (await manager.submit(req())).cached
    forced = await done((await manager.submit(req(force=True))).build)
    assert forced.state is BuildState.BUILT and forced is not first
    assert forced.image == first.image and catalog.removed == [first.image]
    assert len(executor.calls) == 2
    assert executor.calls[1]["cache_from"] == [first.latest_image]


async def test_push_goes_through_pushing(make_manager, catalog, executor):
    manager = await make_manager(push=True)
    build = await done((await manager.submit(req())).build)
    assert build.state is BuildState.BUILT
    phases = [e.data["phase"] for e in build.events() if e.type == "phase"]
    assert phases == ["queued", "queued", "building", "pushing", "built"]
    assert catalog.pushed == [build.image, build.latest_image]
    assert executor.calls[0]["push"] is True
    # force with push: repo2docker always builds with --push, no removal needed
    await done((await manager.submit(req(force=True))).build)
    assert catalog.removed == []


async def test_failure_after_latest_moved_restores_it(make_manager, catalog, resolver):
    manager = await make_manager(push=True)
    first = await done((await manager.submit(req(ref="main"))).build)
    first_id = await catalog.image_id(first.latest_image)
    resolver.overrides[("https://git.example.org/alice/env", "main")] = "e" * 40
    catalog.fail_push = True
    second = await done((await manager.submit(req(ref="main"))).build)
    assert second.state is BuildState.FAILED and "registry down" in second.error
    assert await catalog.image_id(second.latest_image) == first_id
    assert second.image not in catalog.images and first.image in catalog.images
    # with no previous latest, a failed build leaves no latest either
    catalog.images.clear()
    third = await done((await manager.submit(req("https://git.example.org/alice/new"))).build)
    assert third.state is BuildState.FAILED
    assert catalog.images == {}


# ----------------------------------------------------------------------------- cancel


async def test_cancel_queued(make_manager, executor):
    gate = asyncio.Event()
    executor.scripts["https://git.example.org/alice/a"] = Script(gate=gate)
    manager = await make_manager(concurrency=1)
    a = (await manager.submit(req("https://git.example.org/alice/a"))).build
    b = (await manager.submit(req("https://git.example.org/alice/b"))).build
    c = (await manager.submit(req("https://git.example.org/alice/c"))).build
    await asyncio.wait_for(executor.started_event(a.repo).wait(), 2)
    assert (b.position, c.position) == (1, 2)
    cancelled = await manager.cancel(b.id)
    assert cancelled is b and b.state is BuildState.CANCELLED and b.error == "cancelled"
    assert c.position == 1
    assert b.events()[-1].type == "done"
    with pytest.raises(Conflict):
        await manager.cancel(b.id)
    with pytest.raises(NotFound):
        await manager.cancel("nope")
    gate.set()
    await done(c)
    assert [call["build"].repo for call in executor.calls] == [a.repo, c.repo]


async def test_cancel_running(make_manager, catalog, executor):
    repo = "https://git.example.org/alice/slow"
    executor.scripts[repo] = Script(hang=True, leave_image=True)
    manager = await make_manager()
    build = (await manager.submit(req(repo))).build
    await asyncio.wait_for(executor.started_event(repo).wait(), 2)
    result = await asyncio.wait_for(manager.cancel(build.id), 5)
    assert result.state is BuildState.CANCELLED and result.error == "cancelled"
    assert executor.cancelled == [build.id]
    assert build.image not in catalog.images
    assert "step 1" in build.log_text()
    # the slot is free again
    assert (await done((await manager.submit(req())).build)).state is BuildState.BUILT


async def test_dismiss_forgets_ended_builds_only(make_manager, catalog, executor):
    repo = "https://git.example.org/alice/slow2"
    executor.scripts[repo] = Script(hang=True)
    manager = await make_manager()
    build = (await manager.submit(req(repo))).build
    await asyncio.wait_for(executor.started_event(repo).wait(), 2)
    with pytest.raises(Conflict, match="cancel it first"):
        manager.dismiss(build.id)
    assert manager.get(build.id) is build
    await asyncio.wait_for(manager.cancel(build.id), 5)
    images = dict(catalog.images)
    assert manager.dismiss(build.id) is build
    assert manager.get(build.id) is None and build not in manager.list()
    assert catalog.images == images  # a record goes, never an image
    with pytest.raises(NotFound):
        manager.dismiss(build.id)


async def test_total_timeout(make_manager, executor):
    repo = "https://git.example.org/alice/forever"
    executor.scripts[repo] = Script(lines=[f"tick {n}" for n in range(1000)], interval=0.02)
    manager = await make_manager(build_timeout=0.3, build_idle_timeout=5)
    build = await done((await manager.submit(req(repo))).build)
    assert build.state is BuildState.FAILED
    assert build.error == "timed out after 0.3 s"
    assert executor.cancelled == [build.id]
    assert 0.25 < build.duration < 2


async def test_idle_timeout(make_manager, executor):
    repo = "https://git.example.org/alice/silent"
    executor.scripts[repo] = Script(lines=["one line"], hang=True)
    manager = await make_manager(build_timeout=10, build_idle_timeout=0.3)
    build = await done((await manager.submit(req(repo))).build)
    assert build.state is BuildState.FAILED
    assert build.error == "no output for 0.3 s"
    assert executor.cancelled == [build.id]


async def test_output_resets_idle_timer(make_manager, executor):
    repo = "https://git.example.org/alice/chatty"
    executor.scripts[repo] = Script(lines=[f"tick {n}" for n in range(15)], interval=0.05)
    manager = await make_manager(build_timeout=10, build_idle_timeout=0.3)
    build = await done((await manager.submit(req(repo))).build)
    assert build.state is BuildState.BUILT, build.error


async def test_progress_frames_reset_idle_timer_but_make_no_events(make_manager, executor):
    """Collapsed carriage-return frames are output (not idle) but never events."""
    repo = "https://git.example.org/alice/progress-bar"
    executor.scripts[repo] = Script(
        lines=[f"{n}%" for n in range(15)], interval=0.05, kind="progress"
    )
    manager = await make_manager(build_timeout=10, build_idle_timeout=0.3)
    build = await done((await manager.submit(req(repo))).build)
    assert build.state is BuildState.BUILT, build.error
    assert [e for e in build.events() if e.type == "log"] == []


async def test_stop_cancels_everything(namer, catalog, executor, resolver):
    executor.scripts["https://git.example.org/alice/s0"] = Script(hang=True)
    manager = BuildManager(
        executor=executor,
        catalog=catalog,
        namer=namer,
        store=BuildStore(10),
        resolver=resolver,
        concurrency=1,
    )
    await manager.start()
    running = (await manager.submit(req("https://git.example.org/alice/s0"))).build
    queued = (await manager.submit(req("https://git.example.org/alice/s1"))).build
    await asyncio.wait_for(executor.started_event(running.repo).wait(), 2)
    await asyncio.wait_for(manager.stop(), 5)
    # the running build was stopped by the stop: lost, as after a crash; the queued one
    # never started
    assert running.state is BuildState.LOST and "service stopped" in running.error
    assert queued.state is BuildState.CANCELLED
    assert executor.cancelled == [running.id]
    with pytest.raises(UpstreamError):
        await manager.submit(req("https://git.example.org/alice/s2"))


async def test_stop_leaves_an_adoptable_build_running_and_not_ended(
    namer, catalog, executor, resolver
):
    """An adoptable executor's build goes on after a stop: it gets no terminal state (its
    viewers must not hear "cancelled" or done), and its streams are woken to end."""
    executor.scripts["https://git.example.org/alice/goes-on"] = Script(hang=True)
    executor.adoptable = True
    executor.detach = lambda: None
    manager = BuildManager(
        executor=executor, catalog=catalog, namer=namer, store=BuildStore(10), resolver=resolver
    )
    await manager.start()
    build = (await manager.submit(req("https://git.example.org/alice/goes-on"))).build
    await asyncio.wait_for(executor.started_event(build.repo).wait(), 2)
    waiting = asyncio.create_task(build.wait_events(build.last_event_id, max_wait=30))
    await asyncio.sleep(0)
    await asyncio.wait_for(manager.stop(), 5)
    assert await asyncio.wait_for(waiting, 1) == []
    assert build.state is BuildState.BUILDING and not build.ended
    assert build.detached and "restarting" in build.detached
    assert [e.type for e in build.events()][-1] != "done"


# ----------------------------------------------------------------------------- events, logs


async def test_event_ids_increase_and_follow_resumes(make_manager, executor):
    repo = "https://git.example.org/alice/events"
    executor.scripts[repo] = Script(lines=[f"line {n}" for n in range(30)], interval=0.001)
    manager = await make_manager()
    build = (await manager.submit(req(repo))).build
    seen = []
    async for event in build.follow():
        seen.append(event)
        if len(seen) == 10:
            break
    rest = [e async for e in build.follow(after=seen[-1].id)]
    ids = [e.id for e in seen + rest]
    assert ids == list(range(1, len(ids) + 1))
    assert rest[-1].type == "done" and build.state is BuildState.BUILT


async def test_log_limit_applies(make_manager, executor):
    repo = "https://git.example.org/alice/noisy"
    executor.scripts[repo] = Script(lines=[f"line {n:05d} " + "y" * 90 for n in range(2000)])
    manager = await make_manager(log_limit_bytes=10_000)
    build = await done((await manager.submit(req(repo))).build)
    assert build.log_bytes <= 10_000 and build.dropped_log_events > 1800
    assert "line 01999" in build.log_text()
    assert build.to_dict()["log_bytes"] == build.log_bytes


async def test_history_eviction(make_manager):
    manager = await make_manager(history_limit=2)
    builds = []
    for n in range(4):
        builds.append(
            await done((await manager.submit(req(f"https://git.example.org/alice/h{n}"))).build)
        )
    assert manager.list() == builds[2:]
    assert manager.get(builds[0].id) is None and manager.get(builds[3].id) is builds[3]


async def test_credentials_reach_git_but_are_never_shown(make_manager, executor, resolver):
    creds = GitCredentials("x-access-token", SECRET)
    manager = await make_manager()
    result = await manager.submit(req("https://git.example.org/alice/private", credentials=creds))
    build = result.build
    assert resolver.calls[-1][2] is creds
    await done(build)
    assert executor.calls[-1]["credentials"] is creds
    assert build.credentials is None
    blob = "".join(
        [
            json.dumps(result.to_dict()),
            repr(build),
            repr(result),
            "".join(e.to_sse() for e in build.events()),
            json.dumps(executor.calls[-1]["labels"]),
            json.dumps([b.to_dict() for b in manager.list()]),
        ]
    )
    assert SECRET not in blob


async def test_recover_counts_catalog(make_manager):
    manager = await make_manager()
    await done((await manager.submit(req())).build)
    assert await manager.recover() == 1


# ----------------------------------------------------------------------------- observers


class Recorder:
    """A build observer that remembers what it was told."""

    def __init__(self):
        self.answers: list[tuple[object, object]] = []
        self.ended: list[tuple[str, BuildState]] = []

    def request_answered(self, result, error):
        self.answers.append((result, error))

    def build_ended(self, build):
        assert build.ended  # told after the done event
        self.ended.append((build.id, build.state))


class Broken:
    def request_answered(self, result, error):
        raise RuntimeError("observer bug")

    def build_ended(self, build):
        raise RuntimeError("observer bug")


async def test_observers_hear_every_answer_and_each_end_once(make_manager, executor):
    recorder = Recorder()
    gate = asyncio.Event()
    executor.scripts["https://git.example.org/alice/slow"] = Script(gate=gate)
    executor.scripts["https://git.example.org/alice/bad"] = Script(fail="boom")
    manager = await make_manager(concurrency=1, observers=[Broken()])
    manager.add_observer(recorder)
    slow = (await manager.submit(req("https://git.example.org/alice/slow"))).build
    queued = (await manager.submit(req("https://git.example.org/alice/q"))).build
    bad = (await manager.submit(req("https://git.example.org/alice/bad"))).build
    joined = await manager.submit(req("https://git.example.org/alice/slow"))
    with pytest.raises(InvalidInput):
        await manager.submit(req("not a url"))
    await asyncio.wait_for(executor.started_event(slow.repo).wait(), 2)
    assert recorder.ended == []  # nothing ended yet: active builds are not reported
    await manager.cancel(queued.id)
    gate.set()
    await done(slow)
    await done(bad)
    cached = await manager.submit(req("https://git.example.org/alice/slow"))
    assert sorted(recorder.ended) == sorted(
        [
            (queued.id, BuildState.CANCELLED),
            (slow.id, BuildState.BUILT),
            (bad.id, BuildState.FAILED),
        ]
    )
    results = [result for result, _ in recorder.answers]
    errors = [type(error).__name__ for _, error in recorder.answers if error is not None]
    assert [r.build for r in results[:3]] == [slow, queued, bad]
    assert results[3] is joined and joined.joined
    assert results[4] is None and errors == ["InvalidInput"]
    assert results[5] is cached and cached.cached


async def test_lost_builds_are_recorded_and_reported(make_manager, executor, namer):
    image = namer.reference(owner_slug="alice", name="env", tag="c" * 12)
    labels = ImageLabels(
        owner="alice", shared=False, name="env", repo="https://x.org/env", build_id="b1"
    ).to_labels()

    async def stop_lost(*, accept):
        assert accept(image) and not accept("elsewhere/x:1")
        return [LostBuild(image=image, labels=labels)]

    executor.stop_lost = stop_lost
    recorder = Recorder()
    manager = await make_manager(observers=[recorder])
    await manager.recover()
    build = manager.get("b1")
    assert build is not None and build.state is BuildState.LOST and build.owner == "alice"
    assert build.latest_image == namer.reference(owner_slug="alice", name="env", tag="latest")
    assert "stopped while this build was running" in build.error
    assert recorder.ended == [("b1", BuildState.LOST)]


# ----------------------------------------------------------------------------- missing commits


class FakeCommitChecker:
    """``check_commit`` for a remote that has ``known`` commits (the real one is tested in
    tests/integration/test_builds.py against the git server)."""

    def __init__(self, known=()):
        self.known = set(known)
        self.calls = []

    async def __call__(self, repo, sha, *, credentials=None, timeout=30):
        self.calls.append((repo, sha))
        if sha not in self.known:
            raise commit_not_found(repo, sha)
        return True


@pytest.mark.parametrize("typed", ["a" * 40, "A" * 40, "0123456789abcdef0123456789ABCDEF01234567"])
async def test_a_missing_full_sha_is_a_422_before_queueing(make_manager, resolver, typed):
    checker = FakeCommitChecker()
    manager = await make_manager(commit_checker=checker)
    url = "https://git.example.org/alice/env"
    resolver.overrides[(url, typed)] = typed.lower()
    with pytest.raises(SourceError) as e:
        await manager.submit(req(url, ref=typed))
    assert e.value.status_code == 422
    assert e.value.message == f"commit {typed.lower()} not found in {url}"
    assert checker.calls == [(url, typed.lower())] and manager.list() == []


async def test_the_commit_is_asked_only_for_full_shas_without_an_image(make_manager, resolver):
    url = "https://git.example.org/alice/env"
    sha = "b" * 40
    resolver.overrides[(url, sha)] = sha
    checker = FakeCommitChecker(known={sha})
    manager = await make_manager(commit_checker=checker)
    built = await done((await manager.submit(req(url, ref=sha))).build)
    assert built.state is BuildState.BUILT and checker.calls == [(url, sha)]
    # the cache hit is answered without asking the remote again
    again = await manager.submit(req(url, ref=sha))
    assert again.cached and checker.calls == [(url, sha)]
    # a branch was resolved by the remote already: nothing more to ask
    await done((await manager.submit(req(url, ref="main"))).build)
    assert checker.calls == [(url, sha)]


# ------------------------------------------------------------- parts down (builds/gate.py)
class FakeGate:
    """The readiness gate: ``down`` is what keeps builds from running (None: all up)."""

    def __init__(self, when_down):
        self.when_down = when_down
        self.down: str | None = None
        self.asked = 0

    async def blocking(self, *, fresh=False):
        self.asked += 1
        await asyncio.sleep(0)
        return self.down


DOWN = "the docker part is down since 2026-11-30T05:40:01Z: check that dockerd is running"


async def test_fail_refuses_new_builds_while_down_and_fails_queued_ones(make_manager, executor):
    gate = FakeGate("fail")
    manager = await make_manager(gate=gate)
    gate.down = DOWN
    with pytest.raises(Unavailable) as info:
        await manager.submit(req())
    assert info.value.status_code == 503 and DOWN in info.value.message
    assert manager.list() == [] and executor.calls == []
    # up: a build runs; a second one queued behind it finds the engine gone
    gate.down = None
    hold = asyncio.Event()
    executor.scripts["https://git.example.org/alice/held"] = Script(gate=hold)
    first = (await manager.submit(req("https://git.example.org/alice/held"))).build
    second = (await manager.submit(req("https://git.example.org/alice/next"))).build
    await asyncio.wait_for(executor.started_event(first.repo).wait(), 5)
    gate.down = DOWN
    hold.set()
    await done(first)
    await done(second)
    assert first.state is BuildState.BUILT
    assert second.state is BuildState.FAILED and DOWN in second.error
    assert second.error.startswith("cannot build now")
    assert [c["build"].id for c in executor.calls] == [first.id]


async def test_queue_keeps_builds_waiting_until_the_part_is_back(make_manager, executor):
    gate = FakeGate("queue")
    manager = await make_manager(gate=gate)
    gate.down = DOWN
    waiting = (await manager.submit(req())).build
    cancelled = (await manager.submit(req("https://git.example.org/alice/other"))).build
    while not any("Waiting: " + DOWN in json.dumps(e.data) for e in waiting.events()):
        await asyncio.sleep(0.01)
    assert waiting.state is BuildState.QUEUED and executor.calls == []
    await manager.cancel(cancelled.id)  # a waiting build can be cancelled
    assert cancelled.state is BuildState.CANCELLED
    gate.down = None
    await done(waiting, timeout=10)
    assert waiting.state is BuildState.BUILT


async def test_a_build_failing_while_a_part_is_down_names_the_part(make_manager, executor):
    gate = FakeGate("fail")
    manager = await make_manager(gate=gate)
    hold = asyncio.Event()
    executor.scripts["https://git.example.org/alice/env"] = Script(gate=hold, fail="exit 1")
    build = (await manager.submit(req())).build
    await asyncio.wait_for(executor.started_event(build.repo).wait(), 5)
    gate.down = DOWN
    hold.set()
    await done(build)
    assert build.state is BuildState.FAILED
    assert "exit 1" in build.error and DOWN in build.error


async def test_queue_gate_holds_every_worker(make_manager, executor):
    """With two workers, the one that found the queue empty after the gate must not wait
    past the gate: a build queued while the part is down waits too."""
    gate = FakeGate("queue")
    manager = await make_manager(gate=gate, concurrency=2)
    first = (await manager.submit(req())).build
    await done(first)
    gate.down = DOWN
    waiting = (await manager.submit(req("https://git.example.org/alice/later"))).build
    await asyncio.sleep(0.3)
    assert waiting.state is BuildState.QUEUED
    assert [c["build"].id for c in executor.calls] == [first.id]
    gate.down = None
    await done(waiting, timeout=10)
    assert waiting.state is BuildState.BUILT
