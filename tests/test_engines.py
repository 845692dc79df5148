"""GPU: the wrapper as serving engines drive it (issue 8). vLLM's and SGLang's FlashInfer call
sequences reproduced as their backends make them (vllm/v1/attention/backends/flashinfer.py,
sglang/srt/layers/attention/flashinfer_backend.py), FlashInfer's CUDA-graph contract (capture once,
replay after re-plans), JAX arrays in and out, run-time scales, and the float workspace shared with
other wrappers. Every output is poisoned first and compared with the float32 reference.
"""
from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.gpu

REPO = Path(__file__).resolve().parent.parent


def _torch():
    from conftest import require_torch_cuda

    require_torch_cuda()
    import torch

    return torch


def _ref(q, cache, qo_indptr, kv_indptr, kv_indices, last, **kw):
    from nvrtc_attn.reference import paged_prefill_reference

    return paged_prefill_reference(q, cache, qo_indptr, kv_indptr, kv_indices, last, **kw)


# --------------------------------------------------------------------------------------------
# vLLM


def _vllm_batch(torch, rng, page_size, decodes, prefills):
    """vLLM's step: decodes first (q_len 1), then prefills; the page table of ALL requests."""
    q_lens = [1] * decodes + [int(x) for x in rng.integers(20, 300, prefills)]
    seq_lens = [int(q + rng.integers(0, 400)) for q in q_lens]
    n_blocks = [-(-s // page_size) for s in seq_lens]
    num_blocks = sum(n_blocks) + 7
    blocks = rng.permutation(num_blocks)[: sum(n_blocks)].astype(np.int32)
    indptr = np.zeros(len(q_lens) + 1, np.int32)
    np.cumsum(n_blocks, out=indptr[1:])
    last = np.array([s % page_size or page_size for s in seq_lens], np.int32)
    return dict(q_lens=q_lens, seq_lens=seq_lens, num_blocks=num_blocks, blocks=blocks, indptr=indptr, last=last)


@pytest.mark.parametrize("layout", ["NHD", "HND"])
@pytest.mark.parametrize("form", ["positional", "keywords"])
def test_vllm_call_sequence(kit, layout, form):
    torch = _torch()
    import nvrtc_attn

    rng = np.random.default_rng(11 if layout == "NHD" else 12)
    hq, hkv, d, ps, nd, n_layers = 16, 4, 128, 16, 3, 2
    b = _vllm_batch(torch, rng, ps, nd, 4)
    ws = torch.zeros(256 << 20, dtype=torch.uint8, device="cuda")
    w = nvrtc_attn.BatchPrefillWithPagedKVCacheWrapper(ws, layout) if form == "positional" else \
        nvrtc_attn.BatchPrefillWithPagedKVCacheWrapper(ws, layout, backend="auto")
    # One cache per layer with vLLM's logical shape [blocks, 2, block_size, Hkv, D]; HND is a
    # permuted view of a [blocks, 2, Hkv, block_size, D] allocation.
    caches = []
    for layer in range(n_layers):
        if layout == "NHD":
            caches.append(kit.randn("torch", (b["num_blocks"], 2, ps, hkv, d), "bfloat16", 100 + layer))
        else:
            raw = kit.randn("torch", (b["num_blocks"], 2, hkv, ps, d), "bfloat16", 100 + layer)
            caches.append(raw.permute(0, 1, 3, 2, 4))
    stride_order = (0, 1, 2, 3, 4) if layout == "NHD" else (0, 1, 3, 2, 4)

    q_start = np.concatenate(([0], np.cumsum(b["q_lens"]))).astype(np.int32)
    query_start_loc_cpu = torch.from_numpy(q_start)
    paged_kv_indptr_cpu = torch.from_numpy(b["indptr"].copy()).pin_memory()
    last_cpu = torch.from_numpy(b["last"].copy()).pin_memory()
    paged_kv_indices = torch.from_numpy(b["blocks"]).cuda()  # every request, decodes included
    qo_indptr_cpu = query_start_loc_cpu[nd:] - query_start_loc_cpu[nd]  # rebased to 0
    kv_indptr_prefill = paged_kv_indptr_cpu[nd:]                       # NOT rebased: starts past 0
    assert int(kv_indptr_prefill[0]) > 0
    sm_scale = 1.0 / math.sqrt(d)
    if form == "positional":
        w.plan(qo_indptr_cpu, kv_indptr_prefill, paged_kv_indices, last_cpu[nd:], hq, hkv, d, ps,
               causal=True, sm_scale=sm_scale, window_left=-1, logits_soft_cap=None,
               q_data_type=torch.bfloat16, kv_data_type=torch.bfloat16, fixed_split_size=-1,
               disable_split_kv=False)
    else:
        w.plan(qo_indptr=qo_indptr_cpu, paged_kv_indptr=kv_indptr_prefill, paged_kv_indices=paged_kv_indices,
               paged_kv_last_page_len=last_cpu[nd:], num_qo_heads=hq, num_kv_heads=hkv, head_dim_qk=d,
               page_size=ps, causal=True, sm_scale=sm_scale, window_left=-1, logits_soft_cap=None,
               q_data_type=torch.bfloat16, kv_data_type=torch.bfloat16, o_data_type=torch.bfloat16,
               fixed_split_size=-1, disable_split_kv=False)
    # vLLM's asserts, then its next step refills the pinned buffers while this plan is in use.
    assert w._causal
    assert w._window_left == -1
    assert w._logits_soft_cap == (None or 0.0)
    assert w._sm_scale == sm_scale
    paged_kv_indptr_cpu.fill_(0)
    last_cpu.fill_(1)

    t_all = int(q_start[-1])
    nd_tokens = int(q_start[nd])
    # Prefill rows of the shared reference: the prefill requests' own page table, rebased.
    p_indptr = b["indptr"][nd:] - b["indptr"][nd]
    p_indices = b["blocks"][b["indptr"][nd]:]
    p_q = q_start[nd:] - q_start[nd]
    for layer in range(n_layers):
        qkv = kit.randn("torch", (t_all + 5, (hq + 2 * hkv) * d), "bfloat16", 200 + layer)
        query = qkv[:, : hq * d].view(-1, hq, d)[:t_all]   # non-contiguous, as after qkv.split
        output = kit.poison(torch.empty(t_all + 5, hq * d, dtype=torch.bfloat16, device="cuda")).view(-1, hq, d)[:t_all]
        ws.random_(0, 255)  # another wrapper (decode) ran with this workspace as scratch
        kv_cache_permute = caches[layer].permute(*stride_order)
        w.run(query[nd_tokens:], kv_cache_permute, k_scale=1.0, v_scale=1.0, out=output[nd_tokens:])
        assert bool(torch.isnan(output[:nd_tokens]).all()), "decode rows were written"
        k = caches[layer][:, 0]
        v = caches[layer][:, 1]
        if layout == "HND":
            k, v = k.permute(0, 2, 1, 3), v.permute(0, 2, 1, 3)
        ref_o, ref_lse = _ref(query[nd_tokens:], (k, v), p_q, p_indptr, p_indices, b["last"][nd:],
                              kv_layout=layout, causal=True, sm_scale=sm_scale)
        kit.check_attention(output[nd_tokens:], None, ref_o, ref_lse, "bfloat16", what=f"vllm layer {layer}")


# --------------------------------------------------------------------------------------------
# SGLang


def _sglang_pool(kit, torch, slots, hkv, d, seed):
    """SGLang's per-layer token pools: two contiguous [slots + 1, Hkv, D] buffers (slot 0 unused)."""
    return (kit.randn("torch", (slots + 1, hkv, d), "bfloat16", seed),
            kit.randn("torch", (slots + 1, hkv, d), "bfloat16", seed + 1))


def _sglang_indices(torch, rng, kv_lens, slots):
    perm = rng.permutation(np.arange(1, slots + 1))[: sum(kv_lens)].astype(np.int32)
    kv_indices = torch.empty(sum(kv_lens) + 256, dtype=torch.int32, device="cuda")  # tail: slack garbage
    kv_indices[: len(perm)] = torch.from_numpy(perm).cuda()
    indptr = torch.zeros(64, dtype=torch.int32, device="cuda")
    indptr[1: len(kv_lens) + 1] = torch.cumsum(torch.tensor(kv_lens, dtype=torch.int32, device="cuda"), 0)
    return indptr[: len(kv_lens) + 1], kv_indices, perm


def test_sglang_ragged_prefix_sequence(kit):
    """Default extend path: the paged wrapper holds only each request's cached prefix (one has none),
    planned with no causal/sm_scale; forward_return_lse(causal=False) gives FlashInfer's base-2 LSE
    (merge_state's input) and, for the prefix-less request, o = 0 and lse = -inf."""
    torch = _torch()
    import nvrtc_attn

    rng = np.random.default_rng(21)
    hq, hkv, d, slots = 8, 2, 128, 3000
    extend = [37, 5, 128, 64]
    prefix = [300, 0, 513, 77]
    ws = torch.empty(384 << 20, dtype=torch.uint8, device="cuda")
    paged = nvrtc_attn.BatchPrefillWithPagedKVCacheWrapper(ws, "NHD", backend="fa2")
    qo_indptr = torch.zeros(64, dtype=torch.int32, device="cuda")
    qo_indptr[1: len(extend) + 1] = torch.cumsum(torch.tensor(extend, dtype=torch.int32, device="cuda"), 0)
    qo_indptr = qo_indptr[: len(extend) + 1]
    kv_indptr, kv_indices, perm = _sglang_indices(torch, rng, prefix, slots)
    last = torch.ones(64, dtype=torch.int32, device="cuda")[: len(extend)]
    paged.begin_forward(qo_indptr, kv_indptr, kv_indices, last, hq, hkv, d, 1, q_data_type=torch.bfloat16,
                        kv_data_type=torch.bfloat16, custom_mask=None, non_blocking=True, fixed_split_size=None,
                        prefix_len_ptr=None, token_pos_in_items_ptr=None, token_pos_in_items_len=0,
                        max_item_len_ptr=None)
    assert (paged._causal, paged._sm_scale, paged._window_left, paged._logits_soft_cap) == (False, None, -1, 0.0)
    scale = 1.0 / math.sqrt(d)
    host_indptr = np.concatenate(([0], np.cumsum(prefix))).astype(np.int32)
    q_ptr = np.concatenate(([0], np.cumsum(extend))).astype(np.int32)
    for layer in range(2):
        k_buf, v_buf = _sglang_pool(kit, torch, slots, hkv, d, 300 + 10 * layer)
        q = kit.randn("torch", (int(q_ptr[-1]), hq, d), "bfloat16", 400 + layer).contiguous()
        o2, s2 = paged.forward_return_lse(q, (k_buf, v_buf), causal=False, sm_scale=scale, window_left=-1,
                                          logits_soft_cap=0.0)
        assert paged._causal is False and paged._sm_scale == scale
        k4, v4 = k_buf.unsqueeze(1), v_buf.unsqueeze(1)  # [slots, 1, H, D]: pages of one token
        ref_o, ref_lse = _ref(q, (k4, v4), q_ptr, host_indptr, perm, np.ones(len(extend), np.int32),
                              causal=False, sm_scale=scale)
        kit.check_attention(o2, s2, ref_o, ref_lse, "bfloat16", what=f"sglang prefix layer {layer}")
        rows = slice(int(q_ptr[1]), int(q_ptr[2]))  # the request without a prefix
        assert bool((o2[rows] == 0).all()) and bool(torch.isneginf(s2[rows]).all())


def test_sglang_paged_sequence_and_no_prefix_plan(kit):
    """Paged mode: planned without causal, run with forward(causal=True, k_scale=None, v_scale=None);
    the plan follows forward()'s mask once and keeps it for the following layers. Also: a batch
    with no prefix at all is planned (all-zero kv_indptr, garbage indices) without error."""
    torch = _torch()
    import nvrtc_attn

    rng = np.random.default_rng(22)
    hq, hkv, d, slots = 16, 4, 128, 4000
    extend = [100, 33, 250]
    seq = [612, 33, 900]
    ws = torch.empty(384 << 20, dtype=torch.uint8, device="cuda")
    paged = nvrtc_attn.BatchPrefillWithPagedKVCacheWrapper(ws, "NHD", backend="fa2")

    qo_indptr = torch.tensor(np.concatenate(([0], np.cumsum(extend))), dtype=torch.int32, device="cuda")
    zero_kv = torch.zeros(len(extend) + 1, dtype=torch.int32, device="cuda")
    garbage = torch.empty(256, dtype=torch.int32, device="cuda")
    last = torch.ones(len(extend), dtype=torch.int32, device="cuda")
    paged.begin_forward(qo_indptr, zero_kv, garbage, last, hq, hkv, d, 1, q_data_type=torch.bfloat16)

    kv_indptr, kv_indices, perm = _sglang_indices(torch, rng, seq, slots)
    paged.begin_forward(qo_indptr, kv_indptr, kv_indices, last, hq, hkv, d, 1, q_data_type=torch.bfloat16,
                        kv_data_type=torch.bfloat16, non_blocking=True)
    scale = 0.07
    host_indptr = np.concatenate(([0], np.cumsum(seq))).astype(np.int32)
    q_ptr = np.concatenate(([0], np.cumsum(extend))).astype(np.int32)
    plans = []
    for layer in range(3):
        k_buf, v_buf = _sglang_pool(kit, torch, slots, hkv, d, 500 + 10 * layer)
        q = kit.randn("torch", (int(q_ptr[-1]), hq, d), "bfloat16", 600 + layer)
        o = paged.forward(q, (k_buf, v_buf), causal=True, sm_scale=scale, window_left=-1, logits_soft_cap=0.0,
                          k_scale=None, v_scale=None)
        plans.append(paged._plan)
        assert paged._causal is True
        ref_o, ref_lse = _ref(q, (k_buf.unsqueeze(1), v_buf.unsqueeze(1)), q_ptr, host_indptr, perm,
                              np.ones(len(seq), np.int32), causal=True, sm_scale=scale)
        kit.check_attention(o, None, ref_o, ref_lse, "bfloat16", what=f"sglang paged layer {layer}")
        assert tuple(o.shape) == tuple(q.shape) and o.dtype == torch.bfloat16
    assert plans[1] is plans[0] and plans[2] is plans[0], "forward() re-planned on every layer"


# --------------------------------------------------------------------------------------------
# CUDA graphs: FlashInfer's contract


def _graph_batch(kit, rng, batch_size, page_size, max_q, seed):
    qo = [int(x) for x in rng.integers(1, max_q, batch_size)]
    kv = [q + int(rng.integers(0, 300)) for q in qo]
    return kit.make_page_table(qo, kv, page_size, seed, extra_pages=0)


@pytest.mark.parametrize("backend", ["sm80", pytest.param("sm90", marks=pytest.mark.hopper)])
def test_cuda_graph_replay_across_replans(kit, backend):
    """use_cuda_graph=True: capture run() once, then re-plan three different batches of the same
    batch size (lengths and page tables change) and replay; each replay matches the reference.
    A batch that does not fit what was captured is refused with a clear error."""
    torch = _torch()
    import nvrtc_attn

    rng = np.random.default_rng(31)
    bs, hq, hkv, d, ps = 4, 8, 2, 128, 16
    max_pages = 200
    pool = kit.make_pool("torch", "bfloat16", max_pages, ps, hkv, d, seed=32)
    cache = pool.layer(1)
    bufs = kit.graph_buffers(bs, max_pages)
    w = nvrtc_attn.BatchPrefillWithPagedKVCacheWrapper(kit.workspace("torch"), "NHD", True, backend=backend, **bufs)
    assert w.is_cuda_graph_enabled
    first = kit.make_page_table([200, 150, 90, 180], [400, 150, 300, 181], ps, 33, extra_pages=0)
    plan_kw = dict(causal=True, q_data_type="bfloat16")
    w.plan(*first.index_args(), hq, hkv, d, ps, **plan_kw)
    assert np.array_equal(bufs["qo_indptr_buf"].cpu().numpy(), first.qo_indptr)  # FlashInfer copies them in
    t_max = first.total_q
    q = kit.randn("torch", (t_max, hq, d), "bfloat16", 34)
    out = torch.empty(t_max, hq, d, dtype=torch.bfloat16, device="cuda")
    lse = torch.empty(t_max, hq, dtype=torch.float32, device="cuda")
    graph = kit.torch_graph(lambda: w.run(q, cache, out=out, lse=lse, return_lse=True))

    for rep in range(3):
        batch = _graph_batch(kit, rng, bs, ps, t_max // bs, 40 + rep)
        assert batch.max_pages <= max_pages and batch.total_q <= t_max
        # Pages anywhere in the pool: shift the table by a random page offset (still a permutation).
        shift = int(rng.integers(0, max_pages - batch.max_pages + 1))
        indices = batch.paged_kv_indices + shift
        w.plan(batch.qo_indptr, batch.paged_kv_indptr, indices, batch.paged_kv_last_page_len, hq, hkv, d, ps,
               **plan_kw)
        t = batch.total_q
        q[:t].copy_(kit.randn("torch", (t, hq, d), "bfloat16", 50 + rep))
        kit.poison(out)
        kit.poison(lse)
        graph.replay()
        torch.cuda.synchronize()
        ref_o, ref_lse = _ref(q[:t], cache, batch.qo_indptr, batch.paged_kv_indptr, indices,
                              batch.paged_kv_last_page_len, causal=True)
        kit.check_attention(out[:t], lse[:t], ref_o, ref_lse, "bfloat16", what=f"{backend} replay {rep}")

    too_long = kit.make_page_table([t_max, 1, 1, 1], [t_max, 1, 1, 1], ps, 60, extra_pages=0)
    wrong_bs = kit.make_page_table([10, 10], [10, 10], ps, 61, extra_pages=0)
    with pytest.raises(ValueError, match="total number of rows"):
        w.plan(*too_long.index_args(), hq, hkv, d, ps, **plan_kw)
    with pytest.raises(ValueError, match="batch size"):
        w.plan(*wrong_bs.index_args(), hq, hkv, d, ps, **plan_kw)
    with pytest.raises(ValueError, match="sm_scale"):
        w.plan(*first.index_args(), hq, hkv, d, ps, causal=True, q_data_type="bfloat16", sm_scale=0.5)
    many = kit.make_page_table([5, 5, 5, 5], [1000, 1000, 1000, 1000], ps, 62, extra_pages=0)
    with pytest.raises(ValueError, match="paged_kv_indices"):
        w.plan(*many.index_args(), hq, hkv, d, ps, **plan_kw)


def test_cuda_graph_mode_needs_buffers(kit):
    torch = _torch()
    import nvrtc_attn

    with pytest.raises(ValueError, match="qo_indptr_buf"):
        nvrtc_attn.BatchPrefillWithPagedKVCacheWrapper(kit.workspace("torch"), "NHD", use_cuda_graph=True)
    bad = dict(qo_indptr_buf=torch.zeros(5, dtype=torch.int32, device="cuda"),
               paged_kv_indptr_buf=torch.zeros(4, dtype=torch.int32, device="cuda"),
               paged_kv_indices_buf=torch.zeros(10, dtype=torch.int32, device="cuda"),
               paged_kv_last_page_len_buf=torch.zeros(4, dtype=torch.int32, device="cuda"))
    with pytest.raises(ValueError, match="paged_kv_indptr_buf"):
        nvrtc_attn.BatchPrefillWithPagedKVCacheWrapper(kit.workspace("torch"), "NHD", True, **bad)


# --------------------------------------------------------------------------------------------
# Run-time arguments: scales, LSE base and layout, refusals


def test_scales_lse_base_and_layout(kit):
    """q_scale * k_scale multiply the logit scale (soft cap included), v_scale the output; LSE in
    base e with lse_base="ln", transposed with lse_layout="HN"."""
    torch = _torch()
    import nvrtc_attn

    batch = kit.make_page_table([70, 130], [200, 130], 16, 71)
    hq, hkv, d = 8, 2, 128
    pool = kit.make_pool("torch", "bfloat16", batch.max_pages, 16, hkv, d, seed=72)
    cache = pool.layer(0)
    q = kit.randn("torch", (batch.total_q, hq, d), "bfloat16", 73)
    w = nvrtc_attn.BatchPrefillWithPagedKVCacheWrapper(kit.workspace("torch"), "NHD")
    for cap in (None, 20.0):
        w.plan(*batch.index_args(), hq, hkv, d, 16, causal=True, sm_scale=0.05, logits_soft_cap=cap,
               q_data_type="bfloat16")
        out = kit.poison(torch.empty_like(q))
        lse = kit.poison(torch.empty(hq, batch.total_q, dtype=torch.float32, device="cuda"))
        o, l_hn = w.run(q, cache, q_scale=0.37, k_scale=2.5, v_scale=1.7, out=out, lse=lse, return_lse=True,
                        lse_base="ln", lse_layout="HN")
        assert o is out and l_hn is lse
        ref_o, ref_lse = _ref(q, cache, *batch.index_args(), causal=True, sm_scale=0.05 * 0.37 * 2.5,
                              logits_soft_cap=cap)
        kit.check_attention(o.float() / 1.7, l_hn.t() / math.log(2), ref_o, ref_lse, "bfloat16",
                            what=f"scales cap={cap}")


def test_run_refusals_write_nothing(kit):
    torch = _torch()
    import nvrtc_attn

    batch = kit.make_page_table([20], [40], 16, 81)
    pool = kit.make_pool("torch", "bfloat16", batch.max_pages, 16, 2, 64, seed=82)
    q = kit.randn("torch", (20, 4, 64), "bfloat16", 83)
    out = kit.poison(torch.empty_like(q))
    w = nvrtc_attn.BatchPrefillWithPagedKVCacheWrapper(kit.workspace("torch"), "NHD")
    w.plan(*batch.index_args(), 4, 2, 64, 16, causal=True, q_data_type="bfloat16")
    cases = [dict(sinks=torch.zeros(4, device="cuda")), dict(kv_cache_sf=(q, q)),
             dict(skip_softmax_threshold_scale_factor=0.1), dict(window_left=5), dict(use_fp16_softmax=True),
             dict(k_scale=torch.ones(2, device="cuda"))]
    for kw in cases:
        with pytest.raises(NotImplementedError):
            w.run(q, pool.layer(0), out=out, **kw)
    with pytest.raises(NotImplementedError, match="positional"):
        w.run(q, pool.layer(0), "extra", out=out)
    with pytest.raises(ValueError, match="lse_base"):
        w.run(q, pool.layer(0), out=out, return_lse=True, lse_base="log10")
    torch.cuda.synchronize()
    assert bool(torch.isnan(out).all())
    w.run(q, pool.layer(0), out=out, enable_pdl=True)  # a hint: accepted
    assert not bool(torch.isnan(out).any())


# --------------------------------------------------------------------------------------------
# JAX


def test_jax_arrays_in_and_out(kit):
    """JAX in, JAX out: arrays produced by jitted JAX work (still in flight on JAX's stream) are read
    in order, and the result is a JAX array that later JAX work reads correctly."""
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    if not any(dev.platform == "gpu" for dev in jax.devices()):
        pytest.skip("JAX has no GPU device")
    import nvrtc_attn

    batch = kit.make_page_table([64, 200], [300, 200], 16, 91)
    hq, hkv, d = 8, 2, 128
    key = jax.random.PRNGKey(0)
    kq, kc = jax.random.split(key)
    # Produced by a jitted computation (asynchronous): q = 2 * x - x, cache likewise.
    make = jax.jit(lambda x: (x * 2.0 - x).astype(jnp.bfloat16))
    q = make(jax.random.normal(kq, (batch.total_q, hq, d), jnp.float32))
    cache = make(jax.random.normal(kc, (batch.max_pages, 2, 16, hkv, d), jnp.float32))
    w = nvrtc_attn.BatchPrefillWithPagedKVCacheWrapper(jnp.zeros(16 << 20, jnp.uint8), "NHD")
    w.plan(*batch.index_args(), hq, hkv, d, 16, causal=True, q_data_type=jnp.bfloat16)
    o, lse = w.run(q, cache, return_lse=True)
    assert isinstance(o, jax.Array) and isinstance(lse, jax.Array)
    assert o.dtype == jnp.bfloat16 and o.shape == (batch.total_q, hq, d) and lse.dtype == jnp.float32
    doubled = jax.jit(lambda x: x.astype(jnp.float32) * 2.0)(o)  # JAX work that reads our output
    qn = np.asarray(q.astype(jnp.float32))
    cn = np.asarray(cache.astype(jnp.float32))
    ref_o, ref_lse = _ref(qn, cn, *batch.index_args(), causal=True)
    kit.check_attention(np.asarray(doubled) / 2.0, np.asarray(lse), ref_o, ref_lse, "bfloat16", what="jax")


# --------------------------------------------------------------------------------------------
# The demo from an empty cache, then torch in the same process


def test_demo_from_empty_cache_then_torch_compile(tmp_path):
    env = dict(os.environ, NVRTC_ATTN_CACHE_DIR=str(tmp_path / "cache"),
               PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-m", "nvrtc_attn", "--torch-compile"], env=env, capture_output=True,
                          text=True, timeout=600)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log
    assert "0/" in log and "from the disk cache" in log, log  # a real cold compile, reported as such
    assert "rel L2 error" in log and "torch.compile on a small function ok" in log, log


def test_repeated_calls_reuse_checks_but_follow_operands(kit):
    """run() with the same operands as the last call only launches again; any change of an operand
    (another out, another layer's cache, new q data) is honoured."""
    torch = _torch()
    import nvrtc_attn

    batch = kit.make_page_table([40, 90], [120, 90], 16, 95)
    hq, hkv, d = 8, 2, 128
    pool = kit.make_pool("torch", "bfloat16", batch.max_pages, 16, hkv, d, seed=96)
    q = kit.randn("torch", (batch.total_q, hq, d), "bfloat16", 97)
    outs = [kit.poison(torch.empty_like(q)) for _ in range(2)]
    w = nvrtc_attn.BatchPrefillWithPagedKVCacheWrapper(kit.workspace("torch"), "NHD")
    w.plan(*batch.index_args(), hq, hkv, d, 16, causal=True, q_data_type="bfloat16")
    layers = [pool.layer(0), pool.layer(3)]
    for step in range(3):
        for layer, cache in enumerate(layers):
            out = outs[(step + layer) % 2]
            kit.poison(out)
            if step == 2:
                q.copy_(kit.randn("torch", q.shape, "bfloat16", 98 + layer))
            w.run(q, cache, out=out, k_scale=1.0, v_scale=1.0)
            w.run(q, cache, out=out, k_scale=1.0, v_scale=1.0)  # same operands again
            ref, _ = _ref(q, cache, *batch.index_args(), causal=True)
            kit.check_attention(out, None, ref, None, "bfloat16", what=f"step {step} layer {layer}")
