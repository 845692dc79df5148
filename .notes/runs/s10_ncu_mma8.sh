#!/usr/bin/env bash
# prepared in session 9 for the next one (not run yet): ncu of W2f8q on the fp8-MMA build (after the K-by-TMA and
# V-transpose changes) next to W2 (bf16): stalls per SASS line, metrics, to see whether the four producer warps
# (V transpose) or the consumers (softmax, P to e4m3) bound mode 2 now
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 NVRTC_ATTN_CACHE_DIR=/tmp/kc_A
t0=$(date +%s)
python3 tools/bench.py --compile needed --only W2,W2f8q > $OUT/compile.log 2>&1; echo "compile rc=$? $(( $(date +%s)-t0 ))s"
for w in W2f8q W2; do
  extra=; [ $w = W2f8q ] && extra=--fp8-mma
  timeout 150 ncu --clock-control none --kernel-name regex:prefill_sm90 --launch-skip 1 --launch-count 1 \
    --section WarpStateStats --section SourceCounters --section SchedulerStats --section MemoryWorkloadAnalysis_Tables \
    --metrics $(python3 tools/ncu_probe.py --metrics) -o $OUT/ncu_$w python3 tools/ncu_probe.py $w $extra > $OUT/ncu_$w.log 2>&1
  echo "ncu $w rc=$? $(( $(date +%s)-t0 ))s"; tail -1 $OUT/ncu_$w.log
  ncu -i $OUT/ncu_$w.ncu-rep --page source --csv --print-source sass 2>&1 | gzip > $OUT/src_$w.csv.gz
  ncu -i $OUT/ncu_$w.ncu-rep --page details --csv > $OUT/details_$w.csv 2>&1
  rm -f $OUT/ncu_$w.ncu-rep
done
ls -la $OUT
