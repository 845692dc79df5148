#!/usr/bin/env bash
# Session 23, call 4 (closing; tree bafafc3, kernels as s23r3's suite ran them): the demo, test_bench_tools
# (s23r3's one failure: the test's fake FlashInfer and the new window keyword), compute-sanitizer on
# the lazily rescaled fp8 builds (short cases and --long), and tools/bench.py --flashinfer.
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 NVRTC_ATTN_CACHE_DIR=/tmp/kc
t0=$(date +%s); el() { echo $(( $(date +%s) - t0 )); }
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem --format=csv,noheader
timeout 60 python3 -m nvrtc_attn > $OUT/demo.log 2>&1; echo "demo rc=$? $(el)s"; tail -3 $OUT/demo.log | cut -c1-200
export FLASHINFER_WORKSPACE_BASE=/tmp/fiws FLASHINFER_CUDA_ARCH_LIST=9.0a TVM_FFI_DISABLE_TORCH_C_DLPACK=1
mkdir -p /tmp/fipkg
(python3 -m pip install -q --no-index --no-deps --target /tmp/site .peers/*.whl && tar xzf .peers/flashinfer-*.tgz -C /tmp/fipkg) > $OUT/setup.log 2>&1; echo "fi setup rc=$? $(el)s"
PYTHONPATH=$PWD:/tmp/fipkg:/tmp/site timeout 150 python3 -m pytest -q -p no:cacheprovider -rfE tests/test_bench_tools.py > $OUT/bench_tools.log 2>&1
echo "bench_tools rc=$? $(el)s"; tail -1 $OUT/bench_tools.log; grep -E "^FAILED" $OUT/bench_tools.log | head -4 | cut -c1-200
for mode in "" "--long"; do
  timeout 60 compute-sanitizer --tool racecheck --report-api-errors no --error-exitcode 9 python3 tools/sanitizer_case.py $mode > $OUT/san_racecheck${mode}.log 2>&1
  echo "racecheck $mode rc=$? $(el)s"; tail -1 $OUT/san_racecheck${mode}.log
done
left=$(( 560 - $(el) )); [ $left -gt 240 ] && left=240
PYTHONPATH=$PWD:/tmp/fipkg:/tmp/site timeout $left python3 tools/bench.py --flashinfer --json $OUT/bench.json > $OUT/bench.log 2>&1; echo "bench rc=$? $(el)s"
grep -E "^ *(W[0-9]|run\(\)|plan ms|ceiling|GEMM)" $OUT/bench.log | grep -vE "^W[0-9a-z]+: " | cut -c1-150
