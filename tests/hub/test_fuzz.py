"""Schemathesis against the served api/openapi.yaml: no 5xx, every response as documented.

The fast profile runs here (a few cases per operation); `scripts/fuzz_api.py` is the
10,000-request run whose figure goes in the notes.
"""

import pytest

from scripts.fuzz_api import run_schemathesis, served, start_fuzz_hub

pytestmark = pytest.mark.hub


def test_fuzz_fast_profile(tmp_path, docker_engine):
    """The service answers from Docker, so the engine must be up (else 502s, not bugs)."""
    hub = start_fuzz_hub(tmp_path / "hub")
    try:
        rc = run_schemathesis(hub, max_examples=8, seed=1)
        total, errors = served(hub)
    finally:
        hub.stop()
    assert errors == 0, f"{errors} responses >= 500; see {tmp_path}/hub/hub.log"
    assert total >= 100, f"only {total} requests reached the service"
    assert rc == 0, "schemathesis found failures (see the output above)"
