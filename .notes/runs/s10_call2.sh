#!/usr/bin/env bash
# session 10 call 2: compute-sanitizer on the long cases (split and not), then ncu of W2f8q (fp8_mma) and W2
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false NVRTC_ATTN_CACHE_DIR=$PWD/.kcache
t0=$(date +%s)
for a in "--long" "--long --no-split"; do
  timeout 100 compute-sanitizer --tool racecheck --error-exitcode 9 python3 tools/sanitizer_case.py $a > $OUT/racecheck${a// /_}.log 2>&1; echo "racecheck $a rc=$? $(( $(date +%s)-t0 ))s"; tail -1 $OUT/racecheck${a// /_}.log
  timeout 80 compute-sanitizer --tool memcheck python3 tools/sanitizer_case.py $a > $OUT/memcheck${a// /_}.log 2>&1; echo "memcheck $a rc=$? $(( $(date +%s)-t0 ))s"; grep -c "Invalid\|out of bounds" $OUT/memcheck${a// /_}.log; tail -1 $OUT/memcheck${a// /_}.log
done
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
