#!/usr/bin/env bash
# session 17, call 3: call 2's suite ran 2160 of 2174 tests (0 failed) before its 370 s timeout; this
# runs the GPU suite again without tests/test_compile.py (1094 NVRTC compile tests of every variant,
# GPU-free; CI ran them green on d782709) so that every GPU test of d782709 completes.
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false NVRTC_ATTN_CACHE_DIR=$PWD/.kcache
t0=$(date +%s); el() { echo $(( $(date +%s) - t0 )); }
timeout 265 python3 -m pytest -q -n 14 -p no:cacheprovider -rf --durations=20 tests --ignore=tests/test_compile.py > $OUT/pytest.txt 2>&1; echo "pytest rc=$? $(el)s"
grep -E "passed|failed" $OUT/pytest.txt | tail -2; grep -E "^FAILED" $OUT/pytest.txt | head -20 | cut -c1-200
