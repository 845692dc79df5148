#!/usr/bin/env bash
# session 7 closing run, part 3: plan() host time of this tree against 4ec51aa (ab/base), interleaved, 2 rounds
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
for r in 1 2; do for t in . ab/base; do l=$([ $t = . ] && echo A || echo base)
  NVRTC_ATTN_CACHE_DIR=/tmp/kc_final timeout 100 python3 tools/bench.py --lib $t --no-ceiling --no-host-cost --iters 5 --json $OUT/plan_${l}_$r.json > /dev/null 2>&1; echo "$l r$r rc=$?"
done; done
python3 - <<'PY'
import json, os, glob
out = os.environ["OUT"]
rows = {}
for f in sorted(glob.glob(f"{out}/plan_*.json")):
    lab = os.path.basename(f)[5:-5]
    d = json.load(open(f))
    for r in d.get("rows", d.get("results", [])):
        rows.setdefault(r.get("id") or r.get("workload"), {})[lab] = r.get("plan_ms") or (r.get("ours") or {}).get("plan_ms")
for w, v in rows.items(): print(w, " ".join(f"{k}={v[k]:.2f}" if isinstance(v[k], float) else f"{k}={v[k]}" for k in sorted(v)))
PY
