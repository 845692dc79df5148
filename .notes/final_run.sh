#!/bin/bash
# The closing device call: demo, every test, the full benchmark with peers. Logs under $OUT.
set -o pipefail
export PYTHONUNBUFFERED=1 PYTHONPATH=. NVRTC_ATTN_CACHE_DIR=$PWD/.kcache
OUT=${OUT:-/tmp/out}; mkdir -p $OUT
nvidia-smi -L
timeout 90 python3 -m nvrtc_attn 2>&1 | tr -d '\000' | tee $OUT/demo.log | tail -6
timeout 300 python3 -m pytest -q tests 2>&1 | tr -d '\000' > $OUT/pytest.txt; echo "pytest rc=$?"
tail -6 $OUT/pytest.txt
timeout 240 python3 tools/bench.py --json $OUT/bench.json 2>&1 | tr -d '\000' | tee $OUT/bench.log | tail -13
for r in 1 2; do  # repeats of the workloads closest to their floors
  timeout 100 python3 tools/bench.py --only ${REPEAT:-W5,W2p1,W7} --no-peer 2>&1 | tr -d '\000' | grep -E "^ +W[0-9]" | tee -a $OUT/repeats.log
done
