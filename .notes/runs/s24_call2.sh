#!/usr/bin/env bash
# Session 24, call 2: A = working tree (per-launch lazy/exact rescaling in the 16-bit 128-key builds
# without turns) against main 296dc81 (ab/main); ab/bn144q2 = A with 144-key long tiles and two Q
# buffers (SM90_LONG_TILES; was 176 keys, one Q buffer); ab/pp144 = A with the standard head_dim 128
# tile at 144 keys (turn-taking threshold 7.1 blocks of 144 = main's 8 of 128); ab/thr5 = main with
# PINGPONG_MAX_BLOCKS 5 (W4-like batches of 5-7 blocks per tile without turns). Rows:
# .notes/runs/s24_workloads2.json. Then racecheck --long on A (its 16-bit cases: gather, TMA + window).
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
t0=$(date +%s); el() { echo $(( $(date +%s) - t0 )); }
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem --format=csv,noheader
AB_BENCH_ARGS="--workloads .notes/runs/s24_workloads2.json" OUT=$OUT timeout 420 bash tools/ab.sh --rounds 3 --iters 20 \
    W1,W4,W10,W2,W7,W3,W2p1,W2w,W10g4,L3k,S16,S512,M1280,M1536,W4b > $OUT/ab.log 2>&1; echo "ab rc=$? $(el)s"
tail -18 $OUT/ab.log | cut -c1-200
timeout $(( 590 - $(el) )) compute-sanitizer --tool racecheck --report-api-errors no --error-exitcode 9 python3 tools/sanitizer_case.py --long > $OUT/san_long.log 2>&1
echo "racecheck --long rc=$? $(el)s"; grep prefill_sm90_hd128_bf16_nopp $OUT/san_long.log; tail -1 $OUT/san_long.log
