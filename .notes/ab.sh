#!/bin/bash
# A/B timing in one device call: the working tree (label A) against every tree under ab/ (copies of
# other versions, e.g. `git archive <rev> | tar -x -C ab/prev`), interleaved rounds:
#   bash .notes/ab.sh W1,W2 [rounds]
export PYTHONUNBUFFERED=1
ONLY=$1; R=${2:-2}
for r in $(seq $R); do
  for dir in . ab/*; do
    label=$([ "$dir" = . ] && echo A || basename $dir)
    kc=$([ -d $dir/.kcache ] && echo $PWD/$dir/.kcache || echo /tmp/kc_$label)
    (cd $dir && PYTHONPATH=. NVRTC_ATTN_CACHE_DIR=$kc timeout 150 python3 tools/bench.py --only $ONLY --no-peer --iters 30 2>&1 \
      | tr -d '\000' | grep -E "^ +W[0-9]" | awk -v s=$label '{print s, $1, $7}')
  done
done
