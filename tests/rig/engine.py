"""The Docker engine: checks, ``docker`` CLI calls, clean-up, and the builder image.

- The engine with the buildx plugin and the local base image ``local/debian:bookworm`` are
  made by ``bash scripts/setup.sh``; the ``check_*`` functions only verify them and raise
  :class:`~tests.rig.parts.RealPartMissing` naming that command when one is missing.
- :func:`docker` runs the CLI; :func:`remove_images`, :func:`local_images`,
  :func:`image_exists` and :func:`remove_containers` are the one clean-up (and look-up) of
  what tests and benchmarks leave behind.
- :func:`ensure_builder_image`: a repo2docker builder image (``tests/rig/builder``) made from
  the local base image, with the host's docker CLI and buildx plugin copied in and the same
  jupyter-repo2docker version as the test venv. Built once per machine (the tag is a hash of
  its inputs); later sessions reuse it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from repo2docker import __version__ as REPO2DOCKER_VERSION

from tests.rig.net import loopback_env
from tests.rig.parts import RealPartMissing, run

BASE_IMAGE = "local/debian:bookworm"
DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
BUILDER_DIR = Path(__file__).parent / "builder"
BUILDX_PLUGIN = Path("/usr/libexec/docker/cli-plugins/docker-buildx")


@dataclass(frozen=True)
class DockerEngine:
    """The Docker engine the tests talk to (``DOCKER_HOST``, default the local unix socket)."""

    host: str
    server_version: str
    api_version: str
    client_version: str
    buildx_version: str

    @property
    def env(self) -> dict[str, str]:
        """Variables to add to a subprocess environment so it uses this engine."""
        return {"DOCKER_HOST": self.host}


def docker(
    *args: str,
    env: Mapping[str, str] | None = None,
    check: bool = True,
    timeout: float = 120,
    input: str | None = None,
    stdin: IO[bytes] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``docker *args`` with text output captured.

    Args:
        env: variables added to the (loopback) environment, e.g. ``DockerEngine.env``.
        input: text for the command's stdin; ``stdin``: a file/pipe for it instead.

    Raises:
        RuntimeError: ``check`` and a non-zero exit (stderr in the message).
        subprocess.TimeoutExpired: still running after ``timeout`` seconds.
    """
    proc = subprocess.run(
        ["docker", *args],
        env={**loopback_env(), **(env or {})},
        input=input,
        stdin=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and proc.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args[:3])} ... failed: {proc.stderr.strip()}")
    return proc


def _engine_versions(env: dict[str, str], timeout: float) -> tuple[str, str, str]:
    """(server version, API version, client version) from ``docker version``."""
    version = run(["docker", "version", "--format", "{{json .}}"], env=env, timeout=timeout)
    v = json.loads(version.stdout)
    return v["Server"]["Version"], v["Server"]["ApiVersion"], v["Client"]["Version"]


def check_docker(*, timeout: float = 30) -> DockerEngine:
    """Verify that ``docker info`` answers and buildx is installed; describe the engine.

    Raises:
        RealPartMissing: the docker CLI, the engine or the buildx plugin is missing.
    """
    part = "Docker engine not reachable"
    if shutil.which("docker") is None:
        raise RealPartMissing(part, "no `docker` command on PATH")
    host = os.environ.get("DOCKER_HOST") or DEFAULT_DOCKER_HOST
    env = {**os.environ, "DOCKER_HOST": host}
    try:
        info = run(
            ["docker", "info", "--format", "{{json .ServerVersion}}"],
            env=env,
            timeout=timeout,
            check=False,
        )
        if info.returncode != 0:
            raise RealPartMissing(
                part, f"`docker info` on {host} failed: {info.stderr or info.stdout}"
            )
        server_version, api_version, client_version = _engine_versions(env, timeout)
    except subprocess.TimeoutExpired as e:
        raise RealPartMissing(part, f"`docker` did not answer within {timeout}s on {host}") from e
    except (subprocess.CalledProcessError, ValueError, KeyError, TypeError) as e:
        raise RealPartMissing(part, f"`docker version` failed on {host}: {e}") from e
    buildx = run(["docker", "buildx", "version"], env=env, timeout=timeout, check=False)
    if buildx.returncode != 0:
        raise RealPartMissing(
            "Docker buildx plugin missing (repo2docker runs `docker buildx build`)",
            buildx.stderr or buildx.stdout,
        )
    return DockerEngine(
        host=host,
        server_version=server_version,
        api_version=api_version,
        client_version=client_version,
        buildx_version=buildx.stdout.strip(),
    )


def check_base_image(
    image: str = BASE_IMAGE, *, engine: DockerEngine | None = None, timeout: float = 30
) -> str:
    """Verify that ``image`` exists in the engine; return its name.

    Raises:
        RealPartMissing: the image does not exist.
    """
    env = engine.env if engine else None
    proc = docker(
        "image", "inspect", "--format", "{{.Id}}", image, env=env, timeout=timeout, check=False
    )
    if proc.returncode != 0:
        raise RealPartMissing(f"Base image {image} missing", proc.stderr or proc.stdout)
    return image


# ---------------------------------------------------------------------------------- clean-up
def remove_images(
    refs: Iterable[str], *, engine: DockerEngine | None = None, check: bool = True
) -> None:
    """``docker rmi -f`` in batches of 200.

    Raises:
        RuntimeError: ``check`` and a failure other than "No such image".
    """
    refs = list(refs)
    env = engine.env if engine else None
    for start in range(0, len(refs), 200):
        batch = refs[start : start + 200]
        proc = docker("rmi", "-f", *batch, env=env, timeout=300, check=False)
        if check and proc.returncode != 0 and "no such image" not in proc.stderr.lower():
            raise RuntimeError(f"docker rmi -f {' '.join(batch)} failed: {proc.stderr}")


def remove_image(image: str, *, engine: DockerEngine | None = None) -> None:
    """``docker rmi -f image``, ignoring only "No such image" (RuntimeError otherwise)."""
    remove_images([image], engine=engine)


def image_exists(ref: str, *, engine: DockerEngine | None = None) -> bool:
    """Whether ``docker image inspect ref`` finds the image (in ``engine``, default local)."""
    env = engine.env if engine else None
    return docker("image", "inspect", ref, env=env, check=False).returncode == 0


def local_images(prefix: str, *, label: str | None = None) -> list[str]:
    """``repository:tag`` of the local images whose repository starts with ``prefix``, also
    behind a registry host (``host:port/prefix...``); only those carrying ``label`` if given."""
    filters = ["--filter", f"label={label}"] if label else []
    out = docker("images", "--format", "{{.Repository}}:{{.Tag}}", *filters).stdout.split()
    return [ref for ref in out if ref.startswith(prefix) or f"/{prefix}" in ref]


def remove_containers(name: str) -> None:
    """``docker rm -f`` every container whose name contains ``name`` (errors ignored)."""
    ids = docker("ps", "-aq", "--filter", f"name={name}", check=False).stdout.split()
    if ids:
        docker("rm", "-f", *ids, check=False)


# ---------------------------------------------------------------------------- builder image
def _docker_cli() -> Path:
    for candidate in ("/usr/bin/docker", shutil.which("docker")):
        if candidate and Path(candidate).exists():
            return Path(candidate)
    raise RealPartMissing("docker CLI missing", "apt-get install docker.io")


def builder_tag(base: str = BASE_IMAGE) -> str:
    """``local/r2ds-builder:<hash>`` of the Dockerfile, the copied binaries, base and version."""
    h = hashlib.sha256()
    for path in sorted(BUILDER_DIR.iterdir()):
        h.update(path.name.encode() + path.read_bytes())
    for binary in (_docker_cli(), BUILDX_PLUGIN):
        st = binary.stat()
        h.update(f"{binary}:{st.st_size}:{st.st_mtime_ns}".encode())
    h.update(f"{base}:{REPO2DOCKER_VERSION}".encode())
    return f"local/r2ds-builder:{h.hexdigest()[:12]}"


def _build_builder(tag: str, base: str, env: Mapping[str, str]) -> None:
    """``docker build`` the builder image from a context with the host's CLI and buildx."""
    with tempfile.TemporaryDirectory(prefix="r2ds-builder-") as ctx:
        for path in BUILDER_DIR.iterdir():
            shutil.copy2(path, Path(ctx) / path.name)
        shutil.copy2(_docker_cli(), Path(ctx) / "docker")
        shutil.copy2(BUILDX_PLUGIN, Path(ctx) / "docker-buildx")
        proc = docker(
            "build",
            "--build-arg",
            f"BASE={base}",
            "--build-arg",
            f"REPO2DOCKER_VERSION={REPO2DOCKER_VERSION}",
            "-t",
            tag,
            ctx,
            env={**env, "DOCKER_BUILDKIT": "1"},
            timeout=900,
            check=False,
        )
    if proc.returncode != 0:
        raise RealPartMissing(
            "could not build the repo2docker builder image",
            (proc.stdout + proc.stderr)[-3000:],
        )


def ensure_builder_image(
    *, base: str = BASE_IMAGE, docker_env: Mapping[str, str] | None = None
) -> str:
    """Build the builder image unless it exists; return its tag (about 90 s the first time).

    Raises:
        RealPartMissing: the buildx plugin is missing or the build failed.
    """
    tag = builder_tag(base)
    env = dict(docker_env or {})
    if docker("image", "inspect", tag, env=env, check=False).returncode == 0:
        return tag
    if not BUILDX_PLUGIN.exists():
        raise RealPartMissing("docker buildx plugin missing", f"{BUILDX_PLUGIN} does not exist")
    _build_builder(tag, base, env)
    return tag
