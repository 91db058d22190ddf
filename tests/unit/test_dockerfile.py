"""The service's image (the repository's Dockerfile) and how docker-compose uses it.

Built and run by tests/e2e/test_compose.py (which also checks the user id, the group and
that no compiler is in it); this checks what a build here cannot: the public default base,
the pinned builder, the non-root user, and compose's wiring.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.version import Version

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = (REPO / "Dockerfile").read_text()
COMPOSE = yaml.safe_load((REPO / "deploy" / "docker-compose" / "docker-compose.yml").read_text())


def arg_default(name: str) -> str:
    (value,) = re.findall(rf"^ARG {name}=(\S+)$", DOCKERFILE, flags=re.MULTILINE)
    return value


def test_base_image_is_public_by_default():
    assert arg_default("BASE_IMAGE") == "debian:bookworm-slim"
    assert re.search(r"^FROM \$\{BASE_IMAGE\}$", DOCKERFILE, flags=re.MULTILINE)


def test_builder_cli_is_pinned_at_or_above_the_floor():
    pinned = Version(arg_default("REPO2DOCKER_VERSION"))
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    (r2d,) = [Requirement(d) for d in deps if d.startswith("jupyter-repo2docker")]
    assert pinned in r2d.specifier
    assert '"jupyter-repo2docker==${REPO2DOCKER_VERSION}"' in DOCKERFILE


def test_runs_as_a_non_root_user_and_installs_wheels_only():
    users = re.findall(r"^USER (\S+)$", DOCKERFILE, flags=re.MULTILINE)
    assert users and users[-1].split(":")[0] not in ("0", "root")
    assert "--only-binary=:all:" in DOCKERFILE
    for compiler in ("gcc", "build-essential", "g++", "python3-dev"):
        assert f" {compiler} " not in DOCKERFILE.replace("command -v gcc", "")


def test_compose_builds_the_image_with_the_base_image_argument():
    for name in ("hub", "repo2docker"):
        service = COMPOSE["services"][name]
        assert service["build"]["context"] == "../.."
        assert service["build"]["dockerfile"] == "Dockerfile"
        assert service["build"]["args"]["BASE_IMAGE"] == "${BASE_IMAGE:-debian:bookworm-slim}"
        assert service["group_add"] == [
            "${DOCKER_GID:?set DOCKER_GID in .env: stat -c %g /var/run/docker.sock}"
        ]
    registry = COMPOSE["services"]["registry"]["build"]
    assert registry["args"]["BASE_IMAGE"] == "${BASE_IMAGE:-debian:bookworm-slim}"
