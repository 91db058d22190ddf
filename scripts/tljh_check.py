"""Check the TLJH plugin against The Littlest JupyterHub itself (run by hand; not in CI).

TLJH is not on PyPI, and its source cannot be fetched on the offline CI machines, so this is
a script, not a test. Given a checkout of github.com/jupyterhub/the-littlest-jupyterhub it:

1. lays out a hub environment as TLJH's installer does: ``<prefix>/hub`` is a venv of this
   Python with TLJH installed from the checkout, then TLJH's ``requirements-hub-env.txt``
   (without pycurl, which needs a compiler), then this project's wheel with its
   ``[dockerspawner]`` extra (what ``--plugin "repo2docker-service[dockerspawner]"`` installs);
2. starts JupyterHub with TLJH's own ``tljh/jupyterhub_config.py`` (which calls the plugin
   through TLJH's plugin manager) and, in ``config/jupyterhub_config.d/`` (TLJH's escape
   hatch), only what a machine without systemd and traefik needs: configurable-http-proxy,
   a loopback address, a dummy login and a client token;
3. checks that the service answers through the hub, that a hub admin holds the admin scope
   without any group, that a build of a Dockerfile repository (served over git on 127.0.0.1)
   succeeds, and that a server starts from it with the per-user volume mounted;
4. removes the server, the volume and the image.

Usage (as root, with Docker, buildx, configurable-http-proxy and a local/debian:bookworm base
image, as scripts/setup.sh provides)::

    .venv/bin/python scripts/tljh_check.py /path/to/the-littlest-jupyterhub [--keep DIR]

Measured on 2026-11-30 (TLJH at 84ed38f, its hub env with JupyterHub 5.5.4): service up in
14-16 s, build 58 s (4.5 s with the engine's layer cache), server answering 5.5-21 s after
the spawn request.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from scripts.git_http import GitHTTPServer, files_from_dir  # noqa: E402

OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def call(
    method: str, url: str, token: str, body: Any = None, timeout: float = 60
) -> tuple[int, Any]:
    """(status, parsed JSON or raw bytes); 0 when nothing answers."""
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Authorization": f"token {token}", "Content-Type": "application/json"}
    req = urllib.request.Request(url, method=method, data=data, headers=headers)
    try:
        with OPENER.open(req, timeout=timeout) as resp:
            raw = resp.read()
            status = int(resp.status)
    except urllib.error.HTTPError as e:
        raw, status = e.read(), e.code
    except OSError:
        return 0, None
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(*argv: str | Path) -> None:
    subprocess.run([str(a) for a in argv], check=True)


def hub_env(prefix: Path, tljh_source: Path, work: Path) -> Path:
    """The hub venv as TLJH's installer lays it out; returns its python."""
    python = prefix / "hub" / "bin" / "python"
    run(sys.executable, "-m", "venv", prefix / "hub")
    run(python, "-m", "pip", "install", "-q", tljh_source)
    requirements = (tljh_source / "tljh" / "requirements-hub-env.txt").read_text()
    reqs = work / "requirements-hub-env.txt"
    reqs.write_text("\n".join(ln for ln in requirements.splitlines() if "pycurl" not in ln))
    run(python, "-m", "pip", "install", "-q", "-r", reqs)
    dist = work / "dist"
    run(sys.executable, "-m", "build", "--no-isolation", "--wheel", "--outdir", dist, REPO)
    (wheel,) = dist.glob("*.whl")
    run(python, "-m", "pip", "install", "-q", f"{wheel}[dockerspawner]")
    return python


def write_config(prefix: Path, port: int, token: str, site: Path) -> None:
    """TLJH's escape hatch (config/jupyterhub_config.d) and the service's own config."""
    chp = shutil.which("configurable-http-proxy")
    if not chp:
        raise SystemExit("configurable-http-proxy not found: run scripts/setup.sh")
    confd = prefix / "config" / "jupyterhub_config.d"
    confd.mkdir(parents=True, exist_ok=True)
    (prefix / "state").mkdir(exist_ok=True)
    (confd / "zz-local.py").write_text(
        f"""# no systemd and no traefik binary here: the proxy and the address only
c.JupyterHub.proxy_class = "configurable-http-proxy"
c.ConfigurableHTTPProxy.command = [{chp!r}]
c.JupyterHub.bind_url = "http://127.0.0.1:{port}"
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allow_all = True
c.Authenticator.admin_users = {{"root1"}}
c.JupyterHub.services.append({{"name": "check-client", "api_token": {token!r}}})
c.JupyterHub.load_roles.append({{
    "name": "check-client",
    "scopes": ["admin:users", "tokens", "admin:servers"],
    "services": ["check-client"],
}})
"""
    )
    offline = site / "repo2docker_service" / "repo2docker_offline_config.py"
    (prefix / "config" / "repo2docker_service_config.py").write_text(
        'c.Repo2DockerService.allowed_repo_schemes = ["http", "https"]\n'
        f"c.Executor.repo2docker_config = {str(offline)!r}\n"
        'c.Repo2DockerService.image_prefix = "tljhcheck-"\n'
    )


def wait_for(what: str, check: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(1)
    raise SystemExit(f"{what}: not within {timeout:.0f} s")


def exercise(hub: str, token: str, repo_url: str, proc: subprocess.Popen[bytes]) -> str:
    """Steps 3 of the module docstring; returns the image built."""
    service = f"{hub}/services/repo2docker/"

    def up() -> bool:
        if proc.poll() is not None:
            raise SystemExit(f"the hub exited with {proc.returncode}")
        return call("GET", service + "health", token, timeout=3)[0] == 200

    start = time.monotonic()
    wait_for("the service through TLJH's hub", up, 120)
    print(f"service answers through TLJH's hub after {time.monotonic() - start:.1f} s")
    call("POST", f"{hub}/hub/api/users/root1", token)
    _, model = call("POST", f"{hub}/hub/api/users/root1/tokens", token, {"scopes": ["inherit"]})
    user_token = model["token"]
    _, info = call("GET", service + "api/info", user_token)
    assert info["user"]["scopes"] == ["admin", "build", "view"], info  # a hub admin, no group
    start = time.monotonic()
    status, result = call(
        "POST", service + "api/builds", user_token, {"repo": repo_url, "name": "hello"}
    )
    assert status == 202, result
    _, raw = call(
        "GET", service + f"api/builds/{result['build']['id']}/events", user_token, timeout=900
    )
    data = [ln for ln in raw.decode().splitlines() if ln.startswith("data: ")]
    done = json.loads(data[-1][6:])
    assert done["state"] == "built", done
    print(f"build: {done['state']} in {time.monotonic() - start:.1f} s: {done['image']}")
    start = time.monotonic()
    users = f"{hub}/hub/api/users/root1"
    status, _ = call("POST", users + "/servers/check", token, {"image": done["image"]})
    assert status in (201, 202), status
    wait_for(
        "the server",
        lambda: (call("GET", users, token)[1].get("servers") or {}).get("check", {}).get("ready"),
        180,
    )
    status, _ = call("GET", f"{hub}/user/root1/check/api/status", user_token)
    assert status == 200, status
    print(f"server answers {time.monotonic() - start:.1f} s after the spawn request")
    mounts = subprocess.run(
        ["docker", "inspect", "--format", "{{json .Mounts}}", "jupyter-root1--check"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert '"Name":"repo2docker-user-root1"' in mounts, mounts
    print("per-user volume repo2docker-user-root1 mounted at /home/jovyan/work")
    call("DELETE", users + "/servers/check", token, {"remove": True})
    return str(done["image"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("tljh_source", type=Path, help="a checkout of the-littlest-jupyterhub")
    parser.add_argument("--keep", type=Path, help="work directory to use and keep")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="tljh-check-"))
    prefix = work / "prefix"
    python = hub_env(prefix, args.tljh_source.resolve(), work)
    site = Path(
        subprocess.check_output(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True
        ).strip()
    )
    port, token = free_port(), secrets.token_hex(16)
    write_config(prefix, port, token, site)
    files = files_from_dir(REPO / "examples" / "hello")
    # TLJH's hub env runs JupyterHub 5: the image's jupyterhub-singleuser must be 5 too
    files["Dockerfile"] = files["Dockerfile"].replace('"jupyterhub==6.1.*"', '"jupyterhub==5.*"')
    git_root = tempfile.mkdtemp(prefix="tljh-check-git-")
    git = GitHTTPServer(git_root).start()
    env = {
        **os.environ,
        "TLJH_INSTALL_PREFIX": str(prefix),
        "PATH": f"{python.parent}:/usr/bin:/bin",
    }
    config = site / "tljh" / "jupyterhub_config.py"
    with open(work / "hub.log", "w") as log:
        proc = subprocess.Popen(
            [python, "-m", "jupyterhub", "-f", config],
            cwd=prefix / "state",
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    image = ""
    try:
        image = exercise(
            f"http://127.0.0.1:{port}", token, git.create_repo("tljh/hello", files), proc
        )
        print(f"OK (hub log: {work / 'hub.log'})")
    finally:
        proc.terminate()
        proc.wait(30)
        git.stop()
        shutil.rmtree(git_root, ignore_errors=True)
        time.sleep(2)
        subprocess.run(["docker", "volume", "rm", "repo2docker-user-root1"], capture_output=True)
        if image:
            subprocess.run(
                ["docker", "rmi", "-f", image, image.rsplit(":", 1)[0] + ":latest"],
                capture_output=True,
            )
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
