"""Secrets out of messages: the one redaction every error path and log line goes through.

People paste URLs with credentials in them: ``https://tok@host/x``,
``https://user:pw@host/x``, the same percent-encoded into the host part
(``http://user%3Asecret%40host/x``, or encoded twice), tokens in a query string
(``?private_token=...``), in the repository field, the ref field, a launch link's
``?repo=`` or a webhook's payload. The service refuses them; the refusal must not repeat them.

:func:`redact_secrets` is applied

- to every :class:`~repo2docker_service.errors.ServiceError` message when it is created (so
  every 4xx/5xx answer and every log line quoting one is clean),
- to every other error message a handler writes (``tornado.web.HTTPError``), and to the
  request summary tornado logs (path only, never the query),
- to every log record of the service and of tornado (:class:`RedactingFilter`, installed by
  the app on its log handlers and tornado's loggers).

What is replaced with ``***`` (the rest of the text stays, so messages remain useful):

- the user information of any ``scheme://user[:password]@host`` URL, whether the ``@`` and
  ``:`` are literal or percent-encoded once or several times (the host stays visible);
- a port that is not a number (``https://user:secret/x`` puts the secret where a port goes);
- values of query parameters whose name says secret: ``token``, ``secret``, ``password``,
  ``passwd``, ``pwd``, ``key``, ``auth``, ``sig``/``signature``, ``credential`` (with any
  prefix or suffix, e.g. ``private_token``, ``access_token``, ``X-Amz-Signature``);
- URL-like text without a scheme: ``user:pw@host`` and ``tok@host/path`` or ``tok@host:port``
  become ``***@host...`` (a plain ``alice@example.org`` stays);
- in a word that contained a percent-encoded ``@`` (``%40``, ``%2540``...), everything before
  the last ``@``: there is no innocent reason to encode one.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from urllib.parse import unquote

__all__ = [
    "REDACTED",
    "RedactingFilter",
    "install_log_redaction",
    "percent_decoded",
    "redact_secrets",
]

#: What a secret is replaced with.
REDACTED = "***"

_MAX_DECODES = 5
_WORD_RE = re.compile(r"\S+")
# scheme://authority: the authority ends at / ? # whitespace, a quote or an angle bracket
_URL_RE = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)([^/?#\s'\"<>]*)")
_QUERY_SECRET_RE = re.compile(
    r"(?i)([?&;][\w.-]*(?:token|secret|passw(?:or)?d|pwd|key|auth|sig(?:nature)?|credential)"
    r"[\w.-]*=)[^&#\s'\"]*"
)
_ENCODED_AT_RE = re.compile(r"%(?:25)*40", re.IGNORECASE)
# the user information before the last "@" of a word, after a quote, bracket, "=" or "/"
_USERINFO_RE = re.compile(r"[^'\"(\[<=/\s@]+@(?=[^@]*$)")
# URL-like text without a scheme: "user:pw@host" or "tok@host/path", "tok@host:port"
_SCHEMELESS_RE = re.compile(r"[^'\"(\[<=/\s@]*(?::[^'\"(\[<=/\s@]*@|@(?=[\w.-]+[:/]))")
_PORT_RE = re.compile(r"(.*?)(:[^:\]]*)")


def percent_decoded(text: str) -> str:
    """``text`` percent-decoded until it no longer changes (at most a few times)."""
    for _ in range(_MAX_DECODES):
        decoded = unquote(text)
        if decoded == text:
            break
        text = decoded
    return text


def _redact_authority(authority: str) -> str:
    """``user:pw@host:port`` -> ``***@host:port``; a non-numeric port -> ``host:***``."""
    decoded = percent_decoded(authority)
    changed = False
    if "@" in decoded:
        decoded = f"{REDACTED}@{decoded.rpartition('@')[2]}"
        changed = True
    m = _PORT_RE.fullmatch(decoded)
    # a port and the text's punctuation after it ("(http://host:5000)") is still a port
    if m and m.group(2)[1:] and not m.group(2)[1:].rstrip(").,;").isdigit():
        decoded = f"{m.group(1)}:{REDACTED}"
        changed = True
    return decoded if changed else authority


def _redact_plain(text: str) -> str:
    """URL user information and secret query values of ``text``, as written."""
    text = _URL_RE.sub(lambda m: m.group(1) + _redact_authority(m.group(2)), text)
    text = _SCHEMELESS_RE.sub(f"{REDACTED}@", text)
    return _QUERY_SECRET_RE.sub(lambda m: m.group(1) + REDACTED, text)


def _redact_word(word: str) -> str:
    """One word: as written, then (if it is percent-encoded) decoded and redacted again."""
    text = _redact_plain(word)
    decoded = percent_decoded(text)
    if decoded == text:
        return text
    redacted = _redact_plain(decoded)
    if _ENCODED_AT_RE.search(text):
        # an encoded "@" has no innocent use: what precedes it is user information
        redacted = _USERINFO_RE.sub(f"{REDACTED}@", redacted)
    return redacted if redacted != decoded else text


def _suspect(word: str) -> bool:
    return "://" in word or "%" in word or "=" in word or "@" in word


def redact_secrets(text: str) -> str:
    """``text`` with credentials in URLs (literal or percent-encoded) replaced by ``***``.

    Args:
        text: a message or log line; anything else is turned into a string first.

    Returns:
        The text with the secrets of the module docstring replaced; unchanged when it has
        none (a plain ``alice@example.org`` stays as it is).
    """
    text = str(text)
    return _WORD_RE.sub(lambda m: _redact_word(m[0]) if _suspect(m[0]) else m[0], text)


class RedactingFilter(logging.Filter):
    """A logging filter that passes every record's text through :func:`redact_secrets`.

    The message is formatted once (``msg % args``) and redacted; an exception's traceback
    text is formatted and redacted too, so handlers print only redacted text.
    """

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact ``record`` in place; always keep it."""
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = str(record.msg)
        record.msg, record.args = redact_secrets(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_secrets(record.exc_text)
        return True


def install_log_redaction(loggers: Iterable[logging.Logger]) -> RedactingFilter:
    """Add one :class:`RedactingFilter` to each logger and each of its handlers.

    A filter on a logger sees only records logged on that logger; one on a handler sees
    the records children propagate to it too. Installing twice adds nothing.

    Returns:
        The filter (the same one everywhere).
    """
    found = RedactingFilter()
    for logger in loggers:
        for target in [logger, *logger.handlers]:
            if not any(isinstance(f, RedactingFilter) for f in target.filters):
                target.addFilter(found)
    return found
