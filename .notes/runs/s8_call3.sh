#!/usr/bin/env bash
# session 8, call 3: fp8 cache on long tiles, turn-taking builds (ab/ppfp8: fp8 plans always take
# them) against the builds without turns (A, 091779a: kConsumerV for mode 1 and fp8-q widening).
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
t0=$(date +%s)
AB_TIMEOUT=120 timeout 400 bash tools/ab.sh --rounds 2 W2f8,W7f8,W2f8q,W7f8q,W1f8,W2 > $OUT/ab.log 2>&1; echo "ab rc=$? $(( $(date +%s)-t0 ))s"
tail -12 $OUT/ab.log
