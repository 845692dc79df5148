#!/usr/bin/env bash
# session 17, call 1: A (a243a0b: warp-uniform warpgroup index, V and fp8 descriptors stepped) against
# ab/desc (047475a: the S GEMM's stepped descriptors, hd128/hd64 only) and ab/base (fd60a73, main), then
# hd256 stepped (ab2/s256) against A on W6, the e4m3-wgmma builds (--fp8-mma), and the sm90/fp8 GPU tests.
# prep: bash tools/ab.sh prep fd60a73 base; bash tools/ab.sh prep 047475a desc; ab2/s256 = A with
# kStepDesc = true; carry ["ab", "ab2"].
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 NVRTC_ATTN_CACHE_DIR=$PWD/.kcache
t0=$(date +%s); el() { echo $(( $(date +%s) - t0 )); }
timeout 60 python3 tools/bench.py --compile all > $OUT/compile.log 2>&1; echo "compile rc=$? $(el)s"
timeout 200 bash tools/ab.sh --rounds 2 --iters 20 W1,W2,W2p1,W5,W6,W7,W8,W10,W2f8,W7f8,W2f8q > $OUT/ab.log 2>&1; echo "ab rc=$? $(el)s"
tail -14 $OUT/ab.log | cut -c1-200
OUT=$OUT/ab2 AB_DIR=ab2 AB_RUNS=/tmp/ab2_runs timeout 60 bash tools/ab.sh --rounds 3 --iters 20 W6 > $OUT/ab2.log 2>&1; echo "ab2 rc=$? $(el)s"
tail -4 $OUT/ab2.log | cut -c1-200
OUT=$OUT/ab3 AB_RUNS=/tmp/ab3_runs AB_BENCH_ARGS=--fp8-mma timeout 80 bash tools/ab.sh --rounds 2 --iters 20 W2f8q,W7f8q > $OUT/ab3.log 2>&1; echo "ab3 rc=$? $(el)s"
tail -5 $OUT/ab3.log | cut -c1-200
timeout 40 python3 -m nvrtc_attn > $OUT/demo.log 2>&1; echo "demo rc=$? $(el)s"; tail -1 $OUT/demo.log
left=$(( 570 - $(el) ))
timeout $left python3 -m pytest -q -n 12 -p no:cacheprovider -rf tests/test_sm90_loads.py tests/test_sm90_short.py tests/test_fp8.py tests/test_prefill.py > $OUT/pytest.txt 2>&1; echo "pytest rc=$? $(el)s"
tail -2 $OUT/pytest.txt; grep -E "^FAILED" $OUT/pytest.txt | head -10 | cut -c1-200
