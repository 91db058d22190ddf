"""Run the one-machine demo: hub + repo2docker-service + the bundled example repo.

Started by scripts/demo.sh after setup.sh. Serves examples/hello over smart HTTP on
127.0.0.1 (scripts/git_http.py, the git server the tests use too), starts JupyterHub with
deploy/demo/jupyterhub_config.py, builds the example through the service's API as the
demo user, prints where to log in, and runs until Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from scripts.git_http import GitHTTPServer, files_from_dir  # noqa: E402

STATE = Path(os.environ.get("R2DS_DEMO_STATE", "/var/lib/repo2docker-service-dev/demo"))


def wait_for(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.5)
    raise SystemExit(f"{url} did not answer within {timeout:.0f} s; see {STATE}/hub.log")


def stop_stale_processes() -> None:
    """Stop a hub or proxy an earlier demo left running (it would hold the ports)."""
    for name in ("jupyterhub.pid", "proxy.pid"):
        path = STATE / name
        try:
            pid = int(path.read_text().strip())
        except (OSError, ValueError):
            continue
        try:
            os.kill(pid, signal.SIGTERM)
            print(f"Stopped a {name[:-4]} left by an earlier demo (pid {pid})", flush=True)
            time.sleep(1)
        except ProcessLookupError:
            pass
        path.unlink(missing_ok=True)


def demo_password() -> str:
    path = STATE / "demo-password"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(9))
        path.chmod(0o600)
    return path.read_text().strip()


def start_hub(url: str, password: str) -> subprocess.Popen[bytes]:
    """Start JupyterHub with deploy/demo/jupyterhub_config.py (it starts the service)."""
    env = {
        **os.environ,
        "R2DS_DEMO_STATE": str(STATE),
        "R2DS_DEMO_URL": url,
        "R2DS_DEMO_PASSWORD": password,
        "REPO2DOCKER_SERVICE_CONFIG": str(REPO / "deploy/demo/repo2docker_service_config.py"),
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
    }
    with open(STATE / "hub.log", "a") as log:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyterhub",
                "-f",
                str(REPO / "deploy/demo/jupyterhub_config.py"),
            ],
            cwd=STATE,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def print_banner(url: str, service: str, password: str, example_url: str) -> None:
    """Where the demo runs and how to log in."""
    print(
        f"""
repo2docker-service demo is up.

  Hub:          {url}
  Environments: {service}
  Logins:       demo / {password}   (may build)
                admin / {password}  (admin: all environments, shared ones)
  Example repo: {example_url}  (paste it into "Add environment")
  Hub log:      {STATE}/hub.log

Press Ctrl-C to stop.""",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="URL the hub listens on")
    parser.add_argument("--no-build", action="store_true", help="do not build the example")
    args = parser.parse_args()

    STATE.mkdir(parents=True, exist_ok=True)
    stop_stale_processes()
    password = demo_password()
    git = GitHTTPServer(tempfile.mkdtemp(prefix="r2ds-demo-git-")).start()
    example_url = git.create_repo("examples/hello", files_from_dir(REPO / "examples" / "hello"))

    hub = start_hub(args.url, password)
    service = args.url.rstrip("/") + "/services/repo2docker/"
    try:
        wait_for(service + "health")
        print_banner(args.url, service, password, example_url)
        image = None
        if not args.no_build:
            image = build_example(args.url, service, example_url)
        print_launch_links(args.url, service, example_url, image)
        stop_signals = {signal.SIGINT, signal.SIGTERM}
        signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)  # so sigwait gets them
        signal.sigwait(stop_signals)
    except KeyboardInterrupt:
        pass
    finally:
        print("Stopping the hub ...", flush=True)
        hub.send_signal(signal.SIGTERM)
        try:
            hub.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(hub.pid, signal.SIGKILL)
        git.stop()


def print_launch_links(hub_url: str, service: str, example_url: str, image: str | None) -> None:
    """Where to start the example: the launch link (builds if needed) and the spawn URL."""
    launch = (
        service
        + "launch?"
        + urllib.parse.urlencode({"repo": example_url, "ref": "main", "name": "hello"})
    )
    lines = ["", "Start the example (log in as demo first):", f"  Launch link:  {launch}"]
    if image:
        spawn = f"{hub_url.rstrip('/')}/hub/spawn/demo/hello?" + urllib.parse.urlencode(
            {"image": image}
        )
        lines.append(f"  Spawn URL:    {spawn}")
    lines.append("  Or pick it on the hub's spawn page: " + hub_url.rstrip("/") + "/hub/spawn")
    print("\n".join(lines), flush=True)


def build_example(hub_url: str, service: str, example_url: str) -> str | None:
    """Build the bundled example as the demo user through the API, showing progress.

    Returns the image reference, or None if the build did not succeed.
    """
    token = demo_token(hub_url)
    headers = {"Authorization": f"token {token}", "Content-Type": "application/json"}
    body = json.dumps({"repo": example_url, "ref": "main", "name": "hello"}).encode()
    req = urllib.request.Request(service + "api/builds", data=body, headers=headers)
    with urllib.request.urlopen(req, timeout=60) as resp:
        result = json.loads(resp.read())
    if result["cached"]:
        image: str = result["image"]["image"]
        print(f"Example already built: {image}", flush=True)
        return image
    build = result["build"]
    print(f"Building the example ({build['image']}) ...", flush=True)
    req = urllib.request.Request(service + f"api/builds/{build['id']}/events", headers=headers)
    with urllib.request.urlopen(req, timeout=3600) as resp:
        for raw in resp:
            line = raw.decode(errors="replace").rstrip("\n")
            if line.startswith("data: "):
                data = json.loads(line[6:])
                if "message" in data and data.get("message"):
                    print("  " + data["message"].rstrip(), flush=True)
                if data.get("state") in ("built", "failed", "cancelled"):
                    print(f"Example build {data['state']}: {data.get('image')}", flush=True)
                    return data.get("image") if data["state"] == "built" else None
    return None


def demo_token(hub_url: str) -> str:
    """An API token for the demo user, from `jupyterhub token` on the demo's database."""
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "jupyterhub",
            "token",
            "demo",
            "-f",
            str(REPO / "deploy/demo/jupyterhub_config.py"),
        ],
        cwd=STATE,
        env={**os.environ, "R2DS_DEMO_STATE": str(STATE), "R2DS_DEMO_PASSWORD": "x"},
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip().splitlines()[-1]


if __name__ == "__main__":
    main()
