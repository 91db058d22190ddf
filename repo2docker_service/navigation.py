"""Where a browser request comes from (:func:`navigation_source`): our pages, another site,
or unknown, by the headers browsers set and pages cannot forge (``Sec-Fetch-Site``,
``Origin``, ``Referer``). The one rule behind drive-by launch protection
(``Caller.may_launch_without_click``); imports nothing of the service.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from urllib.parse import urlsplit

__all__ = ["Navigation", "navigation_source"]


class Navigation(enum.Enum):
    """Where a browser request comes from (see :func:`navigation_source`)."""

    #: a page of this service (same origin, ``Referer`` under the service's URL)
    OURS = "ours"
    #: another site, or another origin of this site (a user server on a subdomain)
    CROSS_SITE = "cross-site"
    #: typed, bookmarked, or sent without any signal (no ``Sec-Fetch-Site``, no ``Referer``),
    #: or a same-origin page that is not the service's (a user server under ``/user/``)
    UNKNOWN = "unknown"


def _origin_of(url: str) -> str | None:
    """``host[:port]`` of a URL (lowercase), or None when it has none (``null`` too)."""
    try:
        netloc = urlsplit(url.strip()).netloc
    except ValueError:
        return None
    return netloc.rpartition("@")[2].lower() or None


def navigation_source(headers: Mapping[str, str], *, host: str, base_url: str) -> Navigation:
    """Where a request comes from, by the headers browsers set and pages cannot forge.

    The rule (one place; used by launch links and anything else that would build or start
    on a GET):

    - ``Sec-Fetch-Site: cross-site`` or ``same-site`` (another origin of the site: a user
      server on a subdomain), an ``Origin`` of another host (``null`` included), or a
      ``Referer`` of another host: :attr:`Navigation.CROSS_SITE`. ``Sec-Fetch-Site: none``
      (typed or bookmarked) with a foreign ``Referer`` is cross-site too.
    - ``Referer`` of this host under ``base_url`` (our pages send it: ``Referrer-Policy:
      same-origin``), and ``Sec-Fetch-Site`` absent or ``same-origin``: :attr:`Navigation.OURS`.
    - anything else: :attr:`Navigation.UNKNOWN`.

    Args:
        headers: the request headers (case-insensitive mapping).
        host: the ``Host`` the request was sent to (the proxy keeps it).
        base_url: the service's URL path prefix, e.g. ``/services/repo2docker/``.
    """
    site = headers.get("Sec-Fetch-Site", "").strip().lower()
    if site in ("cross-site", "same-site"):
        return Navigation.CROSS_SITE
    ours = host.strip().lower()
    origin = headers.get("Origin")
    if origin is not None and _origin_of(origin) != ours:
        return Navigation.CROSS_SITE
    referer = headers.get("Referer")
    if referer is None:
        return Navigation.UNKNOWN
    if _origin_of(referer) != ours:
        return Navigation.CROSS_SITE
    try:
        path = urlsplit(referer.strip()).path
    except ValueError:
        return Navigation.UNKNOWN
    if site in ("", "same-origin") and (path + "/").startswith(base_url):
        return Navigation.OURS
    return Navigation.UNKNOWN
