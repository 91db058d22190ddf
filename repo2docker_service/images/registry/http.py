"""HTTP for the registry client: one exchange with network trouble as :class:`RegistryError`,
and bounded bodies (URLs are :mod:`.urls`')."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

import aiohttp

from .errors import RegistryError

__all__ = ["Answer", "exchange"]


#: ``(status, headers, body)`` of one answer.
Answer = tuple[int, Mapping[str, str], bytes]


async def exchange(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    headers: Mapping[str, str],
    data: bytes | None,
    max_body: int,
    redirects: bool,
    time_limit: float,
) -> Answer:
    """One HTTP exchange.

    Args:
        session: the client's session.
        method, url, headers, data: the request.
        max_body: largest body read (bytes).
        redirects: follow redirects.
        time_limit: the session's timeout in seconds (for the message).

    Returns:
        ``(status, headers, body)`` (no body for HEAD).

    Raises:
        RegistryError: ``unreachable`` (connection, timeout), ``bad_url`` (TLS, URL),
            ``error`` (a body over ``max_body``).
    """
    try:
        async with session.request(
            method, url, headers=dict(headers), data=data, allow_redirects=redirects
        ) as resp:
            body = b"" if method == "HEAD" else await _read_body(resp, max_body, method, url)
            return resp.status, resp.headers, body
    except RegistryError:
        raise
    except aiohttp.ClientSSLError as e:
        raise RegistryError(
            f"TLS with {url} failed ({e}); if the registry speaks plain HTTP, set "
            "registry_api_url to its http:// URL",
            kind="bad_url",
        ) from None
    except aiohttp.InvalidURL as e:
        raise RegistryError(f"invalid registry URL {e}", kind="bad_url") from None
    except TimeoutError:
        raise RegistryError(
            f"{urlsplit(url).netloc} did not answer within {time_limit:g} s",
            kind="unreachable",
        ) from None
    except (aiohttp.ClientError, OSError) as e:
        raise RegistryError(
            f"cannot connect to {urlsplit(url).netloc} ({e or type(e).__name__})",
            kind="unreachable",
        ) from None


async def _read_body(resp: aiohttp.ClientResponse, max_body: int, method: str, url: str) -> bytes:
    """The body of an answer, at most ``max_body`` bytes.

    Raises:
        RegistryError: the body is longer.
    """
    chunks: list[bytes] = []
    size = 0
    # (read() of a stream returns what has arrived, not the whole body)
    async for chunk in resp.content.iter_any():
        size += len(chunk)
        if size > max_body:
            raise RegistryError(
                f"{method} {url} answered more than {max_body} bytes",
                kind="error",
                status=resp.status,
            )
        chunks.append(chunk)
    return b"".join(chunks)
