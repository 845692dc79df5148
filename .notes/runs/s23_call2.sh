#!/usr/bin/env bash
# Session 23, call 2: two retests of old rejections on today's kernels (A = main 8d1b886 working tree):
#   ab/lazy: lazy O rescaling in every overlapped 16-bit-GEMM build (session 3: -1.5 to -3% at hd128);
#   ab/g176: 176-key blocks for long gathered tiles too (session 3: W2p1 -8.5%);
#   ab/base: main 8d1b886 (equal to A: the noise floor).
# Then the softmax / prefill GPU tests on ab/lazy (used if it wins).
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
t0=$(date +%s); el() { echo $(( $(date +%s) - t0 )); }
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem --format=csv,noheader
OUT=$OUT timeout 420 bash tools/ab.sh --rounds 3 --iters 30 W1,W2,W2p1,W3,W4,W5,W7,W8,W10,W1f8,W2f8,W2f8q > $OUT/ab.log 2>&1
echo "ab rc=$? $(el)s"; tail -15 $OUT/ab.log | cut -c1-220
cd ab/lazy && NVRTC_ATTN_CACHE_DIR=/tmp/kc_ab_lazy PYTHONPATH=$PWD timeout 150 python3 -m pytest -q -n 15 -p no:cacheprovider -rfE \
    tests/test_prefill.py tests/test_fp8.py -k "not hd256 and not 256" > $OUT/tests_lazy.log 2>&1; echo "lazy tests rc=$? $(el)s"
tail -2 $OUT/tests_lazy.log; grep -E "^FAILED|^ERROR" $OUT/tests_lazy.log | head -8 | cut -c1-200
