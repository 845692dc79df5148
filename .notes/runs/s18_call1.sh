#!/usr/bin/env bash
# session 18, call 1: plan() host-time diagnostic on the GPU machine (wall vs CPU time, driver part,
# round robin over every workload), then bench.py's table without ceiling for plan() next to it.
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 NVRTC_ATTN_CACHE_DIR=/tmp/kc18
t0=$(date +%s); el() { echo $(( $(date +%s) - t0 )); }
nproc; cat /proc/loadavg; lscpu | grep -E "Model name|Thread|Core|Socket|MHz" | head -8
timeout 90 python3 tools/bench.py --compile needed > $OUT/compile.log 2>&1; echo "compile rc=$? $(el)s"; tail -1 $OUT/compile.log
timeout 120 python3 .notes/runs/s18_plan_diag.py 8 20 > $OUT/diag1.log 2>&1; echo "diag rc=$? $(el)s"; cat $OUT/diag1.log | tail -20
cat /proc/loadavg
timeout 100 python3 tools/bench.py --no-ceiling --no-host-cost --json $OUT/bench.json > $OUT/bench.log 2>&1; echo "bench rc=$? $(el)s"
grep -E "^ *W[0-9]" $OUT/bench.log | grep "|" | cut -c1-60
taskset -c 3 timeout 60 python3 .notes/runs/s18_plan_diag.py 4 20 > $OUT/diag2.log 2>&1; echo "diag pinned rc=$? $(el)s"; tail -18 $OUT/diag2.log
cat /proc/loadavg; top -bn1 | head -15
