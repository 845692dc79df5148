#!/usr/bin/env bash
# session 9, call 2: the whole GPU suite on the tree of call 1 (its .kcache, kept on the warm machine)
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false NVRTC_ATTN_CACHE_DIR=$PWD/.kcache
t0=$(date +%s)
[ -d .kcache ] || { python3 tools/bench.py --compile all > $OUT/compile.log 2>&1; echo "compile rc=$? $(( $(date +%s)-t0 ))s"; }
timeout 560 python3 -m pytest -q -n 8 -p no:cacheprovider -rf tests > $OUT/pytest.txt 2>&1; echo "pytest rc=$? $(( $(date +%s)-t0 ))s"
tail -4 $OUT/pytest.txt
