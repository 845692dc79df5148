#!/usr/bin/env bash
# session 7 device call 2: W8 with fixed split lengths (uneven pieces fill all 132 CTAs?), ncu of W1 and W10 per SASS line
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 NVRTC_ATTN_CACHE_DIR=/tmp/kc_A
t0=$(date +%s)
python3 tools/bench.py --compile needed --only W1,W10,W8 > $OUT/compile.log 2>&1; echo "compile rc=$? $(( $(date +%s)-t0 ))s"
for r in 1 2; do timeout 120 python3 tools/bench.py --workloads .notes/runs/s7_split_workloads.json --no-ceiling --no-host-cost --json $OUT/split$r.json > $OUT/split$r.log 2>&1; echo "split rc=$? $(( $(date +%s)-t0 ))s"; grep -E "^W8" $OUT/split$r.log | cut -c1-150; done
for w in W1 W10; do
  timeout 150 ncu --clock-control none --kernel-name regex:prefill_sm90 --launch-skip 1 --launch-count 1 \
    --section WarpStateStats --section SourceCounters --section SchedulerStats \
    --metrics $(python3 tools/ncu_probe.py --metrics) -o $OUT/ncu_$w python3 tools/ncu_probe.py $w > $OUT/ncu_$w.log 2>&1
  echo "ncu $w rc=$? $(( $(date +%s)-t0 ))s"
  ncu -i $OUT/ncu_$w.ncu-rep --page source --csv --print-source sass 2>&1 | gzip > $OUT/src_$w.csv.gz
  ncu -i $OUT/ncu_$w.ncu-rep --page details --csv > $OUT/details_$w.csv 2>&1
  rm -f $OUT/ncu_$w.ncu-rep
done
ls -la $OUT
