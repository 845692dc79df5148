#!/usr/bin/env bash
# Session 25, call 1: the whole GPU suite on main 4537b16 (after the fp8 threshold 217268a and the
# review refactor 86093d8, neither GPU-run in session 24), -n 15, after compiling every build.
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 NVRTC_ATTN_CACHE_DIR=/tmp/kc
t0=$(date +%s); el() { echo $(( $(date +%s) - t0 )); }
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem --format=csv,noheader
timeout 100 python3 tools/bench.py --compile all > $OUT/compile.log 2>&1; echo "compile rc=$? $(el)s"; tail -1 $OUT/compile.log
timeout $(( 590 - $(el) )) python3 -m pytest -q -n 15 -p no:cacheprovider -rfE tests > $OUT/pytest.txt 2>&1; echo "pytest rc=$? $(el)s"
grep -E "passed|failed" $OUT/pytest.txt | tail -1; grep -E "^FAILED|^ERROR" $OUT/pytest.txt | head -12 | cut -c1-250
