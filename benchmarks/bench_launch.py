"""Benchmark: a launch link for an image that already exists, from the click to the user's
server answering, against a bare hub spawn of the same image, side by side in one run
(goal: launch / bare <= 1.05 by the medians).

A real hub with DockerSpawner (the service's helper, ``tests/rig/spawn.py``'s config,
containers on the host network) and the bundled example (``examples/hello``, built once).
Each round, in alternating order:

- **launch**: alice's Chromium (logged in at the hub, the service's OAuth cookie already
  set) opens ``launch?repo=<url>&ref=main&name=hello`` as a link clicked on a hub page
  (``Referer`` and so ``Sec-Fetch-Site: same-origin``); the service answers the hub's spawn
  URL and the hub spawns; timed until ``/user/alice/hello/api/status`` answers 200 through
  the proxy (polled every 50 ms with alice's token, redirects not followed);
- **bare**: the same browser opens the hub's spawn URL for the same image directly (what the
  launch link redirects to), timed to the same two points.

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
from playwright.sync_api import sync_playwright

from tests.rig.api import build, request
from tests.rig.browser import launch_chromium, login
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


def until_answering(hub, token: str, timeout: float = 240) -> None:
    """Poll the server's ``api/status`` (alice's token, no redirects) every 50 ms until 200."""
    url = f"{hub.url}/user/alice/{SERVER}/api/status"
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if get(url, token)[0] == 200:
            return
        time.sleep(0.05)
    raise SystemExit(f"server not answering in {timeout} s:\n{hub.log_text()[-3000:]}")


def timed_open(page, hub, url: str, *, referer: str, token: str) -> float:
    """Seconds from opening ``url`` in the browser to the server answering ``api/status``."""
    start = time.monotonic()
    page.goto(url, referer=referer, wait_until="commit")
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
        answers = []
        for _ in range(20):
            start = time.monotonic()
            get(link, token)
            answers.append(time.monotonic() - start)
        note(
            f"the launch link's own answer (the service's share: resolve, find, redirect), "
            f"p50 of 20: {1000 * statistics.median(answers):.1f} ms"
        )
        times: dict[str, list[float]] = {"launch": [], "bare": []}
        with sync_playwright() as p:
            browser = launch_chromium(p)
            page = browser.new_page()
            login(page, hub, "alice")
            page.goto(hub.service_url)  # the service's OAuth cookie, as after any visit
            referer = f"{hub.url}/hub/home"
            for i in range(args.rounds):
                order = ("launch", "bare") if i % 2 == 0 else ("bare", "launch")
                for kind in order:
                    target = link if kind == "launch" else spawn_url
                    times[kind].append(timed_open(page, hub, target, referer=referer, token=token))
                    page.goto(f"{hub.url}/hub/home")
                    stop(hub, token)
                note(
                    f"round {i + 1}: launch {times['launch'][-1]:.2f} s, "
                    f"bare {times['bare'][-1]:.2f} s"
                )
            browser.close()
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
