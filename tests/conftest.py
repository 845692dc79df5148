"""Shared test plumbing: the `gpu` marker (skipped cleanly without a usable CUDA device) and
builders for random paged batches, KV pools, poisoned outputs and error checks.

Nothing here touches the device at import or collection time, so CI without a GPU collects every
test and reports the GPU ones as skipped.
"""

from __future__ import annotations

import functools
import itertools
import os
import random
import tempfile
from dataclasses import dataclass

import numpy as np
import pytest

# Tests never fill the user's kernel cache (~/.cache/nvrtc_attn): without NVRTC_ATTN_CACHE_DIR they
# compile into a fresh temporary directory, removed at exit. Set before anything is compiled.
if not os.environ.get("NVRTC_ATTN_CACHE_DIR"):
    _CACHE_TMP = tempfile.TemporaryDirectory(prefix="nvrtc_attn-test-cache-")
    os.environ["NVRTC_ATTN_CACHE_DIR"] = _CACHE_TMP.name

# Kernels need mma.sync m16n8k16 with bf16 (sm_80+).
MIN_COMPUTE_CAPABILITY = 80


@functools.lru_cache(maxsize=None)
def gpu_unavailable_reason() -> str | None:
    """None when a CUDA device usable by CuPy is present, else why not (for the skip message)."""
    try:
        import cupy
    except Exception as exc:  # noqa: BLE001 - any import failure means no GPU path
        return f"cupy not importable ({type(exc).__name__}: {exc})"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # noqa: BLE001 - CUDARuntimeError, missing driver library, ...
        return f"no usable CUDA driver/device ({type(exc).__name__}: {exc})"
    if count == 0:
        return "no CUDA device"
    try:
        cc = int(cupy.cuda.Device(0).compute_capability)
    except Exception as exc:  # noqa: BLE001
        return f"CUDA device not usable ({type(exc).__name__}: {exc})"
    if cc < MIN_COMPUTE_CAPABILITY:
        return f"compute capability {cc} < {MIN_COMPUTE_CAPABILITY}"
    return None


@functools.lru_cache(maxsize=None)
def torch_cuda_unavailable_reason() -> str | None:
    """None when torch with CUDA is usable (needed for bf16 data and torch-tensor cases)."""
    reason = gpu_unavailable_reason()
    if reason:
        return reason
    try:
        import torch
    except Exception as exc:  # noqa: BLE001
        return f"torch not importable ({type(exc).__name__}: {str(exc)[:300]})"
    if not torch.cuda.is_available():
        return "torch has no CUDA"
    return None


@functools.lru_cache(maxsize=None)
def hopper_unavailable_reason() -> str | None:
    """None when device 0 is a Hopper GPU (compute capability 9.0: the sm90 backend), else why not."""
    reason = gpu_unavailable_reason()
    if reason:
        return reason
    import cupy

    cc = int(cupy.cuda.Device(0).compute_capability)
    return None if cc == 90 else f"compute capability {cc}: the sm90 kernels need a Hopper GPU (9.0)"


@functools.lru_cache(maxsize=None)
def multi_gpu_unavailable_reason() -> str | None:
    """None when at least two CUDA devices are usable (several GPUs in one process), else why not."""
    reason = gpu_unavailable_reason()
    if reason:
        return reason
    import cupy

    n = cupy.cuda.runtime.getDeviceCount()
    return None if n >= 2 else f"{n} CUDA device(s); needs 2"


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "gpu: needs a CUDA GPU (sm_80+); skipped with a reason when none is usable"
    )
    config.addinivalue_line(
        "markers", "hopper: needs a Hopper GPU (the sm90 backend); skipped with a reason elsewhere"
    )
    config.addinivalue_line("markers", "multi_gpu: needs two CUDA GPUs; skipped with a reason elsewhere")


def pytest_collection_modifyitems(config, items):
    for item in items:
        for marker, why in (("gpu", gpu_unavailable_reason), ("hopper", hopper_unavailable_reason),
                            ("multi_gpu", multi_gpu_unavailable_reason)):
            if item.get_closest_marker(marker) is not None:
                reason = why()
                if reason:
                    item.add_marker(pytest.mark.skip(reason=f"{marker} test: {reason}"))
                    break


@pytest.fixture
def gpu():
    """Skip unless a CUDA device is usable (also implied by the `gpu` marker)."""
    reason = gpu_unavailable_reason()
    if reason:
        pytest.skip(f"GPU test: {reason}")


@pytest.fixture
def short_tiles_tma(monkeypatch):
    """The sm90 short builds' K/V by TMA page boxes where the page size allows them
    (variants.SHORT_TILES_GATHER off; plan() gathers on short tiles by default): keeps that path
    of the short builds tested."""
    from nvrtc_attn import variants

    monkeypatch.setattr(variants, "SHORT_TILES_GATHER", False)


def require_torch_cuda():
    reason = torch_cuda_unavailable_reason()
    if reason:
        pytest.skip(f"needs torch with CUDA: {reason}")


# --------------------------------------------------------------------------------------------
# Paged batches (host side, pure NumPy)


@dataclass(frozen=True)
class PagedBatch:
    """A batch's CSR page table (int32 NumPy) and lengths; pages are a random permutation."""

    qo_lens: np.ndarray
    kv_lens: np.ndarray
    page_size: int
    max_pages: int
    qo_indptr: np.ndarray
    paged_kv_indptr: np.ndarray
    paged_kv_indices: np.ndarray
    paged_kv_last_page_len: np.ndarray

    @property
    def total_q(self) -> int:
        return int(self.qo_indptr[-1])

    @property
    def batch_size(self) -> int:
        return len(self.qo_lens)

    def index_args(self):
        return (self.qo_indptr, self.paged_kv_indptr, self.paged_kv_indices, self.paged_kv_last_page_len)


def make_page_table(qo_lens, kv_lens, page_size, seed, extra_pages=3) -> PagedBatch:
    """Page table for the given lengths over a pool of (needed + extra) pages, randomly permuted.

    Requests with kv_len 0 get zero pages (and a random last_page_len, which must be ignored).
    The pages used are never 0..n in order.
    """
    rng = np.random.default_rng(seed)
    qo_lens = np.asarray(qo_lens, dtype=np.int64)
    kv_lens = np.asarray(kv_lens, dtype=np.int64)
    n_pages = (kv_lens + page_size - 1) // page_size
    needed = int(n_pages.sum())
    max_pages = needed + extra_pages
    perm = rng.permutation(max_pages)
    if needed > 1 and np.array_equal(perm[:needed], np.arange(needed)):
        perm[:needed] = perm[:needed][::-1]
    indices = perm[:needed]
    last = np.where(n_pages > 0, (kv_lens - 1) % page_size + 1, rng.integers(1, page_size + 1, len(kv_lens)))
    return PagedBatch(
        qo_lens=qo_lens,
        kv_lens=kv_lens,
        page_size=int(page_size),
        max_pages=max_pages,
        qo_indptr=np.concatenate(([0], np.cumsum(qo_lens))).astype(np.int32),
        paged_kv_indptr=np.concatenate(([0], np.cumsum(n_pages))).astype(np.int32),
        paged_kv_indices=indices.astype(np.int32),
        paged_kv_last_page_len=last.astype(np.int32),
    )


# The prefill grids' shape factors (test_prefill, test_fp8), in this order: page size, head dim, GQA
# group, mask, layout, and how the cache is passed (tuple of 4-D arrays, one 5-D array, a pool
# layer's views, K and V of different strides).
GRID_SHAPE_FACTORS = {
    "ps": (1, 5, 16, 64),
    "hd": (64, 128, 256),
    "g": (1, 4, 8),
    "causal": (False, True),
    "layout": ("NHD", "HND"),
    "cache": ("tuple", "5d", "pool", "kvdiff"),
}


def grid_case_valid(case: dict) -> bool:
    """The prefill grids' constraints (partial cases allowed): bf16 data only through torch tensors
    (CuPy has no bf16); qo_len > kv_len ("gt" lengths) only without the causal mask."""
    if case.get("dtype") == "bfloat16" and case.get("fw") == "cupy":
        return False
    if case.get("lens") == "gt" and case.get("causal") is True:
        return False
    return True


def grid_lengths(profile: str, causal: bool, rng: np.random.Generator, longer: int = 0):
    """(qo_lens, kv_lens) of a grid case, a few hundred query tokens in total: "lt" (kv > qo), "eq",
    "gt" (qo > kv: non-causal only), "mixed" (empty requests on both sides, one longer request).
    longer: keys added to the ranges of "lt", "eq" and "mixed" (more key blocks per tile)."""
    if profile == "lt":
        qo = rng.integers(1, 70, 3)
        kv = qo + rng.integers(1, 150 + longer, 3)
    elif profile == "eq":
        qo = rng.integers(30, 140 + longer // 2, 2)
        kv = qo.copy()
    elif profile == "gt":  # non-causal only
        kv = rng.integers(1, 60, 2)
        qo = kv + rng.integers(1, 100, 2)
    elif profile == "mixed":
        qo = np.array([0, rng.integers(1, 40), 0, rng.integers(100, 200), rng.integers(1, 9)])
        kv = np.array([rng.integers(1, 50), 0, 0, 0, 0])
        kv[3] = qo[3] + rng.integers(0, 80 + longer)
        kv[4] = qo[4] + rng.integers(0, 3)
        if causal:  # kv_len 0 with qo_len > 0 would be qo_len > kv_len
            kv[1] = qo[1] + rng.integers(0, 30)
    else:
        raise AssertionError(profile)
    return qo, kv


def pairwise_cases(factors: dict, valid, seed: int = 2024, min_cases: int = 24) -> list[dict]:
    """Cases (dicts of factor values) in which every pair of values of two factors appears at least
    once (greedy all-pairs), instead of the full cartesian product; valid(case) filters impossible
    combinations (it sees partial cases: two factors at a time)."""
    names = list(factors)
    uncovered = set()
    for a, b in itertools.combinations(range(len(names)), 2):
        for va in factors[names[a]]:
            for vb in factors[names[b]]:
                if valid({names[a]: va, names[b]: vb}):
                    uncovered.add((a, va, b, vb))
    rnd = random.Random(seed)

    def pairs_of(case):
        return {(a, case[names[a]], b, case[names[b]])
                for a, b in itertools.combinations(range(len(names)), 2)}

    cases = []
    while uncovered or len(cases) < min_cases:
        best, best_gain = None, -1
        seeds = sorted(uncovered, key=repr)
        for _ in range(60):
            case = {n: rnd.choice(factors[n]) for n in names}
            if seeds:  # start from an uncovered pair so each case makes progress
                a, va, b, vb = rnd.choice(seeds)
                case[names[a]], case[names[b]] = va, vb
            for _fix in range(20):
                if valid(case):
                    break
                n = rnd.choice(names)
                case[n] = rnd.choice(factors[n])
            if not valid(case):
                continue
            gain = len(pairs_of(case) & uncovered)
            if gain > best_gain:
                best, best_gain = case, gain
        cases.append(best)
        uncovered -= pairs_of(best)
    return cases


def poison_unowned_slots(batch: PagedBatch, cache, layout: str, value=float("nan")) -> None:
    """`value` (NaN; for an fp8 cache's bytes, a NaN bit pattern) into every slot of K and V that no
    request's tokens occupy: the tail of each request's last page and the pages no request uses."""
    k, v = cache
    used = np.zeros(batch.max_pages, dtype=bool)
    for r in range(len(batch.kv_lens)):
        lo, hi = int(batch.paged_kv_indptr[r]), int(batch.paged_kv_indptr[r + 1])
        if hi == lo:
            continue
        used[batch.paged_kv_indices[lo:hi]] = True
        last, tail = int(batch.paged_kv_indices[hi - 1]), int(batch.paged_kv_last_page_len[r])
        for x in (k, v):
            if layout == "NHD":
                x[last, tail:] = value
            else:
                x[last, :, tail:] = value
    for page in np.flatnonzero(~used).tolist():
        for x in (k, v):
            x[page] = value


# --------------------------------------------------------------------------------------------
# Device arrays in either framework ("cupy" or "torch")


def _torch_dtype(name):
    import torch

    return {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32,
            "uint8": torch.uint8, "int32": torch.int32}[name]


def randn(fw, shape, dtype, seed, scale=1.0):
    """Random normal data (never zeros) of dtype 'float16' / 'bfloat16' / 'float32'."""
    shape = tuple(int(s) for s in shape)
    if fw == "torch":
        import torch

        g = torch.Generator(device="cuda")
        g.manual_seed(int(seed))
        x = torch.randn(shape, generator=g, device="cuda", dtype=torch.float32)
        return (x * scale).to(_torch_dtype(dtype))
    import cupy

    if dtype == "bfloat16":
        pytest.skip("bf16 data needs torch tensors (CuPy has no bf16 dtype)")
    x = cupy.random.RandomState(int(seed)).standard_normal(shape, dtype=cupy.float32)
    return (x * scale).astype(dtype)


def empty(fw, shape, dtype):
    shape = tuple(int(s) for s in shape)
    if fw == "torch":
        import torch

        return torch.empty(shape, device="cuda", dtype=_torch_dtype(dtype))
    import cupy

    return cupy.empty(shape, dtype=dtype)


def to_device_ints(fw, a):
    """An int32 index array on the device in the given framework."""
    if fw == "torch":
        import torch

        return torch.as_tensor(np.asarray(a, dtype=np.int32), device="cuda")
    import cupy

    return cupy.asarray(np.asarray(a, dtype=np.int32))


def workspace(fw, nbytes=128 << 20):
    return empty(fw, (nbytes,), "uint8")


def make_wrapper(fw, kv_layout, backend, **kwargs):
    """A BatchPrefillWithPagedKVCacheWrapper on a fresh workspace of fw's kind (sm90 tests carry the
    `hopper` marker: nothing is skipped here)."""
    import nvrtc_attn

    return nvrtc_attn.BatchPrefillWithPagedKVCacheWrapper(workspace(fw), kv_layout=kv_layout, backend=backend,
                                                          **kwargs)


def poison(x):
    """Fill a floating array (any strides) with NaN, in place; returns x."""
    if type(x).__module__.startswith("torch"):
        x.fill_(float("nan"))
    else:
        x.fill(np.nan)
    return x


def poison_workspace(ws):
    """Another wrapper's scratch: NaN bytes (0xFF..) in the whole float workspace (split-KV runs must
    read only what their own pieces wrote)."""
    if type(ws).__module__.startswith("torch"):
        ws.fill_(255)
    else:
        ws.fill(255)


def bits_equal(a, b) -> bool:
    """Same bytes (16-bit outputs of either framework)."""
    if type(a).__module__.startswith("torch"):
        import torch

        return bool(torch.equal(a.view(torch.int16), b.view(torch.int16)))
    import cupy

    return bool(cupy.array_equal(a.view(cupy.uint16), b.view(cupy.uint16)))


def synchronize():
    import cupy

    cupy.cuda.Device().synchronize()
    reason = torch_cuda_unavailable_reason()
    if reason is None:
        import torch

        torch.cuda.synchronize()


class Snapshot:
    """Exact bit-copy of a contiguous buffer; `.unchanged()` compares as integers (NaN-safe)."""

    def __init__(self, buf):
        self.buf = buf
        if type(buf).__module__.startswith("torch"):
            import torch

            assert buf.is_contiguous()
            self.copy = buf.detach().view(torch.uint8).clone()
        else:
            assert buf.flags.c_contiguous
            self.copy = buf.view(np.uint8).copy()

    def unchanged(self) -> bool:
        synchronize()
        if type(self.buf).__module__.startswith("torch"):
            import torch

            return bool(torch.equal(self.buf.detach().view(torch.uint8), self.copy))
        xp = _xp(self.buf)
        return bool(xp.array_equal(self.buf.view(np.uint8), self.copy))


def _xp(x):
    try:
        import cupy

        return cupy.get_array_module(x)
    except Exception:  # noqa: BLE001
        return np


@dataclass
class KVPool:
    """A [max_pages, num_layers, 2, page_size, Hkv, D] pool (HND: [..., Hkv, page_size, D])."""

    buf: object
    kv_layout: str

    def layer(self, layer: int):
        """(k, v) strided views of one layer, as a model would pass them."""
        return self.buf[:, layer, 0], self.buf[:, layer, 1]


def make_pool(fw, dtype, max_pages, page_size, num_kv_heads, head_dim, *, num_layers=4,
              kv_layout="NHD", seed=0) -> KVPool:
    """Random pool with K/V of every layer interleaved on dims 1 and 2 (non-contiguous views)."""
    if kv_layout == "NHD":
        shape = (max_pages, num_layers, 2, page_size, num_kv_heads, head_dim)
    else:
        shape = (max_pages, num_layers, 2, num_kv_heads, page_size, head_dim)
    return KVPool(buf=randn(fw, shape, dtype, seed), kv_layout=kv_layout)


# --------------------------------------------------------------------------------------------
# Error checks

# Relative L2 error bounds against the float32 reference (the reference sees the same rounded
# inputs, so this is the kernel's own rounding: P and O in 16-bit, fp32 accumulation).
REL_TOL = {"float16": 5e-3, "bfloat16": 2e-2}
LSE_ABS_TOL = 1e-2


def dtype_name(x) -> str:
    s = str(x.dtype)
    return s.replace("torch.", "")


def check_attention(o, lse, ref_o, ref_lse, dtype, what="", rel_tol=None, lse_tol=None):
    """Assert o (and lse when given) match the reference: no NaN, rel L2 error within the dtype's
    bound (rel_tol: a path's own bound instead), masked rows exactly 0 in o, LSE -inf exactly where
    the reference is -inf and within LSE_ABS_TOL (lse_tol: a path's own bound) elsewhere."""
    from nvrtc_attn.reference import as_float_array

    synchronize()
    of = as_float_array(o)
    xp = _xp(of)
    ref_o = xp.asarray(as_float_array(ref_o))  # the reference side may be another run's bf16 output
    assert of.shape == ref_o.shape, f"{what}: o shape {of.shape} != {ref_o.shape}"
    n_nan = int(xp.isnan(of).sum())
    assert n_nan == 0, f"{what}: {n_nan} NaN in o (unwritten or bad values)"
    assert bool(xp.isfinite(of).all()), f"{what}: inf in o"
    ref_norm = float(xp.linalg.norm(ref_o))
    err = float(xp.linalg.norm(of - ref_o))
    rel = err / ref_norm if ref_norm > 0 else err
    tol = REL_TOL[dtype] if rel_tol is None else rel_tol
    assert rel <= tol, f"{what}: rel L2 error {rel:.3e} > {tol:.1e}"
    if ref_lse is not None:
        ref_lse = xp.asarray(as_float_array(ref_lse))
        dead = xp.isneginf(ref_lse)  # [T, H]: rows that see no key
        if bool(dead.any()):
            assert float(xp.abs(of[dead]).max()) == 0.0, f"{what}: fully masked rows not zero"
    if lse is not None:
        lf = as_float_array(lse)
        assert lf.shape == ref_lse.shape, f"{what}: lse shape {lf.shape} != {ref_lse.shape}"
        assert int(xp.isnan(lf).sum()) == 0, f"{what}: NaN in lse"
        dead = xp.isneginf(ref_lse)
        assert bool(xp.array_equal(xp.isneginf(lf), dead)), f"{what}: lse -inf pattern differs"
        live = ~dead
        if bool(live.any()):
            lerr = float(xp.abs(lf[live] - ref_lse[live]).max())
            ltol = LSE_ABS_TOL if lse_tol is None else lse_tol
            assert lerr <= ltol, f"{what}: lse abs error {lerr:.3e} > {ltol}"
    return rel


# The three ways the Hopper tests run a batch: the sm90 kernel on the K/V path run() picks, the sm90
# kernel gathering K/V, and the portable kernel (check_agreement's yardstick).
THREE_WAYS = (("sm90", "sm90", "auto"), ("sm90-gather", "sm90", "gather"), ("sm80", "sm80", "auto"))


def run_three_ways(fw, layout, batch: PagedBatch, heads, q, cache, ref, dtype, **plan_kw):
    """Plan `batch` (heads = (Hqo, Hkv, D)) and run it on (q, cache) each of THREE_WAYS, into NaN-
    poisoned out and lse, each checked against ref = (o, lse) of the reference. Yields
    ((name, backend, kv_load), wrapper, (o, lse))."""
    import nvrtc_attn

    hqo, hkv, d = heads
    for way in THREE_WAYS:
        name, backend, kv_load = way
        w = nvrtc_attn.BatchPrefillWithPagedKVCacheWrapper(workspace(fw), kv_layout=layout, backend=backend,
                                                           kv_load=kv_load)
        w.plan(*batch.index_args(), hqo, hkv, d, batch.page_size, **plan_kw)
        out = poison(empty(fw, (batch.total_q, hqo, d), dtype))
        lse = poison(empty(fw, (batch.total_q, hqo), "float32"))
        res = w.run(q, cache, out=out, lse=lse, return_lse=True)
        check_attention(out, lse, ref[0], ref[1], dtype, what=name)
        yield way, w, res


def check_agreement(results: dict, dtype, yardstick: str = "sm80"):
    """Every (o, lse) of results (name -> run() output) against the yardstick's: O within the
    dtype's bound, LSE -inf at the same rows and within LSE_ABS_TOL elsewhere."""
    from nvrtc_attn.reference import as_float_array

    o_ref, lse_ref = (as_float_array(x) for x in results[yardstick])
    xp = _xp(o_ref)
    live = xp.isfinite(lse_ref)
    for name, (o, lse) in results.items():
        o, lse = as_float_array(o), as_float_array(lse)
        rel = float(xp.linalg.norm(o - o_ref)) / max(float(xp.linalg.norm(o_ref)), 1e-30)
        assert rel <= REL_TOL[dtype], f"{name} vs {yardstick}: O rel error {rel:.3e}"
        assert bool(xp.array_equal(xp.isneginf(lse), xp.isneginf(lse_ref))), f"{name} vs {yardstick}: -inf LSE rows"
        if bool(live.any()):
            err = float(xp.abs(lse[live] - lse_ref[live]).max())
            assert err <= LSE_ABS_TOL, f"{name} vs {yardstick}: LSE abs error {err:.3e}"


def torch_graph(fn):
    """fn() run once as a warm-up on a side stream (kernel load, offset tables), then captured into a
    torch.cuda.CUDAGraph, which is returned (replay() runs fn's launches again)."""
    import torch

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        fn()
    torch.cuda.current_stream().wait_stream(side)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    return graph


def graph_buffers(batch_size: int, max_pages: int) -> dict:
    """FlashInfer's CUDA-graph index buffers (torch int32, zeros) for use_cuda_graph=True wrappers."""
    import torch

    def zeros(n):
        return torch.zeros(n, dtype=torch.int32, device="cuda")

    return dict(qo_indptr_buf=zeros(batch_size + 1), paged_kv_indptr_buf=zeros(batch_size + 1),
                paged_kv_indices_buf=zeros(max_pages), paged_kv_last_page_len_buf=zeros(batch_size))


# The backends a GPU test runs: sm90 only where it exists (a Hopper GPU), skipped cleanly elsewhere.
BACKENDS = ("sm80", pytest.param("sm90", marks=pytest.mark.hopper))


class Kit:
    """The helpers above as one fixture (`kit.make_pool(...)`), so tests need not import conftest."""

    make_page_table = staticmethod(make_page_table)
    poison_unowned_slots = staticmethod(poison_unowned_slots)
    make_pool = staticmethod(make_pool)
    randn = staticmethod(randn)
    empty = staticmethod(empty)
    to_device_ints = staticmethod(to_device_ints)
    workspace = staticmethod(workspace)
    make_wrapper = staticmethod(make_wrapper)
    poison = staticmethod(poison)
    poison_workspace = staticmethod(poison_workspace)
    bits_equal = staticmethod(bits_equal)
    synchronize = staticmethod(synchronize)
    Snapshot = Snapshot
    check_attention = staticmethod(check_attention)
    torch_graph = staticmethod(torch_graph)
    run_three_ways = staticmethod(run_three_ways)
    check_agreement = staticmethod(check_agreement)
    graph_buffers = staticmethod(graph_buffers)
    require_torch_cuda = staticmethod(require_torch_cuda)
    dtype_name = staticmethod(dtype_name)
    REL_TOL = REL_TOL


@pytest.fixture
def kit():
    return Kit


@pytest.fixture(name="poison")
def poison_fixture():
    return poison


@pytest.fixture(name="make_page_table")
def make_page_table_fixture():
    return make_page_table


@pytest.fixture(name="make_pool")
def make_pool_named_fixture():
    return make_pool
