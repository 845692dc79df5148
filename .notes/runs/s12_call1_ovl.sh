#!/usr/bin/env bash
# prepared in session 11 for the next one: A/B of branch softmax-overlap2 (the overlapped schedule's
# P V wait after the softmax, which ptxas otherwise hoists above it) against main, bf16 and fp8-MMA
# rows, then the branch's GPU tests of the overlapped builds and compute-sanitizer. Here first:
#   bash tools/ab.sh prep softmax-overlap2 ovl      (then carry ["ab"])
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false NVRTC_ATTN_CACHE_DIR=$PWD/.kcache
t0=$(date +%s)
AB_TIMEOUT=60 timeout 260 bash tools/ab.sh --rounds 3 W1,W2,W3,W5,W7,W10 > $OUT/ab.log 2>&1; echo "ab rc=$? $(( $(date +%s)-t0 ))s"
tail -10 $OUT/ab.log
AB_BENCH_ARGS=--fp8-mma AB_TIMEOUT=60 timeout 120 bash tools/ab.sh --rounds 3 W2f8q,W7f8q,W2f8 > $OUT/ab_mma.log 2>&1; echo "ab mma rc=$? $(( $(date +%s)-t0 ))s"
tail -6 $OUT/ab_mma.log
cd ab/ovl && export PYTHONPATH=$PWD NVRTC_ATTN_CACHE_DIR=/tmp/kc_ab_ovl
timeout 200 python3 -m pytest -q -n 12 -p no:cacheprovider -rf tests/test_prefill.py tests/test_fp8.py -k "sm90 or mma" > $OUT/pytest_ovl.txt 2>&1; echo "pytest rc=$?"; tail -2 $OUT/pytest_ovl.txt
for a in "" "--long"; do
  timeout 40 compute-sanitizer --tool racecheck --error-exitcode 9 python3 tools/sanitizer_case.py $a > /tmp/rc.log 2>&1; echo "racecheck $a rc=$? $(tail -1 /tmp/rc.log)"
done
