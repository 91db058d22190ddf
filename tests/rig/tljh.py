"""The Littlest JupyterHub (TLJH) itself, from its mirror, with this package as its plugin.

TLJH is in no package registry here, and nothing of it is committed: its source is
extracted from the git mirror (:mod:`tests.rig.upstream`) into a temporary directory and put
on ``PYTHONPATH`` (TLJH's own package is neither built nor installed). Then:

- :func:`install_hub_env` lays out ``<prefix>/hub`` the way TLJH's bootstrap script and
  installer do: a venv of this Python with TLJH's dependencies (its ``setup.py``
  ``install_requires``, what the bootstrap's ``pip install`` of TLJH pulls in) and the hub
  requirements (``tljh/requirements-hub-env.txt``) from PyPI, installed in one pip run and
  kept between sessions (:func:`cached_requirements`); then TLJH's installer functions
  themselves, in the order of
  ``tljh.installer.main``: ``setup_plugins`` (pip installs the plugin, docs/tljh.md's
  ``--plugin "repo2docker-service[dockerspawner]"``, with this checkout in place of the
  package name), ``ensure_config_yaml``, ``ensure_admins`` (``--admin <name>``: it writes
  ``config/config.yaml``), the pip step of ``ensure_jupyterhub_package`` (its apt step is
  left out: this machine needs no compiler for pycurl, which has wheels) and
  ``run_plugin_actions`` (the plugin's ``tljh_extra_hub_pip_packages``). Left out:
  user groups (``groupadd``), the user environment (a miniforge download), the traefik
  binary (downloaded from GitHub) and the systemd units.
- :func:`start_tljh_hub` starts JupyterHub as TLJH's systemd unit does
  (``<prefix>/hub/bin/python -m jupyterhub -f tljh/jupyterhub_config.py --upgrade-db`` in
  ``<prefix>/state`` with ``TLJH_INSTALL_PREFIX``), with TLJH's escape hatch
  ``config/jupyterhub_config.d/`` overriding only what cannot work here
  (:data:`OVERRIDES_DOC`).

The project's .venv is not reused for the hub environment: TLJH pins JupyterHub < 6 where
the .venv has JupyterHub 6, and the .venv's test packages (docker-py, KubeSpawner...) would
hide a dependency the plugin forgot to declare, the very failure of a README-only install.
The cached requirements venv holds exactly TLJH's packages; building it takes 30-80 s once
per machine (pip with a warm download cache), the per-session venv a few seconds.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.rig.hub import Hub, chp_path, wait_healthy
from tests.rig.net import free_port
from tests.rig.parts import REPO_ROOT, run

#: the ports TLJH's hub (``hub_port``) and the plugin's service listen on (kept: they are
#: outside the range free_port() hands out, so only another TLJH test could hold them)
FIXED_PORTS = {"TLJH's hub": 15001, "the plugin's service": 8585}
#: what the test's jupyterhub_config.d file changes in TLJH's config, and why
OVERRIDES_DOC = """\
- proxy: configurable-http-proxy instead of TLJH's traefik (its installer downloads the
  traefik binary from GitHub, which this machine cannot reach), its API on a free port;
- the public address: 127.0.0.1 and a free port (TLJH's traefik listens on :80 on every
  interface; tests use loopback only);
- a token-only client service to create users and tokens (test instrumentation).
"""

# run inside the hub venv, with TLJH's source on PYTHONPATH and TLJH_INSTALL_PREFIX set
_INSTALLER_STEPS = """
import os, sys
from tljh import conda, installer
from tljh.config import HUB_ENV_PREFIX
plugin, admin = sys.argv[1], sys.argv[2]
pm = installer.setup_plugins([plugin])
installer.ensure_config_yaml(pm)
installer.ensure_admins([[admin]])
conda.ensure_pip_requirements(
    HUB_ENV_PREFIX, os.path.join(installer.HERE, "requirements-hub-env.txt"), upgrade=True
)
installer.run_plugin_actions(pm)
"""


def tljh_install_requires(src: Path) -> list[str]:
    """TLJH's ``install_requires`` from its ``setup.py`` (a literal list there)."""
    tree = ast.parse((src / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "install_requires":
            return [str(v) for v in ast.literal_eval(node.value)]
    raise AssertionError("TLJH's setup.py has no literal install_requires")


def tljh_env(src: Path, prefix: Path) -> dict[str, str]:
    """The environment of TLJH's installer and hub (TLJH's systemd unit's, plus its source)."""
    return {
        **os.environ,
        "TLJH_INSTALL_PREFIX": str(prefix),
        "PATH": f"{prefix / 'hub' / 'bin'}:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "PYTHONPATH": str(src),
    }


def cache_root() -> Path:
    """Where hub environments are kept between sessions (next to setup.sh's base image)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / (
        "repo2docker-service/tljh-hub-env"
    )


def cached_requirements(src: Path) -> Path:
    """The site-packages of a venv holding TLJH's dependencies and hub requirements.

    Built once per machine and requirement set (the directory name is a hash of the Python
    version, TLJH's ``install_requires`` and its ``requirements-hub-env.txt``): a venv in a
    temporary directory, renamed into place when complete, so parallel sessions never see
    half of one. Only its site-packages is used, from other venvs' ``.pth`` files.
    """
    requires = tljh_install_requires(src)
    requirements = src / "tljh" / "requirements-hub-env.txt"
    key = hashlib.sha256(
        json.dumps([sys.version, requires, requirements.read_text()]).encode()
    ).hexdigest()[:16]
    root = cache_root()
    env = root / key
    if not (env / "complete").exists():
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f"{key}.", dir=root))
        run([sys.executable, "-m", "venv", str(tmp)])
        pip = [str(tmp / "bin" / "python"), "-m", "pip", "install", "--quiet"]
        run([*pip, *requires, "--requirement", str(requirements)], timeout=900)
        (tmp / "complete").touch()
        try:
            tmp.rename(env)
        except OSError:  # another session finished first
            shutil.rmtree(tmp, ignore_errors=True)
    (site,) = (env / "lib").glob("python*/site-packages")
    return site


def install_hub_env(src: Path, prefix: Path, admin: str) -> Path:
    """``<prefix>/hub`` as TLJH lays it out, with the plugin (see the module docstring).

    The venv reads TLJH's packages from :func:`cached_requirements` through a ``.pth`` file
    (what the bootstrap's ``pip install`` of TLJH and the installer's hub requirements put
    there); TLJH's installer steps then run in it, as on a machine where they ran before:
    pip finds those satisfied and installs the plugin and what it adds into the venv.

    Returns the hub env's python. Raises ``subprocess.CalledProcessError`` (pip's output
    attached) when a step fails.
    """
    base = cached_requirements(src)
    hub = prefix / "hub"
    run([sys.executable, "-m", "venv", "--without-pip", str(hub)])
    (site,) = (hub / "lib").glob("python*/site-packages")
    (site / "tljh_hub_requirements.pth").write_text(f"{base}\n")
    plugin = f"{REPO_ROOT}[dockerspawner]"  # docs/tljh.md: repo2docker-service[dockerspawner]
    run(
        [str(hub / "bin" / "python"), "-c", _INSTALLER_STEPS, plugin, admin],
        env=tljh_env(src, prefix),
        cwd=prefix,
        timeout=600,
    )
    return hub / "bin" / "python"


def write_overrides(prefix: Path, *, proxy_port: int, client_token: str) -> None:
    """TLJH's escape hatch: ``config/jupyterhub_config.d/zz-test.py`` (:data:`OVERRIDES_DOC`)."""
    confd = prefix / "config" / "jupyterhub_config.d"
    confd.mkdir(parents=True, exist_ok=True)
    (confd / "zz-test.py").write_text(
        f"""# what cannot work on this machine (tests/rig/tljh.py)
c.JupyterHub.proxy_class = "configurable-http-proxy"
c.ConfigurableHTTPProxy.command = [{chp_path()!r}]
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{free_port()}"
c.JupyterHub.bind_url = "http://127.0.0.1:{proxy_port}"
c.JupyterHub.services.append({{"name": "test-client", "api_token": {client_token!r}}})
c.JupyterHub.load_roles.append({{
    "name": "test-client",
    "scopes": ["admin:users", "tokens", "admin:servers", "read:hub", "list:services"],
    "services": ["test-client"],
}})
"""
    )


def check_fixed_ports() -> None:
    """Raise RuntimeError naming the holder's port when one of :data:`FIXED_PORTS` is taken."""
    for what, port in FIXED_PORTS.items():
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the hub does
            try:
                s.bind(("127.0.0.1", port))
            except OSError as e:
                raise RuntimeError(f"port {port} ({what}) is taken: {e}") from None


def start_tljh_hub(src: Path, prefix: Path, python: Path, service_config: str) -> Hub:
    """Start JupyterHub through TLJH's loader; wait until the service answers via the proxy.

    ``service_config`` goes to ``<prefix>/config/repo2docker_service_config.py`` (where
    docs/tljh.md tells admins to put the service's settings).

    Raises:
        RuntimeError: a port of :data:`FIXED_PORTS` is taken, the hub exited, or the
            service was not up within 120 s.
    """
    check_fixed_ports()
    proxy_port, client_token = free_port(), secrets.token_hex(16)
    write_overrides(prefix, proxy_port=proxy_port, client_token=client_token)
    svc_config = prefix / "config" / "repo2docker_service_config.py"
    svc_config.write_text(service_config)
    state = prefix / "state"
    state.mkdir(exist_ok=True)
    loader = src / "tljh" / "jupyterhub_config.py"
    with open(state / "hub.log", "w") as log:
        proc = subprocess.Popen(
            [str(python), "-m", "jupyterhub", "-f", str(loader), "--upgrade-db"],
            cwd=state,
            env=tljh_env(src, prefix),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    hub = Hub(
        url=f"http://127.0.0.1:{proxy_port}",
        workdir=state,
        client_token=client_token,
        proc=proc,
        service_config=svc_config,
    )
    return wait_healthy(hub, timeout=120)
