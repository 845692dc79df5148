#!/usr/bin/env bash
# prepared in session 9 for the next one (not run yet): branch exp2-poly (P = exp2 on the FMA pipe for 1 or 2 of
# every 4 8-key chunks in the head_dim-64 16-bit builds and the fp8-MMA builds). Here first:
#   bash tools/ab.sh prep exp2-poly~1 poly1 && bash tools/ab.sh prep exp2-poly poly2   (A = main)
# then on the device (carry ["ab"]): A/B of W5 and the fp8_mma rows (W2 as control), then the GPU tests of
# the poly builds on the poly2 tree (head_dim 64 and the fp8-MMA grid).
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
t0=$(date +%s)
AB_BENCH_ARGS=--fp8-mma AB_TIMEOUT=90 timeout 300 bash tools/ab.sh --rounds 2 W5,W2f8q,W7f8q,W2 > $OUT/ab.log 2>&1; echo "ab rc=$? $(( $(date +%s)-t0 ))s"
tail -8 $OUT/ab.log
cd ab/poly2 && NVRTC_ATTN_CACHE_DIR=/tmp/kc_ab_poly2 PYTHONPATH=$PWD timeout 200 python3 -m pytest -q -n 12 -p no:cacheprovider -rf \
  tests/test_fp8.py tests/test_prefill.py -k "mma or hd64" > $OUT/pytest_poly.txt 2>&1; echo "pytest rc=$? $(( $(date +%s)-t0 ))s"
tail -3 $OUT/pytest_poly.txt
