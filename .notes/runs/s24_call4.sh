#!/usr/bin/env bash
# Session 24, call 4 (closing; tree fdf8c9b): the demo, test_bench_tools with FlashInfer, racecheck
# (sanitizer_case.py and --long), tools/bench.py --flashinfer; then, if time is left, an L2-section A/B
# (Python-only trees: head_dim 128 sections of 8 and 24 MB against 12).
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 NVRTC_ATTN_CACHE_DIR=/tmp/kc
t0=$(date +%s); el() { echo $(( $(date +%s) - t0 )); }
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem --format=csv,noheader
timeout 60 python3 -m nvrtc_attn > $OUT/demo.log 2>&1; echo "demo rc=$? $(el)s"; tail -3 $OUT/demo.log | cut -c1-200
export FLASHINFER_WORKSPACE_BASE=/tmp/fiws FLASHINFER_CUDA_ARCH_LIST=9.0a TVM_FFI_DISABLE_TORCH_C_DLPACK=1
mkdir -p /tmp/fipkg
(python3 -m pip install -q --no-index --no-deps --target /tmp/site .peers/*.whl && tar xzf .peers/flashinfer-*.tgz -C /tmp/fipkg) > $OUT/setup.log 2>&1; echo "fi setup rc=$? $(el)s"
PYTHONPATH=$PWD:/tmp/fipkg:/tmp/site timeout 150 python3 -m pytest -q -p no:cacheprovider -rfE tests/test_bench_tools.py > $OUT/bench_tools.log 2>&1
echo "bench_tools rc=$? $(el)s"; tail -1 $OUT/bench_tools.log; grep -E "^FAILED" $OUT/bench_tools.log | head -4 | cut -c1-200
timeout 60 compute-sanitizer --tool racecheck --report-api-errors no --error-exitcode 9 python3 tools/sanitizer_case.py > $OUT/san_racecheck.log 2>&1
echo "racecheck rc=$? $(el)s"; tail -1 $OUT/san_racecheck.log
left=$(( 480 - $(el) )); [ $left -gt 250 ] && left=250
PYTHONPATH=$PWD:/tmp/fipkg:/tmp/site timeout $left python3 tools/bench.py --flashinfer --json $OUT/bench.json > $OUT/bench.log 2>&1; echo "bench rc=$? $(el)s"
grep -E "^ *(W[0-9]|run\(\)|plan ms|ceiling|GEMM)" $OUT/bench.log | grep -vE "^W[0-9a-z]+: " | cut -c1-150
left=$(( 590 - $(el) ))
if [ $left -gt 60 ] && [ -d ab ]; then
  OUT=$OUT timeout $left bash tools/ab.sh --rounds 2 --iters 20 W1,W4,W10,W3,W2 > $OUT/ab.log 2>&1; echo "ab rc=$? $(el)s"; tail -8 $OUT/ab.log | cut -c1-160
fi
