#!/usr/bin/env bash
# session 6 device call 3: ncu of W2f8 (fp8 mode 1) and W2 (bf16): stalls per SASS line, metrics
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 NVRTC_ATTN_CACHE_DIR=/tmp/kc_A
t0=$(date +%s)
python3 tools/bench.py --compile needed --only W2,W2f8 > $OUT/compile.log 2>&1; echo "compile rc=$? $(( $(date +%s)-t0 ))s"
for w in W2f8 W2; do
  timeout 150 ncu --clock-control none --kernel-name regex:prefill_sm90 --launch-skip 1 --launch-count 1 \
    --section WarpStateStats --section SourceCounters --section SchedulerStats --section MemoryWorkloadAnalysis_Tables \
    --metrics $(python3 tools/ncu_probe.py --metrics) -o $OUT/ncu_$w python3 tools/ncu_probe.py $w > $OUT/ncu_$w.log 2>&1
  echo "ncu $w rc=$? $(( $(date +%s)-t0 ))s"
  ncu -i $OUT/ncu_$w.ncu-rep --page source --csv --print-source sass > $OUT/src_$w.csv 2>&1
  ncu -i $OUT/ncu_$w.ncu-rep --page details --csv > $OUT/details_$w.csv 2>&1
  ncu -i $OUT/ncu_$w.ncu-rep --page raw --csv > $OUT/raw_$w.csv 2>&1
done
ls -la $OUT
