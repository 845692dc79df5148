#!/usr/bin/env bash
# session 16, call 3: the S GEMM's descriptors built once per tile and stepped by constants
# (wgmma::desc_advance) as A, against HEAD 900b847 (ab/base); then the sm90 GPU test files.
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 NVRTC_ATTN_CACHE_DIR=$PWD/.kcache
t0=$(date +%s); el() { echo $(( $(date +%s) - t0 )); }
timeout 330 bash tools/ab.sh --rounds 2 --iters 20 ${AB_ONLY:-W2p1,W2,W7,W1,W6,W5,W10} > $OUT/ab.log 2>&1; echo "ab rc=$? $(el)s"
tail -12 $OUT/ab.log | cut -c1-200
timeout $(( 560 - $(el) )) python3 -m pytest -q -n 12 -p no:cacheprovider -x tests/test_sm90_loads.py tests/test_prefill.py > $OUT/pytest.txt 2>&1; echo "pytest rc=$? $(el)s"; tail -2 $OUT/pytest.txt
