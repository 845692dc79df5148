#!/usr/bin/env bash
# session 18, call 2: cProfile of the wrapper's plan() on the GPU machine's host (torch index tensors)
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 NVRTC_ATTN_CACHE_DIR=/tmp/kc18
t0=$(date +%s); el() { echo $(( $(date +%s) - t0 )); }
timeout 90 python3 tools/bench.py --compile needed > $OUT/compile.log 2>&1; echo "compile rc=$? $(el)s"
timeout 150 python3 .notes/runs/s18_plan_prof.py W4,S4 300 > $OUT/prof.log 2>&1; echo "prof rc=$? $(el)s"
grep -E "^== |us$|failed" $OUT/prof.log
timeout 120 python3 tools/bench.py --no-ceiling --json $OUT/bench.json > $OUT/bench.log 2>&1; echo "bench rc=$? $(el)s"
grep -E "^ *(W[0-9]|run|plan ms)" $OUT/bench.log | grep -E "\||run|plan ms" | cut -c1-70
