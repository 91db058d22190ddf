"""The id-less messages of a build's event stream: keepalives and the restarting note.

Both must leave a client's Last-Event-ID as it was (no ``id`` field, per the SSE spec's
"last event ID buffer" rule) and be told apart from build events by name or content.
"""

import json

import pytest

from repo2docker_service.builds.events import EventType, keepalive_sse, unnumbered_sse
from repo2docker_service.builds.workers import RESTARTING
from repo2docker_service.streamconfig import EventStreamConfig
from tests.rig.api import iter_sse


def parse(text: str) -> list[dict[str, str]]:
    return list(iter_sse(line.encode() + b"\n" for line in text.split("\n")))


@pytest.mark.parametrize(("interval", "shown"), [(15.0, 15), (0.5, 0.5), (2, 2), (1.25, 1.25)])
def test_keepalive_is_a_named_event_without_id(interval, shown):
    (event,) = parse(keepalive_sse(interval))
    assert event["event"] == "keepalive"
    assert "id" not in event
    assert json.loads(event["data"]) == {"interval": shown}


def test_keepalive_is_no_build_event_type():
    # a build can never be given a keepalive event (add_event validates with EventType)
    with pytest.raises(ValueError):
        EventType("keepalive")


def test_restarting_note_has_no_id():
    note = {"phase": "building", "message": RESTARTING, "detached": True}
    (event,) = parse(unnumbered_sse(EventType.PHASE, note))
    assert event["event"] == "phase" and "id" not in event
    assert json.loads(event["data"]) == note


@pytest.mark.parametrize(("value", "ok"), [(15, True), (0, True), (0.5, True), (-1, False)])
def test_keepalive_interval_setting(value, ok):
    if ok:
        assert EventStreamConfig(event_keepalive_interval=value).event_keepalive_interval == value
    else:
        with pytest.raises(Exception, match="event_keepalive_interval"):
            EventStreamConfig(event_keepalive_interval=value)
    help_text = EventStreamConfig.class_traits()["event_keepalive_interval"].help
    assert "0:" in help_text and "Seconds" in help_text
