"""What every real part shares: where the rig is, how a missing part is reported, subprocesses.

A missing part never skips a test: :func:`require` turns :class:`RealPartMissing` into a test
failure whose message names ``bash scripts/setup.sh``, the command that provides the parts.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import ParamSpec, TypeVar

import pytest

SETUP_COMMAND = "bash scripts/setup.sh"
REPO_ROOT = Path(__file__).resolve().parents[2]
OFFLINE_CONFIG = REPO_ROOT / "repo2docker_service" / "repo2docker_offline_config.py"
EXAMPLES_DIR = REPO_ROOT / "examples"

P = ParamSpec("P")
T = TypeVar("T")


class RealPartMissing(RuntimeError):
    """A real part the tests need is not there; the message says how to get it."""

    def __init__(self, part: str, reason: str) -> None:
        super().__init__(f"{part}: run `{SETUP_COMMAND}` ({reason.strip()})")


def require(check: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Return ``check(*args, **kwargs)``; a :class:`RealPartMissing` fails the test (no skip)."""
    try:
        return check(*args, **kwargs)
    except RealPartMissing as e:
        message = str(e)
    pytest.fail(message, pytrace=False)


def run(
    argv: list[str],
    *,
    env: dict[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    timeout: float = 60,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` and capture its text output.

    Raises:
        subprocess.CalledProcessError: ``check`` and a non-zero exit (stdout/stderr attached).
        subprocess.TimeoutExpired: still running after ``timeout`` seconds.
    """
    proc = subprocess.run(
        argv,
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and proc.returncode != 0:
        raise subprocess.CalledProcessError(
            proc.returncode, argv, output=proc.stdout, stderr=proc.stderr
        )
    return proc


def check_offline_config(path: Path = OFFLINE_CONFIG) -> Path:
    """Verify that the repo2docker offline config file exists; return its path.

    Raises:
        RealPartMissing: the file does not exist.
    """
    if not path.is_file():
        raise RealPartMissing("repo2docker offline config missing", f"{path} does not exist")
    return path


def repo2docker_command() -> str:
    """The ``repo2docker`` executable of the venv running the tests (else the one on PATH).

    Raises:
        RealPartMissing: repo2docker is not installed.
    """
    exe = Path(sys.executable).parent / "repo2docker"
    if not exe.exists():
        found = shutil.which("repo2docker")
        if found is None:
            raise RealPartMissing("repo2docker not installed", f"{exe} does not exist")
        return found
    return str(exe)
