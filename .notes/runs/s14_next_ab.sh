#!/usr/bin/env bash
# prepared in session 14, not run: the early claim (.notes/runs/s14_early_claim.diff, kRowSlots == 1 builds:
# the claim one block before the tile's end, its row prefetched into L1) against the tree it applies to.
# Here: git apply .notes/runs/s14_early_claim.diff && bash tools/ab.sh prep HEAD base; carry ["ab"].
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 NVRTC_ATTN_CACHE_DIR=$PWD/.kcache
timeout ${AB_S:-240} bash tools/ab.sh --rounds 2 --iters 20 ${AB_ONLY:-W2p1,W1,W4,W5,W6,W9} > $OUT/ab.log 2>&1; echo "ab rc=$?"
tail -12 $OUT/ab.log | cut -c1-160
