#!/usr/bin/env bash
# session 14, call 2: tiles claimed at run time (sm90). Compile, demo (a hang shows here first), the
# whole GPU suite, then an interleaved A/B against c27fadd (ab/base, carried) with what time is left.
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false NVRTC_ATTN_CACHE_DIR=$PWD/.kcache
t0=$(date +%s); el() { echo $(( $(date +%s) - t0 )); }
timeout 90 python3 tools/bench.py --compile all > $OUT/compile.log 2>&1; echo "compile rc=$? $(el)s"
timeout 40 python3 -m nvrtc_attn > $OUT/demo.log 2>&1; rc=$?; echo "demo rc=$rc $(el)s"; tail -2 $OUT/demo.log
[ $rc -eq 0 ] || exit 1
timeout ${PYTEST_S:-420} python3 -m pytest -q -n 12 -p no:cacheprovider -rf tests > $OUT/pytest.txt 2>&1; echo "pytest rc=$? $(el)s"
tail -2 $OUT/pytest.txt; grep -E "^FAILED" $OUT/pytest.txt | head -20 | cut -c1-200
left=$(( 590 - $(el) ))
[ $left -gt 60 ] && { timeout $left bash tools/ab.sh --rounds ${AB_ROUNDS:-2} ${AB_ONLY:-W1,W2,W3,W4,W6,W8,W9,W10,W2f8} > $OUT/ab.log 2>&1; echo "ab rc=$? $(el)s"; tail -16 $OUT/ab.log | cut -c1-180; }
