"""Which servers a user has running, asked of the hub with the user's own token.

The environments page shows which environments have a running server of the user, with a
link to it. The service asks ``GET {hub api}/user`` with the caller's own token (the OAuth
token of their browser session, or the API token they called with), so it never sees more
than the user may: the hub fills in ``servers`` only when that token holds
``read:servers!user`` (the service's ``oauth_client_allowed_scopes`` ask for it); without
it the answer is an empty list and ``available`` is false. The service's own token is not
used, so it needs no ``read:servers`` scope over every user.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from .errors import UpstreamError

__all__ = ["HubServers", "RunningServer"]


@dataclass(frozen=True, slots=True)
class RunningServer:
    """One server of the user, as the hub reports it.

    Attributes:
        name: the server's name ("" for the default server).
        url: its URL path on the hub (``/user/alice/name/``).
        ready: True once it answers; False while starting or stopping.
        pending: ``"spawn"``, ``"stop"`` or None.
        image: the image it was started from, when its user options say so (else "").
    """

    name: str
    url: str
    ready: bool
    pending: str | None
    image: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "url": self.url,
            "ready": self.ready,
            "pending": self.pending,
            "image": self.image,
        }

    @classmethod
    def from_model(cls, name: str, model: Mapping[str, Any]) -> RunningServer:
        """From one entry of the hub's user model ``servers`` (its key is the name)."""
        options = model.get("user_options") or {}
        image = options.get("image") if isinstance(options, Mapping) else None
        return cls(
            name=name,
            url=str(model.get("url") or ""),
            ready=bool(model.get("ready")),
            pending=model.get("pending") or None,
            image=image if isinstance(image, str) else "",
        )


class HubServers:
    """Asks the hub's REST API about the caller's own servers.

    Args:
        api_url: the hub's API URL (``$JUPYTERHUB_API_URL``), e.g.
            ``http://127.0.0.1:8081/hub/api``.
        timeout: seconds to wait for the hub's answer; 0 means tornado's default (20 s).
    """

    def __init__(self, api_url: str, timeout: float = 10.0) -> None:
        self.api_url = api_url.rstrip("/")
        self.timeout = timeout

    async def running(self, token: str) -> tuple[bool, list[RunningServer]]:
        """The servers of the token's owner (running or starting), by name.

        Args:
            token: the caller's own hub token.

        Returns:
            ``(available, servers)``: ``available`` is False when the token may not read
            the user's servers (then ``servers`` is empty).

        Raises:
            UpstreamError: the hub did not answer, or answered with an error.
        """
        request = HTTPRequest(
            f"{self.api_url}/user",
            headers={"Authorization": f"token {token}", "Accept": "application/json"},
            request_timeout=self.timeout or None,
        )
        try:
            response = await AsyncHTTPClient().fetch(request)
        except HTTPClientError as e:
            raise UpstreamError(f"the hub refused to tell your servers ({e.code})") from None
        except OSError:
            raise UpstreamError("the hub cannot be reached to tell your servers") from None
        model = json.loads(response.body or b"{}")
        servers = model.get("servers")
        if not isinstance(servers, Mapping):
            return False, []
        found = [RunningServer.from_model(str(n), m) for n, m in servers.items()]
        return True, sorted(found, key=lambda s: s.name)
