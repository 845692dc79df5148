#!/usr/bin/env bash
# Session 29, call 2: tools/bench.py (no FlashInfer in the run: peers from ../shared/bench/peers_h200.md)
# on the e5m2q tree, then memcheck of tools/sanitizer_case.py with what time is left.
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 NVRTC_ATTN_CACHE_DIR=/tmp/kc
t0=$(date +%s); el() { echo $(( $(date +%s) - t0 )); }
lim=${1:-300}
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem --format=csv,noheader
timeout $(( lim - 90 )) python3 tools/bench.py --json $OUT/bench.json > $OUT/bench.log 2>&1; echo "bench rc=$? $(el)s"
grep -E "^ *(W[0-9]|run\(\)|plan ms|ceiling|GEMM)" $OUT/bench.log | grep -vE "^W[0-9a-z]+: " | cut -c1-150
timeout $(( lim - 5 - $(el) )) compute-sanitizer --tool memcheck python3 tools/sanitizer_case.py > $OUT/memcheck.log 2>&1; echo "memcheck rc=$? $(el)s"; tail -3 $OUT/memcheck.log | cut -c1-200
