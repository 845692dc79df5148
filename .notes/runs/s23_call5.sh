#!/usr/bin/env bash
# Session 23, call 5: head_dim 256's overlapped schedule on the turn-taking builds (short tiles), which
# s23r1's rows did not reach: A = main (bafafc3) against ab/base = ed12687 (the serial schedule), on
# .notes/runs/s23_hd256_pp_workloads.json, W6 as the control of s23r1.
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
t0=$(date +%s); el() { echo $(( $(date +%s) - t0 )); }
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem --format=csv,noheader
AB_BENCH_ARGS="--workloads .notes/runs/s23_hd256_pp_workloads.json" OUT=$OUT timeout 200 bash tools/ab.sh --rounds 3 --iters 30 \
    P1,P2,P3,P4 > $OUT/ab.log 2>&1; echo "ab rc=$? $(el)s"; tail -7 $OUT/ab.log | cut -c1-160
grep -hE "^P[0-9]: " /tmp/ab_runs/A__r1.log /tmp/ab_runs/base__r1.log | cut -c1-200
