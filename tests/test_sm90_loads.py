"""GPU: the Hopper kernel's two K/V load paths (TMA per page, cp.async gather) and Q by TMA.

Every case: fresh random data, NaN in every cache slot no request owns (unused pages and the
tail of each request's last page), outputs poisoned with NaN, the float32 reference, the path
the wrapper reports, and a bit-identical pool afterwards. The same inputs then run through the
gather path and the portable kernel, and the three outputs (O and LSE) must agree.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest

pytestmark = [pytest.mark.gpu, pytest.mark.hopper]


def _wrapper(kit, fw, layout, backend, kv_load="auto"):
    import nvrtc_attn

    return nvrtc_attn.BatchPrefillWithPagedKVCacheWrapper(kit.workspace(fw), kv_layout=layout, backend=backend,
                                                          kv_load=kv_load)


# (page_size, head_dim, group, Hkv, qo_lens, kv_lens, causal, window, layout, dtype, expected path)
CASES = [
    (16, 128, 4, 2, [300, 64], [300, 500], True, -1, "NHD", "bfloat16", "tma"),
    (64, 128, 8, 1, [0, 100, 33], [10, 300, 0], False, -1, "HND", "float16", "tma"),
    (8, 64, 1, 3, [129, 5], [260, 7], True, -1, "NHD", "float16", "tma"),
    (24, 128, 2, 2, [77, 200], [333, 200], True, 50, "NHD", "bfloat16", "tma"),
    (256, 256, 4, 1, [90, 300], [600, 300], True, -1, "NHD", "bfloat16", "tma"),
    (32, 256, 16, 1, [40], [1000], False, 100, "HND", "float16", "tma"),
    (16, 128, 3, 2, [70, 128], [70, 400], True, -1, "NHD", "float16", "tma"),   # Q by cp.async
    (12, 128, 4, 2, [100], [250], True, -1, "NHD", "bfloat16", "gather"),       # 12 % 8 != 0
    (5, 64, 4, 2, [60, 40], [90, 200], False, -1, "HND", "float16", "gather"),
    (1, 128, 8, 1, [130], [130], True, 20, "NHD", "bfloat16", "gather"),
    # long tiles (>= 8 key blocks on average): the build without turn-taking
    (16, 128, 4, 2, [200, 40], [2100, 1500], False, -1, "NHD", "bfloat16", "tma"),
    (16, 256, 2, 2, [100], [1100], True, -1, "HND", "float16", "tma"),
    (1, 128, 1, 2, [80], [1300], False, 200, "NHD", "float16", "gather"),
    (16, 64, 1, 4, [400, 3], [2000, 1500], True, -1, "HND", "float16", "tma"),  # 3 warpgroups
    # long tiles at head_dim 128 loaded by TMA: the 176-key build (partial last blocks, boxes of 16
    # keys in pages of 64 and 256 and of 8 in pages of 24 (22 per block), Q by cp.async for group 3,
    # causal); the gather-only page size keeps 128-key blocks
    (64, 128, 2, 2, [150, 7], [1800, 1203], False, -1, "HND", "float16", "tma"),
    (256, 128, 3, 2, [50, 90], [2000, 1400], False, -1, "NHD", "bfloat16", "tma"),
    (24, 128, 4, 2, [600, 1], [2000, 1111], True, -1, "NHD", "float16", "tma"),
    (5, 128, 4, 1, [100, 0], [1500, 9], False, -1, "NHD", "bfloat16", "gather"),
]


def _case_id(c):
    return f"ps{c[0]}-hd{c[1]}-g{c[2]}-{c[8]}-{'causal' if c[6] else 'full'}-w{c[7]}"


# Cases whose tiles average >= 8 key blocks: plan() picks the build without turn-taking, with
# 176-key blocks when no mask limits the keys at head_dim 128.
LONG_TILE_CASES = {_case_id(c) for c in CASES[-8:] if c[7] < 0}  # the windowed one stays short


def _expected_build(c, kv_load) -> tuple[bool, bool]:
    """(without turn-taking, 176-key blocks) for a case run with kv_load."""
    long_tiles = _case_id(c) in LONG_TILE_CASES
    return long_tiles, long_tiles and c[7] < 0 and c[1] == 128 and kv_load == "auto" and c[10] == "tma"


@pytest.mark.parametrize("c", CASES, ids=[_case_id(c) for c in CASES])
def test_sm90_load_paths(kit, c):
    from nvrtc_attn.reference import paged_prefill_reference

    ps, d, g, hkv, qo_lens, kv_lens, causal, window, layout, dtype, expected = c
    fw = "torch" if dtype == "bfloat16" else "cupy"
    if fw == "torch":
        kit.require_torch_cuda()
    seed = zlib.crc32(_case_id(c).encode())
    batch = kit.make_page_table(qo_lens, kv_lens, ps, seed)
    hqo = hkv * g
    q = kit.randn(fw, (batch.total_q, hqo, d), dtype, seed)
    pool = kit.make_pool(fw, dtype, batch.max_pages, ps, hkv, d, kv_layout=layout, seed=seed + 1)
    cache = pool.layer(1)
    kit.poison_unowned_slots(batch, cache, layout)
    snap = kit.Snapshot(pool.buf)
    kw = dict(causal=causal, window_left=window, q_data_type=dtype)

    ref = paged_prefill_reference(q, cache, *batch.index_args(), kv_layout=layout, causal=causal,
                                  window_left=window)
    results = {}
    for (name, backend, kv_load), w, res in kit.run_three_ways(fw, layout, batch, (hqo, hkv, d), q, cache, ref,
                                                               dtype, **kw):
        results[name] = res
        if backend == "sm90":
            want = expected if kv_load == "auto" else "gather"
            assert w.kv_load_path == want, f"{name}: K/V loaded by {w.kv_load_path}, expected {want}"
            nopp, wide = _expected_build(c, kv_load)
            assert "_m64_" not in w.kernel_name, f"{name}: short tiles ({w.kernel_name}): see test_sm90_short.py"
            assert ("_nopp" in w.kernel_name) == nopp, f"{name}: build {w.kernel_name}"
            assert ("_bn176" in w.kernel_name) == wide, f"{name}: build {w.kernel_name}"
    assert snap.unchanged(), "run() modified the KV cache"
    kit.check_agreement(results, dtype)


def test_sm90_tma_with_stale_nan_last_page_layers(kit):
    """One plan, two layers of one pool, TMA path: the stale NaN tail of the last page (the slots
    past kv_len that a real engine never wrote) must not reach O."""
    from nvrtc_attn.reference import paged_prefill_reference

    kit.require_torch_cuda()
    batch = kit.make_page_table([1000, 17], [1001, 530], 16, 7)
    hqo, hkv, d = 32, 8, 128
    pool = kit.make_pool("torch", "bfloat16", batch.max_pages, 16, hkv, d, seed=8)
    w = _wrapper(kit, "torch", "NHD", "sm90")
    w.plan(*batch.index_args(), hqo, hkv, d, 16, causal=True, q_data_type="bfloat16")
    for layer in (0, 3):
        cache = pool.layer(layer)
        kit.poison_unowned_slots(batch, cache, "NHD")
        q = kit.randn("torch", (batch.total_q, hqo, d), "bfloat16", 100 + layer)
        o = w.run(q, cache)
        assert w.kv_load_path == "tma"
        ref_o, _ = paged_prefill_reference(q, cache, *batch.index_args(), causal=True)
        kit.check_attention(o, None, ref_o, None, "bfloat16", what=f"layer {layer}")


@pytest.mark.parametrize("head_dim, causal, kv_load", [(64, True, "auto"), (128, False, "auto"), (256, True, "auto"),
                                                      (128, True, "gather"), (256, False, "gather"),
                                                      (128, True, "window")])
def test_sm90_softmax_with_growing_row_max(kit, head_dim, causal, kv_load):
    """Logits that grow toward the keys the kernel visits last (it walks key blocks from the end),
    so every row's running max climbs by many log2 units over a tile: exercises the O rescaling,
    including the lazy kind (reference max moves only past +8) of the head_dim 64 builds (serial) and
    of the overlapped head_dim 256 and gathered 128-key head_dim 128 builds (tile_sm90.cuh kLazyOverlap,
    kLazyByLoad); "window": TMA pages with a sliding window, the same 128-key build on its exact path."""
    import cupy

    from nvrtc_attn.reference import paged_prefill_reference

    ps, hkv, g = 16, 2, 2
    # (gather cases on longer prefixes: tiles of 8+ key blocks take the build without turns)
    batch = kit.make_page_table([300, 90], [1200, 700] if kv_load == "auto" else [2400, 1400], ps, 31 + head_dim)
    window = 1024 if kv_load == "window" else -1
    kv_load = "auto" if kv_load == "window" else kv_load
    hqo = hkv * g
    q = kit.randn("cupy", (batch.total_q, hqo, head_dim), "float16", 5, scale=2.0)
    pool = kit.make_pool("cupy", "float16", batch.max_pages, ps, hkv, head_dim, seed=6)
    k, v = pool.layer(0)
    # Key j of request 0 scaled by 1 + 5 (1 - j / kv_len)^2 (largest at j = 0, visited last);
    # request 1 the other way round (largest first: the max never needs to move).
    factor = cupy.ones((batch.max_pages, ps), dtype=cupy.float32)
    for r, rising in ((0, True), (1, False)):
        n = int(batch.kv_lens[r])
        j = np.arange(n)
        f = 1 + 5 * ((1 - j / n) if rising else (j / n)) ** 2
        pages = batch.paged_kv_indices[batch.paged_kv_indptr[r]:batch.paged_kv_indptr[r + 1]]
        factor[cupy.asarray(pages[j // ps]), cupy.asarray(j % ps)] = cupy.asarray(f, dtype=cupy.float32)
    k[...] = (k.astype(cupy.float32) * factor[:, :, None, None]).astype(k.dtype)
    w = _wrapper(kit, "cupy", "NHD", "sm90", kv_load)
    # (gather cases unsplit: pieces of this small batch would take a split twin)
    w.plan(*batch.index_args(), hqo, hkv, head_dim, ps, causal=causal, q_data_type="float16",
           disable_split_kv=kv_load == "gather" or window >= 0, window_left=window)
    out = kit.poison(kit.empty("cupy", (batch.total_q, hqo, head_dim), "float16"))
    lse = kit.poison(kit.empty("cupy", (batch.total_q, hqo), "float32"))
    w.run(q, (k, v), out=out, lse=lse, return_lse=True)
    ref_o, ref_lse = paged_prefill_reference(q, (k, v), *batch.index_args(), causal=causal, window_left=window)
    kit.check_attention(out, lse, ref_o, ref_lse, "float16", what=f"hd{head_dim} {kv_load} window {window}")
    if window >= 0:
        assert w.kv_load_path == "tma" and "nopp" in w.kernel_name and "bn176" not in w.kernel_name, w.kernel_name
    if kv_load == "gather":
        # the 128-key (head_dim 256: 64-key) build without turns, whose overlap rescales lazily
        assert w.kv_load_path == "gather" and "nopp" in w.kernel_name and "bn176" not in w.kernel_name, w.kernel_name


def test_sm90_long_tiles_fall_back_to_gather_when_tma_cannot_describe_the_pool(kit):
    """Pages padded so that the page stride is not a multiple of the head stride: no 5-D TMA map
    exists, run() gathers with the 176-key build plan() chose for a TMA-sized page (two staged
    row-address slots per producer thread), and the pool stays untouched."""
    import torch

    from nvrtc_attn.reference import paged_prefill_reference

    kit.require_torch_cuda()
    ps, hkv, g, d = 16, 2, 4, 128
    batch = kit.make_page_table([150, 60], [1700, 1203], ps, 41)
    hqo = hkv * g
    page_elems = ps * hkv * d + 32  # 64 bytes of padding after every page: stride_page % stride_head != 0
    flat = kit.randn("torch", (batch.max_pages * 2 * page_elems,), "bfloat16", 42)
    st = (2 * page_elems, hkv * d, d, 1)
    k = torch.as_strided(flat, (batch.max_pages, ps, hkv, d), st)
    v = torch.as_strided(flat, (batch.max_pages, ps, hkv, d), st, page_elems)
    kit.poison_unowned_slots(batch, (k, v), "NHD")
    snap = kit.Snapshot(flat)
    q = kit.randn("torch", (batch.total_q, hqo, d), "bfloat16", 43)
    w = _wrapper(kit, "torch", "NHD", "sm90")
    w.plan(*batch.index_args(), hqo, hkv, d, ps, causal=False, q_data_type="bfloat16")
    out = kit.poison(kit.empty("torch", (batch.total_q, hqo, d), "bfloat16"))
    lse = kit.poison(kit.empty("torch", (batch.total_q, hqo), "float32"))
    w.run(q, (k, v), out=out, lse=lse, return_lse=True)
    assert w.kv_load_path == "gather" and "_bn176_nopp" in w.kernel_name, (w.kv_load_path, w.kernel_name)
    ref_o, ref_lse = paged_prefill_reference(q, (k, v), *batch.index_args(), causal=False)
    kit.check_attention(out, lse, ref_o, ref_lse, "bfloat16", what="padded pages")
    assert snap.unchanged(), "run() modified the KV cache"
