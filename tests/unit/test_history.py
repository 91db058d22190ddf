"""Build history that survives restarts (``db_url``): a real SQLite file, and a real
PostgreSQL cluster the rig starts (skipped, with the reason, when it cannot start here).

Each "restart" closes the store and opens a new one on the same database: history and logs
come back, dismissed and pruned builds stay gone, the history limit holds, and a build the
earlier run left running comes back to be ended as lost.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from repo2docker_service.builds.events import EventType
from repo2docker_service.builds.history import (
    BuildHistory,
    async_url,
    build_from_record,
    build_record,
)
from repo2docker_service.builds.model import Build, BuildState
from repo2docker_service.builds.store import BuildStore
from tests.rig.postgres import PostgresUnavailable, start_postgres

LOG = logging.getLogger("test_history")


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    try:
        pg = start_postgres()
    except PostgresUnavailable as e:
        pytest.skip(f"PostgreSQL cannot start here: {e}")
    yield pg.url
    pg.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'builds.db'}"
    return str(request.getfixturevalue("postgres_url"))


def make(name: str = "env", owner: str = "alice") -> Build:
    return Build(
        owner=owner,
        owner_slug=owner,
        name=name,
        repo="https://example.org/r",
        ref="main",
        commit="a" * 40,
        image=f"x/{name}:aaaaaaaaaaaa",
        latest_image=f"x/{name}:latest",
        hints={"cpu": "2"},
    )


def run_build(build: Build, lines: int, state: BuildState = BuildState.BUILT) -> None:
    build.add_event(EventType.PHASE, {"phase": "queued", "position": None, "message": "q"})
    build.set_state(BuildState.BUILDING)
    for n in range(lines):
        build.add_event(EventType.LOG, {"message": f"line-{n} ünïcode", "stage": "building"})
    build.set_state(state, error=None if state is BuildState.BUILT else "it broke")


async def opened(url: str, limit: int = 10) -> BuildStore:
    store = BuildStore(history_limit=limit, history=BuildHistory(db_url=url, log=LOG))
    # False: the reason is in the log (a missing driver: run `bash scripts/setup.sh`, which
    # installs the [db] extra)
    assert await store.open(), f"{url} cannot be used (see the log)"
    return store


async def clear(url: str) -> None:
    store = await opened(url, limit=0)
    for build in await store.history.load():  # type: ignore[union-attr]
        store.history.delete(build.id)  # type: ignore[union-attr]
    await store.close()


def test_async_url_names_the_driver():
    assert async_url("sqlite:////var/x.db") == "sqlite+aiosqlite:////var/x.db"
    assert async_url("postgresql://u@h/db") == "postgresql+asyncpg://u@h/db"
    assert async_url("postgres://u@h/db") == "postgresql+asyncpg://u@h/db"
    assert async_url("postgresql+asyncpg://u@h/db") == "postgresql+asyncpg://u@h/db"
    for bad in ("mysql://u@h/db", "builds.db"):
        with pytest.raises(ValueError):
            async_url(bad)


def test_record_round_trip_keeps_state_times_and_log():
    build = make()
    build.log_limit_bytes = 200
    run_build(build, 30, BuildState.FAILED)
    back = build_from_record(build_record(build))
    assert back.to_dict() == build.to_dict()
    assert back.log_text() == build.log_text() and back.dropped_log_events > 0
    assert [e.to_dict() for e in back.events()] == [e.to_dict() for e in build.events()]
    assert back.ended and back.last_event_id == build.last_event_id


async def test_restart_keeps_history_and_log(db_url: str):
    await clear(db_url)
    store = await opened(db_url)
    built, failed = make("one"), make("two")
    for build in (built, failed):
        store.add(build)
    run_build(built, 5)
    run_build(failed, 3, BuildState.FAILED)
    for build in (built, failed):
        store.build_ended(build)
    running = make("three")
    store.add(running)
    running.set_state(BuildState.BUILDING)
    await store.close()

    again = await opened(db_url)
    left_running = await again.restore()
    assert [b.id for b in left_running] == [running.id]
    assert [b.id for b in again.list()] == [built.id, failed.id, running.id]
    back = again.get(built.id)
    assert back is not None and back.state is BuildState.BUILT
    assert back.log_text() == built.log_text() and "line-4 ünïcode" in back.log_text()
    assert again.get(failed.id).error == "it broke"  # type: ignore[union-attr]
    # a build restored as running is ended by the manager; its end is written too
    left_running[0].set_state(BuildState.LOST, error="lost")
    again.build_ended(left_running[0])
    await again.close()
    third = await opened(db_url)
    await third.restore()
    assert third.get(running.id).state is BuildState.LOST  # type: ignore[union-attr]
    await third.close()


async def test_dismiss_and_history_limit_hold_across_restarts(db_url: str):
    await clear(db_url)
    store = await opened(db_url, limit=3)
    builds = [make(f"b{n}") for n in range(5)]
    for build in builds:
        store.add(build)
        run_build(build, 2)
        store.build_ended(build)
        store.prune()
    assert [b.id for b in store.list()] == [b.id for b in builds[2:]]
    store.dismiss(builds[3].id)
    await store.close()

    again = await opened(db_url, limit=3)
    assert await again.restore() == []
    assert [b.id for b in again.list()] == [builds[2].id, builds[4].id]
    await again.close()
    # a smaller limit after a restart holds too
    smaller = await opened(db_url, limit=1)
    await smaller.restore()
    assert [b.id for b in smaller.list()] == [builds[4].id]
    await smaller.close()
    last = await opened(db_url, limit=5)
    await last.restore()
    assert [b.id for b in last.list()] == [builds[4].id]
    await last.close()


async def test_without_a_database_nothing_is_kept():
    store = BuildStore(history_limit=5)
    await store.open()
    build = make()
    store.add(build)
    run_build(build, 1)
    store.build_ended(build)
    await store.close()
    assert await BuildStore(history_limit=5).restore() == []


async def test_a_database_that_cannot_be_used_says_why(tmp_path: Path, caplog):
    for url in (f"sqlite:///{tmp_path}/missing/dir/b.db", "mysql://u@h/db"):
        store = BuildStore(history=BuildHistory(db_url=url, log=LOG))
        with caplog.at_level(logging.CRITICAL, logger="test_history"):
            assert await store.open() is False
    assert caplog.text.count("Cannot use the build history database (db_url)") == 2
    assert "mysql is not supported" in caplog.text
    assert BuildHistory.of(db_url="", log=LOG) is None
    assert await BuildStore().open() is True  # no database: nothing to fail
