"""planner.make_plan: the uploaded image against the host references (make_tiles + partition,
paging.token_pages), no O(key tokens) work on the host, and fixed layouts under a PlanCapacity
(CPU only; tests/test_expand.py checks the device half)."""

import dataclasses

import numpy as np
import pytest

from nvrtc_attn import paging, planner, schedule, variants


def _plan(batch, heads=(8, 2), page_size=None, **kw):
    hqo, hkv = heads
    return planner.make_plan(*batch.index_args(), hqo, hkv, 128, page_size or batch.page_size, **kw)


def _section(plan, name, dtype=np.int32):
    start, nbytes = plan.layout[name]
    return plan.image[start:start + nbytes].view(dtype)


@pytest.mark.parametrize("seed", range(6))
def test_plan_matches_host_references(make_page_table, seed):
    rng = np.random.default_rng(seed)
    qo = rng.integers(0, 300, 7)
    kv = np.maximum(qo, rng.integers(0, 900, 7))
    qo[1], kv[1] = 0, 0                      # no queries, no keys
    qo[3], kv[4] = 0, 200                    # keys without queries
    page_size = int(rng.choice([1, 5, 16]))
    batch = make_page_table(qo, kv, page_size, seed)
    num_ctas, block_m = int(rng.choice([3, 132])), 64
    plan = _plan(batch, causal=True, num_ctas=num_ctas, block_m=block_m, l2_section_bytes=1 << 18)

    tiles = schedule.make_tiles(batch.qo_lens, batch.kv_lens, 4, 2, block_m, True, -1)
    sections = schedule.l2_sections(tiles, 4 * 128, 1 << 18)
    order, work_indptr = schedule.partition(schedule.tile_costs(tiles, block_m), num_ctas, sections)
    np.testing.assert_array_equal(plan.tiles, tiles[order])
    np.testing.assert_array_equal(plan.work_indptr, work_indptr)
    np.testing.assert_array_equal(_section(plan, "work_indptr"), work_indptr)
    assert plan.num_tiles == len(tiles)

    pages = paging.token_pages(*batch.index_args()[1:], page_size)
    np.testing.assert_array_equal(_section(plan, "kv_lens"), pages.kv_lens)
    np.testing.assert_array_equal(_section(plan, "kv_tok_indptr"), pages.kv_tok_indptr)
    np.testing.assert_array_equal(_section(plan, "qo_indptr"), batch.qo_indptr)
    host = plan.token_pages()
    np.testing.assert_array_equal(host.tok_page, pages.tok_page)
    np.testing.assert_array_equal(host.tok_slot, pages.tok_slot)
    assert plan.total_kv == len(pages.tok_page)
    assert _section(plan, "counts").tolist() == [batch.batch_size, len(tiles), len(plan.work.blocks), plan.total_kv,
                                                 num_ctas, 0, 0, 0]  # no merges; claim counters at 0
    # make_plan builds the Plan without its __init__ (planner._new_plan): the same frozen dataclass
    fields = {f.name: getattr(plan, f.name) for f in dataclasses.fields(planner.Plan)}
    assert type(plan) is planner.Plan and fields.keys() <= vars(plan).keys()  # (+ cached properties read above)
    again = planner.Plan(**fields)
    assert all(getattr(again, k) is v for k, v in fields.items())
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.batch_size = 0
    with pytest.raises(TypeError, match="missing or unknown"):
        planner._new_plan(**{k: v for k, v in fields.items() if k != "batch_size"})


@pytest.mark.parametrize("seed", range(4))
def test_claimed_plan_is_the_partition_in_claim_order(make_page_table, seed):
    """A claimed plan (sm90: the CTAs claim tiles at run time, kernels_cu/tile_sm90.cuh) has the
    partition's tiles in the order partition() takes them (section by section, cost descending, tile
    index), one queue (work_indptr [0, T]), no tile_cta, and counts with ctas 0 and both claim
    counters 0 (every upload resets them)."""
    rng = np.random.default_rng(100 + seed)
    qo = rng.integers(0, 300, 9)
    kv = np.maximum(qo, rng.integers(0, 2000, 9))
    qo[2], kv[5] = 0, 300
    batch = make_page_table(qo, kv, int(rng.choice([1, 16])), seed)
    num_ctas = int(rng.choice([3, 132]))
    kw = dict(causal=True, num_ctas=num_ctas, block_m=64, l2_section_bytes=1 << 18)
    static, claimed = _plan(batch, **kw), _plan(batch, claimed=True, **kw)
    assert claimed.work.claimed and not static.work.claimed
    tiles = schedule.make_tiles(batch.qo_lens, batch.kv_lens, 4, 2, 64, True, -1)
    sections = schedule.l2_sections(tiles, 4 * 128, 1 << 18)
    order = np.lexsort((-schedule.tile_costs(tiles, 64), sections))
    assert len(np.unique(sections)) > 1, "one L2 section: the order would check less"
    np.testing.assert_array_equal(claimed.tiles, tiles[order])
    np.testing.assert_array_equal(claimed.tiles[static.work.slot_positions()], static.tiles)
    assert claimed.num_tiles == len(tiles) and claimed.work_indptr.tolist() == [0, len(tiles)]
    np.testing.assert_array_equal(_section(claimed, "work_indptr"), [0, len(tiles)])
    assert claimed.layout["tile_cta"][1] == 0
    assert _section(claimed, "counts").tolist() == [batch.batch_size, len(tiles), len(claimed.work.blocks),
                                                    claimed.total_kv, 0, 0, 0, 0]
    for name in ("qo_indptr", "kv_lens", "kv_tok_indptr", "paged_kv_indptr", "page_indices", "rows", "blocks",
                 "entries"):
        np.testing.assert_array_equal(_section(claimed, name), _section(static, name))


def test_sm90_builds_claim_and_sm80_builds_partition(make_page_table):
    """make_plan's default: the chosen build's backend decides (sm90 claims, sm80 and no build
    partition); claimed= overrides it."""
    batch = make_page_table([100, 700, 3], [900, 700, 5], 16, 1)
    for backend, tile in (("sm90", variants.SM90_TILES[128]), ("sm80", variants.SM80_TILES[128])):
        build = variants.Build(backend, tile, ())
        plan = _plan(batch, causal=True, choose_build=lambda rows: build)
        assert plan.work.claimed == (backend == "sm90")
        assert _section(plan, "counts")[planner.COUNTS.index("ctas")] == (0 if backend == "sm90" else 132)
        assert _plan(batch, causal=True, choose_build=lambda rows: build, claimed=False).work.claimed is False
    assert not _plan(batch, causal=True).work.claimed


def test_plan_does_no_per_token_work(make_page_table, monkeypatch):
    """make_plan never expands the page table nor builds offset tables (the device does), even with
    an offsets key; it uploads only the small sections."""
    def forbidden(*args, **kwargs):
        raise AssertionError("make_plan must not run the host reference")

    for name in ("token_pages", "offsets_in_token_units", "offsets_in_elements"):
        monkeypatch.setattr(paging, name, forbidden)
    monkeypatch.setattr(planner, "build_offsets", forbidden)
    batch = make_page_table([4] * 8, [4096] * 8, 16, 0)
    for key in (None, ("units", 128), ("elements", 1 << 16, 512, 1 << 16, 512)):
        plan = _plan(batch, causal=True, offsets_key=key)
        assert plan.offsets_key == key
        upload = plan.layout[planner.UPLOADED[-1]]
        assert plan.image.nbytes == -(-sum(upload) // 256) * 256 < 8 * 4096 * 4  # not O(key tokens)
        for name in planner.DEVICE_BUILT:
            assert plan.layout[name][0] >= plan.image.nbytes  # device-built sections follow the upload
        assert plan.workspace_bytes >= plan.layout["v_tok_elems"][0] + 8 * plan.total_kv


def test_given_lengths_and_max_page_index_change_nothing(make_page_table):
    """What the caller passes from validation (PlanArgs: lengths, max_page_index) gives the plan
    make_plan computes itself."""
    batch = make_page_table([5, 300, 0, 40], [9, 300, 17, 0], 16, 2)
    own = _plan(batch, causal=True)
    args = batch.index_args()
    used = np.asarray(args[2])[: int(args[1][-1])]
    given = _plan(batch, causal=True, max_page_index=int(used.max()),
                  lengths=(np.diff(np.asarray(args[0], dtype=np.int64)), paging.kv_lengths(args[1], args[3], 16)))
    assert given.max_page_index == own.max_page_index
    assert given.image.tobytes() == own.image.tobytes() and given.layout == own.layout


def test_layout_sections_aligned_and_disjoint(make_page_table):
    plan = _plan(make_page_table([5, 300, 0], [9, 300, 17], 16, 3), causal=True)
    spans = [plan.layout[name] for name in planner.SECTIONS]
    for (start, nbytes), (next_start, _) in zip(spans, spans[1:]):
        assert start % 256 == 0 and start + nbytes <= next_start
    assert plan.layout["tiles"][1] == 48 * plan.num_tiles
    assert plan.layout["tok_units"][1] == 4 * plan.total_kv


def test_mean_blocks_of_row_tiles_is_that_of_the_tiles(make_page_table):
    """The wrapper picks the sm90 build from the row tiles: every KV head repeats them."""
    plan = _plan(make_page_table([100, 700, 3], [900, 700, 5], 16, 1), causal=True)
    assert schedule.mean_blocks_per_tile(plan.row_tiles, 128) == schedule.mean_blocks_per_tile(plan.tiles, 128)


@pytest.mark.parametrize("seed", range(4))
def test_sm90_plans_carry_the_kernels_key_blocks(make_page_table, seed):
    """An sm90 plan's tiles start on their build's key blocks (schedule.key_blocks: the kernel reads
    them from the plan), cover the same blocks as the visible ranges, and keep empty tiles empty; the
    rest of the plan (work list, partition) is that of the plan without a build. sm80 plans keep the
    visible ranges."""
    rng = np.random.default_rng(seed)
    batch = make_page_table([100, 700, 3, 0, 40], [900, 700, 5, 9, 3000], 16, seed)
    window = int(rng.choice([100, 333, 1000]))
    causal = bool(seed % 2)
    bare = _plan(batch, causal=causal, window_left=window, block_m=128)
    for backend, block_n in (("sm90", 128), ("sm90", 176), ("sm80", 64)):
        tile = variants.SM90_TILES[128] if backend == "sm90" else variants.SM80_TILES[64]
        build = variants.Build(backend, dataclasses.replace(tile, block_n=block_n), ())
        plan = _plan(batch, causal=causal, window_left=window, block_m=128, choose_build=lambda rows: build)
        rows, vis = plan.row_tiles, bare.row_tiles
        np.testing.assert_array_equal(np.delete(rows, 4, axis=1), np.delete(vis, 4, axis=1))
        np.testing.assert_array_equal(plan.work.entries, bare.work.entries)
        if backend == "sm80":
            np.testing.assert_array_equal(rows, vis)
            continue
        live = vis[:, 5] > vis[:, 4]
        assert (vis[:, 4] % block_n != 0).any(), "no tile starts off the key blocks: the test checks nothing"
        assert (rows[live, 4] % block_n == 0).all()
        assert (rows[live, 4] <= vis[live, 4]).all() and (vis[live, 4] - rows[live, 4] < block_n).all()
        np.testing.assert_array_equal(rows[~live, 4], vis[~live, 4])
        first, count = schedule.key_blocks(vis[:, 4], vis[:, 5], block_n)
        np.testing.assert_array_equal(first[live], rows[live, 4])
        np.testing.assert_array_equal(count, schedule.key_blocks(rows[:, 4], rows[:, 5], block_n)[1])


def test_key_blocks():
    first, count = schedule.key_blocks([0, 100, 5, 300, 0], [128, 300, 5, 301, 0], 128)
    np.testing.assert_array_equal(first, [0, 0, 5, 256, 0])
    np.testing.assert_array_equal(count, [1, 3, 0, 1, 0])


# --------------------------------------------------------------------------------------------
# Fixed-capacity plans (CUDA-graph mode)


def _capacity(batch_size=4, max_total_q=600, max_pages=80, page_size=16):
    return planner.PlanCapacity.for_batch(batch_size, max_total_q, max_pages, page_size, 8, 2, 64)


def test_capacity_layouts_identical_across_batches(make_page_table):
    cap = _capacity()
    batches = [make_page_table([100, 200, 300, 0], [100, 400, 700, 9], 16, 0),
               make_page_table([1, 1], [1200, 1], 16, 1),
               make_page_table([150, 150, 150, 150], [150, 150, 150, 150], 16, 2),
               make_page_table([0], [0], 16, 3)]
    plans = [_plan(b, causal=True, block_m=64, capacity=cap) for b in batches]
    for plan in plans[1:]:
        assert plan.layout == plans[0].layout
        assert plan.workspace_bytes == plans[0].workspace_bytes and plan.image.nbytes == plans[0].image.nbytes
        assert plan.capacity == cap
    # Requests past the batch read as empty: the indptr sections repeat their last value.
    short = plans[1]
    for name in ("qo_indptr", "kv_tok_indptr", "paged_kv_indptr"):
        sec = _section(short, name)[: cap.batch_size + 1]
        assert (sec[short.batch_size:] == sec[short.batch_size]).all()
    for plan, batch in zip(plans, batches):  # the host references still read the padded sections
        pages = paging.token_pages(*batch.index_args()[1:], 16)
        np.testing.assert_array_equal(plan.token_pages().tok_page, pages.tok_page)
    # The same batch planned compactly has the same tiles and a smaller layout.
    compact = _plan(batches[0], causal=True, block_m=64)
    np.testing.assert_array_equal(compact.tiles, plans[0].tiles)
    assert compact.workspace_bytes < plans[0].workspace_bytes


def test_capacity_bound_holds_for_random_batches(make_page_table):
    rng = np.random.default_rng(5)
    for seed in range(30):
        batch_size = int(rng.integers(1, 9))
        qo = rng.integers(0, 400, batch_size)
        kv = qo + rng.integers(0, 300, batch_size)
        batch = make_page_table(qo, kv, 16, seed)
        cap = planner.PlanCapacity.for_batch(batch_size, int(qo.sum()), int(batch.paged_kv_indptr[-1]), 16,
                                             8, 2, 64)
        plan = _plan(batch, causal=True, block_m=64, capacity=cap)  # exactly at the bounds: no error
        assert plan.num_tiles <= cap.max_tiles and plan.total_kv <= cap.max_kv_tokens


@pytest.mark.parametrize("what, qo, kv", [("batch_size", [1] * 5, [1] * 5),
                                          ("max_tiles", [600, 0], [600, 0]),
                                          ("max_kv_tokens", [1, 1], [700, 700]),
                                          ("max_pages", [1], [81 * 16])])
def test_batch_over_capacity_raises(make_page_table, what, qo, kv):
    # 4 requests, 72 tiles (4 * 500 / 64 + 4 row tiles on 2 KV heads), 1000 key tokens, 80 pages
    cap = planner.PlanCapacity(4, 72, 1000 if what == "max_kv_tokens" else 10**6, 80)
    with pytest.raises(ValueError, match=f"PlanCapacity.{what}"):
        _plan(make_page_table(qo, kv, 16, 0), causal=True, block_m=64, capacity=cap)
