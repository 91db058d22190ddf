#!/usr/bin/env bash
# Install everything the tests need (idempotent) and run every test.
# Usage (as root on Debian bookworm): bash scripts/test.sh [extra pytest args]
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

start=$(date +%s)
bash scripts/setup.sh
echo "== lint (ruff)"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== types (mypy --strict, config in pyproject.toml)"
.venv/bin/mypy

echo "== tests"
set +e
.venv/bin/python -m pytest -p no:cacheprovider -ra --durations=15 "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "FAIL: pytest collected no tests" >&2
  exit 1
fi
echo "== total $(( $(date +%s) - start )) s (pytest exit $rc)"
exit "$rc"
