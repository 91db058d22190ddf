"""Build record, events, labels and hints (pure logic, no I/O)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict

import pytest

from repo2docker_service.builds.model import (
    TERMINAL_STATES,
    Build,
    BuildState,
    Event,
    EventType,
)
from repo2docker_service.builds.request import (
    BuildRequest,
    validate_display_name,
    validate_hints,
)
from repo2docker_service.errors import InvalidInput
from repo2docker_service.images.labels import (
    LABEL_BUILD_ID,
    LABEL_COMMIT,
    LABEL_OWNER,
    LABEL_PREFIX,
    LABEL_SCHEME,
    LABEL_SHARED,
    ImageLabels,
)
from repo2docker_service.images.naming import SCHEME_VERSION
from repo2docker_service.sources import GitCredentials

SECRET = "s3cret-Pa55word-xyz"
COMMIT = "0123456789abcdef0123456789abcdef01234567"

TO_DICT_KEYS = {
    "id",
    "owner",
    "shared",
    "name",
    "display_name",
    "repo",
    "ref",
    "commit",
    "image",
    "latest_image",
    "state",
    "position",
    "created",
    "started",
    "finished",
    "error",
    "hints",
    "log_bytes",
}


def make_build(**kw) -> Build:
    args = dict(
        owner="alice",
        owner_slug="alice",
        name="env",
        repo="https://example.org/alice/env",
        ref="main",
        commit=COMMIT,
        image="r2d-alice/env:0123456789ab",
        latest_image="r2d-alice/env:latest",
    )
    args.update(kw)
    return Build(**args)


# ----------------------------------------------------------------------------- states


def test_states_and_terminal_set():
    assert [s.value for s in BuildState] == [
        "queued",
        "building",
        "pushing",
        "built",
        "failed",
        "cancelled",
        "lost",
    ]
    assert {s.value for s in TERMINAL_STATES} == {"built", "failed", "cancelled", "lost"}
    assert isinstance(BuildState.BUILT, str)
    assert BuildState.BUILT == "built"
    assert str(BuildState.FAILED) == "failed"


def test_event_to_sse_exact():
    event = Event(id=7, type="log", data={"message": 'a "quoted"\nline'})
    assert event.to_sse() == 'id: 7\nevent: log\ndata: {"message":"a \\"quoted\\"\\nline"}\n\n'
    assert event.to_dict() == {"id": 7, "type": "log", "data": {"message": 'a "quoted"\nline'}}


# ----------------------------------------------------------------------------- lifecycle


def test_lifecycle_timestamps_and_done_event():
    build = make_build()
    assert build.state is BuildState.QUEUED and build.started is None
    build.set_position(2)
    build.set_position(2)  # unchanged: no new event
    build.set_position(1)
    build.set_state(BuildState.BUILDING)
    assert build.started is not None and build.position is None
    build.add_event("log", {"message": "hello"})
    build.set_state(BuildState.BUILT, message="Built")
    assert build.finished is not None and build.terminal
    events = build.events()
    assert [e.type for e in events] == ["phase", "phase", "phase", "log", "phase", "done"]
    assert [e.data.get("position") for e in events[:2]] == [2, 1]
    assert events[-1].data == build.to_dict()
    assert [e.id for e in events] == list(range(1, 7))
    with pytest.raises(RuntimeError):
        build.add_event("log", {"message": "late"})
    with pytest.raises(RuntimeError):
        build.set_state(BuildState.FAILED)


def test_to_dict_shape_is_json_ready():
    build = make_build(hints={"cpu": "2"})
    build.set_state(BuildState.BUILDING)
    build.set_state(BuildState.FAILED, error="boom")
    data = build.to_dict()
    assert set(data) == TO_DICT_KEYS
    assert data["state"] == "failed" and data["error"] == "boom"
    assert data["created"].endswith("Z") and data["finished"].endswith("Z")
    assert data["hints"] == {"cpu": "2"}
    json.dumps(data)


def test_unknown_event_type_rejected():
    with pytest.raises(ValueError):
        make_build().add_event("nope", {})


# ----------------------------------------------------------------------------- follow


async def collect(aiter, limit=10**6):
    out = []
    async for event in aiter:
        out.append(event)
        if len(out) >= limit:
            break
    return out


async def test_follow_replays_then_streams_live_and_ends_on_done():
    build = make_build()
    build.add_event("log", {"message": "one"})
    task = asyncio.create_task(collect(build.follow()))
    await asyncio.sleep(0)
    for n in range(5):
        build.add_event("log", {"message": f"line {n}"})
        await asyncio.sleep(0)
    build.set_state(BuildState.BUILDING)
    build.set_state(BuildState.CANCELLED, error="cancelled")
    events = await asyncio.wait_for(task, 2)
    ids = [e.id for e in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert ids == list(range(1, build.last_event_id + 1))
    assert events[-1].type == "done"


async def test_follow_after_resumes_exactly():
    build = make_build()
    for n in range(20):
        build.add_event("log", {"message": f"line {n}"})
    build.set_state(BuildState.BUILDING)
    build.set_state(BuildState.BUILT)
    full = await collect(build.follow())
    for after in (0, 1, 7, 19, 20, 21):
        resumed = await collect(build.follow(after=after))
        assert [e.id for e in resumed] == [e.id for e in full if e.id > after]
    # after the done event: nothing, returns at once
    assert await asyncio.wait_for(collect(build.follow(after=build.last_event_id)), 1) == []
    assert await asyncio.wait_for(collect(build.follow(after=10**6)), 1) == []


async def test_follow_many_viewers_all_end_on_terminal():
    build = make_build()
    viewers = [asyncio.create_task(collect(build.follow())) for _ in range(50)]
    await asyncio.sleep(0)
    build.set_state(BuildState.BUILDING)
    build.set_state(BuildState.FAILED, error="x")
    results = await asyncio.wait_for(asyncio.gather(*viewers), 2)
    assert all(r[-1].type == "done" for r in results)


async def test_slow_viewer_never_blocks_the_build():
    build = make_build(log_limit_bytes=0)
    build.add_event("log", {"message": "first"})
    stream = build.follow()
    first = await anext(stream)  # viewer takes one event then stalls
    # the build goes on: add_event is synchronous and never waits for viewers
    for n in range(10_000):
        build.add_event("log", {"message": f"line {n}"})
    build.set_state(BuildState.BUILDING)
    build.set_state(BuildState.BUILT)
    rest = await collect(stream)
    assert [e.id for e in [first, *rest]] == list(range(1, build.last_event_id + 1))


async def test_wait_events_loop():
    build = make_build()
    assert await build.wait_events(0, max_wait=0.01) == []
    build.add_event("log", {"message": "a"})
    assert [e.id for e in await build.wait_events(0, max_wait=0.01)] == [1]
    waiter = asyncio.create_task(build.wait_events(1, max_wait=5))
    await asyncio.sleep(0.01)
    build.add_event("log", {"message": "b"})
    assert [e.id for e in await asyncio.wait_for(waiter, 1)] == [2]
    # a handler-style loop ends on done, then gets [] at once with ended set
    build.set_state(BuildState.BUILDING)
    build.set_state(BuildState.BUILT)
    after, seen = 0, []
    while True:
        batch = await build.wait_events(after, max_wait=0.01)
        seen += batch
        after = batch[-1].id if batch else after
        if (batch and batch[-1].type == "done") or (not batch and build.ended):
            break
    assert [e.id for e in seen] == list(range(1, build.last_event_id + 1))
    assert await asyncio.wait_for(build.wait_events(after, max_wait=None), 1) == []
    # cancelling a waiter is harmless (no generator state)
    other = make_build()
    task = asyncio.create_task(other.wait_events(0))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_wait_returns_when_terminal():
    build = make_build()
    waiter = asyncio.create_task(build.wait())
    await asyncio.sleep(0.01)
    assert not waiter.done()
    build.set_state(BuildState.BUILDING)
    build.set_state(BuildState.BUILT)
    await asyncio.wait_for(waiter, 1)


# ----------------------------------------------------------------------------- log limit


async def test_log_limit_drops_oldest_log_events_keeps_phase():
    build = make_build(log_limit_bytes=1000)
    build.set_state(BuildState.BUILDING)
    for n in range(500):
        build.add_event("log", {"message": f"line {n:04d} " + "x" * 40})
    build.set_state(BuildState.FAILED, error="boom")
    assert 0 < build.log_bytes <= 1000
    assert build.dropped_log_events > 0
    events = build.events()
    ids = [e.id for e in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    # both phase events and done survive; the newest lines are kept
    assert [e.data["phase"] for e in events if e.type == "phase"] == ["building", "failed"]
    assert events[-1].type == "done"
    logs = [e for e in events if e.type == "log"]
    # the log says so where a live viewer sees it: a note at the end, with the count
    assert logs[-1].data["message"] == (
        f"[{build.dropped_log_events} earlier log lines ({build._dropped_bytes} bytes) "
        "were dropped: log_limit_bytes]"
    )
    assert logs[-2].data["message"].startswith("line 0499")
    assert logs[0].id > 2  # older lines went (with the first note, "are being dropped")
    notes = [e.data["message"] for e in logs if e.data["message"].startswith("[")]
    assert len(notes) == 1
    text = build.log_text()
    assert text.startswith("[") and "earlier log lines" in text and "line 0499" in text
    assert "line 0000" not in text
    resumed = await collect(build.follow(after=3))
    assert [e.id for e in resumed] == [i for i in ids if i > 3]


def test_log_text_plain():
    build = make_build()
    build.add_event("log", {"message": "a"})
    build.add_event("log", {"message": "<b>b</b>"})
    assert build.log_text() == "a\n<b>b</b>\n"
    assert build.log_bytes == len("a") + len("<b>b</b>")


# ----------------------------------------------------------------------------- secrets


def test_credentials_never_shown():
    creds = GitCredentials("bob", SECRET)
    req = BuildRequest(owner="alice", repo="https://x.org/r", credentials=creds)
    assert SECRET not in repr(req)
    build = make_build(credentials=creds)
    assert SECRET not in repr(build)
    build.set_state(BuildState.BUILDING)
    build.add_event("log", {"message": "hi"})
    build.set_state(BuildState.BUILT)
    assert build.credentials is None  # dropped once the build ended
    blob = json.dumps(build.to_dict()) + "".join(e.to_sse() for e in build.events())
    blob += json.dumps(build.image_labels().to_labels()) + repr(build)
    assert SECRET not in blob


# ----------------------------------------------------------------------------- labels


def test_labels_round_trip():
    build = make_build(display_name="My env", hints={"cpu": "2", "memory": "4G"})
    build.set_state(BuildState.BUILDING)
    labels = build.image_labels().to_labels()
    assert all(k.startswith(LABEL_PREFIX) for k in labels)
    assert all(isinstance(v, str) for v in labels.values())
    assert labels[LABEL_OWNER] == "alice"
    assert labels[LABEL_SHARED] == "false"
    assert labels[LABEL_COMMIT] == COMMIT
    assert labels[LABEL_BUILD_ID] == build.id
    assert labels[LABEL_SCHEME] == SCHEME_VERSION
    assert labels["repo2docker-service.hint.cpu"] == "2"
    parsed = ImageLabels.parse({**labels, "repo2docker.version": "x"})
    assert parsed is not None and asdict(parsed) == {
        "owner": "alice",
        "shared": False,
        "name": "env",
        "display_name": "My env",
        "repo": "https://example.org/alice/env",
        "ref": "main",
        "commit": COMMIT,
        "built_at": labels["repo2docker-service.built-at"],
        "build_id": build.id,
        "scheme": SCHEME_VERSION,
        "hints": {"cpu": "2", "memory": "4G"},
    }


def test_shared_labels_have_empty_owner():
    build = make_build(owner="admin", owner_slug="shared", shared=True)
    labels = build.image_labels().to_labels()
    assert labels[LABEL_OWNER] == "" and labels[LABEL_SHARED] == "true"
    parsed = ImageLabels.parse(labels)
    assert parsed is not None and parsed.owner == "" and parsed.shared is True


@pytest.mark.parametrize(
    "labels",
    [None, {}, {"repo2docker.ref": "x"}, {"repo2docker-service.name": "env"}],
)
def test_parse_labels_not_ours(labels):
    assert ImageLabels.parse(labels) is None


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("hints", "expected"),
    [
        (None, {}),
        ({}, {}),
        ({"cpu": "2"}, {"cpu": "2"}),
        ({"cpu": 0.5}, {"cpu": "0.5"}),
        ({"cpu": 4.0}, {"cpu": "4"}),
        ({"cpu": "256"}, {"cpu": "256"}),
        ({"memory": "512M"}, {"memory": "512M"}),
        ({"memory": "2G", "profile": "gpu-small"}, {"memory": "2G", "profile": "gpu-small"}),
        ({"memory": "1.5G"}, {"memory": "1536M"}),
        ({"memory": "2GB"}, {"memory": "2G"}),
        ({"memory": "0G"}, {}),
        ({"memory": "67108864"}, {"memory": "64M"}),
        ({"cpu": "", "memory": None}, {}),
    ],
)
def test_hints_valid(hints, expected):
    assert validate_hints(hints) == expected


@pytest.mark.parametrize(
    "hints",
    [
        {"gpu": "1"},
        {"cpu": "0"},
        {"cpu": "-1"},
        {"cpu": "257"},
        {"cpu": "1e3"},
        {"cpu": "two"},
        {"cpu": True},
        {"cpu": float("nan")},
        {"memory": "1048576"},
        {"memory": "2"},
        {"memory": "-1G"},
        {"memory": "lots"},
        {"profile": "Has Space"},
        {"profile": "-lead"},
        {"profile": "x" * 64},
        {"profile": ["list"]},
        ["cpu"],
    ],
)
def test_hints_invalid(hints):
    with pytest.raises(InvalidInput):
        validate_hints(hints)


def test_display_name():
    assert validate_display_name(None, default="env") == "env"
    assert validate_display_name("  ", default="env") == "env"
    assert validate_display_name(" Été 2026 ", default="env") == "Été 2026"
    for bad in ("a\nb", "x" * 201, "bell\x07"):
        with pytest.raises(InvalidInput):
            validate_display_name(bad, default="env")


def test_event_type_values():
    assert [t.value for t in EventType] == ["phase", "log", "done"]


# ------------------------------------------------------------------ ids across restarts
def plain_build() -> Build:
    return Build(
        owner="alice",
        owner_slug="alice",
        name="env",
        repo="https://example.org/r",
        ref="main",
        commit=COMMIT,
        image="x/env:0123456789ab",
        latest_image="x/env:latest",
    )


def test_continue_ids_numbers_the_adopted_build_as_before():
    first = plain_build()
    first.add_event(EventType.PHASE, {"phase": "queued", "position": None, "message": "q"})
    first.set_state(BuildState.BUILDING)
    start = first.last_event_id + 1  # what the builder container's label records
    for n in range(5):
        first.add_event(EventType.LOG, {"message": f"line {n}"})
    adopted = plain_build()
    adopted.continue_ids(start - 1)
    adopted.set_state(BuildState.BUILDING)
    for n in range(5):
        adopted.add_event(EventType.LOG, {"message": f"line {n}"})
    ids = {e.id: e.data["message"] for e in first.events() if e.type == "log"}
    assert ids == {e.id: e.data["message"] for e in adopted.events() if e.type == "log"}
    with pytest.raises(ValueError):
        adopted.continue_ids(100)  # only before the first event


async def test_a_viewer_past_the_end_learns_how_the_build_ended():
    """A viewer holding ids of a dead run (a lost record starts anew) gets the final phase
    and done, numbered after its Last-Event-ID; one that is not past the end is unchanged."""
    build = plain_build()
    build.set_state(BuildState.LOST, error="gone")
    tail = await build.wait_events(57)
    assert [(e.id, e.type) for e in tail] == [(58, "phase"), (59, "done")]
    assert tail[0].data["phase"] == "lost" and tail[1].data["state"] == "lost"
    assert await build.wait_events(build.last_event_id) == []
    assert [e.type for e in await build.wait_events(0)] == ["phase", "done"]


async def test_detach_wakes_followers_without_an_event():
    build = plain_build()
    build.set_state(BuildState.BUILDING)
    waiting = asyncio.create_task(build.wait_events(build.last_event_id, max_wait=30))
    await asyncio.sleep(0)
    before = build.last_event_id
    build.detach("restarting")
    assert await asyncio.wait_for(waiting, 1) == []
    assert build.last_event_id == before and not build.ended and build.detached == "restarting"
