"""Builds the frozen Plan of one batch: lengths, the page table and the compact work list (row
tiles in longest-first order, which the sm90 kernel's CTAs claim at run time and sm80's run as a
partition over a persistent grid), laid out in ONE byte image that
plan() uploads with one copy; one small kernel (kernels_cu/kv_offsets.cu, launcher.expand_plan)
then expands it on the device into the per-token K/V tables and the tile rows the kernels read.
Long key ranges of batches that cannot fill the SMs become pieces (schedule.split_rows) with a merge
table; their partial results live in the caller's float workspace (PartialSlots), never the plan.
Pure NumPy (no GPU): every layer's run() reuses the plan; the device only indexes it.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass, field
from typing import NamedTuple, Union

import numpy as np

from . import paging, schedule

# Sections of the workspace, in order. Offsets are 256-byte aligned (TMA descriptors and 16-byte
# vector loads of the tiles want at least 16). plan() uploads the first ones (UPLOADED, the image);
# the expansion kernel writes the rest (DEVICE_BUILT) from them.
_ALIGN = 256
UPLOADED = ("counts", "qo_indptr", "kv_lens", "kv_tok_indptr", "paged_kv_indptr", "page_indices",
            "rows", "blocks", "entries", "tile_cta", "work_indptr", "merges")
DEVICE_BUILT = ("tiles", "tok_page", "tok_slot", "tok_units", "k_tok_elems", "v_tok_elems")
SECTIONS = UPLOADED + DEVICE_BUILT

# The "counts" section, int32: what the expansion kernel (and the merge of split tiles) loops over,
# read on the device so that a launch captured in a CUDA graph stays valid for later plans of the
# same capacity.
# ctas: CTAs of a static work list (tile_cta, work_indptr: sm80 plans), 0 when the kernel's CTAs claim
# the tiles in sorted order at run time (sm90 plans: schedule.WorkList.claimed); next and done are that
# claim's counters, zero in every upload (and after every launch: kernels_cu/tile_sm90.cuh).
COUNTS = ("batch", "tiles", "blocks", "kv_tokens", "ctas", "merges", "next", "done")

# Bytes per item of each section, in SECTIONS order (int32 words unless noted).
_ITEM_BYTES = (4, 4, 4, 4, 4, 4, 32, 16, 4, 2, 4, 32,  # counts .. merges; rows [R, 8], blocks [NB, 4],
               48, 4, 4, 4, 8, 8)                      # tile_cta uint16, merges [S, 8]; tiles [T, 12], tok_page ..


class UnitsKey(NamedTuple):
    """One int32 offset table in units of the token stride, page * ratio + slot, for K and V (each
    tensor's own token stride scales it in the kernel)."""
    mode: str   # "units"
    ratio: int  # stride_page / stride_token, the same for K and V


class ElementsKey(NamedTuple):
    """Two int64 offset tables in elements, one per tensor, from each one's page and token strides."""
    mode: str   # "elements"
    k_page: int
    k_token: int
    v_page: int
    v_token: int


# What the offset tables depend on (offset_key): tuples, so that ("units", 96) == UnitsKey("units", 96).
OffsetKey = Union[UnitsKey, ElementsKey]


def as_offset_key(key) -> OffsetKey | None:
    """key as its named type: a UnitsKey / ElementsKey as it is, a plain ("units", ratio) or
    ("elements", k_page, k_token, v_page, v_token) tuple converted, None kept."""
    if key is None or isinstance(key, (UnitsKey, ElementsKey)):
        return key
    if key[0] == "units":
        return UnitsKey(*key)
    if key[0] == "elements":
        return ElementsKey(*key)
    raise ValueError(f"offsets key {key!r}: expected ('units', ratio) or ('elements', k_page, k_token, v_page, v_token)")


def offset_key(k_strides, v_strides, max_page_index: int, page_size: int) -> OffsetKey:
    """What the offset tables depend on, from normalized (stride_page, stride_token, stride_head)
    element strides (see arrays.cache_strides): ("units", ratio) when one int32 table in units of
    the token stride serves both K and V (the kernel multiplies by each tensor's token stride) and
    the batch's largest page index fits it, else ("elements", k_page, k_token, v_page, v_token)
    for two int64 tables.
    """
    return _offset_key(tuple(k_strides), tuple(v_strides), int(max_page_index), int(page_size))


@functools.lru_cache(maxsize=256)  # plan() asks for the key of its cache view every call: a few per process
def _offset_key(k_strides: tuple, v_strides: tuple, max_page_index: int, page_size: int) -> OffsetKey:
    mode, ratio = paging.choose_offset_mode(k_strides, v_strides)
    if mode == "units" and units_fit(UnitsKey("units", int(ratio)), max_page_index, page_size):
        return UnitsKey("units", int(ratio))
    return ElementsKey("elements", int(k_strides[0]), int(k_strides[1]), int(v_strides[0]), int(v_strides[1]))


@dataclass(frozen=True)
class PlanCapacity:
    """Upper bounds that size every workspace section, so that all plans made with one capacity
    (and the same heads, page size and grid) share one layout: a CUDA graph captured around run()
    keeps valid pointers after any later plan() within it (FlashInfer's use_cuda_graph contract).

    batch_size:    requests per batch (at most)
    max_tiles:     work tiles (row tiles x KV heads, pieces of split row tiles included)
    max_kv_tokens: key tokens of the batch (the per-token tables)
    max_pages:     used page-table entries (paged_kv_indptr[-1])
    max_pieces:    piece tiles (pieces of split row tiles x KV heads: the partial-result slots of the
                   float workspace); 0: no splits

    Example: PlanCapacity.for_batch(8, 8192, 4096, 16, 32, 8, 128) fits 8 requests of at most 8192
    query tokens in all on at most 4096 pages of 16 keys: 8 * (ceil(8192 * 4 / 128) + 8) = 2112
    tiles, 65536 key tokens; with max_pieces=512, 2624 tiles of which up to 512 pieces.
    """

    batch_size: int
    max_tiles: int
    max_kv_tokens: int
    max_pages: int
    max_pieces: int = 0

    @classmethod
    def for_batch(cls, batch_size: int, max_total_q: int, max_pages: int, page_size: int,
                  num_qo_heads: int, num_kv_heads: int, block_m: int, max_pieces: int = 0) -> "PlanCapacity":
        """Bounds for batches of batch_size requests with at most max_total_q query tokens and
        max_pages pages: a request of q tokens has ceil(q * G / block_m) <= q * G / block_m + 1 row
        tiles, so tiles <= num_kv_heads * (ceil(max_total_q * G / block_m) + batch_size); pieces
        replace a split row tile's tiles, so at most max_pieces more. max_pieces is rounded down to
        whole row tiles (a multiple of num_kv_heads)."""
        group = int(num_qo_heads) // int(num_kv_heads)
        row_tiles = -(-int(max_total_q) * group // int(block_m)) + int(batch_size)
        pieces = int(max_pieces) // int(num_kv_heads) * int(num_kv_heads)
        return cls(int(batch_size), int(num_kv_heads) * row_tiles + pieces, int(max_pages) * int(page_size),
                   int(max_pages), pieces)

    def check(self, batch_size: int, num_tiles: int, kv_tokens: int, pages: int, pieces: int = 0) -> None:
        """ValueError naming the first bound a batch exceeds."""
        for what, value, bound in (("batch_size", batch_size, self.batch_size),
                                   ("max_tiles", num_tiles, self.max_tiles),
                                   ("max_kv_tokens", kv_tokens, self.max_kv_tokens),
                                   ("max_pages", pages, self.max_pages),
                                   ("max_pieces", pieces, self.max_pieces)):
            if value > bound:
                raise ValueError(f"batch exceeds the plan capacity: {value} > PlanCapacity.{what} = {bound} "
                                 f"(qo_indptr / paged_kv_indptr describe a larger batch than the capacity "
                                 f"given to plan())")


@dataclass(frozen=True)
class PartialSlots:
    """Where the pieces of split tiles keep their partial results: the caller's float workspace
    (FlashInfer's split-k scratch, shared with other wrappers and used only during a run; no plan
    state lives there) holds fp32 O [slots, block_m, head_dim] from byte 0, then the base-2 LSE
    [slots, block_m]. A piece tile writes the slot piece * num_kv_heads + kv_head.

    Example: 128 MiB, block_m 128, head_dim 128: 66,048 bytes a slot, 2032 slots (W8 uses 128).
    """

    slots: int
    block_m: int
    head_dim: int

    @classmethod
    @functools.lru_cache(maxsize=64)  # frozen answers; plan() asks for its workspace's slots every call
    def for_workspace(cls, nbytes: int, block_m: int, head_dim: int) -> "PartialSlots":
        """As many slots as nbytes holds, at most 2^31 / (block_m * head_dim) (int32 indexing)."""
        nbytes, block_m, head_dim = int(nbytes), int(block_m), int(head_dim)
        slot_bytes = block_m * (head_dim + 1) * 4
        return cls(min(nbytes // slot_bytes, (2**31 - 1) // (block_m * head_dim)), block_m, head_dim)

    @property
    def lse_offset(self) -> int:
        """Byte offset of the LSE array in the workspace."""
        return self.slots * self.block_m * self.head_dim * 4


@dataclass(frozen=True)
class Plan:
    """Everything run() needs for one batch. The arrays are host copies of what plan() uploads;
    the per-token tables and the tile rows exist only on the device (launcher.expand_plan builds
    them from the upload); `tiles` and `token_pages()` recompute them on the host for tests."""

    batch_size: int
    num_qo_heads: int
    num_kv_heads: int
    head_dim: int
    page_size: int
    causal: bool
    window_left: int
    sm_scale: float
    logits_soft_cap: float        # 0.0 when off
    dtype: str                    # "float16" or "bfloat16": output (and q, KV unless q_dtype / kv_dtype say fp8)
    block_m: int
    num_ctas: int
    total_q: int
    total_kv: int
    max_page_index: int           # -1 when the batch has no pages
    num_tiles: int
    qo_lens: np.ndarray
    kv_lens: np.ndarray
    row_tiles: np.ndarray         # int32 [R, 8]: KV head 0's tiles (schedule.row_tiles, pieces of split
                                  # row tiles in their place: schedule.split_rows), request order
    work: schedule.WorkList       # row_tiles x KV heads in claim order, partitioned over num_ctas CTAs
                                  # unless claimed at run time (sm90: WorkList.claimed)
    merges: np.ndarray            # int32 [S, 8] (schedule.MERGE_FIELDS): the split row tiles, S = 0 without
    offsets_key: OffsetKey | None  # the offset tables are built for this key (None: not yet)
    capacity: PlanCapacity | None  # sized the layout (None: compact, this batch only)
    layout: dict = field(repr=False)    # section -> (byte offset, byte size)
    workspace_bytes: int = field(repr=False)  # the whole layout, uploaded and device-built sections
    image: np.ndarray = field(repr=False)  # uint8, the bytes uploaded to the start of the workspace
    build: object = None          # variants.Build chosen for these tiles (set by plan())
    kv_dtype: str = ""            # the cache's dtype when it differs from dtype: "float8_e4m3fn" / "float8_e5m2"
    q_dtype: str = ""             # fp8 queries: "float8_e4m3fn" ("": dtype)

    @property
    def group_size(self) -> int:
        return self.num_qo_heads // self.num_kv_heads

    @property
    def num_merges(self) -> int:
        """Split row tiles (merge_split.cu combines each one's pieces, for every KV head)."""
        return int(self.merges.shape[0])

    @property
    def num_pieces(self) -> int:
        """Piece tiles (pieces x KV heads): the partial-result slots a run fills."""
        return int(self.merges[:, 5].sum()) * self.num_kv_heads if self.num_merges else 0

    @property
    def work_indptr(self) -> np.ndarray:
        """int32 [num_ctas + 1]: CTA c runs tiles work_indptr[c] .. work_indptr[c+1]; [0, T] for a
        claimed work list (sm90: one queue the CTAs claim from at run time)."""
        return self.work.work_indptr

    @functools.cached_property
    def tiles(self) -> np.ndarray:
        """int32 [T, 8] (schedule.TILE_FIELDS) in CTA order (claim order for a claimed work list): what
        the device expansion writes (with
        the request fields of DEVICE_TILE_FIELDS), decoded on the host. O(T); plan() never reads it."""
        return schedule.decode_tiles(self.row_tiles, self.work)

    def token_pages(self) -> paging.TokenPages:
        """The page and slot of every key token (what the device expansion writes), on the host."""
        indptr = self._section("paged_kv_indptr")[: self.batch_size + 1]
        lens = np.where(np.diff(indptr) > 0, self.kv_lens - (np.diff(indptr) - 1) * self.page_size, 1)
        return paging.token_pages(indptr, self._section("page_indices")[: int(indptr[-1])], lens, self.page_size)

    def _section(self, name: str) -> np.ndarray:
        start, nbytes = self.layout[name]
        return self.image[start:start + nbytes].view(np.int32)


def _layout(sizes) -> tuple[dict, int, int]:
    """(section -> (offset, bytes), bytes of the uploaded prefix, bytes of the whole layout) from
    the item counts of SECTIONS, in order."""
    layout, offset, ends = {}, 0, []
    for name, items, item_bytes in zip(SECTIONS, sizes, _ITEM_BYTES):
        nbytes = items * item_bytes
        layout[name] = (offset, nbytes)
        offset += -(-nbytes // _ALIGN) * _ALIGN
        ends.append(offset)
    return layout, ends[len(UPLOADED) - 1], max(offset, _ALIGN)


_PAD = np.zeros(_ALIGN // 4, dtype=np.int32)  # the zeros between compact sections (views of it)
_UINT16_ZERO = np.zeros(1, dtype=np.uint16)


def _image(arrays, layout: dict, upload_bytes: int) -> np.ndarray:
    """The uploaded sections (UPLOADED order, any integer arrays) as int32 at their offsets, zero
    between them. One concatenation of the sections and the zeros between them (it casts them to
    int32 on the way) instead of a zeroed image and a copy per section."""
    pieces, end = [], 0  # end: words so far
    for name, arr in zip(UPLOADED, arrays):
        if not arr.size:
            continue
        start = layout[name][0] // 4
        if start > end:
            pieces.append(_PAD[:start - end] if start - end <= len(_PAD) else np.zeros(start - end, np.int32))
        if name == "tile_cta":  # uint16 items, two a word
            arr = _uint16_words(arr)
        pieces.append(arr if arr.ndim == 1 else arr.reshape(-1))  # [n, c] tables row-major, as the device reads them
        end = start + pieces[-1].size
    if upload_bytes // 4 > end:
        pieces.append(np.zeros(upload_bytes // 4 - end, np.int32))
    words = np.concatenate(pieces, dtype=np.int32, casting="unsafe") if pieces else np.zeros(0, np.int32)
    return words.view(np.uint8)


def _uint16_words(items: np.ndarray) -> np.ndarray:
    """int32 words holding the items as uint16, two a word in memory order (a zero after an odd count)."""
    if items.dtype != np.uint16 or not items.flags.c_contiguous:
        items = items.astype(np.uint16)  # (tile_cta is int64 past 65536 CTAs: its items keep 16 bits)
    if items.size % 2:
        items = np.concatenate((items, _UINT16_ZERO))
    return items.view(np.int32)


def build_offsets(tok_page, tok_slot, key) -> dict[str, np.ndarray]:
    """Host-side offset tables for an offset key: the reference for kernels_cu/kv_offsets.cu."""
    if key[0] == "units":  # (key[0], key[1]: plain tuples from the tests work too)
        units = paging.offsets_in_token_units(tok_page, tok_slot, key[1])
        if units is not None:
            return {"tok_units": units}
        raise OverflowError("pool too large for int32 offsets")  # caller falls back to elements
    _, k_sp, k_st, v_sp, v_st = key
    return {"k_tok_elems": paging.offsets_in_elements(tok_page, tok_slot, k_sp, k_st),
            "v_tok_elems": paging.offsets_in_elements(tok_page, tok_slot, v_sp, v_st)}


# A tile as the kernels read it (kernels_cu/scheduler.cuh): the schedule's 6 fields plus the
# request's lengths and offsets, so a CTA decodes a tile with three independent 16-byte loads
# instead of chasing req into qo_indptr and kv_lens (two dependent round trips per tile); partial:
# 0 for a tile that writes the output, else 1 + its partial-result slot (piece * num_kv_heads +
# kv_head: a piece of a split row tile, schedule.split_rows).
DEVICE_TILE_FIELDS = ("req", "kv_head", "row_start", "row_end", "kv_start", "kv_end",
                      "q0", "qo_len", "kv_len", "kv_tok0", "partial", "reserved")


def device_tiles(tiles: np.ndarray, qo_indptr, kv_lens, kv_tok_indptr, num_kv_heads: int = 1) -> np.ndarray:
    """int32 [T, 12] in DEVICE_TILE_FIELDS order from the schedule's [T, 8] tiles: the host
    reference of the tile rows kernels_cu/kv_offsets.cu writes."""
    tiles = np.asarray(tiles)
    req = tiles[:, 0].astype(np.int64)
    qo_indptr = np.asarray(qo_indptr, dtype=np.int64)
    out = np.zeros((tiles.shape[0], len(DEVICE_TILE_FIELDS)), dtype=np.int32)
    out[:, :6] = tiles[:, :6]
    if tiles.shape[0]:
        out[:, 6] = qo_indptr[req]
        out[:, 7] = qo_indptr[req + 1] - qo_indptr[req]
        out[:, 8] = np.asarray(kv_lens)[req]
        out[:, 9] = np.asarray(kv_tok_indptr)[req]
        piece = tiles[:, 6].astype(np.int64)
        out[:, 10] = np.where(piece > 0, (piece - 1) * int(num_kv_heads) + tiles[:, 1] + 1, 0)
    return out


def units_fit(key: OffsetKey, max_page_index: int, page_size: int) -> bool:
    """Whether the units table of `key` fits in int32 for this batch's largest page index."""
    mode, ratio = key[0], key[1]  # (a plain ("units", ratio) tuple works too)
    return mode != "units" or max(max_page_index, 0) * ratio + page_size < 2**31


def make_plan(qo_indptr, paged_kv_indptr, paged_kv_indices, paged_kv_last_page_len,
              num_qo_heads: int, num_kv_heads: int, head_dim: int, page_size: int, *,
              causal: bool = False, window_left: int = -1, sm_scale: float | None = None,
              logits_soft_cap: float | None = None, dtype: str = "float16", kv_dtype: str | None = None,
              q_dtype: str | None = None, num_ctas: int = 132, block_m: int = 128, offsets_key: tuple | None = None,
              l2_section_bytes: int = schedule.L2_SECTION_BYTES,
              capacity: PlanCapacity | None = None, choose_build=None,
              split: schedule.SplitRequest | None = None, lengths: tuple | None = None,
              max_page_index: int | None = None, claimed: bool | None = None, split_build=None) -> Plan:
    """Plan one batch from validated host index arrays (see validate.check_plan_args).

    O(batch + pages + tiles / num_ctas waves), never O(key tokens): the per-token tables and the
    tile rows are the device's job (launcher.expand_plan, right after the upload of plan.image).
    offsets_key (see offset_key) only records which offset tables that expansion builds.
    capacity (PlanCapacity) sizes every section for the bound instead of this batch, so plans of
    one capacity share one layout; a batch over it raises ValueError.
    choose_build: called with the row tiles (before any split) to pick the kernel build, which the
    plan records (Plan.build); the builds differ in key block, and pieces cut on it.
    split_build: called with that build when the plan has pieces, gives the build the plan records
    instead (variants.split_build: its split-KV twin, same tile and key block).
    split (schedule.SplitRequest): long key ranges may become pieces (schedule.split_rows), within
    split.max_slots and capacity.max_pieces; their key block is split.block_n or the chosen build's.
    lengths: (qo_lens, kv_lens) int64 [B] of these index arrays when the caller has them (PlanArgs:
    validation computes them), else computed here.
    max_page_index: the largest of paged_kv_indices[:paged_kv_indptr[-1]] (-1 without pages) when the
    caller has it (PlanArgs.max_page_index), else computed here (a reduction over every used page).
    claimed: the kernel's CTAs claim the tiles at run time (schedule.WorkList.claimed) instead of
    running a partition; None: as the chosen build runs them (sm90 claims, sm80 and no build partition).

    Example: 2 requests of 100 and 300 query tokens on 100 and 400 keys, 8 q heads on 2 KV heads:
        make_plan([0, 100, 400], [0, 7, 32], pages, [4, 16], 8, 2, 128, 16, causal=True)
    gives tiles of up to 128 packed (token, head) rows per (request, KV head), spread over
    132 CTAs longest-first.
    """
    qo_indptr = np.asarray(qo_indptr, dtype=np.int64)
    indptr = np.asarray(paged_kv_indptr, dtype=np.int64)
    batch = len(qo_indptr) - 1
    if lengths is None:
        lengths = qo_indptr[1:] - qo_indptr[:-1], paging.kv_lengths(indptr, paged_kv_last_page_len, page_size)
    qo_lens, kv_lens = lengths
    kv_tok_indptr = np.zeros(batch + 1, dtype=np.int64)
    np.add.accumulate(kv_lens, out=kv_tok_indptr[1:])
    total_kv = int(kv_tok_indptr[-1])
    used = np.asarray(paged_kv_indices)[: int(indptr[-1])]
    if max_page_index is None:
        max_page_index = int(np.maximum.reduce(used)) if len(used) else -1
    offsets_key = as_offset_key(offsets_key)
    if offsets_key is not None and not units_fit(offsets_key, max_page_index, page_size):
        raise OverflowError("offsets_key in units mode does not fit int32; use element mode")

    group = num_qo_heads // num_kv_heads
    tiling = schedule.row_tiling(qo_lens, kv_lens, group, block_m, causal, window_left)
    build = choose_build(tiling.rows) if choose_build is not None else None
    if split is not None:
        block_n = split.block_n if split.block_n is not None else build.tile.block_n
        slots = split.max_slots if capacity is None else min(split.max_slots, capacity.max_pieces)
        split = schedule.SplitRequest(slots, split.fixed_keys, block_n)
    # K and V as 16-bit bytes, also for an fp8 cache: its sections keep the bf16 build's tokens (the
    # budgets were measured in those; 16 x 1024 causal preferred smaller sections, not larger ones).
    # The sm90 kernel claims its tiles at run time (schedule.WorkList.claimed); sm80 runs a partition.
    if claimed is None:
        claimed = build is not None and build.backend == "sm90"
    rows, work, merges = schedule.schedule_rows(tiling, num_kv_heads, 4 * head_dim, num_ctas, l2_section_bytes,
                                                split, claimed)  # K and V, 16-bit
    if build is not None and build.backend == "sm90":  # the kernel's key blocks, from the plan
        schedule.align_key_starts(rows, build.tile.block_n)
    if len(merges) and split_build is not None:  # pieces: the build with the partial-result epilogue
        build = split_build(build)

    counts = np.array((batch, work.num_tiles, len(work.blocks), total_kv, 0 if work.claimed else num_ctas,
                       len(merges), 0, 0))
    arrays = (counts, qo_indptr, kv_lens, kv_tok_indptr, indptr, used, rows, work.blocks, work.entries,
              work.tile_cta, work.work_indptr, merges)  # UPLOADED order
    if capacity is None:
        sizes = [*map(len, arrays), work.num_tiles, total_kv, total_kv, total_kv, total_kv, total_kv]
        layout, upload_bytes, workspace_bytes = _layout(sizes)
    else:
        pieces = int(merges[:, 5].sum()) * int(num_kv_heads) if len(merges) else 0
        capacity.check(batch, work.num_tiles, total_kv, len(used), pieces)
        # Every plan of a capacity has its layout (graph mode re-plans with one): computed once, each
        # plan its own copy of the dict.
        layout, upload_bytes, workspace_bytes = _capacity_layout(capacity, int(num_kv_heads), int(num_ctas))
        layout = dict(layout)
    image = _image(arrays, layout, upload_bytes)
    if capacity is not None and batch < capacity.batch_size:  # empty requests after the last
        for name in ("qo_indptr", "kv_tok_indptr", "paged_kv_indptr"):
            start = layout[name][0]
            image[start:start + 4 * (capacity.batch_size + 1)].view(np.int32)[batch + 1:] = \
                arrays[UPLOADED.index(name)][-1]

    return _new_plan(
        batch_size=batch, num_qo_heads=int(num_qo_heads), num_kv_heads=int(num_kv_heads),
        head_dim=int(head_dim), page_size=int(page_size), causal=bool(causal), window_left=int(window_left),
        sm_scale=float(sm_scale) if sm_scale is not None else 1.0 / math.sqrt(head_dim),
        logits_soft_cap=float(logits_soft_cap or 0.0), dtype=dtype, block_m=int(block_m),
        num_ctas=int(num_ctas), total_q=int(qo_indptr[-1]) if qo_indptr.size else 0, total_kv=total_kv,
        max_page_index=max_page_index, num_tiles=work.num_tiles, qo_lens=qo_lens.astype(np.int32),
        kv_lens=kv_lens.astype(np.int32), row_tiles=rows, work=work, merges=merges, offsets_key=offsets_key,
        capacity=capacity, layout=layout, workspace_bytes=workspace_bytes, image=image, build=build,
        kv_dtype="" if kv_dtype in (None, dtype) else kv_dtype, q_dtype=q_dtype or "",
    )


_PLAN_FIELDS = frozenset(f.name for f in dataclasses.fields(Plan))


def _new_plan(**fields) -> Plan:
    """Plan(**fields) without the frozen dataclass's __init__, which sets its 31 fields one
    object.__setattr__ call at a time (about 10 us of every plan()). The instance is the same:
    every field given (checked), frozen afterwards as any Plan."""
    if fields.keys() != _PLAN_FIELDS:
        raise TypeError(f"_new_plan: fields {sorted(_PLAN_FIELDS ^ fields.keys())} missing or unknown")
    plan = object.__new__(Plan)
    plan.__dict__.update(fields)
    return plan


@functools.lru_cache(maxsize=16)
def _capacity_layout(capacity: PlanCapacity, num_kv_heads: int, num_ctas: int) -> tuple[dict, int, int]:
    """_layout of a capacity's sizes (shared: callers copy the dict)."""
    return _layout(_capacity_sizes(capacity, num_kv_heads, num_ctas))


def _capacity_sizes(capacity: PlanCapacity, num_kv_heads: int, num_ctas: int) -> list[int]:
    """Items per section (SECTIONS order) for every plan of a capacity: the batch never enters."""
    b, t, kv = capacity.batch_size, capacity.max_tiles, capacity.max_kv_tokens
    merges = capacity.max_pieces // (2 * int(num_kv_heads))  # a split row tile has 2 pieces or more
    return [len(COUNTS), b + 1, b, b + 1, b + 1, capacity.max_pages, t // int(num_kv_heads), t, t, t,
            int(num_ctas) + 1, merges, t, kv, kv, kv, kv, kv]
