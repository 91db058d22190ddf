"""Readiness without the real parts: a hub API answered by a small tornado app on loopback
(a fake: the real hub's answer at ``/hub/api/`` is just its version), a Docker engine and a
registry that nobody listens for (a closed loopback port), and a catalog's freshness."""

from __future__ import annotations

import asyncio
import json

import pytest
from tornado import web
from tornado.httpserver import HTTPServer

from repo2docker_service.images.catalog import Catalog
from repo2docker_service.images.dockerengine import DockerEngine
from repo2docker_service.images.freshness import Freshness
from repo2docker_service.readiness import Readiness
from tests.rig.net import free_port

CLOSED = f"tcp://127.0.0.1:{free_port()}"  # nothing listens there


class HubAPI(web.RequestHandler):
    calls = 0

    def get(self) -> None:
        HubAPI.calls += 1
        self.finish({"version": "5.4.0"})


@pytest.fixture
async def hub_api():
    port = free_port()
    server = HTTPServer(web.Application([(r"/hub/api/", HubAPI)]))
    server.listen(port, "127.0.0.1")
    yield f"http://127.0.0.1:{port}/hub/api"
    server.stop()


class StaleCatalog(Catalog):
    def __init__(self, freshness: Freshness) -> None:
        self.freshness = freshness

    def state(self):
        return self.freshness.state()


def readiness(hub_url: str, *, engine: str = CLOSED, catalog: Catalog | None = None, **kw):
    r = Readiness(
        engine=DockerEngine(url=engine),
        registry=None,
        hub_api_url=hub_url,
        catalog=catalog or Catalog(),
        check_timeout=kw.pop("check_timeout", 2.0),
        **kw,
    )
    r.queue_status = lambda: {"queued": 2, "running": 1, "executor": "x"}
    return r


async def test_engine_down_is_503_material_naming_the_part_and_since_when(hub_api):
    r = readiness(hub_api)
    try:
        report = await r.report()
    finally:
        await r.close()
    body = report.to_dict()
    assert report.ready is False and body["down"] == ["docker"]
    assert body["parts"]["hub"] == {"up": True, "since": body["checked_at"]}
    docker = body["parts"]["docker"]
    assert docker["up"] is False and docker["since"] == body["checked_at"]
    assert "dockerd is running" in docker["check"]
    assert body["queue"] == {"queued": 2, "running": 1}
    assert body["builds_when_down"] == "fail"
    # probes carry no token: no address, port or version in the body
    text = json.dumps(body)
    assert "127.0.0.1" not in text and CLOSED.rsplit(":", 1)[1] not in text
    assert "5.4.0" not in text
    assert await r.blocking() == docker_reason(docker)


def docker_reason(docker: dict) -> str:
    return f"the docker part is down since {docker['since']}: {docker['check']}"


async def test_answers_are_reused_and_one_round_serves_concurrent_callers(hub_api):
    r = readiness(hub_api, cache_seconds=30)
    HubAPI.calls = 0
    try:
        reports = await asyncio.gather(*(r.report() for _ in range(20)))
        again = await r.report()
        fresh = await r.report(fresh=True)
    finally:
        await r.close()
    assert all(rep is reports[0] for rep in reports) and again is reports[0]
    assert fresh is not reports[0] and HubAPI.calls == 2


async def test_since_stays_while_the_state_stays(hub_api):
    r = readiness(hub_api, cache_seconds=0)
    try:
        first = (await r.report()).parts["docker"].since
        await asyncio.sleep(1.1)
        second = (await r.report()).parts["docker"].since
    finally:
        await r.close()
    assert first == second


async def test_a_hub_that_does_not_answer_is_down_within_the_timeout():
    # a listening socket that never answers: the check gives up after check_timeout
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    r = readiness(f"http://127.0.0.1:{port}/hub/api", check_timeout=0.5)
    try:
        async with asyncio.timeout(5):  # bounded: not the 20 s of tornado's default
            report = await r.report()
    finally:
        await r.close()
        server.close()
    assert report.parts["hub"].up is False and "hub" in report.down


@pytest.mark.parametrize(
    ("reads", "listable"),
    [
        ([], True),  # no read yet, nothing failed: live
        (["ok"], True),
        (["ok", "fail"], True),  # stale: the last good read answers
        (["fail"], False),  # never a good read: nothing to list
        (["fail", "ok"], True),
    ],
)
async def test_catalog_part_follows_its_freshness(hub_api, reads, listable):
    fresh = Freshness("engine")
    for read in reads:
        if read == "ok":
            fresh.read_ok()
        else:
            fresh.read_failed()
    r = readiness(hub_api, catalog=StaleCatalog(fresh))
    try:
        report = await r.report()
    finally:
        await r.close()
    assert report.can_list is listable
    assert ("catalog" in report.down) is (not listable)
    assert report.to_dict()["catalog"]["stale"] is (reads == ["ok", "fail"])
