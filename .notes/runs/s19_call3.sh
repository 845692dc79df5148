#!/usr/bin/env bash
# session 19, call 3 (run inline as this, on the s19 tree): every build compiled, the whole GPU suite
# (test_compile.py included), the demo.
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 NVRTC_ATTN_CACHE_DIR=$PWD/.kcache; t0=$(date +%s)
timeout 100 python3 tools/bench.py --compile all > $OUT/compile.log 2>&1; echo "compile rc=$? $(( $(date +%s) - t0 ))s"
timeout 470 python3 -m pytest -q -n 14 -p no:cacheprovider -rf tests > $OUT/pytest.txt 2>&1; echo "pytest rc=$? $(( $(date +%s) - t0 ))s"
grep -E "passed|failed" $OUT/pytest.txt | tail -1; grep -E "^FAILED|^ERROR" $OUT/pytest.txt | head -15 | cut -c1-200
timeout 20 python3 -m nvrtc_attn > $OUT/demo.log 2>&1; echo "demo rc=$? $(( $(date +%s) - t0 ))s"; tail -2 $OUT/demo.log | cut -c1-200
