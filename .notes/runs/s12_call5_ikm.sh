#!/usr/bin/env bash
# session 12, call 5: branch inkernel-merge (the split build's last piece merges; no merge_split launch)
# against main. Here first: bash tools/ab.sh prep inkernel-merge ikm   (carry ["ab"])
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 NVRTC_ATTN_CACHE_DIR=$PWD/.kcache
t0=$(date +%s)
AB_TIMEOUT=60 timeout 200 bash tools/ab.sh --rounds 4 W8,W2,W1f8,W2f8 > $OUT/ab.log 2>&1; echo "ab rc=$? $(( $(date +%s)-t0 ))s"
tail -6 $OUT/ab.log
AB_BENCH_ARGS=--fp8-mma AB_TIMEOUT=60 timeout 100 bash tools/ab.sh --rounds 2 W7f8q > $OUT/ab_mma.log 2>&1; echo "ab mma rc=$? $(( $(date +%s)-t0 ))s"
tail -3 $OUT/ab_mma.log
cd ab/ikm && export PYTHONPATH=$PWD NVRTC_ATTN_CACHE_DIR=/tmp/kc_ab_ikm
echo "--- ikm parts"; timeout 60 python3 .notes/runs/s12_w8_parts.py W8 2>&1 | tail -6
timeout 200 python3 -m pytest -q -n 12 -p no:cacheprovider -rf tests/test_split_kv.py tests/test_split.py tests/test_fp8.py tests/test_flashinfer_api.py -k "split or graph" > $OUT/pytest_ikm.txt 2>&1; echo "pytest rc=$? $(( $(date +%s)-t0 ))s"; tail -3 $OUT/pytest_ikm.txt
for a in "" "--long"; do
  timeout 45 compute-sanitizer --tool racecheck --error-exitcode 9 python3 tools/sanitizer_case.py $a > /tmp/rc.log 2>&1; echo "racecheck $a rc=$? $(tail -1 /tmp/rc.log)"
  timeout 45 compute-sanitizer --tool memcheck python3 tools/sanitizer_case.py $a > /tmp/mc.log 2>&1; echo "memcheck $a rc=$? invalid=$(grep -c 'Invalid\|out of bounds' /tmp/mc.log) $(tail -1 /tmp/mc.log)"
done
echo "total $(( $(date +%s)-t0 ))s"
