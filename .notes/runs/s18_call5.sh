#!/usr/bin/env bash
# session 18, call 5: the test s18r4 failed on its regex (fixed), test_wrapper.py whole, then bench.py
# again (a second round-robin plan() sample on the closing tree; kernels as in s18r4).
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 NVRTC_ATTN_CACHE_DIR=$PWD/.kcache
t0=$(date +%s); el() { echo $(( $(date +%s) - t0 )); }
timeout 60 python3 tools/bench.py --compile needed > $OUT/compile.log 2>&1; echo "compile rc=$? $(el)s"
timeout 120 python3 -m pytest -q -n 8 -p no:cacheprovider -rf tests/test_wrapper.py tests/test_split_kv.py > $OUT/pytest.txt 2>&1; echo "pytest rc=$? $(el)s"
grep -E "passed|failed" $OUT/pytest.txt | tail -1; grep -E "^FAILED|^ERROR" $OUT/pytest.txt | head -5 | cut -c1-200
timeout 100 python3 tools/bench.py --json $OUT/bench.json > $OUT/bench.log 2>&1; echo "bench rc=$? $(el)s"
grep -E "^ *(W[0-9]|run\(\))" $OUT/bench.log | grep -vE "^W[0-9a-z]+: " | cut -c1-64
