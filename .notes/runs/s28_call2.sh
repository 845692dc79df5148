#!/usr/bin/env bash
# Session 28, call 2: A/B of the Q hi/lo tree (A) against main (ab/base) on mode-1 workloads and W2.
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
t0=$(date +%s); el() { echo $(( $(date +%s) - t0 )); }
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem --format=csv,noheader
timeout 420 bash tools/ab.sh W1f8,W2f8,W7f8,W2 > $OUT/ab.log 2>&1; echo "ab rc=$? $(el)s"
tail -12 $OUT/ab.log | cut -c1-200
