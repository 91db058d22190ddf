"""Upstream source read at test time from fetched git mirrors (never committed here).

Tests that check this project against an upstream project's own code or files (TLJH's
``jupyterhub_config.py`` loader, zero-to-jupyterhub's chart schema and hub config) read them
from a bare git mirror of its public repository, ``<mirrors>/<owner>+<name>/repo``, where
``<mirrors>`` is ``$R2DS_UPSTREAM_MIRRORS`` (default ``/work/.mirror``). Nothing fetched from
upstream is kept in this repository, so a machine without the mirror skips those tests, with
a reason naming the missing mirror (``pytest -ra`` lists it).
"""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest

MIRRORS_ENV = "R2DS_UPSTREAM_MIRRORS"
DEFAULT_MIRRORS = "/work/.mirror"
TLJH = "jupyterhub/the-littlest-jupyterhub"
Z2JH = "jupyterhub/zero-to-jupyterhub-k8s"


@dataclass(frozen=True)
class Mirror:
    """One upstream repository's bare git mirror; everything is read at its ``HEAD``."""

    repo: str  # "owner/name"
    git_dir: Path

    def _git(self, *args: str) -> bytes:
        return subprocess.run(
            ["git", "--git-dir", str(self.git_dir), *args],
            capture_output=True,
            check=True,
            timeout=120,
        ).stdout

    @property
    def commit(self) -> str:
        """The 40-hex commit the tests read (``HEAD``)."""
        return self._git("rev-parse", "HEAD").decode().strip()

    def show(self, path: str) -> str:
        """The text of ``path`` (relative to the repository root) at ``HEAD``.

        Raises:
            subprocess.CalledProcessError: no such file at ``HEAD``.
        """
        return self._git("show", f"HEAD:{path}").decode()

    def extract(self, dest: Path) -> Path:
        """Write the tree at ``HEAD`` into ``dest`` (created if missing); returns ``dest``."""
        dest.mkdir(parents=True, exist_ok=True)
        with tarfile.open(fileobj=io.BytesIO(self._git("archive", "HEAD")), mode="r:") as tar:
            tar.extractall(dest, filter="data")
        return dest


def mirrors_root() -> Path:
    """Where the mirrors are: ``$R2DS_UPSTREAM_MIRRORS``, else ``/work/.mirror``."""
    return Path(os.environ.get(MIRRORS_ENV) or DEFAULT_MIRRORS)


def mirror(repo: str) -> Mirror:
    """The mirror of ``repo`` (``"owner/name"``); skips the calling test when it is absent.

    The skip's reason names the repository and the path looked at, and how to point the
    tests elsewhere (``$R2DS_UPSTREAM_MIRRORS``).
    """
    owner, name = repo.split("/")
    git_dir = mirrors_root() / f"{owner}+{name}" / "repo"
    if not (git_dir / "HEAD").is_file():
        pytest.skip(
            f"upstream mirror of {repo} missing: no bare git repository at {git_dir} "
            f"(set ${MIRRORS_ENV} to the directory holding <owner>+<name>/repo)"
        )
    return Mirror(repo, git_dir)
