"""schedule.py invariants: tiles cover every query row once with the brute-force key range; the
partition is a deterministic longest-first CSR work list within the greedy balance bound; the
planner's compact work list (row tiles, blocks, waves) is exactly that partition (CPU only)."""

import numpy as np
import pytest

from nvrtc_attn.schedule import TILE_OVERHEAD_KEYS, l2_sections, make_tiles, partition, tile_costs

SEEDS = range(8)


def visible(qo_len, kv_len, causal, window_left):
    """bool[qo_len, kv_len] straight from the contract's mask definition."""
    i = np.arange(qo_len)[:, None]
    j = np.arange(kv_len)[None, :]
    c = kv_len - qo_len
    mask = (i < qo_len) & (j < kv_len)  # full [qo_len, kv_len] even when nothing else applies
    if causal:
        mask = mask & (j <= i + c)
    if window_left >= 0:
        mask = mask & (j >= i + c - window_left)
    return mask


def random_batch(rng):
    batch = int(rng.integers(1, 7))
    qo = rng.integers(0, 40, size=batch)
    kv = rng.integers(0, 60, size=batch)
    # Always exercise the edge cases: empty query, empty keys, qo_len > kv_len, qo_len < kv_len.
    qo = np.concatenate((qo, [0, 5, 30, 4, 0]))
    kv = np.concatenate((kv, [10, 0, 7, 50, 0]))
    return qo.astype(np.int32), kv.astype(np.int32)


def check_tiles(tiles, qo, kv, group_size, num_kv_heads, block_m, causal, window_left):
    assert tiles.dtype == np.int32 and tiles.ndim == 2 and tiles.shape[1] == 8
    assert (tiles[:, 6:] == 0).all()
    req, kh, r0, r1, k0, k1 = (tiles[:, col] for col in range(6))
    assert ((r1 - r0 >= 1) & (r1 - r0 <= block_m)).all()
    assert ((kh >= 0) & (kh < num_kv_heads)).all()

    # Expand packed rows to (request, qo head, query token) and count.
    num_qo_heads = group_size * num_kv_heads
    counts = [np.zeros((num_qo_heads, q), np.int64) for q in qo]
    for b, h, lo, hi in zip(req, kh, r0, r1):
        r = np.arange(lo, hi)
        np.add.at(counts[b], (h * group_size + r % group_size, r // group_size), 1)
    for b in range(len(qo)):
        assert (counts[b] == 1).all(), f"request {b} rows not covered exactly once"

    # Key range = union of visible keys over the tile's rows, by brute force.
    masks = [visible(q, k, causal, window_left) for q, k in zip(qo, kv)]
    for b, lo, hi, ks, ke in zip(req, r0, r1, k0, k1):
        seen = masks[b][np.arange(lo, hi) // group_size].any(axis=0)
        keys = np.flatnonzero(seen)
        if keys.size == 0:
            assert (ks, ke) == (0, 0)  # empty tiles are canonical, never a negative kv_end
        else:
            assert (ks, ke) == (keys[0], keys[-1] + 1) and seen[ks:ke].all()
        assert 0 <= ks and ke <= kv[b]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("causal", (False, True))
@pytest.mark.parametrize("window_left", (-1, 0, 3, 17))
def test_tiles_cover_rows_and_visible_keys(seed, causal, window_left):
    rng = np.random.default_rng([seed, window_left + 1, int(causal)])
    qo, kv = random_batch(rng)
    group_size = int(rng.choice([1, 2, 4, 7]))
    num_kv_heads = int(rng.integers(1, 4))
    block_m = int(rng.choice([1, 4, 16, 64]))
    tiles = make_tiles(qo, kv, group_size, num_kv_heads, block_m, causal, window_left)
    check_tiles(tiles, qo, kv, group_size, num_kv_heads, block_m, causal, window_left)
    # Same inputs, same tiles; int64 inputs give the same answer.
    again = make_tiles(qo.astype(np.int64), kv.astype(np.int64), group_size, num_kv_heads, block_m, causal, window_left)
    np.testing.assert_array_equal(tiles, again)


def test_tiles_docstring_example_and_empty_requests():
    np.testing.assert_array_equal(
        make_tiles([3], [5], 2, 1, 4, True, -1), [[0, 0, 0, 2, 0, 3, 0, 0], [0, 0, 2, 6, 0, 5, 0, 0]]
    )
    # qo_len 0 -> no tiles; kv_len 0 -> tiles that see nothing but still exist.
    tiles = make_tiles([0, 3], [8, 0], 1, 2, 2, False, -1)
    np.testing.assert_array_equal(tiles[:, :6], [[1, 0, 0, 2, 0, 0], [1, 0, 2, 3, 0, 0],
                                                  [1, 1, 0, 2, 0, 0], [1, 1, 2, 3, 0, 0]])
    assert make_tiles([0, 0], [4, 0], 4, 2, 64, True, -1).shape == (0, 8)
    assert make_tiles(np.zeros(0, np.int32), np.zeros(0, np.int32), 1, 1, 64, True, -1).shape == (0, 8)


def test_tile_costs():
    tiles = make_tiles([3, 1], [5, 0], 2, 1, 4, True, -1)
    np.testing.assert_array_equal(tile_costs(tiles), [3 + TILE_OVERHEAD_KEYS, 5 + TILE_OVERHEAD_KEYS, TILE_OVERHEAD_KEYS])
    np.testing.assert_array_equal(tile_costs(tiles, block_m=4), 4 * tile_costs(tiles))
    assert tile_costs(tiles).dtype == np.int64


def check_partition(costs, num_ctas):
    order, work_indptr = partition(costs, num_ctas)
    costs = np.asarray(costs, np.int64)
    n = len(costs)
    assert order.dtype == np.int32 and work_indptr.dtype == np.int32
    assert work_indptr.shape == (num_ctas + 1,) and work_indptr[0] == 0 and work_indptr[-1] == n
    assert (np.diff(work_indptr) >= 0).all()
    np.testing.assert_array_equal(np.sort(order), np.arange(n))  # each tile exactly once
    loads = np.array([costs[order[a:b]].sum() for a, b in zip(work_indptr[:-1], work_indptr[1:])])
    for a, b in zip(work_indptr[:-1], work_indptr[1:]):
        assert (np.diff(costs[order[a:b]]) <= 0).all()  # longest first within a CTA
    if n:
        assert loads.max() <= loads.sum() / num_ctas + costs.max()  # greedy (LPT) bound
    order2, work_indptr2 = partition(costs.copy(), num_ctas)
    np.testing.assert_array_equal(order, order2)
    np.testing.assert_array_equal(work_indptr, work_indptr2)
    return order, work_indptr, loads


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("num_ctas", (1, 3, 16, 132))
def test_partition_random(seed, num_ctas):
    rng = np.random.default_rng(seed * 1000 + num_ctas)
    n = int(rng.integers(0, 300))
    # Few distinct values so ties are common.
    costs = rng.choice([0, 1, 7, 64, 128, 129, 4096], size=n)
    check_partition(costs, num_ctas)


@pytest.mark.parametrize("seed", SEEDS)
def test_partition_on_real_tiles(seed):
    rng = np.random.default_rng(seed)
    qo, kv = random_batch(rng)
    tiles = make_tiles(qo, kv, 4, 2, 16, True, -1)
    check_partition(tile_costs(tiles, 16), int(rng.integers(1, 40)))


def test_partition_worked_example():
    order, work_indptr = partition([5, 3, 3, 2, 2, 1], 2)
    np.testing.assert_array_equal(order, [0, 3, 5, 1, 2, 4])
    np.testing.assert_array_equal(work_indptr, [0, 3, 6])


def test_partition_more_ctas_than_tiles():
    order, work_indptr, loads = check_partition([3, 9, 1], 8)
    # One tile each, longest to the lowest CTA id; the rest are empty.
    np.testing.assert_array_equal(order, [1, 0, 2])
    np.testing.assert_array_equal(work_indptr, [0, 1, 2, 3, 3, 3, 3, 3, 3])
    order, work_indptr, _ = check_partition(np.zeros(0, np.int64), 4)
    assert order.shape == (0,)
    np.testing.assert_array_equal(work_indptr, [0, 0, 0, 0, 0])


def _heap_longest_first(sorted_costs, num_ctas):
    """Reference: one tile at a time to the least-loaded CTA, ties to the lowest id."""
    import heapq

    heap = [(0, c) for c in range(num_ctas)]
    out = []
    for cost in sorted_costs:
        load, cta = heap[0]
        heapq.heapreplace(heap, (load + int(cost), cta))
        out.append(cta)
    return np.array(out, dtype=np.int64)


@pytest.mark.parametrize("seed", range(12))
def test_vectorized_assignment_matches_one_tile_at_a_time(seed):
    """The run-vectorized assignment (and its heap fallback, reached when tiny tiles follow big
    ones) gives exactly the one-at-a-time longest-first result."""
    from nvrtc_attn.schedule import _assign_longest_first

    rng = np.random.default_rng(seed)
    for num_ctas in (1, 2, 7, 132, 600):
        n = int(rng.integers(0, 2000))
        costs = [rng.integers(1, 10**6, n),                         # spread
                 rng.choice([0, 1, 7, 64, 128, 129, 4096], n),      # few values, big and tiny
                 rng.integers(0, 3, n),                             # tiny: loads spread past costs
                 np.full(n, 5)][seed % 4]                           # all equal
        sorted_costs = np.sort(np.asarray(costs, np.int64))[::-1].copy()
        np.testing.assert_array_equal(_assign_longest_first(sorted_costs, num_ctas),
                                      _heap_longest_first(sorted_costs, num_ctas))


def test_partition_rejects_no_ctas():
    with pytest.raises(ValueError, match="num_ctas"):
        partition([1, 2], 0)


def test_l2_sections_group_requests_and_heads_within_budget():
    # 3 requests x 2 KV heads; group bytes = longest kv_end x 10 bytes per token.
    tiles = make_tiles([4, 4, 4], [100, 300, 50], group_size=1, num_kv_heads=2, block_m=2,
                       causal=False, window_left=-1)
    sec = l2_sections(tiles, kv_bytes_per_token=10, budget=4000)
    # groups (req, head): 1000, 1000, 3000, 3000, 500, 500 bytes -> sections 0 0 | 1 | 2 2 2
    group_sections = [0, 0, 1, 2, 2, 2]
    want = np.repeat(group_sections, 2)  # two tiles per group
    np.testing.assert_array_equal(sec, want)
    assert l2_sections(tiles[:0], 10).shape == (0,)


def test_partition_with_sections_runs_sections_in_order():
    costs = np.array([1, 9, 5, 7, 3, 8])
    sections = np.array([1, 1, 0, 0, 1, 0])
    order, work_indptr = partition(costs, 2, sections)
    # section 0 longest first (8, 7, 5), then section 1 (9, 3, 1), each to the least-loaded CTA
    taken = sorted(range(6), key=lambda t: (sections[t], -costs[t]))
    assert taken == [5, 3, 2, 1, 4, 0]
    for c in range(2):
        mine = order[work_indptr[c]:work_indptr[c + 1]].tolist()
        assert mine == [t for t in taken if t in mine], "a CTA runs its tiles in section order"
    loads = [costs[order[work_indptr[c]:work_indptr[c + 1]]].sum() for c in range(2)]
    assert max(loads) <= costs.sum() / 2 + costs.max()


def test_device_tiles_carry_request_lengths():
    """The kernels decode a tile without dependent loads: q0, qo_len, kv_len and the request's first
    offset-table token sit in the tile row (planner.DEVICE_TILE_FIELDS)."""
    from nvrtc_attn.planner import DEVICE_TILE_FIELDS, device_tiles

    qo_lens, kv_lens = [3, 0, 5], [7, 4, 5]
    tiles = make_tiles(qo_lens, kv_lens, group_size=2, num_kv_heads=2, block_m=4, causal=True, window_left=-1)
    qo_indptr = np.concatenate(([0], np.cumsum(qo_lens)))
    kv_tok_indptr = np.concatenate(([0], np.cumsum(kv_lens)))
    dev = device_tiles(tiles, qo_indptr, np.asarray(kv_lens), kv_tok_indptr)
    assert dev.shape == (len(tiles), len(DEVICE_TILE_FIELDS)) == (len(tiles), 12) and dev.dtype == np.int32
    np.testing.assert_array_equal(dev[:, :6], tiles[:, :6])
    for row in dev:
        r = row[0]
        assert (row[6], row[7], row[8], row[9]) == (qo_indptr[r], qo_lens[r], kv_lens[r], kv_tok_indptr[r])
    assert (dev[:, 10:] == 0).all()
    assert device_tiles(tiles[:0], qo_indptr, np.asarray(kv_lens), kv_tok_indptr).shape == (0, 12)


def test_mean_blocks_per_tile():
    from nvrtc_attn.schedule import mean_blocks_per_tile

    tiles = np.zeros((3, 8), dtype=np.int32)
    tiles[:, 4:6] = [[0, 128], [100, 300], [5, 5]]  # 1 block; keys 0..300 from block 0 -> 3; empty -> 0
    assert mean_blocks_per_tile(tiles, 128) == (1 + 3 + 0) / 3
    assert mean_blocks_per_tile(tiles[:0], 128) == 0.0


def test_key_blocks_from_key_zero_match_the_general_rule():
    """key_blocks' shortcut for ranges that all start at key 0 gives the general rule's answer
    (also for empty and reversed ranges)."""
    from nvrtc_attn.schedule import key_blocks

    rng = np.random.default_rng(3)
    for bn in (1, 16, 128, 176):
        ends = rng.integers(-3, 1000, 50)
        first, count = key_blocks(np.zeros(50, np.int64), ends, bn)
        live = ends > 0
        np.testing.assert_array_equal(first, np.zeros(50))
        np.testing.assert_array_equal(count, np.where(live, -(-ends // bn), 0))
        assert first.dtype == count.dtype == np.int64


def test_may_split_never_skips_a_batch_with_split_candidates():
    """schedule_rows skips the split candidates (_may_split False) only when no row tile has the
    2 x SPLIT_MIN_PIECE_BLOCKS key blocks _auto_pieces needs for a candidate."""
    from nvrtc_attn.schedule import SPLIT_MIN_PIECE_BLOCKS, _may_split, key_blocks, row_tiling

    rng = np.random.default_rng(5)
    for _ in range(300):
        qo = rng.integers(1, 40, 3)
        kv = qo + rng.integers(0, 3000, 3)
        window = int(rng.choice([-1, 0, 100, 700]))
        bn = int(rng.choice([64, 128, 176]))
        r = row_tiling(qo, kv, int(rng.choice([1, 4])), 64, bool(rng.integers(0, 2)), window)
        longest = int(key_blocks(r.rows[:, 4], r.rows[:, 5], bn)[1].max())
        if longest >= 2 * SPLIT_MIN_PIECE_BLOCKS:
            assert _may_split(int(r.cost.max()), bn)


def _loop_sections(group_bytes, budget):
    """Reference: one group at a time (a section takes groups while empty or while they fit)."""
    section, used, out = 0, 0, []
    for nbytes in group_bytes:
        if used and used + nbytes > budget:
            section, used = section + 1, 0
        used += nbytes
        out.append(section)
    return out


@pytest.mark.parametrize("seed", range(6))
def test_section_starts_match_one_group_at_a_time(seed):
    """Bisection per section (and the closed form for equal groups) give the loop's sections,
    including empty groups, groups larger than the budget and a zero budget."""
    from nvrtc_attn.schedule import _equal_section_starts, _section_starts

    rng = np.random.default_rng(seed)
    for _ in range(200):
        n = int(rng.integers(0, 40))
        sizes = rng.choice([0, 0, 1, 5, 9, 10, 11, 30], size=n).tolist()
        budget = int(rng.choice([0, 1, 10, 20, 64]))
        for per_item in (1, 3):  # groups in runs of equal size (a request's KV heads)
            want = _loop_sections(np.repeat(sizes, per_item).tolist(), budget)
            starts = _section_starts(sizes, per_item, budget)
            got = np.cumsum(np.isin(np.arange(n * per_item), starts[1:])).tolist()
            assert got == want and (not n or starts[0] == 0)
        size = int(rng.choice([0, 1, 7, 10, 30]))
        eq = _equal_section_starts(n, size, budget)
        assert np.cumsum(np.isin(np.arange(n), eq[1:])).tolist() == _loop_sections([size] * n, budget)


def test_row_tiles_are_the_tiles_of_each_kv_head():
    from nvrtc_attn.schedule import row_tiles

    qo, kv = [3, 0, 5, 1], [5, 4, 9, 1]
    rows = row_tiles(qo, kv, 2, 4, True, -1)
    tiles = make_tiles(qo, kv, 2, 3, 4, True, -1)
    for h in range(3):
        np.testing.assert_array_equal(tiles[tiles[:, 1] == h][:, [0, 2, 3, 4, 5]], rows[:, [0, 2, 3, 4, 5]])
    assert (rows[:, 1] == 0).all() and rows.dtype == np.int32
    np.testing.assert_array_equal(row_tiles([3], [5], 2, 4, True, -1), [[0, 0, 0, 2, 0, 3, 0, 0],
                                                                         [0, 0, 2, 6, 0, 5, 0, 0]])
    assert row_tiles([0, 0], [4, 0], 4, 64, False, -1).shape == (0, 8)


def _reference_work(qo, kv, group, heads, block_m, causal, window_left, kv_bytes, num_ctas, budget):
    tiles = make_tiles(qo, kv, group, heads, block_m, causal, window_left)
    order, work_indptr = partition(tile_costs(tiles, block_m), num_ctas, l2_sections(tiles, kv_bytes, budget))
    return tiles[order], work_indptr


@pytest.mark.parametrize("seed", range(10))
def test_work_list_is_the_partition_of_the_tiles(seed):
    """work_list on row tiles, decoded, is exactly partition()'s CTA-ordered tiles: sections that
    split a request's heads, equal and mixed lengths, empty requests, windows, few and many CTAs."""
    from nvrtc_attn.schedule import decode_tiles, row_tiles, work_list

    rng = np.random.default_rng(seed)
    for case in range(40):
        batch = int(rng.integers(1, 10))
        qo = rng.integers(0, 200, batch)
        kv = rng.integers(0, 1500, batch)
        if case % 4 == 0:  # equal requests: equal costs in runs, the closed-form sections
            qo[:], kv[:] = qo[0], kv[0]
        causal = bool(case % 2)
        if causal:
            kv = np.maximum(kv, qo)
        group, heads = int(rng.choice([1, 4, 8])), int(rng.choice([1, 2, 8]))
        block_m, window_left = int(rng.choice([16, 64, 128])), int(rng.choice([-1, -1, 0, 40]))
        num_ctas, kv_bytes = int(rng.choice([1, 5, 132])), int(rng.choice([16, 512]))
        budget = int(rng.choice([0, 3000, 1 << 17, 24 << 20]))
        want_tiles, want_indptr = _reference_work(qo, kv, group, heads, block_m, causal, window_left, kv_bytes,
                                                  num_ctas, budget)
        rows = row_tiles(qo, kv, group, block_m, causal, window_left)
        work = work_list(rows, heads, kv_bytes, num_ctas, budget)
        np.testing.assert_array_equal(decode_tiles(rows, work), want_tiles)
        np.testing.assert_array_equal(work.work_indptr, want_indptr)
        assert work.num_tiles == len(want_tiles) and work.blocks[:1, 0].tolist() in ([], [0])


def test_work_list_docstring_example_and_empty():
    from nvrtc_attn.schedule import decode_tiles, work_list

    rows = np.zeros((4, 8), np.int32)
    rows[:, 0] = [0, 0, 1, 1]
    rows[:, 4:6] = [[0, 3], [0, 5], [0, 3], [0, 5]]  # costs (key ranges) 3, 5 and 3, 5
    work = work_list(rows, 2, 1, 3)
    np.testing.assert_array_equal(work.blocks, [[0, 1, 0, 0], [2, 1, 1, 0], [4, 1, 2, 0], [6, 1, 3, 0]])
    np.testing.assert_array_equal(work.entries, [1, 3, 0, 2])
    assert decode_tiles(rows, work).shape == (8, 8)
    empty = work_list(rows[:0], 2, 1, 3)
    assert empty.num_tiles == 0 and empty.blocks.shape == (0, 4)
    np.testing.assert_array_equal(empty.work_indptr, [0, 0, 0, 0])
    assert decode_tiles(rows[:0], empty).shape == (0, 8)


def test_assignment_across_sections_matches_one_tile_at_a_time():
    """Waves that fail their check (a section's big tiles after small ones, zero costs) fall back
    to exact runs and the heap without changing the result."""
    from nvrtc_attn.schedule import _assign_longest_first

    rng = np.random.default_rng(7)
    for _ in range(60):
        num_ctas = int(rng.choice([1, 3, 16, 132]))
        parts = [np.sort(rng.choice([0, 1, 3, 50, 900, 4000], int(rng.integers(0, 700))))[::-1]
                 for _ in range(int(rng.integers(1, 5)))]
        costs = np.concatenate(parts).astype(np.int64)
        np.testing.assert_array_equal(_assign_longest_first(costs, num_ctas), _heap_longest_first(costs, num_ctas))


def test_equal_cost_tail_matches_one_tile_at_a_time():
    """A tail of equal costs (non-causal batches of equal requests) takes its waves at once: the
    same CTAs, tiles per CTA and makespan as one tile at a time, also after unequal tiles and when
    the cost is within the CTAs' spread (no shortcut then)."""
    from nvrtc_attn.schedule import _key_bits, _longest_first

    rng = np.random.default_rng(3)
    for _ in range(40):
        num_ctas = int(rng.choice([1, 2, 5, 132]))
        head = np.sort(rng.integers(0, 3000, int(rng.integers(0, 400))))[::-1]
        costs = np.concatenate((head, np.full(int(rng.integers(1, 900)), int(rng.integers(0, 2000))))).astype(np.int64)
        bits = _key_bits(num_ctas)
        cta, counts, makespan = _longest_first(costs << bits, num_ctas, bits)
        want = _heap_longest_first(costs, num_ctas)
        np.testing.assert_array_equal(cta, want)
        np.testing.assert_array_equal(counts, np.bincount(want, minlength=num_ctas))
        loads = np.bincount(want, weights=costs, minlength=num_ctas)
        assert makespan == int(loads.max())
