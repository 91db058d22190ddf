"""pyproject.toml declares exactly what the package imports at run time, and the metadata
an index shows (licence file, URLs, classifiers, extras)."""

from __future__ import annotations

import ast
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import yaml
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "repo2docker_service"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
# hub-side modules whose imports belong to an extra (they run inside the hub), and the
# spawner each extra installs (kubespawner.py only hands KubeSpawner a callable)
EXTRAS_OF_MODULE = {
    "hub/dockerspawner.py": "dockerspawner",
    "hub/kubespawner.py": "kubespawner",
}
EXTRAS = {
    "dockerspawner": {"dockerspawner", "docker"},
    "kubespawner": {"jupyterhub-kubespawner"},
}


def norm(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def top_level_imports(path: Path) -> set[str]:
    """Absolute top-level module names ``path`` imports (relative imports excluded)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"repo2docker_service", "__future__"}


def distributions(modules: set[str]) -> set[str]:
    """The installed distributions that provide ``modules`` (normalized names)."""
    provided = packages_distributions()
    missing = modules - set(provided)
    assert not missing, f"imported but not installed: {missing}"
    return {norm(d) for m in modules for d in provided[m]}


def declared(requirements: list[str]) -> set[str]:
    return {norm(Requirement(r).name) for r in requirements}


def test_runtime_dependencies_are_exactly_the_imports():
    runtime, extras = set(), {extra: set() for extra in EXTRAS_OF_MODULE.values()}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).as_posix()
        target = extras[EXTRAS_OF_MODULE[rel]] if rel in EXTRAS_OF_MODULE else runtime
        target |= top_level_imports(path)
    needed = distributions(runtime)
    assert declared(PYPROJECT["project"]["dependencies"]) == needed
    optional = PYPROJECT["project"]["optional-dependencies"]
    for extra, modules in extras.items():
        assert declared(optional[extra]) == EXTRAS[extra], extra
        # the extra's modules import nothing beyond the runtime dependencies and the extra
        assert distributions(modules) <= needed | EXTRAS[extra], extra


def test_test_only_packages_are_not_runtime_dependencies():
    runtime = declared(PYPROJECT["project"]["dependencies"])
    assert "pyyaml" not in runtime
    assert "pyyaml" in declared(PYPROJECT["project"]["optional-dependencies"]["test"])


def test_repo2docker_floor_is_the_first_buildx_release():
    (r2d,) = [
        Requirement(r)
        for r in PYPROJECT["project"]["dependencies"]
        if norm(Requirement(r).name) == "jupyter-repo2docker"
    ]
    # 2025.8.0 shells out to `docker buildx build` (jupyterhub/repo2docker#1402) but does
    # not push an image that exists locally; 2025.12.0 does (#1464), and
    # tests/integration/test_registry_mode.py::test_push_failure_then_recovery needs it
    assert str(r2d.specifier) == ">=2025.12.0"


def test_metadata_an_index_shows():
    project = PYPROJECT["project"]
    assert project["license"] == "BSD-3-Clause"
    assert project["license-files"] == ["LICENSE"]
    assert "BSD 3-Clause License" in (REPO / "LICENSE").read_text()
    # no public home yet: no made-up project URLs (pyproject.toml says why)
    assert "urls" not in project
    assert project["authors"]
    assert "Framework :: Jupyter" in project["classifiers"]
    assert (REPO / "CHANGELOG.md").read_text().startswith("# Changelog")


def test_release_workflow_builds_and_checks():
    workflow = yaml.safe_load((REPO / ".github" / "workflows" / "release.yml").read_text())
    runs = "\n".join(
        step.get("run", "") for job in workflow["jobs"].values() for step in job["steps"]
    )
    assert "python -m build" in runs
    assert "twine check --strict dist/*" in runs
    assert "repo2docker-service --version" in runs
    publish = workflow["jobs"]["publish"]
    assert publish["permissions"] == {"id-token": "write"}  # trusted publishing, no token
    assert publish["needs"] == "build"
