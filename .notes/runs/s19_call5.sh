#!/usr/bin/env bash
# session 19, call 5 (closing): the short tiles' K/V by the gather (this tree) against TMA page boxes
# (ab/base = 73a0e52) on W9 at four page sizes and three short batches (tools/ab.sh); the GPU tests
# that plan short tiles or check load paths; bench.py with FlashInfer in the same run.
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 NVRTC_ATTN_CACHE_DIR=$PWD/.kcache
t0=$(date +%s); el() { echo $(( $(date +%s) - t0 )); }
export FLASHINFER_WORKSPACE_BASE=/tmp/fiws FLASHINFER_CUDA_ARCH_LIST=9.0a TVM_FFI_DISABLE_TORCH_C_DLPACK=1
mkdir -p /tmp/fipkg
(python3 -m pip install -q --no-index --no-deps --target /tmp/site .peers/*.whl && tar xzf .peers/flashinfer-*.tgz -C /tmp/fipkg) > $OUT/setup.log 2>&1; echo "fi setup rc=$? $(el)s"
timeout 100 python3 tools/bench.py --compile all > $OUT/compile.log 2>&1; echo "compile rc=$? $(el)s"
AB_BENCH_ARGS="--workloads .notes/runs/s19_w9_pages.json" OUT=$OUT timeout 200 bash tools/ab.sh --rounds 2 --iters 50 W9,W9p32,W9p64,W9p256,S1,S3,S8 > $OUT/ab.log 2>&1; echo "ab rc=$? $(el)s"; tail -11 $OUT/ab.log | cut -c1-200
timeout 300 python3 -m pytest -q -n 14 -p no:cacheprovider -rf tests/test_sm90_short.py tests/test_wrapper.py tests/test_engines.py tests/test_split_kv.py tests/test_flashinfer_api.py tests/test_expand.py tests/test_sm90_loads.py tests/test_prefill.py > $OUT/pytest.txt 2>&1; echo "pytest rc=$? $(el)s"
grep -E "passed|failed" $OUT/pytest.txt | tail -1; grep -E "^FAILED|^ERROR" $OUT/pytest.txt | head -15 | cut -c1-200
PYTHONPATH=$PWD:/tmp/fipkg:/tmp/site timeout 150 python3 tools/bench.py --flashinfer --json $OUT/bench.json > $OUT/bench.log 2>&1; echo "bench rc=$? $(el)s"
grep -E "^ *(W[0-9]|run\(\)|plan ms|ceiling)" $OUT/bench.log | grep -vE "^W[0-9a-z]+: " | cut -c1-64
