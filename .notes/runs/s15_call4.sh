#!/usr/bin/env bash
# session 15, call 4: the closing run on 2d4a7d3's tree (no kernel change landed this session):
# compile, demo, the whole GPU suite, then bench.py's full table.
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false NVRTC_ATTN_CACHE_DIR=$PWD/.kcache
t0=$(date +%s); el() { echo $(( $(date +%s) - t0 )); }
timeout 90 python3 tools/bench.py --compile all > $OUT/compile.log 2>&1; echo "compile rc=$? $(el)s"
timeout 40 python3 -m nvrtc_attn > $OUT/demo.log 2>&1; rc=$?; echo "demo rc=$rc $(el)s"; tail -2 $OUT/demo.log
[ $rc -eq 0 ] || exit 1
timeout ${PYTEST_S:-420} python3 -m pytest -q -n 12 -p no:cacheprovider -rf tests > $OUT/pytest.txt 2>&1; echo "pytest rc=$? $(el)s"
tail -2 $OUT/pytest.txt; grep -E "^FAILED" $OUT/pytest.txt | head -20 | cut -c1-200
left=$(( 590 - $(el) ))
[ $left -gt 45 ] && { timeout $left python3 tools/bench.py --json $OUT/bench.json > $OUT/bench.log 2>&1; echo "bench rc=$? $(el)s"; grep -E "^ *(W|run|host|ceiling|GEMM|gemm)" $OUT/bench.log | cut -c1-140 | tail -30; }
