"""GET metrics through the real hub: admin-only by default, counts what happened."""

import json
import urllib.error
import urllib.request

import pytest

from tests.rig.hub import start_hub

pytestmark = pytest.mark.hub


def get(url, token=None):
    headers = {"Authorization": f"token {token}"} if token else {}
    req = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, resp.headers, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


def value(text: str, sample: str) -> float:
    for line in text.splitlines():
        if line.startswith(sample + " "):
            return float(line.split()[-1])
    return 0.0


def test_metrics_need_admin_and_count_requests(hub):
    url = hub.service_url + "metrics"
    status, _, body = get(url)
    assert status == 403 and "Not authenticated" in json.loads(body)["message"]
    status, _, body = get(url, hub.token_for("alice"))
    assert status == 403 and "custom:repo2docker:admin" in json.loads(body)["message"]

    status, headers, before = get(url, hub.token_for("admin1"))
    assert status == 200, before
    assert headers["Content-Type"].startswith("text/plain")
    for name in (
        "repo2docker_service_build_capacity",
        'repo2docker_service_builds_active{state="queued"}',
        "repo2docker_service_catalog_index_live 1.0",
        "repo2docker_service_event_streams",
    ):
        assert name in before
    invalid = 'repo2docker_service_build_requests_total{result="invalid"}'
    req = urllib.request.Request(
        hub.service_url + "api/builds",
        data=json.dumps({"repo": "https://h.invalid/x", "ref": "bad ref"}).encode(),
        method="POST",
        headers={
            "Authorization": f"token {hub.token_for('alice')}",
            "Content-Type": "application/json",
        },
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(req, timeout=60)
    assert refused.value.code in (400, 422)
    _, _, after = get(url, hub.token_for("admin1"))
    assert value(after, invalid) == value(before, invalid) + 1


def test_metrics_can_be_open(tmp_path, docker_engine):
    hub = start_hub(
        tmp_path / "hub",
        service_config="c.Repo2DockerService.metrics_require_auth = False\n",
    )
    try:
        status, _, body = get(hub.service_url + "metrics")
        assert status == 200 and "repo2docker_service_build_requests_total" in body
        # nothing private in it
        assert "alice" not in body and "http" not in body
    finally:
        hub.stop()
