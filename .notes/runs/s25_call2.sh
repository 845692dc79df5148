#!/usr/bin/env bash
# Session 25, call 2: per-head q_scale arrays (per KV head: TileScales; per query head: folded into
# the widened Q, fp8::load_q_rows) and FlashInfer's positional fp8 scales, uncommitted on 4537b16.
# The fp8 and API test files (-n 15) after compiling every build, the demo, then
# tools/bench.py --flashinfer (carry .peers).
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 NVRTC_ATTN_CACHE_DIR=/tmp/kc
t0=$(date +%s); el() { echo $(( $(date +%s) - t0 )); }
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem --format=csv,noheader
timeout 100 python3 tools/bench.py --compile all > $OUT/compile.log 2>&1; echo "compile rc=$? $(el)s"; head -1 $OUT/compile.log | cut -c1-200
timeout 300 python3 -m pytest -q -n 15 -p no:cacheprovider -rfE tests/test_fp8.py tests/test_launcher.py tests/test_engines.py \
    tests/test_flashinfer_api.py tests/test_wrapper.py > $OUT/pytest.txt 2>&1; echo "pytest rc=$? $(el)s"
grep -E "passed|failed" $OUT/pytest.txt | tail -1; grep -E "^FAILED|^ERROR" $OUT/pytest.txt | head -20 | cut -c1-300
timeout 60 python3 -m nvrtc_attn > $OUT/demo.log 2>&1; echo "demo rc=$? $(el)s"; tail -2 $OUT/demo.log | cut -c1-200
export FLASHINFER_WORKSPACE_BASE=/tmp/fiws FLASHINFER_CUDA_ARCH_LIST=9.0a TVM_FFI_DISABLE_TORCH_C_DLPACK=1
mkdir -p /tmp/fipkg
(python3 -m pip install -q --no-index --no-deps --target /tmp/site .peers/*.whl && tar xzf .peers/flashinfer-*.tgz -C /tmp/fipkg) > $OUT/setup.log 2>&1; echo "fi setup rc=$? $(el)s"
PYTHONPATH=$PWD:/tmp/fipkg:/tmp/site timeout $(( 575 - $(el) )) python3 tools/bench.py --flashinfer --json $OUT/bench.json > $OUT/bench.log 2>&1; echo "bench rc=$? $(el)s"
grep -E "^ *(W[0-9]|run\(\)|plan ms|ceiling|GEMM)" $OUT/bench.log | grep -vE "^W[0-9a-z]+: " | cut -c1-150
