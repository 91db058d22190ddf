"""URLs of the Distribution API: the API base of a registry, pagination links."""

from __future__ import annotations

import re
from ipaddress import ip_address
from urllib.parse import urljoin, urlsplit

__all__ = ["default_api_url", "next_link"]

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
