"""Exception types of the service.

Every module raises one of these; only the HTTP handlers map them to responses, using
``status_code``, ``message`` and ``headers``. A message is written for the person who sent
the request (or, for :class:`UpstreamError`, for the administrator who has to fix something)
and never contains a secret: every message passes through
:func:`~repo2docker_service.redact.redact_secrets` when the error is created.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .redact import redact_secrets


class ServiceError(Exception):
    """Base class of every error the service reports to a client.

    Attributes:
        status_code: HTTP status the API answers with (500 unless a subclass says otherwise).
        message: human-readable explanation, safe to show to the caller.
        headers: extra HTTP response headers (for example ``Retry-After``).
        field: the request field the error is about (``"repo"``, ``"ref"``), or None; the
            API's error JSON carries it as ``field`` so forms put the message on that field.
        suggestions: values that would work in ``field`` (e.g. existing branches for an
            unknown ref), best first; the error JSON's ``suggestions``.
    """

    status_code: int = 500

    def __init__(
        self,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
        field: str | None = None,
        suggestions: Sequence[str] = (),
    ) -> None:
        """Create the error.

        Args:
            message: human-readable explanation for the caller; credentials in URLs in it
                (literal or percent-encoded) are replaced by ``***``.
            headers: extra HTTP response headers to send with the error response.
            field: the request field the error is about (see the class attributes).
            suggestions: values that would work in ``field``, redacted like the message.
        """
        message = redact_secrets(message)
        super().__init__(message)
        self.message: str = message
        self.headers: dict[str, str] = dict(headers or {})
        self.field: str | None = field
        self.suggestions: list[str] = [redact_secrets(s) for s in suggestions]

    def details(self) -> dict[str, Any]:
        """``{"field": ..., "suggestions": [...]}``, each key only when set (for the error
        JSON, beside ``status`` and ``message``)."""
        out: dict[str, Any] = {}
        if self.field:
            out["field"] = self.field
        if self.suggestions:
            out["suggestions"] = list(self.suggestions)
        return out

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class InvalidInput(ServiceError):
    """A request field is malformed (image name, ref syntax, repository URL, ...)."""

    status_code = 400


class Forbidden(ServiceError):
    """The caller is authenticated but may not do this (missing scope, someone else's image)."""

    status_code = 403


class NotFound(ServiceError):
    """The build or image asked for does not exist (or is not visible to the caller)."""

    status_code = 404


class Conflict(ServiceError):
    """The request conflicts with the current state (for example deleting an image in use)."""

    status_code = 409


class SourceError(ServiceError):
    """The repository could not be reached or the ref was not found in it.

    The message carries git's own reason (with any credential scrubbed).
    """

    status_code = 422


class QueueFull(ServiceError):
    """The build queue is full; the client should retry later.

    Attributes:
        retry_after: seconds the client should wait, also sent as the ``Retry-After`` header.
    """

    status_code = 429

    def __init__(
        self,
        message: str,
        *,
        retry_after: int,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Create the error.

        Args:
            message: human-readable explanation, safe to show to the caller.
            retry_after: whole seconds after which a retry makes sense (negative becomes 0).
            headers: further HTTP response headers; ``Retry-After`` is always set from
                ``retry_after``.
        """
        self.retry_after: int = max(0, int(retry_after))
        merged = dict(headers or {})
        merged["Retry-After"] = str(self.retry_after)
        super().__init__(message, headers=merged)


class UpstreamError(ServiceError):
    """A service the build depends on failed: the Docker engine, the registry, the hub.

    The message says what an administrator should check.
    """

    status_code = 502


class Unavailable(UpstreamError):
    """A service the request needs cannot be reached right now (e.g. the registry is down).

    Answered as 503 Service Unavailable; the message says what to check. Builds still
    queue: only the requests that need the unreachable part fail.
    """

    status_code = 503
