"""Bad input and abuse through the real hub: clear 4xx answers, nothing queued or lost."""

import json
import urllib.error
import urllib.request

import pytest

from tests.rig.hub import HUB_RATE_LIMIT

pytestmark = pytest.mark.hub


def post(hub, user, data: bytes, path="api/builds", content_type="application/json"):
    req = urllib.request.Request(
        hub.service_url + path,
        data=data,
        method="POST",
        headers={"Authorization": f"token {hub.token_for(user)}", "Content-Type": content_type},
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, resp.headers, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, e.headers, json.loads(e.read() or b"null")


def builds_of(hub, user):
    req = urllib.request.Request(
        hub.service_url + "api/builds", headers={"Authorization": f"token {hub.token_for(user)}"}
    )
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.loads(resp.read())["builds"]


@pytest.mark.parametrize(
    "body, status, words",
    [
        (b"", 400, "empty"),
        (b"{not json", 400, "JSON"),
        (b"[1, 2]", 400, "object"),
        (b'"just a string"', 400, "object"),
        (b"\xff\xfe", 400, "JSON"),
        (json.dumps({"repo": "https://h.invalid/x", "force": "yes"}).encode(), 400, "force"),
        (json.dumps({"repo": "https://h.invalid/x", "ref": 3}).encode(), 400, "ref"),
        (json.dumps({"repo": "https://h.invalid/x", "credentials": "pw"}).encode(), 400, "creden"),
        (json.dumps({"repo": "https://h.invalid/x", "unknown": 1}).encode(), 400, "unknown"),
        # header / CRLF injection attempts in names and refs
        (json.dumps({"repo": "https://h.invalid/x", "name": "a\r\nX-Evil: 1"}).encode(), 400, ""),
        (json.dumps({"repo": "https://h.invalid/x", "ref": "main\r\nX: y"}).encode(), 400, "ref"),
        (json.dumps({"repo": "https://h.invalid/x\r\nX: y"}).encode(), 400, "repo"),
        (json.dumps({"repo": "https://h.invalid/x", "name": "n" * 10_000}).encode(), 400, "name"),
        (json.dumps({"repo": "https://h.invalid/" + "x" * 10_000}).encode(), 400, ""),
        (json.dumps({"repo": "x" * (1 << 20)}).encode(), 413, "bytes"),
    ],
)
def test_bad_bodies_get_clear_4xx_and_queue_nothing(hub, body, status, words):
    before = len(builds_of(hub, "alice"))
    got, headers, result = post(hub, "alice", body)
    assert got == status, result
    assert result["status"] == status
    assert words.lower() in result["message"].lower()
    assert "\r" not in str(dict(headers))
    assert len(builds_of(hub, "alice")) == before


def test_rate_limit_per_user_gives_429_with_retry_after(hub):
    statuses = []
    for _ in range(HUB_RATE_LIMIT + 1):
        got, headers, result = post(hub, "flooder", b"{}")
        statuses.append(got)
        if got == 429:
            break
    assert statuses[:-1] == [400] * HUB_RATE_LIMIT  # counted, rejected for the body
    assert statuses[-1] == 429
    assert int(headers["Retry-After"]) >= 1
    assert "Too many build requests" in result["message"]
    # someone else is not affected
    got, _, _ = post(hub, "alice", b"{}")
    assert got == 400
