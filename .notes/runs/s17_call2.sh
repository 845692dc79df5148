#!/usr/bin/env bash
# session 17, call 2: the closing run on d782709 (branch desc: descriptors stepped in uniform registers,
# all head dims): compile, demo, the whole GPU suite, an A/B against ab/base (fd60a73, main) on every
# workload, bench.py's table, then compute-sanitizer memcheck on tools/sanitizer_case.py.
# prep: bash tools/ab.sh prep fd60a73 base; carry ["ab"].
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false NVRTC_ATTN_CACHE_DIR=$PWD/.kcache
t0=$(date +%s); el() { echo $(( $(date +%s) - t0 )); }
timeout 60 python3 tools/bench.py --compile all > $OUT/compile.log 2>&1; echo "compile rc=$? $(el)s"
timeout 40 python3 -m nvrtc_attn > $OUT/demo.log 2>&1; rc=$?; echo "demo rc=$rc $(el)s"; tail -2 $OUT/demo.log
timeout 370 python3 -m pytest -q -n 12 -p no:cacheprovider -rf tests > $OUT/pytest.txt 2>&1; echo "pytest rc=$? $(el)s"
tail -2 $OUT/pytest.txt; grep -E "^FAILED" $OUT/pytest.txt | head -20 | cut -c1-200
left=$(( 520 - $(el) ))
[ $left -gt 40 ] && { timeout $left bash tools/ab.sh --rounds 2 --iters 20 W1,W2,W2p1,W2p64,W3,W4,W5,W6,W7,W8,W9,W10,W1f8,W2f8,W7f8,W2f8q,W7f8q > $OUT/ab.log 2>&1; echo "ab rc=$? $(el)s"; tail -20 $OUT/ab.log | cut -c1-120; }
left=$(( 560 - $(el) ))
[ $left -gt 15 ] && { timeout $left python3 tools/bench.py --json $OUT/bench.json > $OUT/bench.log 2>&1; echo "bench rc=$? $(el)s"; grep -E "^ *(W|run|host|ceiling|GEMM|gemm)" $OUT/bench.log | cut -c1-140 | tail -22; }
left=$(( 590 - $(el) ))
[ $left -gt 15 ] && { timeout $left compute-sanitizer --tool memcheck python3 tools/sanitizer_case.py > $OUT/memcheck.log 2>&1; echo "memcheck rc=$? $(el)s"; grep -c "Invalid\|out of bounds" $OUT/memcheck.log; tail -2 $OUT/memcheck.log; }
