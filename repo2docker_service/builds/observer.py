"""What the build manager tells its observers (metrics observe builds, not the reverse).

An observer is attached with ``BuildManager.add_observer``. Its methods are called on the
event loop right when things happen; they must be quick and must not block. An exception
in an observer is logged and never reaches the build or the caller.
"""

from __future__ import annotations

from typing import Protocol

from .model import Build
from .request import SubmitResult

__all__ = ["BuildObserver"]


class BuildObserver(Protocol):
    """Told about answered build requests and ended builds."""

    def request_answered(self, result: SubmitResult | None, error: Exception | None) -> None:
        """``BuildManager.submit`` answered ``result``, or raised ``error`` (then ``result``
        is None)."""

    def build_ended(self, build: Build) -> None:
        """``build`` reached a terminal state (its ``done`` event was added); called once
        per build, also for builds recorded as ``lost`` at start-up."""
