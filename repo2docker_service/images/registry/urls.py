"""URLs of the Distribution API: the API base of a registry, pagination links."""

from __future__ import annotations

import re
from ipaddress import ip_address
from urllib.parse import urljoin, urlsplit

__all__ = ["api_base_url", "default_api_url", "next_link"]

_LINK_RE = re.compile(r"<([^>]*)>\s*;\s*rel=\"?next\"?")


def next_link(header: str | None, base: str) -> str | None:
    """The ``rel="next"`` URL of a ``Link`` header, resolved against ``base``; or None."""
    if not header:
        return None
    m = _LINK_RE.search(header)
    return urljoin(base, m.group(1)) if m else None


def default_api_url(registry: str) -> str:
    """The API base URL for ``host[:port]``: ``http://`` for loopback hosts, else ``https://``.

    Docker itself talks plain HTTP to registries on 127.0.0.0/8 (and ``localhost``) and
    HTTPS to every other registry unless the engine lists it in ``insecure-registries``;
    set ``registry_api_url`` for such a registry.
    """
    host = urlsplit(f"//{registry}").hostname or ""
    loopback = host == "localhost"
    try:
        loopback = loopback or ip_address(host).is_loopback
    except ValueError:
        pass
    return f"{'http' if loopback else 'https'}://{registry}"


def api_base_url(registry: str, api_url: str | None) -> str:
    """``api_url`` (``registry_api_url``) without a trailing slash, else :func:`default_api_url`.

    Raises:
        ValueError: ``api_url`` is not an ``http://`` or ``https://`` URL with a host (a bare
            ``host:port`` was taken for a path and every request failed as "unreachable").
    """
    if not api_url:
        return default_api_url(registry)
    parts = urlsplit(api_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f"registry_api_url {api_url!r} must be an http:// or https:// URL, e.g. "
            f"{default_api_url(registry)} (the default when it is empty)"
        )
    return api_url.rstrip("/")
