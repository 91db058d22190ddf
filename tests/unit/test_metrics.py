"""ServiceMetrics: request results, ended builds, scrape-time gauges."""

from __future__ import annotations

from types import SimpleNamespace

from prometheus_client.parser import text_string_to_metric_families

from repo2docker_service.builds.model import Build, BuildState
from repo2docker_service.builds.request import SubmitResult
from repo2docker_service.errors import InvalidInput, QueueFull, SourceError, UpstreamError
from repo2docker_service.metrics import ServiceMetrics, request_result


def make_build(**kw) -> Build:
    args = dict(
        owner="alice",
        owner_slug="alice",
        name="env",
        repo="https://git.example.org/env",
        ref="main",
        commit="a" * 40,
        image="x/env:aaaaaaaaaaaa",
        latest_image="x/env:latest",
    )
    args.update(kw)
    return Build(**args)


def samples(metrics: ServiceMetrics) -> dict[tuple[str, tuple], float]:
    text = metrics.exposition().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_request_results():
    assert request_result(None) == "queued"
    assert request_result(None, cached=True) == "cached"
    assert request_result(None, joined=True) == "joined"
    assert request_result(QueueFull("full", retry_after=3)) == "queue_full"
    assert request_result(InvalidInput("bad")) == "invalid"
    assert request_result(SourceError("no such ref")) == "source_error"
    assert request_result(UpstreamError("docker down")) == "error"


async def test_counts_ended_builds_and_reads_live_gauges():
    queued, running, done = make_build(), make_build(), make_build()
    running.set_state(BuildState.BUILDING)
    manager = SimpleNamespace(list=lambda: [queued, running, done], concurrency=2, max_queue=5)
    metrics = ServiceMetrics(catalog=SimpleNamespace(live=True))
    metrics.attach(manager=manager)
    metrics.request("cached")
    metrics.request("cached")
    metrics.request("queue_full")
    done.set_state(BuildState.BUILDING)
    done.set_state(BuildState.BUILT)
    metrics.build_ended(done)  # the manager tells observers when a build ends
    lost = make_build()
    lost.set_state(BuildState.LOST, error="the service restarted")
    metrics.build_ended(lost)
    got = samples(metrics)
    prefix = "repo2docker_service_"
    assert got[(prefix + "build_requests_total", (("result", "cached"),))] == 2
    assert got[(prefix + "build_requests_total", (("result", "queue_full"),))] == 1
    assert got[(prefix + "builds_total", (("state", "built"),))] == 1
    assert got[(prefix + "builds_total", (("state", "lost"),))] == 1
    assert (prefix + "builds_total", (("state", "failed"),)) not in got
    assert got[(prefix + "build_duration_seconds_count", (("state", "built"),))] == 1
    # done is still in the manager's list but ended: only the queued and running count
    done_state = (("state", "built"),)
    assert (prefix + "builds_active", done_state) not in got
    assert got[(prefix + "builds_active", (("state", "queued"),))] == 1
    assert got[(prefix + "builds_active", (("state", "building"),))] == 1
    assert got[(prefix + "builds_active", (("state", "pushing"),))] == 0
    assert got[(prefix + "build_capacity", ())] == 7
    assert got[(prefix + "catalog_index_live", ())] == 1
    assert got[(prefix + "event_streams", ())] == 0


def test_answered_requests_are_counted_by_result():
    metrics = ServiceMetrics()
    metrics.request_answered(SubmitResult(build=None, image=None, cached=True), None)
    metrics.request_answered(SubmitResult(build=make_build(), image=None, joined=True), None)
    metrics.request_answered(SubmitResult(build=make_build(), image=None), None)
    metrics.request_answered(None, QueueFull("full", retry_after=3))
    metrics.request_answered(None, SourceError("no such ref"))
    got = samples(metrics)
    for result in ("cached", "joined", "queued", "queue_full", "source_error"):
        assert got[("repo2docker_service_build_requests_total", (("result", result),))] == 1


def test_a_broken_manager_never_breaks_the_scrape():
    def boom():
        raise RuntimeError("x")

    metrics = ServiceMetrics(manager=SimpleNamespace(list=boom), catalog=object())
    got = samples(metrics)
    assert ("repo2docker_service_build_capacity", ()) not in got
    assert ("repo2docker_service_catalog_index_live", ()) not in got
