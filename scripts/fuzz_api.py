"""Fuzz the served OpenAPI contract with schemathesis against a real hub + service.

Starts a JupyterHub (tests/rig/hub.py) whose service may only reach git on 127.0.0.1,
runs `schemathesis run` with an admin user's token against every operation, then counts,
from the service's own request log, how many requests it answered and how many were >= 500.

    .venv/bin/python scripts/fuzz_api.py     # the 10,000+ request run (~6 min)

Exit status: 0 when schemathesis found no failure, at least --min-requests requests reached
the service, and none answered >= 500.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.rig.hub import Hub, start_hub  # noqa: E402

SERVICE_CONFIG = """
c.Repo2DockerService.allowed_repo_schemes = ["http"]
# fuzzed repo URLs must never leave this machine
c.Repo2DockerService.allowed_repo_hosts = ["127.0.0.1"]
c.Repo2DockerService.build_rate_limit = 0
c.Repo2DockerService.image_prefix = "r2dfuzz-"
"""
CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
    ]
)
REQUEST_RE = re.compile(r"Repo2DockerService\] (\d{3}) [A-Z]+ /services/repo2docker/")


def start_fuzz_hub(workdir: Path) -> Hub:
    return start_hub(workdir, service_config=SERVICE_CONFIG)


def run_schemathesis(hub: Hub, *, max_examples: int, seed: int, workers: int = 1) -> int:
    """Run schemathesis against the hub's service; returns its exit code.

    One worker: with several, schemathesis builds hypothesis strategies in threads, and
    CPython 3.11.7's `ast` module is not thread-safe there (CPython gh-106905: a random
    "SystemError: AST constructor recursion depth mismatch" that failed CI once).
    """
    argv = [
        str(Path(sys.executable).parent / "schemathesis"),
        "run",
        hub.service_url + "api/openapi.yaml",
        "--url",
        hub.service_url.rstrip("/"),
        "-H",
        f"Authorization: token {hub.token_for('admin1')}",
        "--checks",
        CHECKS,
        "--max-examples",
        str(max_examples),
        "--seed",
        str(seed),
        "--workers",
        str(workers),
        "--no-shrink",
        "--generation-database",
        "none",
        "--request-timeout",
        "30",
        "--no-color",
    ]
    return subprocess.run(argv, check=False).returncode


def served(hub: Hub) -> tuple[int, int]:
    """(requests the service answered, of which >= 500), from its request log."""
    codes = [int(m.group(1)) for m in REQUEST_RE.finditer(hub.log_text())]
    return len(codes), sum(1 for c in codes if c >= 500)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--max-examples", type=int, default=1500, help="cases per operation")
    parser.add_argument("--min-requests", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=20261123)
    args = parser.parse_args()

    hub = start_fuzz_hub(Path(tempfile.mkdtemp(prefix="r2ds-fuzz-")))
    try:
        before, _ = served(hub)
        start = time.monotonic()
        rc = run_schemathesis(hub, max_examples=args.max_examples, seed=args.seed)
        elapsed = time.monotonic() - start
        total, errors = served(hub)
        total -= before
    finally:
        hub.stop()
    print(
        f"\nfuzz: {total} requests answered by the service in {elapsed:.0f} s, "
        f"{errors} with status >= 500; schemathesis exit {rc}"
    )
    ok = rc == 0 and errors == 0 and total >= args.min_requests
    print("fuzz: PASS" if ok else "fuzz: FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
