#!/usr/bin/env bash
# session 12, call 3: why a W8 piece runs 17% slower per key block than a W7 tile of the same build and
# length (s12r2: split prefill 122.8 us for 47 blocks, unsplit 64 CTAs 2.23 us/block = W7's): DRAM bytes,
# L2 hit rate, stalls of the split prefill, W8 unsplit (disable_split_kv via NVRTC_ATTN... not
# available: the probe plans the default) and W7; plus the merge kernel.
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 NVRTC_ATTN_CACHE_DIR=/tmp/kc_A
t0=$(date +%s)
python3 tools/bench.py --compile needed --only W8,W7 > /tmp/compile.log 2>&1; echo "compile rc=$? $(( $(date +%s)-t0 ))s"
M=$(python3 tools/ncu_probe.py --metrics),lts__t_sector_hit_rate.pct,lts__t_sector_op_read_hit_rate.pct,dram__bytes_write.sum,sm__cycles_active.avg,lts__t_sectors_srcunit_tex_lookup_miss.sum
for w in W8 W7; do
  timeout 120 ncu --clock-control none --kernel-name regex:prefill_sm90 --launch-skip 1 --launch-count 1 \
    --metrics $M --csv python3 tools/ncu_probe.py $w > $OUT/ncu_$w.csv 2>/tmp/ncu_$w.err
  echo "ncu $w rc=$? $(( $(date +%s)-t0 ))s"
done
timeout 60 ncu --clock-control none --kernel-name regex:merge_split --launch-skip 1 --launch-count 1 \
  --metrics $M --csv python3 tools/ncu_probe.py W8 > $OUT/ncu_W8_merge.csv 2>/tmp/ncu_m.err; echo "ncu merge rc=$?"
for f in $OUT/ncu_*.csv; do echo "== $f"; python3 - "$f" <<'PY'
import csv, sys
rows = [r for r in csv.reader(open(sys.argv[1])) if len(r) > 10]
if rows:
    h = rows[0]; i, j, k = h.index("Metric Name"), h.index("Metric Value"), h.index("Metric Unit")
    for r in rows[1:]:
        print(f"{r[i]:80s} {r[j]:>16s} {r[k]}")
PY
done
echo "total $(( $(date +%s)-t0 ))s"
