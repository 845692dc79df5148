#!/usr/bin/env bash
# Session 23, call 3: lazy O rescaling where s23r2 found it paying (A = working tree: kLazyOverlap for
# head_dim 256, fp8 caches and the 128-key builds without turns) against main 8d1b886 (ab/base), on the
# gather, fp8 and windowed rows (.notes/runs/s23_lazy_workloads.json; W2/W7 builds unchanged: control);
# then the whole GPU suite on A (-n 15).
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
t0=$(date +%s); el() { echo $(( $(date +%s) - t0 )); }
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem --format=csv,noheader
AB_BENCH_ARGS="--workloads .notes/runs/s23_lazy_workloads.json" OUT=$OUT timeout 150 bash tools/ab.sh --rounds 3 --iters 30 \
    W2,W2p1,W7,W1f8,W2f8,W7f8,W2f8q,W7f8q,W2w,W2p1w,W2f8w > $OUT/ab.log 2>&1; echo "ab rc=$? $(el)s"; tail -14 $OUT/ab.log | cut -c1-120
export NVRTC_ATTN_CACHE_DIR=/tmp/kc_ab_A
timeout 60 python3 tools/bench.py --compile all > $OUT/compile.log 2>&1; echo "compile rc=$? $(el)s"
left=$(( 585 - $(el) ))
timeout $left python3 -m pytest -q -n 15 -p no:cacheprovider -rfE tests > $OUT/pytest.txt 2>&1; echo "pytest rc=$? $(el)s"
grep -E "passed|failed" $OUT/pytest.txt | tail -1; grep -E "^FAILED|^ERROR" $OUT/pytest.txt | head -12 | cut -c1-250
