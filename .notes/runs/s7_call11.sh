#!/usr/bin/env bash
# session 7 device call 11: compute-sanitizer racecheck and memcheck on the consumer-widened V (long tiles: builds without turn-taking)
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 NVRTC_ATTN_CACHE_DIR=/tmp/kc_s
# (call 12: ARGS=--no-split, racecheck only)
t0=$(date +%s)
python3 tools/bench.py --compile all > /dev/null 2>&1; echo "compile rc=$? $(( $(date +%s)-t0 ))s"
timeout 130 compute-sanitizer --tool racecheck --error-exitcode 9 python3 tools/sanitizer_case.py --long $ARGS > $OUT/racecheck.log 2>&1; echo "racecheck rc=$? $(( $(date +%s)-t0 ))s"; tail -6 $OUT/racecheck.log
timeout 90 compute-sanitizer --tool memcheck python3 tools/sanitizer_case.py --long $ARGS > $OUT/memcheck.log 2>&1; echo "memcheck rc=$? $(( $(date +%s)-t0 ))s"; grep -c "Invalid\|out of bounds" $OUT/memcheck.log; tail -6 $OUT/memcheck.log
