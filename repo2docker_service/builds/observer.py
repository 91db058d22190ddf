"""What the build manager tells its observers (metrics observe builds, not the reverse).

An observer is attached with ``BuildManager.add_observer``. Its methods are called on the
event loop right when things happen; they must be quick and must not block. An exception
in an observer is logged and never reaches the build or the caller.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Protocol

from .model import Build
from .request import SubmitResult

__all__ = ["BuildObserver", "Observers"]


class BuildObserver(Protocol):
    """Told about answered build requests and ended builds."""

    def request_answered(self, result: SubmitResult | None, error: Exception | None) -> None:
        """``BuildManager.submit`` answered ``result``, or raised ``error`` (then ``result``
        is None)."""

    def build_ended(self, build: Build) -> None:
        """``build`` reached a terminal state (its ``done`` event was added); called once
        per build, also for builds recorded as ``lost`` at start-up."""


class Observers:
    """The manager's observers; telling them never raises (a failing one is logged)."""

    def __init__(self, observers: Iterable[BuildObserver], log: logging.Logger) -> None:
        self._observers = list(observers)
        self._log = log

    def add(self, observer: BuildObserver) -> None:
        """Tell ``observer`` too from now on."""
        self._observers.append(observer)

    def answered(self, result: SubmitResult | None, error: Exception | None) -> None:
        """Tell every observer that a request was answered (see ``request_answered``)."""
        for observer in self._observers:
            try:
                observer.request_answered(result, error)
            except Exception:  # an observer must never break a request
                self._log.exception("build observer %r failed", observer)

    def ended(self, build: Build) -> None:
        """Tell every observer that ``build`` ended (see ``build_ended``)."""
        for observer in self._observers:
            try:
                observer.build_ended(build)
            except Exception:  # an observer must never break a build
                self._log.exception("build observer %r failed", observer)
