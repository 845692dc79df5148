"""Work tiles (packed query rows x visible key range) and their longest-first partition over CTAs.

Pure NumPy, run once in plan(); the device scheduler only indexes the CSR list this produces.
"""

from __future__ import annotations

import heapq

import numpy as np

__all__ = ["TILE_OVERHEAD_KEYS", "TILE_FIELDS", "L2_SECTION_BYTES", "make_tiles", "tile_costs", "l2_sections",
           "partition", "mean_blocks_per_tile"]

# Column meaning of a tile row; the last two are reserved (zero) so a row is 32 bytes.
TILE_FIELDS = ("req", "kv_head", "row_start", "row_end", "kv_start", "kv_end", "reserved0", "reserved1")

# Fixed cost of a tile, in key columns of a full block_m-row tile. A tile pays for its Q load, the
# pipeline fill before its first K/V block arrives, the softmax finalization and the O/LSE store
# whatever its key range. Worked example (H100, block_m = 128, D = 128, bf16): one 128-key block is
# 2*2*128*128*128 = 8.4 MFLOP, ~1.1 us on one SM at ~7.5 TFLOP/s; the first-load latency plus the
# epilogue is ~1 us, so a tile costs about one extra 128-key block. It also keeps tiles with an
# empty key range (they still write zeros / -inf) from looking free to the partition.
TILE_OVERHEAD_KEYS = 128


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
    last.

    Example: qo_lens=[3], kv_lens=[5], group_size=2, num_kv_heads=1, block_m=4, causal=True,
    window_left=-1 -> rows [0,2) are query 0 (sees keys < 3), rows [2,6) queries 1..2 (keys < 5):
      [[0, 0, 0, 2, 0, 3, 0, 0],
       [0, 0, 2, 6, 0, 5, 0, 0]]
    """
    qo = np.asarray(qo_lens, dtype=np.int64)
    kv = np.asarray(kv_lens, dtype=np.int64)
    g, block_m, window_left = int(group_size), int(block_m), int(window_left)
    if block_m <= 0 or g <= 0:
        raise ValueError(f"block_m and group_size must be positive, got {block_m} and {g}")

    rows = qo * g
    row_tiles = -(-rows // block_m)  # ceil; 0 when qo_len == 0
    tiles_per_req = row_tiles * int(num_kv_heads)
    first_tile = np.concatenate(([0], np.cumsum(tiles_per_req)[:-1])).astype(np.int64)

    # Tile k of request req[k]: local index = kv_head * row_tiles + row tile.
    req = np.repeat(np.arange(len(qo), dtype=np.int64), tiles_per_req)
    local = np.arange(int(tiles_per_req.sum()), dtype=np.int64) - first_tile[req]
    kv_head, row_tile = np.divmod(local, np.maximum(row_tiles[req], 1))
    if causal:
        # The partial tile goes first, where causal rows see the fewest keys: a kernel computes all
        # block_m rows of a tile, so a partial last tile would waste the most expensive key range.
        first = rows[req] - (row_tiles[req] - 1) * block_m  # rows of tile 0, in (0, block_m]
        row_start = np.where(row_tile == 0, 0, first + (row_tile - 1) * block_m)
        row_end = first + row_tile * block_m
    else:
        row_start = row_tile * block_m
        row_end = np.minimum(row_start + block_m, rows[req])

    # lo(i) and hi(i) are non-decreasing in i and consecutive non-empty ranges touch, so the union
    # over the tile's queries [i_first, i_last] is one range [lo(i_first), hi(i_last)), where
    # i_first is the first query that sees anything. Only causal rows can see nothing (i + c < 0)
    # besides kv_len == 0; a non-causal window always keeps j = kv_len - 1 since i < qo_len.
    kv_len = kv[req]
    c = kv_len - qo[req]
    i_first = row_start // g
    i_last = (row_end - 1) // g
    if causal:
        i_first = np.maximum(i_first, -c)
        kv_end = np.minimum(kv_len, i_last + c + 1)
    else:
        kv_end = kv_len
    if window_left >= 0:
        kv_start = np.maximum(0, i_first + c - window_left)
    else:
        kv_start = np.zeros_like(kv_len)
    empty = (i_first > i_last) | (kv_len == 0)
    kv_start = np.where(empty, 0, kv_start)
    kv_end = np.where(empty, 0, kv_end)

    tiles = np.zeros((len(req), 8), dtype=np.int32)
    for col, values in enumerate((req, kv_head, row_start, row_end, kv_start, kv_end)):
        tiles[:, col] = values
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
    section, used, out = 0, 0, np.empty(len(starts), dtype=np.int64)
    for g, nbytes in enumerate(group_bytes.tolist()):
        if used and used + nbytes > budget:
            section, used = section + 1, 0
        used += nbytes
        out[g] = section
    return out[group_of]


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

    costs: int[T]. Tiles are taken by non-increasing cost (ties: lower tile index first) and each
    goes to the CTA with the least load so far (ties: lowest CTA id). With sections (int[T], see
    l2_sections) tiles are taken section by section, longest first within each. CTA c then runs
    order[work_indptr[c]:work_indptr[c+1]] in the order it received them, i.e. longest first.
    Returns (order int32[T], work_indptr int32[num_ctas+1]). Deterministic; CTAs beyond T stay
    empty. Greedy bound: max load <= mean load + max cost.

    Worked example: costs=[5, 3, 3, 2, 2, 1], num_ctas=2.
      tile 0 (5) -> CTA 0 (load 5);  tile 1 (3) -> CTA 1 (3);  tile 2 (3) -> CTA 1 (6)
      tile 3 (2) -> CTA 0 (7);       tile 4 (2) -> CTA 1 (8);  tile 5 (1) -> CTA 0 (8)
      -> order=[0, 3, 5, 1, 2, 4], work_indptr=[0, 3, 6]; loads 8 and 8.
    """
    costs = np.asarray(costs, dtype=np.int64)
    num_ctas = int(num_ctas)
    if num_ctas <= 0:
        raise ValueError(f"num_ctas must be positive, got {num_ctas}")

    if sections is None:
        by_cost = np.argsort(-costs, kind="stable")
    else:
        by_cost = np.lexsort((-costs, np.asarray(sections, dtype=np.int64)))
    cta_of = _assign_longest_first(costs[by_cost], num_ctas)

    # Group by CTA; the stable sort keeps each CTA's tiles in assignment (longest-first) order.
    grouped = np.argsort(cta_of, kind="stable")
    order = by_cost[grouped].astype(np.int32)
    work_indptr = np.zeros(num_ctas + 1, dtype=np.int32)
    np.cumsum(np.bincount(cta_of, minlength=num_ctas), out=work_indptr[1:])
    return order, work_indptr


# Below this many tiles per vectorized run the heap is cheaper (runs shrink when tiny tiles follow
# big ones and the loads spread wider than the costs).
_MIN_RUN = 16


def _assign_longest_first(sorted_costs: np.ndarray, num_ctas: int) -> np.ndarray:
    """CTA of each tile, int64[T], tiles in the given (non-increasing cost) order: each to the CTA
    with the least load so far, ties to the lowest id.

    Exact, but vectorized by runs: with the CTAs sorted by (load, id), tile t + j of a run goes to
    the j-th of them as long as that CTA still precedes every CTA the run has already fed (fed loads
    only grow). A run ends at the first tile for which that fails; a short run hands the rest to a
    heap, one tile at a time (heapq pops the smallest (load, id)).
    """
    n = len(sorted_costs)
    cta_of = np.empty(n, dtype=np.int64)
    load = np.zeros(num_ctas, dtype=np.int64)
    t = 0
    while t < n:
        m = min(num_ctas, n - t)
        ctas = np.argsort(load, kind="stable")[:m]
        start = load[ctas]
        cost = sorted_costs[t:t + m]
        # (load, id) as one integer per CTA; fed CTAs carry their load after this run's tile
        untouched = start * num_ctas + ctas
        fed = np.minimum.accumulate((start + cost) * num_ctas + ctas)
        ok = untouched[1:] < fed[:-1]
        k = m if ok.all() else int(np.argmin(ok)) + 1
        cta_of[t:t + k] = ctas[:k]
        load[ctas[:k]] += cost[:k]
        t += k
        if k < min(_MIN_RUN, m):
            break
    if t < n:
        heap = [(int(x), c) for c, x in enumerate(load.tolist())]
        heapq.heapify(heap)
        for rank, c in enumerate(sorted_costs[t:].tolist(), start=t):
            total, cta = heap[0]
            heapq.heapreplace(heap, (total + c, cta))
            cta_of[rank] = cta
    return cta_of


def mean_blocks_per_tile(tiles: np.ndarray, block_n: int) -> float:
    """Mean number of block_n-key blocks a tile visits (its key range from a block boundary); 0.0
    without tiles. Picks the sm90 kernel build (variants.sm90_pingpong)."""
    tiles = np.asarray(tiles)
    if tiles.shape[0] == 0:
        return 0.0
    start = tiles[:, 4].astype(np.int64) // block_n * block_n
    keys = np.where(tiles[:, 5] > tiles[:, 4], tiles[:, 5].astype(np.int64) - start, 0)
    return float(np.mean(-(-keys // block_n)))
