#!/usr/bin/env bash
# session 14 (from s13_call4_fi.sh, without its tests): plan() and run() next to FlashInfer's in one run (FlashInfer 0.7.2 AOT, ../shared/peers carried as .peers/)
python3 -m pip install -q --no-index --no-deps --target /tmp/site .peers/*.whl > /dev/null 2>&1
mkdir -p /tmp/fipkg && tar xzf .peers/flashinfer-*.tgz -C /tmp/fipkg
export PYTHONPATH=$PWD:/tmp/fipkg:/tmp/site FLASHINFER_WORKSPACE_BASE=/tmp/fiws FLASHINFER_CUDA_ARCH_LIST=9.0a \
       TVM_FFI_DISABLE_TORCH_C_DLPACK=1 PYTHONUNBUFFERED=1 NVRTC_ATTN_CACHE_DIR=$PWD/.kcache
python3 -c "import torch, flashinfer; print('flashinfer', flashinfer.__version__)"
timeout ${FI_TIMEOUT:-400} python3 tools/bench.py --flashinfer --only ${FI_ONLY:-W1,W2,W3,W4,W8,W9,W10} --json $OUT/bench_fi.json > $OUT/bench_fi.log 2>&1
echo "bench rc=$?"; grep -E "^ *(W|run|host)" $OUT/bench_fi.log | cut -c1-200 | tail -12


