"""`python -m nvrtc_attn`: compile the default kernels (time, cache, resources), plan a W1-sized
prefill on a strided KV pool and, with a GPU, run it, check it against the reference and time it.

W1 (../shared/bench/workloads.json): 16 requests of 1024 query tokens on 1024 keys, 32 query
heads on 8 KV heads, head_dim 128, page_size 16, causal; the cache is layer 2 of a
[pages, 4 layers, 2, 16, 8, 128] pool with randomly permuted pages.
"""

from __future__ import annotations

import math
import statistics
import sys
import time

import numpy as np

W1 = dict(requests=16, qo_len=1024, kv_len=1024, num_qo_heads=32, num_kv_heads=8, head_dim=128,
          page_size=16, causal=True)
NUM_LAYERS, LAYER = 4, 2
TIMED_RUNS = 20


def _gpu_reason() -> str | None:
    try:
        import cupy

        if cupy.cuda.runtime.getDeviceCount() > 0:
            return None
        return "no CUDA device"
    except Exception as exc:  # noqa: BLE001 - no driver, no cupy, ...
        return f"{type(exc).__name__}: {exc}"


def compile_kernels(reason: str | None) -> None:
    """Compile (or load from the disk cache) what backend="auto" runs on this machine's GPU (the
    sm90 builds on Hopper, the portable sm80 builds elsewhere; without a GPU the Hopper builds), in
    parallel, and print the true time: importing nvrtc_attn compiles nothing."""
    from . import compiler, variants

    if reason is None:
        from . import launcher

        cc = launcher.compute_capability(0)
        backend, arch = variants.auto_backend(cc), variants.arch_for(cc)
    else:
        backend, arch = "sm90", variants.HOPPER_ARCH
    wanted = variants.default_variants(backend, arch)
    print(f"compiling the {len(wanted)} {backend} builds of head_dim 128 ({arch}) with NVRTC "
          f"{'.'.join(map(str, compiler.nvrtc_version()))} (cache: {compiler.default_cache_dir()})")
    t0 = time.perf_counter()
    kernels = compiler.compile_all(wanted)
    elapsed = time.perf_counter() - t0
    cached = sum(k.from_cache for k in kernels)
    print(f"  {elapsed:.2f} s ({cached}/{len(kernels)} from the disk cache, {len(kernels) - cached} compiled)")
    try:
        from . import sass
    except Exception as exc:  # noqa: BLE001
        print(f"  (resource usage unavailable: {exc})")
        return
    for k in kernels:
        try:
            usage = sass.resource_usage(k.cubin)
            res = usage.get(k.variant.entry) or next(iter(usage.values()))
            print(f"  {k.name:48s} registers {res.get('registers', '?'):>3}  shared {res.get('shared', '?'):>6}  "
                  f"local {res.get('local', '?')}  stack {res.get('stack', '?')}")
        except Exception as exc:  # noqa: BLE001 - cuobjdump missing, ...
            print(f"  {k.name:48s} (resources unavailable: {type(exc).__name__}: {exc})")


def w1_batch(seed: int = 0):
    w = W1
    ps = w["page_size"]
    qo = np.full(w["requests"], w["qo_len"], dtype=np.int64)
    kv = np.full(w["requests"], w["kv_len"], dtype=np.int64)
    n_pages = (kv + ps - 1) // ps
    needed = int(n_pages.sum())
    max_pages = max(needed + 1, math.ceil(needed * 1.1))  # 10% spare pages, as in workloads.json
    return dict(
        qo_indptr=np.concatenate(([0], np.cumsum(qo))).astype(np.int32),
        paged_kv_indptr=np.concatenate(([0], np.cumsum(n_pages))).astype(np.int32),
        paged_kv_indices=np.random.default_rng(seed).permutation(max_pages)[:needed].astype(np.int32),
        paged_kv_last_page_len=((kv - 1) % ps + 1).astype(np.int32),
        max_pages=max_pages, qo_lens=qo, kv_lens=kv,
    )


def w1_flops() -> float:
    w = W1
    s = w["qo_len"]
    pairs = w["requests"] * s * (s + 1) // 2  # causal, qo_len == kv_len
    return 4.0 * w["head_dim"] * w["num_qo_heads"] * pairs


def _index_args(batch):
    return (batch["qo_indptr"], batch["paged_kv_indptr"], batch["paged_kv_indices"],
            batch["paged_kv_last_page_len"])


def plan_on_cpu(batch) -> None:
    """No GPU: the host half of plan() (validation, paging, tiles, partition) without an upload."""
    from . import planner, validate, variants

    w = W1
    t0 = time.perf_counter()
    a = validate.check_plan_args(*_index_args(batch), w["num_qo_heads"], w["num_kv_heads"],
                                 w["head_dim"], w["page_size"], w["causal"], None, -1, None, "bfloat16")
    tile = variants.planning_tile("sm90", a.head_dim, variants.HOPPER_ARCH)
    plan = planner.make_plan(
        a.qo_indptr, a.paged_kv_indptr, a.paged_kv_indices, a.paged_kv_last_page_len, a.num_qo_heads,
        a.num_kv_heads, a.head_dim, a.page_size, causal=a.causal, window_left=a.window_left, num_ctas=132,
        block_m=tile.block_m, l2_section_bytes=tile.l2_section_bytes)
    ms = (time.perf_counter() - t0) * 1e3
    print(f"plan (host only, 132 CTAs as on an H100/H200, block_m {tile.block_m}): {ms:.1f} ms, "
          f"{plan.num_tiles} tiles, {plan.total_kv} key tokens, {plan.workspace_bytes} plan bytes")


def run_on_gpu(batch) -> int:
    import cupy

    from . import BatchPrefillWithPagedKVCacheWrapper
    from .reference import as_float_array, paged_prefill_reference

    w = W1
    hqo, hkv, d, ps = w["num_qo_heads"], w["num_kv_heads"], w["head_dim"], w["page_size"]
    total_q = int(batch["qo_indptr"][-1])
    pool_shape = (batch["max_pages"], NUM_LAYERS, 2, ps, hkv, d)
    try:
        import torch

        if not torch.cuda.is_available():
            raise ImportError("torch without CUDA")
        g = torch.Generator(device="cuda")
        g.manual_seed(0)
        pool = torch.randn(pool_shape, generator=g, device="cuda", dtype=torch.bfloat16)
        q = torch.randn((total_q, hqo, d), generator=g, device="cuda", dtype=torch.bfloat16)
        out = torch.empty_like(q)
        workspace = torch.empty(128 << 20, dtype=torch.uint8, device="cuda")
        dtype, ev = "bfloat16", (lambda: torch.cuda.Event(enable_timing=True))
        elapsed = lambda s, e: s.elapsed_time(e)  # noqa: E731
        sync = torch.cuda.synchronize
    except ImportError:
        rs = cupy.random.RandomState(0)
        pool = rs.standard_normal(pool_shape, dtype=cupy.float32).astype(cupy.float16)
        q = rs.standard_normal((total_q, hqo, d), dtype=cupy.float32).astype(cupy.float16)
        out = cupy.empty_like(q)
        workspace = cupy.empty(128 << 20, dtype=cupy.uint8)
        dtype, ev, elapsed = "float16", cupy.cuda.Event, cupy.cuda.get_elapsed_time
        sync = cupy.cuda.Device().synchronize
        print("(torch with CUDA not found: CuPy fp16 data)")
    cache = (pool[:, LAYER, 0], pool[:, LAYER, 1])

    wrapper = BatchPrefillWithPagedKVCacheWrapper(workspace, kv_layout="NHD")
    t0 = time.perf_counter()
    wrapper.plan(*_index_args(batch), hqo, hkv, d, ps, causal=w["causal"], q_data_type=dtype,
                 paged_kv_cache=cache)
    sync()
    print(f"plan: {(time.perf_counter() - t0) * 1e3:.1f} ms (first plan: includes kernel load); "
          f"backend {getattr(wrapper, 'backend', '?')}")
    wrapper.run(q, cache, out=out)
    sync()

    ref, _ = paged_prefill_reference(q, cache, *_index_args(batch), causal=w["causal"])
    got = as_float_array(out)
    if bool(cupy.isnan(got).any()):
        print("FAILED: NaN in the output")
        return 1
    rel = float(cupy.linalg.norm(got - ref) / cupy.linalg.norm(ref))
    tol = 2e-2 if dtype == "bfloat16" else 5e-3
    print(f"check against the float32 reference: rel L2 error {rel:.2e} (bound {tol:.0e})")
    del ref, got

    for _ in range(3):
        wrapper.run(q, cache, out=out)
    sync()
    pairs = [(ev(), ev()) for _ in range(TIMED_RUNS)]
    for s, e in pairs:
        s.record()
        wrapper.run(q, cache, out=out)
        e.record()
    sync()
    ms = statistics.median(elapsed(s, e) for s, e in pairs)
    print(f"run: {ms:.3f} ms (median of {TIMED_RUNS}), {w1_flops() / (ms * 1e-3) / 1e12:.1f} TFLOP/s")
    if not rel <= tol:
        print("FAILED: error above the bound")
        return 1
    return 0


def torch_compile_check() -> int:
    """The interpreter is intact after our compiles: torch imports and torch.compile works."""
    import torch

    f = torch.compile(lambda x: torch.sin(x) * 2 + 1)
    x = torch.arange(8, dtype=torch.float32)
    ok = bool(torch.allclose(f(x), torch.sin(x) * 2 + 1))
    print(f"torch {torch.__version__}: torch.compile on a small function {'ok' if ok else 'WRONG'}")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    import argparse

    from . import __version__

    ap = argparse.ArgumentParser(
        prog="python -m nvrtc_attn",
        description="nvrtc_attn demo: compile the kernels this GPU uses (true cold time), plan a W1-sized "
                    "prefill (16 x 1024 tokens, causal, 32/8 heads, head_dim 128, page_size 16) on a "
                    "strided [pages, 4, 2, 16, 8, 128] pool and, with a GPU, run it, check it against "
                    "the float32 reference and time it. Exit code 0 when every step passed.")
    ap.add_argument("--torch-compile", action="store_true",
                    help="afterwards, in this process, import torch and run torch.compile on a small "
                         "function (checks that compiling left the interpreter intact)")
    args = ap.parse_args(argv)
    print(f"nvrtc_attn {__version__} demo: compile, plan W1 (16 x 1024, causal, GQA 32/8, hd 128) "
          f"on a strided paged pool, run and check")
    reason = _gpu_reason()
    try:
        compile_kernels(reason)
    except Exception as exc:  # noqa: BLE001 - report and stop
        print(f"compile failed: {type(exc).__name__}: {exc}")
        return 1
    batch = w1_batch()
    if reason:
        print(f"no usable GPU ({reason}): skipping the run; planning on the CPU only")
        plan_on_cpu(batch)
        rc = 0
    else:
        rc = run_on_gpu(batch)
    if args.torch_compile and rc == 0:
        rc = torch_compile_check()
    return rc


if __name__ == "__main__":
    sys.exit(main())
