#!/usr/bin/env bash
# Session 22, call 1 (issue 11's closing evidence, tree 25feccf): FlashInfer from .peers, every build
# compiled, the GPU suite without test_compile.py (CI covers it), the demo, bench.py --flashinfer
# (plan() round robin, ours and fa2's; run() host cost; W9 in ms and TB/s).
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 NVRTC_ATTN_CACHE_DIR=/tmp/kc
t0=$(date +%s); el() { echo $(( $(date +%s) - t0 )); }
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem,driver_version --format=csv,noheader
export FLASHINFER_WORKSPACE_BASE=/tmp/fiws FLASHINFER_CUDA_ARCH_LIST=9.0a TVM_FFI_DISABLE_TORCH_C_DLPACK=1
mkdir -p /tmp/fipkg
(python3 -m pip install -q --no-index --no-deps --target /tmp/site .peers/*.whl && tar xzf .peers/flashinfer-*.tgz -C /tmp/fipkg) > $OUT/setup.log 2>&1; echo "fi setup rc=$? $(el)s"
timeout 100 python3 tools/bench.py --compile all > $OUT/compile.log 2>&1; echo "compile rc=$? $(el)s"; head -1 $OUT/compile.log | cut -c1-120
timeout 250 python3 -m pytest -q -n 14 -p no:cacheprovider -rf tests --ignore=tests/test_compile.py > $OUT/pytest.txt 2>&1; echo "pytest rc=$? $(el)s"
grep -E "passed|failed" $OUT/pytest.txt | tail -1; grep -E "^FAILED|^ERROR" $OUT/pytest.txt | head -10 | cut -c1-200
timeout 20 python3 -m nvrtc_attn > $OUT/demo.log 2>&1; echo "demo rc=$? $(el)s"; tail -1 $OUT/demo.log | cut -c1-200
left=$(( 585 - $(el) )); [ $left -gt 200 ] && left=200
PYTHONPATH=$PWD:/tmp/fipkg:/tmp/site timeout $left python3 tools/bench.py --flashinfer --json $OUT/bench.json > $OUT/bench.log 2>&1; echo "bench rc=$? $(el)s"
grep -E "^ *(W[0-9]|run\(\)|plan ms|ceiling|GEMM)" $OUT/bench.log | grep -vE "^W[0-9a-z]+: " | cut -c1-90
