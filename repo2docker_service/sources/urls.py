"""Repository URLs from requests: which ones are accepted and how they are normalized.

:func:`validate_repo_url` accepts only ``scheme://host/path`` URLs whose scheme is allowed
(``https`` by default), without credentials, whitespace, control characters, a leading ``-``
or git's ``transport::address`` form (``ext::`` runs commands).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import SplitResult, unquote, urlsplit, urlunsplit

from ..errors import InvalidInput
from ..redact import percent_decoded
from .text import is_control as _is_control
from .text import is_unprintable as _is_unprintable
from .text import shorten as _shorten

__all__ = ["SUPPORTED_SCHEMES", "validate_repo_url"]

#: Schemes :func:`validate_repo_url` can be told to allow.
SUPPORTED_SCHEMES = frozenset({"https", "http", "git", "ssh", "git+ssh", "ssh+git", "file"})

_SSH_SCHEMES = frozenset({"ssh", "git+ssh", "ssh+git"})
_TRANSPORT_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*::")
_SCHEME_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
_HOSTNAME_RE = re.compile(r"[\w.-]+")
_IPV6_RE = re.compile(r"[0-9a-f:.]+")


def _allowed_scheme_set(allowed_schemes: Iterable[str]) -> set[str]:
    """The configured schemes, lowercased; ValueError for one outside SUPPORTED_SCHEMES."""
    allowed = {s.lower() for s in allowed_schemes}
    unsupported = allowed - SUPPORTED_SCHEMES
    if unsupported:
        raise ValueError(
            f"unsupported repository schemes {sorted(unsupported)};"
            f" supported: {', '.join(sorted(SUPPORTED_SCHEMES))}"
        )
    return allowed


def _refuse_unsafe_text(url: object, max_length: int) -> str:
    """Refuse, before parsing, what git or a shell could misread (options, ``ext::``, ...)."""
    if not isinstance(url, str) or not url:
        raise InvalidInput("repo must be a non-empty URL string")
    if len(url) > max_length:
        raise InvalidInput(f"repo URL is too long: {len(url)} characters, at most {max_length}")
    if any(_is_unprintable(c) for c in url):
        raise InvalidInput("repo URL must not contain whitespace or control characters")
    if any(_is_control(c) for c in unquote(url)):
        raise InvalidInput("repo URL must not contain percent-encoded control characters")
    if "\\" in url:
        raise InvalidInput("repo URL must not contain backslashes")
    if url.startswith("-"):
        raise InvalidInput("repo URL must not start with '-'")
    if _TRANSPORT_RE.match(url):
        raise InvalidInput(
            "git's 'transport::address' syntax (such as ext::) is not allowed;"
            " use a URL like https://host/owner/repo"
        )
    return url


def _allowed_scheme(url: str, allowed: set[str]) -> str:
    """The lowercased scheme of a ``scheme://`` URL, if it is allowed."""
    allowed_text = ", ".join(sorted(allowed)) or "none"
    scheme_match = _SCHEME_RE.match(url)
    if scheme_match is None:
        raise InvalidInput(
            f"repo must be a URL like https://host/owner/repo (allowed schemes: {allowed_text});"
            " scp-style 'host:path' and local paths are not accepted"
        )
    scheme = scheme_match.group(1).lower()
    if scheme not in allowed:
        raise InvalidInput(
            f"repo URL scheme '{scheme}' is not allowed; allowed schemes: {allowed_text}."
            " An administrator can allow more with the allowed_repo_schemes setting."
        )
    return scheme


def _split_url(url: str) -> SplitResult:
    """``urlsplit`` with the port checked too; InvalidInput if the URL cannot be parsed."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - parses and checks the port
    except ValueError as e:  # never echo e: a "port" may be a password (https://u:pw/x)
        what = "its port must be a number up to 65535" if "ort" in str(e) else str(e)
        raise InvalidInput(f"repo URL is malformed: {what}") from None
    return parts


def _normalized_file_url(parts: SplitResult) -> str:
    """``file:///absolute/path``: no host but ``localhost``, no query, no fragment."""
    if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
        raise InvalidInput("file URLs must name an absolute path: file:///path/to/repo")
    if parts.query or parts.fragment:
        raise InvalidInput("file URLs must not have a query or fragment")
    return urlunsplit(("file", "", parts.path, "", ""))


def _refuse_credentials(scheme: str, userinfo: str, at: str, netloc: str) -> None:
    """Refuse a user name or password in the URL, even percent-encoded; ssh may name a user."""
    if at or "@" in percent_decoded(netloc):
        username_only = userinfo and ":" not in userinfo and not userinfo.startswith("-")
        if not (scheme in _SSH_SCHEMES and username_only):
            raise InvalidInput(
                "repo URL must not contain a user name or password;"
                " send credentials in the 'credentials' field instead"
            )


def _refuse_bad_host(scheme: str, parts: SplitResult, hostport: str, hosts: set[str]) -> None:
    """Accept only a valid host name or bracketed IPv6 address, of ``hosts`` if any."""
    host = parts.hostname
    if not host:
        raise InvalidInput(f"repo URL has no host: expected {scheme}://host/path")
    bracketed = hostport.startswith("[")
    if host.startswith("-") or not (
        _IPV6_RE.fullmatch(host) if bracketed else _HOSTNAME_RE.fullmatch(host)
    ):
        raise InvalidInput(f"repo URL host {_shorten(hostport)!r} is not a valid host name")
    if hosts and host.lower() not in hosts:
        raise InvalidInput(
            f"repo host {host!r} is not allowed; allowed hosts: {', '.join(sorted(hosts))}."
            " An administrator can allow more with the allowed_repo_hosts setting."
        )


def validate_repo_url(
    url: str,
    *,
    allowed_schemes: Iterable[str] = ("https",),
    allowed_hosts: Iterable[str] = (),
    max_length: int = 2048,
) -> str:
    """Check a repository URL from a request and normalize it.

    Args:
        url: the URL as the client sent it.
        allowed_schemes: schemes to accept (the ``allowed_repo_schemes`` setting); each must
            be one of :data:`SUPPORTED_SCHEMES`. ``file`` URLs need an absolute path.
        allowed_hosts: hosts to accept (the ``allowed_repo_hosts`` setting), compared
            case-insensitively; empty accepts any valid host.
        max_length: longest accepted URL, in characters.

    Returns:
        The URL with scheme and host lowercased (path, query and fragment unchanged).

    Raises:
        InvalidInput: the URL is not acceptable; the message says why (``field="repo"``).
        ValueError: ``allowed_schemes`` names a scheme outside :data:`SUPPORTED_SCHEMES`.
    """
    allowed = _allowed_scheme_set(allowed_schemes)
    try:
        url = _refuse_unsafe_text(url, max_length)
        scheme = _allowed_scheme(url, allowed)
        parts = _split_url(url)
        if scheme == "file":
            return _normalized_file_url(parts)
        userinfo, at, hostport = parts.netloc.rpartition("@")
        _refuse_credentials(scheme, userinfo, at, parts.netloc)
        _refuse_bad_host(scheme, parts, hostport, {h.lower() for h in allowed_hosts})
    except InvalidInput as e:
        e.field = "repo"  # every refusal here is about the repository URL field
        raise
    netloc = f"{userinfo}@{hostport.lower()}" if at else hostport.lower()
    return urlunsplit((scheme, netloc, parts.path, parts.query, parts.fragment))
