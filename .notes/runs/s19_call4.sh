#!/usr/bin/env bash
# session 19, call 4: W9 with the cp.async gather against TMA pages (same tree, same build family:
# bench.py --kv-load gather), rounds interleaved; the short-tile batches of tools/short_tile_workloads.json too.
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 NVRTC_ATTN_CACHE_DIR=$PWD/.kcache
t0=$(date +%s); el() { echo $(( $(date +%s) - t0 )); }
timeout 100 python3 tools/bench.py --compile all > $OUT/compile.log 2>&1; echo "compile rc=$? $(el)s"
for r in 1 2 3; do for kv in auto gather; do
  timeout 60 python3 tools/bench.py --only W9 --kv-load $kv --iters 50 --no-ceiling --no-host-cost --plan-rounds 1 --plan-iters 2 --no-precompile > $OUT/w9_${kv}_r$r.log 2>&1
  echo "r$r $kv rc=$?: $(grep -E '^W9:' $OUT/w9_${kv}_r$r.log | cut -c1-110)"
done; done
for kv in auto gather; do
  timeout 90 python3 tools/bench.py --workloads tools/short_tile_workloads.json --kv-load $kv --iters 30 --no-ceiling --no-host-cost --plan-rounds 1 --plan-iters 2 > $OUT/short_${kv}.log 2>&1
  echo "short $kv rc=$? $(el)s"; grep -E '^S[0-9]+:' $OUT/short_${kv}.log | cut -c1-100
done
