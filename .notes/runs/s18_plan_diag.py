"""Session 18 diagnostic: where does plan()'s time go on the GPU machine's host, and is bench.py's
per-workload median (20 calls right after the first plan) stable? Round robin over all workloads,
ROUNDS rounds of CALLS calls each, wall and CPU (thread) time per call, and the wall time inside the
driver-facing steps (upload + expansion launch) and make_plan.

    PYTHONPATH=$PWD python3 .notes/runs/s18_plan_diag.py [ROUNDS] [CALLS]
"""
import gc
import statistics
import sys
import time

sys.path.insert(0, "tools")
import bench  # noqa: E402
from nvrtc_attn import launcher, planner, validate, wrapper as wmod  # noqa: E402

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 8
CALLS = int(sys.argv[2]) if len(sys.argv) > 2 else 20
acc = {"drv": 0.0, "mk": 0.0, "chk": 0.0}


def timed(mod, name, key):
    fn = getattr(mod, name)

    def inner(*a, **k):
        t0 = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            acc[key] += time.perf_counter() - t0
    setattr(mod, name, inner)


timed(launcher, "copy_host_to_device", "drv")
timed(launcher, "expand_plan", "drv")
timed(planner, "make_plan", "mk")
timed(validate, "check_plan_args", "chk")

gpu = bench.Gpu()
wls, _ = bench.load_workloads()
items = []
for w in wls:
    batch = bench.build_batch(w)
    ops = bench.make_operands(gpu, w, batch)
    wr = bench.ours_wrapper(gpu, "auto", "auto")
    ia = bench.host_indices(gpu.torch, batch)
    bench.plan_ours(wr, w, ia, ops)
    gpu.sync()
    items.append((w["id"], wr, ia, ops, w))
print(f"gc enabled {gc.isenabled()}, thresholds {gc.get_threshold()}, tracked objects {len(gc.get_objects())}")
res = {wid: {"wall": [], "cpu": [], "drv": [], "mk": [], "chk": [], "rounds": []} for wid, *_ in items}
for r in range(ROUNDS):
    for wid, wr, ia, ops, w in items:
        walls = []
        for _ in range(CALLS):
            for k in acc:
                acc[k] = 0.0
            c0, t0 = time.thread_time(), time.perf_counter()
            bench.plan_ours(wr, w, ia, ops)
            t1, c1 = time.perf_counter(), time.thread_time()
            gpu.sync()
            d = res[wid]
            d["wall"].append((t1 - t0) * 1e3)
            d["cpu"].append((c1 - c0) * 1e3)
            for k in acc:
                d[k].append(acc[k] * 1e3)
            walls.append((t1 - t0) * 1e3)
        res[wid]["rounds"].append(statistics.median(walls))
med = statistics.median
print(f"{ROUNDS} rounds x {CALLS} calls; ms: median wall, median cpu, median in upload+expand, make_plan, "
      f"check_plan_args; per-round medians")
for wid, d in res.items():
    print(f"{wid:6s} wall {med(d['wall']):.3f} cpu {med(d['cpu']):.3f} drv {med(d['drv']):.3f} "
          f"mk {med(d['mk']):.3f} chk {med(d['chk']):.3f} | rounds "
          + " ".join(f"{x:.2f}" for x in d["rounds"]))
