#!/usr/bin/env bash
# session 6 device call 5: fp8 staging slots freed by an mbarrier (no producer bar.sync per unit):
# fp8 tests, then same-call A/B against ab/head, then the fp8-MMA rows of A
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
t0=$(date +%s)
NVRTC_ATTN_CACHE_DIR=/tmp/kc_ab_A python3 tools/bench.py --compile all > $OUT/compile.log 2>&1; echo "compile rc=$? $(( $(date +%s)-t0 ))s"
NVRTC_ATTN_CACHE_DIR=/tmp/kc_ab_A timeout 170 python3 -m pytest -q -x -n 8 -p no:cacheprovider tests/test_fp8.py > $OUT/pytest_fp8.txt 2>&1; echo "pytest fp8 rc=$? $(( $(date +%s)-t0 ))s"; tail -2 $OUT/pytest_fp8.txt
AB_TIMEOUT=120 timeout 300 bash tools/ab.sh --rounds 3 W1f8,W2f8,W7f8,W2f8q,W7f8q > $OUT/ab.log 2>&1; echo "ab rc=$? $(( $(date +%s)-t0 ))s"
tail -9 $OUT/ab.log
NVRTC_ATTN_CACHE_DIR=/tmp/kc_ab_A timeout 90 python3 tools/bench.py --fp8-mma --only W2f8q,W7f8q --no-ceiling --no-host-cost > $OUT/mma.log 2>&1; echo "mma rc=$?"; grep -E "^W" $OUT/mma.log | cut -c1-100
