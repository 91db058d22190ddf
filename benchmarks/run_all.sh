#!/usr/bin/env bash
# Run every benchmark once, one after the other, and keep the output.
# Usage: bash benchmarks/run_all.sh [output file]
#        (default: ${TMPDIR:-/tmp}/repo2docker-service-benchmarks-<UTC time>.txt, outside the repo)
# Needs the real parts from `bash scripts/setup.sh` (dockerd, buildx, configurable-http-proxy,
# local/debian:bookworm). Each script starts its own hub + service + git server on 127.0.0.1,
# prints its figures with GOAL lines ("met" or "MISSED") and exits 0 even when a goal is missed;
# this script exits non-zero only if a benchmark crashed.
set -uo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
OUT="${1:-${TMPDIR:-/tmp}/repo2docker-service-benchmarks-$(date -u +%Y%m%dT%H%M%SZ).txt}"
PY="$REPO/.venv/bin/python"

failed=0
{
  echo "# repo2docker-service benchmarks, $(date -u +%FT%TZ), $(nproc) cores, $(uname -r)"
  echo "# commit $(git rev-parse --short HEAD 2>/dev/null || echo '?') (plus uncommitted changes, if any)"
} | tee "$OUT"
for bench in bench_build_overhead bench_cache_hit bench_images_list bench_sse_fanout bench_prune \
  bench_concurrent_dedup bench_memory bench_binder bench_ref_resolution bench_cache_from \
  bench_launch; do
  # each benchmark is bounded in time as well (the scripts bound their own loops too)
  if ! timeout 2400 "$PY" "benchmarks/$bench.py" 2>&1 | tee -a "$OUT"; then
    echo "!! $bench crashed (see above)" | tee -a "$OUT"
    failed=1
  fi
done
echo | tee -a "$OUT"
echo "== summary (GOAL lines)" | tee -a "$OUT"
grep -E '^GOAL|^MISSED' "$OUT" | tee -a "$OUT.summary"
cat "$OUT.summary" >>"$OUT" && rm -f "$OUT.summary"
echo "full output: $OUT"
exit "$failed"
