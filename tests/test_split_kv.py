"""GPU: split-KV (issue 11) end to end. Batches whose tiles cannot fill the SMs (few queries over long
cached keys, up to 32k) run split: pieces write fp32 partial O and LSE to the float workspace,
merge_split.cu combines them. Every case runs split and unsplit (disable_split_kv=True), both
checked against the float32 reference and against each other, with outputs poisoned (NaN) and the
float workspace poisoned before every run (the merge must read only what this run's pieces wrote);
causal, windows, soft cap, LSE in both bases, v_scale, empty requests, and pieces that some rows
see no key of (small fixed_split_size). Then batch invariance with fixed_split_size (a request's
output bits alone and inside a larger batch) and CUDA-graph replay across re-plans with splits.
sm90 on a Hopper GPU (the sm80 backend plans without splits: checked to agree with the split run).
"""
from __future__ import annotations

import math
import zlib

import numpy as np
import pytest

pytestmark = [pytest.mark.gpu, pytest.mark.hopper]

LN2 = math.log(2.0)


def _torch():
    from conftest import require_torch_cuda

    require_torch_cuda()
    import torch

    return torch


def _ref(q, cache, index_args, layout="NHD", **kw):
    from nvrtc_attn.reference import paged_prefill_reference

    return paged_prefill_reference(q, cache, *index_args, kv_layout=layout, **kw)


def _as_float(x):
    from nvrtc_attn.reference import as_float_array

    return as_float_array(x)


def _what(w, name):
    p = w._plan
    return (f"{name}: kernel {w.kernel_name}, {p.num_tiles} tiles, {p.num_merges} split row tiles, "
            f"{p.num_pieces} piece tiles")


# (id, qo_lens, kv_lens, (Hqo, Hkv), head_dim, page_size, dtype, layout, causal, window, soft cap,
#  lse_base, v_scale, fixed_split_size or None, the split build expected (substring of kernel_name))
CASES = [
    ("w8", [128, 128], [16384, 16384], (32, 8), 128, 16, "bfloat16", "NHD", True, -1, None, "log2", None, None,
     "bn176_nopp_split"),
    ("32k_noncausal_ln_vscale", [64], [32768], (16, 2), 128, 64, "float16", "HND", False, -1, None, "ln", 1.7, None,
     "split"),
    ("hd64_softcap_empty_q", [100, 0, 50], [20000, 5000, 9000], (8, 8), 64, 16, "bfloat16", "NHD", True, -1, 30.0,
     "log2", None, None, "split"),
    ("hd256_window", [30, 7], [12000, 30000], (16, 4), 256, 16, "float16", "NHD", True, 5000, None, "log2", 0.5,
     None, "split"),
    ("gather_page5", [70], [25000], (32, 8), 128, 5, "bfloat16", "NHD", True, -1, None, "ln", None, None,
     "nopp_split"),
    # Without the causal mask a request may have queries and no keys (its rows: O = 0, LSE = -inf).
    ("empty_requests", [0, 64, 0, 5], [0, 20000, 300, 0], (32, 8), 128, 16, "bfloat16", "NHD", False, -1, None,
     "log2", None, None, "split"),
    # One-block pieces (fixed_split_size 1 page -> 128 or 176 keys): causal rows see only part of a
    # tile's range, so some pieces hold no key of some rows (LSE -inf there, weight 0 in the merge).
    ("fixed1_causal_empty_pieces", [256, 40], [1000, 3000], (8, 8), 128, 16, "bfloat16", "NHD", True, -1, None,
     "log2", 1.25, 1, "split"),
    ("fixed2_window_empty_pieces", [200], [2000], (8, 4), 128, 32, "float16", "HND", True, 300, 20.0, "ln", None, 2,
     "split"),
    ("fixed_noncausal_mixed", [3, 500, 1], [7000, 600, 40000], (32, 8), 128, 16, "bfloat16", "NHD", False, -1, None,
     "log2", None, 64, "split"),
]


def _run(kit, w, q, cache, out, lse, lse_base, v_scale, ws):
    kit.poison(out)
    kit.poison(lse)
    kit.poison_workspace(ws)
    w.run(q, cache, out=out, lse=lse, return_lse=True, lse_base=lse_base, v_scale=v_scale)
    kit.synchronize()
    lse2 = lse / LN2 if lse_base == "ln" else lse  # the reference's base 2
    return out, lse2


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_split_equals_unsplit_and_reference(kit, case):
    (name, qo, kv, (hq, hkv), d, ps, dtype, layout, causal, window, cap, lse_base, v_scale, fixed,
     expect) = case
    import nvrtc_attn

    fw = "torch" if dtype == "bfloat16" else "cupy"
    if fw == "torch":
        _torch()
    seed = zlib.crc32(name.encode())
    batch = kit.make_page_table(qo, kv, ps, seed)
    q = kit.randn(fw, (batch.total_q, hq, d), dtype, seed + 1)
    pool = kit.make_pool(fw, dtype, batch.max_pages, ps, hkv, d, kv_layout=layout, seed=seed + 2)
    cache = pool.layer(1)
    plan_kw = dict(causal=causal, window_left=window, logits_soft_cap=cap, q_data_type=dtype)
    ref_o, ref_lse = _ref(q, cache, batch.index_args(), layout, causal=causal, window_left=window,
                          logits_soft_cap=cap)
    scale = 1.0 if v_scale is None else v_scale
    q_snap, pool_snap = kit.Snapshot(q), kit.Snapshot(pool.buf)

    results = {}
    for mode in ("split", "unsplit", "sm80"):
        ws = kit.workspace(fw)
        w = nvrtc_attn.BatchPrefillWithPagedKVCacheWrapper(ws, layout, backend="sm80" if mode == "sm80" else "sm90")
        w.plan(*batch.index_args(), hq, hkv, d, ps, disable_split_kv=mode == "unsplit", fixed_split_size=fixed,
               **plan_kw)
        what = _what(w, f"{name} {mode}")
        if mode == "split":
            assert w._plan.num_merges > 0, f"{what}: expected a split plan"
            assert expect in w.kernel_name, f"{what}: expected a '{expect}' build"
        else:
            assert w._plan.num_merges == 0 and "split" not in w.kernel_name, f"{what}: expected no split"
        out = kit.empty(fw, (batch.total_q, hq, d), dtype)
        lse = kit.empty(fw, (batch.total_q, hq), "float32")
        o, l2 = _run(kit, w, q, cache, out, lse, lse_base, v_scale, ws)
        of = _as_float(o) / scale
        kit.check_attention(of, l2, ref_o, ref_lse, dtype, what=what)
        # A second run (another layer reusing the plan) after the workspace was poisoned again.
        out2 = kit.empty(fw, (batch.total_q, hq, d), dtype)
        lse_b = kit.empty(fw, (batch.total_q, hq), "float32")
        o2, _ = _run(kit, w, q, cache, out2, lse_b, lse_base, v_scale, ws)
        assert kit.bits_equal(o2, o), f"{what}: a second run gave other bits"
        results[mode] = (of, l2)
    assert q_snap.unchanged() and pool_snap.unchanged(), f"{name}: q or the KV pool was written"

    # Split against unsplit (and sm80) within the dtype's bound, LSE to LSE_ABS_TOL, same -inf rows.
    for other in ("unsplit", "sm80"):
        kit.check_attention(results["split"][0], results["split"][1], results[other][0], results[other][1], dtype,
                            what=f"{name}: split vs {other}")


def test_fixed_split_size_is_batch_invariant(kit):
    """fixed_split_size: a request's output (and LSE) bits are the same alone and inside a larger
    batch of short requests placed before and after it (other q rows, other pages, another build
    choice without the knob: the test checks that the automatic plans pick different kernels, so
    pinning the build matters)."""
    torch = _torch()
    import nvrtc_attn

    hq, hkv, d, ps = 32, 8, 128, 16
    target_q, target_kv = 40, 20000
    others_q = [200] * 12 + [150] * 12
    qo = others_q[:12] + [target_q] + others_q[12:]
    kv = [x + 50 for x in others_q[:12]] + [target_kv] + [x + 50 for x in others_q[12:]]
    big = kit.make_page_table(qo, kv, ps, 91, extra_pages=5)
    pool = kit.make_pool("torch", "bfloat16", big.max_pages, ps, hkv, d, seed=92)
    cache = pool.layer(0)
    q_big = kit.randn("torch", (big.total_q, hq, d), "bfloat16", 93)
    t = 12  # the target request
    q0, q1 = int(big.qo_indptr[t]), int(big.qo_indptr[t + 1])
    p0, p1 = int(big.paged_kv_indptr[t]), int(big.paged_kv_indptr[t + 1])
    alone_idx = (np.array([0, target_q], np.int32), np.array([0, p1 - p0], np.int32),
                 big.paged_kv_indices[p0:p1].copy(), big.paged_kv_last_page_len[t:t + 1].copy())
    q_alone = q_big[q0:q1].clone()

    names = {}
    outs = {}
    for fixed in (None, 64):
        for which, idx, q in (("alone", alone_idx, q_alone), ("batch", big.index_args(), q_big)):
            w = nvrtc_attn.BatchPrefillWithPagedKVCacheWrapper(kit.workspace("torch"), "NHD", backend="sm90")
            w.plan(*idx, hq, hkv, d, ps, causal=True, q_data_type="bfloat16", fixed_split_size=fixed)
            names[fixed, which] = w.kernel_name
            o, lse = w.run(q, cache, return_lse=True)
            kit.synchronize()
            outs[fixed, which] = (o, lse)
            if fixed is not None:
                assert w._plan.num_merges > 0, _what(w, f"fixed {which}")
    assert names[None, "alone"] != names[None, "batch"], \
        f"the automatic plans chose one kernel ({names[None, 'alone']}): this test would not show the pin"
    assert names[64, "alone"] == names[64, "batch"], f"fixed_split_size: kernels differ: {names}"
    o_a, l_a = outs[64, "alone"]
    o_b, l_b = outs[64, "batch"]
    assert torch.equal(o_a.view(torch.int16), o_b[q0:q1].view(torch.int16)), "fixed_split_size: O bits differ"
    assert torch.equal(l_a.view(torch.int32), l_b[q0:q1].view(torch.int32)), "fixed_split_size: LSE bits differ"
    ref_o, ref_lse = _ref(q_alone, cache, alone_idx, causal=True)
    kit.check_attention(o_a, l_a, ref_o, ref_lse, "bfloat16", what="fixed_split_size, alone")
    ref_o, ref_lse = _ref(q_big, cache, big.index_args(), causal=True)
    kit.check_attention(o_b, l_b, ref_o, ref_lse, "bfloat16", what="fixed_split_size, batch")


def test_cuda_graph_replay_with_splits(kit):
    """use_cuda_graph=True with splits: capture run() once (prefill + merge launch), then re-plan
    batches of the same size that split automatically, split by fixed_split_size, do not split, or
    disable splits, and replay; each replay matches the reference. The captured merge reads its
    counts from the plan buffer, so it does nothing where nothing is split."""
    torch = _torch()
    import nvrtc_attn

    bs, hq, hkv, d, ps = 2, 16, 4, 128, 16
    max_pages = 2600
    pool = kit.make_pool("torch", "bfloat16", max_pages, ps, hkv, d, seed=101)
    cache = pool.layer(2)
    bufs = kit.graph_buffers(bs, max_pages)
    ws = kit.workspace("torch")
    w = nvrtc_attn.BatchPrefillWithPagedKVCacheWrapper(ws, "NHD", True, backend="sm90", **bufs)
    first = kit.make_page_table([300, 200], [400, 200], ps, 102, extra_pages=0)  # short: no split
    plan_kw = dict(causal=True, q_data_type="bfloat16")
    w.plan(*first.index_args(), hq, hkv, d, ps, **plan_kw)
    assert "split" in w.kernel_name, f"graph mode must pin a split-KV build, got {w.kernel_name}"
    t_max = first.total_q
    q = kit.randn("torch", (t_max, hq, d), "bfloat16", 103)
    out = torch.empty(t_max, hq, d, dtype=torch.bfloat16, device="cuda")
    lse = torch.empty(t_max, hq, dtype=torch.float32, device="cuda")
    graph = kit.torch_graph(lambda: w.run(q, cache, out=out, lse=lse, return_lse=True))

    replans = [("auto split", [64, 64], [16000, 12000], {}, True),
               ("no split", [250, 250], [250, 700], {}, False),
               ("fixed_split_size", [100, 3], [5000, 9000], {"fixed_split_size": 32}, True),
               ("mixed", [300, 1], [300, 20000], {}, None),
               ("disabled", [64, 64], [16000, 12000], {"disable_split_kv": True}, False),
               ("auto split again", [10, 90], [20000, 3000], {}, True)]
    for rep, (name, qo, kv, extra, splits) in enumerate(replans):
        batch = kit.make_page_table(qo, kv, ps, 110 + rep, extra_pages=0)
        assert batch.max_pages <= max_pages and batch.total_q <= t_max
        shift = int(np.random.default_rng(rep).integers(0, max_pages - batch.max_pages + 1))
        indices = batch.paged_kv_indices + shift
        w.plan(batch.qo_indptr, batch.paged_kv_indptr, indices, batch.paged_kv_last_page_len, hq, hkv, d, ps,
               **plan_kw, **extra)
        what = _what(w, f"replay {rep} ({name})")
        if splits is not None:
            assert (w._plan.num_merges > 0) == splits, f"{what}: split expected {splits}"
        n = batch.total_q
        q[:n].copy_(kit.randn("torch", (n, hq, d), "bfloat16", 120 + rep))
        kit.poison(out)
        kit.poison(lse)
        kit.poison_workspace(ws)
        graph.replay()
        torch.cuda.synchronize()
        ref_o, ref_lse = _ref(q[:n], cache, (batch.qo_indptr, batch.paged_kv_indptr, indices,
                                             batch.paged_kv_last_page_len), causal=True)
        kit.check_attention(out[:n], lse[:n], ref_o, ref_lse, "bfloat16", what=what)
