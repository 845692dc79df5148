"""Session 18: does draining the GPU between plan() calls (bench.py's method) change plan()'s host
time? Same wrappers, interleaved: no sync / torch.cuda.synchronize() after each call / sync + 1 ms
sleep; and the time inside upload + expansion launch for each."""
import statistics
import sys
import time

sys.path.insert(0, "tools")
import bench  # noqa: E402
import plan_bench  # noqa: E402
from nvrtc_attn import launcher  # noqa: E402

acc = [0.0]
for name in ("copy_host_to_device", "expand_plan"):
    fn = getattr(launcher, name)

    def inner(*a, _fn=fn, **k):
        t0 = time.perf_counter()
        try:
            return _fn(*a, **k)
        finally:
            acc[0] += time.perf_counter() - t0
    setattr(launcher, name, inner)

ids = sys.argv[1].split(",")
gpu = bench.Gpu()
wls = {w["id"]: w for w in bench.load_workloads()[0]}
wls["S4"] = plan_bench.SMALL_BATCH
calls = {}
for wid in ids:
    w = wls[wid]
    batch = bench.build_batch(w)
    ops = bench.make_operands(gpu, w, batch)
    wr = bench.ours_wrapper(gpu, "auto", "auto")
    ia = bench.host_indices(gpu.torch, batch)
    calls[wid] = (lambda wr=wr, w=w, ia=ia, ops=ops: bench.plan_ours(wr, w, ia, ops))
    calls[wid]()
gpu.sync()
modes = {"nosync": lambda: None, "sync": gpu.sync, "sync+sleep": lambda: (gpu.sync(), time.sleep(0.001))}
res = {(wid, m): ([], []) for wid in ids for m in modes}
for _ in range(6):
    for wid in ids:
        for m, after in modes.items():
            for _ in range(30):
                acc[0] = 0.0
                t0 = time.perf_counter()
                calls[wid]()
                t = time.perf_counter() - t0
                after()
                res[wid, m][0].append(t * 1e3)
                res[wid, m][1].append(acc[0] * 1e3)
            gpu.sync()
for (wid, m), (t, d) in res.items():
    print(f"{wid:5s} {m:11s} plan {statistics.median(t):.3f} ms  upload+expand {statistics.median(d):.3f} ms")
