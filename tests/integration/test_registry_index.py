"""The service's index in the registry, through whole services behind real hubs.

The registry is the fake-registry front (``tests/rig/fake_registry.py``: our own loopback
proxy, a fake because GHCR and Docker Hub cannot run here) over a real ``docker-registry``,
answering 404 to ``/v2/_catalog`` as GHCR does (401 as Docker Hub does in one case). Builds
push through the front with repo2docker. What is checked:

- listings (``api/images``, ``api/users/<name>/images``) answer 200 from the index (502
  before the index existed), and ``api/info`` says once that there is no ``_catalog``;
- two services (two hubs, one registry, one image prefix) build at once: each lists both
  environments, and so does a third service started afterwards (a restart: nothing local);
- a delete is gone from the listing, also after a restart.

Registry down (stale listings, recovery) is in test_registry_service.py and
test_registry_mode.py against plain real registries (the front's backend cannot be stopped
without the front answering 500 instead of refusing connections).
"""

from __future__ import annotations

import threading
import uuid

import pytest

from tests.rig.api import call, sse_events
from tests.rig.engine import local_images, remove_images
from tests.rig.fake_registry import FrontBehaviour, start_front
from tests.rig.hub import Hub, start_hub
from tests.rig.parts import OFFLINE_CONFIG
from tests.rig.repos import dockerfile
from tests.rig.wait import wait_until

pytestmark = pytest.mark.docker

PREFIX = f"r2didx{uuid.uuid4().hex[:6]}-"


def service_hub(tmp_path_factory: pytest.TempPathFactory, registry: str, label: str) -> Hub:
    """A hub whose service lists from ``registry`` (TTL 1 s), image prefix PREFIX."""
    try:
        return start_hub(
            tmp_path_factory.mktemp(label),
            service_config=(
                'c.Repo2DockerService.allowed_repo_schemes = ["http"]\n'
                f"c.Executor.repo2docker_config = {str(OFFLINE_CONFIG)!r}\n"
                f"c.Repo2DockerService.image_prefix = {PREFIX!r}\n"
                f"c.Repo2DockerService.registry_url = {registry!r}\n"
                "c.Repo2DockerService.build_rate_limit = 0\n"
                "c.Repo2DockerService.registry_cache_ttl = 1\n"
            ),
        )
    except RuntimeError as e:
        pytest.fail(f"Could not start JupyterHub: {e}")


def listed(hub: Hub, user: str = "admin1") -> set[tuple[str, str]]:
    status, body = call(hub, "GET", "api/images", user)
    assert status == 200, body
    assert body["stale"] is False and body["age_s"] is not None
    return {(i["owner"], i["name"]) for i in body["images"]}


def build(hub: Hub, user: str, url: str, name: str) -> dict:
    status, posted = call(hub, "POST", "api/builds", user, {"repo": url, "name": name})
    assert status == 202, posted
    events = sse_events(hub, posted["build"]["id"], user)
    done = events[-1]["data"]
    log = [e["data"].get("message", "") for e in events if e["event"] == "log"]
    assert done["state"] == "built", (done.get("error"), "\n".join(log[-20:]))
    return done


@pytest.fixture(scope="module")
def front(tmp_path_factory, docker_engine):
    front = start_front(
        tmp_path_factory.mktemp("front"), behaviour=FrontBehaviour(catalog_404=True)
    )
    yield front
    front.close()
    remove_images(local_images(PREFIX))


def test_listing_without_catalog_two_services_restart_delete(
    tmp_path_factory, front, git_http, base_image
):
    hub_a = service_hub(tmp_path_factory, front.host, "index-a")
    hubs = [hub_a]
    try:
        # no _catalog: an empty listing, not 502; api/info says why
        assert listed(hub_a) == set()
        status, spawnable = call(hub_a, "GET", "api/users/alice/images", "alice")
        assert status == 200 and spawnable["images"] == [] and spawnable["stale"] is False
        catalog = call(hub_a, "GET", "api/info", "alice")[1]["catalog"]
        assert catalog["source"] == "index" and catalog["live"] and not catalog["stale"]
        assert "answers 404 to /v2/_catalog" in catalog["note"], catalog
        assert ("GET", "/v2/_catalog") in [(m, p.split("?")[0]) for m, p in front.answered(404)]

        # a second service on the same registry and prefix; both build at once
        hub_b = service_hub(tmp_path_factory, front.host, "index-b")
        hubs.append(hub_b)
        urls = {
            who: git_http.create_repo(
                f"idx/{who}-{uuid.uuid4().hex[:6]}", dockerfile(base_image, f"RUN echo {who}")
            )
            for who in ("a", "b")
        }
        results: dict[str, dict] = {}
        threads = [
            threading.Thread(
                target=lambda h=h, u=u, w=w: results.update({w: build(h, u, urls[w], f"env-{w}")})
            )
            for h, u, w in ((hub_a, "alice", "a"), (hub_b, "a.b", "b"))
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        assert set(results) == {"a", "b"}, results
        both = {("alice", "env-a"), ("a.b", "env-b")}
        for hub in (hub_a, hub_b):  # each sees the other's build within a refresh
            wait_until(lambda h=hub: listed(h) == both, timeout=20, interval=0.5, what="both")
        hub_a.stop()
        hubs.remove(hub_a)

        # a restarted service (no local state) lists both from the index
        hub_c = service_hub(tmp_path_factory, front.host, "index-c")
        hubs.append(hub_c)
        assert listed(hub_c) == both
        status, mine = call(hub_c, "GET", "api/users/alice/images", "alice")
        assert status == 200 and [i["name"] for i in mine["images"]] == ["env-a"]
        assert mine["images"][0]["image"] == results["a"]["image"]

        # delete through one service: gone there at once, in the other within a refresh,
        # and after a restart
        owner_slug = mine["images"][0]["owner_slug"]
        assert call(hub_c, "DELETE", f"api/images/{owner_slug}/env-a", "alice")[0] == 204
        assert listed(hub_c) == {("a.b", "env-b")}
        wait_until(lambda: listed(hub_b) == {("a.b", "env-b")}, timeout=20, interval=0.5)
        hub_c.stop()
        hubs.remove(hub_c)
        hub_d = service_hub(tmp_path_factory, front.host, "index-d")
        hubs.append(hub_d)
        assert listed(hub_d) == {("a.b", "env-b")}
        for hub in hubs:
            assert hub.log_text().count("to /v2/_catalog (as GHCR") <= 1
    finally:
        for hub in hubs:
            hub.stop()


def test_docker_hub_catalog_401_lists_from_the_index(tmp_path_factory, front):
    """Docker Hub answers 401 to _catalog: the same index serves (written by the test above
    or empty), and api/info says 401."""
    front.behaviour.catalog_404, front.behaviour.catalog_401 = False, True
    hub = service_hub(tmp_path_factory, front.host, "index-401")
    try:
        status, body = call(hub, "GET", "api/images", "admin1")
        assert status == 200 and body["stale"] is False, body
        catalog = call(hub, "GET", "api/info", "admin1")[1]["catalog"]
        assert "answers 401 to /v2/_catalog" in catalog["note"], catalog
    finally:
        hub.stop()
        front.behaviour.catalog_404, front.behaviour.catalog_401 = True, False
