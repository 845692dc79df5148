#!/usr/bin/env bash
# Session 20, call 2: fp8 caches on the short tiles. A = working tree (SM90_FP8_SHORT_TILES, two Q
# buffers, one staging slot at head_dim 128), ab/q1 = the same with one Q buffer, ab/base = afa99b4
# (fp8 on the full tiles). Then the GPU tests of the files it touches and compute-sanitizer.
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem --format=csv,noheader
for t in base q1; do ln -sfn "$PWD/.kcache" ab/$t/.kcache; done
export NVRTC_ATTN_CACHE_DIR=$PWD/.kcache
AB_BENCH_ARGS="--workloads .notes/runs/s20_fp8_short.json" OUT=$OUT timeout 300 bash tools/ab.sh --rounds 3 --iters 50 \
    W9,W9f8,W9f8q,S1f8,S3f8,S8f8,W9f8p1,W2f8 > $OUT/ab.log 2>&1; echo "ab rc=$?"; tail -12 $OUT/ab.log | cut -c1-200
timeout 200 python3 -m pytest -q -n 12 tests/test_fp8.py tests/test_sm90_short.py tests/test_launcher.py -x \
    > $OUT/tests.log 2>&1; echo "tests rc=$?"; tail -4 $OUT/tests.log
for tool in racecheck memcheck; do
  timeout 60 compute-sanitizer --tool $tool --error-exitcode 9 python3 tools/sanitizer_case.py --short > $OUT/san_$tool.log 2>&1
  echo "$tool rc=$? errors=$(grep -c 'Invalid\|out of bounds\|hazard' $OUT/san_$tool.log)"; grep -v "^=" $OUT/san_$tool.log | tail -6; tail -2 $OUT/san_$tool.log
done
