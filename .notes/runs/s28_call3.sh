#!/usr/bin/env bash
# Session 28, call 3: the whole GPU suite on the e5m2-query tree (main + .notes/runs/s25_e5m2q.diff),
# after compiling every build, and the demo.
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 NVRTC_ATTN_CACHE_DIR=/tmp/kc
t0=$(date +%s); el() { echo $(( $(date +%s) - t0 )); }
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem --format=csv,noheader
timeout 120 python3 tools/bench.py --compile all > $OUT/compile.log 2>&1; echo "compile rc=$? $(el)s"; head -1 $OUT/compile.log | cut -c1-200
timeout $(( 560 - $(el) )) python3 -m pytest -q -n 15 -p no:cacheprovider -rfE tests > $OUT/pytest.txt 2>&1; echo "pytest rc=$? $(el)s"
grep -E "passed|failed" $OUT/pytest.txt | tail -1; grep -E "^FAILED|^ERROR" $OUT/pytest.txt | head -20 | cut -c1-300
grep -E "^E  " $OUT/pytest.txt | head -12 | cut -c1-250
timeout 30 python3 -m nvrtc_attn > $OUT/demo.log 2>&1; echo "demo rc=$? $(el)s"; tail -2 $OUT/demo.log | cut -c1-200
