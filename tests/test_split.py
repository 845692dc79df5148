"""Split-KV in the planner (CPU only): pieces cover every visible key of every row exactly once on
whole key blocks, slots respect the float workspace, the merge table names each split tile's pieces,
the standard workloads W1-W7 (and W10) keep exactly today's plan, W8 splits, fixed_split_size cuts at
fixed key positions whatever the batch, and graph-mode capacities keep one layout with pieces.
tests/test_split_kv.py runs the kernels (GPU)."""

import json
from pathlib import Path

import numpy as np
import pytest

from nvrtc_attn import planner, schedule, variants
from nvrtc_attn.schedule import SplitRequest

from test_schedule import visible

WORKLOADS = Path(__file__).resolve().parent.parent / "tools" / "workloads.json"
SLOTS_128MB = planner.PartialSlots.for_workspace(128 << 20, 128, 128).slots


def _plan(batch, heads=(32, 8), head_dim=128, causal=True, window_left=-1, num_ctas=132, block_m=128,
          split=None, **kw):
    hqo, hkv = heads
    return planner.make_plan(*batch.index_args(), hqo, hkv, head_dim, batch.page_size, causal=causal,
                             window_left=window_left, num_ctas=num_ctas, block_m=block_m, split=split, **kw)


def _first_key(ks, bn):
    return ks // bn * bn


def _block_end(ks, ke, bn):
    """End of the keys a kernel computes for a tile (tile_sm90.cuh: first_key, num_blocks)."""
    first = _first_key(ks, bn)
    return np.where(ke > ks, first + -(-(ke - first) // bn) * bn, first)


def check_split(plan, unsplit, bn, group_size, causal, window_left):
    """The plan's rows are the unsplit row tiles with split ones replaced by their pieces: same req
    and rows, key ranges that partition the original one on multiples of bn (so the kernel's key
    blocks of consecutive pieces touch and never overlap), piece ids 1..P in order; the merge table
    names every split tile's pieces; every visible key of every packed row lies in exactly one
    computed block range."""
    rows, orig = plan.row_tiles, unsplit.row_tiles
    piece = rows[:, 6]
    assert (rows[:, 7] == 0).all()
    split = piece > 0
    np.testing.assert_array_equal(piece[split], np.arange(1, int(split.sum()) + 1))
    # Group the plan's rows by their row tile (req, row_start): in order, one group per original row.
    key = rows[:, 0].astype(np.int64) * (1 << 32) + rows[:, 2]
    starts = np.flatnonzero(np.concatenate(([True], key[1:] != key[:-1])))
    assert len(starts) == len(orig)
    ends = np.append(starts[1:], len(rows))
    merges = plan.merges
    m = 0
    for o, (a, b) in zip(orig, zip(starts, ends)):
        group = rows[a:b]
        assert (group[:, [0, 1, 2, 3]] == o[[0, 1, 2, 3]]).all()
        ks, ke = group[:, 4].astype(np.int64), group[:, 5].astype(np.int64)
        if b - a == 1:
            np.testing.assert_array_equal(group[0, :6], o[:6])
            assert group[0, 6] == 0
            continue
        assert (ke > ks).all(), "an empty piece"
        assert ks[0] == o[4] and ke[-1] == o[5] and (ks[1:] == ke[:-1]).all()
        assert (ks[1:] % bn == 0).all(), "an interior cut off the key blocks"
        be = _block_end(ks, ke, bn)
        assert (_first_key(ks[1:], bn) == be[:-1]).all(), "pieces' key blocks overlap or leave a gap"
        np.testing.assert_array_equal(merges[m], [o[0], 0, o[2], o[3], group[0, 6] - 1, b - a, 0, 0])
        m += 1
    assert m == plan.num_merges
    # Brute force: every visible key of every packed row, exactly once over the computed block ranges
    # (the kernel computes [first_key, block end) and masks what a row does not see).
    qo, kv = plan.qo_lens, plan.kv_lens
    masks = [visible(int(q), int(k), causal, window_left) for q, k in zip(qo, kv)]
    for b in range(len(qo)):
        mine = rows[rows[:, 0] == b]
        count = np.zeros((int(qo[b]) * group_size, int(kv[b])), np.int64)
        for r in mine:
            lo, hi = int(_first_key(r[4], bn)), int(_block_end(np.int64(r[4]), np.int64(r[5]), bn))
            count[r[2]:r[3], lo:min(hi, int(kv[b]))] += 1
        seen = masks[b][np.arange(int(qo[b]) * group_size) // group_size]
        assert (count[seen] == 1).all(), f"request {b}: a visible key computed {count[seen].max()} times or never"


def _random_long_batch(make_page_table, rng, seed):
    """Few queries per request over long (up to 32k) keys, empty requests included."""
    n = int(rng.integers(1, 5))
    qo = rng.integers(1, 200, n)
    kv = qo + rng.integers(0, 32768, n)
    qo = np.append(qo, [0, 3])
    kv = np.append(kv, [500, 0])
    return make_page_table(qo, kv, int(rng.choice([1, 16])), seed)


@pytest.mark.parametrize("seed", range(10))
def test_pieces_cover_every_visible_key_once(make_page_table, seed):
    rng = np.random.default_rng(seed)
    batch = _random_long_batch(make_page_table, rng, seed)
    causal = bool(seed % 3 != 2)
    window = [-1, -1, 3000, 700][seed % 4]
    bn = int(rng.choice([64, 128, 176]))
    heads = [(32, 8), (8, 8), (16, 2)][seed % 3]
    g = heads[0] // heads[1]
    num_ctas = int(rng.choice([132, 66]))
    unsplit = _plan(batch, heads, causal=causal, window_left=window, num_ctas=num_ctas)
    for fixed in (0, int(rng.integers(1, 8000))):
        plan = _plan(batch, heads, causal=causal, window_left=window, num_ctas=num_ctas,
                     split=SplitRequest(100000, fixed, bn))
        if fixed == 0 and seed < 4:
            assert plan.num_merges > 0, "a batch this short of tiles should split"
        check_split(plan, unsplit, bn, g, causal, window)
        assert plan.num_tiles == len(plan.row_tiles) * heads[1]
        assert plan.num_pieces == heads[1] * int((plan.row_tiles[:, 6] > 0).sum())


def test_fixed_pieces_sit_on_fixed_key_positions(make_page_table):
    """fixed_keys = 100 (e.g. fixed_split_size 25 on pages of 4) on 128-key blocks: cut at the
    multiples of 128 from key 0 of the request, whatever the tile's own range."""
    batch = make_page_table([40, 1], [1000, 300], 4, 3)
    plan = _plan(batch, (4, 1), causal=True, split=SplitRequest(1000, 100, 128))
    rows = plan.row_tiles
    assert plan.num_merges > 0
    for r in rows:
        if r[5] > r[4]:
            assert r[4] // 128 == (r[5] - 1) // 128, "a fixed piece crosses a multiple of 128"
    pieces = rows[rows[:, 6] > 0]
    assert set((pieces[:, 4] % 128).tolist()) - {0} <= set(plan.row_tiles[:, 4].tolist())  # only tile starts off-grid


def test_fixed_pieces_do_not_depend_on_the_batch(make_page_table):
    """Batch invariance in the planner: a request's pieces (key ranges, rows) are the same alone and
    inside a larger batch, on another grid and workspace."""
    alone = make_page_table([37], [20000], 16, 4)
    both = make_page_table([300, 37, 5], [1000, 20000, 70000], 16, 5)
    a = _plan(alone, split=SplitRequest(4000, 64 * 16, 176))
    b = _plan(both, num_ctas=66, split=SplitRequest(3000, 64 * 16, 176))
    mine = b.row_tiles[b.row_tiles[:, 0] == 1]
    np.testing.assert_array_equal(mine[:, 2:6], a.row_tiles[:, 2:6])
    assert a.num_merges > 0


def test_slots_respect_the_workspace(make_page_table):
    batch = make_page_table([128, 128], [16384, 16384], 16, 6)
    full = _plan(batch, split=SplitRequest(SLOTS_128MB, 0, 176))
    assert full.num_pieces == 128
    for slots in (0, 8, 64, 127, 128):
        plan = _plan(batch, split=SplitRequest(slots, 0, 176))
        assert plan.num_pieces <= slots
    assert _plan(batch, split=SplitRequest(127, 0, 176)).num_merges == 0  # 2 pieces of every tile: 128 slots
    with pytest.raises(ValueError, match="float_workspace_buffer"):
        _plan(batch, split=SplitRequest(64, 1024, 176))
    ps = planner.PartialSlots.for_workspace(128 << 20, 128, 128)
    assert (ps.slots, ps.lse_offset) == (2032, 2032 * 128 * 128 * 4)
    assert planner.PartialSlots.for_workspace(1 << 20, 128, 128).slots == 15


def _workload_batch(w):
    rng = np.random.default_rng(0)
    qo = w["qo_len"] if isinstance(w["qo_len"], list) else [w["qo_len"]] * w["requests"]
    kv = qo if w["kv_len"] == "= qo_len" else ([w["kv_len"]] * len(qo) if not isinstance(w["kv_len"], list)
                                               else w["kv_len"])
    from conftest import make_page_table

    return make_page_table(qo, kv, w["page_size"], int(rng.integers(1 << 30)))


def _workload_plans(w):
    """(plan without a split request, plan as the wrapper makes it: 128 MiB of slots, the build's key
    block, and the first one claimed at run time: what the wrapper's plan is without splits) with the
    sm90 tile of the workload's head_dim on 132 SMs."""
    batch = _workload_batch(w)
    hd = w["head_dim"]
    tile = variants.SM90_TILES[hd]
    heads = (w["num_qo_heads"], w["num_kv_heads"])
    kw = dict(head_dim=hd, causal=bool(w["causal"]), block_m=tile.block_m, l2_section_bytes=tile.l2_section_bytes)
    slots = planner.PartialSlots.for_workspace(128 << 20, tile.block_m, hd).slots

    def choose(rows):
        return variants.choose_build("sm90", "sm_90a", hd, "bfloat16", w["page_size"], heads[0] // heads[1], -1,
                                     schedule.mean_blocks_per_tile(rows, tile.block_n))

    plain = _plan(batch, heads, **kw)
    wrapped = _plan(batch, heads, choose_build=choose, split=SplitRequest(slots), **kw)
    return plain, wrapped, _plan(batch, heads, claimed=True, **kw)


def _workloads():
    return [w for w in json.loads(WORKLOADS.read_text())["workloads"] if "kv_dtype" not in w and "q_dtype" not in w]


@pytest.mark.parametrize("wid", ["W1", "W2", "W2p1", "W2p64", "W3", "W4", "W5", "W6", "W7", "W9", "W10"])
def test_standard_workloads_get_no_split(wid):
    """Their tiles fill the machine (W9: 256 tiles, makespan 3% over the mean): the plan is exactly
    today's, byte for byte, and the build the one without the split epilogue."""
    w = next(w for w in _workloads() if w["id"] == wid)
    plain, wrapped, claimed = _workload_plans(w)
    assert wrapped.num_merges == 0 and not wrapped.build.split
    assert wrapped.work.claimed and not plain.work.claimed  # sm90 claims its tiles at run time
    np.testing.assert_array_equal(wrapped.row_tiles, plain.row_tiles)
    for name in ("blocks", "entries"):
        np.testing.assert_array_equal(getattr(wrapped.work, name), getattr(plain.work, name))
    np.testing.assert_array_equal(wrapped.image, claimed.image)
    assert wrapped.layout == claimed.layout


def test_w8_splits_every_tile_in_two():
    """W8 (2 x 128 queries on 16384 keys): 64 tiles on 132 CTAs become 128 pieces of 46-47 blocks of
    176 keys, one wave, makespan halved (the worked example of schedule.split_rows)."""
    w = next(w for w in _workloads() if w["id"] == "W8")
    plain, wrapped, _ = _workload_plans(w)
    assert wrapped.build.tile.block_n == 176 and not wrapped.build.pingpong
    assert wrapped.num_merges == 8 and wrapped.num_pieces == 128 and wrapped.num_tiles == 128
    assert (wrapped.merges[:, 5] == 2).all()
    assert plain.work.makespan == 16512 and wrapped.work.makespan == 8400
    check_split(wrapped, plain, 176, 4, True, -1)
    counts = wrapped._section("counts")[: len(planner.COUNTS)]
    assert counts[planner.COUNTS.index("merges")] == 8  # what merge_split.cu loops over


def test_split_candidates_estimate(make_page_table):
    """The estimate picks whole waves: 96 equal tiles of 128 blocks on 132 CTAs (a 2-way split would
    be 192 pieces in 2 waves, no faster) become 4 pieces each (384 pieces, 3 waves of 32 blocks)."""
    batch = make_page_table([96], [16384], 16, 7)  # 96 * 4 / 128 = 3 row tiles x 32 heads = 96 tiles
    plan = _plan(batch, (128, 32), causal=False, split=SplitRequest(10000, 0, 128))
    assert plan.num_tiles == 384 and (plan.merges[:, 5] == 4).all()
    assert plan.work.makespan <= 0.8 * (16384 + schedule.TILE_OVERHEAD_KEYS)


def test_capacity_layout_holds_pieces(make_page_table):
    """Graph mode: one capacity, batches with and without splits share one layout; pieces over
    capacity.max_pieces are not planned (the automatic split stays within it)."""
    cap = planner.PlanCapacity.for_batch(2, 512, 2100, 16, 32, 8, 128, max_pieces=256)
    assert cap.max_pieces == 256 and cap.max_tiles == 8 * (512 * 4 // 128 + 2) + 256
    split = SplitRequest(SLOTS_128MB, 0, 176)
    long = _plan(make_page_table([128, 128], [16384, 16384], 16, 8), capacity=cap, split=split)
    short = _plan(make_page_table([300, 200], [300, 900], 16, 9), capacity=cap, split=split)
    assert long.num_merges == 8 and short.num_merges == 0
    assert long.layout == short.layout and long.image.nbytes == short.image.nbytes
    small = planner.PlanCapacity.for_batch(2, 512, 2100, 16, 32, 8, 128, max_pieces=64)
    assert _plan(make_page_table([128, 128], [16384, 16384], 16, 8), capacity=small, split=split).num_pieces <= 64
    with pytest.raises(ValueError, match="PlanCapacity.max_pieces"):
        small.check(2, 10, 10, 10, 65)


def test_device_tiles_name_partial_slots(make_page_table):
    """A piece tile's partial field is 1 + piece * num_kv_heads + kv_head (kv_offsets.cu writes the
    same); other tiles keep 0."""
    plan = _plan(make_page_table([128, 128], [16384, 16384], 16, 10), split=SplitRequest(SLOTS_128MB, 0, 176))
    dev = planner.device_tiles(plan.tiles, plan._section("qo_indptr"), plan.kv_lens, plan._section("kv_tok_indptr"),
                               plan.num_kv_heads)
    slots = dev[:, 10] - 1
    np.testing.assert_array_equal(np.sort(slots), np.arange(plan.num_pieces))
    np.testing.assert_array_equal(slots, (plan.tiles[:, 6] - 1) * 8 + plan.tiles[:, 1])


@pytest.mark.parametrize("hd", variants.HEAD_DIMS)
@pytest.mark.parametrize("mean_blocks", [2.0, 64.0])
@pytest.mark.parametrize("page_size", [5, 16])
def test_split_build_is_the_same_kernel_plus_partials(hd, mean_blocks, page_size):
    """Every build choose_build can pick has a split-KV twin among all_variants (compiled and
    SASS-checked in test_compile): same tile (key block, rows, shared memory layout), turn-taking and
    TMA boxes, SPLIT_KV=1 the only define that differs. sm80 builds stay as they are (no splits)."""
    build = variants.choose_build("sm90", "sm_90a", hd, "bfloat16", page_size, 4, -1, mean_blocks)
    twin = variants.split_build(build)
    assert twin.split and not build.split and variants.split_build(twin) is twin
    assert (twin.tile, twin.pingpong, twin.kv_box, twin.q_box) == (build.tile, build.pingpong, build.kv_box, build.q_box)
    a, b = dict(build.variants[0].defines), dict(twin.variants[0].defines)
    assert {k for k in a if a[k] != b[k]} == {"SPLIT_KV"} and (a["SPLIT_KV"], b["SPLIT_KV"]) == (0, 1)
    assert twin.name == build.name.replace("_sm_90a", "_split_sm_90a")
    assert twin.variants[0] in variants.all_variants()
    sm80 = variants.choose_build("sm80", "sm_90a", hd, "bfloat16", page_size, 4, -1, mean_blocks)
    assert not sm80.can_split and variants.split_build(sm80) is sm80


def test_merge_grid_and_params_follow_the_plan(make_page_table):
    from nvrtc_attn import launcher

    plan = _plan(make_page_table([128, 128], [16384, 16384], 16, 11), split=SplitRequest(SLOTS_128MB, 0, 176))
    # 8 merges x 8 heads x 128 rows x 16 chunks of 8 columns = 131072 threads
    assert launcher.merge_grid(plan) == 131072 // 256
    slots = planner.PartialSlots.for_workspace(128 << 20, 128, 128)
    mp = launcher.merge_params(plan, 1 << 20, 1 << 30, slots)
    assert mp.merges == (1 << 20) + plan.layout["merges"][0] and mp.counts == 1 << 20
    assert (mp.partial_o, mp.partial_lse) == (1 << 30, (1 << 30) + slots.lse_offset)
    assert (mp.num_kv_heads, mp.group_size, mp.head_dim, mp.block_m, mp.is_bf16) == (8, 4, 128, 128, 0)
    cap = planner.PlanCapacity.for_batch(2, 256, 2100, 16, 32, 8, 128, max_pieces=slots.slots)
    graph = _plan(make_page_table([128, 128], [16384, 16384], 16, 11), capacity=cap,
                  split=SplitRequest(SLOTS_128MB, 0, 176))
    assert launcher.merge_grid(graph) == 1024  # sized for the capacity's largest merge table


def _simulate(plan, q, k_req, v_req, bn, scale):
    """The device on the host, in float64: every tile of the plan as the sm90 kernel computes it
    (keys [first_key, first_key + blocks * bn), masked per row; tile rows as kv_offsets.cu writes
    them), pieces into their partial slots (normalized O, base-2 LSE), then merge_split.cu's
    combination. Returns (o, lse) [total_q, Hqo, D], [total_q, Hqo]."""
    hkv, g = plan.num_kv_heads, plan.group_size
    qo_indptr = plan._section("qo_indptr")[: plan.batch_size + 1]
    kv_tok = plan._section("kv_tok_indptr")[: plan.batch_size + 1]
    dev = planner.device_tiles(plan.tiles, qo_indptr, plan.kv_lens, kv_tok, hkv)
    total_q, hq, d = q.shape
    o = np.full((total_q, hq, d), np.nan)
    lse = np.full((total_q, hq), np.nan)
    slots = max(plan.num_pieces, 1)
    part_o = np.full((slots, plan.block_m, d), np.nan)
    part_lse = np.full((slots, plan.block_m), np.nan)
    log2e = 1 / np.log(2)
    no_key = 0  # rows of piece tiles that see none of the piece's keys (LSE -inf, weight 0)
    for req, kh, r0, r1, ks, ke, q0, qo_len, kv_len, _, partial, _ in dev.tolist():
        first = ks // bn * bn
        end = first + (-(-(ke - first) // bn)) * bn if ke > ks else first
        for r in range(r0, r1):
            i, h = r // g, kh * g + r % g
            hi = min(i + kv_len - qo_len + 1, kv_len) if plan.causal else kv_len
            lo = i + kv_len - qo_len - plan.window_left if plan.window_left >= 0 else 0
            j = np.arange(max(first, lo, 0), min(end, hi))
            s = k_req[req][j, kh] @ q[q0 + i, h] * scale * log2e if len(j) else np.zeros(0)
            m = s.max() if len(j) else -np.inf
            p = np.exp2(s - m) if len(j) else s
            ll = p.sum()
            out = (p @ v_req[req][j, kh]) / ll if ll > 0 else np.zeros(d)
            row_lse = m + np.log2(ll) if ll > 0 else -np.inf
            if partial:
                part_o[partial - 1, r - r0], part_lse[partial - 1, r - r0] = out, row_lse
                no_key += ll == 0
            else:
                o[q0 + i, h], lse[q0 + i, h] = out, row_lse
    for req, _, r0, r1, first_piece, pieces, _, _ in plan.merges.tolist():
        for kh in range(hkv):
            for r in range(r0, r1):
                sl = [(first_piece + jj) * hkv + kh for jj in range(pieces)]
                ls = part_lse[sl, r - r0]
                assert not np.isnan(ls).any(), "a piece slot was never written"
                mx = ls.max()
                i, h = r // g, kh * g + r % g
                w = np.exp2(ls - mx) if mx > -np.inf else np.zeros(pieces)
                o[qo_indptr[req] + i, h] = (w @ part_o[sl, r - r0]) / w.sum() if w.sum() > 0 else 0.0
                lse[qo_indptr[req] + i, h] = mx + np.log2(w.sum()) if w.sum() > 0 else -np.inf
    return o, lse, no_key


@pytest.mark.parametrize("causal, window, fixed", [(True, -1, 0), (False, -1, 0), (True, 1500, 0), (True, -1, 3),
                                                   (True, 200, 2), (False, -1, 1)])
def test_host_simulation_of_pieces_and_merge_matches_reference(make_page_table, causal, window, fixed):
    """Slots, merge table and the merge's math agree with the reference on the host (float64): a
    wrong slot, a missed or doubled key block, or a weight of a piece without keys shows here
    before any GPU run."""
    from nvrtc_attn.reference import paged_prefill_reference

    rng = np.random.default_rng(abs(hash((causal, window, fixed))) % 2**32)
    # 40 queries on 2052 keys: the last tile's rows (8 tokens) end their keys at 2045..2052, so the
    # last 128-key piece [2048, 2052) holds no key of 4 of them.
    qo, kv = [6, 0, 20, 3, 40], [3000, 400, 2500, 0 if not causal else 3, 2052]
    ps, hq, hkv, d, bn = 16, 4, 2, 16, 128
    batch = make_page_table(qo, kv, ps, 5)
    plan = planner.make_plan(*batch.index_args(), hq, hkv, d, ps, causal=causal, window_left=window, num_ctas=132,
                             block_m=16, split=SplitRequest(100000, fixed * ps, bn))
    assert plan.num_merges > 0
    pool_k = rng.standard_normal((batch.max_pages, ps, hkv, d))
    pool_v = rng.standard_normal((batch.max_pages, ps, hkv, d))
    q = rng.standard_normal((batch.total_q, hq, d))
    k_req, v_req = [], []
    for b in range(len(qo)):
        pages = batch.paged_kv_indices[batch.paged_kv_indptr[b]:batch.paged_kv_indptr[b + 1]]
        k_req.append(pool_k[pages].reshape(-1, hkv, d)[: kv[b]])
        v_req.append(pool_v[pages].reshape(-1, hkv, d)[: kv[b]])
    scale = 1 / np.sqrt(d)
    o, lse, no_key = _simulate(plan, q, k_req, v_req, bn, scale)
    if fixed and (causal or window >= 0):
        assert no_key > 0, "no piece without keys for some row: the case does not test the merge's weight 0"
    ref_o, ref_lse = paged_prefill_reference(q, (pool_k, pool_v), *batch.index_args(), causal=causal,
                                             window_left=window, compute_dtype="float64")
    assert not np.isnan(o).any() and not np.isnan(lse).any(), "an output row was never written"
    np.testing.assert_allclose(o, ref_o, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(np.isneginf(lse), np.isneginf(ref_lse))
    live = ~np.isneginf(ref_lse)
    np.testing.assert_allclose(lse[live], ref_lse[live], rtol=1e-9, atol=1e-9)


def _as_wrapper_plans(qo, kv, heads, hd, ps, causal, window, fixed, num_ctas=132, workspace=128 << 20,
                      kv_dtype=None):
    """(plan, build name) as the wrapper's plan() makes them on a 132-SM Hopper GPU with a
    workspace of that size (its choose_build: fixed_split_size pins the build without turn-taking
    and takes the split twin; pieces take the split twin). kv_dtype: an fp8 cache's builds."""
    from conftest import make_page_table

    batch = make_page_table(qo, kv, ps, 1)
    tile = variants.SM90_TILES[hd]
    slots = planner.PartialSlots.for_workspace(workspace, tile.block_m, hd).slots

    def choose(rows):
        mean = float("inf") if fixed else schedule.mean_blocks_per_tile(rows, tile.block_n)
        build = variants.choose_build("sm90", "sm_90a", hd, "bfloat16", ps, heads[0] // heads[1], window, mean,
                                      kv_dtype=kv_dtype)
        return variants.split_build(build) if fixed else build

    plan = _plan(batch, heads, head_dim=hd, causal=causal, window_left=window, num_ctas=num_ctas,
                 block_m=tile.block_m, l2_section_bytes=tile.l2_section_bytes, choose_build=choose,
                 split=SplitRequest(slots, (fixed or 0) * ps))
    build = variants.split_build(plan.build) if plan.num_merges else plan.build
    return plan, build.name


def test_gpu_cases_plan_as_they_expect():
    """Pre-flight for tests/test_split_kv.py: each GPU case splits (into the build it names), and
    the batch-invariance case's automatic plans pick different builds (so the pin is tested)."""
    from test_split_kv import CASES

    for name, qo, kv, heads, hd, ps, dtype, layout, causal, window, cap, lse_base, v_scale, fixed, expect in CASES:
        plan, kernel = _as_wrapper_plans(qo, kv, heads, hd, ps, causal, window, fixed)
        assert plan.num_merges > 0 and expect in kernel, (name, plan.num_merges, kernel)
    others = [200] * 12 + [150] * 12
    qo = others[:12] + [40] + others[12:]
    kv = [x + 50 for x in others[:12]] + [20000] + [x + 50 for x in others[12:]]
    alone, batch = (_as_wrapper_plans(*lens, (32, 8), 128, 16, True, -1, None) for lens in (([40], [20000]), (qo, kv)))
    assert alone[1] != batch[1], (alone[1], batch[1])
    for lens in (([40], [20000]), (qo, kv)):
        plan, kernel = _as_wrapper_plans(*lens, (32, 8), 128, 16, True, -1, 64)
        assert plan.num_merges > 0 and kernel == "prefill_sm90_hd128_bf16_bn176_nopp_split_sm_90a", kernel


def test_gpu_graph_case_plans_as_it_expects():
    """Pre-flight for test_split_kv.py's graph test: under the first plan's capacity and pinned
    build (turn-taking, 128-key blocks: a short first batch), each re-plan splits or not as the test
    asserts."""
    from conftest import make_page_table

    hq, hkv, ps = 16, 4, 16
    first = make_page_table([300, 200], [400, 200], ps, 1, extra_pages=0)
    tile = variants.SM90_TILES[128]
    slots = planner.PartialSlots.for_workspace(128 << 20, 128, 128).slots
    cap = planner.PlanCapacity.for_batch(2, first.total_q, 2600, ps, hq, hkv, 128, slots)
    pinned = {}

    def choose(rows):
        if not pinned:
            pinned["b"] = variants.split_build(variants.choose_build(
                "sm90", "sm_90a", 128, "bfloat16", ps, 4, -1, schedule.mean_blocks_per_tile(rows, tile.block_n)))
        return pinned["b"]

    def plan(qo, kv, fixed=0, disable=False):
        return _plan(make_page_table(qo, kv, ps, 2, extra_pages=0), (hq, hkv), capacity=cap, choose_build=choose,
                     split=None if disable else SplitRequest(slots, fixed * ps))

    assert plan([300, 200], [400, 200]).num_merges == 0
    assert pinned["b"].name == "prefill_sm90_hd128_bf16_split_sm_90a"
    assert plan([64, 64], [16000, 12000]).num_merges > 0
    assert plan([250, 250], [250, 700]).num_merges == 0
    assert plan([100, 3], [5000, 9000], fixed=32).num_merges > 0
    assert plan([64, 64], [16000, 12000], disable=True).num_merges == 0
    assert plan([10, 90], [20000, 3000]).num_merges > 0
