#!/usr/bin/env bash
# session 9, call 5: fp8-MMA K boxes straight into the swizzled K ring stage (uint8 K map with the 128-byte
# swizzle; gathered blocks still staged). A/B against ab/vt (5ddb2de: K staged and copied) and ab/base
# (091779a), fp8_mma rows; then the fp8-MMA GPU tests, then the rest of test_fp8.py as time allows.
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false NVRTC_ATTN_CACHE_DIR=/tmp/kc_ab_A
t0=$(date +%s)
AB_BENCH_ARGS=--fp8-mma AB_TIMEOUT=60 timeout 130 bash tools/ab.sh --rounds 2 W2f8q,W7f8q > $OUT/ab.log 2>&1; echo "ab rc=$? $(( $(date +%s)-t0 ))s"
tail -5 $OUT/ab.log
timeout 80 python3 -m pytest -q -n 12 -p no:cacheprovider -rf tests/test_fp8.py tests/test_flashinfer_api.py -k "mma" > $OUT/pytest_mma.txt 2>&1; echo "pytest mma rc=$? $(( $(date +%s)-t0 ))s"
tail -3 $OUT/pytest_mma.txt
timeout $(( 300 - ($(date +%s)-t0) )) python3 -m pytest -q -n 12 -p no:cacheprovider -rf tests/test_fp8.py tests/test_sm90_loads.py -k "not mma" > $OUT/pytest_fp8.txt 2>&1; echo "pytest fp8 rc=$? $(( $(date +%s)-t0 ))s"
tail -3 $OUT/pytest_fp8.txt
