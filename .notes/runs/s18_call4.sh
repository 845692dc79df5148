#!/usr/bin/env bash
# session 18, call 4 (closing): FlashInfer from .peers, every build compiled, the GPU suite without
# tests/test_compile.py (GPU-free NVRTC compiles of every variant; CI runs them), the demo, bench.py
# with FlashInfer in the same run (plan() round robin, ours and fa2's), then the upload diagnostic.
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false NVRTC_ATTN_CACHE_DIR=$PWD/.kcache
t0=$(date +%s); el() { echo $(( $(date +%s) - t0 )); }
export FLASHINFER_WORKSPACE_BASE=/tmp/fiws FLASHINFER_CUDA_ARCH_LIST=9.0a TVM_FFI_DISABLE_TORCH_C_DLPACK=1
mkdir -p /tmp/fipkg
(python3 -m pip install -q --no-index --no-deps --target /tmp/site .peers/*.whl && tar xzf .peers/flashinfer-*.tgz -C /tmp/fipkg) > $OUT/setup.log 2>&1; echo "fi setup rc=$? $(el)s"
timeout 100 python3 tools/bench.py --compile all > $OUT/compile.log 2>&1; echo "compile rc=$? $(el)s"; head -1 $OUT/compile.log | cut -c1-120
timeout 290 python3 -m pytest -q -n 14 -p no:cacheprovider -rf tests --ignore=tests/test_compile.py > $OUT/pytest.txt 2>&1; echo "pytest rc=$? $(el)s"
grep -E "passed|failed" $OUT/pytest.txt | tail -1; grep -E "^FAILED|^ERROR" $OUT/pytest.txt | head -15 | cut -c1-200
timeout 40 python3 -m nvrtc_attn > $OUT/demo.log 2>&1; echo "demo rc=$? $(el)s"; tail -2 $OUT/demo.log | cut -c1-200
PYTHONPATH=$PWD:/tmp/fipkg:/tmp/site timeout 170 python3 tools/bench.py --flashinfer --json $OUT/bench.json > $OUT/bench.log 2>&1; echo "bench rc=$? $(el)s"
grep -E "^ *(W[0-9]|run\(\)|plan ms|ceiling)" $OUT/bench.log | grep -vE "^W[0-9a-z]+: " | cut -c1-64
timeout 30 python3 .notes/runs/s18_upload.py > $OUT/upload.log 2>&1; echo "upload rc=$? $(el)s"; cat $OUT/upload.log | tail -8
