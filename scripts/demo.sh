#!/usr/bin/env bash
# Bring up a demo on this machine: Docker + registry (setup.sh), a JupyterHub with
# repo2docker-service, and the bundled example repository served over git on 127.0.0.1.
# Usage (as root on Debian bookworm): bash scripts/demo.sh     (Ctrl-C stops the hub)
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
bash scripts/setup.sh
exec .venv/bin/python scripts/demo.py "$@"
