#!/usr/bin/env bash
# session 16, call 4 (one call for what is left of the session): the A/B of 51d564d (A) against ab/base
# (900b847) on the workloads its SASS change touches most, then the whole GPU suite, then bench.py's table.
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 NVRTC_ATTN_CACHE_DIR=$PWD/.kcache
t0=$(date +%s); el() { echo $(( $(date +%s) - t0 )); }
timeout 60 python3 tools/bench.py --compile all > $OUT/compile.log 2>&1; echo "compile rc=$? $(el)s"
timeout 190 bash tools/ab.sh --rounds 2 --iters 20 W2p1,W2,W7,W6 > $OUT/ab.log 2>&1; echo "ab rc=$? $(el)s"
tail -8 $OUT/ab.log | cut -c1-200
timeout 40 python3 -m nvrtc_attn > $OUT/demo.log 2>&1; echo "demo rc=$? $(el)s"; tail -1 $OUT/demo.log
timeout 330 python3 -m pytest -q -n 12 -p no:cacheprovider -rf tests > $OUT/pytest.txt 2>&1; echo "pytest rc=$? $(el)s"
tail -2 $OUT/pytest.txt; grep -E "^FAILED" $OUT/pytest.txt | head -10 | cut -c1-200
left=$(( 585 - $(el) ))
[ $left -gt 30 ] && { timeout $left python3 tools/bench.py --json $OUT/bench.json > $OUT/bench.log 2>&1; echo "bench rc=$? $(el)s"; grep -E "^ *(W|run|host|ceiling|GEMM|gemm)" $OUT/bench.log | cut -c1-140 | tail -30; }
