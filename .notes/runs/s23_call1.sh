#!/usr/bin/env bash
# Session 23, call 1: head_dim 256 on the overlapped schedule (A = working tree: overlap + lazy
# rescaling; ab/exact: overlap + exact rescaling; ab/base: main ed12687, the serial schedule), same-call
# A/B on W6, W2 (control) and the hd256 rows of .notes/runs/s23_hd256_workloads.json; then the hd256
# GPU tests and compute-sanitizer (racecheck, memcheck) on A.
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
t0=$(date +%s); el() { echo $(( $(date +%s) - t0 )); }
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem --format=csv,noheader
AB_BENCH_ARGS="--workloads .notes/runs/s23_hd256_workloads.json" OUT=$OUT timeout 300 bash tools/ab.sh --rounds 3 --iters 30 \
    W6,H1,H2,H3,H4,H5,W2 > $OUT/ab.log 2>&1; echo "ab rc=$? $(el)s"; tail -11 $OUT/ab.log | cut -c1-200
export NVRTC_ATTN_CACHE_DIR=/tmp/kc_ab_A
timeout 200 python3 -m pytest -q -n 15 -p no:cacheprovider -rfE tests/test_prefill.py tests/test_split_kv.py \
    tests/test_sm90_loads.py tests/test_fp8.py tests/test_engines.py -k "256" > $OUT/tests.log 2>&1; echo "tests rc=$? $(el)s"
tail -2 $OUT/tests.log; grep -E "^FAILED|^ERROR" $OUT/tests.log | head -8 | cut -c1-200
for tool in racecheck memcheck; do
  for mode in "" "--long"; do
    timeout 60 compute-sanitizer --tool $tool --report-api-errors no --error-exitcode 9 python3 tools/sanitizer_case.py --hd256 $mode > $OUT/san_${tool}${mode}.log 2>&1
    echo "$tool $mode rc=$? $(el)s"; grep -v "^=" $OUT/san_${tool}${mode}.log | tail -7; tail -1 $OUT/san_${tool}${mode}.log
  done
done
