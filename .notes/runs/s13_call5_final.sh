#!/usr/bin/env bash
# session 13, last call: whole GPU suite and demo on the final tree, then bench.py's plan() median warm vs cold
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false NVRTC_ATTN_CACHE_DIR=$PWD/.kcache
t0=$(date +%s)
python3 tools/bench.py --compile all > $OUT/compile.log 2>&1; echo "compile rc=$? $(( $(date +%s)-t0 ))s"
timeout 440 python3 -m pytest -q -n 12 -p no:cacheprovider -rf tests > $OUT/pytest.txt 2>&1; echo "pytest rc=$? $(( $(date +%s)-t0 ))s"
tail -3 $OUT/pytest.txt
timeout 20 python3 -m nvrtc_attn > $OUT/demo.log 2>&1; echo "demo rc=$?"; tail -2 $OUT/demo.log
timeout 15 python3 .notes/runs/s13_plan_warm.py W2,W4,W8 > $OUT/warm.txt 2>&1; echo "warm rc=$?"; grep "^W" $OUT/warm.txt
