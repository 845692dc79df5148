"""Work tiles (packed query rows x visible key range) in longest-first order, and their
longest-first partition over CTAs.

Pure NumPy, run once in plan(). The sm80 kernel's CTAs run the partition (a CSR list, one per CTA);
the sm90 kernel's CTAs claim the tiles in the same order at run time (WorkList.claimed), so its
plans skip the partition unless a split decision needs its makespans.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

__all__ = ["TILE_OVERHEAD_KEYS", "TILE_FIELDS", "L2_SECTION_BYTES", "row_tiles", "make_tiles", "tile_costs",
           "l2_sections", "partition", "WorkList", "work_list", "plan_work", "decode_tiles", "key_blocks",
           "align_key_starts", "mean_blocks_per_tile", "RowTiling", "row_tiling", "SplitRequest", "MERGE_FIELDS",
           "Schedule", "schedule_rows", "split_rows"]

# Column meaning of a tile row (a row is 32 bytes). piece: 0 for a tile that writes its output, else
# 1 + the index of the piece (split_rows) whose partial result it writes; reserved is zero.
TILE_FIELDS = ("req", "kv_head", "row_start", "row_end", "kv_start", "kv_end", "piece", "reserved")

# Fixed cost of a tile, in key columns of a full block_m-row tile. A tile pays for its Q load, the
# pipeline fill before its first K/V block arrives, the softmax finalization and the O/LSE store
# whatever its key range. Worked example (H100, block_m = 128, D = 128, bf16): one 128-key block is
# 2*2*128*128*128 = 8.4 MFLOP, ~1.1 us on one SM at ~7.5 TFLOP/s; the first-load latency plus the
# epilogue is ~1 us, so a tile costs about one extra 128-key block. It also keeps tiles with an
# empty key range (they still write zeros / -inf) from looking free to the partition.
TILE_OVERHEAD_KEYS = 128


class RowTiling(NamedTuple):
    """Row tiles and what the work list needs of them (requests without rows left out)."""

    rows: np.ndarray      # int32 [R, 8], see row_tiles
    ordinal: np.ndarray   # int64 [R]: index of the row's request among the requests with rows
    first: np.ndarray     # int64 [n]: first row of each request with rows
    req_rows: np.ndarray  # int64 [n]: its number of rows
    req_end: np.ndarray   # int64 [n]: its largest kv_end
    cost: np.ndarray      # int64 [R]: kv_end - kv_start + TILE_OVERHEAD_KEYS (>= TILE_OVERHEAD_KEYS)


def row_tiles(qo_lens, kv_lens, group_size: int, block_m: int, causal: bool, window_left: int) -> np.ndarray:
    """The tiles of one KV head: every request's packed rows cut into tiles of <= block_m rows.

    Same rows and key ranges as make_tiles (whose tiles are these, once per KV head), in (request,
    row_start) order with kv_head = 0: int32[R, 8], R = sum over requests of ceil(qo_len * group_size
    / block_m). The key range of a tile does not depend on its KV head, so the planner works on R
    rows instead of R * num_kv_heads tiles.

    Example: qo_lens=[3], kv_lens=[5], group_size=2, block_m=4, causal=True, window_left=-1
      -> [[0, 0, 0, 2, 0, 3, 0, 0], [0, 0, 2, 6, 0, 5, 0, 0]]
    """
    return row_tiling(qo_lens, kv_lens, group_size, block_m, causal, window_left).rows


def row_tiling(qo_lens, kv_lens, group_size: int, block_m: int, causal: bool, window_left: int) -> RowTiling:
    """row_tiles and what the work list needs of them (see RowTiling), in one pass."""
    qo = np.asarray(qo_lens, dtype=np.int64)
    kv = np.asarray(kv_lens, dtype=np.int64)
    g, block_m, window_left = int(group_size), int(block_m), int(window_left)
    if block_m <= 0 or g <= 0:
        raise ValueError(f"block_m and group_size must be positive, got {block_m} and {g}")

    # Per request first (B values), then one gather per row: plan() pays per call, not per row.
    packed = qo * g
    per_req = (packed + (block_m - 1)) // block_m  # ceil; 0 when qo_len == 0
    first_row = np.zeros(len(qo) + 1, dtype=np.int64)
    np.add.accumulate(per_req, out=first_row[1:])
    n = int(first_row[-1])
    req = np.arange(len(qo), dtype=np.int64).repeat(per_req)
    if causal:
        # The partial tile goes first, where causal rows see the fewest keys: a kernel computes all
        # block_m rows of a tile, so a partial last tile would waste the most expensive key range.
        # Row i (of all) ends (rows after it in its request) * block_m before the packed rows do.
        # (Per-request values reach their rows by repeat, cheaper than a gather by req.)
        last = first_row[1:] - 1  # each request's last row
        end_offset = packed - last * block_m
        row_end = end_offset.repeat(per_req)
        row_end += np.arange(0, n * block_m, block_m, dtype=np.int64)
        row_start = row_end - block_m
        np.maximum(row_start, 0, out=row_start)
    else:
        row_start = np.arange(0, n * block_m, block_m, dtype=np.int64) - (first_row[:-1] * block_m).repeat(per_req)
        row_end = np.minimum(row_start + block_m, packed.repeat(per_req))

    # lo(i) and hi(i) are non-decreasing in i and consecutive non-empty ranges touch, so the union
    # over the tile's queries [i_first, i_last] is one range [lo(i_first), hi(i_last)), where
    # i_first is the first query that sees anything. Only causal rows can see nothing (i + c < 0,
    # then kv_end <= 0) besides kv_len == 0 (then c = -qo_len and the window start is below 0); a
    # non-causal window always keeps j = kv_len - 1 since i < qo_len. Tiles that see nothing get
    # kv_start = kv_end = 0.
    c = None  # kv_len - qo_len of each row's request (the causal diagonal), when needed
    if causal and block_m % g == 0:
        # kv_end = (row_end - 1) // g + 1 + c in closed form: a row L - i rows before its request's
        # last row L ends (L - i) * block_m packed rows, (L - i) * block_m / g queries, before
        # qo_len, so kv_end = kv_len - (L - i) * block_m / g (per request, then one repeat).
        step = block_m // g
        kv_end = (kv - last * step).repeat(per_req)
        kv_end += np.arange(0, n * step, step, dtype=np.int64)
        np.maximum(kv_end, 0, out=kv_end)
    elif causal:
        c = (kv - qo).repeat(per_req)
        kv_end = row_end - 1
        kv_end //= g
        kv_end += c
        kv_end += 1  # <= kv_len: row_end <= qo_len * g, so (row_end - 1) // g + 1 <= qo_len
        np.maximum(kv_end, 0, out=kv_end)
    else:
        kv_end = kv.repeat(per_req)
    out = np.zeros((n, 8), dtype=np.int32)
    cost = kv_end + TILE_OVERHEAD_KEYS  # tile_costs without the block_m factor: the same partition
    if window_left >= 0:
        if c is None:
            c = (kv - qo).repeat(per_req)
        i_first = row_start // g if g > 1 else row_start
        if causal:
            i_first = np.maximum(i_first, -c)
        kv_start = i_first + c
        kv_start -= window_left
        np.maximum(kv_start, 0, out=kv_start)
        np.minimum(kv_start, kv_end, out=kv_start)
        out[:, 4] = kv_start
        cost -= kv_start
    out[:, 0] = req
    out[:, 2] = row_start
    out[:, 3] = row_end
    out[:, 5] = kv_end

    # The largest kv_end of a request is kv_len: its last row holds query qo_len - 1, which sees
    # keys up to kv_len - 1 even under the causal mask.
    if np.count_nonzero(per_req) == len(per_req):  # every request has rows
        return RowTiling(out, req, first_row[:-1], per_req, kv, cost)
    has_rows = per_req > 0
    ordinal = np.add.accumulate(has_rows, dtype=np.int64)
    ordinal -= 1
    with_rows = has_rows.nonzero()[0]
    return RowTiling(out, ordinal[req], first_row[with_rows], per_req[with_rows], kv[with_rows], cost)


def make_tiles(qo_lens, kv_lens, group_size: int, num_kv_heads: int, block_m: int,
               causal: bool, window_left: int) -> np.ndarray:
    """Cut every (request, kv head) into tiles of <= block_m packed rows and give each its key range.

    qo_lens, kv_lens: int[B]. Packed row r of (request b, kv head kh) is query token r // group_size,
    qo head kh * group_size + r % group_size; rows [0, qo_len * group_size) are tiled in order.
    Returns int32[T, 8]: (req, kv_head, row_start, row_end, kv_start, kv_end, 0, 0), ordered by
    request, then kv head, then row_start. Requests with qo_len == 0 get no tiles.

    [kv_start, kv_end) is the union of keys visible to any row of the tile under the contract's
    bottom-right aligned mask: query i sees key j iff j < kv_len, (not causal or j <= i + c) and
    (window_left < 0 or j >= i + c - window_left), with c = kv_len - qo_len. A tile whose rows see
    nothing (kv_len == 0, or causal rows with i + c < 0) is kept with kv_start = kv_end = 0 so the
    kernel still writes O = 0 and LSE = -inf for it.

    With the causal mask a request's partial tile is its first (fewest visible keys), otherwise its
    last. The planner itself works on row_tiles (one KV head) and never builds this array.

    Example: qo_lens=[3], kv_lens=[5], group_size=2, num_kv_heads=1, block_m=4, causal=True,
    window_left=-1 -> rows [0,2) are query 0 (sees keys < 3), rows [2,6) queries 1..2 (keys < 5):
      [[0, 0, 0, 2, 0, 3, 0, 0],
       [0, 0, 2, 6, 0, 5, 0, 0]]
    """
    rows = row_tiles(qo_lens, kv_lens, group_size, block_m, causal, window_left)
    heads = int(num_kv_heads)
    # Request b owns rows [first[b], first[b] + n[b]) and tiles [heads * first[b], heads * (first[b] + n[b])):
    # tile k of it is KV head k // n[b] over row first[b] + k % n[b].
    n = np.bincount(rows[:, 0], minlength=len(np.asarray(qo_lens))).astype(np.int64)
    first = np.concatenate(([0], np.cumsum(n)[:-1])).astype(np.int64)
    req = np.repeat(np.arange(len(n), dtype=np.int64), n * heads)
    local = np.arange(len(req), dtype=np.int64) - heads * first[req]
    head, row = np.divmod(local, np.maximum(n[req], 1))
    tiles = rows[first[req] + row]
    tiles[:, 1] = head
    return tiles


# K/V bytes that concurrently running tiles should share: about half of the H100's 50 MB L2 (Q and
# O stream through it too). Tiles are scheduled section by section, so the CTAs of one wave read K/V
# that stays in L2 instead of streaming every request's K/V from DRAM once per wave (8 x 512 x 4096
# chunked prefill, 128 MB of K/V: 1 GB of DRAM traffic without sections). Measured on the H100
# (A/B in one device call): 24 MB beat 32 MB by 3.5% on 16 x 1024 prompts and 2% on mixed lengths,
# equal on long prompts. The sm90 head_dim 64 tile asks for 32 MB (variants.SM90_TILES).
L2_SECTION_BYTES = 24 << 20


def l2_sections(tiles: np.ndarray, kv_bytes_per_token: int, budget: int = L2_SECTION_BYTES) -> np.ndarray:
    """Section id of each tile, int64[T]: consecutive (request, KV head) groups, in tile order,
    whose K/V bytes (kv_end of the group's longest tile x kv_bytes_per_token) fit in `budget`.

    Example: 4 groups of 12 MB and a 32 MB budget -> sections 0, 0, 1, 1 (a group never splits;
    a group larger than the budget gets a section of its own).
    """
    tiles = np.asarray(tiles)
    if tiles.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    key = tiles[:, 0].astype(np.int64) * (1 << 20) + tiles[:, 1].astype(np.int64)
    starts = np.flatnonzero(np.concatenate(([True], key[1:] != key[:-1])))
    group_of = np.repeat(np.arange(len(starts)), np.diff(np.append(starts, len(key))))
    group_bytes = np.maximum.reduceat(tiles[:, 5].astype(np.int64), starts) * int(kv_bytes_per_token)
    section_of_group = np.zeros(len(starts), dtype=np.int64)
    section_of_group[_section_starts(group_bytes.tolist(), 1, budget)[1:]] = 1
    return np.cumsum(section_of_group)[group_of]


def _request_sections(sec_starts: list, heads: int, n_req: int) -> np.ndarray:
    """The section of every request, int64 [n_req], from section starts that are all whole
    requests (multiples of heads in groups): one repeat instead of a search per request."""
    ends = sec_starts[1:] + [n_req * heads]
    return np.arange(len(sec_starts), dtype=np.int64).repeat([(e - s) // heads for s, e in zip(sec_starts, ends)])


def _all_equal(values: np.ndarray) -> bool:
    """Whether a non-empty int array holds one value (on a short array, as a list: no numpy calls)."""
    if len(values) <= 64:
        v = values.tolist()
        return min(v) == max(v)
    return bool(np.minimum.reduce(values) == np.maximum.reduce(values))


def _section_starts(item_bytes: list, per_item: int, budget: int) -> list:
    """First group of every section, for groups that come per_item at a time with equal bytes (a
    request's KV heads): a section takes groups while it holds no bytes or their total fits in
    `budget` (so a group larger than the budget opens a section of its own). One bisection per
    section. Example: items [12, 12] of 2 groups each, budget 32 -> [0, 2]."""
    cum = [0, *itertools.accumulate(b * per_item for b in item_bytes)]  # bytes before each item
    n = len(item_bytes) * per_item

    def groups_within(limit: int, g0: int) -> int:
        """The largest e >= g0 with the groups before e holding <= limit bytes."""
        i = bisect.bisect_right(cum, limit, g0 // per_item) - 1  # then cum[i] <= limit < cum[i + 1]
        return n if i == len(item_bytes) else i * per_item + (limit - cum[i]) // item_bytes[i]

    g0, starts = 0, []
    while g0 < n:
        starts.append(g0)
        base = cum[g0 // per_item] + g0 % per_item * item_bytes[g0 // per_item]
        # The first group from g0 that holds bytes (those before it hold nothing): g0 itself unless
        # its request has no keys.
        first_bytes = g0 if item_bytes[g0 // per_item] else groups_within(base, g0)
        if first_bytes >= n:
            break
        g0 = max(first_bytes + 1, groups_within(base + budget, g0))
    return starts


def _equal_section_starts(num_groups: int, group_bytes: int, budget: int) -> list:
    """_section_starts for groups of equal size, in closed form: floor(budget / size) groups per
    section (at least one). Example: 5 groups of 10, budget 25 -> [0, 2, 4]."""
    if group_bytes <= 0:
        return [0] if num_groups else []
    return list(range(0, num_groups, max(1, budget // group_bytes)))


def tile_costs(tiles: np.ndarray, block_m: int = 1) -> np.ndarray:
    """Estimated run time of each tile, int64[T]: block_m * (max(kv_end - kv_start, 0) + TILE_OVERHEAD_KEYS).

    The kernel computes a full block_m-row tile even when fewer rows are live, so every tile's row
    factor is block_m; with block_m left at 1 the costs are in units of block_m-row key columns,
    which gives the same partition (a common factor never changes longest-first order or loads).
    """
    tiles = np.asarray(tiles)
    kv = np.maximum(tiles[:, 5].astype(np.int64) - tiles[:, 4].astype(np.int64), 0)
    return int(block_m) * (kv + TILE_OVERHEAD_KEYS)


def partition(costs, num_ctas: int, sections=None) -> tuple[np.ndarray, np.ndarray]:
    """Longest-processing-time-first assignment of tiles to CTAs, as a CSR work list.

    costs: int[T], non-negative. Tiles are taken by non-increasing cost (ties: lower tile index
    first) and each goes to the CTA with the least load so far (ties: lowest CTA id). With sections
    (int[T], see l2_sections) tiles are taken section by section, longest first within each. CTA c
    then runs order[work_indptr[c]:work_indptr[c+1]] in the order it received them, i.e. longest
    first. Returns (order int32[T], work_indptr int32[num_ctas+1]). Deterministic; CTAs beyond T
    stay empty. Greedy bound: max load <= mean load + max cost.

    Worked example: costs=[5, 3, 3, 2, 2, 1], num_ctas=2.
      tile 0 (5) -> CTA 0 (load 5);  tile 1 (3) -> CTA 1 (3);  tile 2 (3) -> CTA 1 (6)
      tile 3 (2) -> CTA 0 (7);       tile 4 (2) -> CTA 1 (8);  tile 5 (1) -> CTA 0 (8)
      -> order=[0, 3, 5, 1, 2, 4], work_indptr=[0, 3, 6]; loads 8 and 8.
    """
    costs = np.asarray(costs, dtype=np.int64)
    num_ctas = _positive_ctas(num_ctas)
    if sections is None:
        by_cost = np.argsort(-costs, kind="stable")
    else:
        by_cost = np.lexsort((-costs, np.asarray(sections, dtype=np.int64)))
    grouped, work_indptr = _group_by_cta(_assign_longest_first(costs[by_cost], num_ctas), num_ctas)
    return by_cost[grouped].astype(np.int32), work_indptr


def _positive_ctas(num_ctas) -> int:
    num_ctas = int(num_ctas)
    if num_ctas <= 0:
        raise ValueError(f"num_ctas must be positive, got {num_ctas}")
    return num_ctas


def _group_by_cta(cta_of: np.ndarray, num_ctas: int) -> tuple[np.ndarray, np.ndarray]:
    """(positions grouped by CTA, each CTA's in assignment order; CSR work_indptr int32[num_ctas+1])."""
    grouped = np.argsort(cta_of.astype(np.int16 if num_ctas < 1 << 15 else np.int32), kind="stable")  # radix
    work_indptr = np.zeros(num_ctas + 1, dtype=np.int32)
    np.add.accumulate(np.bincount(cta_of, minlength=num_ctas), out=work_indptr[1:])
    return grouped, work_indptr


# Below this many tiles in an exact run the heap is cheaper (runs shrink when tiny tiles follow big
# ones and the loads spread wider than the costs).
_MIN_RUN = 16


def _key_bits(num_ctas: int) -> int:
    """Low bits of a CTA key that hold its id: 16 when they fit, so that casting keys to uint16
    yields the ids (the cheapest way to get them; radix-sortable, and what the device reads)."""
    return max(16, (num_ctas - 1).bit_length())


def _assign_longest_first(sorted_costs: np.ndarray, num_ctas: int) -> np.ndarray:
    """CTA of each tile, int64[T], tiles in the given (longest-first) order: each to the CTA with
    the least load so far, ties to the lowest id (see _longest_first)."""
    bits = _key_bits(num_ctas)
    cta, _, _ = _longest_first(np.asarray(sorted_costs, dtype=np.int64) << bits, int(num_ctas), bits)
    return cta.astype(np.int64)


def _longest_first(step: np.ndarray, num_ctas: int, bits: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(CTA of each tile, uint16 (int64 past 65536 CTAs); tiles per CTA, int64[num_ctas]; the
    largest CTA load) for tiles in longest-first order with costs step = cost << bits: each to the
    CTA with the least load so far, ties to the lowest id. Exact, but a wave of num_ctas tiles at a time.

    A CTA is the key (load << bits) | id, so one integer order is the (load, id) order. From the
    CTAs sorted by key, a full wave gives tile t + j to the j-th of them; that is what one tile at a
    time does iff every fed CTA ends above the last CTA's old key (a fed key only grows, so the j-th
    CTA still precedes all fed ones): min(new keys) > max(old keys). Sorting the new keys gives the
    next wave's order, so a wave is one add and one sort of num_ctas keys, and the check one
    comparison. A wave that fails it becomes an exact run (tile t + j to the j-th CTA while that CTA
    precedes every CTA fed in the run, as many as pass), after which waves resume; a short run
    hands the rest to a heap, one tile at a time (heapq pops the smallest (load, id)). Tiles of one
    cost to the end (a non-causal batch of equal requests) take their waves at once
    (_equal_cost_tail).

    Example: costs [5, 3, 3, 2, 2, 1], 2 CTAs, bits 1 (keys load * 2 + id): wave [0, 1] + [10, 6] ->
    [10, 7]: min 7 > 1, so tiles 0, 1 -> CTAs 0, 1; sorted [7, 10] + [6, 4] -> [13, 14]: 13 > 10,
    tiles 2, 3 -> CTAs 1, 0; sorted [13, 14] + [4, 2]: tiles 4, 5 -> CTAs 1, 0.
    """
    n, p = len(step), num_ctas
    mask = (1 << bits) - 1
    # keys[t:t + p] is the CTAs' keys, ascending, when tile t is next: tile t + j of a wave or run
    # goes to keys[t + j], so keys[:n] ends up as the key each tile went to.
    keys = np.empty(n + p, dtype=np.int64)
    keys[:p] = np.arange(p)
    t = 0
    add, first_min = np.add, np.minimum.accumulate
    while t < n:
        if step.item(t) == step.item(-1) and _equal_cost_tail(keys, step, t, p):
            t = n
            break
        waves = (n - t) // p
        if waves:
            rows = keys[t:t + (waves + 1) * p].reshape(waves + 1, p)
            costs = step[t:t + waves * p].reshape(waves, p)
            old = rows[0]
            for w in range(waves):
                new = rows[w + 1]
                add(old, costs[w], out=new)
                new.sort()
                if new.item(0) <= old.item(-1):
                    break
                old = new
            else:
                t += waves * p
                continue
            # The wave fails: an exact run over its tiles (below), in place. The fed keys (old +
            # costs) go where the wave wrote its sorted keys, right after the CTAs' keys, so the
            # CTAs the run leaves and those it feeds are the one slice from t + k to sort.
            t += w * p
            add(old, costs[w], out=new)
            k = 1 + np.count_nonzero(old[1:] < first_min(new)[:-1])
            keys[t + k:t + k + p].sort()
            t += k
            if k < min(_MIN_RUN, p):
                break
            continue
        m = min(p, n - t)
        old = keys[t:t + p]
        # Exact run: tile t + j to the j-th CTA while it precedes every CTA fed in the run. The CTAs
        # it leaves are already in place for the next state; the fed ones follow them, then a sort.
        # The CTAs ascend and the least fed key only falls, so the tiles that pass are a prefix:
        # counting them finds where it ends.
        cand = old[:m] + step[t:t + m]
        k = 1 + np.count_nonzero(old[1:m] < first_min(cand)[:-1])
        nxt = keys[t + k:t + k + p]
        nxt[p - k:] = cand[:k]
        nxt.sort()
        t += k
        if k < min(_MIN_RUN, m):
            break
    state = keys[t:t + p]
    cta = keys[:n].astype(np.uint16) if bits == 16 else keys[:n] & mask
    makespan = int(state[-1]) >> bits  # the state is sorted after every wave and run
    if t < n:
        heap = [(x >> bits, x & mask) for x in state.tolist()]  # sorted, so a heap
        for rank, c in enumerate((step[t:] >> bits).tolist(), start=t):
            total, c_id = heap[0]
            heapq.heapreplace(heap, (total + c, c_id))
            cta[rank] = c_id
        makespan = max(heap)[0]
    # (One count of the CTA ids at the end: cheaper than tracking each wave's and run's.)
    return cta, np.bincount(cta, minlength=num_ctas), makespan


def _equal_cost_tail(keys: np.ndarray, step: np.ndarray, t: int, p: int) -> bool:
    """_longest_first from tile t when the tiles from t on all cost step[t] (C) and C exceeds the
    CTAs' spread of keys (keys[t:t + p], ascending); False, writing nothing, otherwise.

    Then every wave passes (adding C to every CTA keeps them sorted and the spread as it is): the
    w-th wave after t finds the keys of t plus w * C, and the last, partial wave of m tiles feeds
    the m first CTAs, which then follow the others. Example: 2 CTAs with keys [4, 7], 5 tiles of
    C = 10: waves [4, 7] -> [14, 17] -> [24, 27], then tile 4 to key 24: state [27, 34]."""
    n = len(step)
    c = step.item(t)
    if c <= keys.item(t + p - 1) - keys.item(t) or np.count_nonzero(step[t:] != c):
        return False
    waves, m = divmod(n - t, p)
    rows = keys[t:t + (waves + 1) * p].reshape(waves + 1, p)
    if waves:
        rows[1:] = rows[0] + np.arange(c, (waves + 1) * c, c)[:, None]
    keys[n + p - m:n + p] = rows[-1][:m] + c
    return True


@dataclass(frozen=True)
class WorkList:
    """partition() of the tiles of row_tiles x num_kv_heads, without a row per tile.

    Tiles are taken (section, cost descending, tile index), as partition() takes them; a block is a
    run of that order with one section, cost and request: its k rows (entries[e0 : e0 + k], indices
    into the row tiles) times the KV heads [h_lo, h_lo + nh) of the request in the section, head-
    major (tile index order). Sorted position pos0 + o of block (pos0, k, e0, h_lo) is KV head
    h_lo + o // k over row entries[e0 + o % k], and goes to CTA tile_cta[pos]; CTA c runs its tiles
    in sorted order as work-list slots work_indptr[c] .. work_indptr[c + 1] (partition's CSR list).
    decode_tiles and kernels_cu/kv_offsets.cu expand it.

    blocks:      int32 [NB, 4]  (pos0, k, e0, h_lo), pos0 ascending from 0
    entries:     int64 [NE]     row tile of each entry
    tile_cta:    uint16 [T]     CTA of each sorted position (int64 past 65536 CTAs)
    work_indptr: int32 [num_ctas + 1]

    A claimed work list (claimed=True, sm90 plans) has no partition: the kernel's CTAs claim the
    tiles in sorted order at run time (kernels_cu/tile_sm90.cuh), each when it is about to run out
    of work, which is longest-first list scheduling on the tiles' real run times. Its slots are the
    sorted positions, tile_cta is empty and work_indptr is [0, T] (one queue); makespan is the
    partition's estimate where schedule_rows needed one for a split decision, else 0.
    """

    blocks: np.ndarray
    entries: np.ndarray
    tile_cta: np.ndarray
    work_indptr: np.ndarray
    makespan: int = 0  # the largest CTA load, in tile_costs units (keys + TILE_OVERHEAD_KEYS per tile)
    claimed: bool = False

    @property
    def num_tiles(self) -> int:
        return int(self.work_indptr[-1])

    def slot_positions(self) -> np.ndarray:
        """int64 [T]: the sorted position of each work-list slot (CTA order), on the host."""
        if self.claimed:
            return np.arange(self.num_tiles, dtype=np.int64)
        return np.argsort(self.tile_cta, kind="stable")

    @classmethod
    def claimed_list(cls, blocks: np.ndarray, entries: np.ndarray, num_tiles: int, makespan: int = 0) -> "WorkList":
        """The claimed work list of these blocks and entries (num_tiles sorted positions)."""
        return cls(blocks, entries, _NO_CTAS, np.array((0, num_tiles), dtype=np.int32), makespan, True)

    def as_claimed(self) -> "WorkList":
        """This work list's tiles, order and makespan, claimed at run time instead of partitioned."""
        return self if self.claimed else WorkList.claimed_list(self.blocks, self.entries, self.num_tiles,
                                                               self.makespan)


_NO_CTAS = np.zeros(0, dtype=np.uint16)


def work_list(rows: np.ndarray, num_kv_heads: int, kv_bytes_per_token: int, num_ctas: int,
              budget: int = L2_SECTION_BYTES) -> WorkList:
    """The work list partition(tile_costs(tiles), num_ctas, l2_sections(tiles, ...)) gives for the
    tiles of `rows` (row_tiles) on num_kv_heads KV heads, computed on rows, blocks and waves of
    num_ctas tiles instead of tiles (see WorkList).

    Example: 2 requests of 2 causal row tiles (costs 3, 5 and 3, 5), 2 KV heads, 1 section:
    blocks (cost 5: request 0 heads 0-1, request 1 heads 0-1; then cost 3 likewise) =
    [[0, 1, 0, 0], [2, 1, 1, 0], [4, 1, 2, 0], [6, 1, 3, 0]] with entries [1, 3, 0, 2].
    """
    rows = np.asarray(rows)
    req = rows[:, 0].astype(np.int64)
    new_req = req[1:] != req[:-1]  # row r + 1 starts a request
    first = np.zeros(np.count_nonzero(new_req) + min(len(req), 1), dtype=np.int64)
    np.add(new_req.nonzero()[0], 1, out=first[1:])
    ordinal = np.zeros(len(req), dtype=np.int64)
    np.add.accumulate(new_req, dtype=np.int64, out=ordinal[1:])
    kv_end = rows[:, 5].astype(np.int64)
    cost = kv_end - rows[:, 4]
    np.maximum(cost, 0, out=cost)
    cost += TILE_OVERHEAD_KEYS
    req_rows = np.diff(np.append(first, len(req)))
    req_end = np.maximum.reduceat(kv_end, first) if len(req) else kv_end
    return _work(RowTiling(rows, ordinal, first, req_rows, req_end, cost), num_kv_heads, kv_bytes_per_token,
                 num_ctas, budget)


def plan_work(qo_lens, kv_lens, group_size: int, num_kv_heads: int, block_m: int, causal: bool,
              window_left: int, kv_bytes_per_token: int, num_ctas: int,
              budget: int = L2_SECTION_BYTES) -> tuple[np.ndarray, WorkList]:
    """(row_tiles(...), work_list(...)) of a batch in one pass: what make_plan schedules."""
    r = row_tiling(qo_lens, kv_lens, group_size, block_m, causal, window_left)
    return r.rows, _work(r, num_kv_heads, kv_bytes_per_token, num_ctas, budget)


def _work(r: RowTiling, num_kv_heads: int, kv_bytes_per_token: int, num_ctas: int, budget: int,
          claimed: bool = False) -> WorkList:
    """work_list of a RowTiling; claimed: no partition (WorkList.claimed, makespan 0)."""
    heads, num_ctas = int(num_kv_heads), _positive_ctas(num_ctas)
    n_req = len(r.first)
    if len(r.cost) == 0:
        empty = WorkList(np.zeros((0, 4), np.int32), np.zeros(0, np.int64), np.zeros(0, np.uint16),
                         np.zeros(num_ctas + 1, np.int32))
        return empty.as_claimed() if claimed else empty

    # Sections over the groups g = i * heads + h (request i of those with rows, KV head h); a
    # segment is a request's heads within one section, an entry one of its rows.
    kvb = int(kv_bytes_per_token)
    if _all_equal(r.req_end):
        sec_starts = _equal_section_starts(n_req * heads, int(r.req_end[0]) * kvb, budget)
    else:
        sec_starts = _section_starts((r.req_end * kvb).tolist(), heads, budget)
    splits = [g for g in sec_starts if g % heads]
    if not splits:  # a segment per request, its rows the entries
        n_seg, seg_start, entry_row, entry_cost, seg_of_entry = n_req, None, None, r.cost, r.ordinal
        seg_section = None if len(sec_starts) == 1 else _request_sections(sec_starts, heads, n_req)
    else:
        seg_start = np.concatenate((np.arange(0, n_req * heads, heads), splits))
        seg_start.sort()
        n_seg = len(seg_start)
        seg_req = seg_start // heads
        counts = r.req_rows[seg_req]
        seg_of_entry = np.arange(n_seg, dtype=np.int64).repeat(counts)
        offset = r.first[seg_req]
        offset[1:] -= np.add.accumulate(counts)[:-1]
        entry_row = offset[seg_of_entry]
        entry_row += np.arange(len(seg_of_entry), dtype=np.int64)
        entry_cost = r.cost[entry_row]
        seg_section = np.asarray(sec_starts).searchsorted(seg_start, side="right") - 1

    # Blocks are the runs of equal (section, cost descending, segment); entries sort by that key and
    # their index: a stable argsort (it merges the requests' runs, a request's rows come in cost
    # order; faster than sorting the key with the index in its low bits, 1.2-2x).
    n_entries = len(entry_cost)
    max_cost = int(np.maximum.reduce(entry_cost))
    key = max_cost - entry_cost
    key *= n_seg
    key += seg_of_entry
    if seg_section is not None:
        key += seg_section[seg_of_entry] * ((max_cost + 1) * n_seg)
    by_key = key.argsort(kind="stable")
    key = key[by_key]
    edge = np.empty(n_entries + 1, dtype=bool)  # where a block starts, and the end
    edge[0] = edge[-1] = True
    np.not_equal(key[1:], key[:-1], out=edge[1:-1])
    bounds = edge.nonzero()[0]
    e0, k = bounds[:-1], bounds[1:] - bounds[:-1]  # first entry and entries of each block
    if seg_start is None:
        block_tiles, h_lo = k * heads, 0
    else:
        seg_heads = np.empty_like(seg_start)
        np.subtract(seg_start[1:], seg_start[:-1], out=seg_heads[:-1])
        seg_heads[-1] = n_req * heads - seg_start[-1]
        block_seg = seg_of_entry[by_key[e0]]  # the segment of each block's first entry
        block_tiles, h_lo = k * seg_heads[block_seg], seg_start[block_seg] % heads
    pos = np.zeros(len(e0) + 1, dtype=np.int64)
    np.add.accumulate(block_tiles, out=pos[1:])
    blocks = np.empty((len(e0), 4), dtype=np.int32)
    blocks[:, 0] = pos[:-1]
    blocks[:, 1] = k
    blocks[:, 2] = e0
    blocks[:, 3] = h_lo
    entries = by_key if entry_row is None else entry_row[by_key]

    n = int(pos[-1])
    if claimed:
        return WorkList.claimed_list(blocks, entries, n)
    if n <= num_ctas:  # the first wave: tile j to CTA j (every cost is positive)
        work_indptr = np.minimum(np.arange(num_ctas + 1, dtype=np.int32), n)
        return WorkList(blocks, entries, np.arange(n, dtype=np.uint16 if num_ctas <= 1 << 16 else np.int64),
                        work_indptr, max_cost)
    bits = _key_bits(num_ctas)
    cta, counts, makespan = _longest_first((entry_cost[by_key[e0]] << bits).repeat(block_tiles), num_ctas, bits)
    work_indptr = np.zeros(num_ctas + 1, dtype=np.int32)
    work_indptr[1:] = np.add.accumulate(counts)  # (an int32 out= would take numpy's slower casting loop)
    return WorkList(blocks, entries, cta, work_indptr, makespan)


# ---------------------------------------------------------------------------------------------
# Split-KV (issue 11): long key ranges of a batch that cannot fill the CTAs become pieces.
#
# A piece is a row tile over a part of its key range: its CTA writes the rows' partial O (fp32, over
# the piece's keys) and base-2 LSE to a slot of the float workspace instead of the output, and a
# second kernel (kernels_cu/merge_split.cu) combines the pieces of each split tile. Pieces cut on
# multiples of block_n keys, so each piece's key blocks (sm90's first_key rounding) are exactly its
# own: no key is computed twice, masking and TMA boxes stay as they are.

# Split only when the estimated makespan drops by at least this fraction: the pieces' partial results
# and the merge launch cost about 3-5% (b00d6dc measured its last-wave split at -3% on W7), and the
# estimate is one.
SPLIT_MIN_GAIN = 0.10
# Among candidates whose estimate is within this fraction of the best, the one with the fewest pieces
# (less merge traffic, fewer piece starts), as FA3's num_splits_heuristic takes the first within 85%.
SPLIT_NEAR_BEST = 0.03
# Candidates: the longest tile in s = 2..SPLIT_MAX_PIECES pieces of at least SPLIT_MIN_PIECE_BLOCKS
# key blocks (FA3 never splits 4 blocks or fewer).
SPLIT_MAX_PIECES = 16
SPLIT_MIN_PIECE_BLOCKS = 4
# Automatic splits only for batches of fewer than this many waves of tiles. Longest first, a batch of
# many waves ends on its shortest tiles, so what idles is a short tile per CTA at most; a larger
# modeled gap there (W6: 1024 tiles, makespan 15% over the mean) comes from the L2 sections, each
# of which starts again with its long tiles, and splitting would trade that against the sections'
# L2 reuse. W1-W7 all have 7.8 waves or more.
SPLIT_MAX_WAVES = 4

# Columns of the merge table (one row per split row tile; planner's "merges" section, read by
# kernels_cu/merge_split.cu): pieces first_piece .. first_piece + pieces - 1 of the row tile (request
# req, packed rows [row_start, row_end)) hold its partial results, KV head h's in slot
# piece * num_kv_heads + h. The row tile's own columns where TILE_FIELDS has them (one copy).
MERGE_FIELDS = ("req", "reserved0", "row_start", "row_end", "first_piece", "pieces", "reserved1", "reserved2")


@dataclass(frozen=True)
class SplitRequest:
    """Whether and how plan() may split key ranges (see split_rows).

    max_slots:  piece tiles (pieces x KV heads) the float workspace has partial-result slots for
    fixed_keys: 0: automatic (split_rows' estimate); > 0: FlashInfer's fixed_split_size in keys
                (pages x page_size): every tile is cut at the multiples of it, rounded up to whole
                blocks, from key 0 of its request, whatever the rest of the batch (batch invariance)
    block_n:    piece boundaries on multiples of block_n keys; None: the key block of the build the
                planner chose (planner.make_plan's choose_build)
    """

    max_slots: int
    fixed_keys: int = 0
    block_n: int | None = None


class Schedule(NamedTuple):
    """What the planner uploads: the rows (row tiles, pieces of split ones in their place), their
    work list, and the merge table (int32 [S, 8], MERGE_FIELDS; S = 0 without splits)."""

    rows: np.ndarray
    work: WorkList
    merges: np.ndarray


_NO_MERGES = np.zeros((0, len(MERGE_FIELDS)), dtype=np.int32)


def schedule_rows(r: RowTiling, num_kv_heads: int, kv_bytes_per_token: int, num_ctas: int,
                  budget: int = L2_SECTION_BYTES, split: SplitRequest | None = None,
                  claimed: bool = False) -> Schedule:
    """The work list of row tiles r on num_kv_heads KV heads, with long key ranges split into pieces
    when `split` allows it (split.block_n set) and split_rows finds it pays.

    Automatic splits are considered for batches of fewer than SPLIT_MAX_WAVES waves of tiles whose
    makespan is SPLIT_MIN_GAIN over the mean CTA load. A batch of at most num_ctas tiles is one wave
    (its makespan is its longest tile); a larger one's unsplit work list gives the exact makespan the
    pieces must beat, and stays when they do not: their own work list must beat it by SPLIT_MIN_GAIN
    (split_rows' choice is an estimate). Pieces that fit one wave get a work list of one tile per CTA
    in row order (_one_wave: in a single wave the order changes nothing).

    claimed (sm90 plans): the work list is claimed at run time (WorkList.claimed); a batch that
    cannot split skips the partition, one that can keeps the partition's estimates for the decision."""
    heads = int(num_kv_heads)
    tiles = len(r.cost) * heads
    if split is None or tiles == 0 or (not split.fixed_keys and tiles >= SPLIT_MAX_WAVES * num_ctas):
        return Schedule(r.rows, _work(r, heads, kv_bytes_per_token, num_ctas, budget, claimed), _NO_MERGES)
    makespan = int(np.maximum.reduce(r.cost))  # one wave: the longest tile
    if not split.fixed_keys and split.block_n is not None and not _may_split(makespan, split.block_n):
        # (no key range long enough for pieces: no decision, so no partition for a claimed list)
        return Schedule(r.rows, _work(r, heads, kv_bytes_per_token, num_ctas, budget, claimed), _NO_MERGES)
    s = _schedule_split(r, heads, kv_bytes_per_token, num_ctas, budget, split, makespan)
    return s._replace(work=s.work.as_claimed()) if claimed else s


def _schedule_split(r: RowTiling, heads: int, kv_bytes_per_token: int, num_ctas: int, budget: int,
                    split: SplitRequest, makespan: int) -> Schedule:
    """schedule_rows of a batch that may split (partitioned work lists); makespan: its longest
    row tile's cost (the makespan of one wave)."""
    tiles = len(r.cost) * heads
    unsplit = None
    cost_sum = int(np.add.reduce(r.cost))
    if not split.fixed_keys:
        if tiles > num_ctas:
            unsplit = _work(r, heads, kv_bytes_per_token, num_ctas, budget)
            makespan = unsplit.makespan
        if makespan * num_ctas <= (1 + SPLIT_MIN_GAIN) * heads * cost_sum:  # near the mean already
            return Schedule(r.rows, _work(r, heads, kv_bytes_per_token, num_ctas, budget) if unsplit is None
                            else unsplit, _NO_MERGES)
    p = split_rows(r, heads, num_ctas, split, makespan, cost_sum)
    if p is not None:
        if len(p.cost) * heads <= num_ctas:
            work = _one_wave(len(p.cost), heads, num_ctas, int(np.maximum.reduce(p.cost)))
        else:
            req_rows = np.add.reduceat(p.pieces, r.first)
            tiling = RowTiling(p.rows, r.ordinal[p.source], np.add.accumulate(req_rows) - req_rows, req_rows,
                               r.req_end, p.cost)
            work = _work(tiling, heads, kv_bytes_per_token, num_ctas, budget)
        if split.fixed_keys or work.makespan <= makespan * (1 - SPLIT_MIN_GAIN):
            return Schedule(p.rows, work, p.merges)
    if unsplit is None:
        unsplit = _work(r, heads, kv_bytes_per_token, num_ctas, budget)
    return Schedule(r.rows, unsplit, _NO_MERGES)


def _may_split(longest_cost: int, block_n: int) -> bool:
    """Whether some row tile of these costs (the longest: longest_cost) may have enough key blocks
    for an automatic split (_auto_pieces: SPLIT_MIN_PIECE_BLOCKS a piece, two pieces at least). A
    tile of K keys visits at most ceil((K + block_n - 1) / block_n) blocks (key_blocks rounds its
    start down), so a batch of short tiles (a few decode-like queries) skips the candidates."""
    keys = longest_cost - TILE_OVERHEAD_KEYS
    return (keys + 2 * int(block_n) - 2) // int(block_n) >= 2 * SPLIT_MIN_PIECE_BLOCKS


def _one_wave(num_rows: int, heads: int, num_ctas: int, makespan: int) -> WorkList:
    """The work list of num_rows x heads <= num_ctas tiles: tile t (row t // heads, KV head t % heads)
    on CTA t; a block per row (k = 1 over all heads)."""
    n = num_rows * heads
    blocks = np.zeros((num_rows, 4), dtype=np.int32)
    blocks[:, 0] = np.arange(0, n, heads)
    blocks[:, 1] = 1
    blocks[:, 2] = np.arange(num_rows)
    return WorkList(blocks, np.arange(num_rows, dtype=np.int64),
                    np.arange(n, dtype=np.uint16 if num_ctas <= 1 << 16 else np.int64),
                    np.minimum(np.arange(num_ctas + 1, dtype=np.int32), n), makespan)


_CANDIDATES = np.arange(2, SPLIT_MAX_PIECES + 1, dtype=np.int64)


class Pieces(NamedTuple):
    """split_rows' result: rows (row tiles, pieces of the split ones in their place), the merge
    table (MERGE_FIELDS), and per row: the row tile it comes from (source), its tile_costs (cost);
    per row tile: its number of rows (pieces, 1 when not split)."""

    rows: np.ndarray
    merges: np.ndarray
    source: np.ndarray
    cost: np.ndarray
    pieces: np.ndarray


def split_rows(r: RowTiling, num_kv_heads: int, num_ctas: int, split: SplitRequest, makespan: int,
               cost_sum: int) -> Pieces | None:
    """The row tiles r with long key ranges split into pieces (Pieces), or None.

    r: row tiles (row_tiling) with their tile_costs, which sum to cost_sum; makespan: the unsplit
    work list's largest CTA load. Every piece of a row tile keeps its req and rows; the pieces' key
    ranges partition [kv_start, kv_end), cut on multiples of split.block_n; column 6 (TILE_FIELDS'
    piece) is 1 + the piece's index, in row order (0 for rows not split).

    Automatic (split.fixed_keys == 0): the batch picks one piece length, every tile longer than it is
    cut into near-equal pieces of at most that many blocks. Candidates: the longest tile (B blocks) in
    s = 2..16 pieces, i.e. pieces of p = ceil(B / s) blocks. A candidate's estimated makespan is FA3's
    wave count applied to the pieces: max(p blocks, ceil(P / num_ctas) x mean piece) for P piece
    tiles, costs in keys + TILE_OVERHEAD_KEYS per piece (one wave: the longest piece; equal pieces:
    exact). The fewest pieces within SPLIT_NEAR_BEST of the best estimate win, if that beats
    `makespan` by SPLIT_MIN_GAIN; candidates needing more than split.max_slots slots are out.

    Worked example (W8: 2 requests x 128 queries on 16384 keys, causal, 32/8 heads, block_m 128, the
    176-key build): 8 row tiles of 93-94 blocks (kv_end 16288..16384) x 8 KV heads = 64 tiles on 132
    CTAs, one wave: makespan 16512 (68 CTAs idle; mean load 7983). Pieces of 47 blocks (s = 2): 128
    tiles, still one wave, longest 47 x 176 + 128 = 8400: estimate 8400 (-49%). s = 3 (32 blocks):
    192 tiles, 2 waves of mean 5573: 11147; s = 4 (24): 256 tiles, 2 waves of 4212: 8424; s = 6 (16):
    384 tiles, 3 waves of 2851: 8552. s = 2 is best (s = 4 is within 3% but has twice the pieces):
    every tile in 2 pieces. W9 (32 x 4 queries on 4096 keys): 256 tiles of 4224 on 132 CTAs,
    makespan 8448 against a mean of 8192: within 10% (no estimate is below the mean), no split.
    """
    rows = r.rows
    bn, heads = int(split.block_n), int(num_kv_heads)
    kv = rows[:, 4:6].astype(np.int64)
    ks, ke = kv[:, 0], kv[:, 1]  # a tile without keys has (0, 0)
    first, blocks = key_blocks(ks, ke, bn)
    if split.fixed_keys:
        chunk = -(-int(split.fixed_keys) // bn) * bn
        c0 = ks // chunk
        n = (ke - 1) // chunk
        n -= c0
        n += 1
        np.maximum(n, 1, out=n)
    else:
        n = _auto_pieces(blocks, heads, num_ctas, split.max_slots, makespan, cost_sum, bn)
        if n is None:
            return None
    ends = np.add.accumulate(n)
    total = int(ends[-1])
    rows_split = int(np.count_nonzero(n > 1))
    if rows_split == 0:
        return None
    slots = (total - len(n) + rows_split) * heads
    if slots > split.max_slots:  # automatic candidates never get here
        raise ValueError(f"fixed_split_size: {slots} split tiles (pieces x KV heads) need as many partial-result "
                         f"slots, the float workspace has {split.max_slots}; use a larger float_workspace_buffer "
                         f"or a larger fixed_split_size")
    ends -= 1                     # last piece of each row
    starts = ends - n + 1         # first piece of each row
    src = np.arange(len(n)).repeat(n)
    j = np.arange(total) - starts[src]
    # Piece j of a row of n: fixed, chunk c0 + j of the request's keys; automatic, blocks
    # [j B // n, (j + 1) B // n) of the row's B blocks (at least SPLIT_MIN_PIECE_BLOCKS each). Each
    # piece ends where the next begins; a row's first and last pieces keep its own ends.
    if split.fixed_keys:
        lo = c0[src] + j
        lo *= chunk
    else:
        lo = j * blocks[src] // n[src]
        lo *= bn
        lo += first[src]
    lo[starts] = ks
    hi = np.empty_like(lo)
    hi[:-1] = lo[1:]
    hi[ends] = ke
    out = rows[src]
    out[:, 4] = lo
    out[:, 5] = hi
    # Column 6: 1 + piece index; the merge table copies the split row tiles (MERGE_FIELDS keeps their
    # req and rows in place) and adds each one's first piece and piece count.
    if rows_split == len(n):
        out[:, 6] = np.arange(1, total + 1)
        merges = rows.copy()
        merges[:, 4] = starts
        merges[:, 5] = n
    else:
        split_row = n > 1
        piece = split_row[src]
        pid = np.add.accumulate(piece, dtype=np.int64)
        pid *= piece
        out[:, 6] = pid
        which = np.flatnonzero(split_row)
        merges = rows[which]
        merges[:, 4] = pid[starts[which]] - 1
        merges[:, 5] = n[which]
    cost = hi - lo
    cost += TILE_OVERHEAD_KEYS
    return Pieces(out, merges, src, cost, n)


def _auto_pieces(blocks: np.ndarray, heads: int, num_ctas: int, max_slots: int, makespan: int, cost_sum: int,
                 bn: int) -> np.ndarray | None:
    """Pieces per row tile (int64 [R], >= 1) of the best automatic candidate, None if none pays
    (see split_rows). The candidates' piece counts at once ([S, R], S <= 15), their estimates per
    candidate."""
    longest = int(np.maximum.reduce(blocks))
    k = min(SPLIT_MAX_PIECES, longest // SPLIT_MIN_PIECE_BLOCKS) - 1
    if k <= 0:
        return None
    per = -(-longest // _CANDIDATES[:k])                 # blocks per piece of each candidate
    n = -(-blocks // per[:, None])                       # [S, R] pieces per row (0 for a row without keys)
    np.maximum(n, 1, out=n)
    n_sum = np.add.reduce(n, axis=1)
    whole = np.add.reduce(n == 1, axis=1)                # rows not split
    # Per candidate (float64, as exact as the int arithmetic below 2^53): the mean piece tile and the
    # estimate; candidates over the slots are out (inf).
    tiles = n_sum * heads
    mean = (n_sum - len(blocks)) * TILE_OVERHEAD_KEYS
    mean += cost_sum
    mean *= heads
    mean = mean / tiles
    waves = -(-tiles // num_ctas)
    est = np.maximum(per * bn + TILE_OVERHEAD_KEYS, waves * mean)
    est[(n_sum - whole) * heads > max_slots] = np.inf
    best = float(np.minimum.reduce(est))
    if not best <= makespan * (1 - SPLIT_MIN_GAIN):
        return None
    return n[int(np.argmax(est <= best * (1 + SPLIT_NEAR_BEST)))]


def decode_tiles(rows: np.ndarray, work: WorkList) -> np.ndarray:
    """The tiles of the work list in CTA order, int32[T, 8] (TILE_FIELDS): the host mirror of the
    device expansion in kernels_cu/kv_offsets.cu. Equals make_tiles(...)[order] for partition's
    order."""
    pos = work.slot_positions()
    blocks = work.blocks.astype(np.int64)
    b = np.searchsorted(blocks[:, 0], pos, side="right") - 1
    o = pos - blocks[b, 0]
    k = blocks[b, 1]
    tiles = np.asarray(rows)[work.entries[blocks[b, 2] + o % k]]
    tiles[:, 1] = blocks[b, 3] + o // k
    return tiles


def key_blocks(kv_start, kv_end, block_n: int) -> tuple[np.ndarray, np.ndarray]:
    """The block_n-key blocks the sm90 kernel computes for tiles with key ranges [kv_start, kv_end):
    (first, count), int64 arrays. The one place this rule lives: the planner writes `first` into
    the tiles of sm90 plans (align_key_starts) and the kernel (tile_sm90.cuh) walks count blocks from
    it, masking the keys of the first block below kv_start like any key outside a row's window.

    first: kv_start rounded down to a multiple of block_n, so a TMA box (whose token count divides
    block_n and the page size) never straddles two pages; an empty range keeps kv_start.
    count: ceil((kv_end - first) / block_n), 0 for an empty range.

    Example: block_n=128, ranges (0, 128), (100, 300), (5, 5) -> first (0, 0, 5), count (1, 3, 0)
    """
    bn = int(block_n)
    ks = np.asarray(kv_start)
    if ks.size and not np.count_nonzero(ks):  # every range from key 0 (no window): first 0, a ceiling (3 steps, not 9)
        count = np.add(kv_end, bn - 1, dtype=np.int64)
        count //= bn
        np.maximum(count, 0, out=count)  # (an empty range's count is 0 already, kv_end <= 0 gives 0)
        return np.zeros(ks.shape, dtype=np.int64), count
    ks = np.asarray(ks, dtype=np.int64)
    ke = np.asarray(kv_end, dtype=np.int64)
    live = ke > ks
    first = np.where(live, ks - ks % bn, ks)
    count = ke - first
    count += bn - 1
    count //= bn
    count *= live
    return first, count


def align_key_starts(rows: np.ndarray, block_n: int) -> None:
    """Rows (TILE_FIELDS) of an sm90 plan, in place: kv_start becomes the first key of the tile's
    first key block (key_blocks), so the kernel reads its blocks from the plan instead of deriving
    them. Costs and the partition were computed on the visible ranges before this."""
    starts = rows[:, 4]
    if np.count_nonzero(starts):  # (ranges from key 0 start on their first block already)
        starts[:] = key_blocks(starts, rows[:, 5], block_n)[0]


def mean_blocks_per_tile(tiles: np.ndarray, block_n: int) -> float:
    """Mean number of block_n-key blocks a tile visits (key_blocks); 0.0 without tiles. Picks the
    sm90 kernel build (variants.sm90_pingpong). Every KV head has the same key ranges, so row_tiles
    (one KV head) give the same mean as the tiles."""
    tiles = np.asarray(tiles)
    if tiles.shape[0] == 0:
        return 0.0
    # The sum is exact, so the mean is np.mean's to the last bit.
    blocks = key_blocks(tiles[:, 4], tiles[:, 5], block_n)[1]
    return float(int(np.add.reduce(blocks))) / tiles.shape[0]
