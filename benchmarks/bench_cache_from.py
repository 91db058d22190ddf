"""Benchmark 9: a notebook-only rebuild against the cold build, with and without --cache-from.

A repository whose Dockerfile installs its "requirements" (a slow ``RUN`` step that needs
no network: ``sleep`` and a few files, FROM the local base image) before it copies the
content. Each variant gets its own repository (its own marker in the ``RUN`` line, so no
cache crosses variants): a cold build on the default engine pushed to a registry of its
own, then one commit that changes only the notebook and the rebuild, through the service's
own ``BuildManager`` + ``LocalExecutor`` (the argv the service runs):

- (a) rebuild on the same engine, with the service's ``--cache-from`` / without it;
- (b) rebuild on a fresh engine (a second dockerd, ``tests/rig/remote_engine.py``) that has
  only the base image and the registry, with ``--cache-from`` / without it / with it but
  without inline cache metadata (``c.Executor.inline_build_cache = False``).

Each line prints rebuild / cold; goal <= 0.25 for (a) and (b) with ``--cache-from``.

Run: .venv/bin/python benchmarks/bench_cache_from.py [--sleep 15]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import BASE_IMAGE, OFFLINE_CONFIG, goal_line, header, machine_line, note

from repo2docker_service.builds.executors import LocalExecutor
from repo2docker_service.builds.manager import BuildManager
from repo2docker_service.builds.model import Build, BuildState
from repo2docker_service.builds.request import BuildRequest
from repo2docker_service.builds.store import BuildStore
from repo2docker_service.images.naming import DEFAULT_TEMPLATE, ImageNamer
from repo2docker_service.images.registry.catalog import RegistryCatalog
from repo2docker_service.images.registry.client import RegistryClient
from repo2docker_service.sources import resolve_ref
from tests.rig.git import start_git_http
from tests.rig.net import loopback_env
from tests.rig.registry import start_registry
from tests.rig.remote_engine import RemoteEngine

GOAL = 0.25
LOG = logging.getLogger("bench_cache_from")


class NoCacheFrom(LocalExecutor):
    """The LocalExecutor without ``--cache-from`` (the contrast rows only)."""

    def command_line(self, build: Build, *, cache_from: Sequence[str], **kw: Any) -> list[str]:
        return super().command_line(build, cache_from=[], **kw)


async def timed_build(executor: LocalExecutor, catalog: Any, namer: ImageNamer, url: str):
    manager = BuildManager(
        executor=executor,
        catalog=catalog,
        namer=namer,
        store=BuildStore(),
        resolver=functools.partial(resolve_ref, env=loopback_env()),
        allowed_repo_schemes=("http",),
        push=True,
        log=LOG,
    )
    await manager.start()
    try:
        t = time.perf_counter()
        result = await manager.submit(BuildRequest(owner="bench", repo=url))
        assert result.build is not None
        await asyncio.wait_for(result.build.wait(), 900)
        elapsed = time.perf_counter() - t
    finally:
        await manager.stop()
    if result.build.state is not BuildState.BUILT:
        raise RuntimeError(f"build failed: {result.build.log_text()[-2000:]}")
    return elapsed


async def variant(
    label: str, rebuild_env: Mapping[str, str], *, cache_from: bool, inline: bool, ctx: Any
) -> float:
    git, registry, config, sleep = ctx
    marker = f"req-{uuid.uuid4().hex[:10]}"
    install = f"RUN echo {marker} && sleep {sleep} && mkdir -p /opt/req && echo ok > /opt/req/ok"
    dockerfile = f"FROM {BASE_IMAGE}\n{install}\nCOPY . /home/content\n"
    name = f"bench/{marker}"
    url = git.create_repo(name, {"Dockerfile": dockerfile, "nb.ipynb": "{}\n"})
    namer = ImageNamer(template=DEFAULT_TEMPLATE, registry=registry.host, prefix="r2dbcf-")
    catalog = RegistryCatalog(namer=namer, client=RegistryClient(registry.host), log=LOG)
    common = {"repo2docker_config": config, "inline_build_cache": inline, "log": LOG}
    kind = LocalExecutor if cache_from else NoCacheFrom
    try:
        cold = await timed_build(LocalExecutor(env=loopback_env(), **common), catalog, namer, url)
        git.commit(name, {"nb.ipynb": '{"cells": []}\n'})
        rebuild = await timed_build(kind(env=dict(rebuild_env), **common), catalog, namer, url)
    finally:
        await catalog.close()
    ratio = rebuild / cold
    print(f"{label:<52} cold {cold:5.1f} s  rebuild {rebuild:5.1f} s  ratio {ratio:.2f}")
    return ratio


async def warm_up(git: Any, registry: Any, config: Path, engines: Mapping[str, Any]) -> None:
    """One small build on each engine first, so no row pays a first build's extra cost
    (buildx and BuildKit starting, the base image's first use in a build)."""
    namer = ImageNamer(template=DEFAULT_TEMPLATE, registry=registry.host, prefix="r2dbcf-")
    catalog = RegistryCatalog(namer=namer, client=RegistryClient(registry.host), log=LOG)
    try:
        for label, env in engines.items():
            marker = f"warm-{uuid.uuid4().hex[:10]}"
            url = git.create_repo(f"bench/{marker}", {"Dockerfile": f"FROM {BASE_IMAGE}\n"})
            executor = LocalExecutor(env=dict(env), repo2docker_config=config, log=LOG)
            seconds = await timed_build(executor, catalog, namer, url)
            note(f"(warm-up build on the {label} engine: {seconds:.1f} s)")
    finally:
        await catalog.close()


async def run(sleep: int, workdir: Path) -> bool:
    config = workdir / "repo2docker_config.py"
    config.write_text(
        OFFLINE_CONFIG.read_text()
        + '\nc.DockerEngine.extra_buildx_build_args = ["--network", "none"]\n'
    )
    git = start_git_http(workdir / "git")
    registry = start_registry(workdir / "registry")
    engine = RemoteEngine().start()
    try:
        engine.load(BASE_IMAGE)
        fresh = {**engine.env, **{k: loopback_env()[k] for k in ("NO_PROXY", "no_proxy")}}
        same = loopback_env()
        ctx = (git, registry, config, sleep)
        await warm_up(git, registry, config, {"same": same, "fresh": fresh})
        rows = [
            ("(a) same engine, --cache-from", same, True, True),
            ("(a) same engine, no --cache-from", same, False, True),
            ("(b) fresh engine + registry, --cache-from", fresh, True, True),
            ("(b) fresh engine + registry, no --cache-from", fresh, False, True),
            ("(b) fresh engine, --cache-from, no inline cache", fresh, True, False),
        ]
        ratios = [
            await variant(label, env, cache_from=cf, inline=inline, ctx=ctx)
            for label, env, cf, inline in rows
        ]
    finally:
        engine.stop()
        registry.stop()
        git.stop()
    met_a = goal_line("(a) rebuild / cold, same engine, --cache-from", ratios[0], GOAL)
    met_b = goal_line("(b) rebuild / cold, fresh engine, --cache-from", ratios[2], GOAL)
    return met_a and met_b


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sleep", type=int, default=15, help="seconds of the RUN step (>= 1)")
    args = parser.parse_args()
    header(f"9. notebook-only rebuild / cold build, RUN step {args.sleep} s ({machine_line()})")
    with tempfile.TemporaryDirectory(prefix="r2ds-bench-cachefrom-") as tmp:
        asyncio.run(run(max(1, args.sleep), Path(tmp)))
    note(f"after: {machine_line()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
