"""The service's index in the registry: its merge rule (a table of variants), its JSON form,
and the index repository's name. Reading and writing it against a registry: in
tests/unit/test_registry.py (in-process fake) and tests/integration (the real registry).
"""

from __future__ import annotations

import itertools

import pytest

from repo2docker_service.images.naming import ImageNamer, unescape_owner
from repo2docker_service.images.registry.errors import RegistryError
from repo2docker_service.images.registry.index import (
    TOMBSTONE_TTL,
    ImageFacts,
    IndexState,
    TagEntry,
    merge,
)

D1, D2 = "sha256:" + "1" * 64, "sha256:" + "2" * 64
NOW = 1_800_000_000.0
FACTS = {D1: ImageFacts(labels={"k": "1"}, size=1), D2: ImageFacts(labels={"k": "2"}, size=2)}


def add(tag: str, digest: str, at: float, repo: str = "r2d-a/env") -> IndexState:
    """``tag`` at ``digest``, seen ``at`` seconds after NOW - 100 (absolute below 1e9)."""
    at = at if at > 1e9 else NOW - 100 + at
    return IndexState(
        repositories={repo: {tag: TagEntry(digest=digest, at=at)}},
        images={digest: FACTS[digest]},
    )


def delete(tag: str, at: float, repo: str = "r2d-a/env") -> IndexState:
    at = at if at > 1e9 else NOW - 100 + at
    return IndexState(repositories={repo: {tag: TagEntry(digest="", at=at, deleted=True)}})


# (first writer, second writer, what the merge lists: repository -> tag -> digest)
MERGES = [
    ("add/add, two tags", add("c1", D1, 1), add("c2", D2, 2), {"r2d-a/env": {"c1": D1, "c2": D2}}),
    ("add/add, two repos", add("c1", D1, 1), add("c1", D2, 1, "r2d-b/env"),
     {"r2d-a/env": {"c1": D1}, "r2d-b/env": {"c1": D2}}),
    ("add then delete", add("c1", D1, 1), delete("c1", 2), {}),
    ("delete then add (rebuilt)", delete("c1", 1), add("c1", D1, 2), {"r2d-a/env": {"c1": D1}}),
    ("delete seen later than an old add", add("c1", D1, 5), delete("c1", 6), {}),
    ("same tag, different digest: later wins", add("latest", D1, 1), add("latest", D2, 2),
     {"r2d-a/env": {"latest": D2}}),
    ("same tag, same time: larger digest", add("latest", D2, 3), add("latest", D1, 3),
     {"r2d-a/env": {"latest": D2}}),
    ("add and delete at the same time: delete", add("c1", D1, 4), delete("c1", 4), {}),
]  # fmt: skip


@pytest.mark.parametrize(("first", "second", "listed"), [m[1:] for m in MERGES],
                         ids=[m[0] for m in MERGES])  # fmt: skip
def test_merge_rule(first, second, listed):
    # the result is the same in either order (writers merge in any order)
    for a, b in itertools.permutations([first, second]):
        merged = merge(a, b, now=NOW)
        assert merged.live() == listed
        used = {d for tags in listed.values() for d in tags.values()}
        assert set(merged.images) == used  # facts of unused digests are dropped


def test_merge_is_associative_and_idempotent():
    states = [add("c1", D1, 1), delete("c1", 2), add("c1", D2, 3), add("c2", D1, 1)]
    one = merge(*states, now=NOW).to_bytes()
    for order in itertools.permutations(states):
        assert merge(merge(*order[:2], now=NOW), *order[2:], now=NOW).to_bytes() == one
    assert merge(merge(*states, now=NOW), *states, now=NOW).to_bytes() == one


def test_a_delete_is_not_resurrected_by_an_older_copy():
    # writer B read the index before A deleted c1, and writes back its old copy with c2
    before = add("c1", D1, 1)
    after_delete = merge(before, delete("c1", 5), now=NOW)
    b_writes = merge(before, add("c2", D2, 6), now=NOW)
    assert merge(after_delete, b_writes, now=NOW).live() == {"r2d-a/env": {"c2": D2}}


def test_tombstones_expire():
    old = delete("c1", NOW - TOMBSTONE_TTL - 1)
    young = delete("c2", NOW - 10)
    merged = merge(old, young, now=NOW)
    assert list(merged.repositories["r2d-a/env"]) == ["c2"]
    assert merge(delete("c1", NOW - TOMBSTONE_TTL - 1), now=NOW).repositories == {}


def test_covers():
    state = merge(add("c1", D1, 2), add("c2", D2, 2), now=NOW)
    assert state.covers(add("c1", D1, 2)) and state.covers(add("c1", D1, 1))
    assert state.covers(add("c1", D1, 3))  # seen again later: nothing to write
    assert not state.covers(add("c1", D2, 3))  # a newer digest is not in it yet
    assert state.covers(add("c1", D2, 1))  # an older one is beaten
    assert not state.covers(add("c3", D1, 1))
    assert not state.covers(delete("c1", 2))  # a tombstone beats an add at the same time


def test_json_round_trip_and_bad_entries():
    state = merge(add("c1", D1, 1.5), delete("c2", 2), now=NOW)
    raw = state.to_bytes()
    assert IndexState.from_bytes(raw, where="x").to_bytes() == raw
    assert b" " not in raw and raw.index(b'"images"') < raw.index(b'"repositories"')  # sorted
    bad = (
        b'{"version": 1, "repositories": {"r": {"t": {"digest": "md5:x", "at": 1},'
        b' "u": {"at": "x"}, "v": [], "w": {"digest": "' + D1.encode() + b'", "at": 1}}},'
        b' "images": []}'
    )
    parsed = IndexState.from_bytes(bad, where="x")
    assert parsed.live() == {"r": {"w": D1}} and parsed.images == {}
    for raw in (b"[]", b"nope", b'{"version": 2}'):
        with pytest.raises(RegistryError):
            IndexState.from_bytes(raw, where="the index")


INDEX = "x-index/service__index"


@pytest.mark.parametrize(
    ("template", "registry", "expected"),
    [
        ("{registry}{prefix}{owner}/{name}:{tag}", "reg.example", f"reg.example/r2d-{INDEX}"),
        (
            "{registry}myorg/{prefix}{owner}-{name}:{tag}",
            "docker.io",
            "docker.io/myorg/r2d-x-index-service__index",
        ),
        ("{registry}org/{prefix}{owner}/{name}:{tag}", "127.0.0.1:5000", f"127.0.0.1:5000/org/r2d-{INDEX}"),  # noqa: E501
    ],
)  # fmt: skip
def test_index_repository_is_never_an_environment(template, registry, expected):
    namer = ImageNamer(template=template, registry=registry, prefix="r2d-")
    assert namer.index_repository() == expected
    assert namer.parse(expected) is None  # never listed as an environment
    with pytest.raises(ValueError):
        unescape_owner("x-index")  # no username escapes to its owner part
