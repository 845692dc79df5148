#!/usr/bin/env bash
# Prepared in session 24 (not run). The fp8 turn-taking thresholds (variants.PINGPONG_MAX_BLOCKS_FP8 5,
# _FP8_Q 4) where s24r8 did not measure: e4m3 queries at 2.5-3.5 blocks, GQA-8 / page-32 shapes at
# 4.5-8.5 blocks (s24r8: W10 on an e4m3 cache, 8.5 blocks, +3.6% with turns). Prep (here):
#   bash tools/ab.sh prep HEAD fp8never; bash tools/ab.sh prep HEAD fp8always
#   then in ab/fp8never/nvrtc_attn/variants.py set PINGPONG_MAX_BLOCKS_FP8 = PINGPONG_MAX_BLOCKS_FP8_Q = 0.0,
#   in ab/fp8always set both to 1e9; carry ["ab"].
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
t0=$(date +%s); el() { echo $(( $(date +%s) - t0 )); }
AB_BENCH_ARGS="--workloads .notes/runs/s25_fp8_threshold_workloads.json" OUT=$OUT timeout 240 bash tools/ab.sh --rounds 3 --iters 20 \
    W1f8q,S512f8q,M768f8q,W10f8m,W10f8l,W10f8,S16f8,W4f8 > $OUT/ab.log 2>&1; echo "ab rc=$? $(el)s"
tail -11 $OUT/ab.log | cut -c1-200
