#!/usr/bin/env bash
# Prepared in session 25 (not run): e5m2 queries on an e5m2 cache (.notes/runs/s25_e5m2q.diff,
# branch e5m2q, f3ec70b; `git apply .notes/runs/s25_e5m2q.diff` on main 94eadcf or later). The fp8
# tests that the diff touches (the mode-2 grid now has a qkind factor; the exactness test runs both
# kinds; the short-tile choice test), -v so failures are named even if the timeout cuts the run.
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 NVRTC_ATTN_CACHE_DIR=/tmp/kc
t0=$(date +%s); el() { echo $(( $(date +%s) - t0 )); }
timeout 120 python3 tools/bench.py --compile all > $OUT/compile.log 2>&1; echo "compile rc=$? $(el)s"; head -1 $OUT/compile.log | cut -c1-200
timeout 300 python3 -m pytest -v -n 15 -p no:cacheprovider -rfE tests/test_fp8.py -k "fp8q or q8 or short_tiles" > $OUT/pytest.txt 2>&1
echo "pytest rc=$? $(el)s"; grep -cE " PASSED " $OUT/pytest.txt; grep -E " FAILED | ERROR " $OUT/pytest.txt | head -12 | cut -c1-250
