"""Why repo2docker stopped, when its exit says more than its output: memory, signals.

A build killed by the kernel's OOM killer prints nothing about it: repo2docker just stops.
Both executors ask :func:`exit_cause` for the sentence that goes into the build's state and
its log: the ``DockerExecutor`` knows the builder container's ``State.OOMKilled`` and its
memory limit; the ``LocalExecutor`` only sees a SIGKILL (``-9`` from Python's subprocess,
``137`` from a shell or an init process).
"""

from __future__ import annotations

import signal

from ...sizes import canonical_memory

__all__ = ["exit_cause", "killed_by"]

#: Exit statuses above this are "killed by signal (status - 128)" (shells, docker-init).
_SIGNAL_BASE = 128


def killed_by(returncode: int) -> int | None:
    """The signal that killed the process, or None when it exited by itself.

    Args:
        returncode: ``-N`` (Python's subprocess: killed by signal N) or ``128 + N`` (the
            convention of shells and of the builder container's init, e.g. 137 for SIGKILL).
    """
    if returncode < 0:
        return -returncode
    if _SIGNAL_BASE < returncode < _SIGNAL_BASE + 65:
        return returncode - _SIGNAL_BASE
    return None


def _signal_name(number: int) -> str:
    """``", SIGTERM"`` for a named signal, "" for the others."""
    try:
        return f", {signal.Signals(number).name}"
    except ValueError:
        return ""


def exit_cause(
    returncode: int,
    *,
    who: str = "repo2docker",
    oom_killed: bool = False,
    memory_limit: int | None = None,
) -> str | None:
    """The sentence saying why ``who`` stopped, when memory or a signal explains it.

    Args:
        returncode: the exit status (``-N`` or ``128 + N`` for signal N).
        who: what stopped, as the sentence names it.
        oom_killed: the engine says the container ran out of memory (``State.OOMKilled``).
        memory_limit: bytes the container was limited to (0: none set); None when the
            executor has no memory limit of its own (then the sentence names none).

    Returns:
        ``"<who> ran out of memory (limit 64M) and was killed (exit status 137)"``,
        ``"<who> was killed (signal 9), possibly out of memory (limit 64M)"``,
        ``"<who> was killed (signal 15, SIGTERM)"``, or None for an ordinary exit.
    """
    if memory_limit is None:
        limit = ""
    elif memory_limit:
        limit = f" (limit {canonical_memory(memory_limit)})"
    else:
        limit = " (no memory limit set)"
    if oom_killed:
        return f"{who} ran out of memory{limit} and was killed (exit status {returncode})"
    number = killed_by(returncode)
    if number is None:
        return None
    if number == signal.SIGKILL:
        # what the kernel's OOM killer sends; also `kill -9` by a person or a supervisor
        return f"{who} was killed (signal 9), possibly out of memory{limit}"
    return f"{who} was killed (signal {number}{_signal_name(number)})"
