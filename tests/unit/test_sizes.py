"""Memory sizes: one parser for every memory field, one canonical form for spawners.

The forms people type (from the peers' bug reports: "16GB" refused by DockerSpawner, a hint
"2" taken as 2 bytes) go through the same rule wherever they enter: machine profiles, build
hints, ``default_memory_limit`` and ``c.DockerExecutor.builder_memory_limit``. The canonical
output is fed to JupyterHub's real ``ByteSpecification`` (DockerSpawner's and KubeSpawner's
``mem_limit``).
"""

from __future__ import annotations

import pytest
from dockerspawner import DockerSpawner
from jupyterhub.traitlets import ByteSpecification
from kubespawner import KubeSpawner
from traitlets import HasTraits, TraitError

from repo2docker_service.app import Repo2DockerService
from repo2docker_service.builds.executors import DockerExecutor
from repo2docker_service.builds.request import validate_hints
from repo2docker_service.errors import InvalidInput
from repo2docker_service.limits import normalize_profiles, resolve_limits
from repo2docker_service.sizes import (
    MIN_MEMORY,
    SizeError,
    canonical_memory,
    normalize_memory,
    parse_memory,
)

KI, MI, GI, TI = 1024, 1024**2, 1024**3, 1024**4

#: (typed, bytes, canonical)
ACCEPTED = [
    ("16GB", 16 * GI, "16G"),
    ("16G", 16 * GI, "16G"),
    ("16g", 16 * GI, "16G"),
    ("16Gi", 16 * GI, "16G"),
    ("16GiB", 16 * GI, "16G"),
    ("16 GiB", 16 * GI, "16G"),
    ("16 gb", 16 * GI, "16G"),
    (" 2G ", 2 * GI, "2G"),
    ("512MB", 512 * MI, "512M"),
    ("512m", 512 * MI, "512M"),
    ("512Mi", 512 * MI, "512M"),
    ("1.5G", int(1.5 * GI), "1536M"),
    (".5G", 512 * MI, "512M"),
    ("1.3G", int(1.3 * GI), f"{int(1.3 * GI) // KI}K"),
    ("65536K", 64 * MI, "64M"),
    ("1T", TI, "1T"),
    ("2048G", 2 * TI, "2T"),
    ("1024T", 1024 * TI, "1024T"),
    ("67108864", 64 * MI, "64M"),
    ("67108864B", 64 * MI, "64M"),
    (2 * GI, 2 * GI, "2G"),
    (float(3 * GI), 3 * GI, "3G"),
]

#: typed -> a piece of the refusal
REFUSED = [
    ("2", "add a unit, e.g. 2G"),
    (2, "add a unit"),
    ("1024", "below the minimum 64M"),
    ("63M", "below the minimum 64M"),
    ("0.01G", "below the minimum 64M"),
    ("two gigs", "not a size"),
    ("-1G", "not a size"),
    ("1X", "not a size"),
    ("1e9", "not a size"),
    ("1,5G", "not a size"),
    ("16 G B", "not a size"),
    ("16GBB", "not a size"),
    ("G", "not a size"),
    ("1025T", "above the maximum"),
    ("99999999999999999999", "not a size"),
    (float("inf"), "not a size"),
    (float("nan"), "not a size"),
    (-5, "not a size"),
    (True, "must be a string or a number"),
    (["1G"], "must be a string or a number"),
]


@pytest.mark.parametrize("typed, size, canonical", ACCEPTED)
def test_accepted_forms(typed, size, canonical):
    assert parse_memory(typed) == size
    assert normalize_memory(typed) == canonical
    # the canonical form reads back as itself
    assert normalize_memory(canonical) == canonical


@pytest.mark.parametrize("typed, why", REFUSED)
def test_refused_forms_say_why_and_name_the_accepted_ones(typed, why):
    with pytest.raises(SizeError) as e:
        parse_memory(typed, what="hint memory")
    assert why in str(e.value)
    assert "512M" in str(e.value) and "at least 64M" in str(e.value)
    assert str(e.value).startswith("hint memory")


@pytest.mark.parametrize("none", [None, "", "  ", 0, "0", "0G", 0.0])
def test_zero_and_empty_mean_no_limit(none):
    assert parse_memory(none) == 0
    assert normalize_memory(none) is None


def test_a_bare_number_is_gib_only_where_asked():
    assert parse_memory(2, bare_unit="G") == parse_memory("2", bare_unit="G") == 2 * GI
    assert parse_memory("512M", bare_unit="G") == 512 * MI
    with pytest.raises(SizeError):
        parse_memory(0.01, bare_unit="G")


SPAWNERS = [DockerSpawner, KubeSpawner]


@pytest.mark.parametrize("spawner", SPAWNERS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("typed, size, canonical", ACCEPTED)
def test_spawners_read_the_canonical_form_as_the_same_bytes(spawner, typed, size, canonical):
    """mem_limit of DockerSpawner and KubeSpawner (their real trait) takes our form."""
    trait = spawner.class_traits()["mem_limit"]
    assert trait.validate(HasTraits(), canonical) == size // KI * KI
    assert ByteSpecification().validate(HasTraits(), canonical) == size // KI * KI


@pytest.mark.parametrize("spawner", SPAWNERS, ids=lambda c: c.__name__)
def test_spawners_refuse_what_people_type_so_we_never_pass_it_on(spawner):
    """The reported 500: mem_limit refuses '16GB' (and would take '2' as 2 bytes)."""
    trait = spawner.class_traits()["mem_limit"]
    for typed in ("16GB", "16Gi", "16 GiB", "512MB"):
        with pytest.raises(TraitError):
            trait.validate(HasTraits(), typed)
    assert trait.validate(HasTraits(), 2) == 2


def test_canonical_form_rounds_down_to_whole_kib():
    assert canonical_memory(MIN_MEMORY + 1) == "64M"
    assert canonical_memory(MIN_MEMORY + KI) == "65537K"


@pytest.mark.parametrize(
    "hint, expected",
    [("16GB", "16G"), ("16 GiB", "16G"), ("1.5G", "1536M"), (2 * GI, "2G"), ("0", None)],
)
def test_build_hints_are_canonical(hint, expected):
    assert validate_hints({"memory": hint}).get("memory") == expected


@pytest.mark.parametrize("hint", ["2", 2, "1024", "lots", "1e9", "-1G"])
def test_bad_build_hints_are_a_400_naming_the_forms(hint):
    with pytest.raises(InvalidInput) as e:
        validate_hints({"memory": hint})
    assert e.value.status_code == 400
    assert "hint memory" in e.value.message and "2GB" in e.value.message


def test_machine_profiles_are_canonical_and_bare_numbers_are_gib():
    profiles = normalize_profiles(
        [
            {"name": "big", "memory": "16GB"},
            {"name": "tljh", "memory": 2},
            {"name": "str", "memory": "4"},
            {"name": "half", "memory": "1.5 GiB"},
            {"name": "none"},
        ]
    )
    assert [p["memory"] for p in profiles] == ["16G", "2G", "4G", "1536M", None]
    # normalizing twice changes nothing (the service hands normalized profiles around)
    assert normalize_profiles(profiles) == profiles
    with pytest.raises(ValueError, match="machine profile 'x': memory"):
        normalize_profiles([{"name": "x", "memory": "16 gigs"}])


def test_limits_handed_to_spawners_are_canonical():
    big = [{"name": "big", "memory": "16GB", "cpu": 2}]
    assert resolve_limits({"profile": "big"}, machine_profiles=big).memory == "16G"
    assert resolve_limits({}, default_memory="2GB").memory == "2G"
    assert resolve_limits({"memory": "1.5G"}, default_memory="2GB").memory == "1536M"
    assert resolve_limits({"memory": "8GiB"}, default_memory="2GB").memory == "2G"
    # a label written before sizes were checked ("2" = 2 bytes) gets the default
    assert resolve_limits({"memory": "2"}, default_memory="1G").to_dict()["memory"] == "1G"


@pytest.fixture
def app(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("REPO2DOCKER_SERVICE_CONFIG", raising=False)
    Repo2DockerService.clear_instance()
    yield Repo2DockerService
    Repo2DockerService.clear_instance()


def test_default_memory_limit_is_canonical_after_config_load(app, tmp_path):
    (tmp_path / "repo2docker_service_config.py").write_text(
        "c.Repo2DockerService.default_memory_limit = '16GB'\n"
    )
    service = app()
    service.initialize([])
    assert service.default_memory_limit == "16G"


@pytest.mark.parametrize("bad", ["2", "16 gigs", "63M"])
def test_bad_default_memory_limit_stops_the_service_at_start_up(app, tmp_path, bad, caplog):
    (tmp_path / "repo2docker_service_config.py").write_text(
        f"c.Repo2DockerService.default_memory_limit = {bad!r}\n"
    )
    with pytest.raises(SystemExit):
        app().initialize([])


@pytest.mark.parametrize(
    "setting",
    [
        "c.Repo2DockerService.machine_profiles = [{'name': 'x', 'memory': '16 gigs'}]",
        "c.Repo2DockerService.machine_profiles = [{'name': 'x', 'memory': '10M'}]",
        "c.Repo2DockerService.executor_class = 'repo2docker_service.builds.executors"
        ".DockerExecutor'\nc.DockerExecutor.builder_image = 'b'\n"
        "c.DockerExecutor.builder_memory_limit = '2'",
    ],
)
def test_bad_profiles_and_builder_limits_stop_the_service_at_start_up(app, tmp_path, setting):
    (tmp_path / "repo2docker_service_config.py").write_text(setting + "\n")
    service = app()
    service.initialize([])
    with pytest.raises(SystemExit):
        service.init_components()


def test_builder_memory_limit_is_canonical_and_reaches_the_container_spec():
    ex = DockerExecutor(
        builder_image="b", docker_host="tcp://127.0.0.1:2375", builder_memory_limit="2 GiB"
    )
    assert ex.builder_memory_limit == "2G"
    assert ex.spec.memory_limit == 2 * GI
    with pytest.raises(TraitError, match="builder_memory_limit"):
        DockerExecutor(builder_image="b", builder_memory_limit="512")
