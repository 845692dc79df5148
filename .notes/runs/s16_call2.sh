#!/usr/bin/env bash
# session 16, call 2: (a) per-SASS-line counters of W2p1 on this tree and ab/static (s16r1: A runs 453.0M
# warp instructions against static's 433.6M, W2 equal); (b) plan()'s steps by window of rounds.
export PYTHONUNBUFFERED=1
t0=$(date +%s); el() { echo $(( $(date +%s) - t0 )); }
(NVRTC_ATTN_CACHE_DIR=$PWD/.kcache PYTHONPATH=$PWD timeout 60 python3 tools/bench.py --compile all > /tmp/compile_all.log 2>&1; echo "compile all rc=$? $(el)s") &
(cd ab/static && PYTHONPATH=$PWD NVRTC_ATTN_CACHE_DIR=/tmp/kc_static timeout 120 python3 tools/bench.py --compile needed --only W2p1 > /tmp/compile_static.log 2>&1; echo "compile static rc=$?") &
wait
NVRTC_ATTN_CACHE_DIR=$PWD/.kcache PYTHONPATH=$PWD timeout 150 python3 .notes/runs/s16_plan_windows.py 100 2>&1 | tail -30; echo "windows rc=$? $(el)s"
for tree in . ab/static; do
  lab=$( [ $tree = . ] && echo A || echo static )
  kc=$( [ $tree = . ] && echo $PWD/.kcache || echo /tmp/kc_static )
  (cd $tree && PYTHONPATH=$PWD NVRTC_ATTN_CACHE_DIR=$kc timeout 150 ncu --clock-control none --kernel-name regex:prefill_sm90 \
     --launch-skip 1 --launch-count 1 --section WarpStateStats --section SourceCounters --section SchedulerStats \
     -o /tmp/ncu_$lab python3 tools/ncu_probe.py W2p1 > /tmp/ncu_$lab.log 2>&1)
  echo "ncu $lab rc=$? $(el)s"; tail -2 /tmp/ncu_$lab.log
  ncu -i /tmp/ncu_$lab.ncu-rep --page source --csv --print-source sass 2>&1 | gzip > $OUT/src_${lab}_W2p1.csv.gz
  ncu -i /tmp/ncu_$lab.ncu-rep --page details --csv > $OUT/details_${lab}_W2p1.csv 2>&1
done
ls -la $OUT; echo "total $(el)s"
