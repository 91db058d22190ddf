"""BuildStore: ordering, filters, eviction of finished builds only."""

from __future__ import annotations

import pytest

from repo2docker_service.builds.model import Build, BuildState
from repo2docker_service.builds.store import BuildStore
from repo2docker_service.errors import Conflict, NotFound


def make(owner="alice", shared=False, state=None) -> Build:
    build = Build(
        owner=owner,
        owner_slug="shared" if shared else owner,
        shared=shared,
        name="env",
        repo="https://example.org/r",
        ref="HEAD",
        commit="a" * 40,
        image="x/env:aaaaaaaaaaaa",
        latest_image="x/env:latest",
    )
    if state is not None:
        finish(build, state)
    return build


def finish(build: Build, state: BuildState = BuildState.BUILT) -> None:
    build.set_state(BuildState.BUILDING)
    build.set_state(state)


def test_add_get_list_in_insertion_order():
    store = BuildStore(history_limit=10)
    builds = [make("alice"), make("bob"), make("admin", shared=True), make("alice")]
    for b in builds:
        store.add(b)
    assert len(store) == 4 and builds[0].id in store
    assert store.get(builds[1].id) is builds[1]
    assert store.get("nope") is None
    assert store.list() == builds
    assert store.list(owner="alice") == [builds[0], builds[3]]
    assert store.list(owner="alice", include_shared=True) == [builds[0], builds[2], builds[3]]
    assert store.list(owner="carol") == []
    with pytest.raises(ValueError):
        store.add(builds[0])


def test_dismiss_forgets_one_ended_build():
    store = BuildStore(history_limit=10)
    kept, gone, active = make(state=BuildState.FAILED), make(state=BuildState.CANCELLED), make()
    for b in (kept, gone, active):
        store.add(b)
    assert store.dismiss(gone.id) is gone
    with pytest.raises(NotFound):
        store.dismiss(gone.id)
    with pytest.raises(Conflict, match="cancel it first"):
        store.dismiss(active.id)
    assert store.list() == [kept, active] and gone.id not in store


def test_evicts_oldest_finished_never_active():
    store = BuildStore(history_limit=2)
    active = make()
    store.add(active)
    done = [make(state=BuildState.BUILT) for _ in range(3)]
    for b in done:
        store.add(b)
    assert store.list() == [active, done[1], done[2]]
    # a long-running active build survives any number of finished ones
    more = [make(state=BuildState.FAILED) for _ in range(5)]
    for b in more:
        store.add(b)
    assert store.list() == [active, more[3], more[4]]
    # builds that end later are pruned on prune()
    queued = [make() for _ in range(3)]
    for b in queued:
        store.add(b)
    for b in queued:
        finish(b, BuildState.CANCELLED)
    assert store.prune() == 3
    assert store.list() == [active, queued[1], queued[2]]


def test_history_limit_zero_keeps_only_active():
    store = BuildStore(history_limit=0)
    a, b = make(), make(state=BuildState.BUILT)
    store.add(a)
    store.add(b)
    assert store.list() == [a]
    finish(a)
    store.prune()
    assert store.list() == []


def test_negative_limit_rejected():
    with pytest.raises(ValueError):
        BuildStore(history_limit=-1)
