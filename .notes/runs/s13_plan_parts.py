"""plan() host cost on the GPU machine split into its steps (perf_counter around each), as
tools/bench.py calls it: which steps make the device host's plan() (session 13)."""
import collections, statistics, sys, time
sys.path.insert(0, "tools")
import bench
from nvrtc_attn import arrays, launcher, planner, schedule, validate, variants, wrapper

PARTS = [(validate, "check_plan_args"), (variants, "batch_choice"), (launcher, "prepare"),
         (launcher, "load_build"), (launcher, "sm_count"), (launcher, "device_arch"), (planner, "make_plan"),
         (schedule, "row_tiling"), (schedule, "schedule_rows"), (schedule, "_work"), (schedule, "_longest_first"),
         (schedule, "split_rows"), (planner, "_image"), (validate, "check_cache"), (arrays, "current_stream"),
         (arrays, "split_cache"), (launcher, "copy_host_to_device"), (launcher, "expand_plan"),
         (launcher, "plan_params"), (launcher, "merge_params"), (launcher, "device_context"),
         (wrapper.BatchPrefillWithPagedKVCacheWrapper, "_reserve_plan_buffer"),
         (wrapper.BatchPrefillWithPagedKVCacheWrapper, "_set_attributes"),
         (wrapper.BatchPrefillWithPagedKVCacheWrapper, "_offset_key")]
acc = collections.defaultdict(list)


def timed(name, fn):
    def f(*a, **k):
        t0 = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            acc[name].append(time.perf_counter() - t0)
    return f


for mod, name in PARTS:
    if hasattr(mod, name):
        setattr(mod, name, timed(name, getattr(mod, name)))

ids = sys.argv[1].split(",") if len(sys.argv) > 1 else ["W4", "W10", "W2", "W8"]
gpu = bench.Gpu()
ws = {w["id"]: w for w in bench.load_workloads(None)[0]}
N = 200
for wid in ids:
    w = ws[wid]
    batch = bench.build_batch(w)
    ops = bench.make_operands(gpu, w, batch)
    wr = bench.ours_wrapper(gpu, "auto", "auto")
    idx = bench.host_indices(gpu.torch, batch)
    for _ in range(5):
        bench.plan_ours(wr, w, idx, ops)
    gpu.sync()
    acc.clear()
    tot = []
    for _ in range(N):
        t0 = time.perf_counter(); bench.plan_ours(wr, w, idx, ops); tot.append(time.perf_counter() - t0)
        gpu.sync()
    print(f"{wid}: plan() median {statistics.median(tot) * 1e3:.3f} ms (with timers)")
    for name, ts in sorted(acc.items(), key=lambda kv: -sum(kv[1])):
        print(f"    {name:24s} {len(ts) / N:5.1f}/call  median {statistics.median(ts) * 1e6:8.1f} us  "
              f"per plan {sum(ts) / N * 1e6:8.1f} us")
    del ops, wr
