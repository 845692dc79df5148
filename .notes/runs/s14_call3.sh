#!/usr/bin/env bash
# session 14, call 3: bench.py's full table on eed3bcf (claimed tiles), then plan()/run() next to FlashInfer's
# in one run (FlashInfer 0.7.2 AOT, ../shared/peers carried as .peers/), as s13_call4_fi.sh.
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false NVRTC_ATTN_CACHE_DIR=$PWD/.kcache
t0=$(date +%s); el() { echo $(( $(date +%s) - t0 )); }
timeout 90 python3 tools/bench.py --compile all > $OUT/compile.log 2>&1; echo "compile rc=$? $(el)s"
timeout 90 python3 tools/bench.py --json $OUT/bench.json > $OUT/bench.log 2>&1; echo "bench rc=$? $(el)s"
grep -E "^ *(W|run|host|ceiling)" $OUT/bench.log | cut -c1-120 | tail -22
FI_TIMEOUT=${FI_TIMEOUT:-240} FI_ONLY=${FI_ONLY:-W1,W2,W4,W8,W9,W10} bash .notes/runs/s14_fi.sh
echo "done $(el)s"
