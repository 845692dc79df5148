#!/usr/bin/env bash
# session 14, first call: whole GPU suite, demo and bench.py on c27fadd (the tree s13 could not run)
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false NVRTC_ATTN_CACHE_DIR=$PWD/.kcache
t0=$(date +%s)
python3 tools/bench.py --compile all > $OUT/compile.log 2>&1; echo "compile rc=$? $(( $(date +%s)-t0 ))s"
timeout 445 python3 -m pytest -q -n 12 -p no:cacheprovider -rf tests > $OUT/pytest.txt 2>&1; echo "pytest rc=$? $(( $(date +%s)-t0 ))s"
tail -3 $OUT/pytest.txt
timeout 20 python3 -m nvrtc_attn > $OUT/demo.log 2>&1; echo "demo rc=$?"; tail -2 $OUT/demo.log
timeout 70 python3 tools/bench.py --json $OUT/bench.json > $OUT/bench.log 2>&1; echo "bench rc=$? $(( $(date +%s)-t0 ))s"
grep -E "^ *(W|run|host|GEMM|fp8)" $OUT/bench.log | cut -c1-160 | tail -30
