#!/usr/bin/env bash
# Session 24, call 5: L2 sections of the head_dim 128 tiles (Python-only trees ab/l2_8, l2_6, l2_4 against
# main's 12 MB, A = fdf8c9b), 3 rounds, on the head_dim 128 rows of tools/workloads.json.
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
t0=$(date +%s); el() { echo $(( $(date +%s) - t0 )); }
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem --format=csv,noheader
OUT=$OUT timeout 560 bash tools/ab.sh --rounds 3 --iters 20 W1,W2,W2p1,W3,W4,W7,W8,W10,W1f8,W2f8 > $OUT/ab.log 2>&1; echo "ab rc=$? $(el)s"
tail -13 $OUT/ab.log | cut -c1-200
