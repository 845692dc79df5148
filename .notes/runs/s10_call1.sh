#!/usr/bin/env bash
# session 10 call 1: compile all (main), A/B of branch exp2-poly (poly1, poly2 against main), then compute-sanitizer
# (racecheck, memcheck) on the short case: the first GPU check of the fp8-MMA K-by-TMA path
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false NVRTC_ATTN_CACHE_DIR=$PWD/.kcache
t0=$(date +%s)
python3 tools/bench.py --compile all > $OUT/compile.log 2>&1; echo "compile rc=$? $(( $(date +%s)-t0 ))s"
AB_BENCH_ARGS=--fp8-mma AB_TIMEOUT=90 timeout 300 bash tools/ab.sh --rounds 2 W5,W2f8q,W7f8q,W2 > $OUT/ab.log 2>&1; echo "ab rc=$? $(( $(date +%s)-t0 ))s"
tail -9 $OUT/ab.log
for a in ""; do
  timeout 100 compute-sanitizer --tool racecheck --error-exitcode 9 python3 tools/sanitizer_case.py $a > $OUT/racecheck${a// /_}.log 2>&1; echo "racecheck $a rc=$? $(( $(date +%s)-t0 ))s"; tail -2 $OUT/racecheck${a// /_}.log
  timeout 80 compute-sanitizer --tool memcheck python3 tools/sanitizer_case.py $a > $OUT/memcheck${a// /_}.log 2>&1; echo "memcheck $a rc=$? $(( $(date +%s)-t0 ))s"; grep -c "Invalid\|out of bounds" $OUT/memcheck${a// /_}.log; tail -2 $OUT/memcheck${a// /_}.log
done
