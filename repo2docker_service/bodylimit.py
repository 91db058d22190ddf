"""Request bodies over the limit get a 413 JSON answer, never a dropped connection.

:class:`BodyLimit` sits between tornado's ``HTTPServer`` and the web application. It sees a
request's headers before any of its body is read and every chunk after, and passes the
request on only while the body stays within the limit of its path (``max_body_bytes`` for
the API, more for webhooks). Past it, nothing more is kept, no handler runs (no hub
round-trip, no memory spent) and the answer is ``{"status": 413, "message": ...}``. A body is
refused by its ``Content-Length`` before it is read, or (chunked, without one) as soon as it
passes the limit; then:

- up to :data:`DRAIN_BYTES`, the rest of the body is read and dropped and the 413 sent when
  it has ended (the connection stays usable);
- beyond, the 413 is sent at once and the body read and dropped up to
  :data:`MAX_DRAIN_BYTES`, then the connection is closed (at once, when the client waits for
  ``100 Continue`` or announces more than that).

Why drain: the hub's proxy (configurable-http-proxy, Node) turns an answer that comes with a
closed connection before the request has ended into its own 503 page, and clients that send
the whole body before they read (urllib, requests) would see a reset instead of the answer.
Clients that wait for the answer after a part of a big body get it at once.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable

from tornado import httputil
from tornado.http1connection import HTTP1Connection

from .redact import redact_secrets

__all__ = ["DRAIN_BYTES", "MAX_DRAIN_BYTES", "BodyLimit"]

#: A refused body up to this size is read to its end before the 413 is sent.
DRAIN_BYTES = 16 << 20
#: A refused body is read (and dropped) up to this size at most; then the connection closes.
MAX_DRAIN_BYTES = 256 << 20

_REASON = "Request Entity Too Large"


class BodyLimit(httputil.HTTPServerConnectionDelegate):
    """Wraps the web application for ``HTTPServer``: bodies over the limit get a 413.

    Args:
        app: the tornado application (any ``HTTPServerConnectionDelegate``).
        limit_for: the largest body accepted for a request path, in bytes.
        log: where each refusal is logged (with the path only, redacted).
    """

    def __init__(
        self,
        app: httputil.HTTPServerConnectionDelegate,
        *,
        limit_for: Callable[[str], int],
        log: logging.Logger,
    ) -> None:
        self.app = app
        self.limit_for = limit_for
        self.log = log

    def start_request(
        self, server_conn: object, request_conn: httputil.HTTPConnection
    ) -> httputil.HTTPMessageDelegate:
        """The application's delegate for one request, behind the body limit."""
        inner = self.app.start_request(server_conn, request_conn)
        return _LimitedRequest(inner, request_conn, self)

    def on_close(self, server_conn: object) -> None:
        """Passes the connection's end to the application."""
        self.app.on_close(server_conn)


class _LimitedRequest(httputil.HTTPMessageDelegate):
    """One request: passed on within the limit, answered with 413 past it."""

    def __init__(
        self,
        inner: httputil.HTTPMessageDelegate,
        connection: httputil.HTTPConnection,
        owner: BodyLimit,
    ) -> None:
        self.inner = inner
        self.connection = connection
        self.owner = owner
        self.limit = 0
        self.size = 0
        self.path = ""
        self.refusal: str | None = None
        self.answered = False
        self.finished = False

    def headers_received(
        self,
        start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
        headers: httputil.HTTPHeaders,
    ) -> Awaitable[None] | None:
        assert isinstance(start_line, httputil.RequestStartLine)
        self.path = start_line.path.partition("?")[0]
        self.limit = self.owner.limit_for(self.path)
        length = headers.get("Content-Length", "").strip()
        if not (length.isdigit() and int(length) > self.limit):
            return self.inner.headers_received(start_line, headers)
        size = int(length)
        self._refuse(f"Request body is {size} bytes; at most {self.limit} are accepted")
        waits = headers.get("Expect", "").lower() == "100-continue"
        if size > DRAIN_BYTES:
            self._answer(final=waits or size > MAX_DRAIN_BYTES)
        if isinstance(self.connection, HTTP1Connection) and not self.finished:
            self.connection.set_max_body_size(max(size, MAX_DRAIN_BYTES))
        return None

    def data_received(self, chunk: bytes) -> Awaitable[None] | None:
        self.size += len(chunk)
        if self.refusal is None and self.size > self.limit:
            limit = self.limit
            self._refuse(f"Request body is over {limit} bytes; at most {limit} are accepted")
            self.inner.on_connection_close()  # the application forgets this request
        if self.refusal is None:
            return self.inner.data_received(chunk)
        if self.size > DRAIN_BYTES:
            self._answer(final=self.size > MAX_DRAIN_BYTES)
        return None

    def finish(self) -> None:
        if self.refusal is None:
            self.inner.finish()
        else:
            self._answer(final=True)

    def on_connection_close(self) -> None:
        if self.refusal is None:
            self.inner.on_connection_close()

    def _refuse(self, message: str) -> None:
        self.refusal = message
        self.owner.log.warning("413 %s: %s", redact_secrets(self.path), message)

    def _answer(self, *, final: bool) -> None:
        """Send the 413 (once); ``final``: the request is over, finish (or close) it."""
        if not self.answered:
            self.answered = True
            body = json.dumps({"status": 413, "message": self.refusal}).encode()
            headers = httputil.HTTPHeaders(
                {
                    "Content-Type": "application/json; charset=UTF-8",
                    "Content-Length": str(len(body)),
                    "Cache-Control": "no-store",
                }
            )
            start = httputil.ResponseStartLine("HTTP/1.1", 413, _REASON)
            self.connection.write_headers(start, headers, body)
        if final and not self.finished:
            self.finished = True
            self.connection.finish()
