"""The Littlest JupyterHub (TLJH) plugin: repo2docker-service plus a Docker spawner.

Install with TLJH's installer (``--plugin "repo2docker-service[dockerspawner]"``, with Docker
and its buildx plugin installed on the machine; docs/tljh.md gives the whole install); TLJH
finds this module through the ``tljh`` entry point in pyproject.toml and calls:

- :func:`tljh_extra_hub_pip_packages`: DockerSpawner, installed into the hub's environment;
- :func:`tljh_custom_jupyterhub_config`: registers the service as a hub-managed service
  (custom scopes, one role per scope granted to the groups ``repo2docker-viewers``,
  ``repo2docker-builders`` and ``repo2docker-admins``), and makes the spawner
  :class:`~repo2docker_service.hub.dockerspawner.Repo2DockerHostSpawner`: user servers run in
  Docker containers started from the images the service lists for each user.

Settings on a TLJH machine (``$TLJH_INSTALL_PREFIX``, default /opt/tljh):

- ``config/repo2docker_service_config.py``: the service's own config, if present;
- ``state/repo2docker-spawner-token``: the spawner client's token, created on first use
  (readable by root only) so hub restarts keep one token.

Each user's files live in a Docker volume, ``repo2docker-user-{username}``, mounted at
``/home/jovyan/work`` (repo2docker's home directory is ``/home/jovyan``), so they survive the
server's container; set ``c.DockerSpawner.volumes`` in ``config/jupyterhub_config.d/`` for
another layout.

Containers use the host's network and listen on 127.0.0.1 on free ports, where TLJH's hub
(127.0.0.1:15001) and proxy are, so nothing has to listen on a public address. TLJH's own
``limits`` (``c.Spawner.cpu_limit`` / ``mem_limit``) stay as the fallback when the service
sets no limit for an image.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pluggy

from .config import GROUPS, configure_jupyterhub, persistent_token, register_service

__all__ = ["GROUPS", "hookimpl", "tljh_custom_jupyterhub_config", "tljh_extra_hub_pip_packages"]

hookimpl = pluggy.HookimplMarker("tljh")

SERVICE = "repo2docker"
PREFIX = "custom:repo2docker:"
SERVICE_PORT = 8585
#: each user's volume (DockerSpawner expands {username}) and where servers see it
USER_VOLUME = {"repo2docker-user-{username}": "/home/jovyan/work"}


def install_prefix() -> Path:
    """TLJH's install prefix (``$TLJH_INSTALL_PREFIX``, default /opt/tljh)."""
    return Path(os.environ.get("TLJH_INSTALL_PREFIX", "/opt/tljh"))


@hookimpl
def tljh_extra_hub_pip_packages() -> list[str]:
    """Packages TLJH installs into the hub's environment next to this plugin."""
    return ["dockerspawner>=13.0"]


@hookimpl
def tljh_custom_jupyterhub_config(c: Any) -> None:
    """Add the service and the Docker spawner to TLJH's hub config."""
    prefix = install_prefix()
    register_service(
        c,
        name=SERVICE,
        scope_prefix=PREFIX,
        port=SERVICE_PORT,
        config_file=prefix / "config" / "repo2docker_service_config.py",
    )
    configure_jupyterhub(
        c,
        service_name=SERVICE,
        service_url=f"http://127.0.0.1:{SERVICE_PORT}/services/{SERVICE}/",
        scope_prefix=PREFIX,
        token=persistent_token(prefix / "state" / "repo2docker-spawner-token"),
        spawner_class="repo2docker_service.hub.dockerspawner.Repo2DockerHostSpawner",
    )
    # images live in the local engine (no registry on TLJH): never pull
    c.DockerSpawner.pull_policy = "never"
    c.DockerSpawner.remove = True
    # TLJH keeps servers running across hub restarts; so do the containers
    c.JupyterHub.cleanup_servers = False
    # users' files outlive their containers (unless the admin chose volumes already)
    if "volumes" not in c.DockerSpawner:
        c.DockerSpawner.volumes = dict(USER_VOLUME)
