"""ImageLabels: the one place image labels are written and read."""

from repo2docker_service.images.labels import LABEL_OWNER, LABEL_SHARED, ImageLabels
from repo2docker_service.images.naming import SCHEME_VERSION, SHARED_OWNER, escape_owner

FULL = ImageLabels(
    owner="alice",
    shared=False,
    name="analysis",
    display_name="My analysis",
    repo="https://example.org/a/analysis",
    ref="main",
    commit="a" * 40,
    built_at="2026-01-01T00:00:00Z",
    build_id="b1",
    hints={"memory": "2G", "cpu": "1"},
)


def test_round_trip():
    assert ImageLabels.parse(FULL.to_labels()) == FULL
    assert FULL.to_labels()[LABEL_SHARED] == "false"
    assert FULL.scheme == SCHEME_VERSION


def test_shared_writes_empty_owner():
    shared = ImageLabels(owner="admin", shared=True, name="base")
    labels = shared.to_labels()
    assert labels[LABEL_OWNER] == ""
    parsed = ImageLabels.parse(labels)
    assert parsed is not None and parsed.shared and parsed.owner == ""
    assert parsed.owner_slug() == SHARED_OWNER


def test_not_ours():
    assert ImageLabels.parse(None) is None
    assert ImageLabels.parse({}) is None
    assert ImageLabels.parse({"maintainer": "x"}) is None
    labels = FULL.to_labels()
    labels["repo2docker-service.name"] = ""
    assert ImageLabels.parse(labels) is None


def test_defaults_for_old_images():
    parsed = ImageLabels.parse({LABEL_OWNER: "bob", "repo2docker-service.name": "x"})
    assert parsed is not None
    assert parsed.display_name == "x" and parsed.scheme == "" and parsed.hints == {}
    assert parsed.owner_slug() == escape_owner("bob")


def test_unescapable_owner_has_no_slug():
    assert ImageLabels(owner="", shared=False, name="x").owner_slug() is None
