#!/usr/bin/env bash
# session 6 device call 2: fp8 tests on the deeper fp8 staging, then same-call A/B: A (key blocks from
# the plan + up to 4 fp8 staging slots) vs ab/kb (key blocks only) vs ab/base (725835c)
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
t0=$(date +%s)
NVRTC_ATTN_CACHE_DIR=/tmp/kc_ab_A python3 tools/bench.py --compile all > $OUT/compile.log 2>&1; echo "compile rc=$? $(( $(date +%s)-t0 ))s"
NVRTC_ATTN_CACHE_DIR=/tmp/kc_ab_A timeout 170 python3 -m pytest -q -x -n 8 -p no:cacheprovider tests/test_fp8.py > $OUT/pytest_fp8.txt 2>&1; echo "pytest fp8 rc=$? $(( $(date +%s)-t0 ))s"; tail -3 $OUT/pytest_fp8.txt
AB_TIMEOUT=150 timeout 400 bash tools/ab.sh --rounds 2 W1,W2,W4,W7,W1f8,W2f8,W7f8,W2f8q > $OUT/ab.log 2>&1; echo "ab rc=$? $(( $(date +%s)-t0 ))s"
tail -25 $OUT/ab.log
