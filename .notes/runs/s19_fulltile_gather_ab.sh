#!/usr/bin/env bash
# Prepared in session 19 (not run): do memory-bound batches on the sm90 FULL tiles (head_dim 256 and
# fp8 caches, which have no short build; decode batches too small for the short grid) gain from the
# cp.async gather, as the short tiles did (s19r4/r5: +2.7-6%)? Before the device call, here:
#   git apply .notes/runs/s19_fulltile_gather.diff   (variants.FULL_TILES_GATHER_MAX_LIVE + a CPU test)
#   bash tools/ab.sh prep HEAD base                  (ab/base = the tree without it); carry ["ab"]
# On the device (A = the patched working tree): every row should gain or stay; W8 and W2 (live
# fraction 1.0) are controls that must not move. Then keep or drop the diff by the table.
export PYTHONUNBUFFERED=1
AB_BENCH_ARGS="--workloads .notes/runs/s19_fulltile_gather.json" OUT=$OUT timeout 300 bash tools/ab.sh --rounds 2 --iters 50 \
    S9,W9f8,S1f8,D4,D16,W8,W2 > $OUT/ab.log 2>&1; echo "ab rc=$?"; tail -10 $OUT/ab.log | cut -c1-200
