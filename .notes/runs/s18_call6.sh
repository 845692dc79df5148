#!/usr/bin/env bash
# session 18, call 6 (after the review commit 152aa5e): bench.py's table first (short), then the whole
# GPU suite (pytest -q tests, test_compile.py included) in the time left.
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false NVRTC_ATTN_CACHE_DIR=$PWD/.kcache
t0=$(date +%s); el() { echo $(( $(date +%s) - t0 )); }
timeout 60 python3 tools/bench.py --compile all > $OUT/compile.log 2>&1; echo "compile rc=$? $(el)s"
timeout 90 python3 tools/bench.py --json $OUT/bench.json > $OUT/bench.log 2>&1; echo "bench rc=$? $(el)s"
grep -E "^ *(W[0-9]|run\(\)|ceiling)" $OUT/bench.log | grep -vE "^W[0-9a-z]+: " | cut -c1-64
left=$(( ${SUITE_END:-470} - $(el) ))
timeout $left python3 -m pytest -q -n 14 -p no:cacheprovider -rf tests > $OUT/pytest.txt 2>&1; echo "pytest rc=$? $(el)s (limit ${left}s)"
tail -1 $OUT/pytest.txt | cut -c1-200; grep -E "^FAILED|^ERROR" $OUT/pytest.txt | head -10 | cut -c1-200
grep -cE "PASSED|passed" $OUT/pytest.txt >/dev/null; grep -oE "\[ *[0-9]+%\]" $OUT/pytest.txt | tail -1
