"""Builds: the build record and its events (model), requests, the manager and the executors.

The names most callers need are re-exported here::

    from repo2docker_service.builds import Build, BuildRequest, BuildState, Event
"""

from .model import (
    ACTIVE_STATES,
    TERMINAL_STATES,
    Build,
    BuildState,
    Event,
    EventType,
)
from .request import BuildRequest, SubmitResult, validate_display_name, validate_hints

__all__ = [
    "ACTIVE_STATES",
    "TERMINAL_STATES",
    "Build",
    "BuildRequest",
    "BuildState",
    "Event",
    "EventType",
    "SubmitResult",
    "validate_display_name",
    "validate_hints",
]
