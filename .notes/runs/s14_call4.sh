#!/usr/bin/env bash
# session 14, call 4: is W1's plan() 0.54 ms in s14r3 (the first workload bench.py plans) a warm-up
# effect? bench.py with W1 last, then s13_plan_warm.py (first 20 calls, after 200 more, gc frozen / off).
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false NVRTC_ATTN_CACHE_DIR=$PWD/.kcache
t0=$(date +%s); el() { echo $(( $(date +%s) - t0 )); }
timeout 90 python3 tools/bench.py --compile needed > $OUT/compile.log 2>&1; echo "compile rc=$? $(el)s"
timeout 60 python3 tools/bench.py --only W10,W9,W4,W1 --no-ceiling --no-host-cost --plan-iters 50 --json $OUT/bench.json > $OUT/bench.log 2>&1
echo "bench rc=$? $(el)s"; grep -E "^W[0-9]+:" $OUT/bench.log | cut -c1-110
timeout 40 python3 .notes/runs/s13_plan_warm.py W1,W4,W9,W10 > $OUT/warm.txt 2>&1; echo "warm rc=$? $(el)s"; grep "^W" $OUT/warm.txt
