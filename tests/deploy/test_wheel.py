"""The release artifacts: build the sdist and the wheel, ``twine check`` them, install the
wheel in a clean venv (no project, no test packages) and run ``repo2docker-service --version``.

The clean venv installs its dependencies with ``--no-index`` from a wheelhouse kept under
``~/.cache/repo2docker-service/`` and keyed by the declared dependencies: the first run on a
machine downloads it from PyPI (``pip download``, about 30-100 s), later runs take about 20-45 s.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest

from repo2docker_service._version import __version__

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "repo2docker-service"


def run(*argv: str | Path, timeout: float = 300) -> str:
    """Run ``argv``; its stdout, or a failure showing its output."""
    proc = subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, timeout=timeout, cwd=REPO
    )
    if proc.returncode:
        pytest.fail(
            f"{' '.join(map(str, argv))} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}"
        )
    return proc.stdout


def wheelhouse(wheel: Path) -> Path:
    """Wheels of the wheel's dependencies, downloaded once per set of declared dependencies."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    key = hashlib.sha256("\n".join(sorted(project["dependencies"])).encode()).hexdigest()[:12]
    house = CACHE / f"wheelhouse-{key}"
    if not (house / ".complete").exists():
        house.mkdir(parents=True, exist_ok=True)
        run(sys.executable, "-m", "pip", "download", "-q", "-d", house, wheel, timeout=600)
        (house / ".complete").write_text("")
    return house


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    # --no-isolation: hatchling comes from the test venv instead of a fresh download
    run(sys.executable, "-m", "build", "--no-isolation", "--outdir", out, REPO)
    return out


def test_sdist_and_wheel_pass_twine_check(dist):
    (sdist,) = dist.glob("*.tar.gz")
    (wheel,) = dist.glob("*.whl")
    out = run(sys.executable, "-m", "twine", "check", "--strict", sdist, wheel)
    assert out.count("PASSED") == 2, out
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    assert {"LICENSE", "CHANGELOG.md", "README.md", "pyproject.toml"} <= names
    assert not any(n.startswith(("tests/", ".venv/")) for n in names)
    with zipfile.ZipFile(wheel) as whl:
        files = whl.namelist()
        (metadata,) = [n for n in files if n.endswith(".dist-info/METADATA")]
        text = whl.read(metadata).decode()
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in files)
    assert "repo2docker_service/openapi.yaml" in files
    assert "repo2docker_service/templates/index.html" in files
    assert "License-Expression: BSD-3-Clause" in text
    assert "Requires-Dist: jinja2" in text and "Requires-Dist: aiohttp" in text
    pyyaml = [line for line in text.splitlines() if line.startswith("Requires-Dist: pyyaml")]
    assert pyyaml and all("extra == 'test'" in line for line in pyyaml)


def test_wheel_installs_in_a_clean_venv_and_runs(dist, tmp_path):
    (wheel,) = dist.glob("*.whl")
    house = wheelhouse(wheel)
    venv = tmp_path / "clean"
    run(sys.executable, "-m", "venv", venv)
    pip = [venv / "bin" / "python", "-m", "pip", "install", "-q", "--no-index"]
    run(*pip, "--find-links", house, wheel, timeout=600)
    assert run(venv / "bin" / "repo2docker-service", "--version").strip() == __version__
    # the service and the hub-side config import with the declared dependencies alone
    run(
        venv / "bin" / "python",
        "-c",
        "import repo2docker_service.app, repo2docker_service.hub.config",
    )
    assert not (venv / "bin" / "pytest").exists()


@pytest.mark.parametrize(
    "python, refused",
    [("3.9", True), ("3.10", True), ("3.11", False), ("3.12", False), ("3.13", False)],
)
def test_pip_refuses_the_wheel_on_an_unsupported_python(dist, tmp_path, python, refused):
    """What TLJH's installer meets on a system whose python3 is older (docs/tljh.md quotes
    the message): pip's requires-python check, asked for another Python with
    ``--python-version`` (no older Python is installed here), on the wheel itself."""
    (wheel,) = dist.glob("*.whl")
    argv = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    proc = subprocess.run(
        [*argv, "--python-version", python, "-d", str(tmp_path), str(wheel)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    message = (
        f"ERROR: Package 'repo2docker-service' requires a different Python: "
        f"{python}.0 not in '>=3.11'"
    )
    assert (proc.returncode != 0) is refused, proc.stderr
    assert (message in proc.stderr) is refused, proc.stderr
