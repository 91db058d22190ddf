"""The fake-registry front itself (tests/rig/fake_registry.py) over a real docker-registry:
each switch changes what a client sees, and switched off the real registry shows through."""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from tests.rig.fake_registry import FrontBehaviour, RegistryFront, start_front
from tests.rig.net import no_proxy_opener
from tests.rig.oci import push_test_image
from tests.rig.parts import require
from tests.rig.registry_token import SERVICE

OPENER = no_proxy_opener()
ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)


@pytest.fixture(scope="module")
def front(tmp_path_factory):
    f = require(start_front, tmp_path_factory.mktemp("front"))
    yield f
    f.close()


@pytest.fixture(autouse=True)
def plain(front):
    front.behaviour = FrontBehaviour()
    front.token_ttl = 300
    yield


def get(url: str, *, auth: str = "", method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, method=method, headers={"Accept": ACCEPT})
    if auth:
        req.add_header("Authorization", auth)
    try:
        with OPENER.open(req, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def token(front: RegistryFront, scope: str, *, login: bool = True, account: bool = True) -> str:
    query = [("service", SERVICE)] + ([("scope", scope)] if scope else [])
    if account:
        query.append(("account", front.username))
    basic = base64.b64encode(f"{front.username}:{front.password}".encode()).decode()
    status, _, body = get(
        front.token_server.realm + "?" + urllib.parse.urlencode(query),
        auth=f"Basic {basic}" if login else "",
    )
    assert status == 200, body
    return "Bearer " + json.loads(body)["token"]


def test_plain_front_passes_pushes_and_reads_through(front):
    digest = push_test_image(front.url, "plain/one", "v1", labels={"a": "b"})
    status, headers, _ = get(f"{front.url}/v2/plain/one/manifests/v1", method="HEAD")
    assert status == 200 and headers["Docker-Content-Digest"] == digest
    assert int(headers["Content-Length"]) > 0
    status, _, body = get(f"{front.url}/v2/_catalog")
    assert status == 200 and "plain/one" in json.loads(body)["repositories"]


def test_catalog_switches(front):
    front.behaviour.catalog_404 = True
    assert get(f"{front.url}/v2/_catalog")[0] == 404
    front.behaviour.catalog_404, front.behaviour.catalog_401 = False, True
    status, headers, _ = get(f"{front.url}/v2/_catalog")
    assert status == 401 and "Bearer realm=" in headers["WWW-Authenticate"]
    front.behaviour.catalog_401 = False
    assert get(f"{front.url}/v2/_catalog")[0] == 200


def test_token_realm_wants_service_scope_and_login(front):
    front.behaviour.auth = "token"
    status, headers, _ = get(f"{front.url}/v2/")
    assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer realm=")
    realm = front.token_server.realm
    basic = "Basic " + base64.b64encode(f"{front.username}:{front.password}".encode()).decode()
    assert get(f"{realm}?service={SERVICE}", auth=basic)[0] == 400  # no scope
    assert get(f"{realm}?scope=repository:x:pull", auth=basic)[0] == 400  # no service
    assert get(f"{realm}?service={SERVICE}&scope=repository:x:pull")[0] == 401  # no login
    bearer = token(front, "repository:tok/one:pull,push")
    assert front.token_server.requests[-1][1]["account"] == [front.username]
    push_test_image(front.url, "tok/one", "v1", authorization=bearer)
    assert get(f"{front.url}/v2/tok/one/tags/list")[0] == 401
    status, _, body = get(f"{front.url}/v2/tok/one/tags/list", auth=bearer)
    assert status == 200 and json.loads(body)["tags"] == ["v1"]
    # another repository's token does not do
    other = token(front, "repository:tok/other:pull")
    status, headers, _ = get(f"{front.url}/v2/tok/one/tags/list", auth=other)
    assert status == 401 and 'scope="repository:tok/one:pull"' in headers["WWW-Authenticate"]


def test_tokens_expire(front):
    front.behaviour.auth = "token"
    front.token_ttl = 1
    bearer = token(front, "repository:exp/one:pull")
    assert get(f"{front.url}/v2/exp/one/tags/list", auth=bearer)[0] == 404  # valid, no repo
    time.sleep(2.1)
    assert get(f"{front.url}/v2/exp/one/tags/list", auth=bearer)[0] == 401
    front.token_ttl = 300
    bearer = token(front, "repository:exp/one:pull")
    front.expire_tokens()
    assert get(f"{front.url}/v2/exp/one/tags/list", auth=bearer)[0] == 401
    time.sleep(1.1)
    fresh = token(front, "repository:exp/one:pull")
    assert get(f"{front.url}/v2/exp/one/tags/list", auth=fresh)[0] == 404


@pytest.mark.parametrize("status", [401, 403, 404])
def test_unknown_repository_with_a_valid_token(front, status):
    push_test_image(front.url, "known/one", "v1")
    front.behaviour.auth = "token"
    front.behaviour.unknown_repo_status = status
    bearer = token(front, "repository:unknown/one:pull")
    code, headers, body = get(f"{front.url}/v2/unknown/one/manifests/latest", auth=bearer)
    assert code == status, body
    if status == 401:
        assert 'error="insufficient_scope"' in headers["WWW-Authenticate"]
    known = token(front, "repository:known/one:pull")
    assert get(f"{front.url}/v2/known/one/manifests/v1", auth=known)[0] == 200
    # a push token is exempt (as Docker Hub answers those)
    pusher = token(front, "repository:unknown/one:pull,push")
    assert get(f"{front.url}/v2/unknown/one/manifests/latest", auth=pusher)[0] == 404


def test_basic_auth(front):
    front.behaviour.auth = "basic"
    status, headers, _ = get(f"{front.url}/v2/")
    assert status == 401 and headers["WWW-Authenticate"].startswith("Basic")
    basic = base64.b64encode(f"{front.username}:{front.password}".encode()).decode()
    assert get(f"{front.url}/v2/", auth=f"Basic {basic}")[0] == 200


def test_attestation_index(front):
    front.behaviour.attestation_index = True
    image = push_test_image(front.url, "att/one", "v1", labels={"x": "y"})
    status, headers, body = get(f"{front.url}/v2/att/one/manifests/v1")
    index = json.loads(body)
    assert status == 200 and headers["Content-Type"] == "application/vnd.oci.image.index.v1+json"
    first, second = index["manifests"]
    assert first["platform"] == {"architecture": "unknown", "os": "unknown"}
    assert first["annotations"]["vnd.docker.reference.type"] == "attestation-manifest"
    assert second["digest"] == image and second["platform"]["os"] == "linux"
    for child in (first, second):
        assert get(f"{front.url}/v2/att/one/manifests/{child['digest']}")[0] == 200
    # a tag pushed without the switch, turned into an index afterwards
    front.behaviour.attestation_index = False
    plain = push_test_image(front.url, "att/two", "v1")
    digest = front.attest("att/two", "v1")
    status, headers, body = get(f"{front.url}/v2/att/two/manifests/v1")
    assert headers["Docker-Content-Digest"] == digest
    assert json.loads(body)["manifests"][1]["digest"] == plain
