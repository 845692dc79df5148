#!/usr/bin/env bash
# session 6 device call 1: compile, compute-sanitizer on fp8 + window, fp8 bench (bf16 vs f16 q), key-block A/B
export PYTHONPATH=$PWD NVRTC_ATTN_CACHE_DIR=/tmp/kc_A PYTHONUNBUFFERED=1
t0=$(date +%s)
python3 tools/bench.py --compile all > $OUT/compile.log 2>&1; echo "compile rc=$? $(( $(date +%s)-t0 ))s"
timeout 150 compute-sanitizer --tool memcheck --error-exitcode 9 python3 tools/sanitizer_case.py > $OUT/memcheck.log 2>&1; echo "memcheck rc=$? $(( $(date +%s)-t0 ))s"; tail -3 $OUT/memcheck.log
timeout 200 compute-sanitizer --tool racecheck --error-exitcode 9 python3 tools/sanitizer_case.py > $OUT/racecheck.log 2>&1; echo "racecheck rc=$? $(( $(date +%s)-t0 ))s"; tail -3 $OUT/racecheck.log
timeout 120 python3 tools/bench.py --only W1f8,W2f8,W7f8 --no-ceiling --no-host-cost --json $OUT/f8.json > $OUT/f8.log 2>&1; echo "f8 rc=$? $(( $(date +%s)-t0 ))s"
timeout 120 python3 tools/bench.py --workloads tools/f16q_workloads.json --no-ceiling --no-host-cost --json $OUT/f8h.json > $OUT/f8h.log 2>&1; echo "f8h rc=$? $(( $(date +%s)-t0 ))s"
grep -E "^ *W" $OUT/f8.log $OUT/f8h.log | cut -c1-120
