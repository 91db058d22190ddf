"""Options of the build event streams (beside ``config.py``, which is at its size limit).

They stay ``c.Repo2DockerService.<name>``: a ``HasTraits`` mixin of the Application, as the
mixins of :mod:`.config` are.
"""

from __future__ import annotations

from traitlets import Float, HasTraits

__all__ = ["EventStreamConfig"]


class EventStreamConfig(HasTraits):
    """How ``api/builds/{id}/events`` and the BinderHub stream behave while a build is quiet."""

    event_keepalive_interval = Float(
        15,
        min=0,
        help="""Seconds between keepalives on a quiet event stream (a build printing nothing).

        `api/builds/{id}/events` sends a `keepalive` event (no `id`, so a viewer's
        Last-Event-ID stays put) and the BinderHub stream a `:keepalive` comment. They keep
        proxies from closing an idle stream, and the environments page reconnects (resuming
        where it was) when nothing came for 3 intervals, e.g. a stream left open by the
        hub's proxy after the service was killed. 0: none sent, and the page never
        reconnects on silence alone.
        """,
    ).tag(config=True)
