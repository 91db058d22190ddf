"""The one exception of the registry client, and what a registry's error answers mean."""

from __future__ import annotations

import json

__all__ = ["RegistryError", "answer_error", "error_detail"]

_MAX_ERROR_BODY = 300


class RegistryError(Exception):
    """A registry request failed.

    Raised only by the client's choke point (:meth:`.client.RegistryClient._request`) and
    the token and manifest parsing it calls; the catalog turns it into the service's errors.

    Attributes:
        message: what happened, for an administrator (never a credential).
        kind: ``"unreachable"`` (connection refused, DNS, timeout, 502/503/504),
            ``"bad_url"`` (TLS failure, or the URL does not answer like a registry),
            ``"auth"`` (credentials missing or refused, token server refused),
            ``"denied"`` (403: authenticated but not allowed), ``"unsupported"`` (the
            registry does not offer this, e.g. deletes disabled: 405), ``"error"``
            (anything else: 4xx/5xx, malformed answers).
        status: the HTTP status, when there was an answer.
        code: the first Distribution error code of the answer (``MANIFEST_UNKNOWN``, ...).
    """

    def __init__(
        self, message: str, *, kind: str, status: int | None = None, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.status = status
        self.code = code

    def __str__(self) -> str:
        return self.message


def error_detail(body: bytes) -> tuple[str | None, str]:
    """What a registry's error answer says.

    Args:
        body: the answer's body.

    Returns:
        ``(code, message)`` of the first Distribution error (``{"errors": [...]}``), or
        ``(None, the first 300 bytes of the body on one line)``.
    """
    try:
        data = json.loads(body)
        first = data["errors"][0]
        return str(first.get("code") or ""), str(first.get("message") or first.get("code"))
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        text = body[:_MAX_ERROR_BODY].decode("utf-8", "replace").strip()
        return None, " ".join(text.split())


def answer_error(where: str, status: int, body: bytes, *, logged_in: bool) -> RegistryError:
    """The error for an API answer that is not a success (the client's choke point raises it).

    Args:
        where: ``METHOD /path`` of the request.
        status: the HTTP status.
        body: the answer's body (a Distribution error, usually).
        logged_in: whether the request was made with configured credentials.

    Returns:
        A :class:`RegistryError` whose ``kind`` is ``auth`` (401), ``denied`` (403),
        ``unsupported`` (405 or ``UNSUPPORTED``), ``unreachable`` (502/503/504) or
        ``error``.
    """
    code, detail = error_detail(body)
    if status == 401:
        who = "the configured credentials" if logged_in else "anonymous access"
        message = (
            f"the registry refused {who} ({where}: {detail or 'unauthorized'}); check "
            "registry_username/registry_password or the docker config"
        )
        kind = "auth"
    elif status == 403:
        message, kind = f"the registry denied {where}: {detail or 'forbidden'}", "denied"
    elif status == 405 or code == "UNSUPPORTED":
        message = f"the registry does not support {where}: {detail or 'method not allowed'}"
        kind = "unsupported"
    elif status in (502, 503, 504):
        message = f"the registry is unavailable ({where} answered {status}: {detail})"
        kind = "unreachable"
    else:
        message, kind = f"{where} answered {status}: {detail or 'no details'}", "error"
    return RegistryError(message, kind=kind, status=status, code=code)
