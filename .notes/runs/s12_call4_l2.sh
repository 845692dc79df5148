#!/usr/bin/env bash
# session 12, call 4: L2 prefetch of the block 1 (ab/l2a1) or 2 (ab/l2a2) ahead in the 16-bit producer,
# against main; then the better tree's GPU tests (sm90 prefill, split, loads) and compute-sanitizer,
# if it wins W8 by 2% or more. Here first: tools/ab.sh prep l2-prefetch l2a1; prep l2-prefetch2 l2a2.
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 NVRTC_ATTN_CACHE_DIR=$PWD/.kcache
t0=$(date +%s)
AB_TIMEOUT=60 timeout 300 bash tools/ab.sh --rounds 3 W8,W9,W1,W2,W3,W4,W7,W10 > $OUT/ab.log 2>&1; echo "ab rc=$? $(( $(date +%s)-t0 ))s"
tail -11 $OUT/ab.log
best=$(python3 - <<'PY'
import json, os
d = json.load(open(os.environ["OUT"] + "/ab.json"))["tflops"]["W8"]
r = {k: v["ratio"] for k, v in d.items() if v["ratio"]}
k = max(r, key=r.get)
print(k if r[k] >= 1.02 else "")
PY
)
echo "best: '$best'"
[ -n "$best" ] || exit 0
cd ab/$best && export PYTHONPATH=$PWD NVRTC_ATTN_CACHE_DIR=/tmp/kc_ab_$best
timeout 200 python3 -m pytest -q -n 12 -p no:cacheprovider -rf tests/test_prefill.py tests/test_split_kv.py tests/test_sm90_loads.py tests/test_sm90_short.py -k "not sm80" > $OUT/pytest_$best.txt 2>&1; echo "pytest rc=$? $(( $(date +%s)-t0 ))s"; tail -3 $OUT/pytest_$best.txt
for a in "" "--long"; do
  timeout 40 compute-sanitizer --tool racecheck --error-exitcode 9 python3 tools/sanitizer_case.py $a > /tmp/rc.log 2>&1; echo "racecheck $a rc=$? $(tail -1 /tmp/rc.log)"
  timeout 40 compute-sanitizer --tool memcheck python3 tools/sanitizer_case.py $a > /tmp/mc.log 2>&1; echo "memcheck $a rc=$? invalid=$(grep -c 'Invalid\|out of bounds' /tmp/mc.log) $(tail -1 /tmp/mc.log)"
done
echo "total $(( $(date +%s)-t0 ))s"
