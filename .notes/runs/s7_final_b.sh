#!/usr/bin/env bash
# session 7 closing run, part 2: tools/bench.py on every workload (GEMM ceiling, host costs), then the fp8-MMA rows
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 NVRTC_ATTN_CACHE_DIR=/tmp/kc_final
t0=$(date +%s)
python3 tools/bench.py --compile all > $OUT/compile.log 2>&1; echo "compile rc=$? $(( $(date +%s)-t0 ))s"
timeout 200 python3 tools/bench.py --json $OUT/bench.json > $OUT/bench.log 2>&1; echo "bench rc=$? $(( $(date +%s)-t0 ))s"
timeout 100 python3 tools/bench.py --fp8-mma --only W2f8q,W7f8q --no-ceiling --no-host-cost > $OUT/bench_mma.log 2>&1; echo "mma rc=$? $(( $(date +%s)-t0 ))s"
grep -E "^ *(W|GEMM|run|host)" $OUT/bench.log | cut -c1-140 | tail -32; grep -E "^W" $OUT/bench_mma.log | cut -c1-120
