#!/usr/bin/env bash
# Session 24, call 7 (closing; tree 1295bf8): L2 sections of the head_dim 64 tile (Python-only trees
# ab/hd64_l2_16, ab/hd64_l2_8 against main's 32 MB) on .notes/runs/s24_workloads4.json; then the demo
# and tools/bench.py --flashinfer.
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 NVRTC_ATTN_CACHE_DIR=/tmp/kc
t0=$(date +%s); el() { echo $(( $(date +%s) - t0 )); }
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem --format=csv,noheader
AB_BENCH_ARGS="--workloads .notes/runs/s24_workloads4.json" OUT=$OUT timeout 150 bash tools/ab.sh --rounds 3 --iters 20 \
    W5,W5g4,W5s,W5n > $OUT/ab.log 2>&1; echo "ab rc=$? $(el)s"; tail -7 $OUT/ab.log | cut -c1-160
timeout 60 python3 -m nvrtc_attn > $OUT/demo.log 2>&1; echo "demo rc=$? $(el)s"; tail -3 $OUT/demo.log | cut -c1-200
export FLASHINFER_WORKSPACE_BASE=/tmp/fiws FLASHINFER_CUDA_ARCH_LIST=9.0a TVM_FFI_DISABLE_TORCH_C_DLPACK=1
mkdir -p /tmp/fipkg
(python3 -m pip install -q --no-index --no-deps --target /tmp/site .peers/*.whl && tar xzf .peers/flashinfer-*.tgz -C /tmp/fipkg) > $OUT/setup.log 2>&1; echo "fi setup rc=$? $(el)s"
PYTHONPATH=$PWD:/tmp/fipkg:/tmp/site timeout $(( 380 - $(el) )) python3 tools/bench.py --flashinfer --json $OUT/bench.json > $OUT/bench.log 2>&1; echo "bench rc=$? $(el)s"
grep -E "^ *(W[0-9]|run\(\)|plan ms|ceiling|GEMM)" $OUT/bench.log | grep -vE "^W[0-9a-z]+: " | cut -c1-150
