#!/bin/bash
# A/B timing in one device call: the working tree (A) against ab/prev (B, a git worktree of an
# earlier commit), interleaved: bash .notes/ab.sh W1,W2 [rounds]
export PYTHONUNBUFFERED=1
ONLY=$1; R=${2:-2}
for r in $(seq $R); do
  for side in A B; do
    if [ $side = A ]; then dir=.; kc=$PWD/.kcache; else dir=ab/prev; kc=/tmp/kc_B; fi
    (cd $dir && PYTHONPATH=. NVRTC_ATTN_CACHE_DIR=$kc timeout 150 python3 tools/bench.py --only $ONLY --no-peer --iters 30 2>&1 \
      | tr -d '\000' | grep -E "^ +W[0-9]" | awk -v s=$side '{print s, $1, $7}')
  done
done
