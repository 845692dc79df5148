#!/usr/bin/env bash
# session 14, call 6: same-call A/B against c27fadd (ab/base) on the workloads call 2's A/B left out.
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 NVRTC_ATTN_CACHE_DIR=$PWD/.kcache
timeout ${AB_S:-200} bash tools/ab.sh --rounds 2 --iters 20 ${AB_ONLY:-W2p1,W5,W7,W6,W2p64} > $OUT/ab.log 2>&1; echo "ab rc=$?"
tail -12 $OUT/ab.log | cut -c1-160
