#!/usr/bin/env bash
# Session 23, call 7: the growing-row-max test's new cases (gathered head_dim 128 and 256 builds, whose
# overlap rescales lazily) and the rescaling / load tests around them, on main's kernels (bafafc3).
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 NVRTC_ATTN_CACHE_DIR=/tmp/kc
timeout 200 python3 -m pytest -q -n 8 -p no:cacheprovider -rfE tests/test_sm90_loads.py tests/test_bench_tools.py > $OUT/tests.log 2>&1
echo "tests rc=$?"; tail -1 $OUT/tests.log; grep -E "^FAILED|^ERROR" $OUT/tests.log | head -6 | cut -c1-250
