"""Time run() on the standard workloads (../shared/bench/workloads.json) on the GPU, next to torch
SDPA (cuDNN backend, dense) and the best paged peer measured on the same H100.

    PYTHONPATH=. python3 tools/bench.py                       # every workload, backend auto
    PYTHONPATH=. python3 tools/bench.py --only W1,W2 --backend sm80 --json $OUT/bench.json

KV cache as in workloads.json: one bf16 pool [max_num_pages, 4, 2, page_size, Hkv, D]
(max_num_pages = pages needed + 10%), k = buf[:, 2, 0], v = buf[:, 2, 1], every request's pages
a random permutation (seed 0); random normal data, never zeros. plan() is timed on the host,
run() with CUDA events: warm-up, then the median of --iters single-run timings.
TFLOP/s = 4 * head_dim * num_qo_heads * unmasked (query, key) pairs / time, pairs counted exactly
per request (causal bottom-right). Before timing, a few random query rows are checked against a
float32 reference computed on those rows only; NaN anywhere in the output fails the run.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO))

# Workloads: the shared file when the checkout sits next to ../shared, else the verbatim copy
# kept beside this script (../shared does not travel to the device machine).
WORKLOAD_FILES = (REPO.parent / "shared" / "bench" / "workloads.json", REPO / "tools" / "workloads.json")

# "best paged" column of ../shared/bench/peers_h100.md (H100 80GB HBM3, bf16, measured
# 2026-11-24: the best of FlashInfer 0.7.2.post1 fa3 / fa2 paged and cuDNN 9.19 paged, in TFLOP/s
# as this script counts them). W7 had no paged peer.
BEST_PAGED_PEER = {"W1": 373, "W2": 559, "W2p1": 557, "W2p64": 567, "W3": 546, "W4": 404,
                   "W5": 386, "W6": 570, "W7": None}

CHECK_REL_TOL = 3e-2  # per-row max |o - ref| / max |ref| for the spot check (bf16 output)
POOL_LAYERS, POOL_LAYER = 4, 2


# --------------------------------------------------------------------------------------------
# Workload description -> lengths and FLOPs


def load_workloads(path: str | None):
    candidates = [Path(path)] if path else list(WORKLOAD_FILES)
    for p in candidates:
        if p.is_file():
            with open(p) as f:
                return json.load(f)["workloads"], p
    raise FileNotFoundError(f"no workloads file among {[str(c) for c in candidates]}")


def lengths(w: dict) -> tuple[np.ndarray, np.ndarray]:
    n = int(w["requests"])
    qo = w["qo_len"]
    qo = np.array(qo if isinstance(qo, list) else [qo] * n, dtype=np.int64)
    kv = w["kv_len"]
    if isinstance(kv, str):  # "= qo_len"
        kv = qo.copy()
    else:
        kv = np.array(kv if isinstance(kv, list) else [kv] * n, dtype=np.int64)
    if len(qo) != n or len(kv) != n:
        raise ValueError(f"{w['id']}: {n} requests but {len(qo)} qo_len / {len(kv)} kv_len values")
    return qo, kv


def visible_pairs(qo_len: int, kv_len: int, causal: bool, window_left: int = -1) -> int:
    """Unmasked (query, key) pairs of one request (FlashInfer masks, bottom-right aligned)."""
    if qo_len <= 0 or kv_len <= 0:
        return 0
    i = np.arange(qo_len, dtype=np.int64)
    diag = i + kv_len - qo_len
    hi = np.minimum(diag + 1, kv_len) if causal else np.full(qo_len, kv_len)
    lo = np.maximum(diag - window_left, 0) if window_left >= 0 else np.zeros(qo_len, np.int64)
    return int(np.maximum(hi - lo, 0).sum())


def workload_flops(w: dict) -> float:
    qo, kv = lengths(w)
    pairs = sum(visible_pairs(int(a), int(b), bool(w["causal"])) for a, b in zip(qo, kv))
    return 4.0 * w["head_dim"] * w["num_qo_heads"] * pairs


# --------------------------------------------------------------------------------------------
# Arrays: torch bf16 when available, else CuPy fp16


class Backend:
    """The array framework the bench runs on: torch (bf16) or CuPy (fp16 fallback)."""

    def __init__(self, force_cupy: bool = False):
        self.torch = None
        if not force_cupy:
            try:
                import torch

                if torch.cuda.is_available():
                    self.torch = torch
            except Exception:  # noqa: BLE001 - torch missing or broken: CuPy path
                self.torch = None
        import cupy

        self.cupy = cupy
        self.dtype = "bfloat16" if self.torch is not None else "float16"

    @property
    def name(self) -> str:
        return "torch" if self.torch is not None else "cupy"

    def device_name(self) -> str:
        if self.torch is not None:
            return self.torch.cuda.get_device_name()
        props = self.cupy.cuda.runtime.getDeviceProperties(self.cupy.cuda.Device().id)
        name = props["name"]
        return name.decode() if isinstance(name, bytes) else str(name)

    def randn(self, shape, seed: int):
        if self.torch is not None:
            g = self.torch.Generator(device="cuda")
            g.manual_seed(seed)
            return self.torch.randn(shape, generator=g, device="cuda", dtype=self.torch.bfloat16)
        rs = self.cupy.random.RandomState(seed)
        out = self.cupy.empty(shape, dtype=self.cupy.float16)
        flat = out.reshape(shape[0], -1)
        step = max(1, (64 << 20) // max(1, flat.shape[1]))  # float32 temporaries of <= 256 MiB
        for s in range(0, shape[0], step):
            flat[s : s + step] = rs.standard_normal(flat[s : s + step].shape, dtype=self.cupy.float32)
        return out

    def empty(self, shape, dtype=None):
        if self.torch is not None:
            dt = {None: self.torch.bfloat16, "float32": self.torch.float32,
                  "uint8": self.torch.uint8}[dtype]
            return self.torch.empty(shape, device="cuda", dtype=dt)
        return self.cupy.empty(shape, dtype=dtype or self.cupy.float16)

    def ints(self, a):
        if self.torch is not None:
            return self.torch.as_tensor(np.asarray(a, dtype=np.int64), device="cuda")
        return self.cupy.asarray(np.asarray(a, dtype=np.int64))

    def synchronize(self):
        if self.torch is not None:
            self.torch.cuda.synchronize()
        self.cupy.cuda.Device().synchronize()

    def free_memory(self):
        """Hand cached device memory back between workloads (pools of 150-400 MB each)."""
        self.synchronize()
        if self.torch is not None:
            self.torch.cuda.empty_cache()
        self.cupy.get_default_memory_pool().free_all_blocks()

    def has_nan(self, x) -> bool:
        if self.torch is not None:
            return bool(self.torch.isnan(x).any().item())
        return bool(self.cupy.isnan(x).any())

    def time_ms(self, fn, iters: int, warmup: int) -> float:
        """Median over `iters` single calls, each bracketed by CUDA events on the current stream."""
        for _ in range(warmup):
            fn()
        self.synchronize()
        if self.torch is not None:
            ev = lambda: self.torch.cuda.Event(enable_timing=True)  # noqa: E731
        else:
            ev = self.cupy.cuda.Event
        pairs = [(ev(), ev()) for _ in range(iters)]
        for start, end in pairs:
            start.record()
            fn()
            end.record()
        self.synchronize()
        if self.torch is not None:
            times = [s.elapsed_time(e) for s, e in pairs]
        else:
            times = [self.cupy.cuda.get_elapsed_time(s, e) for s, e in pairs]
        return statistics.median(times)


# --------------------------------------------------------------------------------------------
# One workload


def build_batch(w: dict, seed: int = 0):
    """Page table over a pool with 10% spare pages, pages a random permutation of the pool."""
    qo, kv = lengths(w)
    ps = int(w["page_size"])
    n_pages = (kv + ps - 1) // ps
    needed = int(n_pages.sum())
    max_pages = max(needed + 1, math.ceil(needed * 1.1))
    perm = np.random.default_rng(seed).permutation(max_pages)[:needed]
    last = np.where(n_pages > 0, (kv - 1) % ps + 1, 1)
    return dict(
        qo_lens=qo, kv_lens=kv, max_pages=max_pages,
        qo_indptr=np.concatenate(([0], np.cumsum(qo))).astype(np.int32),
        paged_kv_indptr=np.concatenate(([0], np.cumsum(n_pages))).astype(np.int32),
        paged_kv_indices=perm.astype(np.int32),
        paged_kv_last_page_len=last.astype(np.int32),
    )


def spot_check(bk: Backend, w, batch, q, k, v, out, rows: int, seed: int) -> float:
    """Max over a few random query rows of max|o - ref| / max|ref| (all heads), reference in
    float32 on CuPy from that request's gathered keys."""
    from nvrtc_attn.reference import as_float_array

    cp = bk.cupy
    rng = np.random.default_rng(seed)
    qo_indptr = batch["qo_indptr"]
    total_q = int(qo_indptr[-1])
    hqo, hkv, d = w["num_qo_heads"], w["num_kv_heads"], w["head_dim"]
    group = hqo // hkv
    scale = 1.0 / math.sqrt(d)
    worst = 0.0
    for t in rng.choice(total_q, size=min(rows, total_q), replace=False):
        b = int(np.searchsorted(qo_indptr, t, side="right") - 1)
        i = int(t - qo_indptr[b])
        qo_len, kv_len = int(batch["qo_lens"][b]), int(batch["kv_lens"][b])
        pages = batch["paged_kv_indices"][batch["paged_kv_indptr"][b] : batch["paged_kv_indptr"][b + 1]]
        idx = bk.ints(pages)
        kk = as_float_array(k[idx]).reshape(-1, hkv, d)[:kv_len]  # [kv_len, Hkv, D]
        vv = as_float_array(v[idx]).reshape(-1, hkv, d)[:kv_len]
        qq = as_float_array(q[int(t)])  # [Hqo, D]
        kh = np.arange(hqo) // group
        logits = cp.einsum("hd,jhd->hj", qq, kk[:, kh]) * scale
        if w["causal"]:
            visible = cp.arange(kv_len) <= i + kv_len - qo_len
            logits = cp.where(visible[None, :], logits, -cp.inf)
        p = cp.exp(logits - logits.max(axis=1, keepdims=True))
        ref = cp.einsum("hj,jhd->hd", p, vv[:, kh]) / p.sum(axis=1, keepdims=True)
        got = as_float_array(out[int(t)])
        err = float(cp.abs(got - ref).max() / cp.abs(ref).max())
        worst = max(worst, err if math.isfinite(err) else math.inf)
    return worst


def sdpa_peer(bk: Backend, w, qo_lens, kv_lens, iters, warmup, kind: str = "cudnn"):
    """torch SDPA, dense bf16 [B, H, S, D], cuDNN backend (or "flash": FlashAttention-2, the
    issue-2 yardstick for the portable kernel); None when not comparable."""
    if bk.torch is None or not np.array_equal(qo_lens, kv_lens) or len(set(qo_lens.tolist())) != 1:
        return None, "-"
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.nn.functional import scaled_dot_product_attention as sdpa

    backend = SDPBackend.CUDNN_ATTENTION if kind == "cudnn" else SDPBackend.FLASH_ATTENTION
    bsz, s = len(qo_lens), int(qo_lens[0])
    hqo, hkv, d = w["num_qo_heads"], w["num_kv_heads"], w["head_dim"]
    q = bk.randn((bsz, hqo, s, d), 101)
    k = bk.randn((bsz, hkv, s, d), 102)
    v = bk.randn((bsz, hkv, s, d), 103)
    causal = bool(w["causal"])
    gqa = {"enable_gqa": True} if hqo != hkv else {}
    how = "enable_gqa" if gqa else "mha"
    try:
        with sdpa_kernel(backend):
            sdpa(q, k, v, is_causal=causal, **gqa)
    except Exception:  # noqa: BLE001 - backend without GQA support: repeat the KV heads
        k = k.repeat_interleave(hqo // hkv, dim=1)
        v = v.repeat_interleave(hqo // hkv, dim=1)
        gqa, how = {}, "repeated kv heads"

    def run():
        return sdpa(q, k, v, is_causal=causal, **gqa)

    try:
        with sdpa_kernel(backend):
            ms = bk.time_ms(run, iters, warmup)
    except Exception as exc:  # noqa: BLE001
        print(f"  SDPA {kind} failed: {type(exc).__name__}: {exc}", flush=True)
        return None, "-"
    return ms, f"torch-sdpa-{kind} ({how})"


def measure_ours(bk: Backend, w: dict, batch: dict, args) -> dict:
    """Plan and run times of our wrapper on the workload's strided pool, after a spot check.
    (Its arrays are freed when this returns, before the dense peer allocates.)"""
    import nvrtc_attn

    wid = w["id"]
    hqo, hkv, d, ps = w["num_qo_heads"], w["num_kv_heads"], w["head_dim"], w["page_size"]
    causal = bool(w["causal"])
    total_q = int(batch["qo_indptr"][-1])

    buf = bk.randn((batch["max_pages"], POOL_LAYERS, 2, ps, hkv, d), seed=1)
    k, v = buf[:, POOL_LAYER, 0], buf[:, POOL_LAYER, 1]
    q = bk.randn((total_q, hqo, d), seed=2)
    out = bk.empty((total_q, hqo, d))
    wrapper = nvrtc_attn.BatchPrefillWithPagedKVCacheWrapper(
        bk.empty((args.workspace_mb << 20,), "uint8"), kv_layout="NHD", backend=args.backend,
        kv_load=args.kv_load)
    index_args = (batch["qo_indptr"], batch["paged_kv_indptr"], batch["paged_kv_indices"],
                  batch["paged_kv_last_page_len"])

    def plan():
        return wrapper.plan(*index_args, hqo, hkv, d, ps, causal=causal, q_data_type=bk.dtype,
                            kv_data_type=bk.dtype, paged_kv_cache=(k, v))

    t0 = time.perf_counter()
    plan()  # first plan: kernel load (and compile on a cold cache)
    bk.synchronize()
    first_plan_ms = (time.perf_counter() - t0) * 1e3
    plan_times = []
    for _ in range(5):
        t0 = time.perf_counter()
        plan()
        plan_times.append((time.perf_counter() - t0) * 1e3)
        bk.synchronize()
    plan_ms = statistics.median(plan_times)

    def run():
        return wrapper.run(q, (k, v), out=out)

    run()
    bk.synchronize()
    if bk.has_nan(out):
        raise RuntimeError(f"{wid}: NaN in the output")
    err = spot_check(bk, w, batch, q, k, v, out, args.check_rows, seed=3)
    if not err <= CHECK_REL_TOL:
        raise RuntimeError(f"{wid}: spot check max rel error {err:.3e} > {CHECK_REL_TOL}")
    ms = bk.time_ms(run, args.iters, args.warmup)
    if bk.has_nan(out):
        raise RuntimeError(f"{wid}: NaN in the output after timing")
    return {"ms": ms, "plan_ms": plan_ms, "first_plan_ms": first_plan_ms, "max_rel_err": err,
            "backend": getattr(wrapper, "backend", args.backend),
            "kv_load": getattr(wrapper, "kv_load_path", None)}


def bench_workload(bk: Backend, w: dict, args) -> dict:
    wid = w["id"]
    batch = build_batch(w, seed=0)
    flops = workload_flops(w)
    ours = measure_ours(bk, w, batch, args)
    ms = ours["ms"]
    tflops = flops / (ms * 1e-3) / 1e12
    bk.free_memory()

    peer_ms, peer = (None, "-") if args.no_peer else sdpa_peer(
        bk, w, batch["qo_lens"], batch["kv_lens"], args.iters, args.warmup)
    peer_tflops = flops / (peer_ms * 1e-3) / 1e12 if peer_ms else None
    flash_ms, _ = (None, "-") if args.no_peer else sdpa_peer(
        bk, w, batch["qo_lens"], batch["kv_lens"], args.iters, args.warmup, kind="flash")
    flash_tflops = flops / (flash_ms * 1e-3) / 1e12 if flash_ms else None
    best = BEST_PAGED_PEER.get(wid)
    row = {
        "workload": wid, "ms": ms, "tflops": tflops, "plan_ms": ours["plan_ms"],
        "first_plan_ms": ours["first_plan_ms"], "peer": peer if peer_ms else None,
        "peer_ms": peer_ms, "peer_tflops": peer_tflops,
        "ratio_peer": tflops / peer_tflops if peer_tflops else None,
        "flash_tflops": flash_tflops, "ratio_flash": tflops / flash_tflops if flash_tflops else None,
        "best_paged_peer_tflops": best, "ratio_best_paged": tflops / best if best else None,
        "max_rel_err": ours["max_rel_err"], "dtype": bk.dtype, "backend": ours["backend"],
        "kv_load": ours.get("kv_load"), "flops": flops,
    }
    return row


def _fmt(x, spec):
    return "-" if x is None else format(x, spec)


def print_table(rows):
    head = ("workload", "kv load", "ms", "TFLOP/s", "plan ms", "SDPA-cuDNN TFLOP/s", "ratio",
            "SDPA-flash TFLOP/s", "ratio", "best paged peer", "ratio", "max rel err")
    lines = [head]
    for r in rows:
        if "error" in r:
            lines.append((r["workload"], "", "FAIL", r["error"][:60]) + ("",) * (len(head) - 4))
            continue
        lines.append((r["workload"], r.get("kv_load") or "-", _fmt(r["ms"], ".3f"), _fmt(r["tflops"], ".1f"),
                      _fmt(r["plan_ms"], ".2f"), _fmt(r["peer_tflops"], ".1f"),
                      _fmt(r["ratio_peer"], ".2f"), _fmt(r.get("flash_tflops"), ".1f"),
                      _fmt(r.get("ratio_flash"), ".2f"), _fmt(r["best_paged_peer_tflops"], "d"),
                      _fmt(r["ratio_best_paged"], ".2f"), _fmt(r["max_rel_err"], ".1e")))
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(head))]
    for n, line in enumerate(lines):
        print(" | ".join(str(c).rjust(wd) for c, wd in zip(line, widths)))
        if n == 0:
            print("-+-".join("-" * wd for wd in widths))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="", help="comma-separated workload ids, e.g. W1,W2")
    ap.add_argument("--backend", default="auto", choices=("auto", "sm80", "sm90"))
    ap.add_argument("--kv-load", default="auto", choices=("auto", "gather"),
                    help="sm90 K/V load path: auto (TMA where pages allow) or gather")
    ap.add_argument("--json", default=None, help="write the results here")
    ap.add_argument("--workloads", default=None, help="workloads.json (default: ../shared/bench, "
                                                      "else tools/workloads.json)")
    ap.add_argument("--iters", type=int, default=30, help="timed runs per workload (median)")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--check-rows", type=int, default=8, help="query rows spot-checked")
    ap.add_argument("--workspace-mb", type=int, default=128)
    ap.add_argument("--no-peer", action="store_true", help="skip torch SDPA")
    ap.add_argument("--cupy", action="store_true", help="use CuPy fp16 even when torch is present")
    args = ap.parse_args(argv)
    if args.iters < 1:
        ap.error("--iters must be >= 1")

    workloads, path = load_workloads(args.workloads)
    if args.only:
        want = [s.strip() for s in args.only.split(",") if s.strip()]
        known = {w["id"] for w in workloads}
        unknown = [s for s in want if s not in known]
        if unknown:
            ap.error(f"unknown workloads {unknown}; known: {sorted(known)}")
        workloads = [w for w in workloads if w["id"] in want]

    try:
        bk = Backend(force_cupy=args.cupy)
        device = bk.device_name()
    except Exception as exc:  # noqa: BLE001 - no driver / no device
        print(f"bench.py needs a CUDA GPU: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    print(f"device: {device}; workloads: {path}; data: {bk.name} {bk.dtype}; backend: {args.backend}",
          flush=True)
    if bk.torch is None:
        print("note: torch with CUDA not available: CuPy fp16 data (the peers are bf16) and no SDPA peer",
              flush=True)

    rows, failed = [], False
    for w in workloads:
        try:
            row = bench_workload(bk, w, args)
        except Exception as exc:  # noqa: BLE001 - report every workload, fail at the end
            failed = True
            row = {"workload": w["id"], "error": f"{type(exc).__name__}: {exc}"}
            print(f"!!! {w['id']} FAILED: {row['error']}", file=sys.stderr, flush=True)
        else:
            print(f"{w['id']}: {row['ms']:.3f} ms, {row['tflops']:.1f} TFLOP/s, plan "
                  f"{row['plan_ms']:.2f} ms (first {row['first_plan_ms']:.0f} ms), kv {row.get('kv_load')}, "
                  f"peer {_fmt(row['peer_tflops'], '.1f')}, spot-check err {row['max_rel_err']:.1e}",
                  flush=True)
        rows.append(row)
        bk.free_memory()

    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        with open(args.json, "w") as f:
            json.dump({"device": device, "backend": args.backend, "data": f"{bk.name} {bk.dtype}",
                       "rows": rows}, f, indent=1)
    print()
    print_table(rows)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
