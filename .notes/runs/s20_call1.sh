#!/usr/bin/env bash
# Session 20, call 1: (a) full tiles gather on memory-bound batches (s19's prepared A/B; A = working
# tree with the diff applied, ab/base = afa99b4); (b) SHORT_TILE_MAX_WORK re-measured with the short
# tiles on the gather (tools/short_tiles_ab.py on the base tree). .kcache carried (NVRTC 13.0 here).
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem --format=csv,noheader
ln -sfn "$PWD/.kcache" ab/base/.kcache
AB_BENCH_ARGS="--workloads .notes/runs/s19_fulltile_gather.json" OUT=$OUT timeout 330 bash tools/ab.sh --rounds 3 --iters 50 \
    S9,W9f8,S1f8,D4,D16,W8,W2 > $OUT/ab.log 2>&1; echo "ab rc=$?"; tail -12 $OUT/ab.log | cut -c1-220
cd ab/base && NVRTC_ATTN_CACHE_DIR=$PWD/.kcache timeout 200 python3 tools/short_tiles_ab.py --only S5,S6,S7,S4 --rounds 4 \
    --json $OUT/short_ab.json 2>&1 | tail -8
