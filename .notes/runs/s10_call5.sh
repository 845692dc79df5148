#!/usr/bin/env bash
# session 10 call 5: A/B of the fp8-MMA changes, A = working tree (P's 2^8 as an exponent bias + V staged in
# two alternating slots), ab/fold (the bias alone), ab/base (main a4f5d73); then the fp8-MMA GPU tests and
# compute-sanitizer (short and long cases) on A
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false NVRTC_ATTN_CACHE_DIR=$PWD/.kcache
t0=$(date +%s)
AB_BENCH_ARGS=--fp8-mma AB_TIMEOUT=90 timeout 330 bash tools/ab.sh --rounds 3 W2f8q,W7f8q,W2 > $OUT/ab.log 2>&1; echo "ab rc=$? $(( $(date +%s)-t0 ))s"
tail -7 $OUT/ab.log
timeout 150 python3 -m pytest -q -n 8 -p no:cacheprovider -rf tests/test_fp8.py -k "mma" > $OUT/pytest_mma.txt 2>&1; echo "pytest rc=$? $(( $(date +%s)-t0 ))s"; tail -2 $OUT/pytest_mma.txt
for a in "" "--long" "--long --no-split"; do
  timeout 60 compute-sanitizer --tool racecheck --error-exitcode 9 python3 tools/sanitizer_case.py $a > /tmp/rc.log 2>&1; echo "racecheck $a rc=$? $(tail -1 /tmp/rc.log)"
  timeout 60 compute-sanitizer --tool memcheck python3 tools/sanitizer_case.py $a > /tmp/mc.log 2>&1; echo "memcheck $a rc=$? invalid=$(grep -c 'Invalid\|out of bounds' /tmp/mc.log) $(tail -1 /tmp/mc.log)"
done
