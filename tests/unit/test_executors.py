"""LocalExecutor against a stand-in for the repo2docker command (a small Python script).

The stand-in prints like ``repo2docker --json-logs`` does, spawns children in its process
group and can ignore SIGTERM, so streaming, parsing, failure reasons and process-group
killing are tested without Docker (the integration tests do it with the real thing).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest
from traitlets import TraitError

from repo2docker_service.builds.executors import (
    BuildFailed,
    DockerExecutor,
    Executor,
    LocalExecutor,
)
from repo2docker_service.builds.executors.exits import exit_cause
from repo2docker_service.builds.executors.local import default_repo2docker_command
from repo2docker_service.builds.executors.output import OutputParser
from repo2docker_service.builds.model import Build
from repo2docker_service.sources import GitCredentials
from tests.rig.procs import processes_with
from tests.rig.wait import wait_for

SECRET = "pw-" + uuid.uuid4().hex

FAKE = textwrap.dedent(
    r"""
    import json, os, signal, subprocess, sys, time
    mode = os.environ["FAKE_MODE"]
    with open(os.environ["FAKE_OUT"], "w") as f:
        json.dump({"argv": sys.argv[1:], "cwd": os.getcwd(), "env": dict(os.environ)}, f)
    def j(message, **kw):
        sys.stderr.write(json.dumps({"message": message, **kw}) + "\n")
        sys.stderr.flush()
    j("Picked Git content provider.\n")
    sys.stdout.write("plain line\nprogress 1\rprogress 2\r\nlast plain\n")
    sys.stdout.flush()
    j("#1 two\n#1 lines\n", phase="building")
    if mode == "ok":
        time.sleep(0.5)
        j("#9 DONE 0.1s\n", phase="building")
        sys.exit(0)
    if mode == "fail":
        j("#5 ERROR: process did not complete successfully: exit code: 3\n", phase="building")
        j("ERROR: failed to solve: exit code: 3\n", phase="building")
        j("Error during build: Command [...] returned non-zero exit status 1.", phase="failed",
          exc_info="Traceback (most recent call last):\n  File x\nCalledProcessError")
        sys.exit(1)
    if mode == "killed":  # as the kernel's OOM killer does it: SIGKILL, not a word
        os.kill(os.getpid(), signal.SIGKILL)
    if mode == "ignore-term":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1000)",
                              os.environ["FAKE_TOKEN"]])
    j("child started\n", phase="building")
    while True:
        time.sleep(0.1)
    """
)


@pytest.fixture
def fake(tmp_path):
    script = tmp_path / "fake_repo2docker.py"
    script.write_text(FAKE)
    return script


def make_build() -> Build:
    return Build(
        owner="alice",
        owner_slug="alice",
        name="env",
        repo="https://git.example.org/alice/env",
        ref="main",
        commit="c" * 40,
        image="r2d-alice/env:cccccccccccc",
        latest_image="r2d-alice/env:latest",
    )


def make_executor(fake: Path, tmp_path: Path, mode: str, **kw) -> tuple[LocalExecutor, dict]:
    token = f"fake-child-{uuid.uuid4().hex}"
    env = {
        "FAKE_MODE": mode,
        "FAKE_OUT": str(tmp_path / "out.json"),
        "FAKE_TOKEN": token,
    }
    executor = LocalExecutor(
        repo2docker_command=[sys.executable, str(fake)],
        env=env,
        kill_grace_period=kw.pop("kill_grace_period", 2),
        **kw,
    )
    return executor, {"token": token, "out": tmp_path / "out.json"}


async def run(executor, build, lines, **kw):
    def on_line(kind, data):
        lines.append((time.monotonic(), kind, data))

    args = dict(push=False, cache_from=[], labels={"k": "v"}, credentials=None)
    args.update(kw)
    await executor.build(build, on_line=on_line, **args)


# ----------------------------------------------------------------------------- pure parts


def test_command_line_shape():
    executor = LocalExecutor(
        repo2docker_command=["/opt/r2d"],
        build_user_id=1001,
        build_user_name="joyvan",
        repo2docker_extra_args=["--Repo2Docker.platform=linux/amd64"],
        repo2docker_config="/etc/r2d.py",
    )
    build = make_build()
    argv = executor.command_line(
        build,
        push=True,
        cache_from=["r2d-alice/env:latest"],
        labels={"a.b": "x=y", "c": ""},
    )
    assert argv == [
        "/opt/r2d",
        "--no-run",
        "--json-logs",
        "--user-id",
        "1001",
        "--user-name",
        "joyvan",
        "--image-name",
        "r2d-alice/env:cccccccccccc",
        "--ref",
        "c" * 40,
        "--label",
        "a.b=x=y",
        "--label",
        "c=",
        "--build-arg",
        "BUILDKIT_INLINE_CACHE=1",
        "--cache-from",
        "r2d-alice/env:latest",
        "--push",
        "--config",
        "/etc/r2d.py",
        "--Repo2Docker.platform=linux/amd64",
        "--",
        "https://git.example.org/alice/env",
    ]
    plain = LocalExecutor(repo2docker_command=["r2d"]).command_line(
        build, push=False, cache_from=[], labels={}
    )
    assert "--push" not in plain and "--config" not in plain and plain[-2:] == ["--", build.repo]


def test_repo2docker_parses_our_argv():
    """repo2docker's own parser reads the repo after ``--`` and the options before it."""
    from repo2docker.__main__ import get_argparser

    executor = LocalExecutor(repo2docker_command=["repo2docker"])
    argv = executor.command_line(
        make_build(), push=True, cache_from=["x/y:latest"], labels={"a": "b"}
    )
    args, unknown = get_argparser().parse_known_args(argv[1:])
    assert args.repo == "https://git.example.org/alice/env" and args.cmd == []
    assert args.ref == "c" * 40 and args.image_name == "r2d-alice/env:cccccccccccc"
    assert args.labels == ["a=b"] and args.cache_from == ["x/y:latest"] and args.push is True
    assert args.run is False and args.json_logs is True and unknown == []


def test_constructor_checks():
    with pytest.raises(TraitError, match=r"'build_user_id'.* less than 1"):
        LocalExecutor(build_user_id=0)
    with pytest.raises(ValueError):
        LocalExecutor(repo2docker_extra_args=["--", "x"])
    assert default_repo2docker_command()[0].endswith("repo2docker")


def test_every_executor_option_has_help():
    own = (Executor, LocalExecutor, DockerExecutor)
    for cls in own[1:]:
        traits = cls.class_traits()
        missing = [
            name
            for name, trait in traits.items()
            if trait.this_class in own and not (trait.help or "").strip()
        ]
        assert missing == [], cls
        assert {"repo2docker_config", "build_user_id", "registry", "instance"} <= set(traits)


def test_process_env_is_private_copy(monkeypatch):
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "hub-token")
    monkeypatch.setenv("REPO2DOCKER_SERVICE_REGISTRY_PASSWORD", "reg-pw")
    monkeypatch.setenv("KEEP_ME", "1")
    monkeypatch.setenv("DROP_ME", "1")
    before = dict(os.environ)
    executor = LocalExecutor(env={"EXTRA": "x", "DROP_ME": None})
    creds = GitCredentials("bob", SECRET)
    env = executor.process_env(credentials=creds, tmpdir="/tmp/x", repo="https://h.example/r")
    assert dict(os.environ) == before
    assert "JUPYTERHUB_API_TOKEN" not in env and "REPO2DOCKER_SERVICE_REGISTRY_PASSWORD" not in env
    assert env["KEEP_ME"] == "1" and env["EXTRA"] == "x" and "DROP_ME" not in env
    assert env["TMPDIR"] == "/tmp/x" and env["GIT_TERMINAL_PROMPT"] == "0"
    assert SECRET in env.values()  # handed to git through the environment only
    assert env["GIT_CONFIG_KEY_1"] == "credential.https://h.example.helper"
    assert SECRET not in "".join(env.get(f"GIT_CONFIG_VALUE_{n}", "") for n in range(2))
    assert SECRET not in " ".join(
        executor.command_line(make_build(), push=False, cache_from=[], labels={})
    )


# ----------------------------------------------------------------------------- running


async def test_streams_and_parses_output(fake, tmp_path):
    executor, info = make_executor(fake, tmp_path, "ok")
    lines = []
    t0 = time.monotonic()
    await run(executor, make_build(), lines, credentials=GitCredentials("bob", SECRET))
    end = time.monotonic()
    messages = [data["message"] for _, kind, data in lines if kind == "log"]
    assert {kind for _, kind, _ in lines} <= {"log", "progress"}
    assert messages[0] == "Picked Git content provider."
    # a progress frame overwritten with \r is not a line of its own (as in a terminal)
    assert "plain line" in messages and "progress 1" not in messages and "progress 2" in messages
    assert "#1 two" in messages and "#1 lines" in messages
    assert messages[-1] == "#9 DONE 0.1s"
    assert all("\n" not in m and "\r" not in m and m for m in messages)
    # streamed: the early lines arrived well before the process ended (it sleeps 0.5 s)
    assert lines[0][0] - t0 < end - t0 - 0.3
    seen = json.loads(info["out"].read_text())
    assert seen["argv"][-2:] == ["--", "https://git.example.org/alice/env"]
    assert SECRET not in " ".join(seen["argv"])
    assert seen["env"]["R2DS_GIT_PASSWORD"] == SECRET  # via env only
    assert not Path(seen["cwd"]).exists()  # the per-build directory was removed
    assert seen["env"]["TMPDIR"] == seen["cwd"]


async def test_failure_reason_is_the_error_line(fake, tmp_path):
    executor, _ = make_executor(fake, tmp_path, "fail")
    lines = []
    with pytest.raises(BuildFailed) as failed:
        await run(executor, make_build(), lines)
    assert failed.value.reason == (
        "repo2docker exited with status 1: ERROR: failed to solve: exit code: 3"
    )
    messages = [data["message"] for _, _, data in lines]
    assert "CalledProcessError" in messages  # exc_info lines are kept in the log


async def test_killed_repo2docker_says_so(fake, tmp_path):
    """SIGKILL (what the OOM killer sends) is named in the reason and the log."""
    executor, _ = make_executor(fake, tmp_path, "killed")
    lines = []
    with pytest.raises(BuildFailed) as failed:
        await run(executor, make_build(), lines)
    cause = "repo2docker was killed (signal 9), possibly out of memory"
    assert failed.value.reason == f"{cause}; last output: #1 lines"
    assert [d["message"] for _, kind, d in lines if kind == "log"][-1] == cause


@pytest.mark.parametrize(
    ("returncode", "kw", "cause"),
    [
        (0, {}, None),
        (1, {}, None),
        (128, {}, None),
        (128 + 65, {}, None),  # beyond any signal
        (-9, {}, "repo2docker was killed (signal 9), possibly out of memory"),
        (137, {}, "repo2docker was killed (signal 9), possibly out of memory"),
        (
            137,
            {"memory_limit": 64 << 20},
            "repo2docker was killed (signal 9), possibly out of memory (limit 64M)",
        ),
        (
            137,
            {"memory_limit": 0},
            "repo2docker was killed (signal 9), possibly out of memory (no memory limit set)",
        ),
        (
            137,
            {"oom_killed": True, "memory_limit": 64 << 20},
            "repo2docker ran out of memory (limit 64M) and was killed (exit status 137)",
        ),
        (  # a child (git, buildx) was killed and repo2docker exited by itself
            1,
            {"oom_killed": True, "memory_limit": 3 << 30, "who": "the builder"},
            "the builder ran out of memory (limit 3G) and was killed (exit status 1)",
        ),
        (-15, {}, "repo2docker was killed (signal 15, SIGTERM)"),
        (143, {}, "repo2docker was killed (signal 15, SIGTERM)"),
        (130, {}, "repo2docker was killed (signal 2, SIGINT)"),
        (128 + 40, {}, "repo2docker was killed (signal 40)"),
    ],
)
def test_exit_cause(returncode, kw, cause):
    assert exit_cause(returncode, **kw) == cause


async def test_missing_command(tmp_path):
    executor = LocalExecutor(repo2docker_command=[str(tmp_path / "nope")])
    with pytest.raises(BuildFailed, match="could not start repo2docker"):
        await run(executor, make_build(), [])


@pytest.mark.parametrize("mode", ["hang", "ignore-term"])
async def test_cancel_kills_the_process_group(fake, tmp_path, mode):
    executor, info = make_executor(fake, tmp_path, mode, kill_grace_period=0.5)
    lines = []
    task = asyncio.create_task(run(executor, make_build(), lines))
    await wait_for(
        lambda: any(d["message"] == "child started" for _, _, d in lines),
        timeout=10,
        interval=0.05,
        what="the fake repo2docker's child to start",
    )
    assert processes_with(info["token"]), "the child should be running"
    t0 = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    took = time.monotonic() - t0
    assert processes_with(info["token"]) == []
    assert processes_with(str(tmp_path / "out.json")) == []
    if mode == "ignore-term":
        assert 0.4 < took < 3  # SIGTERM ignored: SIGKILL after the grace period
    else:
        assert took < 1.5
    seen = json.loads(info["out"].read_text())
    assert not Path(seen["cwd"]).exists()


def test_output_parser_joins_chunks_and_cuts_long_lines():
    """Both executors feed raw chunks: lines split across chunks are joined, a CRLF split
    across two chunks gives no empty line, over-long lines are cut, the tail is flushed."""
    got: list[str] = []
    parser = OutputParser(
        lambda kind, data: got.append(data["message"]) if kind == "log" else None,
        max_line_length=40,
    )
    for chunk in ["one\r", "\ntw", "o\n", '{"message": "json', ' line", "phase": "failed"}\n']:
        parser.feed_text(chunk)
    assert got == ["one", "two", "json line"]
    parser.feed_text("a" * 40 + "b" * 40 + "c" * 5)  # no newline yet: pieces of 40 go out
    assert got[3:] == ["a" * 40, "b" * 40]
    parser.feed_text("d")
    parser.close()
    assert got[5:] == ["cccccd"]
    assert parser.reason(1) == "repo2docker exited with status 1: json line"


@pytest.mark.parametrize(
    ("record", "stage"),
    [
        ({"message": "Picked Git content provider.", "phase": "fetching"}, "fetching"),
        ({"message": "Step 1/2 : FROM x", "phase": "building"}, "building"),
        ({"message": "Successfully pushed x", "phase": "pushing"}, "pushing"),
        # repo2docker's failure and run records name no step of the build
        ({"message": "Error during build", "phase": "failed"}, None),
        ({"message": "Container started", "phase": "running"}, None),
        ({"message": "no phase at all"}, None),
        ({"message": "an unknown phase", "phase": "launching"}, None),
    ],
)
def test_output_parser_keeps_repo2docker_stage(record, stage):
    """A --json-logs record's phase becomes the line's stage when it is a step of a build
    (BinderHub's protocol shows fetching/building/pushing from it)."""
    got: list[dict] = []
    parser = OutputParser(lambda kind, data: got.append(data))
    parser.feed(json.dumps(record))
    parser.feed("plain text line")
    expected = {"message": record["message"]} | ({"stage": stage} if stage else {})
    assert got == [expected, {"message": "plain text line"}]
