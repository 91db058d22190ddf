"""HTTP and SSE clients of the service (through the hub's proxy) and of the hub's REST API.

Every request goes through a proxy-free opener: rig traffic stays on 127.0.0.1. HTTP error
statuses are returned, never raised, so tests assert on them.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from email.message import Message
from typing import Any

from tests.rig.hub import Hub
from tests.rig.net import no_proxy_opener


def _exchange(req: urllib.request.Request, timeout: float) -> tuple[int, Message, bytes]:
    """(status, headers, body) of ``req``; HTTP errors are answers too."""
    try:
        with no_proxy_opener().open(req, timeout=timeout) as resp:
            payload = resp.read()
            return int(resp.status), resp.headers, payload
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def request(
    method: str,
    url: str,
    *,
    token: str | None = None,
    body: Any = None,
    timeout: float = 60,
) -> tuple[int, Any]:
    """(status, parsed JSON or text or None) of a JSON request to any loopback URL."""
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"token {token}"
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    status, _, raw = _exchange(req, timeout)
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode(errors="replace")


def call(
    hub: Hub,
    method: str,
    path: str,
    user: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    raw: bool = False,
) -> tuple[Any, ...]:
    """Call the service at ``path`` (relative to its URL) as ``user``.

    ``body`` is JSON-encoded unless it is bytes. Returns (status, parsed JSON or None), or
    with ``raw`` (status, response headers, body bytes).

    Raises:
        ValueError: the answer is not JSON (without ``raw``).
    """
    data = None
    hdrs = {"Authorization": f"token {hub.token_for(user)}", **(headers or {})}
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        hdrs["Content-Type"] = "application/json"
    req = urllib.request.Request(hub.service_url + path, data=data, method=method, headers=hdrs)
    status, rheaders, payload = _exchange(req, 120)
    if raw:
        return status, rheaders, payload
    return status, (json.loads(payload) if payload else None)


def iter_sse(lines: Iterable[bytes]) -> Iterator[dict[str, str]]:
    """The events of a ``text/event-stream`` body as ``{field: value}``.

    Comments are skipped; an event counts once its blank line has arrived.
    """
    current: dict[str, str] = {}
    for raw in lines:
        line = raw.decode().rstrip("\n")
        if not line:
            if current:
                yield current
            current = {}
            continue
        if line.startswith(":"):
            continue
        key, _, value = line.partition(": ")
        current[key] = value


def _open_events(
    hub: Hub, build_id: str, user: str, last_event_id: int | None, timeout: float
) -> Any:
    headers = {"Authorization": f"token {hub.token_for(user)}"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = str(last_event_id)
    req = urllib.request.Request(hub.service_url + f"api/builds/{build_id}/events", headers=headers)
    return no_proxy_opener().open(req, timeout=timeout)


def sse_events(
    hub: Hub, build_id: str, user: str, last_event_id: int | None = None
) -> list[dict[str, Any]]:
    """Read a build's event stream to its end as ``user``: ``[{"id", "event", "data"}]``.

    Raises:
        AssertionError: the response is not an event stream.
    """
    with _open_events(hub, build_id, user, last_event_id, 300) as resp:
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        events = list(iter_sse(resp))
    return [
        {"id": int(e["id"]), "event": e["event"], "data": json.loads(e["data"])} for e in events
    ]


def follow_build(hub: Hub, build_id: str, user: str, timeout: float = 600) -> dict[str, Any]:
    """Read the build's SSE stream to the end; return the final build record (``done``).

    Raises:
        AssertionError: the stream ended without a ``done`` event.
    """
    done: dict[str, Any] | None = None
    with _open_events(hub, build_id, user, None, timeout) as resp:
        for event in iter_sse(resp):
            if event.get("event") == "done" and "data" in event:
                done = json.loads(event["data"])
    assert done is not None, "the event stream ended without a done event"
    return done


def build(
    hub: Hub,
    user: str,
    *,
    repo: str,
    name: str,
    ref: str = "main",
    display_name: str | None = None,
    shared: bool = False,
    **fields: Any,
) -> dict[str, Any]:
    """Build through the API as ``user`` (or take the cached image); return the image model.

    ``fields`` are further request fields (``profile="big"``, ``memory="2G"``...).

    Raises:
        AssertionError: the request was refused, the build failed, or the image is not listed.
    """
    body: dict[str, Any] = {"repo": repo, "ref": ref, "name": name, **fields}
    if display_name:
        body["display_name"] = display_name
    if shared:
        body["shared"] = True
    status, result = request(
        "POST", hub.service_url + "api/builds", token=hub.token_for(user), body=body
    )
    assert status in (200, 202), result
    if not result["cached"]:
        done = follow_build(hub, result["build"]["id"], user)
        assert done["state"] == "built", done
    status, images = request("GET", hub.service_url + "api/images", token=hub.token_for(user))
    assert status == 200, images
    owner = "" if shared else user
    matches = [i for i in images["images"] if i["name"] == name and i["owner"] == owner]
    assert matches, images
    return dict(matches[0])
