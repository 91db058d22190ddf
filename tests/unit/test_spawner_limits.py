"""Limits for spawned servers: machine profile, hints (capped), defaults."""

import pytest

from repo2docker_service.limits import (
    memory_bytes,
    normalize_profiles,
    profile_slug,
    resolve_limits,
)

PROFILES = [
    {"name": "small", "display_name": "Small (1 CPU, 2 GB)", "cpu": 1, "memory": "2G"},
    {"label": "Large", "cpu": 8, "memory": 16},  # tljh-repo2docker style: memory in GB
]


@pytest.mark.parametrize(
    "value, expected",
    [
        (None, None),
        ("", None),
        ("512M", 512 * 1024**2),
        ("2G", 2 * 1024**3),
        ("1.5g", int(1.5 * 1024**3)),
        ("2GiB", 2 * 1024**3),
        ("67108864", 64 * 1024**2),
        (2**31, 2**31),
        ("0", None),
    ],
)
def test_memory_bytes(value, expected):
    assert memory_bytes(value) == expected


@pytest.mark.parametrize("bad", ["two gigs", "-1G", "1X", "1024", 2048])
def test_memory_bytes_rejects_nonsense(bad):
    with pytest.raises(ValueError):
        memory_bytes(bad)


def test_profiles_are_normalized():
    assert normalize_profiles(PROFILES) == [
        {"slug": "small", "display_name": "Small (1 CPU, 2 GB)", "cpu": 1.0, "memory": "2G"},
        {"slug": "large", "display_name": "Large", "cpu": 8.0, "memory": "16G"},
    ]
    assert profile_slug("Small (1 CPU)") == "small-1-cpu"
    with pytest.raises(ValueError):
        normalize_profiles([{"cpu": 1}])
    with pytest.raises(ValueError):
        normalize_profiles([{"name": "x", "memory": "lots"}])


def test_profile_hint_picks_the_machine_profile():
    limits = resolve_limits({"profile": "large"}, machine_profiles=PROFILES, default_cpu=1)
    assert limits.to_dict() == {
        "cpu": 8.0,
        "memory": "16G",
        "profile": "large",
        "source": "profile",
    }


def test_profile_without_memory_falls_back_to_the_default():
    limits = resolve_limits(
        {"profile": "p"},
        machine_profiles=[{"name": "p", "cpu": 2}],
        default_memory="1G",
    )
    assert (limits.cpu, limits.memory, limits.source) == (2.0, "1G", "profile")


def test_with_profiles_raw_hints_are_ignored():
    limits = resolve_limits(
        {"cpu": "64", "memory": "500G"},
        machine_profiles=PROFILES,
        default_cpu=1,
        default_memory="2G",
    )
    assert limits.to_dict() == {"cpu": 1.0, "memory": "2G", "profile": None, "source": "default"}


def test_unknown_profile_gives_defaults():
    limits = resolve_limits({"profile": "huge"}, machine_profiles=PROFILES, default_cpu=0.5)
    assert (limits.cpu, limits.memory, limits.profile) == (0.5, None, None)


def test_hints_without_profiles_are_capped_by_the_defaults():
    limits = resolve_limits({"cpu": "4", "memory": "8G"}, default_cpu=2, default_memory="4G")
    assert (limits.cpu, limits.memory, limits.source) == (2.0, "4G", "hints")
    limits = resolve_limits({"cpu": "0.5", "memory": "512M"}, default_cpu=2, default_memory="4G")
    assert (limits.cpu, limits.memory) == (0.5, "512M")


def test_hints_without_defaults_are_taken_as_they_are():
    limits = resolve_limits({"cpu": "3", "memory": "6G"})
    assert (limits.cpu, limits.memory, limits.source) == (3.0, "6G", "hints")


def test_no_hints_no_defaults_is_no_limit():
    assert resolve_limits({}).to_dict() == {
        "cpu": None,
        "memory": None,
        "profile": None,
        "source": "default",
    }
    assert resolve_limits(None, default_cpu=0, default_memory="").cpu is None


def test_malformed_hint_labels_fall_back_to_defaults():
    limits = resolve_limits({"cpu": "lots"}, default_cpu=1)
    assert (limits.cpu, limits.source) == (1.0, "default")
