"""The package layout stays as docs/architecture.md describes it.

Checked from the source with ``ast`` (nothing is imported):

- every module has at most 500 lines, every function or method at most 60;
- imports sit at module top (or under ``if TYPE_CHECKING:``), never inside functions;
- the import graph of ``repo2docker_service`` has no cycle;
- arrows point down: a room imports only rooms of a lower rank (:data:`RANK`) or itself;
- ``hub/`` imports nothing of the service; production code and the demo never import tests/;
- a test module (``test_*.py``, ``conftest.py``) imports no other test module: shared helpers
  live in ``tests/rig/``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "repo2docker_service"
TESTS = ROOT / "tests"
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 60

#: Rooms from the bottom up: a room may import only rooms with a lower rank (or itself).
#: ``hub`` runs inside JupyterHub and imports nothing of the service (checked apart).
RANK = {
    "redact": -1,  # below errors, which redacts every message with it
    "_version": 0,
    "errors": 0,
    "repo2docker_offline_config": 0,
    "repoid": 0,
    "navigation": 0,
    "sizes": 0,
    "streamconfig": 0,  # a mixin of config.ServerConfig
    "hub": 0,
    "config": 1,
    "registryconfig": 1,
    "limits": 1,
    "ratelimit": 1,
    "sources": 1,
    "hubservers": 1,
    "images": 2,
    "builds": 3,
    "metrics": 4,
    "webhooks": 4,
    "launches": 4,
    "binder": 4,
    "readiness": 4,
    "context": 5,
    "auth": 6,
    "handlers": 7,
    "bodylimit": 7,
    "app": 8,
    "__main__": 9,
    "__init__": 9,
}


def modules() -> dict[str, Path]:
    """``{dotted module name: path}`` of every module of the package."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imported_modules(module: str, path: Path, known: set[str]) -> set[str]:
    """The package's modules that ``module`` imports (relative imports resolved)."""
    tree = ast.parse(path.read_text(), str(path))
    is_package = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name in known)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target in known:
                out.add(target)
            out.update(f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in known)
    out.discard(module)
    return out


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {m: imported_modules(m, p, known) for m, p in mods.items()}


def test_every_module_has_a_rank():
    assert {room(m) for m in modules()} <= set(RANK), "add new rooms to RANK (and the docs)"


@pytest.mark.parametrize("module", sorted(modules()))
def test_sizes(module: str):
    path = modules()[module]
    source = path.read_text()
    lines = source.count("\n")
    assert lines <= MAX_MODULE_LINES, f"{module}: {lines} lines (max {MAX_MODULE_LINES})"
    long = [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not long, f"{module}: functions over {MAX_FUNCTION_LINES} lines: {long}"


def _nested_imports(tree: ast.AST) -> list[int]:
    found: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            found.update(
                sub.lineno for sub in ast.walk(node) if isinstance(sub, ast.Import | ast.ImportFrom)
            )
    return sorted(found)


@pytest.mark.parametrize("module", sorted(modules()))
def test_imports_at_module_top(module: str):
    tree = ast.parse(modules()[module].read_text())
    assert not _nested_imports(tree), f"{module}: imports inside functions at lines " + str(
        _nested_imports(tree)
    )


def test_no_import_cycle():
    edges = graph()
    state: dict[str, int] = {}  # 1 visiting, 2 done
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                cycle = [*stack[stack.index(nxt) :], nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)


def test_arrows_point_down():
    upward = [
        f"{m} -> {t}"
        for m, targets in graph().items()
        for t in sorted(targets)
        if room(t) != room(m) and RANK[room(t)] >= RANK[room(m)] and room(m) != "__init__"
    ]
    assert not upward, "imports that run up or sideways:\n" + "\n".join(upward)


def test_hub_side_imports_nothing_of_the_service():
    wrong = [
        f"{m} -> {t}"
        for m, targets in graph().items()
        if room(m) == "hub"
        for t in sorted(targets)
        if room(t) != "hub"
    ]
    assert not wrong, wrong


def _imports_tests(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level:
            names = [node.module or ""]
        if any(n == "tests" or n.startswith("tests.") for n in names):
            return True
    return False


def test_production_and_demo_never_import_tests():
    paths = [*PACKAGE.rglob("*.py"), *(ROOT / "scripts").glob("demo*.py")]
    paths += [p for p in (ROOT / "scripts").glob("*.py") if p.name != "fuzz_api.py"]
    wrong = sorted({str(p.relative_to(ROOT)) for p in paths if _imports_tests(p)})
    assert not wrong, wrong


def _import_targets(node: ast.Import | ast.ImportFrom, package: list[str]) -> list[str]:
    """The dotted modules an import statement may load, relative ones resolved against
    ``package`` (the importing module's package, e.g. ``["tests", "unit"]``)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    base = package[: len(package) - node.level + 1] if node.level else []
    target = ".".join([*base, *([node.module] if node.module else [])])
    # ``from pkg import name`` may load the module pkg.name
    return [target, *(f"{target}.{a.name}" for a in node.names)] if target else []


def _is_test_module(name: str) -> bool:
    """Whether dotted ``name`` is (or lies in) a test module rather than the rig or a library:
    anything under ``tests`` but ``tests.rig``, and bare ``test_*``/``conftest`` names."""
    parts = name.split(".")
    if parts[0] == "tests":
        return not (len(parts) == 1 or parts[1] == "rig")
    return parts[0] == "conftest" or parts[0].startswith("test_")


def imported_test_modules(path: Path, root: Path = ROOT) -> list[str]:
    """``line N: target`` for each test module that the module at ``path`` imports; relative
    imports are resolved with ``path``'s place under ``root``."""
    package = list(path.relative_to(root).parent.parts)
    wrong = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, ast.Import | ast.ImportFrom):
            continue
        targets = _import_targets(node, package)
        # ``from tests import rig`` names the rig, ``from . import x`` a sibling module
        if isinstance(node, ast.ImportFrom) and targets[:1] in (["tests"], [".".join(package)]):
            targets = targets[1:]
        wrong += [f"line {node.lineno}: {t}" for t in targets if _is_test_module(t)]
    return wrong


def collected_modules() -> list[Path]:
    """``tests/**/test_*.py`` and ``conftest.py``: the modules pytest collects."""
    return sorted(
        p for p in TESTS.rglob("*.py") if p.name.startswith("test_") or p.name == "conftest.py"
    )


def test_no_test_module_imports_another():
    """Shared helpers live in tests/rig; a test module importing another would run its tests
    twice, or tie two suites together."""
    wrong = {
        str(p.relative_to(ROOT)): bad
        for p in collected_modules()
        if (bad := imported_test_modules(p))
    }
    assert len(collected_modules()) > 10, "the test modules were not found"
    assert not wrong, wrong


def test_the_checks_can_fail(tmp_path: Path):
    """The graph reader sees relative imports, nested imports and long functions."""
    src = "from .b import x\n\ndef f():\n    import os\n" + "    x = 1\n" * 70
    tree = ast.parse(src)
    assert _nested_imports(tree) == [4]
    (tmp_path / "a.py").write_text(src)
    assert imported_modules("pkg.a", tmp_path / "a.py", {"pkg.b"}) == {"pkg.b"}


TEST_IMPORTS = [
    # (source of tests/integration/test_a.py, whether it imports a test module)
    ("from tests.integration.test_builds import dockerfile", True),
    ("import tests.unit.conftest", True),
    ("from tests.integration import conftest", True),
    ("from tests import conftest", True),
    ("from . import conftest", True),
    ("from .test_builds import unique", True),
    ("from .conftest import make", True),
    ("from ..hub import test_webhooks", True),
    ("from ..unit.test_layout import RANK", True),
    ("import conftest", True),
    ("from test_builds import unique", True),
    ("def f():\n    from tests.e2e.test_compose import Compose", True),
    ("from tests.rig.engine import docker", False),
    ("from tests.rig import engine", False),
    ("from tests import rig", False),
    ("import tests.rig.wait", False),
    ("from .. import rig", False),
    ("from ..rig.wait import wait_for", False),
    ("import os\nimport pytest\nfrom testfixtures import compare", False),
    ("from repo2docker_service.builds.model import Build", False),
]


@pytest.mark.parametrize(("source", "bad"), TEST_IMPORTS)
def test_the_test_import_check_can_fail(tmp_path: Path, source: str, bad: bool):
    """Absolute, relative, nested and bare imports of test modules are seen; the rig's not."""
    module = tmp_path / "tests" / "integration" / "test_a.py"
    module.parent.mkdir(parents=True)
    module.write_text(f"from __future__ import annotations\n{source}\n")
    found = imported_test_modules(module, root=tmp_path)
    assert bool(found) is bad, found
    if bad:
        assert all(line.startswith(("line 2: ", "line 3: ")) for line in found), found


# ---------------------------------------------------------------------------- handlers
#: Handler methods that need no hub login, each with the reason.
PUBLIC_METHODS = {
    ("HealthHandler", "get"): "liveness probe: no authentication, no secrets",
    ("ReadyHandler", "get"): (
        "readiness probe (probes carry no token): the body names parts, up/down, since when, "
        "what to check and queue counts, never an address, version, user or credential"
    ),
    ("OpenAPIHandler", "get"): "the API contract is public, like the hub's REST API docs",
    ("MetricsHandler", "get"): "checks metrics_require_auth itself, then needs_scope('admin')",
    ("WebhookHandler", "post"): "authenticated by webhook_secret (HMAC), not by the hub",
    ("OAuthCallbackHandler", "get"): "JupyterHub's own OAuth callback",
    ("NotFoundPageHandler", "get"): "a 404 page for unknown addresses, telling nothing",
}


def _our_methods(cls: type) -> list[str]:
    """HTTP methods defined by this project's classes in ``cls``'s MRO (not tornado's)."""
    names = []
    for method in ("get", "post", "put", "patch", "delete", "head", "options"):
        owner = next((k for k in cls.__mro__ if method in vars(k)), None)
        if owner is not None and owner.__module__.startswith("repo2docker_service"):
            names.append(method)
    return names


def test_every_handler_method_names_its_scope():
    from repo2docker_service.handlers import default_handlers

    missing = sorted(
        {
            f"{cls.__name__}.{method}"
            for _, cls in default_handlers
            for method in _our_methods(cls)
            if not hasattr(getattr(cls, method), "__scope__")
            and (cls.__name__, method) not in PUBLIC_METHODS
        }
    )
    assert not missing, (
        "decorate these with auth.needs_scope (or list them in PUBLIC_METHODS with a reason): "
        + ", ".join(missing)
    )


def _sample_path(route: str) -> str:
    """``route`` (a tornado regex) with each named group replaced by ``x``."""
    out, i = [], 0
    while i < len(route):
        if route.startswith("(?P<", i):
            depth, j = 0, i
            while True:
                depth += {"(": 1, ")": -1}.get(route[j], 0)
                if depth == 0:
                    break
                j += 1
            out.append("x")
            i = j + 1
        else:
            out.append(route[i])
            i += 1
    return "".join(out).rstrip("?").rstrip("/")


def _openapi_patterns() -> list[re.Pattern[str]]:
    spec = yaml.safe_load((PACKAGE / "openapi.yaml").read_text())
    return [
        re.compile(re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(path)) + "/?")
        for path in spec["paths"]
    ]


def test_every_api_route_is_in_the_openapi_document():
    from repo2docker_service.handlers import default_handlers

    patterns = _openapi_patterns()
    undocumented = [
        route
        for route, _ in default_handlers
        if route != r"api/.*"
        and (route.startswith("api/") or route in ("health", "ready", "metrics"))
        and not any(p.fullmatch("/" + _sample_path(route)) for p in patterns)
    ]
    assert not undocumented, f"add these routes to repo2docker_service/openapi.yaml: {undocumented}"


def test_sample_path_and_patterns_can_fail():
    assert _sample_path(r"api/builds/(?P<build_id>[A-Za-z0-9_-]{1,64})/logs") == "api/builds/x/logs"
    assert not any(p.fullmatch("/api/no/such/route") for p in _openapi_patterns())


def _reads_application(tree: ast.AST) -> list[int]:
    return sorted(
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "self"
        and node.attr in ("application", "settings", "app")
    )


@pytest.mark.parametrize("module", sorted(m for m in modules() if room(m) in ("handlers", "auth")))
def test_handlers_use_services_not_the_application(module: str):
    lines = _reads_application(ast.parse(modules()[module].read_text()))
    assert not lines, (
        f"{module} reads the Application (self.application/.settings/.app) at lines {lines}: "
        "use self.services / self.conf (context.Services)"
    )


def test_reading_the_application_is_caught():
    assert _reads_application(ast.parse("self.settings['x']\nself.conf.x\n")) == [1]
