#!/usr/bin/env bash
# Session 22, call 3: the GPU suite (without test_compile.py, which CI runs) on the final tree
# (fce8942's memo fix + 71522d6; kernels as s22r1), names of failures kept (-rfE).
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 NVRTC_ATTN_CACHE_DIR=/tmp/kc
t0=$(date +%s); el() { echo $(( $(date +%s) - t0 )); }
git log --oneline -1 2>/dev/null
timeout 90 python3 tools/bench.py --compile all > $OUT/compile.log 2>&1; echo "compile rc=$? $(el)s"
timeout 420 python3 -m pytest -q -n 15 -p no:cacheprovider -rfE --junitxml=$OUT/junit.xml tests --ignore=tests/test_compile.py > $OUT/pytest.txt 2>&1; echo "pytest rc=$? $(el)s"
grep -E "passed|failed" $OUT/pytest.txt | tail -1; grep -E "^FAILED|^ERROR" $OUT/pytest.txt | head -12 | cut -c1-250
timeout 20 python3 -m nvrtc_attn > $OUT/demo.log 2>&1; echo "demo rc=$? $(el)s"; tail -1 $OUT/demo.log | cut -c1-200
# a second sample of the host costs on this machine (plan() round robin, run()), FlashInfer beside
export FLASHINFER_WORKSPACE_BASE=/tmp/fiws FLASHINFER_CUDA_ARCH_LIST=9.0a TVM_FFI_DISABLE_TORCH_C_DLPACK=1
mkdir -p /tmp/fipkg
(python3 -m pip install -q --no-index --no-deps --target /tmp/site .peers/*.whl && tar xzf .peers/flashinfer-*.tgz -C /tmp/fipkg) > $OUT/setup.log 2>&1; echo "fi setup rc=$? $(el)s"
left=$(( 580 - $(el) )); [ $left -gt 150 ] && left=150
PYTHONPATH=$PWD:/tmp/fipkg:/tmp/site timeout $left python3 tools/bench.py --flashinfer --json $OUT/bench.json > $OUT/bench.log 2>&1; echo "bench rc=$? $(el)s"
grep -E "^ *(W[0-9]|run\(\)|plan ms|ceiling|GEMM)" $OUT/bench.log | grep -vE "^W[0-9a-z]+: " | cut -c1-90
