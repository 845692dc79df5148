"""GPU: the sm90 short tiles (64 query rows, one consumer warpgroup, two CTAs per SM) that plan()
picks for batches of few packed rows per (request, KV head): speculative-decoding verification and
decode steps (variants.sm90_short_tiles).

Every case as in test_sm90_loads.py: fresh random data, NaN in every cache slot no request owns,
outputs poisoned with NaN, the float32 reference, the build, grid and K/V path the wrapper reports,
and a bit-identical pool afterwards; the same inputs then run through the gather path and the
portable kernel, and the outputs must agree.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest

pytestmark = [pytest.mark.gpu, pytest.mark.hopper]


@pytest.fixture(autouse=True)
def _short_tiles_for_small_batches(monkeypatch):
    """These cases test the short-tile kernel on small batches, which plan() would give to the full
    tiles with split-KV (too few tiles to fill the short grid: variants.SHORT_TILE_MIN_FILL)."""
    from nvrtc_attn import variants

    monkeypatch.setattr(variants, "SHORT_TILE_MIN_FILL", 0.0)


def _wrapper(kit, fw, layout="NHD", backend="sm90", kv_load="auto", **kw):
    import nvrtc_attn

    return nvrtc_attn.BatchPrefillWithPagedKVCacheWrapper(kit.workspace(fw), kv_layout=layout, backend=backend,
                                                          kv_load=kv_load, **kw)


def _check_short_build(w, what=""):
    """The plan runs the short-tile build on a grid of two CTAs per SM, as the loaded build's
    occupancy says."""
    from nvrtc_attn import launcher

    assert "_m64_" in w.kernel_name, f"{what}: build {w.kernel_name}"
    plan, kernel = w._plan, w._kernels[0]
    assert plan.block_m == 64 and plan.build.short_tiles, f"{what}: planned with block_m {plan.block_m}"
    assert kernel.blocks_per_sm == 2, f"{what}: occupancy {kernel.blocks_per_sm} CTAs per SM ({kernel.smem_bytes} B)"
    assert plan.num_ctas == 2 * launcher.sm_count(0), f"{what}: grid {plan.num_ctas}"


# (page_size, head_dim, group, Hkv, qo_lens, kv_lens, causal, window, soft cap, layout, dtype, K/V path
# with SHORT_TILES_GATHER off; plan()'s default gathers every short tile)
CASES = [
    # W9-like: 4 tokens x group 4 = 16 rows; key counts with partial last blocks, one key, one block
    (16, 128, 4, 2, [4] * 6, [700, 1000, 333, 64, 65, 4], True, -1, None, "NHD", "bfloat16", "tma"),
    # decode steps, group 8, pages of 64 (one box per 64-key block)
    (64, 128, 8, 2, [1] * 5, [129, 4000, 64, 63, 2000], False, -1, None, "HND", "float16", "tma"),
    # MHA (group 1), token-granular pages: the gather path
    (1, 128, 1, 4, [16, 3, 9], [500, 3, 1200], True, -1, None, "NHD", "bfloat16", "gather"),
    # sliding window (tiles start at kv_start > 0) and soft cap
    (16, 128, 4, 2, [8, 2, 16], [900, 300, 2000], True, 100, 5.0, "NHD", "float16", "tma"),
    # empty requests (no queries; queries without keys: O = 0, LSE = -inf; non-causal: causal plans
    # need qo_len <= kv_len)
    (16, 128, 4, 2, [0, 4, 3, 0, 5, 8], [100, 0, 256, 0, 1000, 3], False, -1, None, "NHD", "bfloat16", "tma"),
    # 64 rows exactly: 4 tokens x group 16
    (16, 128, 16, 1, [4, 4, 1], [3000, 17, 800], True, -1, None, "NHD", "bfloat16", "tma"),
    # group 3 does not divide 64: Q by cp.async
    (32, 128, 3, 2, [5, 12, 1], [400, 1500, 31], False, -1, None, "HND", "bfloat16", "tma"),
    # one request of 68 rows in a short batch: two tiles, the causal partial one first
    (16, 128, 4, 2, [4] * 7 + [17], [1000] * 7 + [1100], True, -1, None, "NHD", "float16", "tma"),
    # pages of 5 (gather) with a window; pages of 256 (64-key boxes); pages of 24 (8-key boxes)
    (5, 128, 8, 1, [2, 8], [333, 1000], False, 50, None, "NHD", "float16", "gather"),
    (256, 128, 4, 2, [3, 4], [1030, 300], True, -1, None, "NHD", "float16", "tma"),
    (24, 128, 2, 2, [9, 32], [500, 777], False, -1, None, "HND", "bfloat16", "tma"),
    # head_dim 64 (128-key blocks)
    (16, 64, 4, 2, [4] * 4, [1000, 129, 5, 2048], True, -1, None, "NHD", "bfloat16", "tma"),
    (8, 64, 1, 3, [16, 1], [300, 77], False, -1, 5.0, "HND", "float16", "tma"),
]


def _case_id(c):
    cap = f"-cap{c[8]:g}" if c[8] else ""
    return f"ps{c[0]}-hd{c[1]}-g{c[2]}-q{max(c[4])}-{c[9]}-{'causal' if c[6] else 'full'}-w{c[7]}{cap}"


@pytest.mark.parametrize("c", CASES, ids=[_case_id(c) for c in CASES])
def test_sm90_short_tiles(kit, c):
    """The short build on each case, K/V by the gather (the default for short tiles), against the
    reference and the sm80 kernel."""
    _short_tiles_case(kit, c, "gather")


# One case per TMA box shape: 16-key boxes (W9-like), 64-key (pages of 64), 8-key (pages of 24),
# a window, head_dim 64's 128-key blocks.
TMA_CASES = [CASES[i] for i in (0, 1, 3, 10, 11)]


@pytest.mark.parametrize("c", TMA_CASES, ids=[_case_id(c) for c in TMA_CASES])
def test_sm90_short_tiles_tma_boxes(kit, c, short_tiles_tma):
    """The short build with K/V by TMA page boxes (SHORT_TILES_GATHER off: conftest's
    short_tiles_tma), against the reference."""
    assert c[-1] == "tma"
    _short_tiles_case(kit, c, "tma")


def _short_tiles_case(kit, c, auto_path):
    """Case c on the sm90 short build (auto and gather loads) and sm80: auto_path is what
    kv_load="auto" must take where the page size allows boxes (c's last field says whether it does)."""
    from nvrtc_attn import variants
    from nvrtc_attn.reference import paged_prefill_reference

    ps, d, g, hkv, qo_lens, kv_lens, causal, window, cap, layout, dtype, path = c
    path = auto_path if path == "tma" else "gather"
    assert variants.sm90_short_tiles(d, qo_lens, kv_lens, g), "not a short-tile batch"
    fw = "torch" if dtype == "bfloat16" else "cupy"
    if fw == "torch":
        kit.require_torch_cuda()
    seed = zlib.crc32(_case_id(c).encode())
    batch = kit.make_page_table(qo_lens, kv_lens, ps, seed)
    hqo = hkv * g
    q = kit.randn(fw, (batch.total_q, hqo, d), dtype, seed, scale=3.0 if cap else 1.0)  # logits the cap bends
    pool = kit.make_pool(fw, dtype, batch.max_pages, ps, hkv, d, kv_layout=layout, seed=seed + 1)
    cache = pool.layer(1)
    kit.poison_unowned_slots(batch, cache, layout)
    snap = kit.Snapshot(pool.buf)
    kw = dict(causal=causal, window_left=window, logits_soft_cap=cap, q_data_type=dtype)
    ref = paged_prefill_reference(q, cache, *batch.index_args(), kv_layout=layout, causal=causal,
                                  window_left=window, logits_soft_cap=cap)
    results = {}
    for (name, backend, kv_load), w, res in kit.run_three_ways(fw, layout, batch, (hqo, hkv, d), q, cache, ref,
                                                               dtype, **kw):
        results[name] = res
        if backend == "sm90":
            _check_short_build(w, name)
            want = path if kv_load == "auto" else "gather"
            assert w.kv_load_path == want, f"{name}: K/V loaded by {w.kv_load_path}, expected {want}"
    assert snap.unchanged(), "run() modified the KV cache"
    kit.check_agreement(results, dtype)


def _lens_batch(kit, qo, kv, ps):
    """A page table for lengths (no data): plan() alone reads only the index arrays."""
    return kit.make_page_table(qo, kv, ps, 0, extra_pages=0)


def test_plan_picks_short_tiles_only_for_few_rows(kit):
    """plan() on W9's index arrays (32 requests of 4 tokens on 4096 keys, 32/8 heads) picks the
    short build on two CTAs per SM at head_dim 64 and 128 (not 256); W1, W3 and W8 (full tiles) keep the builds,
    block_m and grid of before (one CTA per SM)."""
    from nvrtc_attn import launcher

    sms = launcher.sm_count(0)
    w9 = _lens_batch(kit, [4] * 32, [4096] * 32, 16)
    for d in (64, 128):
        w = _wrapper(kit, "cupy")
        w.plan(*w9.index_args(), 32, 8, d, 16, causal=True, q_data_type="bfloat16")
        _check_short_build(w, f"W9 at head_dim {d}")
        assert w._plan.num_tiles == 32 * 8
    w = _wrapper(kit, "cupy")
    w.plan(*w9.index_args(), 32, 8, 256, 16, causal=True, q_data_type="bfloat16")
    assert not w._plan.build.short_tiles, w.kernel_name
    full = {"W1": ([1024] * 16, [1024] * 16), "W3": ([512] * 8, [4096] * 8), "W8": ([128] * 2, [16384] * 2)}
    for wid, (qo, kv) in full.items():
        w = _wrapper(kit, "cupy")
        w.plan(*_lens_batch(kit, qo, kv, 16).index_args(), 32, 8, 128, 16, causal=True, q_data_type="bfloat16")
        assert "_m64_" not in w.kernel_name and not w._plan.build.short_tiles, f"{wid}: {w.kernel_name}"
        assert (w._plan.block_m, w._plan.num_ctas) == (128, sms), wid
    # the same wrapper re-planned between the two kinds switches builds and grids both ways
    w = _wrapper(kit, "cupy")
    for qo, kv, short in (([4] * 32, [4096] * 32, True), ([1024] * 16, [1024] * 16, False),
                          ([1] * 100, [300] * 100, True)):
        w.plan(*_lens_batch(kit, qo, kv, 16).index_args(), 32, 8, 128, 16, causal=True, q_data_type="bfloat16")
        assert w._plan.build.short_tiles == short and w._plan.num_ctas == sms * (2 if short else 1)


def test_short_tiles_many_tiles_per_cta(kit):
    """More tiles than the grid's 2 x SM CTAs (each CTA runs several, longest first): Q double
    buffers and the K/V rings carry over from tile to tile. Random few-token requests and key counts,
    both load paths, against the reference."""
    from nvrtc_attn.reference import paged_prefill_reference

    rng = np.random.default_rng(5)
    n, ps, hkv, g, d = 160, 16, 4, 4, 128
    qo = rng.integers(1, 9, n)
    qo[::17] = 0  # a few empty requests
    kv = np.maximum(rng.integers(1, 700, n), qo)  # causal: qo_len <= kv_len
    batch = kit.make_page_table(qo, kv, ps, 6)
    hqo = hkv * g
    q = kit.randn("cupy", (batch.total_q, hqo, d), "float16", 7)
    pool = kit.make_pool("cupy", "float16", batch.max_pages, ps, hkv, d, seed=8)
    cache = pool.layer(3)
    kit.poison_unowned_slots(batch, cache, "NHD")
    ref_o, ref_lse = paged_prefill_reference(q, cache, *batch.index_args(), causal=True)
    for kv_load, path in (("auto", "gather"), ("gather", "gather")):  # (short tiles always gather)
        w = _wrapper(kit, "cupy", kv_load=kv_load)
        w.plan(*batch.index_args(), hqo, hkv, d, ps, causal=True, q_data_type="float16")
        _check_short_build(w, kv_load)
        assert w._plan.work.claimed and w._plan.num_tiles > w._plan.num_ctas  # some CTA claims two tiles or more
        out = kit.poison(kit.empty("cupy", (batch.total_q, hqo, d), "float16"))
        lse = kit.poison(kit.empty("cupy", (batch.total_q, hqo), "float32"))
        w.run(q, cache, out=out, lse=lse, return_lse=True)
        assert w.kv_load_path == path
        kit.check_attention(out, lse, ref_o, ref_lse, "float16", what=kv_load)


def test_short_tiles_layers_one_plan(kit):
    """One plan, every layer of a [pages, layers, 2, 16, Hkv, D] pool (W9's shape at 1024 keys)."""
    from nvrtc_attn.reference import paged_prefill_reference

    kit.require_torch_cuda()
    batch = kit.make_page_table([4] * 32, [1024] * 32, 16, 9)
    hqo, hkv, d = 32, 8, 128
    pool = kit.make_pool("torch", "bfloat16", batch.max_pages, 16, hkv, d, seed=10)
    snap = kit.Snapshot(pool.buf)
    w = _wrapper(kit, "torch")
    w.plan(*batch.index_args(), hqo, hkv, d, 16, causal=True, q_data_type="bfloat16")
    _check_short_build(w, "W9-like")
    for layer in range(4):
        cache = pool.layer(layer)
        q = kit.randn("torch", (batch.total_q, hqo, d), "bfloat16", 20 + layer)
        o, lse = w.run(q, cache, return_lse=True)
        assert w.kv_load_path == "gather"  # (variants.SHORT_TILES_GATHER)
        ref_o, ref_lse = paged_prefill_reference(q, cache, *batch.index_args(), causal=True)
        kit.check_attention(o, lse, ref_o, ref_lse, "bfloat16", what=f"layer {layer}")
    assert snap.unchanged(), "run() modified the KV cache"


def test_short_tiles_cuda_graph_replay(kit):
    """Graph mode pins the first plan's build: a run() captured on a short-tile plan replays after
    re-plans of the same batch size, including a batch the rule alone would give full tiles (a
    40-token request: 160 rows, three short tiles)."""
    kit.require_torch_cuda()
    import torch

    from nvrtc_attn import variants
    from nvrtc_attn.reference import paged_prefill_reference

    bs, hqo, hkv, d, ps, max_pages = 8, 8, 2, 128, 16, 600
    pool = kit.make_pool("torch", "bfloat16", max_pages, ps, hkv, d, seed=11)
    cache = pool.layer(0)
    w = _wrapper(kit, "torch", use_cuda_graph=True, **kit.graph_buffers(bs, max_pages))
    first = kit.make_page_table([16] * bs, [900] * bs, ps, 12, extra_pages=0)
    w.plan(*first.index_args(), hqo, hkv, d, ps, causal=True, q_data_type="bfloat16")
    _check_short_build(w, "first plan")
    name, t_max = w.kernel_name, first.total_q
    q = kit.randn("torch", (t_max, hqo, d), "bfloat16", 13)
    out = torch.empty(t_max, hqo, d, dtype=torch.bfloat16, device="cuda")
    lse = torch.empty(t_max, hqo, dtype=torch.float32, device="cuda")
    graph = kit.torch_graph(lambda: w.run(q, cache, out=out, lse=lse, return_lse=True))
    rng = np.random.default_rng(14)
    batches = [([4] * bs, rng.integers(1, 1000, bs)), (rng.integers(1, 13, bs), rng.integers(1, 1000, bs)),
               ([40] + [4] * (bs - 1), [1000] + [50] * (bs - 1))]
    assert not variants.sm90_short_tiles(d, *batches[-1], hqo // hkv)  # work ratio 0.71
    for rep, (qo, kv) in enumerate(batches):
        batch = kit.make_page_table(qo, kv, ps, 15 + rep, extra_pages=0)
        assert batch.max_pages <= max_pages and batch.total_q <= t_max
        w.plan(*batch.index_args(), hqo, hkv, d, ps, causal=True, q_data_type="bfloat16")
        assert w.kernel_name == name and w._plan.block_m == 64
        t = batch.total_q
        q[:t].copy_(kit.randn("torch", (t, hqo, d), "bfloat16", 30 + rep))
        kit.poison(out)
        kit.poison(lse)
        graph.replay()
        torch.cuda.synchronize()
        ref_o, ref_lse = paged_prefill_reference(q[:t], cache, *batch.index_args(), causal=True)
        kit.check_attention(out[:t], lse[:t], ref_o, ref_lse, "bfloat16", what=f"replay {rep}")
