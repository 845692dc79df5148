"""plan() host cost on the GPU machine, as tools/bench.py measures it, with a cProfile of the
slow workloads: where the device host's extra time goes (session 13)."""
import cProfile, io, pstats, statistics, sys, time
sys.path.insert(0, "tools")
import bench

ids = sys.argv[1].split(",") if len(sys.argv) > 1 else ["W2", "W4", "W8", "W9", "W10"]
gpu = bench.Gpu()
ws = {w["id"]: w for w in bench.load_workloads(None)[0]}
for wid in ids:
    w = ws[wid]
    batch = bench.build_batch(w)
    ops = bench.make_operands(gpu, w, batch)
    wr = bench.ours_wrapper(gpu, "auto", "auto")
    idx = bench.host_indices(gpu.torch, batch)
    bench.plan_ours(wr, w, idx, ops)
    gpu.sync()
    t = []
    for _ in range(40):
        t0 = time.perf_counter(); bench.plan_ours(wr, w, idx, ops); t.append((time.perf_counter() - t0) * 1e3)
        gpu.sync()
    # the planner alone (no driver, no validation), same arguments
    from nvrtc_attn import planner
    calls = []
    orig = planner.make_plan
    def timed(*a, **k):
        t0 = time.perf_counter(); p = orig(*a, **k); calls.append((time.perf_counter() - t0) * 1e3); return p
    planner.make_plan = timed
    for _ in range(20):
        bench.plan_ours(wr, w, idx, ops); gpu.sync()
    planner.make_plan = orig
    print(f"{wid}: plan() median {statistics.median(t):.3f} ms (min {min(t):.3f}); make_plan median "
          f"{statistics.median(calls):.3f} ms", flush=True)
    pr = cProfile.Profile()
    pr.enable()
    for _ in range(20):
        bench.plan_ours(wr, w, idx, ops)
    pr.disable()
    gpu.sync()
    s = io.StringIO()
    pstats.Stats(pr, stream=s).sort_stats("tottime").print_stats(22)
    print("\n".join(s.getvalue().splitlines()[:40]))
    s = io.StringIO()
    pstats.Stats(pr, stream=s).sort_stats("cumtime").print_stats(30)
    print("\n".join(s.getvalue().splitlines()[6:45]))
    del ops, wr
