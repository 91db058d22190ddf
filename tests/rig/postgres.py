"""A PostgreSQL cluster of the test's own: Debian's postgresql, on a loopback port.

:func:`start_postgres` runs ``initdb`` and ``pg_ctl`` as an unprivileged user (the
``postgres`` system user when the tests run as root: PostgreSQL refuses to run as root) in
a fresh directory, listening on 127.0.0.1 only, with trust authentication for that
address; :meth:`Postgres.stop` stops it and removes the directory. Nothing else of the
machine's PostgreSQL (no system cluster, no service) is touched.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.rig.net import free_port

__all__ = ["Postgres", "PostgresUnavailable", "start_postgres"]

BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


class PostgresUnavailable(RuntimeError):
    """PostgreSQL cannot be started here; the message says why (tests skip with it)."""


@dataclass
class Postgres:
    """A running cluster: ``url`` (``postgresql://user@127.0.0.1:port/postgres``)."""

    bindir: Path
    datadir: Path
    port: int
    user: str

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        """Stop the cluster (fast shutdown) and remove its directory."""
        _as_user(
            self.user,
            [str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "fast", "-w", "stop"],
            check=False,
        )
        shutil.rmtree(self.datadir.parent, ignore_errors=True)


def _as_user(user: str, argv: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    if os.geteuid() == 0:
        argv = ["runuser", "-u", user, "--", *argv]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    if check and proc.returncode != 0:
        raise PostgresUnavailable(f"{' '.join(argv)} failed: {proc.stderr.strip()[-500:]}")
    return proc


def start_postgres() -> Postgres:
    """Start a cluster of the test's own.

    Raises:
        PostgresUnavailable: no postgresql package, no unprivileged user, or it did not start.
    """
    if not BIN_DIRS:
        raise PostgresUnavailable("Debian's postgresql is not installed (apt package postgresql)")
    bindir = BIN_DIRS[0]
    user = "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
    try:
        pwd.getpwnam(user)
    except KeyError:
        raise PostgresUnavailable(f"no user {user!r} to run PostgreSQL as") from None
    top = Path(tempfile.mkdtemp(prefix="r2ds-pg-"))
    datadir = top / "data"
    if os.geteuid() == 0:
        shutil.chown(top, user)
        os.chmod(top, 0o700)
    pg = Postgres(bindir=bindir, datadir=datadir, port=free_port(), user=user)
    try:
        _as_user(
            user,
            [
                str(bindir / "initdb"),
                "-D",
                str(datadir),
                "-U",
                user,
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        )
        options = f"-c listen_addresses=127.0.0.1 -c port={pg.port} "
        options += f"-c unix_socket_directories={top}"
        _as_user(
            user,
            [
                str(bindir / "pg_ctl"),
                "-D",
                str(datadir),
                "-o",
                options,
                "-l",
                str(top / "log"),
                "-w",
                "-t",
                "60",
                "start",
            ],
        )
    except (PostgresUnavailable, OSError, subprocess.TimeoutExpired) as e:
        shutil.rmtree(top, ignore_errors=True)
        raise PostgresUnavailable(f"PostgreSQL did not start: {e}") from None
    return pg
