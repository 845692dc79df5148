#!/usr/bin/env bash
# session 14, call 5: compute-sanitizer memcheck, then racecheck, on tools/sanitizer_case.py (short) with
# the claimed tiles (global counter atomics, the shared-memory tile ring).
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 NVRTC_ATTN_CACHE_DIR=$PWD/.kcache
t0=$(date +%s); el() { echo $(( $(date +%s) - t0 )); }
timeout 60 python3 tools/bench.py --compile all > $OUT/compile.log 2>&1; echo "compile rc=$? $(el)s"
timeout 80 compute-sanitizer --tool memcheck --error-exitcode 9 python3 tools/sanitizer_case.py > $OUT/memcheck.log 2>&1
echo "memcheck rc=$? $(el)s"; grep -c "Invalid\|out of bounds" $OUT/memcheck.log; tail -4 $OUT/memcheck.log | cut -c1-160
timeout ${RACE_S:-110} compute-sanitizer --tool racecheck --error-exitcode 9 python3 tools/sanitizer_case.py > $OUT/racecheck.log 2>&1
echo "racecheck rc=$? $(el)s"; tail -4 $OUT/racecheck.log | cut -c1-160
