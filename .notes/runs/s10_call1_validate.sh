#!/usr/bin/env bash
# prepared in session 9 (not run yet; that session's device budget was spent): the checks main c3e5d15 still
# lacks on a GPU, first thing next session: compute-sanitizer on the fp8-MMA K-by-TMA path (short and long
# cases; sanitizer_case.py runs the e4m3-wgmma builds too), then the whole GPU suite and the bench.
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false NVRTC_ATTN_CACHE_DIR=$PWD/.kcache
t0=$(date +%s)
python3 tools/bench.py --compile all > $OUT/compile.log 2>&1; echo "compile rc=$? $(( $(date +%s)-t0 ))s"
for a in "" "--long" "--long --no-split"; do
  timeout 100 compute-sanitizer --tool racecheck --error-exitcode 9 python3 tools/sanitizer_case.py $a > $OUT/racecheck${a// /_}.log 2>&1; echo "racecheck $a rc=$? $(( $(date +%s)-t0 ))s"; tail -2 $OUT/racecheck${a// /_}.log
  timeout 80 compute-sanitizer --tool memcheck python3 tools/sanitizer_case.py $a > $OUT/memcheck${a// /_}.log 2>&1; echo "memcheck $a rc=$? $(( $(date +%s)-t0 ))s"; grep -c "Invalid\|out of bounds" $OUT/memcheck${a// /_}.log
done
