"""The builder container's parts that need no engine (pure functions of their inputs).

- :class:`BuilderSpec`: a builder container's labels and ``POST /containers/create`` body;
- :func:`secrets_payload`: what the container reads on stdin (git login, registry login);
- :func:`build_from_container`: the build record again, from a container's labels (adopt);
- :func:`tar_one`: a small helper.

The builder's own labels (besides the image labels of the build, see
:class:`~repo2docker_service.images.labels.ImageLabels`) are named here: they tell the
service's builders apart and hold what adopting a build needs.
"""

from __future__ import annotations

import base64
import io
import json
import re
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ...images.dockerconfig import RegistryCredentials, docker_server_address
from ...images.labels import ImageLabels
from ..model import Build

if TYPE_CHECKING:
    from ...sources import GitCredentials

__all__ = [
    "BUILDER_CONFIG_PATH",
    "BUILDER_SECRETS_DIR",
    "LABEL_BUILDER",
    "LABEL_FIRST_EVENT_ID",
    "LABEL_FORCE",
    "LABEL_IMAGE",
    "LABEL_INSTANCE",
    "LABEL_LATEST_IMAGE",
    "LABEL_OWNER_SLUG",
    "LABEL_REQUESTED_BY",
    "BuilderSpec",
    "build_from_container",
    "secrets_payload",
    "tar_one",
]

#: ``"true"`` on every builder container of the service.
LABEL_BUILDER = "repo2docker-service.builder"
#: the executor's ``instance``: adopt() takes only its own instance's builders.
LABEL_INSTANCE = "repo2docker-service.builder-instance"
LABEL_IMAGE = "repo2docker-service.image"
LABEL_LATEST_IMAGE = "repo2docker-service.latest-image"
LABEL_OWNER_SLUG = "repo2docker-service.owner-slug"
#: the JupyterHub user who asked (the owner label is empty for shared images).
LABEL_REQUESTED_BY = "repo2docker-service.requested-by"
#: ``"true"`` or ``"false"``: the build was forced.
LABEL_FORCE = "repo2docker-service.force"
#: the event id of the container's first log line: an adopted build numbers its events
#: as before (line N of the replayed log gets the id it had), so viewers resume exactly.
LABEL_FIRST_EVENT_ID = "repo2docker-service.first-event-id"

#: Where the repo2docker config file is copied into builder containers.
BUILDER_CONFIG_PATH = "/etc/repo2docker-service/repo2docker_config.py"
#: A tmpfs in the builder container for the docker login of pushes (memory only).
BUILDER_SECRETS_DIR = "/run/r2ds-secrets"
# The builder container's command: read the secrets from stdin (one per line: git user,
# git password, base64 docker config), export them to repo2docker only, then exec it.
# The values never appear in the container's configuration (docker inspect shows this
# text and the argv, not stdin).
BUILDER_WRAPPER = (
    "set -e; "
    'if [ "${R2DS_SECRETS_ON_STDIN:-}" = 1 ]; then '
    "IFS= read -r R2DS_GIT_USERNAME || true; "
    "IFS= read -r R2DS_GIT_PASSWORD || true; "
    "IFS= read -r r2ds_docker_config || true; "
    "export R2DS_GIT_USERNAME R2DS_GIT_PASSWORD; "
    'if [ -n "$r2ds_docker_config" ]; then '
    "umask 077; "
    f'mkdir -p "{BUILDER_SECRETS_DIR}/docker"; '
    f'printf %s "$r2ds_docker_config" | base64 -d > "{BUILDER_SECRETS_DIR}/docker/config.json"; '
    f'export DOCKER_CONFIG="{BUILDER_SECRETS_DIR}/docker"; '
    "fi; "
    "unset r2ds_docker_config; "
    "fi; "
    "unset R2DS_SECRETS_ON_STDIN; "
    'exec "$@"'
)


@dataclass(frozen=True, slots=True)
class BuilderSpec:
    """How the builder containers of one executor look.

    Attributes:
        image: the builder image.
        docker_host: the engine (``unix://`` sockets are mounted, others passed on).
        network: the containers' network mode.
        cpu_limit: CPUs per container; 0: no limit.
        memory_limit: bytes per container; 0: no limit.
        env: extra environment variables (never secrets).
        instance: the executor's instance name (a label).
    """

    image: str
    docker_host: str
    network: str = "host"
    cpu_limit: float = 0.0
    memory_limit: int = 0
    env: Mapping[str, str] = field(default_factory=dict)
    instance: str = ""

    def labels(self, build: Build, labels: Mapping[str, str]) -> dict[str, str]:
        """Labels of the builder container: the image labels plus what adopt() needs."""
        return {
            **labels,
            LABEL_BUILDER: "true",
            LABEL_INSTANCE: self.instance,
            LABEL_IMAGE: build.image,
            LABEL_LATEST_IMAGE: build.latest_image,
            LABEL_OWNER_SLUG: build.owner_slug,
            LABEL_REQUESTED_BY: build.owner,
            LABEL_FORCE: "true" if build.force else "false",
            # the container's output is the build's next event; nothing comes in between
            LABEL_FIRST_EVENT_ID: str(build.last_event_id + 1),
        }

    def environment(
        self, build: Build, *, credentials: GitCredentials | None, secrets_on_stdin: bool
    ) -> dict[str, str]:
        """The container's environment: no secret (the git helper names variables only)."""
        env = {"PYTHONUNBUFFERED": "1", "GIT_TERMINAL_PROMPT": "0", **self.env}
        if not self.docker_host.startswith("unix://"):
            env["DOCKER_HOST"] = self.docker_host
        if credentials is not None:
            git_env = credentials.git_env(url=build.repo)
            # the helper configuration only names R2DS_GIT_USERNAME/PASSWORD, which come
            # from stdin; the values are left out here
            env.update({k: v for k, v in git_env.items() if k.startswith("GIT_")})
        if secrets_on_stdin:
            env["R2DS_SECRETS_ON_STDIN"] = "1"
        return env

    def host_config(self) -> dict[str, Any]:
        """The ``HostConfig``: network, the engine socket, the secrets tmpfs, limits."""
        binds = []
        if self.docker_host.startswith("unix://"):
            binds.append(f"{self.docker_host.removeprefix('unix://')}:/var/run/docker.sock")
        host_config: dict[str, Any] = {
            "NetworkMode": self.network,
            "Binds": binds,
            "Tmpfs": {BUILDER_SECRETS_DIR: "rw,noexec,nosuid,size=1m,mode=0700"},
            "Init": True,
        }
        if self.cpu_limit:
            host_config["NanoCpus"] = int(self.cpu_limit * 1e9)
        if self.memory_limit:
            host_config["Memory"] = self.memory_limit
        return host_config

    def create_body(
        self,
        build: Build,
        *,
        argv: Sequence[str],
        labels: Mapping[str, str],
        credentials: GitCredentials | None,
        secrets_on_stdin: bool,
    ) -> dict[str, Any]:
        """The ``POST /containers/create`` body of one build (no secret in it).

        Args:
            build: the build (its image, owner, repo...).
            argv: the repo2docker argv to run (after the stdin wrapper).
            labels: the image labels of the build.
            credentials: git credentials (only the helper configuration goes in), or None.
            secrets_on_stdin: the wrapper reads secrets from stdin (the container keeps it open).
        """
        env = self.environment(build, credentials=credentials, secrets_on_stdin=secrets_on_stdin)
        config: dict[str, Any] = {
            "Image": self.image,
            "Cmd": ["sh", "-c", BUILDER_WRAPPER, "r2ds-builder", *argv],
            "Env": [f"{k}={v}" for k, v in env.items()],
            "Labels": self.labels(build, labels),
            "WorkingDir": "/tmp",  # noqa: S108 - inside the builder container
            "User": "0",
            "Tty": False,
            "HostConfig": self.host_config(),
        }
        if secrets_on_stdin:
            config.update({"OpenStdin": True, "StdinOnce": True, "AttachStdin": True})
        return config


def secrets_payload(
    *, registry: str, login: RegistryCredentials | None, credentials: GitCredentials | None
) -> bytes | None:
    """What the builder's wrapper reads on stdin: three lines, git user, git password, a
    base64 docker ``config.json`` with the registry login (each may be empty).

    Args:
        registry: ``host[:port]`` the login is for.
        login: the registry login for pushes, or None.
        credentials: git credentials, or None.

    Returns:
        The payload, or None when there is nothing secret to hand over.
    """
    docker_config = ""
    if login is not None:
        config = {"auths": {docker_server_address(registry): login.auths_entry()}}
        docker_config = base64.b64encode(json.dumps(config).encode()).decode()
    if credentials is None and not docker_config:
        return None
    user = credentials.username if credentials else ""
    password = credentials.password if credentials else ""
    return f"{user}\n{password}\n{docker_config}\n".encode()


def tar_one(path: str, data: bytes) -> bytes:
    """A tar archive (to extract at ``/``) holding the file ``path`` (mode 0644) and its
    parent directories."""
    buf = io.BytesIO()
    parts = path.strip("/").split("/")
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for depth in range(1, len(parts)):
            folder = tarfile.TarInfo("/".join(parts[:depth]))
            folder.type = tarfile.DIRTYPE
            folder.mode = 0o755
            tar.addfile(folder)
        info = tarfile.TarInfo("/".join(parts))
        info.size = len(data)
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def build_from_container(info: Mapping[str, Any]) -> Build | None:
    """Rebuild the build record of a builder container from its labels.

    Args:
        info: the container's ``GET /containers/{id}/json``.

    Returns:
        A new ``queued`` :class:`Build` with the original id, owner, image..., its
        ``created`` from the built-at label and ``started`` from the container's start,
        numbering its events so that the replayed log's lines get the ids they had
        (:data:`LABEL_FIRST_EVENT_ID`; its ``building`` phase takes the id just before);
        None when a label it needs is missing.
    """
    labels = (info.get("Config") or {}).get("Labels") or {}
    parsed = ImageLabels.parse(labels)
    if parsed is None or not parsed.build_id:
        return None
    image = labels.get(LABEL_IMAGE)
    latest = labels.get(LABEL_LATEST_IMAGE)
    owner_slug = labels.get(LABEL_OWNER_SLUG)
    owner = labels.get(LABEL_REQUESTED_BY) or parsed.owner
    if not (image and latest and owner_slug and owner and parsed.commit and parsed.repo):
        return None
    build = Build(
        id=parsed.build_id,
        owner=owner,
        owner_slug=owner_slug,
        shared=parsed.shared,
        name=parsed.name,
        display_name=parsed.display_name,
        repo=parsed.repo,
        ref=parsed.ref,
        commit=parsed.commit,
        image=image,
        latest_image=latest,
        hints=dict(parsed.hints),
        force=labels.get(LABEL_FORCE) == "true",
    )
    created = _docker_time(parsed.built_at)
    started = _docker_time((info.get("State") or {}).get("StartedAt"))
    if created is not None:
        build.created = created
    if started is not None:
        build.started = started
    first = labels.get(LABEL_FIRST_EVENT_ID, "")
    if first.isdigit() and int(first) >= 2:
        build.continue_ids(int(first) - 1)
    return build


def _docker_time(value: object) -> datetime | None:
    """A time as Docker or the built-at label writes it (None for empty, zero or broken)."""
    if not value or str(value).startswith("0001-"):
        return None
    text = str(value).replace("Z", "+00:00")
    # Docker writes nanoseconds; Python parses up to microseconds
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None
