#!/usr/bin/env bash
# Session 24, call 1: A = working tree (the 16-bit 128-key builds without turns pick lazy or exact O
# rescaling per launch on p.kv_box_tokens) against main 296dc81 (ab/main), and the turn-taking threshold
# PINGPONG_MAX_BLOCKS 8 (main) against 16 (ab/pp16) and 0 (ab/pp0: never), Python-only trees, on the rows
# of .notes/runs/s24_workloads.json; then the sm90 load / prefill / split tests on A and racecheck.
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
t0=$(date +%s); el() { echo $(( $(date +%s) - t0 )); }
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem --format=csv,noheader
AB_BENCH_ARGS="--workloads .notes/runs/s24_workloads.json" OUT=$OUT timeout 260 bash tools/ab.sh --rounds 3 --iters 20 \
    W1,W4,W10,W2p1,W2,W2w,W2p1w,W10p128,W10g4,W10g16,W10p16,L3k,S16,S512 > $OUT/ab.log 2>&1; echo "ab rc=$? $(el)s"
tail -17 $OUT/ab.log | cut -c1-160
export NVRTC_ATTN_CACHE_DIR=/tmp/kc_ab_A
left=$(( 520 - $(el) ))
timeout $left python3 -m pytest -q -n 15 -p no:cacheprovider -rfE tests/test_sm90_loads.py tests/test_prefill.py \
    tests/test_split_kv.py > $OUT/tests.log 2>&1; echo "tests rc=$? $(el)s"; tail -1 $OUT/tests.log
grep -E "^FAILED|^ERROR" $OUT/tests.log | head -8 | cut -c1-250
timeout $(( 590 - $(el) )) compute-sanitizer --tool racecheck --report-api-errors no --error-exitcode 9 python3 tools/sanitizer_case.py --long > $OUT/san_long.log 2>&1
echo "racecheck --long rc=$? $(el)s"; tail -1 $OUT/san_long.log
