#!/usr/bin/env bash
# session 6 closing run, part 2: the demo, tools/bench.py on every workload, the fp8-MMA rows
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 NVRTC_ATTN_CACHE_DIR=/tmp/kc_final
t0=$(date +%s)
python3 tools/bench.py --compile all > $OUT/compile.log 2>&1; echo "compile rc=$? $(( $(date +%s)-t0 ))s"
timeout 120 python3 -m nvrtc_attn > $OUT/demo.log 2>&1; echo "demo rc=$? $(( $(date +%s)-t0 ))s"; tail -3 $OUT/demo.log
timeout 300 python3 tools/bench.py --json $OUT/bench.json > $OUT/bench.log 2>&1; echo "bench rc=$? $(( $(date +%s)-t0 ))s"
timeout 90 python3 tools/bench.py --fp8-mma --only W2f8q,W7f8q --no-ceiling --no-host-cost --json $OUT/bench_mma.json > $OUT/bench_mma.log 2>&1; echo "mma rc=$?"
grep -A40 "^    W |" $OUT/bench.log | cut -c1-200; grep -E "host|ceiling" $OUT/bench.log | head -5; grep -E "^W2f8q|^W7f8q" $OUT/bench_mma.log | cut -c1-120
