#!/usr/bin/env bash
# session 8, call 2: programmatic (PDL) merge launch. A/B against f834fd6 (ab/base), then the GPU
# tests that run the split builds and the merge (graph replay with splits included).
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
t0=$(date +%s)
AB_TIMEOUT=120 timeout 300 bash tools/ab.sh --rounds 4 W8,W2,W9 > $OUT/ab.log 2>&1; echo "ab rc=$? $(( $(date +%s)-t0 ))s"
tail -12 $OUT/ab.log
NVRTC_ATTN_CACHE_DIR=/tmp/kc_ab_A timeout 270 python3 -m pytest -q -n 8 -p no:cacheprovider -rf tests/test_split.py tests/test_split_kv.py tests/test_flashinfer_api.py tests/test_launcher.py > $OUT/pytest.txt 2>&1; echo "pytest rc=$? $(( $(date +%s)-t0 ))s"
tail -4 $OUT/pytest.txt
