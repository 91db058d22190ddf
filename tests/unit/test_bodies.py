"""Big and odd request bodies, and unknown machine profiles (issue 15, item 11).

The service's own web application is served in-process on 127.0.0.1 and spoken to with raw
sockets, so that requests can stop half-way (a Content-Length with no body yet): the refusal
must come before the body is read and before the hub is asked who the caller is (no hub runs
here). ``tests/hub/test_wild_refusals.py`` sends the same kinds through the hub's proxy.
"""

from __future__ import annotations

import asyncio
import json
import socket

import pytest
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from repo2docker_service.app import Repo2DockerService
from repo2docker_service.bodylimit import DRAIN_BYTES, MAX_DRAIN_BYTES
from repo2docker_service.builds.request import check_profile
from repo2docker_service.errors import InvalidInput
from repo2docker_service.webhooks import MAX_BODY_BYTES


@pytest.fixture
async def service(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    for var in ("REPO2DOCKER_SERVICE_CONFIG", "JUPYTERHUB_SERVICE_PREFIX"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "not-a-real-token")
    monkeypatch.setenv("JUPYTERHUB_API_URL", "http://127.0.0.1:9/hub/api")
    monkeypatch.setenv("REPO2DOCKER_SERVICE_WEBHOOK_SECRET", "hook")
    Repo2DockerService.clear_instance()
    app = Repo2DockerService()
    app.initialize([])
    app.init_components()
    server = HTTPServer(app.make_body_limit(app.make_web_app()), max_body_size=MAX_DRAIN_BYTES)
    sockets = bind_sockets(0, "127.0.0.1", family=socket.AF_INET)
    server.add_sockets(sockets)
    yield sockets[0].getsockname()[1], app.base_url
    server.stop()
    await app.catalog.close()
    Repo2DockerService.clear_instance()


async def exchange(port: int, head: str, parts: list[bytes]) -> tuple[int, dict]:
    """Send ``head`` (request line and headers) and ``parts``; read the final answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head.encode() + b"\r\n")
        for part in parts:
            writer.write(part)
        await writer.drain()
        async with asyncio.timeout(60):  # a hang fails the test instead of blocking it
            while True:
                status = int((await reader.readline()).split()[1])
                fields = {}
                while (line := await reader.readline()) != b"\r\n":
                    key, _, value = line.decode().partition(":")
                    fields[key.strip().lower()] = value.strip()
                if status >= 200:
                    break
            body = await reader.readexactly(int(fields["content-length"]))
        return status, json.loads(body)
    finally:
        writer.close()


def post_head(base_url: str, path: str, **headers: str) -> str:
    lines = [f"POST {base_url}{path} HTTP/1.1", "Host: 127.0.0.1", "Authorization: token x"]
    return "\r\n".join(lines + [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]) + "\r\n"


@pytest.mark.parametrize("path", ["api/builds", "api/webhooks/github"])
@pytest.mark.parametrize("size", [DRAIN_BYTES + 1, 100 << 20, 1 << 40])
async def test_a_content_length_over_the_limit_is_answered_before_any_body(service, path, size):
    """Past DRAIN_BYTES the answer comes at once, with no body byte sent (and no hub)."""
    port, base = service
    head = post_head(base, path, Content_Length=str(size), Content_Type="application/json")
    status, answer = await exchange(port, head, [])
    assert (status, answer["status"]) == (413, 413)
    assert f"Request body is {size} bytes; at most" in answer["message"]


@pytest.mark.parametrize("path", ["api/builds", "api/webhooks/github"])
@pytest.mark.parametrize("size", [3 << 20, 10 << 20, DRAIN_BYTES, 100 << 20])
async def test_a_body_up_to_drain_bytes_is_read_and_dropped_then_answered(service, path, size):
    """Clients that send everything before they read get the answer (no hub asked); past
    DRAIN_BYTES it was sent early, and the rest is still read so the client can finish."""
    port, base = service
    head = post_head(base, path, Content_Length=str(size))
    status, answer = await exchange(port, head, [b"x" * size])
    assert (status, answer["status"]) == (413, 413)


@pytest.mark.parametrize(
    "parts",
    [
        [b"100000\r\n" + b"x" * 0x100000 + b"\r\n"] * 3 + [b"0\r\n\r\n"],
        [b"200000\r\n" + b" " * 0x200000 + b"\r\n", b"1\r\n}\r\n", b"0\r\n\r\n"],
    ],
    ids=["3M", "one-byte-over"],
)
async def test_a_chunked_body_over_the_limit_is_never_kept_and_answered_413(service, parts):
    """Webhooks (2 MiB) ask no hub: the refusal is the only answer this can get."""
    port, base = service
    head = post_head(base, "api/webhooks/github", Transfer_Encoding="chunked")
    status, answer = await exchange(port, head, parts)
    assert (status, answer["status"]) == (413, 413)
    assert f"Request body is over {MAX_BODY_BYTES} bytes" in answer["message"]


async def test_a_body_within_the_limit_reaches_the_handler(service):
    """Without a hub the token cannot be checked: the answer is the handler's 403, not 413."""
    port, base = service
    body = b'{"repo": "https://example.org/x"}'
    head = post_head(base, "api/builds", Content_Length=str(len(body)))
    status, answer = await exchange(port, head, [body])
    assert status != 413 and answer["status"] == status


@pytest.mark.parametrize(
    "profile, profiles, words",
    [
        ("gpu-xxl", (), "no machine profiles are configured"),
        ("gpu-xxl", ("small", "large"), "machine profiles: small, large"),
        ("Small", ("small",), None),
        ("small", ("small", "large"), None),
        (None, (), None),
    ],
)
def test_an_unknown_profile_is_a_400_naming_the_valid_ones(profile, profiles, words):
    if words is None:
        check_profile(profile, profiles)
        return
    with pytest.raises(InvalidInput) as e:
        check_profile(profile, profiles)
    assert e.value.status_code == 400 and words in e.value.message
