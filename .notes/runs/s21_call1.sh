#!/usr/bin/env bash
# Session 21, call 1: fp8 caches on the short tiles with the consumer warpgroup widening V (A = working
# tree: kConsumerV also for CONSUMER_WGS == 1) against ab/base = 85c81b0 (the producer widens K and V).
# Then the GPU tests of the files that cover the fp8 short builds, and compute-sanitizer on them.
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem --format=csv,noheader
ln -sfn "$PWD/.kcache" ab/base/.kcache
export NVRTC_ATTN_CACHE_DIR=$PWD/.kcache
AB_BENCH_ARGS="--workloads .notes/runs/s20_fp8_short.json" OUT=$OUT timeout 280 bash tools/ab.sh --rounds 3 --iters 50 \
    W9,W9f8,W9f8q,S1f8,S3f8,S8f8,W9f8p1,W2f8 > $OUT/ab.log 2>&1; echo "ab rc=$?"; tail -12 $OUT/ab.log | cut -c1-200
timeout 200 python3 -m pytest -q -n 14 tests/test_fp8.py tests/test_sm90_short.py tests/test_launcher.py \
    > $OUT/tests.log 2>&1; echo "tests rc=$?"; tail -3 $OUT/tests.log
for tool in racecheck memcheck; do
  PYTHONPATH=. timeout 60 compute-sanitizer --tool $tool --error-exitcode 9 python3 tools/sanitizer_case.py --short > $OUT/san_$tool.log 2>&1
  echo "$tool rc=$? errors=$(grep -c 'Invalid\|out of bounds\|hazard' $OUT/san_$tool.log)"; grep -v "^=" $OUT/san_$tool.log | tail -5; tail -1 $OUT/san_$tool.log
done
