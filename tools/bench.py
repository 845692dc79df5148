"""Time run() on the standard workloads (tools/workloads.json) on the GPU, next to the H200 peer
table (tools/peers_h200.json) and, with --flashinfer, FlashInfer timed in the same run.

    PYTHONPATH=. python3 tools/bench.py                            # every workload
    PYTHONPATH=. python3 tools/bench.py --only W1,W2 --json $OUT/bench.json --flashinfer
    python3 tools/bench.py --dry-run                               # no GPU: batches, FLOPs, bytes, layout
    python3 tools/bench.py --compile needed --only W1              # compile the builds a run needs, exit
    python3 tools/bench.py --lib ab/prev --only W2                 # time another checkout's library

KV cache as in workloads.json's "about": one pool [max_num_pages, 4, 2, page_size, Hkv, D]
(max_num_pages = pages needed + 10%), k = buf[:, 2, 0], v = buf[:, 2, 1], every request's pages a
random permutation (seed 0); random normal data, never zeros. fp8 entries store the data divided
by its scale (q 0.75, k 0.5, v 1.25) in float8_e4m3fn, output bf16; they run only where the
library's plan()/run() accept them, else the row says "not supported".
A workload may give window_left (FlashInfer's sliding window: the FLOPs count the visible pairs);
FlashInfer's ahead-of-time modules have no window, so such rows time ours alone.
Timing as in peers_h200.md: warm-up, then the median of --iters calls timed by CUDA events, each
behind a ~1 ms GPU sleep so that host launch cost is hidden. TFLOP/s = 4 * head_dim *
num_qo_heads * unmasked (query, key) pairs / time, pairs counted exactly per request (causal
bottom-right); memory-bound rows (W9) also give TB/s of K/V read once. Before timing, a few random
query rows are checked against a float32 reference of those rows; NaN anywhere fails the row.
plan() is timed on the host, ours and FlashInfer fa2's: after the GPU rows, --plan-rounds rounds of
--plan-iters calls per workload, round robin over the workloads, the GPU drained after each call;
the median of all (a slow spell of the shared host then lands on every workload's samples, not on
one workload's; --plan-rounds 1: the median of --plan-iters calls right after the workload's first
plan, which the per-workload line shows as "burst" in any case). run()'s host cost is timed on a
tiny batch (2000 calls back to back, one synchronize). The table is printed last; --json has it all.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
SHARED_BENCH = REPO.parent / "shared" / "bench"
# The copies beside this script travel to the device machine; ../shared does not.
WORKLOAD_FILES = (REPO / "tools" / "workloads.json", SHARED_BENCH / "workloads.json")
PEER_FILES = (REPO / "tools" / "peers_h200.json", SHARED_BENCH / "peers_h200.json")

POOL_LAYERS, POOL_LAYER = 4, 2
BF16, F16, FP8 = "bfloat16", "float16", "float8_e4m3fn"
# Scales of fp8 data (workloads.json "about"; a workload may override them with these keys).
DEFAULT_SCALES = {"q_scale": 0.75, "k_scale": 0.5, "v_scale": 1.25}
# Spot check: per-row max |o - ref| / max |ref| against float32 on the stored (dequantized) data.
# bf16 output rounding gives ~1e-2; an fp8 q also rounds P to e4m3 in the P V product.
CHECK_REL_TOL = {"bf16": 3e-2, "fp8 kv": 5e-2, "fp8 q+kv": 1e-1}
# H200 ridge point, bf16: 990 TFLOP/s / 4.8 TB/s (datasheet). Below it a row is memory-bound.
RIDGE_FLOP_PER_BYTE = 206.0
SLEEP_MS = 1.0  # GPU sleep in front of each timed call
GEMM_N = 8192
WORKSPACE_MB = 128
FI_WORKSPACE_MB = 256
# run() host cost: 4 requests of one query token on 256 keys (the GPU work is a few microseconds).
HOST_COST_WORKLOAD = {"id": "host-cost", "what": "4 one-token requests on 256 keys", "requests": 4,
                      "qo_len": 1, "kv_len": 256, "num_qo_heads": 32, "num_kv_heads": 8,
                      "head_dim": 128, "page_size": 16, "causal": True}
HOST_COST_CALLS = 2000

# FlashInfer 0.7.2's ahead-of-time prefill modules (../shared/peers/README.md): (backend, q dtype,
# kv dtype, head_dim), bf16 output, int32 indices, no window, no soft cap. fa2's module serves both
# paged (equal K/V strides) and ragged runs. Anything else would JIT-compile for minutes: skipped
# (and FLASHINFER_DISABLE_JIT=1 turns a miss into an error instead of a compile).
FI_AOT = frozenset([("fa3", BF16, BF16, hd) for hd in (64, 128, 256)]
                   + [("fa2", BF16, BF16, hd) for hd in (64, 128, 256)]
                   + [("fa3", FP8, FP8, 128), ("fa2", BF16, FP8, 128)])
# Same-run peers: result key (as in peers_h200.json), FlashInfer backend, K/V form.
FI_PEERS = (("fi_fa3_paged", "fa3", "paged"), ("fi_fa2_paged", "fa2", "paged"),
            ("fi_fa3_contiguous", "fa3", "ragged"), ("fi_fa2_contiguous", "fa2", "ragged"))


# --------------------------------------------------------------------------------------------
# Workloads and peers (pure, CPU)


def first_file(candidates, explicit: str | None = None) -> Path:
    for p in ([Path(explicit)] if explicit else list(candidates)):
        if p.is_file():
            return p
    raise FileNotFoundError(f"none of {[str(c) for c in candidates]} exists")


def load_workloads(path: str | None = None) -> tuple[list[dict], Path]:
    p = first_file(WORKLOAD_FILES, path)
    with open(p) as f:
        return json.load(f)["workloads"], p


def load_peers(path: str | None = None) -> tuple[dict, Path | None]:
    """peers_h200.json as a dict ({"meta": ..., "workloads": {id: {...}}}); empty if absent."""
    try:
        p = first_file(PEER_FILES, path)
    except FileNotFoundError:
        return {"meta": {}, "workloads": {}}, None
    with open(p) as f:
        return json.load(f), p


def select(workloads: list[dict], only: str) -> list[dict]:
    want = [s.strip() for s in only.split(",") if s.strip()]
    if not want:
        return list(workloads)
    known = [w["id"] for w in workloads]
    unknown = [s for s in want if s not in known]
    if unknown:
        raise ValueError(f"unknown workloads {unknown}; known: {known}")
    return [w for w in workloads if w["id"] in want]


def dtypes(w: dict) -> tuple[str, str]:
    """(q dtype, kv dtype) of a workload: bf16 unless it names float8_e4m3fn (or, q only, float16)."""
    return w.get("q_dtype", BF16), w.get("kv_dtype", BF16)


def itemsize(dtype: str) -> int:
    return 1 if dtype.startswith("float8") else 2


def scales(w: dict) -> dict:
    """run() keywords of a workload's fp8 operands: q_scale for an fp8 q, k/v_scale for an fp8 cache."""
    q_dt, kv_dt = dtypes(w)
    keys = (["q_scale"] if q_dt == FP8 else []) + (["k_scale", "v_scale"] if kv_dt == FP8 else [])
    return {k: float(w.get(k, DEFAULT_SCALES[k])) for k in keys}


def precision(w: dict) -> str:
    q_dt, kv_dt = dtypes(w)
    return "fp8 q+kv" if q_dt == FP8 else "fp8 kv" if kv_dt == FP8 else "bf16"


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


def window(w: dict) -> int:
    """A workload's sliding window (FlashInfer's window_left: keys [i - window_left, i] visible), -1: none."""
    return int(w.get("window_left", -1))


def workload_flops(w: dict) -> float:
    """4 * head_dim * num_qo_heads * unmasked pairs (fp8 counted as bf16)."""
    qo, kv = lengths(w)
    pairs = sum(visible_pairs(int(a), int(b), bool(w["causal"]), window(w)) for a, b in zip(qo, kv))
    return 4.0 * w["head_dim"] * w["num_qo_heads"] * pairs


def kv_bytes(w: dict) -> int:
    """K and V of every key token read once: total_kv x num_kv_heads x head_dim x itemsize x 2."""
    _, kv = lengths(w)
    return int(kv.sum()) * w["num_kv_heads"] * w["head_dim"] * itemsize(dtypes(w)[1]) * 2


def memory_bound(w: dict) -> bool:
    return workload_flops(w) / kv_bytes(w) < RIDGE_FLOP_PER_BYTE


_SHAPE_KEYS = ("requests", "qo_len", "kv_len", "num_qo_heads", "num_kv_heads", "head_dim",
               "page_size", "causal")


def base_workload(w: dict, workloads: list[dict]) -> str | None:
    """The bf16 workload an fp8 one is a variant of (same shape, default dtypes): W2f8q -> W2."""
    if precision(w) == "bf16":
        return None
    for x in workloads:
        if precision(x) == "bf16" and all(x.get(k) == w.get(k) for k in _SHAPE_KEYS):
            return x["id"]
    return None


def fi_supported(backend: str, q_dtype: str, kv_dtype: str, head_dim: int, window_left: int = -1) -> bool:
    """Whether FlashInfer's AOT modules serve the workload (none has a sliding window)."""
    return (backend, q_dtype, kv_dtype, int(head_dim)) in FI_AOT and window_left < 0


def peer_refs(peers: dict, wid: str) -> tuple[float | None, float | None]:
    """(best paged, best contiguous) TFLOP/s of peers_h200.json for a workload (None if absent)."""
    entry = peers.get("workloads", {}).get(wid) or {}
    return entry.get("best_paged"), entry.get("best_contiguous")


def build_batch(w: dict, seed: int = 0) -> dict:
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
        kv_tok_indptr=np.concatenate(([0], np.cumsum(kv))).astype(np.int32),
        paged_kv_indptr=np.concatenate(([0], np.cumsum(n_pages))).astype(np.int32),
        paged_kv_indices=perm.astype(np.int32),
        paged_kv_last_page_len=last.astype(np.int32),
    )


def token_pages(batch: dict, page_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(page, slot) of every key token, requests in order: the packing of the contiguous peers."""
    pages, slots = [], []
    for b, kv_len in enumerate(batch["kv_lens"]):
        j = np.arange(int(kv_len))
        own = batch["paged_kv_indices"][batch["paged_kv_indptr"][b]: batch["paged_kv_indptr"][b + 1]]
        pages.append(own[j // page_size])
        slots.append(j % page_size)
    return np.concatenate(pages).astype(np.int64), np.concatenate(slots).astype(np.int64)


# --------------------------------------------------------------------------------------------
# Table


def _fmt(x, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def format_table(head, lines) -> list[str]:
    """Right-aligned columns; a line shorter than head is a note spanning the rest."""
    cols = len(head)
    widths = [max(len(str(line[i])) for line in [head] + [ln for ln in lines if len(ln) == cols])
              for i in range(cols)]
    out = [" | ".join(str(c).rjust(wd) for c, wd in zip(head, widths)),
           "-+-".join("-" * wd for wd in widths)]
    for line in lines:
        if len(line) == cols:
            out.append(" | ".join(str(c).rjust(wd) for c, wd in zip(line, widths)))
        else:
            out.append(" | ".join([str(line[0]).rjust(widths[0])] + [str(c) for c in line[1:]]))
    return out


TABLE_HEAD = ("W", "kv", "ms", "TFLOP/s", "TB/s", "plan ms", "FI plan", "best paged", "x",
              "best contig", "x", "fa3 p", "fa2 p", "fa3 c", "fa2 c", "x FI best", "x bf16", "err")


def _peer_cell(fi: dict, key: str) -> str:
    p = (fi or {}).get(key) or {}
    if "tflops" not in p:
        return "err" if "error" in p else "-"
    return format(p["tflops"], ".1f") + ("" if p.get("check_ok", True) else "?")


def table_lines(rows: list[dict]) -> list[str]:
    """The table, then one line per row that was not supported (why)."""
    lines, notes = [], []
    for r in rows:
        wid = r["workload"]
        if r.get("status") == "error":
            lines.append((wid, f"FAIL {r.get('error', '')[:120]}"))
            continue
        fi = r.get("fi") or {}
        unsupported = r.get("status") == "not supported"
        if unsupported:
            notes.append(f"{wid} not supported: {r.get('reason', '')[:160]}")
        lines.append((
            wid, "n/s" if unsupported else r.get("kv_load") or "-",
            "not supported" if unsupported else _fmt(r.get("ms"), ".3f"), _fmt(r.get("tflops"), ".1f"),
            _fmt(r.get("kv_tbps"), ".2f") if r.get("memory_bound") else "",
            _fmt(r.get("plan_ms"), ".2f"), _fmt(r.get("fi_fa2_plan_ms"), ".2f"),
            _fmt(r.get("best_paged"), ".0f"), _fmt(r.get("ratio_best_paged"), ".2f"),
            _fmt(r.get("best_contiguous"), ".0f"), _fmt(r.get("ratio_best_contiguous"), ".2f"),
            *(_peer_cell(fi, key) for key, _, _ in FI_PEERS),
            _fmt(r.get("ratio_fi_best"), ".2f"), _fmt(r.get("ratio_bf16"), ".2f"),
            _fmt(r.get("max_rel_err"), ".1e")))
    return format_table(TABLE_HEAD, lines) + notes


def summary_lines(result: dict) -> list[str]:
    """The lines printed above the table: ceiling, run() host cost, where the peers came from."""
    meta = result.get("meta", {})
    out = []
    if meta.get("gemm_tflops"):
        out.append(f"ceiling: bf16 GEMM {GEMM_N}^3 (torch, median of 10) {meta['gemm_tflops']:.0f} TFLOP/s")
    if meta.get("plan_timing"):
        out.append(f"plan ms / FI plan: median host time of plan() ({meta['plan_timing']} per workload, "
                   f"the GPU drained after each)")
    hc = result.get("run_host_cost") or {}
    if hc.get("us"):
        parts = ", ".join(f"{k} {v:.1f} us" for k, v in hc["us"].items())
        out.append(f"run() host cost per call ({hc.get('what')}, {hc.get('calls')} calls back to back, "
                   f"one synchronize): {parts}")
    for k, v in (hc.get("errors") or {}).items():
        out.append(f"run() host cost {k}: {v[:120]}")
    if meta.get("peers_file"):
        pm = meta.get("peers_meta", {})
        out.append(f"best paged / contig: {meta['peers_file']} ({pm.get('device', '?')}, {pm.get('date', '?')}); "
                   f"x = ours / that; fa3/fa2 p/c: FlashInfer same run (p paged, c contiguous), "
                   f"'?' its spot check failed; x FI best = ours / best same-run peer; x bf16 = fp8 row / "
                   f"our bf16 row")
    return out


def print_report(result: dict) -> None:
    for line in summary_lines(result) + table_lines(result["rows"]):
        print(line)


# --------------------------------------------------------------------------------------------
# Dry run (no GPU): what a run would do


def dry_run(workloads: list[dict], all_workloads: list[dict], peers: dict, args, paths) -> int:
    print(f"dry run (no GPU): workloads {paths[0]}, peers {paths[1]}; iters {args.iters}, warm-up "
          f"{args.warmup}, plan() x{args.plan_iters}, each timed call behind a {SLEEP_MS:g} ms GPU sleep; "
          f"backend {args.backend}; flashinfer {'on' if args.flashinfer else 'off'}")
    rows = []
    for w in workloads:
        batch = build_batch(w, seed=0)
        q_dt, kv_dt = dtypes(w)
        flops, nbytes = workload_flops(w), kv_bytes(w)
        best_p, best_c = peer_refs(peers, w["id"])
        fi = [key for key, backend, _ in FI_PEERS if fi_supported(backend, q_dt, kv_dt, w["head_dim"], window(w))]
        sc = scales(w)
        print(f"{w['id']:6s} {w['what']}: q {q_dt}, kv {kv_dt}{' ' + str(sc) if sc else ''}; "
              f"{w['requests']} requests, total_q {int(batch['qo_indptr'][-1])}, total_kv "
              f"{int(batch['kv_tok_indptr'][-1])}, pages {int(batch['paged_kv_indptr'][-1])} of "
              f"{batch['max_pages']} (page_size {w['page_size']}); heads {w['num_qo_heads']}/"
              f"{w['num_kv_heads']} x {w['head_dim']}, {'causal' if w['causal'] else 'non-causal'}; "
              f"FLOPs {flops:.4e}, K/V {nbytes / 1e6:.1f} MB ({flops / nbytes:.0f} FLOP/B, "
              f"{'memory' if memory_bound(w) else 'compute'}-bound); peers paged {_fmt(best_p, '.1f')} "
              f"contig {_fmt(best_c, '.1f')}; FlashInfer {','.join(fi) if fi else 'none (no AOT module)'}; "
              f"spot-check tol {CHECK_REL_TOL[precision(w)]:g}"
              + (f"; vs our {base_workload(w, all_workloads)}" if precision(w) != "bf16" else ""))
        rows.append({"workload": w["id"], "status": "dry-run", "kv_load": "dry", "best_paged": best_p,
                     "best_contiguous": best_c, "memory_bound": memory_bound(w)})
    hc = HOST_COST_WORKLOAD
    print(f"run() host cost batch: {hc['what']} ({hc['num_qo_heads']}/{hc['num_kv_heads']} heads x "
          f"{hc['head_dim']}, page_size {hc['page_size']}), {HOST_COST_CALLS} calls back to back, out= given")
    print()
    print_report({"meta": {"peers_file": str(paths[1]) if paths[1] else None,
                           "peers_meta": peers.get("meta", {})}, "rows": rows})
    return 0


# --------------------------------------------------------------------------------------------
# Kernel builds (CPU: NVRTC needs no GPU)


def needed_variants(variants, workloads: list[dict], backend: str) -> list:
    """The library's builds a run of these workloads can load: the backend's prefill entry (sm90
    for auto) at their head dims, bf16 (and fp8 builds when an fp8 workload is selected), plus
    the device offset builder and the merge of split tiles (split-KV checkouts). Read off the
    variants' macros, so older checkouts work too."""
    arch = getattr(variants, "HOPPER_ARCH", "sm_90a")
    entry = "prefill_sm80" if backend == "sm80" else "prefill_sm90"
    head_dims = {int(w["head_dim"]) for w in workloads}
    want_fp8 = any(precision(w) != "bf16" for w in workloads)
    out = []
    for v in variants.all_variants():
        if v.arch != arch:
            continue
        d = dict(v.defines)
        is_fp8 = any("FP8" in str(k).upper() or "E4M3" in str(k).upper() for k in d if d[k] not in (0, "0"))
        fp16 = int(d.get("IS_BF16", 1)) == 0 and not is_fp8
        if v.entry in (variants.kv_offsets_variant(arch).entry, "merge_split") or (
                v.entry == entry and int(d.get("HEAD_DIM", 0)) in head_dims and not fp16
                and (want_fp8 or not is_fp8)):
            out.append(v)
    return out


def compile_builds(which: str, workloads: list[dict], backend: str, dry: bool, quiet: bool = False) -> int:
    """Compile (into NVRTC_ATTN_CACHE_DIR) the builds a run needs ("needed") or every build
    ("all"), cache misses in parallel worker processes. Returns the number of failures."""
    from nvrtc_attn import compiler, variants

    chosen = variants.all_variants() if which == "all" else needed_variants(variants, workloads, backend)
    names = [v.name for v in chosen]
    nvrtc = ".".join(map(str, compiler.nvrtc_version())) if hasattr(compiler, "nvrtc_version") else "?"
    cache = f"{compiler.default_cache_dir()} (NVRTC {nvrtc})"
    if dry:
        print(f"would compile {len(chosen)} builds into {cache}: {', '.join(names)}")
        return 0
    t0 = time.perf_counter()
    if hasattr(compiler, "compile_all"):
        results = compiler.compile_all(chosen, return_exceptions=True)
    else:  # an older checkout: one at a time
        results = []
        for v in chosen:
            try:
                results.append(compiler.compile_variant(v))
            except Exception as exc:  # noqa: BLE001 - report, go on
                results.append(exc)
    bad = [(n, r) for n, r in zip(names, results) if isinstance(r, BaseException)]
    cached = sum(bool(getattr(r, "from_cache", False)) for r in results)
    print(f"compiled {len(chosen)} builds ({cached} from cache, {len(bad)} failed) in "
          f"{time.perf_counter() - t0:.1f} s into {cache}", flush=True)
    for name, err in bad:
        print(f"  {name}: {type(err).__name__}: {str(err)[:300]}", flush=True)
    if not quiet and not bad:
        print("  " + ", ".join(names))
    return len(bad)


# --------------------------------------------------------------------------------------------
# GPU: torch tensors, event timing behind a GPU sleep


class Gpu:
    """torch on the current CUDA device: random data, sleep-hidden event timing."""

    def __init__(self):
        import torch

        if not torch.cuda.is_available():
            raise RuntimeError("torch sees no CUDA device")
        self.torch = torch
        self.device = torch.device("cuda", torch.cuda.current_device())
        self.sleep_cycles = self._calibrate_sleep()

    def name(self) -> str:
        p = self.torch.cuda.get_device_properties(self.device)
        return f"{p.name} ({p.multi_processor_count} SMs)"

    def _calibrate_sleep(self) -> int:
        """Cycles of torch.cuda._sleep that take SLEEP_MS (0: no sleep available)."""
        torch = self.torch
        if not hasattr(torch.cuda, "_sleep"):
            return 0
        n, times = 1 << 20, []
        torch.cuda._sleep(1000)
        for _ in range(3):
            s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            s.record()
            torch.cuda._sleep(n)
            e.record()
            e.synchronize()
            times.append(s.elapsed_time(e))
        return max(1, int(n * SLEEP_MS / max(statistics.median(times), 1e-3)))

    def randn(self, shape, seed: int, dtype=None):
        g = self.torch.Generator(device=self.device)
        g.manual_seed(seed)
        return self.torch.randn(shape, generator=g, device=self.device, dtype=dtype or self.torch.bfloat16)

    def sync(self):
        self.torch.cuda.synchronize()

    def free(self):
        self.sync()
        self.torch.cuda.empty_cache()

    def time_ms(self, fn, iters: int, warmup: int) -> float:
        """Median over `iters` calls, each bracketed by CUDA events and queued behind a GPU sleep."""
        torch = self.torch
        for _ in range(warmup):
            fn()
        self.sync()
        pairs = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
                 for _ in range(iters)]
        for start, end in pairs:
            if self.sleep_cycles:
                torch.cuda._sleep(self.sleep_cycles)
            start.record()
            fn()
            end.record()
        self.sync()
        return statistics.median(s.elapsed_time(e) for s, e in pairs)

    def host_us(self, fn, calls: int, warmup: int = 50) -> float:
        """Host wall time per call of `calls` calls back to back, one synchronize at the end."""
        for _ in range(warmup):
            fn()
        self.sync()
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        self.sync()
        return (time.perf_counter() - t0) / calls * 1e6


def plan_pass(gpu: Gpu, calls: dict, rounds: int, iters: int) -> dict:
    """{workload: {planner: median ms}} of the plan() calls in calls ({workload: {planner: fn}}):
    `rounds` rounds of `iters` calls of each, round robin over the workloads, the GPU drained after
    every call (as host_median_ms does)."""
    times = {wid: {who: [] for who in fns} for wid, fns in calls.items()}
    for _ in range(rounds):
        for wid, fns in calls.items():
            for who, fn in fns.items():
                times[wid][who] += host_times_ms(gpu, fn, iters)
    return {wid: {who: statistics.median(t) for who, t in d.items()} for wid, d in times.items()}


def host_times_ms(gpu: Gpu, fn, calls: int) -> list[float]:
    """Host time of each of `calls` calls of fn (plan()), the GPU drained between calls."""
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
        gpu.sync()
    return times


def host_median_ms(gpu: Gpu, fn, calls: int) -> float:
    """Median host time of `calls` calls of fn (plan()), the GPU drained between calls."""
    return statistics.median(host_times_ms(gpu, fn, calls))


def gemm_ceiling(gpu: Gpu, n: int | None = None) -> float:
    n = n or GEMM_N
    a, b = gpu.randn((n, n), 11), gpu.randn((n, n), 12)
    c = gpu.torch.empty_like(a)
    ms = gpu.time_ms(lambda: gpu.torch.matmul(a, b, out=c), iters=10, warmup=3)
    return 2.0 * n ** 3 / (ms * 1e-3) / 1e12


# --------------------------------------------------------------------------------------------
# Operands of one workload


@dataclass
class Operands:
    q: object            # [total_q, Hqo, D], bf16 or fp8 (= data / q_scale)
    k: object            # pool views [pages, page_size, Hkv, D], bf16 or fp8 (= data / k_scale)
    v: object
    out: object          # [total_q, Hqo, D] bf16
    q_dtype: str
    kv_dtype: str
    run_kw: dict         # q_scale / k_scale / v_scale for run()


def torch_dtype(torch, name: str):
    return getattr(torch, name)


def make_operands(gpu: Gpu, w: dict, batch: dict) -> Operands:
    torch = gpu.torch
    q_dt, kv_dt = dtypes(w)
    sc = scales(w)
    hqo, hkv, d, ps = w["num_qo_heads"], w["num_kv_heads"], w["head_dim"], w["page_size"]
    buf = gpu.randn((batch["max_pages"], POOL_LAYERS, 2, ps, hkv, d), seed=1)
    if kv_dt == FP8:  # data / scale, then cast; K and V halves of every layer
        pool = torch.empty(buf.shape, dtype=torch.float8_e4m3fn, device=gpu.device)
        pool[:, :, 0] = (buf[:, :, 0].float() / sc["k_scale"]).to(torch.float8_e4m3fn)
        pool[:, :, 1] = (buf[:, :, 1].float() / sc["v_scale"]).to(torch.float8_e4m3fn)
        del buf
    else:
        pool = buf
    q = gpu.randn((int(batch["qo_indptr"][-1]), hqo, d), seed=2)
    if q_dt == FP8:
        q = (q.float() / sc["q_scale"]).to(torch.float8_e4m3fn)
    elif q_dt == F16:
        q = q.to(torch.float16)
    out = torch.empty(q.shape, dtype=torch.float16 if q_dt == F16 else torch.bfloat16, device=gpu.device)
    return Operands(q, pool[:, POOL_LAYER, 0], pool[:, POOL_LAYER, 1], out, q_dt, kv_dt, sc)


def _take(torch, x, *index):
    """x[index] for bf16 and fp8 alike (fp8 gathers as its bytes)."""
    if x.element_size() == 1 and x.is_floating_point():
        return x.view(torch.uint8)[index].view(x.dtype)
    return x[index]


def _real(x, scale):
    return x.float() * scale if scale is not None else x.float()


def contiguous_kv(gpu: Gpu, w: dict, batch: dict, ops: Operands):
    """K and V packed per request, [total_kv, Hkv, D] (the contiguous peers' input)."""
    page, slot = token_pages(batch, int(w["page_size"]))
    pi = gpu.torch.as_tensor(page, device=gpu.device)
    si = gpu.torch.as_tensor(slot, device=gpu.device)
    return _take(gpu.torch, ops.k, pi, si).contiguous(), _take(gpu.torch, ops.v, pi, si).contiguous()


def spot_check(gpu: Gpu, w: dict, batch: dict, ops: Operands, out, rows: int, seed: int) -> float:
    """Max over a few random query rows of max|o - ref| / max|ref| (all heads); the reference is
    float32 on the stored data times its scale, that request's pages gathered by plain indexing."""
    torch = gpu.torch
    rng = np.random.default_rng(seed)
    qo_indptr = batch["qo_indptr"]
    total_q = int(qo_indptr[-1])
    hqo, hkv, d = w["num_qo_heads"], w["num_kv_heads"], w["head_dim"]
    kh = torch.arange(hqo, device=gpu.device) // (hqo // hkv)
    sm_scale = 1.0 / math.sqrt(d)
    sc = ops.run_kw
    worst = 0.0
    for t in rng.choice(total_q, size=min(rows, total_q), replace=False):
        b = int(np.searchsorted(qo_indptr, t, side="right") - 1)
        i = int(t - qo_indptr[b])
        qo_len, kv_len = int(batch["qo_lens"][b]), int(batch["kv_lens"][b])
        own = batch["paged_kv_indices"][batch["paged_kv_indptr"][b]: batch["paged_kv_indptr"][b + 1]]
        idx = torch.as_tensor(own.astype(np.int64), device=gpu.device)
        kk = _real(_take(torch, ops.k, idx), sc.get("k_scale")).reshape(-1, hkv, d)[:kv_len]
        vv = _real(_take(torch, ops.v, idx), sc.get("v_scale")).reshape(-1, hkv, d)[:kv_len]
        qq = _real(ops.q[int(t)], sc.get("q_scale"))  # [Hqo, D]
        logits = torch.einsum("hd,jhd->hj", qq, kk[:, kh]) * sm_scale
        keys = torch.arange(kv_len, device=gpu.device)
        diag = i + kv_len - qo_len
        if w["causal"]:
            logits = logits.masked_fill((keys > diag)[None, :], -math.inf)
        if window(w) >= 0:
            logits = logits.masked_fill((keys < diag - window(w))[None, :], -math.inf)
        p = torch.exp(logits - logits.amax(dim=1, keepdim=True))
        ref = torch.einsum("hj,jhd->hd", p, vv[:, kh]) / p.sum(dim=1, keepdim=True)
        err = float((out[int(t)].float() - ref).abs().max() / ref.abs().max())
        worst = max(worst, err if math.isfinite(err) else math.inf)
    return worst


def check_output(gpu: Gpu, w, batch, ops, out, args, who: str) -> float:
    """NaN fails; returns the spot check's error (the caller decides what a miss means)."""
    if bool(gpu.torch.isnan(out).any()):
        raise RuntimeError(f"{who}: NaN in the output")
    return spot_check(gpu, w, batch, ops, out, args.check_rows, seed=3)


def host_indices(torch, batch: dict) -> tuple:
    """The plan() inputs as host int32 tensors (the same objects for us and FlashInfer)."""
    return tuple(torch.as_tensor(batch[k]) for k in ("qo_indptr", "paged_kv_indptr", "paged_kv_indices",
                                                     "paged_kv_last_page_len"))


# --------------------------------------------------------------------------------------------
# nvrtc_attn


class Unsupported(Exception):
    """The library declined a workload's dtypes (fp8 before it is built)."""


def ours_wrapper(gpu: Gpu, backend: str, kv_load: str, workspace_mb: int = WORKSPACE_MB, fp8_mma: bool = False):
    import nvrtc_attn

    extra = {"kv_load": kv_load} if kv_load != "auto" else {}  # older checkouts lack kv_load
    if fp8_mma:  # the e4m3-wgmma builds for fp8 queries (checkouts with fp8_mma)
        extra["fp8_mma"] = True
    ws = gpu.torch.empty((workspace_mb << 20,), dtype=gpu.torch.uint8, device=gpu.device)
    return nvrtc_attn.BatchPrefillWithPagedKVCacheWrapper(ws, kv_layout="NHD", backend=backend, **extra)


def plan_ours(wrapper, w: dict, index_args: tuple, ops: Operands) -> None:
    # o_data_type only where it differs from q's (FlashInfer's default): an fp8 q, bf16 out
    out_dtype = {"o_data_type": BF16} if ops.q_dtype == FP8 else {}
    # a workload may fix the split-KV piece length (FlashInfer's fixed_split_size, in pages)
    split = {"fixed_split_size": int(w["fixed_split_size"])} if w.get("fixed_split_size") else {}
    wrapper.plan(*index_args, w["num_qo_heads"], w["num_kv_heads"], w["head_dim"], w["page_size"],
                 causal=bool(w["causal"]), q_data_type=ops.q_dtype, kv_data_type=ops.kv_dtype,
                 paged_kv_cache=(ops.k, ops.v), **out_dtype, **split,
                 **({"window_left": window(w)} if window(w) >= 0 else {}))


def measure_ours(gpu: Gpu, w: dict, batch: dict, ops: Operands, args, plan_calls: dict | None = None) -> dict:
    """Plan (first and median) and run times of our wrapper on the strided pool, after a check.
    fp8 workloads the library declines raise Unsupported. plan_calls: gets "ours", the plan() call
    (for plan_pass)."""
    fp8 = precision(w) != "bf16"
    wrapper = ours_wrapper(gpu, args.backend, args.kv_load, args.workspace_mb, getattr(args, "fp8_mma", False))
    index_args = host_indices(gpu.torch, batch)
    t0 = time.perf_counter()
    try:
        plan_ours(wrapper, w, index_args, ops)  # first plan: kernel load (compile on a cold cache)
    except (NotImplementedError, ValueError, TypeError) as exc:
        if fp8:
            raise Unsupported(f"plan(): {type(exc).__name__}: {exc}") from exc
        raise
    gpu.sync()
    first_plan_ms = (time.perf_counter() - t0) * 1e3
    plan_call = functools.partial(plan_ours, wrapper, w, index_args, ops)
    plan_ms = host_median_ms(gpu, plan_call, args.plan_iters)
    if plan_calls is not None:
        plan_calls["ours"] = plan_call

    def run():
        return wrapper.run(ops.q, (ops.k, ops.v), out=ops.out, **ops.run_kw)

    ops.out.fill_(math.nan)  # poison: rows the kernel does not write fail the NaN check
    try:
        run()
    except (NotImplementedError, TypeError) as exc:
        if fp8:
            raise Unsupported(f"run(): {type(exc).__name__}: {exc}") from exc
        raise
    gpu.sync()
    err = check_output(gpu, w, batch, ops, ops.out, args, w["id"])
    tol = CHECK_REL_TOL[precision(w)]
    if not err <= tol:
        raise RuntimeError(f"{w['id']}: spot check max rel error {err:.3e} > {tol}")
    ms = gpu.time_ms(run, args.iters, args.warmup)
    if bool(gpu.torch.isnan(ops.out).any()):
        raise RuntimeError(f"{w['id']}: NaN in the output after timing")
    kernel = getattr(wrapper, "kernel_name", None)
    return {"ms": ms, "plan_ms": plan_ms, "plan_burst_ms": plan_ms, "first_plan_ms": first_plan_ms, "max_rel_err": err,
            "backend": getattr(wrapper, "backend", args.backend),
            "kv_load": getattr(wrapper, "kv_load_path", None), "kernel": kernel}


# --------------------------------------------------------------------------------------------
# FlashInfer, same tensors, same run


def import_flashinfer():
    """(module, None) or (None, why not). torch first, JIT off (only the AOT modules load)."""
    os.environ.setdefault("FLASHINFER_DISABLE_JIT", "1")
    try:
        import torch  # noqa: F401 - FlashInfer wants torch imported first
        import flashinfer
    except Exception as exc:  # noqa: BLE001 - missing, or a broken install
        return None, f"{type(exc).__name__}: {str(exc)[:200]}"
    return flashinfer, None


class FlashInferPeers:
    """One FlashInfer wrapper per (backend, paged|ragged), each with its own workspace, planned per
    workload (like a serving engine: plan per batch)."""

    def __init__(self, fi, gpu: Gpu):
        self.fi, self.gpu, self._wrappers = fi, gpu, {}

    def make(self, backend: str, form: str):
        torch = self.gpu.torch
        ws = torch.empty((FI_WORKSPACE_MB << 20,), dtype=torch.uint8, device=self.gpu.device)
        cls = (self.fi.BatchPrefillWithPagedKVCacheWrapper if form == "paged"
               else self.fi.BatchPrefillWithRaggedKVCacheWrapper)
        return cls(ws, "NHD", backend=backend)

    def wrapper(self, backend: str, form: str):
        if (backend, form) not in self._wrappers:
            self._wrappers[backend, form] = self.make(backend, form)
        return self._wrappers[backend, form]

    def plan(self, wr, form: str, w: dict, batch: dict, index_args: tuple, ops: Operands) -> None:
        torch = self.gpu.torch
        kw = dict(causal=bool(w["causal"]), q_data_type=torch_dtype(torch, ops.q_dtype),
                  kv_data_type=torch_dtype(torch, ops.kv_dtype),
                  o_data_type=torch.float16 if ops.q_dtype == F16 else torch.bfloat16)
        hqo, hkv, d = w["num_qo_heads"], w["num_kv_heads"], w["head_dim"]
        if form == "paged":
            wr.plan(*index_args, hqo, hkv, d, w["page_size"], **kw)
        else:
            wr.plan(index_args[0], torch.as_tensor(batch["kv_tok_indptr"]), hqo, hkv, d, **kw)

    def measure(self, w: dict, batch: dict, ops: Operands, args,
                plan_calls: dict | None = None) -> tuple[dict, float | None]:
        """{peer key: {"ms", "tflops", "max_rel_err", "check_ok"} or {"skip"/"error": why}} and
        FlashInfer fa2's median plan() ms; plan_calls gets "fa2", its plan() call (for plan_pass)."""
        gpu, torch = self.gpu, self.gpu.torch
        index_args = host_indices(torch, batch)
        flops = workload_flops(w)
        results, fa2_plan_ms, kv_c = {}, None, None
        out = torch.empty_like(ops.out)
        for key, backend, form in FI_PEERS:
            if not fi_supported(backend, ops.q_dtype, ops.kv_dtype, w["head_dim"], window(w)):
                results[key] = {"skip": "no AOT module (would JIT-compile)"}
                continue
            try:
                wr = self.wrapper(backend, form)
                self.plan(wr, form, w, batch, index_args, ops)
                if backend == "fa2" and form == "paged":
                    fa2_call = functools.partial(self.plan, wr, form, w, batch, index_args, ops)
                    fa2_plan_ms = host_median_ms(gpu, fa2_call, args.plan_iters)
                    if plan_calls is not None:
                        plan_calls["fa2"] = fa2_call
                if form == "ragged" and kv_c is None:
                    kv_c = contiguous_kv(gpu, w, batch, ops)
                kv = ((ops.k, ops.v),) if form == "paged" else kv_c

                def run(wr=wr, kv=kv):
                    return wr.run(ops.q, *kv, out=out, **ops.run_kw)

                out.fill_(math.nan)
                run()
                gpu.sync()
                err = check_output(gpu, w, batch, ops, out, args, key)
                ms = gpu.time_ms(run, args.iters, args.warmup)
                ok = err <= CHECK_REL_TOL[precision(w)]
                results[key] = {"ms": ms, "tflops": flops / (ms * 1e-3) / 1e12, "max_rel_err": err,
                                "check_ok": ok}
                if not ok:
                    print(f"  {key}: spot check max rel error {err:.2e} (timed anyway, marked '?')", flush=True)
            except Exception as exc:  # noqa: BLE001 - a peer failing must not stop the run
                results[key] = {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
                print(f"  {key} failed: {results[key]['error']}", flush=True)
        return results, fa2_plan_ms


# --------------------------------------------------------------------------------------------
# One workload, run() host cost


def bench_workload(gpu: Gpu, w: dict, args, peers: dict, fi: FlashInferPeers | None,
                   plan_calls: dict | None = None) -> dict:
    """One row of the table. plan_calls (for plan_pass) gets the row's plan() calls, which keep
    its operands alive."""
    wid = w["id"]
    batch = build_batch(w, seed=0)
    flops, nbytes = workload_flops(w), kv_bytes(w)
    best_p, best_c = peer_refs(peers, wid)
    row = {"workload": wid, "what": w.get("what"), "q_dtype": dtypes(w)[0], "kv_dtype": dtypes(w)[1],
           "flops": flops, "kv_bytes": nbytes, "memory_bound": memory_bound(w),
           "best_paged": best_p, "best_contiguous": best_c}
    ops = make_operands(gpu, w, batch)
    try:
        ours = measure_ours(gpu, w, batch, ops, args, plan_calls)
    except Unsupported as exc:
        row.update(status="not supported", reason=str(exc))
    else:
        ms = ours["ms"]
        tflops = flops / (ms * 1e-3) / 1e12
        row.update(status="ok", tflops=tflops, kv_tbps=nbytes / (ms * 1e-3) / 1e12, **ours,
                   ratio_best_paged=tflops / best_p if best_p else None,
                   ratio_best_contiguous=tflops / best_c if best_c else None)
    if fi is not None:
        row["fi"], row["fi_fa2_plan_ms"] = fi.measure(w, batch, ops, args, plan_calls)
        same_run = {k: p["tflops"] for k, p in row["fi"].items() if p.get("check_ok")}
        if same_run and row.get("tflops"):
            best = max(same_run, key=same_run.get)
            row.update(fi_best=best, ratio_fi_best=row["tflops"] / same_run[best])
    del ops
    return row


def run_host_cost(gpu: Gpu, args, fi: FlashInferPeers | None) -> dict:
    """Host wall time per run() on a tiny batch: ours, FlashInfer fa3 and fa2."""
    w = HOST_COST_WORKLOAD
    batch = build_batch(w, seed=0)
    ops = make_operands(gpu, w, batch)
    index_args = host_indices(gpu.torch, batch)
    res = {"what": w["what"], "calls": HOST_COST_CALLS, "us": {}, "errors": {}}
    try:
        wr = ours_wrapper(gpu, args.backend, args.kv_load, args.workspace_mb, getattr(args, "fp8_mma", False))
        plan_ours(wr, w, index_args, ops)
        res["us"]["nvrtc_attn"] = gpu.host_us(lambda: wr.run(ops.q, (ops.k, ops.v), out=ops.out), HOST_COST_CALLS)
    except Exception as exc:  # noqa: BLE001
        res["errors"]["nvrtc_attn"] = f"{type(exc).__name__}: {exc}"
    if fi is not None:
        out = gpu.torch.empty_like(ops.out)
        for backend in ("fa3", "fa2"):
            try:
                fw = fi.make(backend, "paged")
                fi.plan(fw, "paged", w, batch, index_args, ops)
                res["us"][f"FlashInfer {backend}"] = gpu.host_us(
                    lambda fw=fw: fw.run(ops.q, (ops.k, ops.v), out=out), HOST_COST_CALLS)
            except Exception as exc:  # noqa: BLE001
                res["errors"][f"FlashInfer {backend}"] = f"{type(exc).__name__}: {exc}"
    return res


def add_bf16_ratios(rows: list[dict], workloads: list[dict]) -> None:
    """x bf16: an fp8 row's TFLOP/s over our bf16 row of the same shape in this run."""
    by_id = {r["workload"]: r for r in rows}
    for w in workloads:
        r, base = by_id.get(w["id"]), by_id.get(base_workload(w, workloads) or "")
        if r and base and r.get("tflops") and base.get("tflops"):
            r.update(base=base["workload"], ratio_bf16=r["tflops"] / base["tflops"])


# --------------------------------------------------------------------------------------------


def write_json(path: str | None, result: dict) -> None:
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(str(path) + ".tmp")
        with open(tmp, "w") as f:
            json.dump(result, f, indent=1, default=str)
        os.replace(tmp, path)


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="", help="comma-separated workload ids, e.g. W1,W2 (default: all)")
    ap.add_argument("--backend", default="auto", choices=("auto", "sm80", "sm90"))
    ap.add_argument("--kv-load", default="auto", choices=("auto", "gather"),
                    help="sm90 K/V load path: auto (TMA where pages allow) or gather")
    ap.add_argument("--fp8-mma", action="store_true",
                    help="fp8-query workloads on the e4m3 wgmma builds (the wrapper's experimental fp8_mma=True)")
    ap.add_argument("--json", default=None, help="write the full results here")
    ap.add_argument("--iters", type=int, default=30, help="timed calls per workload (median)")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--plan-iters", type=int, default=20, help="plan() calls timed per workload and round (median)")
    ap.add_argument("--plan-rounds", type=int, default=8,
                    help="rounds of --plan-iters plan() calls per workload, round robin after the GPU rows "
                         "(1: the burst right after the first plan only)")
    ap.add_argument("--check-rows", type=int, default=8, help="query rows spot-checked")
    ap.add_argument("--workspace-mb", type=int, default=WORKSPACE_MB)
    ap.add_argument("--flashinfer", action="store_true",
                    help="also time FlashInfer fa3/fa2 paged and contiguous (AOT modules only)")
    ap.add_argument("--dry-run", action="store_true", help="no GPU: print workloads, FLOPs, bytes, peers, layout")
    ap.add_argument("--compile", choices=("needed", "all"), default=None,
                    help="compile the builds the selected workloads need (or all builds) and exit")
    ap.add_argument("--no-precompile", action="store_true", help="do not compile the needed builds up front")
    ap.add_argument("--no-ceiling", action="store_true", help="skip the bf16 GEMM ceiling")
    ap.add_argument("--no-host-cost", action="store_true", help="skip the run() host cost")
    ap.add_argument("--lib", default=None, help="checkout whose nvrtc_attn to time (default: this one)")
    ap.add_argument("--workloads", default=None, help="workloads.json (default: tools/, else ../shared/bench)")
    ap.add_argument("--peers", default=None, help="peers json (default: tools/peers_h200.json, else ../shared)")
    ap.add_argument("--print-table", metavar="JSON", default=None, help="print the table of an earlier --json")
    ap.add_argument("--no-peer", action="store_true", help=argparse.SUPPRESS)  # old flag: peers are opt-in now
    args = ap.parse_args(argv)
    if args.iters < 1 or args.plan_iters < 1 or args.plan_rounds < 1:
        ap.error("--iters, --plan-iters and --plan-rounds must be >= 1")
    return ap, args


def main(argv=None) -> int:
    ap, args = parse_args(argv)
    if args.print_table:
        with open(args.print_table) as f:
            print_report(json.load(f))
        return 0
    lib = Path(args.lib).resolve() if args.lib else REPO
    sys.path.insert(0, str(lib))  # ahead of PYTHONPATH: the checkout under test
    os.environ.setdefault("NVRTC_ATTN_LAZY_COMPILE", "1")  # compile what the run loads, in parallel

    all_workloads, wpath = load_workloads(args.workloads)
    try:
        workloads = select(all_workloads, args.only)
    except ValueError as exc:
        ap.error(str(exc))
    peers, ppath = load_peers(args.peers)
    if args.compile:
        return 1 if compile_builds(args.compile, workloads, args.backend, args.dry_run) else 0
    if args.dry_run:
        return dry_run(workloads, all_workloads, peers, args, (wpath, ppath))

    try:
        gpu = Gpu()
    except Exception as exc:  # noqa: BLE001 - no torch, no driver, no device
        print(f"bench.py needs torch with a CUDA GPU: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    import nvrtc_attn

    torch = gpu.torch
    print(f"device: {gpu.name()}; torch {torch.__version__}; nvrtc_attn from {Path(nvrtc_attn.__file__).parent}; "
          f"workloads {wpath}; peers {ppath}; backend {args.backend}; GPU sleep {gpu.sleep_cycles} cycles "
          f"(~{SLEEP_MS:g} ms) before each timed call", flush=True)
    fi = None
    meta = {"device": gpu.name(), "torch": torch.__version__, "library": str(Path(nvrtc_attn.__file__).parent),
            "workloads_file": str(wpath), "peers_file": str(ppath) if ppath else None,
            "peers_meta": peers.get("meta", {}), "args": vars(args), "sleep_cycles": gpu.sleep_cycles}
    if args.flashinfer:
        mod, why = import_flashinfer()
        meta["flashinfer"] = getattr(mod, "__version__", None) if mod else f"unavailable: {why}"
        print(f"flashinfer: {meta['flashinfer']}", flush=True)
        fi = FlashInferPeers(mod, gpu) if mod else None
    if not args.no_precompile:
        try:
            compile_builds("needed", workloads, args.backend, dry=False, quiet=True)
        except Exception as exc:  # noqa: BLE001 - plan() compiles on demand anyway
            print(f"precompile skipped: {type(exc).__name__}: {exc}", flush=True)
    if not args.no_ceiling:
        meta["gemm_tflops"] = gemm_ceiling(gpu)
        print(f"ceiling: bf16 GEMM {GEMM_N}^3 {meta['gemm_tflops']:.0f} TFLOP/s", flush=True)
        gpu.free()

    rows = []
    result = {"meta": meta, "rows": rows}
    plan_calls = {}  # workload -> {"ours" / "fa2": its plan() call}, for the round-robin plan() pass
    for w in workloads:
        calls = plan_calls.setdefault(w["id"], {}) if args.plan_rounds > 1 else None
        try:
            row = bench_workload(gpu, w, args, peers, fi, calls)
        except Exception as exc:  # noqa: BLE001 - report every workload, fail at the end
            row = {"workload": w["id"], "status": "error", "error": f"{type(exc).__name__}: {exc}"}
            print(f"!!! {w['id']} FAILED: {row['error']}", file=sys.stderr, flush=True)
        if row["status"] == "ok":
            print(f"{w['id']}: {row['ms']:.4f} ms, {row['tflops']:.1f} TFLOP/s, {row['kv_tbps']:.2f} TB/s K/V, "
                  f"plan burst {row['plan_ms']:.2f} ms (first {row['first_plan_ms']:.0f} ms), {row.get('kernel')}, "
                  f"kv {row.get('kv_load')}, spot-check err {row['max_rel_err']:.1e}", flush=True)
        elif row["status"] == "not supported":
            print(f"{w['id']}: not supported: {row['reason']}", flush=True)
        rows.append(row)
        write_json(args.json, result)  # after every row: a run stopped by its time limit keeps what it had
        gpu.free()
    add_bf16_ratios(rows, all_workloads)
    plan_calls = {wid: c for wid, c in plan_calls.items() if c}
    if plan_calls:
        medians = plan_pass(gpu, plan_calls, args.plan_rounds, args.plan_iters)
        for row in rows:
            m = medians.get(row["workload"], {})
            if "ours" in m:
                row["plan_ms"] = m["ours"]
            if "fa2" in m:
                row["fi_fa2_plan_ms"] = m["fa2"]
        plan_calls.clear()  # the operands they hold
        gpu.free()
    meta["plan_timing"] = (f"round robin, {args.plan_rounds} rounds x {args.plan_iters} calls" if args.plan_rounds > 1
                           else f"{args.plan_iters} calls after the first plan")
    if not args.no_host_cost:
        result["run_host_cost"] = run_host_cost(gpu, args, fi)
        gpu.free()
    write_json(args.json, result)
    print()
    print_report(result)
    return 1 if any(r["status"] == "error" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
