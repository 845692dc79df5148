#!/usr/bin/env bash
# session 13: whole GPU suite, demo, bench (fp8_mma rows too) and plan()'s parts on the working tree
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false NVRTC_ATTN_CACHE_DIR=$PWD/.kcache
t0=$(date +%s)
[ -d .kcache ] || { python3 tools/bench.py --compile all > $OUT/compile.log 2>&1; echo "compile rc=$? $(( $(date +%s)-t0 ))s"; }
timeout 440 python3 -m pytest -q -n 12 -p no:cacheprovider -rf tests > $OUT/pytest.txt 2>&1; echo "pytest rc=$? $(( $(date +%s)-t0 ))s"
tail -4 $OUT/pytest.txt
timeout 30 python3 -m nvrtc_attn > $OUT/demo.log 2>&1; echo "demo rc=$?"; tail -2 $OUT/demo.log
timeout 50 python3 tools/bench.py --json $OUT/bench.json > $OUT/bench.log 2>&1; echo "bench rc=$? $(( $(date +%s)-t0 ))s"
timeout 25 python3 tools/bench.py --fp8-mma --only W2f8q,W7f8q --no-ceiling --no-host-cost > $OUT/bench_mma.log 2>&1; echo "mma rc=$?"
grep -E "^ *(W|GEMM|run|host)" $OUT/bench.log | cut -c1-140 | tail -21; grep -E "^W" $OUT/bench_mma.log | cut -c1-120 | tail -2
timeout 20 python3 .notes/runs/s13_plan_parts.py W4,W10,W2,W8 > $OUT/parts.txt 2>&1; echo "parts rc=$?"; grep -E "^W|make_plan|copy_host|expand|check_plan|split_rows" $OUT/parts.txt
