"""The pure repo2docker argv builder: settings and a build in, argv out (no I/O)."""

from __future__ import annotations

import pytest

from repo2docker_service.builds.executors import DockerExecutor, LocalExecutor
from repo2docker_service.builds.executors.argv import Repo2DockerArgv
from repo2docker_service.builds.executors.builder import BUILDER_CONFIG_PATH
from repo2docker_service.builds.model import Build

COMMIT = "c" * 40
IMAGE = "r2d-alice/env:cccccccccccc"
REPO = "https://git.example.org/alice/env"
HEAD = ["--no-run", "--json-logs"]


def make_build() -> Build:
    return Build(
        owner="alice",
        owner_slug="alice",
        name="env",
        repo=REPO,
        ref="main",
        commit=COMMIT,
        image=IMAGE,
        latest_image="r2d-alice/env:latest",
    )


#: every build writes BuildKit's inline cache metadata unless told not to
INLINE = ["--build-arg", "BUILDKIT_INLINE_CACHE=1"]


def user(uid: str = "1000", name: str = "jovyan") -> list[str]:
    return ["--user-id", uid, "--user-name", name, "--image-name", IMAGE, "--ref", COMMIT]


@pytest.mark.parametrize(
    ("settings", "options", "expected"),
    [
        (
            {"command": ("repo2docker",)},
            {},
            ["repo2docker", *HEAD, *user(), *INLINE, "--", REPO],
        ),
        (
            {"command": ("repo2docker",), "inline_cache": False},
            {"cache_from": ["a:latest"]},
            ["repo2docker", *HEAD, *user(), "--cache-from", "a:latest", "--", REPO],
        ),
        (
            {"command": ("/venv/bin/python", "-m", "repo2docker"), "user_id": 1001},
            {},
            ["/venv/bin/python", "-m", "repo2docker", *HEAD, *user("1001"), *INLINE, "--", REPO],
        ),
        (
            {"command": ("r2d",), "user_name": "joyvan"},
            {"push": True},
            ["r2d", *HEAD, *user(name="joyvan"), *INLINE, "--push", "--", REPO],
        ),
        (
            {"command": ("r2d",), "config_path": "/etc/r2d.py"},
            {"cache_from": ["a:latest", "b:latest"]},
            [
                "r2d",
                *HEAD,
                *user(),
                *INLINE,
                "--cache-from",
                "a:latest",
                "--cache-from",
                "b:latest",
                "--config",
                "/etc/r2d.py",
                "--",
                REPO,
            ],
        ),
        (
            {"command": ("r2d",), "extra_args": ("--build-memory-limit", "4G")},
            {"labels": {"k": "v=w", "empty": ""}, "push": True},
            [
                "r2d",
                *HEAD,
                *user(),
                "--label",
                "k=v=w",
                "--label",
                "empty=",
                *INLINE,
                "--push",
                "--build-memory-limit",
                "4G",
                "--",
                REPO,
            ],
        ),
    ],
)
def test_argv_table(settings, options, expected):
    args = {"push": False, "cache_from": [], "labels": {}, **options}
    assert Repo2DockerArgv(**settings).for_build(make_build(), **args) == expected


@pytest.mark.parametrize(
    "settings",
    [
        {"command": ()},
        {"command": ("r2d",), "user_id": 0},
        {"command": ("r2d",), "user_id": -5},
        {"command": ("r2d",), "extra_args": ("--", "x")},
    ],
)
def test_bad_settings_are_refused(settings):
    with pytest.raises(ValueError):
        Repo2DockerArgv(**settings)


def test_executors_compose_the_same_builder(tmp_path):
    """Both executors build the argv with the same builder; the container executor only
    names its own command and the config file's path inside the builder."""
    config = tmp_path / "r2d_config.py"
    config.write_text("c = get_config()\n")
    common = {
        "repo2docker_config": str(config),
        "repo2docker_extra_args": ["--Repo2Docker.platform=linux/amd64"],
        "build_user_id": 1001,
    }
    local = LocalExecutor(repo2docker_command=["/opt/r2d"], **common)
    docker = DockerExecutor(builder_image="b", docker_host="tcp://127.0.0.1:2375", **common)
    assert local.argv == Repo2DockerArgv(
        command=("/opt/r2d",),
        user_id=1001,
        extra_args=("--Repo2Docker.platform=linux/amd64",),
        config_path=str(config),
    )
    assert docker.argv == Repo2DockerArgv(
        command=("repo2docker",),
        user_id=1001,
        extra_args=("--Repo2Docker.platform=linux/amd64",),
        config_path=BUILDER_CONFIG_PATH,
    )
    build = make_build()
    options = {"push": True, "cache_from": ["x:latest"], "labels": {"a": "b"}}
    local_argv = local.command_line(build, **options)
    docker_argv = docker.command_line(build, **options)
    assert local_argv[1:] == [
        str(config) if a == BUILDER_CONFIG_PATH else a for a in docker_argv[1:]
    ]
    assert not LocalExecutor(inline_build_cache=False).argv.inline_cache
    no_config = DockerExecutor(builder_image="b", docker_host="tcp://127.0.0.1:2375")
    assert "--config" not in no_config.command_line(build, **options)
