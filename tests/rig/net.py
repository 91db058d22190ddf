"""Loopback networking for the rig: free ports, proxy-free clients, environments.

``loopback_env`` lives with the git server in ``scripts/git_http.py`` (the demo needs it too);
this is where the tests take it from.
"""

from __future__ import annotations

import socket
import urllib.error
import urllib.request

from scripts.git_http import loopback_env

__all__ = ["free_port", "http_status", "loopback_env", "no_proxy_opener"]


def free_port() -> int:
    """A TCP port of 127.0.0.1 that was free a moment ago (bind to port 0, read, close)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def no_proxy_opener(
    *handlers: urllib.request.BaseHandler,
) -> urllib.request.OpenerDirector:
    """A urllib opener that ignores ``*_proxy`` variables: rig traffic stays on loopback."""
    return urllib.request.build_opener(urllib.request.ProxyHandler({}), *handlers)


def http_status(url: str, *, timeout: float = 2) -> int | None:
    """The status of ``GET url`` (error statuses included), or None when nothing answers."""
    try:
        with no_proxy_opener().open(url, timeout=timeout) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:  # URLError, refused, reset, timeout
        return None
