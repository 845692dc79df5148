#!/usr/bin/env bash
# session 16, call 1: (a) ncu of W2p1 (gather) and W2 (TMA) on this tree (claimed tiles) and ab/static
# (c27fadd, the static partition): where W2p1's 2% goes; (b) plan() on this host, round robin over
# every workload, and its steps on the ones that read high before.
export PYTHONUNBUFFERED=1
t0=$(date +%s); el() { echo $(( $(date +%s) - t0 )); }
M=$(python3 tools/ncu_probe.py --metrics),lts__t_sector_hit_rate.pct,lts__t_sector_op_read_hit_rate.pct,sm__cycles_active.avg,smsp__inst_executed.sum,smsp__cycles_active.avg
for tree in . ab/static; do
  lab=$( [ $tree = . ] && echo A || echo static )
  (cd $tree && PYTHONPATH=$PWD NVRTC_ATTN_CACHE_DIR=/tmp/kc_$lab timeout 120 python3 tools/bench.py --compile needed --only W2p1,W2 > /tmp/compile_$lab.log 2>&1; echo "compile $lab rc=$?") &
done
wait; echo "compiled $(el)s"
for tree in . ab/static; do
  lab=$( [ $tree = . ] && echo A || echo static )
  for w in W2p1 W2; do
    (cd $tree && PYTHONPATH=$PWD NVRTC_ATTN_CACHE_DIR=/tmp/kc_$lab timeout 150 ncu --clock-control none --kernel-name regex:prefill_sm90 \
      --launch-skip 1 --launch-count 1 --metrics $M --csv python3 tools/ncu_probe.py $w > $OUT/ncu_${lab}_$w.csv 2>/tmp/ncu_${lab}_$w.err)
    echo "ncu $lab $w rc=$? $(el)s"; tail -2 /tmp/ncu_${lab}_$w.err
  done
done
python3 - $OUT/ncu_*.csv <<'PY'
import csv, sys
tabs = {}
for f in sys.argv[1:]:
    rows = [r for r in csv.reader(open(f)) if len(r) > 10]
    if not rows: print("empty", f); continue
    h = rows[0]; i, j = h.index("Metric Name"), h.index("Metric Value")
    tabs[f.split("ncu_")[-1][:-4]] = {r[i]: r[j] for r in rows[1:]}
names = sorted({m for t in tabs.values() for m in t})
print(f"{'metric':78s}" + "".join(f"{k:>16s}" for k in tabs))
for m in names:
    print(f"{m[:78]:78s}" + "".join(f"{tabs[k].get(m, '-'):>16s}" for k in tabs))
PY
echo "== plan probe $(el)s"
NVRTC_ATTN_CACHE_DIR=$PWD/.kcache PYTHONPATH=$PWD timeout 60 python3 tools/bench.py --compile all > /tmp/compile_all.log 2>&1; echo "compile all rc=$? $(el)s"
NVRTC_ATTN_CACHE_DIR=$PWD/.kcache PYTHONPATH=$PWD timeout 150 python3 .notes/runs/s16_plan_probe.py 2>&1 | tail -25; echo "probe rc=$? $(el)s"
NVRTC_ATTN_CACHE_DIR=$PWD/.kcache PYTHONPATH=$PWD timeout 90 python3 .notes/runs/s13_plan_parts.py W7,W6,W4 2>&1 | tail -60; echo "parts rc=$? $(el)s"
