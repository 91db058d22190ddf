"""ImageIndex.by_repository: the per-repository lookup a cache hit makes answers exactly what a
scan of every item would, through any sequence of tag moves, re-tags and removals."""

from __future__ import annotations

import logging
import random

import pytest

from repo2docker_service.images.dockerindex import ImageIndex, repository_of
from repo2docker_service.images.labels import LABEL_OWNER
from repo2docker_service.images.naming import ImageNamer

REPOSITORIES = ["127.0.0.1:5000/r2d-alice/env", "r2d-alice/env", "r2d-bob/env", "r2d-bob/other"]


def scan(index: ImageIndex, repository: str) -> set[str]:
    """The old rule: every item with a tag in the repository."""
    return {
        image_id
        for image_id, item in index.items.items()
        if any(t.startswith(repository + ":") for t in item["RepoTags"])
    }


def looked_up(index: ImageIndex, repository: str) -> set[str]:
    return {index.by_tag[r] for r in index.by_repository.get(repository, ())}


@pytest.mark.parametrize(
    ("reference", "repository"),
    [
        ("r2d-alice/env:latest", "r2d-alice/env"),
        ("127.0.0.1:5000/r2d-alice/env:abc", "127.0.0.1:5000/r2d-alice/env"),
        ("registry.example:443/a/b/c:1.0", "registry.example:443/a/b/c"),
    ],
)
def test_repository_of(reference, repository):
    assert repository_of(reference) == repository


@pytest.mark.parametrize("seed", range(20))
def test_lookup_equals_a_full_scan_through_random_changes(seed):
    rng = random.Random(seed)
    index = ImageIndex(namer=ImageNamer(prefix="r2d-"), log=logging.getLogger("test"))
    for _ in range(300):
        op = rng.random()
        image_id = f"sha256:{rng.randrange(12):02d}"
        if op < 0.6:
            tags = {f"{rng.choice(REPOSITORIES)}:{rng.choice(['latest', 'a', 'b'])}"}
            if rng.random() < 0.3:
                tags.add(f"{rng.choice(REPOSITORIES)}:c")
            labels = {LABEL_OWNER: "alice"} if rng.random() < 0.9 else {}
            index.upsert({"Id": image_id, "RepoTags": sorted(tags), "Labels": labels})
        elif op < 0.8 and index.by_tag:
            index.drop_tag(rng.choice(sorted(index.by_tag)))
        else:
            index.drop_image(image_id)
        for repository in REPOSITORIES:
            assert looked_up(index, repository) == scan(index, repository)
        assert all(index.by_repository.values())  # no empty sets left behind
    index.clear()
    assert index.by_repository == {}
