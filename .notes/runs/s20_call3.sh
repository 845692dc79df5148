#!/usr/bin/env bash
# Session 20, call 3: fp8 short tiles with one Q buffer (A = working tree) against the same with the
# producer at 72 registers (ab/p72: kProducerRegs for CTAS_PER_SM == 2, widen_block's loads in flight).
# The winner's tile_sm90.cuh (p72 if it gains >= 1% on W9f8) is then the tree the GPU tests and
# compute-sanitizer run on.
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem --format=csv,noheader
export NVRTC_ATTN_CACHE_DIR=$PWD/.kcache
AB_BENCH_ARGS="--workloads .notes/runs/s20_fp8_short.json" OUT=$OUT timeout 240 bash tools/ab.sh --rounds 3 --iters 50 \
    W9,W9f8,W9f8q,S1f8,S3f8,S8f8,W9f8p1 > $OUT/ab.log 2>&1; echo "ab rc=$?"; tail -10 $OUT/ab.log | cut -c1-160
x=$(python3 -c "
import json; t = json.load(open('$OUT/ab.json'))['tflops']['W9f8']
print(1 if t['p72']['median'] >= 1.01 * t['A']['median'] else 0)")
echo "p72 wins: $x"
if [ "$x" = 1 ]; then cp ab/p72/kernels_cu/tile_sm90.cuh kernels_cu/tile_sm90.cuh; echo "tests on p72"; fi
timeout 420 python3 -m pytest -q -n 14 tests/test_fp8.py tests/test_sm90_short.py tests/test_launcher.py \
    > $OUT/tests.log 2>&1; echo "tests rc=$?"; tail -3 $OUT/tests.log
for tool in racecheck memcheck; do
  PYTHONPATH=. timeout 90 compute-sanitizer --tool $tool --error-exitcode 9 python3 tools/sanitizer_case.py --short > $OUT/san_$tool.log 2>&1
  echo "$tool rc=$? errors=$(grep -c 'Invalid\|out of bounds\|hazard' $OUT/san_$tool.log)"; grep -v "^=" $OUT/san_$tool.log | tail -5; tail -1 $OUT/san_$tool.log
done
