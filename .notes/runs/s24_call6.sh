#!/usr/bin/env bash
# Session 24, call 6: 176-key tiles with turn-taking (ptxas 13.0: 168 registers, no spills; the note
# "with turns the 176-key build spills" was stale). A = main 1295bf8; ab/pp176 = every long-tile batch
# (16-bit cache, TMA, no window) on the 176-key build with turns; ab/pp176s = only the batches that
# take turns today move to 176 keys. Rows: .notes/runs/s24_workloads3.json. Then the sm90 GPU tests
# run inside ab/pp176 (its library: every long-tile batch of the tests on the new build).
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
t0=$(date +%s); el() { echo $(( $(date +%s) - t0 )); }
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem --format=csv,noheader
AB_BENCH_ARGS="--workloads .notes/runs/s24_workloads3.json" OUT=$OUT timeout 300 bash tools/ab.sh --rounds 3 --iters 20 \
    W1,W2,W2p64,W3,W4,W7,W8,W10,S16,L3k,M1280,S512,W4b > $OUT/ab.log 2>&1; echo "ab rc=$? $(el)s"
tail -16 $OUT/ab.log | cut -c1-200
cd ab/pp176 && PYTHONPATH=$PWD NVRTC_ATTN_CACHE_DIR=/tmp/kc_ab_pp176 timeout $(( 560 - $(el) )) python3 -m pytest -q -n 15 -p no:cacheprovider -rfE \
    tests/test_sm90_loads.py tests/test_prefill.py tests/test_split_kv.py > $OUT/tests_pp176.log 2>&1; echo "tests pp176 rc=$? $(el)s"
tail -1 $OUT/tests_pp176.log; grep -E "^FAILED|^ERROR" $OUT/tests_pp176.log | head -6 | cut -c1-250
