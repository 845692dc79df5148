#!/usr/bin/env bash
# Session 23, call 6: head_dim 256 turn-taking vs not, now that both overlap: A = main, ab/nopp256 = no turns at head_dim 256 (variants.sm90_pingpong),
# on the short hd256 rows of .notes/runs/s23_hd256_pp_workloads.json.
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
t0=$(date +%s); el() { echo $(( $(date +%s) - t0 )); }
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem --format=csv,noheader
AB_BENCH_ARGS="--workloads .notes/runs/s23_hd256_pp_workloads.json" OUT=$OUT timeout 200 bash tools/ab.sh --rounds 3 --iters 30 \
    P1,P2,P3,P4 > $OUT/ab.log 2>&1; echo "ab rc=$? $(el)s"; tail -7 $OUT/ab.log | cut -c1-160
grep -hE "^P[0-9]: " /tmp/ab_runs/A__r1.log /tmp/ab_runs/nopp256__r1.log | cut -c1-200
