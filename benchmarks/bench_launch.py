"""Benchmark: a launch link for an image that already exists, from the click to the user's
server answering, against a bare hub spawn of the same image, side by side in one run
(goal: launch / bare <= 1.05 by the medians).

A real hub with DockerSpawner (the service's helper, ``tests/rig/spawn.py``'s config,
containers on the host network) and the bundled example (``examples/hello``, built once).
Each round, in alternating order:

- **launch**: ``GET launch?repo=<url>&ref=main&name=hello`` on the service (through the
  proxy, with alice's token) answers the hub's spawn URL; that URL is requested as the
  browser would (token auth), and then ``/user/alice/hello/api/status`` is polled every
  50 ms until it answers 200;
- **bare**: the same hub spawn URL requested directly (what a user who knows the image's
  name would open), then the same polling.

The server is stopped and removed between runs (not timed). The hub's own spawn dominates
both; the difference is the service's launch handler (resolve the ref, find the image,
answer the redirect).

Run: .venv/bin/python benchmarks/bench_launch.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import goal_line, header, machine_line, note, remove_prefix

from tests.rig.api import build, request
from tests.rig.engine import check_base_image, check_docker
from tests.rig.git import GitHTTPServer, files_from_dir
from tests.rig.hub import start_hub
from tests.rig.net import no_proxy_opener
from tests.rig.parts import EXAMPLES_DIR, OFFLINE_CONFIG
from tests.rig.spawn import (
    IMAGE_PREFIX,
    RUN,
    SPAWNER_CONFIG,
    cleanup_docker,
    e2e_service_config,
)

GOAL = 1.05
SERVER = "hello"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return None


def get(url: str, token: str) -> tuple[int, str | None]:
    """(status, Location) of a GET that does not follow redirects."""
    opener = no_proxy_opener(_NoRedirect())
    req = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    try:
        with opener.open(req, timeout=120) as resp:
            return resp.status, resp.headers.get("Location")
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Location")


def absolute(hub_url: str, location: str) -> str:
    return urllib.parse.urljoin(hub_url + "/", location)


def until_answering(hub, token: str, timeout: float = 180) -> None:
    url = f"{hub.url}/user/alice/{SERVER}/api/status"
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if get(url, token)[0] == 200:
            return
        time.sleep(0.05)
    raise SystemExit(f"server not answering in {timeout} s:\n{hub.log_text()[-3000:]}")


def stop(hub, token: str) -> None:
    request(
        "DELETE",
        f"{hub.url}/hub/api/users/alice/servers/{SERVER}",
        token=token,
        body={"remove": True},
    )
    end = time.monotonic() + 60
    while time.monotonic() < end:
        status, model = request("GET", f"{hub.url}/hub/api/users/alice", token=token)
        if status == 200 and SERVER not in model.get("servers", {}):
            return
        time.sleep(0.2)


def launch_run(hub, link: str, token: str) -> float:
    start = time.monotonic()
    status, location = get(link, token)
    if status != 302 or not location:
        raise SystemExit(f"launch link answered {status}, not a redirect")
    get(absolute(hub.url, location), token)
    until_answering(hub, token)
    return time.monotonic() - start


def bare_run(hub, spawn_url: str, token: str) -> float:
    start = time.monotonic()
    get(spawn_url, token)
    until_answering(hub, token)
    return time.monotonic() - start


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    engine = check_docker()
    check_base_image()
    work = Path(tempfile.mkdtemp(prefix="r2ds-bench-launch-"))
    git = GitHTTPServer(work / "git").start()
    hub = start_hub(
        work / "hub",
        service_config=e2e_service_config(OFFLINE_CONFIG, git.base_url),
        extra_config=SPAWNER_CONFIG,
        env=engine.env,
    )
    try:
        header("launch link for an existing image vs a bare hub spawn (click to server answering)")
        note(machine_line())
        url = git.create_repo(f"bench-{RUN}/hello", files_from_dir(EXAMPLES_DIR / "hello"))
        start = time.monotonic()
        image = build(hub, "alice", repo=url, name=SERVER)
        note(f"example image {image['image']} ready in {time.monotonic() - start:.1f} s")
        token = hub.token_for("alice")
        link = (
            hub.service_url
            + "launch?"
            + urllib.parse.urlencode({"repo": url, "ref": "main", "name": SERVER})
        )
        status, location = get(link, token)
        assert status == 302 and location, (status, location)
        spawn_url = absolute(hub.url, location)
        note(f"spawn URL: {location}")
        times: dict[str, list[float]] = {"launch": [], "bare": []}
        for i in range(args.rounds):
            order = ("launch", "bare") if i % 2 == 0 else ("bare", "launch")
            for kind in order:
                run = (
                    launch_run(hub, link, token)
                    if kind == "launch"
                    else bare_run(hub, spawn_url, token)
                )
                times[kind].append(run)
                stop(hub, token)
            note(
                f"round {i + 1}: launch {times['launch'][-1]:.2f} s, bare {times['bare'][-1]:.2f} s"
            )
        launch, bare = statistics.median(times["launch"]), statistics.median(times["bare"])
        note(
            f"medians: launch {launch:.2f} s, bare {bare:.2f} s (difference {launch - bare:+.2f} s)"
        )
        pairs = [a / b for a, b in zip(times["launch"], times["bare"], strict=True)]
        note("pair ratios: " + ", ".join(f"{r:.2f}" for r in pairs))
        met = goal_line("launch link / bare hub spawn (medians)", launch / bare, GOAL)
        return 0 if met else 1
    finally:
        hub.stop()
        git.stop()
        cleanup_docker()
        removed = remove_prefix(IMAGE_PREFIX)
        note(f"(clean-up: removed {removed} image tags)")


if __name__ == "__main__":
    raise SystemExit(main())
