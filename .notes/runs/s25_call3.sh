#!/usr/bin/env bash
# Session 25, call 3: per-query-head q_scale now scales the rows' fp32 scores (Consumer::cap_and_mask,
# sm80 cap_and_mask; s25r2's fold into the widened Q failed: its 16-bit rounding broke the LSE
# bound), per-KV-head q_scale in TileScales, FlashInfer's positional fp8 scales. The device budget
# left (393 s) takes only the tests this change touches: the grid cases with q_scale arrays, the
# FlashInfer-call test, the rejections, the fp8-MMA cases, and test_launcher.py (-v: failures named
# as they happen); then the fp8-query rows.
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 NVRTC_ATTN_CACHE_DIR=/tmp/kc
t0=$(date +%s); el() { echo $(( $(date +%s) - t0 )); }
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem --format=csv,noheader
timeout 100 python3 tools/bench.py --compile all > $OUT/compile.log 2>&1; echo "compile rc=$? $(el)s"; head -1 $OUT/compile.log | cut -c1-200
timeout 200 python3 -m pytest -v -n 15 -p no:cacheprovider -rfE tests/test_fp8.py tests/test_launcher.py \
    -k "qskvheads or qsqoheads or flashinfer_call or rejections or mma or launcher" > $OUT/pytest.txt 2>&1; echo "pytest rc=$? $(el)s"
grep -cE " PASSED " $OUT/pytest.txt; grep -E "passed|failed" $OUT/pytest.txt | tail -1
grep -E " FAILED | ERROR " $OUT/pytest.txt | head -12 | cut -c1-250
grep -E "^E  .*(rel L2|LSE|Error|assert)" $OUT/pytest.txt | head -12 | cut -c1-250
timeout $(( 290 - $(el) )) python3 tools/bench.py --only W2f8q,W7f8q --json $OUT/bench.json > $OUT/bench.log 2>&1; echo "bench rc=$? $(el)s"
grep -E "^ *(W[0-9])" $OUT/bench.log | grep -vE "^W[0-9a-z]+: " | cut -c1-150
