#!/usr/bin/env bash
# Session 24, call 8: the turn-taking threshold on fp8 caches (Python-only trees: ab/fp8thr0 = never
# take turns, so the builds whose consumers widen V; ab/fp8thr16) against main's 8 (A = 166753c), on
# .notes/runs/s24_workloads5.json.
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
t0=$(date +%s); el() { echo $(( $(date +%s) - t0 )); }
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem --format=csv,noheader
AB_BENCH_ARGS="--workloads .notes/runs/s24_workloads5.json" OUT=$OUT timeout 190 bash tools/ab.sh --rounds 3 --iters 20 \
    W1f8,W2f8,W4f8,M1280f8,S16f8,W10f8,S512f8,W1f8q > $OUT/ab.log 2>&1; echo "ab rc=$? $(el)s"
tail -11 $OUT/ab.log | cut -c1-200
