"""Host cost of one run() call (and plan()) on a tiny batch, with a profile of where it goes.

    PYTHONPATH=. python3 tools/run_cost.py [--calls 2000] [--profile] [--backend auto]

The batch: 4 requests of one query token on 512 keys each (32/8 heads, head_dim 128, bf16, page 16,
torch tensors, out given): the GPU work is a few microseconds, so back-to-back calls measure the
host. Prints microseconds per call (wall time of --calls calls, one synchronize at the end) and, with
--profile, the functions that take the most time per call (cProfile, tottime).
"""
from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--plan-workloads", default="", help="also profile plan() on these standard workloads (W1,W4)")
    args = ap.parse_args(argv)

    import torch

    import nvrtc_attn

    reqs, kv_len, hq, hkv, d, ps = 4, 512, 32, 8, 128, 16
    pages = reqs * kv_len // ps
    perm = np.random.default_rng(0).permutation(pages + 8)[:pages].astype(np.int32)
    qo_indptr = np.arange(reqs + 1, dtype=np.int32)
    kv_indptr = np.arange(0, pages + 1, kv_len // ps, dtype=np.int32)
    last = np.full(reqs, ps, np.int32)
    pool = torch.randn(pages + 8, 4, 2, ps, hkv, d, device="cuda", dtype=torch.bfloat16)
    cache = (pool[:, 2, 0], pool[:, 2, 1])
    q = torch.randn(reqs, hq, d, device="cuda", dtype=torch.bfloat16)
    out = torch.empty_like(q)
    w = nvrtc_attn.BatchPrefillWithPagedKVCacheWrapper(torch.empty(128 << 20, dtype=torch.uint8, device="cuda"),
                                                       "NHD", backend=args.backend)
    plan_args = (qo_indptr, kv_indptr, perm, last, hq, hkv, d, ps)
    w.plan(*plan_args, causal=True, q_data_type=torch.bfloat16)
    for _ in range(50):
        w.run(q, cache, out=out)
    torch.cuda.synchronize()

    t0 = time.perf_counter()
    for _ in range(args.calls):
        w.run(q, cache, out=out)
    torch.cuda.synchronize()
    run_us = (time.perf_counter() - t0) / args.calls * 1e6
    plans = []
    for _ in range(50):
        t1 = time.perf_counter()
        w.plan(*plan_args, causal=True, q_data_type=torch.bfloat16)
        plans.append(time.perf_counter() - t1)
    torch.cuda.synchronize()
    print(f"run() host time: {run_us:.1f} us per call ({args.calls} calls back to back, {w.kernel_name}); "
          f"plan(): {np.median(plans) * 1e3:.3f} ms median")
    if args.profile:
        _profile("run()", args.calls, lambda: w.run(q, cache, out=out))
        torch.cuda.synchronize()
        _profile("plan()", 200, lambda: w.plan(*plan_args, causal=True, q_data_type=torch.bfloat16), top=30)
        torch.cuda.synchronize()
    for wid in filter(None, args.plan_workloads.split(",")):
        sys.path.insert(0, str(REPO / "tools"))
        import bench

        wl = {x["id"]: x for x in bench.load_workloads(None)[0]}[wid]
        b = bench.build_batch(wl)
        idx = [torch.from_numpy(b[k]) for k in ("qo_indptr", "paged_kv_indptr", "paged_kv_indices",
                                               "paged_kv_last_page_len")]
        pa = (*idx, wl["num_qo_heads"], wl["num_kv_heads"], wl["head_dim"], wl["page_size"])
        w.plan(*pa, causal=bool(wl["causal"]), q_data_type=torch.bfloat16)
        torch.cuda.synchronize()
        times = []
        for _ in range(30):
            t1 = time.perf_counter()
            w.plan(*pa, causal=bool(wl["causal"]), q_data_type=torch.bfloat16)
            times.append(time.perf_counter() - t1)
        print(f"{wid} plan(): {np.median(times) * 1e3:.3f} ms median ({w.kernel_name})")
        _profile(f"{wid} plan()", 30, lambda: w.plan(*pa, causal=bool(wl["causal"]), q_data_type=torch.bfloat16),
                 top=22)
        torch.cuda.synchronize()
    return 0


def _profile(what: str, calls: int, fn, top: int = 25) -> None:
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(calls):
        fn()
    prof.disable()
    stats = pstats.Stats(prof)
    rows = sorted(stats.stats.items(), key=lambda kv: -kv[1][2])[:top]
    print(f"top functions by own time, us per {what} call (cProfile adds ~1 us per function call):")
    for (fname, line, func), (cc, nc, tt, ct, _) in rows:
        print(f"  {tt / calls * 1e6:7.2f} own {ct / calls * 1e6:8.2f} cum  {nc // calls:3d}x {Path(fname).name}:{line} {func}")


if __name__ == "__main__":
    sys.exit(main())
