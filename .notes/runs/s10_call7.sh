#!/usr/bin/env bash
# session 10 call 7: A/B on the fp8_mma rows, A = main 33ae217; ab/pp = every plan on the turn-taking builds
# (consumers take turns: one warpgroup's softmax under the other's GEMMs); ab/vu = the V transpose's two
# halves unrolled (16 loads in flight instead of 8)
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 NVRTC_ATTN_CACHE_DIR=$PWD/.kcache
t0=$(date +%s)
AB_BENCH_ARGS=--fp8-mma AB_TIMEOUT=60 timeout 280 bash tools/ab.sh --rounds 3 W2f8q,W7f8q > $OUT/ab.log 2>&1; echo "ab rc=$? $(( $(date +%s)-t0 ))s"
tail -6 $OUT/ab.log
grep -h "prefill_sm90" /tmp/ab_runs/*__r1.log | sed 's/.*\(prefill_sm90[a-z0-9_]*\).*/\1/' | sort | uniq -c
