#!/usr/bin/env bash
# Prepared in session 23 (not run): `git apply .notes/runs/s23_lazy_runtime.diff` (A: the 16-bit 128-key builds without turns pick
# lazy or exact O rescaling per launch, on p.kv_box_tokens) against main (prep: bash tools/ab.sh prep main
# main; carry ["ab"]), on the gathered and windowed rows; then the sm90 load / softmax tests on A.
# Land it if W2p1 and W2p1w keep main's numbers and W2w gets back its exact-rescaling speed (s23r3: 480.9).
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
t0=$(date +%s); el() { echo $(( $(date +%s) - t0 )); }
AB_BENCH_ARGS="--workloads .notes/runs/s23_lazy_workloads.json" OUT=$OUT timeout 150 bash tools/ab.sh --rounds 3 --iters 30 \
    W2,W2p1,W2w,W2p1w > $OUT/ab.log 2>&1; echo "ab rc=$? $(el)s"; tail -7 $OUT/ab.log | cut -c1-120
NVRTC_ATTN_CACHE_DIR=/tmp/kc_ab_A timeout 200 python3 -m pytest -q -n 15 -p no:cacheprovider -rfE tests/test_sm90_loads.py \
    tests/test_prefill.py tests/test_split_kv.py > $OUT/tests.log 2>&1; echo "tests rc=$? $(el)s"; tail -1 $OUT/tests.log
for mode in "" "--long"; do
  timeout 60 compute-sanitizer --tool racecheck --report-api-errors no --error-exitcode 9 python3 tools/sanitizer_case.py $mode > $OUT/san${mode}.log 2>&1
  echo "racecheck $mode rc=$? $(el)s"; tail -1 $OUT/san${mode}.log
done
