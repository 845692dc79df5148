#!/usr/bin/env bash
# session 19, call 2: W9's short tile, four shapes against today's (ab/base = HEAD's tree, A = this
# tree, same kernels): v1 128-key blocks, 3 stages, 1 CTA per SM; v2 64 keys, 4 stages, 1 CTA per SM;
# v3 48 keys, 3 stages, 2 CTAs per SM; v4 32 keys, 4 stages, 2 CTAs per SM (ab/vN: variants.py's
# SM90_SHORT_TILES[128], consumer registers capped at 240, barrier bytes 256, ptx_wgmma.cuh
# regenerated). Then each variant's tests/test_sm90_short.py.
export PYTHONUNBUFFERED=1
t0=$(date +%s); el() { echo $(( $(date +%s) - t0 )); }
OUT=$OUT timeout 330 bash tools/ab.sh --rounds 3 --iters 50 W9 > $OUT/ab.log 2>&1; echo "ab rc=$? $(el)s"; tail -12 $OUT/ab.log
for n in v1 v2 v3 v4; do
  (cd ab/$n && PYTHONPATH=$PWD NVRTC_ATTN_CACHE_DIR=/tmp/kc_ab_$n timeout 80 python3 -m pytest -q -x -n 8 -p no:cacheprovider tests/test_sm90_short.py > $OUT/short_$n.txt 2>&1); echo "short tests $n rc=$? $(el)s: $(tail -1 $OUT/short_$n.txt | cut -c1-120)"
done
