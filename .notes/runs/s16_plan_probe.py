"""plan() on the GPU machine's host (session 16): every workload planned round robin (as
tools/plan_bench.py does on the CPU), 100 rounds, the GPU drained between calls as bench.py does,
so a slow phase of the host spreads over all workloads; and a NumPy probe to compare hosts
(s13_plan_parts.py times the steps)."""
import collections, statistics, sys, time
sys.path.insert(0, "tools")
import bench

gpu = bench.Gpu()
wl = bench.load_workloads(None)[0]
setups = {}
for w in wl:
    batch = bench.build_batch(w)
    ops = bench.make_operands(gpu, w, batch)
    wr = bench.ours_wrapper(gpu, "auto", "auto")
    idx = bench.host_indices(gpu.torch, batch)
    bench.plan_ours(wr, w, idx, ops)
    setups[w["id"]] = (w, wr, idx, ops)
gpu.sync()
times = {k: [] for k in setups}
for r in range(100):
    for wid, (w, wr, idx, ops) in setups.items():
        t0 = time.perf_counter(); bench.plan_ours(wr, w, idx, ops); times[wid].append((time.perf_counter() - t0) * 1e3)
        gpu.sync()
print("round robin, 100 rounds: median / p10 / p90 / first-20 median ms")
for wid, t in times.items():
    q = statistics.quantiles(t, n=10)
    print(f"  {wid:6s} {statistics.median(t):.3f} / {q[0]:.3f} / {q[-1]:.3f} / {statistics.median(t[:20]):.3f}")
# a numpy-only stand-in of the same planner step, to compare this host's speed with the CPU machine's
import numpy as np
a = np.random.default_rng(0).integers(0, 1 << 20, 4096)
t = []
for _ in range(2000):
    t0 = time.perf_counter(); a.argsort(kind="stable"); np.add.accumulate(a); t.append(time.perf_counter() - t0)
print(f"numpy probe (argsort 4096 + accumulate): {statistics.median(t) * 1e6:.1f} us")

