"""bench.py's plan() median (20 calls right after the first plan) against the same after 200 more
plans, on one wrapper, and with gc frozen: is bench's plan ms a warm-up or a GC effect? (session 13)"""
import gc, statistics, sys, time
sys.path.insert(0, "tools")
import bench

gpu = bench.Gpu()
ws = {w["id"]: w for w in bench.load_workloads(None)[0]}
for wid in (sys.argv[1] if len(sys.argv) > 1 else "W2,W4,W8").split(","):
    w = ws[wid]
    batch = bench.build_batch(w)
    ops = bench.make_operands(gpu, w, batch)
    wr = bench.ours_wrapper(gpu, "auto", "auto")
    idx = bench.host_indices(gpu.torch, batch)
    bench.plan_ours(wr, w, idx, ops)
    gpu.sync()
    call = lambda: bench.plan_ours(wr, w, idx, ops)
    first = bench.host_median_ms(gpu, call, 20)
    bench.host_median_ms(gpu, call, 200)
    warm = bench.host_median_ms(gpu, call, 20)
    gc.freeze()
    frozen = bench.host_median_ms(gpu, call, 20)
    gc.unfreeze()
    gc.disable()
    nogc = bench.host_median_ms(gpu, call, 20)
    gc.enable()
    print(f"{wid}: first 20 {first:.3f} ms, after 200 more {warm:.3f}, gc frozen {frozen:.3f}, gc off {nogc:.3f}",
          flush=True)
    del ops, wr
