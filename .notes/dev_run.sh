#!/bin/bash
# One device call: sm90 load-path tests, a quick TMA-vs-gather timing, then (optional) full tests.
# usage: bash .notes/dev_run.sh [full]
set -o pipefail
export PYTHONUNBUFFERED=1 PYTHONPATH=. NVRTC_ATTN_CACHE_DIR=$PWD/.kcache
OUT=${OUT:-/tmp/out}; mkdir -p $OUT
nvidia-smi -L
[ -n "$NOLOADS" ] || timeout 200 python3 -m pytest -q -x tests/test_sm90_loads.py 2>&1 | tr -d '\000' > $OUT/loads.txt; rc=$?
tail -25 $OUT/loads.txt
if [ -z "$NOLOADS" ] && [ $rc -ne 0 ]; then echo "LOADS rc=$rc"; exit 1; fi
for kv in ${KV:-auto gather}; do
  timeout 150 python3 tools/bench.py --only ${ONLY:-W1,W2,W2p64,W3} --no-peer --iters 20 --kv-load $kv 2>&1 | tr -d '\000' | tail -12
done
if [ "$1" = full ]; then
  timeout 240 python3 -m pytest -q tests 2>&1 | tr -d '\000' > $OUT/pytest.txt; echo "pytest rc=$?"
  tail -15 $OUT/pytest.txt
fi
