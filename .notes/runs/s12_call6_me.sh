#!/usr/bin/env bash
# session 12, call 6: branch merge-early (merge_split's plan loads before the grid wait, one round of
# loads for up to 4 pieces) against main; if W8 gains >= 0.5%: the branch's split GPU tests and bench.
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 NVRTC_ATTN_CACHE_DIR=$PWD/.kcache
t0=$(date +%s)
AB_TIMEOUT=60 timeout 150 bash tools/ab.sh --rounds 5 W8,W2 > $OUT/ab.log 2>&1; echo "ab rc=$? $(( $(date +%s)-t0 ))s"
tail -4 $OUT/ab.log
ok=$(python3 -c "import json,os; d=json.load(open(os.environ['OUT']+'/ab.json'))['tflops']['W8']['me']['ratio']; print(1 if d >= 1.005 else 0)")
echo "gate: $ok"
[ "$ok" = 1 ] || exit 0
cd ab/me && export PYTHONPATH=$PWD NVRTC_ATTN_CACHE_DIR=/tmp/kc_ab_me
timeout 200 python3 -m pytest -q -n 12 -p no:cacheprovider -rf tests/test_split_kv.py tests/test_split.py tests/test_fp8.py tests/test_flashinfer_api.py tests/test_launcher.py -k "split or graph or merge" > $OUT/pytest_me.txt 2>&1; echo "pytest rc=$? $(( $(date +%s)-t0 ))s"; tail -3 $OUT/pytest_me.txt
timeout 45 compute-sanitizer --tool memcheck python3 tools/sanitizer_case.py --long > /tmp/mc.log 2>&1; echo "memcheck --long rc=$? invalid=$(grep -c 'Invalid\|out of bounds' /tmp/mc.log) $(tail -1 /tmp/mc.log)"
timeout 120 python3 tools/bench.py --only W8,W9,W2,W4 --json $OUT/bench.json > $OUT/bench.log 2>&1; echo "bench rc=$? $(( $(date +%s)-t0 ))s"
grep -E "^ *(W|GEMM|run|host)" $OUT/bench.log | cut -c1-140 | tail -8
