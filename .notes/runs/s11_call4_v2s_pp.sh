#!/usr/bin/env bash
# session 11: A/B of main (04d9445) against v2slots2 (fp8-MMA V in two alternating staging slots) and
# pp-mma (every plan on the turn-taking builds), then v2slots2's mma GPU tests and compute-sanitizer.
# Here first: bash tools/ab.sh prep v2slots2 v2s; bash tools/ab.sh prep pp-mma pp   (carry ["ab"])
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false NVRTC_ATTN_CACHE_DIR=$PWD/.kcache
t0=$(date +%s)
AB_BENCH_ARGS=--fp8-mma AB_TIMEOUT=60 timeout 330 bash tools/ab.sh --rounds 3 W2f8q,W7f8q,W2 > $OUT/ab.log 2>&1; echo "ab rc=$? $(( $(date +%s)-t0 ))s"
tail -7 $OUT/ab.log
cd ab/v2s && export PYTHONPATH=$PWD NVRTC_ATTN_CACHE_DIR=/tmp/kc_ab_v2s
timeout 150 python3 -m pytest -q -n 12 -p no:cacheprovider -rf tests/test_fp8.py tests/test_flashinfer_api.py -k mma > $OUT/pytest_v2s.txt 2>&1; echo "pytest rc=$?"; tail -2 $OUT/pytest_v2s.txt
for a in "" "--long"; do
  timeout 40 compute-sanitizer --tool racecheck --error-exitcode 9 python3 tools/sanitizer_case.py $a > /tmp/rc.log 2>&1; echo "racecheck $a rc=$? $(tail -1 /tmp/rc.log)"
  timeout 40 compute-sanitizer --tool memcheck python3 tools/sanitizer_case.py $a > /tmp/mc.log 2>&1; echo "memcheck $a rc=$? invalid=$(grep -c 'Invalid\|out of bounds' /tmp/mc.log) $(tail -1 /tmp/mc.log)"
done
