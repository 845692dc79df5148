#!/usr/bin/env bash
# Session 20, call 4 (closing, final tree): GPU suite without test_compile.py, the demo, bench.py on
# workloads.json and on the fp8 few-query batches (s20_fp8_short.json).
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 NVRTC_ATTN_CACHE_DIR=$PWD/.kcache; t0=$(date +%s)
timeout 60 python3 tools/bench.py --compile all > $OUT/compile.log 2>&1; echo "compile rc=$? $(( $(date +%s) - t0 ))s"
timeout 250 python3 -m pytest -q -n 14 -p no:cacheprovider -rf tests --ignore=tests/test_compile.py > $OUT/pytest.txt 2>&1; echo "pytest rc=$? $(( $(date +%s) - t0 ))s"
grep -E "passed|failed" $OUT/pytest.txt | tail -1; grep -E "^FAILED|^ERROR" $OUT/pytest.txt | head -10 | cut -c1-200
timeout 20 python3 -m nvrtc_attn > $OUT/demo.log 2>&1; echo "demo rc=$? $(( $(date +%s) - t0 ))s"; tail -1 $OUT/demo.log | cut -c1-200
timeout 90 python3 tools/bench.py --plan-rounds 2 --json $OUT/bench.json > $OUT/bench.log 2>&1; echo "bench rc=$? $(( $(date +%s) - t0 ))s"
grep -E "^ *(W[0-9]|run\(\)|plan ms|GEMM)" $OUT/bench.log | grep -vE "^W[0-9a-z]+: " | cut -c1-80
timeout 40 python3 tools/bench.py --workloads .notes/runs/s20_fp8_short.json --no-host-cost --plan-rounds 1 > $OUT/bench_f8short.log 2>&1; echo "bench f8 rc=$?"
grep -E "^ *(W[0-9]|S[0-9])" $OUT/bench_f8short.log | grep -vE "^[WS][0-9a-z]+: " | cut -c1-80
