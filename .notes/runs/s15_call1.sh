#!/usr/bin/env bash
# session 15, calls 1-2: the tile claim moved earlier (call 1: claim one block before the tile's end; call 2: after the first block)
# as A, against HEAD 2d4a7d3 (ab/base, claiming without it) and c27fadd (ab/static, the static partition).
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 NVRTC_ATTN_CACHE_DIR=$PWD/.kcache
timeout ${AB_S:-420} bash tools/ab.sh --rounds ${AB_ROUNDS:-2} --iters 20 ${AB_ONLY:-W2p1,W1,W4,W5,W6,W9} > $OUT/ab.log 2>&1; echo "ab rc=$?"
tail -14 $OUT/ab.log | cut -c1-200
