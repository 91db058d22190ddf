"""Builds: the build record and its events (model), the manager and the executors.

The names most callers need are re-exported here::

    from repo2docker_service.builds import Build, BuildRequest, BuildState, Event
"""

from .model import (
    ACTIVE_STATES,
    TERMINAL_STATES,
    Build,
    BuildRequest,
    BuildState,
    Event,
    EventType,
    image_labels,
    parse_labels,
    validate_hints,
)

__all__ = [
    "ACTIVE_STATES",
    "TERMINAL_STATES",
    "Build",
    "BuildRequest",
    "BuildState",
    "Event",
    "EventType",
    "image_labels",
    "parse_labels",
    "validate_hints",
]
