"""Build history that survives restarts: records and logs in a SQL database (``db_url``).

Off by default: the service then keeps builds in memory only and needs no local state
(images, with their labels, are the durable state). With ``db_url`` set, the
:class:`~.store.BuildStore` writes every build it keeps to the database when it is added
and when it ends (record and kept log), deletes what it drops (``history_limit``,
dismiss), and reads the history back at start-up. Reads are always served from memory.

SQLAlchemy's asyncio extension does the database part (aiosqlite for SQLite files, asyncpg
for PostgreSQL: the ``[db]`` extra). Writes go through one writer task in the order they
were asked for, so the event loop never waits for the database; a failed write is logged
and the service goes on (the history is a convenience, not the source of truth).
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from typing import Any

from sqlalchemy import Column, Float, MetaData, String, Table, Text, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from traitlets import Unicode
from traitlets.config import LoggingConfigurable

from .events import Event, EventType
from .model import Build, BuildState

__all__ = ["BuildHistory", "async_url", "build_from_record", "build_record"]

#: the table of builds: one row per build, the record and its kept events as JSON
TABLE = "r2ds_builds"


def build_record(build: Build) -> dict[str, Any]:
    """``build`` as JSON-ready data :func:`build_from_record` takes back: ``to_dict()``
    plus ``owner_slug``, ``force``, ``log_limit_bytes``, ``dropped`` (``[log events,
    bytes]`` dropped by ``log_limit_bytes``) and ``events`` (the kept ones, as
    ``Event.to_dict()``). Never credentials (a build holds them only while active, and
    ``to_dict`` never has them)."""
    return {
        **build.to_dict(),
        "owner_slug": build.owner_slug,
        "force": build.force,
        "log_limit_bytes": build.log_limit_bytes,
        "dropped": [build.dropped_log_events, build.dropped_log_bytes],
        "events": [e.to_dict() for e in build.events()],
    }


def build_from_record(record: dict[str, Any]) -> Build:
    """The build :func:`build_record` described: state, times, error and kept events.

    Raises:
        KeyError, TypeError, ValueError: a malformed record.
    """
    names = ("id", "owner", "owner_slug", "shared", "name", "display_name", "repo", "ref")
    more = ("commit", "image", "latest_image", "hints", "force", "log_limit_bytes", "error")
    build = Build(**{k: record[k] for k in (*names, *more)}, state=BuildState(record["state"]))
    for key in ("created", "started", "finished"):
        value = record[key]
        setattr(build, key, None if value is None else datetime.fromisoformat(value))
    events = [
        Event(int(e["id"]), EventType(e["type"]).value, dict(e["data"])) for e in record["events"]
    ]
    dropped = record["dropped"]
    build.restore_events(events, dropped=(int(dropped[0]), int(dropped[1])))
    return build


def async_url(url: str) -> str:
    """The asyncio driver's form of a SQLAlchemy URL.

    ``sqlite:`` becomes ``sqlite+aiosqlite:``, ``postgresql:`` (and ``postgres:``)
    becomes ``postgresql+asyncpg:``; a URL naming its driver is kept.

    Raises:
        ValueError: a database other than SQLite or PostgreSQL.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError("db_url must be a SQLAlchemy URL such as sqlite:///path/builds.db")
    dialect = scheme.split("+", 1)[0]
    if dialect == "sqlite":
        return url if "+" in scheme else f"sqlite+aiosqlite://{rest}"
    if dialect in ("postgresql", "postgres"):
        return url if "+" in scheme else f"postgresql+asyncpg://{rest}"
    raise ValueError(f"db_url: {dialect} is not supported; use SQLite or PostgreSQL")


class BuildHistory(LoggingConfigurable):
    """The database behind a :class:`~.store.BuildStore` (``c.BuildHistory.db_url``).

    Create it with :meth:`of`, which gives None while ``db_url`` is empty.
    """

    db_url = Unicode(
        "",
        help="""SQLAlchemy URL of a database for build history and logs, so that they
        survive a restart: a SQLite file (sqlite:////var/lib/repo2docker-service/builds.db)
        or PostgreSQL (postgresql://user@host/db; give the password in ~/.pgpass or
        $PGPASSWORD rather than here). Needs the [db] extra (pip install
        'repo2docker-service[db]'). Empty (the default): history is kept in memory only
        and the service needs no local state. A URL that cannot be used stops the service
        at start-up, saying why.
        """,
    ).tag(config=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.metadata = MetaData()
        self.table = Table(
            TABLE,
            self.metadata,
            Column("id", String(64), primary_key=True),
            Column("created", Float, nullable=False, index=True),
            Column("state", String(16), nullable=False),
            Column("record", Text, nullable=False),
        )
        self._engine: AsyncEngine | None = None
        self._queue: asyncio.Queue[tuple[str, str, Any] | None] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None

    @classmethod
    def of(cls, **kwargs: Any) -> BuildHistory | None:
        """A history configured from ``kwargs`` (``parent``, ``log``, ``db_url``); None
        when its ``db_url`` is empty (memory only)."""
        history = cls(**kwargs)
        return history if history.db_url else None

    async def open(self) -> bool:
        """Connect, create the table if missing and start the writer.

        Returns:
            False when the database cannot be used (its driver missing: the ``[db]``
            extra; unreachable; refused), after logging why as critical.
        """
        try:
            self._engine = create_async_engine(async_url(self.db_url))
            async with self._engine.begin() as conn:
                await conn.run_sync(self.metadata.create_all)
        except Exception as e:  # any driver's error: say which
            self.log.critical("Cannot use the build history database (db_url): %s", e)
            return False
        self._writer = asyncio.create_task(self._write_all(), name="build-history-writer")
        return True

    async def load(self) -> list[Build]:
        """Every stored build, oldest first (records that cannot be read are skipped)."""
        assert self._engine is not None, "open() first"
        async with self._engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(self.table.c.id, self.table.c.record).order_by(self.table.c.created)
                )
            ).all()
        builds = []
        for build_id, text in rows:
            try:
                builds.append(build_from_record(await asyncio.to_thread(json.loads, text)))
            except (KeyError, TypeError, ValueError) as e:
                self.log.warning("build history: record %s cannot be read (%s)", build_id, e)
        return builds

    def save(self, build: Build) -> None:
        """Write ``build`` (its record and kept log) soon, replacing an earlier copy."""
        self._queue.put_nowait(("save", build.id, build_record(build)))

    def delete(self, build_id: str) -> None:
        """Delete the build ``build_id`` soon."""
        self._queue.put_nowait(("delete", build_id, None))

    async def close(self) -> None:
        """Write what is pending, then disconnect."""
        if self._writer is not None:
            self._queue.put_nowait(None)
            await self._writer
            self._writer = None
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None

    async def _write_all(self) -> None:
        while (item := await self._queue.get()) is not None:
            kind, build_id, record = item
            try:
                await self._write(kind, build_id, record)
            except Exception as e:  # the history must never stop the service
                self.log.error("build history: could not %s build %s: %s", kind, build_id, e)

    async def _write(self, kind: str, build_id: str, record: dict[str, Any] | None) -> None:
        assert self._engine is not None
        text = None if record is None else await asyncio.to_thread(json.dumps, record)
        async with self._engine.begin() as conn:
            await conn.execute(delete(self.table).where(self.table.c.id == build_id))
            if kind == "save" and record is not None:
                created = datetime.fromisoformat(record["created"]).timestamp()
                await conn.execute(
                    insert(self.table).values(
                        id=build_id, created=created, state=record["state"], record=text
                    )
                )
