#!/usr/bin/env bash
# session 7 device call 5/6: 128-key vs 176-key blocks (ab/no176: long tiles off) on W10 and its page-size / group / mask twins
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
t0=$(date +%s)
#AB_TIMEOUT=120 timeout 260 bash tools/ab.sh --rounds 2 W2,W3,W7,W10,W2p64 > $OUT/ab.log 2>&1; echo "ab rc=$? $(( $(date +%s)-t0 ))s"
#tail -9 $OUT/ab.log
for r in 1 2; do for t in . ab/no176; do l=$(basename $t); NVRTC_ATTN_CACHE_DIR=/tmp/kc_ab_$([ $t = . ] && echo A || echo no176) timeout 100 python3 tools/bench.py --lib $t --workloads .notes/runs/s7_w10_workloads.json --no-ceiling --no-host-cost > $OUT/w10_${l}_$r.log 2>&1; echo "w10 $t r$r rc=$? $(( $(date +%s)-t0 ))s"; grep -E "^W10" $OUT/w10_${l}_$r.log | cut -c1-110; done; done
rm -f $OUT/*.log.tmp
