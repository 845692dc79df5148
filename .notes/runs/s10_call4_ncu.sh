#!/usr/bin/env bash
# session 10 call 4: ncu source view of W2f8q on the fp8-MMA build (call 2's per-line CSVs did not come back: 8 files per call)
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 NVRTC_ATTN_CACHE_DIR=/tmp/kc_A
t0=$(date +%s)
python3 tools/bench.py --compile needed --only W2f8q --fp8-mma > /tmp/compile.log 2>&1; echo "compile rc=$? $(( $(date +%s)-t0 ))s"
w=W2f8q
timeout 150 ncu --clock-control none --kernel-name regex:prefill_sm90 --launch-skip 1 --launch-count 1 \
  --section WarpStateStats --section SourceCounters --metrics $(python3 tools/ncu_probe.py --metrics) \
  -o /tmp/ncu_$w python3 tools/ncu_probe.py $w --fp8-mma > /tmp/ncu_$w.log 2>&1
echo "ncu $w rc=$? $(( $(date +%s)-t0 ))s"; tail -1 /tmp/ncu_$w.log
ncu -i /tmp/ncu_$w.ncu-rep --page source --csv --print-source sass 2>&1 | gzip > $OUT/src_$w.csv.gz
ls -la $OUT
