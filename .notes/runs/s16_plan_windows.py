"""plan() on the GPU machine's host, round robin over every workload (s16_plan_probe.py's loop),
with perf_counter around each step (s13_plan_parts.py's list): which step grows after the first
rounds (s16r1: medians of the first 20 rounds 0.32-0.48 ms, of all 100 0.43-0.64)."""
import collections, gc, statistics, sys, time
sys.path.insert(0, "tools")
import bench
from nvrtc_attn import arrays, launcher, planner, schedule, validate, variants, wrapper

PARTS = [(validate, "check_plan_args"), (variants, "batch_choice"), (launcher, "prepare"),
         (launcher, "load_build"), (planner, "make_plan"), (schedule, "row_tiling"), (schedule, "schedule_rows"),
         (planner, "_image"), (planner, "_layout"), (validate, "check_cache"), (arrays, "current_stream"),
         (arrays, "split_cache"), (arrays, "wrap"), (launcher, "copy_host_to_device"), (launcher, "expand_plan"),
         (launcher, "plan_params"), (wrapper.BatchPrefillWithPagedKVCacheWrapper, "_set_attributes"),
         (wrapper.BatchPrefillWithPagedKVCacheWrapper, "_offset_key")]
window = [0]
acc = collections.defaultdict(float)  # (window, step) -> seconds
ncalls = collections.Counter()


def timed(name, fn):
    def f(*a, **k):
        t0 = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            acc[window[0], name] += time.perf_counter() - t0
    return f


for mod, name in PARTS:
    setattr(mod, name, timed(name, getattr(mod, name)))

gpu = bench.Gpu()
wl = [w for w in bench.load_workloads(None)[0]]
setups = {}
for w in wl:
    batch = bench.build_batch(w)
    ops = bench.make_operands(gpu, w, batch)
    wr = bench.ours_wrapper(gpu, "auto", "auto")
    idx = bench.host_indices(gpu.torch, batch)
    bench.plan_ours(wr, w, idx, ops)
    setups[w["id"]] = (w, wr, idx, ops)
gpu.sync()
ROUNDS, WIN = int(sys.argv[1]) if len(sys.argv) > 1 else 100, 20
tot = collections.defaultdict(float)
gcs = []


def rounds(first, n, label):
    for r in range(first, first + n):
        window[0] = r // WIN
        g0 = gc.get_stats()[2]["collections"] + gc.get_stats()[1]["collections"]
        for wid, (w, wr, idx, ops) in setups.items():
            t0 = time.perf_counter(); bench.plan_ours(wr, w, idx, ops); tot[window[0]] += time.perf_counter() - t0
            ncalls[window[0]] += 1
            gpu.sync()
        gcs.append(gc.get_stats()[2]["collections"] + gc.get_stats()[1]["collections"] - g0)
    print(f"[{label}: windows {first // WIN}..{(first + n) // WIN - 1}]", flush=True)


# rounds 0..ROUNDS: as bench.py's process would; then 40 with the collector off; then 40 with glibc's
# malloc told to keep freed memory (no trimming, no mmap for large blocks: page faults per plan()?)
rounds(0, ROUNDS, "default")
gc.disable()
rounds(ROUNDS, 40, "gc disabled")
gc.enable()
import ctypes  # noqa: E402
libc = ctypes.CDLL("libc.so.6")
print("mallopt", libc.mallopt(-1, 1 << 30), libc.mallopt(-3, 1 << 28), libc.mallopt(-2, 64 << 20))
rounds(ROUNDS + 40, 40, "mallopt: trim 1 GB, mmap 256 MB, top pad 64 MB")
nw = (ROUNDS + 80) // WIN
print("per-call mean us by window of", WIN, "rounds:", " ".join(f"{tot[i] / ncalls[i] * 1e6:7.1f}" for i in range(nw)))
print("gen1+2 collections per window:", [sum(gcs[i * WIN:(i + 1) * WIN]) for i in range(nw)])
for name in [n for _, n in PARTS]:
    print(f"  {name:22s}", " ".join(f"{acc[i, name] / ncalls[i] * 1e6:7.1f}" for i in range(nw)))
