#!/usr/bin/env bash
# Session 28, call 1a: the Q hi/lo builds (branch qhilo): compile every build, the fp8 GPU tests.
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 NVRTC_ATTN_CACHE_DIR=$PWD/.kcache
t0=$(date +%s); el() { echo $(( $(date +%s) - t0 )); }
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem --format=csv,noheader
timeout 120 python3 tools/bench.py --compile all > $OUT/compile.log 2>&1; echo "compile rc=$? $(el)s"; head -1 $OUT/compile.log | cut -c1-200
timeout 300 python3 -m pytest -q -n 15 -p no:cacheprovider -rfE tests/test_fp8.py > $OUT/pytest.txt 2>&1; echo "pytest rc=$? $(el)s"
grep -E "passed|failed" $OUT/pytest.txt | tail -1; grep -E "^FAILED|^ERROR" $OUT/pytest.txt | head -30 | cut -c1-300
grep -E "^E  " $OUT/pytest.txt | head -30 | cut -c1-250
