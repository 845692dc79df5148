#!/usr/bin/env bash
# session 7 closing run, part 1: every kernel build compiled, the demo, then the whole GPU test suite
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false NVRTC_ATTN_CACHE_DIR=/tmp/kc_final
t0=$(date +%s)
python3 tools/bench.py --compile all > $OUT/compile.log 2>&1; echo "compile rc=$? $(( $(date +%s)-t0 ))s"; tail -1 $OUT/compile.log
timeout 40 python3 -m nvrtc_attn > $OUT/demo.log 2>&1; echo "demo rc=$?"; tail -3 $OUT/demo.log
timeout 530 python3 -m pytest -q -n 8 -p no:cacheprovider -rf tests > $OUT/pytest.txt 2>&1; echo "pytest rc=$? $(( $(date +%s)-t0 ))s"
tail -4 $OUT/pytest.txt
