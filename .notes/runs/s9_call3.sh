#!/usr/bin/env bash
# session 9, call 3: fp8-MMA V transpose by 32-bit loads + byte permutes (fp8::transpose_v_block) against
# main's byte loads (ab/base): A/B of the fp8_mma rows, then the fp8 GPU tests of the fp8-MMA builds
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false NVRTC_ATTN_CACHE_DIR=$PWD/.kcache
t0=$(date +%s)
python3 tools/bench.py --compile all > $OUT/compile.log 2>&1; echo "compile rc=$? $(( $(date +%s)-t0 ))s"
AB_BENCH_ARGS=--fp8-mma AB_TIMEOUT=100 timeout 200 bash tools/ab.sh --rounds 3 W2f8q,W7f8q > $OUT/ab.log 2>&1; echo "ab rc=$? $(( $(date +%s)-t0 ))s"
tail -6 $OUT/ab.log
timeout 200 python3 -m pytest -q -n 8 -p no:cacheprovider -rf tests/test_fp8.py tests/test_flashinfer_api.py -k "mma" > $OUT/pytest_mma.txt 2>&1; echo "pytest rc=$? $(( $(date +%s)-t0 ))s"
tail -3 $OUT/pytest_mma.txt
