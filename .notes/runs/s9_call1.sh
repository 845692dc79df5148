#!/usr/bin/env bash
# session 9, call 1 (run on branch pdl-prefill merged with main 874f460): compile every build into .kcache (kept
# on the warm machine for call 2), A/B against ab/base (091779a: main's kernels, merge alone
# programmatic), chained layers with PDL on/off, demo, the whole bench (fp8_mma rows too)
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false NVRTC_ATTN_CACHE_DIR=$PWD/.kcache
t0=$(date +%s)
python3 tools/bench.py --compile all > $OUT/compile.log 2>&1; echo "compile rc=$? $(( $(date +%s)-t0 ))s"; tail -1 $OUT/compile.log
AB_TIMEOUT=100 timeout 240 bash tools/ab.sh --rounds 2 W1,W2,W4,W8,W9,W10,W2f8 > $OUT/ab.log 2>&1; echo "ab rc=$? $(( $(date +%s)-t0 ))s"
tail -14 $OUT/ab.log
timeout 60 python3 tools/pdl_chain.py --only W8,W9,W1,W4,W10 --layers 40 --rounds 5 > $OUT/chain.log 2>&1; echo "chain rc=$? $(( $(date +%s)-t0 ))s"
tail -12 $OUT/chain.log
timeout 40 python3 -m nvrtc_attn > $OUT/demo.log 2>&1; echo "demo rc=$?"; tail -2 $OUT/demo.log
timeout 70 python3 tools/bench.py --json $OUT/bench.json > $OUT/bench.log 2>&1; echo "bench rc=$? $(( $(date +%s)-t0 ))s"
timeout 40 python3 tools/bench.py --fp8-mma --only W2f8q,W7f8q --no-ceiling --no-host-cost > $OUT/bench_mma.log 2>&1; echo "mma rc=$? $(( $(date +%s)-t0 ))s"
grep -E "^ *(W|GEMM|run|host)" $OUT/bench.log | cut -c1-140 | tail -32; grep -E "^W" $OUT/bench_mma.log | cut -c1-120
