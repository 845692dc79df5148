#!/usr/bin/env bash
# session 7 device call 10: fp8 cache, V widened by the consumers (kConsumerV): A/B vs HEAD c8131e4, then the fp8 GPU tests
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
t0=$(date +%s)
NVRTC_ATTN_CACHE_DIR=/tmp/kc_ab_A python3 tools/bench.py --compile all > $OUT/compile.log 2>&1; echo "compile rc=$? $(( $(date +%s)-t0 ))s"
AB_TIMEOUT=90 timeout 200 bash tools/ab.sh --rounds 2 W2,W1f8,W2f8,W7f8,W2f8q,W7f8q > $OUT/ab.log 2>&1; echo "ab rc=$? $(( $(date +%s)-t0 ))s"
tail -9 $OUT/ab.log
left=$(( 420 - ($(date +%s)-t0) ))
NVRTC_ATTN_CACHE_DIR=/tmp/kc_ab_A timeout $left python3 -m pytest -q -x -n 8 -p no:cacheprovider tests/test_fp8.py tests/test_split.py tests/test_flashinfer_api.py tests/test_launcher.py > $OUT/pytest.txt 2>&1; echo "pytest rc=$? $(( $(date +%s)-t0 ))s"; tail -4 $OUT/pytest.txt
