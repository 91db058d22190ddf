"""Processes of this machine, read from ``/proc``: what a test left running, or whether it died.

Zombies count as gone (their parent has not reaped them yet, but they run nothing).
"""

from __future__ import annotations

import os
from pathlib import Path


def _state(entry: Path) -> str:
    """The one-letter state in ``/proc/<pid>/stat`` (``R``, ``S``, ``Z``, ...).

    Raises:
        OSError: the process is gone (or unreadable).
    """
    return (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]


def alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie."""
    try:
        return _state(Path(f"/proc/{pid}")) != "Z"
    except OSError:
        return False


def processes_with(text: str) -> list[tuple[int, str]]:
    """``(pid, command line)`` of live processes (not this one) whose command line contains
    ``text``; the arguments are joined by single spaces, so ``text`` may span several."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            raw = (entry / "cmdline").read_bytes()
            if _state(entry) == "Z":
                continue
        except OSError:
            continue
        cmdline = raw.replace(b"\0", b" ").decode(errors="replace").strip()
        if text in cmdline:
            found.append((int(entry.name), cmdline))
    return found
