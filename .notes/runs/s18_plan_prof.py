"""Session 18: cProfile of the wrapper's plan() on the GPU machine (torch CPU index tensors, the pool
views as paged_kv_cache, as tools/bench.py calls it), and micro-timings of the host steps that the
CPU stand-in (tools/plan_bench.py) cannot show: torch -> NumPy conversions, the driver calls.

    PYTHONPATH=$PWD python3 .notes/runs/s18_plan_prof.py W4,S4 [calls]
"""
import cProfile
import pstats
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, "tools")
import bench  # noqa: E402
import plan_bench  # noqa: E402
from nvrtc_attn import arrays, launcher, validate  # noqa: E402

ids = sys.argv[1].split(",")
calls = int(sys.argv[2]) if len(sys.argv) > 2 else 300
gpu = bench.Gpu()
torch = gpu.torch
wls = {w["id"]: w for w in bench.load_workloads()[0]}
wls["S4"] = plan_bench.SMALL_BATCH


def per_call_us(fn, n=2000):
    for _ in range(50):
        fn()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n * 1e6


for wid in ids:
    w = wls[wid]
    batch = bench.build_batch(w)
    ops = bench.make_operands(gpu, w, batch)
    wr = bench.ours_wrapper(gpu, "auto", "auto")
    ia = bench.host_indices(torch, batch)
    call = lambda: bench.plan_ours(wr, w, ia, ops)  # noqa: E731
    for _ in range(50):
        call()
    gpu.sync()
    t = []
    for _ in range(calls):
        t0 = time.perf_counter()
        call()
        t.append(time.perf_counter() - t0)
    print(f"== {wid}: plan() median {statistics.median(t) * 1e3:.3f} ms over {calls}")
    pr = cProfile.Profile()
    pr.enable()
    for _ in range(calls):
        call()
    pr.disable()
    gpu.sync()
    st = pstats.Stats(pr)
    st.sort_stats("tottime").print_stats(45)
    st.sort_stats("cumtime").print_stats(40)

# micro-timings (us per call) of single steps
x = torch.as_tensor(np.arange(33, dtype=np.int32))
big = torch.as_tensor(np.arange(40000, dtype=np.int32))
img = np.zeros(68 << 10, dtype=np.uint8)
dst = torch.empty(1 << 20, dtype=torch.uint8, device="cuda")
s = torch.cuda.current_stream().cuda_stream
def _ctx():
    with launcher.device_context(0):
        pass


steps = {
    "x.detach().cpu().numpy()": lambda: x.detach().cpu().numpy(),
    "x.numpy()": lambda: x.numpy(),
    "np.asarray(x)": lambda: np.asarray(x),
    "np.from_dlpack(x)": lambda: np.from_dlpack(x),
    "x.is_cpu and not x.requires_grad": lambda: x.is_cpu and not x.requires_grad,
    "validate.host_ints(x)": lambda: validate.host_ints(x, "x"),
    "validate.host_ints(big)": lambda: validate.host_ints(big, "x"),
    "arrays.wrap(pool view)": lambda: arrays.wrap(ops.k, "k"),
    "copy_host_to_device 68 KB": lambda: launcher.copy_host_to_device(dst.data_ptr(), img, s),
    "copy_host_to_device 4 KB": lambda: launcher.copy_host_to_device(dst.data_ptr(), img[:4096], s),
    "with device_context(0)": _ctx,
    "torch.cuda.current_stream()": lambda: torch.cuda.current_stream(),
}
for name, fn in steps.items():
    try:
        print(f"{name:40s} {per_call_us(fn):8.2f} us")
    except Exception as exc:  # noqa: BLE001
        print(f"{name:40s} failed: {type(exc).__name__}: {exc}")
    gpu.sync()
