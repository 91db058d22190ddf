"""The retention rule (images/retention.py) as a table of variants, and the pin manifest."""

from __future__ import annotations

import json

import pytest

from repo2docker_service.errors import InvalidInput
from repo2docker_service.handlers.images import parse_latest_body, parse_prune_body
from repo2docker_service.images.registry.manifest import PIN_ANNOTATION, pin_manifest
from repo2docker_service.images.retention import Candidate, newest_first, plan_retention
from repo2docker_service.images.usage import disk_report


def tags(n: int, *, same: dict[int, int] | None = None) -> list[Candidate]:
    """``n`` commit tags t0 (oldest) .. t{n-1} (newest); ``same`` maps i -> j: ti has tj's image."""
    same = same or {}
    return [
        Candidate(
            tag=f"t{i}",
            image_id=f"id{same.get(i, i)}",
            built_at=f"2026-01-{i + 1:02d}T00:00:00Z",
            uses=(f"repo:t{i}",),
        )
        for i in range(n)
    ]


# (what, candidates, keep, latest image, in use, tags kept, tags removed)
CASES = [
    ("nothing", [], 3, None, set(), set(), []),
    ("fewer than keep", tags(2), 3, "id1", set(), {"t0", "t1"}, []),
    ("keep newest 3 of 5", tags(5), 3, "id4", set(), {"t2", "t3", "t4"}, ["t1", "t0"]),
    ("keep 0 keeps all", tags(4), 0, "id3", set(), {"t0", "t1", "t2", "t3"}, []),
    ("rolled-back latest", tags(5), 2, "id0", set(), {"t4", "t3", "t0"}, ["t2", "t1"]),
    ("in use by id", tags(5), 2, "id4", {"id1"}, {"t4", "t3", "t1"}, ["t2", "t0"]),
    ("in use by reference", tags(4), 1, "id3", {"repo:t0"}, {"t3", "t0"}, ["t2", "t1"]),
    ("no latest", tags(3), 1, None, set(), {"t2"}, ["t1", "t0"]),
    ("keep 1, latest is newest", tags(3), 1, "id2", set(), {"t2"}, ["t1", "t0"]),
    (
        "tag sharing a kept image stays",
        tags(4, same={1: 3}),
        1,
        "id3",
        set(),
        {"t3", "t1"},
        ["t2", "t0"],
    ),
    ("in use and latest", tags(3), 1, "id0", {"id0"}, {"t2", "t0"}, ["t1"]),
]


@pytest.mark.parametrize(
    ("what", "candidates", "keep", "latest", "in_use", "kept", "removed"),
    CASES,
    ids=[c[0] for c in CASES],
)
def test_retention_rule(what, candidates, keep, latest, in_use, kept, removed):
    plan = plan_retention(candidates, keep=keep, latest_id=latest, in_use=in_use)
    assert set(plan.keep) == kept
    assert plan.remove == removed
    assert set(plan.keep).isdisjoint(plan.remove)
    assert len(plan.keep) + len(plan.remove) == len(candidates)


def test_reasons_and_order():
    plan = plan_retention(tags(5), keep=1, latest_id="id0", in_use={"id2"})
    assert plan.keep == {"t4": "newest", "t2": "in use", "t0": "latest"}
    assert [c.tag for c in newest_first(tags(3))] == ["t2", "t1", "t0"]
    # input order does not matter
    shuffled = list(reversed(tags(5)))
    assert plan_retention(shuffled, keep=2, latest_id=None, in_use=set()).remove == [
        "t2",
        "t1",
        "t0",
    ]


def test_negative_keep_is_refused():
    with pytest.raises(ValueError, match="0 or more"):
        plan_retention(tags(1), keep=-1, latest_id=None, in_use=set())


def test_pin_manifest_keeps_content_and_adds_annotation():
    raw = json.dumps({"schemaVersion": 2, "config": {"digest": "sha256:c"}, "layers": []}).encode()
    pinned = json.loads(pin_manifest(raw, pinned="r/x:abc"))
    assert pinned["config"] == {"digest": "sha256:c"} and pinned["layers"] == []
    assert pinned["annotations"] == {PIN_ANNOTATION: "r/x:abc"}
    assert pin_manifest(raw, pinned="r/x:abc") != raw


def test_disk_report_counts_shared_layers_once():
    df = {
        "Images": [
            {
                "Id": "a",
                "Size": 100,
                "SharedSize": 80,
                "Labels": {"repo2docker-service.owner": "x"},
            },
            {
                "Id": "b",
                "Size": 110,
                "SharedSize": 80,
                "Labels": {"repo2docker-service.owner": "x"},
            },
            {"Id": "base", "Size": 80, "SharedSize": 80, "Labels": {}},
        ]
    }
    report = disk_report(df, now=1.0)
    assert (report.images, report.size, report.shared) == (2, 20 + 30 + 80, 80)
    assert report.reclaimable(["a"]) == 20 and report.reclaimable(["a", "b", "zz"]) == 50


@pytest.mark.parametrize(
    ("body", "expected"),
    [({"tag": "0123456789ab"}, "0123456789ab"), ({"tag": None}, None)],
)
def test_latest_body(body, expected):
    assert parse_latest_body(body) == expected


@pytest.mark.parametrize(
    "body",
    [{}, {"tag": 3}, {"tag": "-x"}, {"tag": "a b"}, {"tag": "x" * 200}, {"tag": "a", "more": 1}],
)
def test_latest_body_refused(body):
    with pytest.raises(InvalidInput):
        parse_latest_body(body)


@pytest.mark.parametrize(("body", "dry"), [({}, False), ({"dry_run": True}, True)])
def test_prune_body(body, dry):
    assert parse_prune_body(body) is dry


@pytest.mark.parametrize("body", [{"dry_run": "yes"}, {"dry_run": 1}, {"keep": 2}])
def test_prune_body_refused(body):
    with pytest.raises(InvalidInput):
        parse_prune_body(body)
