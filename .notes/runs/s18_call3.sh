#!/usr/bin/env bash
# session 18, call 3: plan() with and without draining the GPU between calls (s18_plan_sync.py), then
# bench.py's round-robin plan() pass again (no GPU timing change since s18r2's tree: host-only commits)
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 NVRTC_ATTN_CACHE_DIR=/tmp/kc18
t0=$(date +%s); el() { echo $(( $(date +%s) - t0 )); }
timeout 90 python3 tools/bench.py --compile needed > $OUT/compile.log 2>&1; echo "compile rc=$? $(el)s"
timeout 100 python3 .notes/runs/s18_plan_sync.py W4,W8,W1,W5,S4 > $OUT/sync.log 2>&1; echo "sync rc=$? $(el)s"; cat $OUT/sync.log | tail -16
timeout 120 python3 tools/bench.py --no-ceiling --no-host-cost --iters 10 --json $OUT/bench.json > $OUT/bench.log 2>&1; echo "bench rc=$? $(el)s"
grep -E "^ *W[0-9]" $OUT/bench.log | grep "|" | cut -c1-52 | tr '\n' ';'
