"""GPU: the public API against the float32 reference, over a pairwise grid of features.

Every case draws fresh random data (seeded per case), poisons the outputs with NaN, checks
o (and lse) against nvrtc_attn.reference, and checks that the KV pool and q are bit-identical
afterwards. Backends: "sm80" always, "sm90" on a Hopper GPU (the `hopper` marker skips it elsewhere).
"""

from __future__ import annotations

import math
import zlib

import numpy as np
import pytest
from conftest import BACKENDS, GRID_SHAPE_FACTORS, grid_case_valid, grid_lengths, pairwise_cases  # sm90: `hopper`

pytestmark = pytest.mark.gpu

# --------------------------------------------------------------------------------------------
# The grid: every pair of factor values appears in at least one case (greedy all-pairs), instead
# of the full cartesian product (~10^6 cases). Constraints: bf16 data only through torch tensors;
# qo_len > kv_len only without the causal mask.

FACTORS = {
    **GRID_SHAPE_FACTORS,
    "q": ("contig", "packed"),
    "dtype": ("float16", "bfloat16"),
    "fw": ("cupy", "torch"),
    "lens": ("lt", "eq", "gt", "mixed"),
    "extra": ("none", "softcap", "window", "scale"),
    "lse": (False, True),
    "out": ("none", "given", "strided"),
    "idx": ("host", "device"),
    "plan_cache": (False, True),
}


def _case_id(c: dict) -> str:
    parts = [f"ps{c['ps']}", f"hd{c['hd']}", f"g{c['g']}", "causal" if c["causal"] else "full",
             c["layout"], c["cache"], f"q{c['q']}", "bf16" if c["dtype"] == "bfloat16" else "fp16",
             c["fw"], c["lens"], c["extra"], "lse" if c["lse"] else "nolse", f"out{c['out']}",
             f"idx{c['idx']}", "plancache" if c["plan_cache"] else "lazycache"]
    return "-".join(parts)


CASES = pairwise_cases(FACTORS, grid_case_valid)


def _seed(*parts) -> int:
    return zlib.crc32(repr(parts).encode()) & 0x7FFFFFFF


# --------------------------------------------------------------------------------------------
# Building inputs


def _heads(g: int):
    num_kv_heads = 1 if g == 8 else 2
    return num_kv_heads * g, num_kv_heads


def _make_q(kit, fw, dtype, kind, total_q, hqo, hkv, d, seed, scale=1.0):
    """(q, base buffer): q contiguous, or a [T, Hqo, D] view into a [T, (Hqo + 2 Hkv) * D] QKV."""
    if kind == "contig":
        q = kit.randn(fw, (total_q, hqo, d), dtype, seed, scale)
        return q, q
    qkv = kit.randn(fw, (total_q, (hqo + 2 * hkv) * d), dtype, seed, scale)
    if fw == "torch":
        q = qkv[:, : hqo * d].view(total_q, hqo, d)
    else:
        q = qkv[:, : hqo * d].reshape(total_q, hqo, d)
        assert q.data.ptr == qkv.data.ptr and q.strides[0] == qkv.strides[0], "reshape copied"
    return q, qkv


def _make_cache(kit, fw, dtype, kind, layout, max_pages, ps, hkv, d, seed):
    """(paged_kv_cache as given to the API, list of contiguous base buffers to snapshot)."""
    page_shape = (ps, hkv, d) if layout == "NHD" else (hkv, ps, d)
    if kind == "tuple":
        k = kit.randn(fw, (max_pages,) + page_shape, dtype, seed)
        v = kit.randn(fw, (max_pages,) + page_shape, dtype, seed + 1)
        return (k, v), [k, v]
    if kind == "5d":
        kv = kit.randn(fw, (max_pages, 2) + page_shape, dtype, seed)
        return kv, [kv]
    if kind == "pool":
        pool = kit.make_pool(fw, dtype, max_pages, ps, hkv, d, num_layers=3, kv_layout=layout,
                             seed=seed)
        return pool.layer(1), [pool.buf]
    if kind == "kvdiff":  # K: a pool view; V: its own buffer with head_dim padded by 16
        pool = kit.make_pool(fw, dtype, max_pages, ps, hkv, d, num_layers=3, kv_layout=layout,
                             seed=seed)
        vbuf = kit.randn(fw, (max_pages,) + page_shape[:-1] + (d + 16,), dtype, seed + 1)
        return (pool.layer(2)[0], vbuf[..., :d]), [pool.buf, vbuf]
    raise AssertionError(kind)


def _make_out(kit, fw, dtype, kind, total_q, hqo, d):
    if kind == "none":
        return None
    if kind == "given":
        return kit.poison(kit.empty(fw, (total_q, hqo, d), dtype))
    # strided: rows of a wider buffer (token stride Hqo * D + 64 elements)
    buf = kit.poison(kit.empty(fw, (total_q, hqo * d + 64), dtype))
    if fw == "torch":
        return buf[:, : hqo * d].view(total_q, hqo, d)
    out = buf[:, : hqo * d].reshape(total_q, hqo, d)
    assert out.data.ptr == buf.data.ptr
    return out


def _ptr(x) -> int:
    return x.data_ptr() if type(x).__module__.startswith("torch") else x.data.ptr


def _is_torch(x) -> bool:
    return type(x).__module__.startswith("torch")


def _make_wrapper(kit, fw, kv_layout, backend):
    return kit.make_wrapper(fw, kv_layout, backend)


def _plan(wrapper, backend, *args, **kwargs):
    """plan() on either backend: both support every case of these tests (sm90 runs only where the
    `hopper` marker lets it, so nothing here is skipped on purpose)."""
    wrapper.plan(*args, **kwargs)


def _index_args(kit, batch, kind, fw):
    args = batch.index_args()
    if kind == "device":
        return tuple(kit.to_device_ints(fw, a) for a in args)
    return args


# --------------------------------------------------------------------------------------------
# One case end to end


def _run_case(kit, c: dict, backend: str, seed: int):
    from nvrtc_attn.reference import paged_prefill_reference

    fw, dtype = c["fw"], c["dtype"]
    if fw == "torch":
        kit.require_torch_cuda()
    rng = np.random.default_rng(seed)
    hqo, hkv = _heads(c["g"])
    d, ps, layout = c["hd"], c["ps"], c["layout"]
    qo, kv = grid_lengths(c["lens"], c["causal"], rng)
    batch = kit.make_page_table(qo, kv, ps, seed)
    t = batch.total_q

    sm_scale = None
    window_left = -1
    soft_cap = None
    q_scale = 1.0
    if c["extra"] == "softcap":
        soft_cap, q_scale = 5.0, 3.0  # large logits so the cap actually bends them
    elif c["extra"] == "window":
        window_left = int(rng.integers(3, 40))
    elif c["extra"] == "scale":
        sm_scale = float(rng.uniform(0.5, 2.0)) / math.sqrt(d)

    q, q_base = _make_q(kit, fw, dtype, c["q"], t, hqo, hkv, d, seed + 11, q_scale)
    cache, bases = _make_cache(kit, fw, dtype, c["cache"], layout, batch.max_pages, ps, hkv, d,
                               seed + 23)
    out = _make_out(kit, fw, dtype, c["out"], t, hqo, d)
    lse = None
    if c["out"] != "none" and c["lse"]:
        lse = kit.poison(kit.empty(fw, (t, hqo), "float32"))

    snaps = [kit.Snapshot(b) for b in bases + [q_base]]
    wrapper = _make_wrapper(kit, fw, layout, backend)
    plan_kwargs = dict(causal=c["causal"], sm_scale=sm_scale, window_left=window_left,
                       logits_soft_cap=soft_cap, q_data_type=dtype, kv_data_type=dtype)
    if c["plan_cache"]:
        plan_kwargs["paged_kv_cache"] = cache
    _plan(wrapper, backend, *_index_args(kit, batch, c["idx"], fw), hqo, hkv, d, ps, **plan_kwargs)
    res = wrapper.run(q, cache, out=out, lse=lse, return_lse=c["lse"])
    o, o_lse = res if c["lse"] else (res, None)

    assert _is_torch(o) == (fw == "torch"), f"result type {type(o)} for {fw} input"
    assert tuple(o.shape) == (t, hqo, d)
    assert kit.dtype_name(o) == dtype
    if out is not None:
        assert _ptr(o) == _ptr(out), "run() must return the given out"
    if o_lse is not None:
        assert _is_torch(o_lse) == (fw == "torch")
        assert tuple(o_lse.shape) == (t, hqo) and kit.dtype_name(o_lse) == "float32"
        if lse is not None:
            assert _ptr(o_lse) == _ptr(lse), "run() must return the given lse"

    ref_o, ref_lse = paged_prefill_reference(
        q, cache, *batch.index_args(), kv_layout=layout, causal=c["causal"], sm_scale=sm_scale,
        window_left=window_left, logits_soft_cap=soft_cap)
    kit.check_attention(o, o_lse, ref_o, ref_lse, dtype, what=f"{backend}")
    for s in snaps:
        assert s.unchanged(), "run() modified the KV cache or q"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_grid(kit, case, backend):
    _run_case(kit, case, backend, _seed(_case_id(case), backend))


# --------------------------------------------------------------------------------------------
# Targeted cases


def _fw_for(dtype):
    return "torch" if dtype == "bfloat16" else "cupy"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
def test_empty_requests(kit, backend, causal):
    """qo_len 0 requests, kv_len 0 requests with zero pages (o = 0, lse = -inf)."""
    from nvrtc_attn.reference import paged_prefill_reference

    if causal:
        qo, kv = [0, 0, 33, 5, 0, 20], [0, 40, 60, 5, 17, 20]
    else:
        qo, kv = [0, 7, 0, 33, 5, 20], [0, 0, 40, 60, 0, 3]
    seed = _seed("empty", backend, causal)
    batch = kit.make_page_table(qo, kv, 16, seed)
    hqo, hkv, d = 4, 1, 128
    q = kit.randn("cupy", (batch.total_q, hqo, d), "float16", seed)
    pool = kit.make_pool("cupy", "float16", batch.max_pages, 16, hkv, d, seed=seed + 1)
    cache = pool.layer(0)
    snap = kit.Snapshot(pool.buf)
    out = kit.poison(kit.empty("cupy", (batch.total_q, hqo, d), "float16"))
    lse = kit.poison(kit.empty("cupy", (batch.total_q, hqo), "float32"))
    w = _make_wrapper(kit, "cupy", "NHD", backend)
    _plan(w, backend, *batch.index_args(), hqo, hkv, d, 16, causal=causal)
    o, o_lse = w.run(q, cache, out=out, lse=lse, return_lse=True)
    ref_o, ref_lse = paged_prefill_reference(q, cache, *batch.index_args(), causal=causal)
    if not causal:
        assert bool(np.isneginf(ref_lse.get()).any())  # the kv_len 0 rows
    kit.check_attention(o, o_lse, ref_o, ref_lse, "float16", what=backend)
    assert snap.unchanged()


@pytest.mark.parametrize("backend", BACKENDS)
def test_no_query_tokens(kit, backend):
    """A batch whose requests all have qo_len 0 runs and returns empty outputs."""
    batch = kit.make_page_table([0, 0], [16, 0], 16, 5)
    hqo, hkv, d = 4, 2, 64
    q = kit.randn("cupy", (0, hqo, d), "float16", 1)
    pool = kit.make_pool("cupy", "float16", batch.max_pages, 16, hkv, d, seed=2)
    w = _make_wrapper(kit, "cupy", "NHD", backend)
    _plan(w, backend, *batch.index_args(), hqo, hkv, d, 16)
    o, lse = w.run(q, pool.layer(0), return_lse=True)
    assert tuple(o.shape) == (0, hqo, d) and tuple(lse.shape) == (0, hqo)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_layers_one_plan(kit, backend, dtype):
    """Plan once, run every layer of one pool; each layer is checked on its own."""
    from nvrtc_attn.reference import paged_prefill_reference

    fw = _fw_for(dtype)
    if fw == "torch":
        kit.require_torch_cuda()
    seed = _seed("layers", backend, dtype)
    rng = np.random.default_rng(seed)
    qo = rng.integers(20, 120, 3)
    kv = qo + rng.integers(0, 100, 3)
    batch = kit.make_page_table(qo, kv, 16, seed)
    hqo, hkv, d = 8, 2, 128
    pool = kit.make_pool(fw, dtype, batch.max_pages, 16, hkv, d, num_layers=4, seed=seed + 1)
    snap = kit.Snapshot(pool.buf)
    w = _make_wrapper(kit, fw, "NHD", backend)
    _plan(w, backend, *batch.index_args(), hqo, hkv, d, 16, causal=True, q_data_type=dtype)
    out = kit.empty(fw, (batch.total_q, hqo, d), dtype)
    for layer in range(4):
        q = kit.randn(fw, (batch.total_q, hqo, d), dtype, seed + 100 + layer)
        kit.poison(out)
        o = w.run(q, pool.layer(layer), out=out)
        ref_o, ref_lse = paged_prefill_reference(q, pool.layer(layer), *batch.index_args(),
                                                 causal=True)
        kit.check_attention(o, None, ref_o, ref_lse, dtype, what=f"{backend} layer {layer}")
    assert snap.unchanged()


@pytest.mark.parametrize("backend", BACKENDS)
def test_cuda_graph_cupy(kit, backend):
    """run() captured in a CuPy graph, replayed on new q data written into the same buffer."""
    import cupy

    from nvrtc_attn.reference import paged_prefill_reference

    seed = _seed("graph-cupy", backend)
    batch = kit.make_page_table([37, 90], [100, 90], 5, seed)
    hqo, hkv, d = 8, 2, 64
    pool = kit.make_pool("cupy", "float16", batch.max_pages, 5, hkv, d, seed=seed)
    cache = pool.layer(3)
    q = kit.randn("cupy", (batch.total_q, hqo, d), "float16", seed + 1)
    out = kit.empty("cupy", (batch.total_q, hqo, d), "float16")
    lse = kit.empty("cupy", (batch.total_q, hqo), "float32")
    w = _make_wrapper(kit, "cupy", "NHD", backend)
    _plan(w, backend, *batch.index_args(), hqo, hkv, d, 5, causal=True)
    # The inputs and plan()'s upload were made on the default stream, which a non-blocking stream
    # does not wait for (FlashInfer's contract: the caller orders plan() before run()).
    kit.synchronize()
    stream = cupy.cuda.Stream(non_blocking=True)
    with stream:
        w.run(q, cache, out=out, lse=lse, return_lse=True)  # warm-up: kernel load, offsets
        stream.synchronize()
        stream.begin_capture()
        w.run(q, cache, out=out, lse=lse, return_lse=True)
        graph = stream.end_capture()
    for rep in range(2):
        with stream:
            q[...] = kit.randn("cupy", q.shape, "float16", seed + 10 + rep)
            kit.poison(out)
            kit.poison(lse)
            graph.launch(stream)
        stream.synchronize()
        ref_o, ref_lse = paged_prefill_reference(q, cache, *batch.index_args(), causal=True)
        kit.check_attention(out, lse, ref_o, ref_lse, "float16", what=f"{backend} replay {rep}")


@pytest.mark.parametrize("backend", BACKENDS)
def test_cuda_graph_torch(kit, backend):
    """run() captured with torch.cuda.graph, replayed on new bf16 q data."""
    kit.require_torch_cuda()
    import torch

    from nvrtc_attn.reference import paged_prefill_reference

    seed = _seed("graph-torch", backend)
    batch = kit.make_page_table([64, 17, 120], [64, 200, 150], 16, seed)
    hqo, hkv, d = 8, 1, 128
    pool = kit.make_pool("torch", "bfloat16", batch.max_pages, 16, hkv, d, seed=seed)
    cache = pool.layer(1)
    q = kit.randn("torch", (batch.total_q, hqo, d), "bfloat16", seed + 1)
    out = kit.empty("torch", (batch.total_q, hqo, d), "bfloat16")
    lse = kit.empty("torch", (batch.total_q, hqo), "float32")
    w = _make_wrapper(kit, "torch", "NHD", backend)
    _plan(w, backend, *batch.index_args(), hqo, hkv, d, 16, causal=True, q_data_type="bfloat16",
          paged_kv_cache=cache)
    graph = kit.torch_graph(lambda: w.run(q, cache, out=out, lse=lse, return_lse=True))
    for rep in range(2):
        q.copy_(kit.randn("torch", q.shape, "bfloat16", seed + 10 + rep))
        kit.poison(out)
        kit.poison(lse)
        graph.replay()
        torch.cuda.synchronize()
        ref_o, ref_lse = paged_prefill_reference(q, cache, *batch.index_args(), causal=True)
        kit.check_attention(out, lse, ref_o, ref_lse, "bfloat16", what=f"{backend} replay {rep}")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("fw", ["cupy", "torch"])
def test_explicit_out_and_lse(kit, backend, fw):
    """Given out= and lse= are filled (poison gone) and returned as the same arrays."""
    from nvrtc_attn.reference import paged_prefill_reference

    if fw == "torch":
        kit.require_torch_cuda()
    seed = _seed("out", backend, fw)
    batch = kit.make_page_table([50, 3], [80, 40], 64, seed)
    hqo, hkv, d = 4, 4, 256
    q = kit.randn(fw, (batch.total_q, hqo, d), "float16", seed)
    pool = kit.make_pool(fw, "float16", batch.max_pages, 64, hkv, d, kv_layout="HND", seed=seed)
    snap = kit.Snapshot(pool.buf)
    out = kit.poison(kit.empty(fw, (batch.total_q, hqo, d), "float16"))
    lse = kit.poison(kit.empty(fw, (batch.total_q, hqo), "float32"))
    w = _make_wrapper(kit, fw, "HND", backend)
    _plan(w, backend, *batch.index_args(), hqo, hkv, d, 64, causal=False)
    o, o_lse = w.run(q, pool.layer(0), out=out, lse=lse, return_lse=True)
    assert o is out or _ptr(o) == _ptr(out)
    assert o_lse is lse or _ptr(o_lse) == _ptr(lse)
    ref_o, ref_lse = paged_prefill_reference(q, pool.layer(0), *batch.index_args(),
                                             kv_layout="HND")
    kit.check_attention(out, lse, ref_o, ref_lse, "float16", what=backend)
    assert snap.unchanged()


# --------------------------------------------------------------------------------------------
# Hopper path against the portable path on the same inputs

CROSS = [
    dict(ps=16, hd=128, g=4, causal=True, dtype="bfloat16", lens=([300, 64], [300, 500]),
         layout="NHD", window=-1, cap=None),
    dict(ps=5, hd=64, g=1, causal=False, dtype="float16", lens=([90, 200], [40, 130]),
         layout="HND", window=-1, cap=8.0),
    dict(ps=1, hd=256, g=8, causal=True, dtype="bfloat16", lens=([130, 7], [260, 7]),
         layout="NHD", window=45, cap=None),
    dict(ps=64, hd=128, g=8, causal=False, dtype="float16", lens=([0, 100, 33], [10, 300, 0]),
         layout="HND", window=-1, cap=None),
    # long tiles loaded by TMA: the 176-key build, soft cap, an empty request
    dict(ps=16, hd=128, g=2, causal=False, dtype="bfloat16", lens=([70, 0, 200], [1300, 5, 1700]),
         layout="NHD", window=-1, cap=30.0),
]


@pytest.mark.parametrize("c", CROSS, ids=[f"ps{c['ps']}-hd{c['hd']}-g{c['g']}" for c in CROSS])
@pytest.mark.hopper
def test_sm90_matches_sm80(kit, c):
    from nvrtc_attn.reference import as_float_array, paged_prefill_reference

    dtype = c["dtype"]
    fw = _fw_for(dtype)
    if fw == "torch":
        kit.require_torch_cuda()
    seed = _seed("cross", c["ps"], c["hd"], c["g"])
    batch = kit.make_page_table(*c["lens"], c["ps"], seed)
    hkv = 1 if c["g"] == 8 else 2
    hqo, d = hkv * c["g"], c["hd"]
    q = kit.randn(fw, (batch.total_q, hqo, d), dtype, seed)
    pool = kit.make_pool(fw, dtype, batch.max_pages, c["ps"], hkv, d, kv_layout=c["layout"],
                         seed=seed + 1)
    cache = pool.layer(2)
    kw = dict(causal=c["causal"], window_left=c["window"], logits_soft_cap=c["cap"],
              q_data_type=dtype)
    results = {}
    for backend in ("sm90", "sm80"):
        w = _make_wrapper(kit, fw, c["layout"], backend)
        _plan(w, backend, *batch.index_args(), hqo, hkv, d, c["ps"], **kw)
        out = kit.poison(kit.empty(fw, (batch.total_q, hqo, d), dtype))
        results[backend] = w.run(q, cache, out=out, return_lse=True)
    ref_o, ref_lse = paged_prefill_reference(
        q, cache, *batch.index_args(), kv_layout=c["layout"], causal=c["causal"],
        window_left=c["window"], logits_soft_cap=c["cap"])
    for backend, (o, lse) in results.items():
        kit.check_attention(o, lse, ref_o, ref_lse, dtype, what=backend)
    # The two paths against each other, with the sm80 output as the yardstick.
    o90, lse90 = (as_float_array(x) for x in results["sm90"])
    o80, lse80 = (as_float_array(x) for x in results["sm80"])
    import cupy

    xp = cupy.get_array_module(o80)
    rel = float(xp.linalg.norm(o90 - o80)) / max(float(xp.linalg.norm(o80)), 1e-30)
    assert rel <= kit.REL_TOL[dtype], f"sm90 vs sm80 rel error {rel:.3e}"
    assert bool(xp.array_equal(xp.isneginf(lse90), xp.isneginf(lse80)))
    live = xp.isfinite(lse80)
    if bool(live.any()):
        assert float(xp.abs(lse90[live] - lse80[live]).max()) <= 1e-2


# --------------------------------------------------------------------------------------------
# Functional API


@pytest.mark.parametrize("fw", ["cupy", "torch"])
@pytest.mark.parametrize("return_lse", [False, True])
def test_functional_api(kit, fw, return_lse):
    import nvrtc_attn
    from nvrtc_attn.reference import paged_prefill_reference

    dtype = "bfloat16" if fw == "torch" else "float16"
    if fw == "torch":
        kit.require_torch_cuda()
    seed = _seed("functional", fw, return_lse)
    batch = kit.make_page_table([40, 0, 77], [90, 12, 77], 16, seed)
    hqo, hkv, d = 8, 2, 128
    q = kit.randn(fw, (batch.total_q, hqo, d), dtype, seed)
    pool = kit.make_pool(fw, dtype, batch.max_pages, 16, hkv, d, seed=seed + 1)
    snap = kit.Snapshot(pool.buf)
    res = nvrtc_attn.paged_prefill(q, pool.layer(1), *_index_args(kit, batch, "device", fw),
                                   causal=True, return_lse=return_lse)
    o, lse = res if return_lse else (res, None)
    assert _is_torch(o) == (fw == "torch")
    ref_o, ref_lse = paged_prefill_reference(q, pool.layer(1), *batch.index_args(), causal=True)
    kit.check_attention(o, lse, ref_o, ref_lse, dtype, what="paged_prefill")
    assert snap.unchanged()
