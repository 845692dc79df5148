#!/usr/bin/env bash
# session 12, call 2: branch partial16 (16-bit partial O for split pieces) against main. Here first:
#   bash tools/ab.sh prep partial16 p16      (carry ["ab"])
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 NVRTC_ATTN_CACHE_DIR=$PWD/.kcache
t0=$(date +%s)
AB_TIMEOUT=60 timeout 200 bash tools/ab.sh --rounds 4 W8,W2 > $OUT/ab.log 2>&1; echo "ab rc=$? $(( $(date +%s)-t0 ))s"
tail -5 $OUT/ab.log
echo "--- main parts"; timeout 60 python3 .notes/runs/s12_w8_parts.py W8 2>&1 | tail -8
cd ab/p16 && export PYTHONPATH=$PWD NVRTC_ATTN_CACHE_DIR=/tmp/kc_ab_p16
echo "--- p16 parts"; timeout 60 python3 .notes/runs/s12_w8_parts.py W8 2>&1 | tail -8
echo "$(( $(date +%s)-t0 ))s"
timeout 170 python3 -m pytest -q -n 12 -p no:cacheprovider -rf tests/test_split_kv.py tests/test_split.py tests/test_fp8.py tests/test_flashinfer_api.py -k "split or graph" > $OUT/pytest_p16.txt 2>&1; echo "pytest rc=$? $(( $(date +%s)-t0 ))s"; tail -3 $OUT/pytest_p16.txt
for t in memcheck racecheck; do
  timeout 40 compute-sanitizer --tool $t --error-exitcode 9 python3 tools/sanitizer_case.py --long > /tmp/cs.log 2>&1; echo "$t --long rc=$? $(tail -1 /tmp/cs.log)"
done
echo "total $(( $(date +%s)-t0 ))s"
