"""Session 18: the plan upload's host cost on the GPU machine: a fresh image array per call (what
plan() does) against one reused buffer, and the expansion launch, each timed alone and inside plan()."""
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, "tools")
import bench  # noqa: E402
from nvrtc_attn import launcher  # noqa: E402

gpu = bench.Gpu()
torch = gpu.torch
dst = torch.empty(1 << 22, dtype=torch.uint8, device="cuda")
ptr = dst.data_ptr()
s = torch.cuda.current_stream().cuda_stream


def med_us(fn, n=2000, sync=True):
    t = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        t.append(time.perf_counter() - t0)
        if sync:
            gpu.sync()
    return statistics.median(t) * 1e6


parts = [np.arange(i * 1000, i * 1000 + 1400, dtype=np.int64) for i in range(12)]
for kb in (4, 16, 68, 128):
    n = kb * 256  # int32 words
    keep = np.zeros(n, dtype=np.int32)
    src = np.arange(n, dtype=np.int64)
    print(f"{kb:4d} KB: reused buffer {med_us(lambda: launcher.copy_host_to_device(ptr, keep, s)):6.2f} us, "
          f"fresh array (astype) {med_us(lambda: launcher.copy_host_to_device(ptr, src.astype(np.int32), s)):6.2f} us, "
          f"astype alone {med_us(lambda: src.astype(np.int32), sync=False):6.2f} us, "
          f"fill reused (copyto) {med_us(lambda: np.copyto(keep, src, casting='unsafe'), sync=False):6.2f} us")
w = [w for w in bench.load_workloads()[0] if w["id"] == "W4"][0]
batch = bench.build_batch(w)
ops = bench.make_operands(gpu, w, batch)
wr = bench.ours_wrapper(gpu, "auto", "auto")
ia = bench.host_indices(torch, batch)
bench.plan_ours(wr, w, ia, ops)
gpu.sync()
plan = wr._plan
print("W4 image", plan.image.nbytes, "bytes")
print(f"W4 upload of plan.image {med_us(lambda: launcher.copy_host_to_device(wr._plan_ptr, plan.image, s)):6.2f} us")
print(f"W4 expand_plan {med_us(lambda: launcher.expand_plan(plan, wr._plan_ptr, plan.offsets_key, s, 0)):6.2f} us")
print(f"W4 plan() {med_us(lambda: bench.plan_ours(wr, w, ia, ops), n=500):6.2f} us")
