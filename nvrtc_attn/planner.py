"""Builds the frozen Plan of one batch: lengths, K/V offset tables, work tiles and their partition
over a persistent grid, all laid out in ONE byte image that plan() uploads with one copy.
Pure NumPy (no GPU): every layer's run() reuses the plan; the device only indexes it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import paging, schedule

# Sections of the workspace image, in order. Offsets are 256-byte aligned (TMA descriptors and
# 16-byte vector loads of the tiles want at least 16).
_ALIGN = 256
SECTIONS = ("qo_indptr", "kv_lens", "kv_tok_indptr", "tiles", "work_indptr",
            "tok_page", "tok_slot", "tok_units", "k_tok_elems", "v_tok_elems")


def offset_key(k_strides, v_strides, max_page_index: int, page_size: int) -> tuple:
    """What the offset tables depend on, from normalized (stride_page, stride_token, stride_head)
    element strides (see arrays.cache_strides): ("units", ratio) when one int32 table in units of
    the token stride serves both K and V (the kernel multiplies by each tensor's token stride) and
    the batch's largest page index fits it, else ("elements", k_page, k_token, v_page, v_token)
    for two int64 tables.
    """
    mode, ratio = paging.choose_offset_mode(tuple(k_strides), tuple(v_strides))
    if mode == "units" and units_fit(("units", int(ratio)), max_page_index, page_size):
        return ("units", int(ratio))
    return ("elements", int(k_strides[0]), int(k_strides[1]), int(v_strides[0]), int(v_strides[1]))


@dataclass(frozen=True)
class Plan:
    """Everything run() needs for one batch; arrays are host copies of what sits in the workspace."""

    batch_size: int
    num_qo_heads: int
    num_kv_heads: int
    head_dim: int
    page_size: int
    causal: bool
    window_left: int
    sm_scale: float
    logits_soft_cap: float        # 0.0 when off
    dtype: str                    # "float16" or "bfloat16": q and output (and KV unless kv_dtype says fp8)
    block_m: int
    num_ctas: int
    total_q: int
    total_kv: int
    max_page_index: int           # -1 when the batch has no pages
    qo_lens: np.ndarray
    kv_lens: np.ndarray
    tiles: np.ndarray             # int32 [T, 8], already in CTA order
    work_indptr: np.ndarray       # int32 [num_ctas + 1]
    tok_page: np.ndarray
    tok_slot: np.ndarray
    offsets_key: tuple | None     # offsets in the image were built for this key (None: not yet)
    layout: dict = field(repr=False)    # section -> (byte offset, byte size)
    image: np.ndarray = field(repr=False)  # uint8, the bytes uploaded to the workspace
    build: object = None          # variants.Build chosen for these tiles (set by plan())
    kv_dtype: str = ""            # the cache's dtype when it differs from dtype: "float8_e4m3fn" / "float8_e5m2"

    @property
    def group_size(self) -> int:
        return self.num_qo_heads // self.num_kv_heads

    @property
    def num_tiles(self) -> int:
        return int(self.tiles.shape[0])

    @property
    def workspace_bytes(self) -> int:
        return int(self.image.nbytes)


def _layout(sizes: dict[str, int]) -> tuple[dict, int]:
    layout, offset = {}, 0
    for name in SECTIONS:
        nbytes = sizes[name]
        layout[name] = (offset, nbytes)
        offset += (nbytes + _ALIGN - 1) // _ALIGN * _ALIGN
    return layout, max(offset, _ALIGN)


def build_offsets(tok_page, tok_slot, key) -> dict[str, np.ndarray]:
    """Host-side offset tables for an offset key (same formulas as kernels_cu/kv_offsets.cu)."""
    if key[0] == "units":
        units = paging.offsets_in_token_units(tok_page, tok_slot, key[1])
        if units is not None:
            return {"tok_units": units}
        raise OverflowError("pool too large for int32 offsets")  # caller falls back to elements
    _, k_sp, k_st, v_sp, v_st = key
    return {"k_tok_elems": paging.offsets_in_elements(tok_page, tok_slot, k_sp, k_st),
            "v_tok_elems": paging.offsets_in_elements(tok_page, tok_slot, v_sp, v_st)}


# A tile as the kernels read it (kernels_cu/scheduler.cuh): the schedule's 6 fields plus the
# request's lengths and offsets, so a CTA decodes a tile with three independent 16-byte loads
# instead of chasing req into qo_indptr and kv_lens (two dependent round trips per tile).
DEVICE_TILE_FIELDS = ("req", "kv_head", "row_start", "row_end", "kv_start", "kv_end",
                      "q0", "qo_len", "kv_len", "kv_tok0", "reserved0", "reserved1")


def device_tiles(tiles: np.ndarray, qo_indptr, kv_lens, kv_tok_indptr) -> np.ndarray:
    """int32 [T, 12] in DEVICE_TILE_FIELDS order from the schedule's [T, 8] tiles."""
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
    return out


def units_fit(key: tuple, max_page_index: int, page_size: int) -> bool:
    """Whether the units table of `key` fits in int32 for this batch's largest page index."""
    return key[0] != "units" or max(max_page_index, 0) * key[1] + page_size < 2**31


def make_plan(qo_indptr, paged_kv_indptr, paged_kv_indices, paged_kv_last_page_len,
              num_qo_heads: int, num_kv_heads: int, head_dim: int, page_size: int, *,
              causal: bool = False, window_left: int = -1, sm_scale: float | None = None,
              logits_soft_cap: float | None = None, dtype: str = "float16", kv_dtype: str | None = None,
              num_ctas: int = 132, block_m: int = 128, offsets_key: tuple | None = None,
              l2_section_bytes: int = schedule.L2_SECTION_BYTES) -> Plan:
    """Plan one batch from validated host index arrays (see validate.check_plan_args).

    Example: 2 requests of 100 and 300 query tokens on 100 and 400 keys, 8 q heads on 2 KV heads:
        make_plan([0, 100, 400], [0, 7, 32], pages, [4, 16], 8, 2, 128, 16, causal=True)
    gives tiles of up to 128 packed (token, head) rows per (request, KV head), spread over
    132 CTAs longest-first.
    """
    qo_indptr = np.asarray(qo_indptr, dtype=np.int64)
    qo_lens = np.diff(qo_indptr).astype(np.int32)
    pages = paging.token_pages(paged_kv_indptr, paged_kv_indices, paged_kv_last_page_len, page_size)
    group = num_qo_heads // num_kv_heads
    tiles = schedule.make_tiles(qo_lens, pages.kv_lens, group, num_kv_heads, block_m, causal, window_left)
    # K and V as 16-bit bytes, also for an fp8 cache: its sections keep the bf16 build's tokens (the
    # budgets were measured in those; 16 x 1024 causal preferred smaller sections, not larger ones).
    sections = schedule.l2_sections(tiles, kv_bytes_per_token=4 * head_dim,  # K and V, 16-bit
                                    budget=l2_section_bytes)
    order, work_indptr = schedule.partition(schedule.tile_costs(tiles, block_m), num_ctas, sections)
    tiles = np.ascontiguousarray(tiles[order], dtype=np.int32)

    n_kv = int(pages.tok_page.shape[0])
    indptr = np.asarray(paged_kv_indptr, dtype=np.int64)
    used = np.asarray(paged_kv_indices, dtype=np.int64)[: int(indptr[-1])] if indptr.size else np.zeros(0)
    max_page_index = int(used.max()) if used.size else -1

    arrays = {
        "qo_indptr": qo_indptr.astype(np.int32),
        "kv_lens": pages.kv_lens.astype(np.int32),
        "kv_tok_indptr": pages.kv_tok_indptr.astype(np.int32),
        "tiles": device_tiles(tiles, qo_indptr, pages.kv_lens, pages.kv_tok_indptr),
        "work_indptr": work_indptr.astype(np.int32),
        "tok_page": pages.tok_page.astype(np.int32),
        "tok_slot": pages.tok_slot.astype(np.int32),
    }
    sizes = {name: arr.nbytes for name, arr in arrays.items()}
    sizes.update(tok_units=4 * n_kv, k_tok_elems=8 * n_kv, v_tok_elems=8 * n_kv)
    layout, total = _layout(sizes)

    if offsets_key is not None:
        if not units_fit(offsets_key, max_page_index, page_size):
            raise OverflowError("offsets_key in units mode does not fit int32; use element mode")
        arrays.update(build_offsets(arrays["tok_page"], arrays["tok_slot"], offsets_key))

    image = np.zeros(total, dtype=np.uint8)
    for name, arr in arrays.items():
        start, nbytes = layout[name]
        image[start:start + nbytes] = np.ascontiguousarray(arr).view(np.uint8).reshape(-1)

    return Plan(
        batch_size=int(qo_lens.shape[0]), num_qo_heads=int(num_qo_heads), num_kv_heads=int(num_kv_heads),
        head_dim=int(head_dim), page_size=int(page_size), causal=bool(causal), window_left=int(window_left),
        sm_scale=float(sm_scale) if sm_scale is not None else 1.0 / float(np.sqrt(head_dim)),
        logits_soft_cap=float(logits_soft_cap or 0.0), dtype=dtype, kv_dtype="" if kv_dtype in (None, dtype) else kv_dtype,
        block_m=int(block_m),
        num_ctas=int(num_ctas), total_q=int(qo_indptr[-1]) if qo_indptr.size else 0, total_kv=n_kv,
        max_page_index=max_page_index, qo_lens=qo_lens, kv_lens=pages.kv_lens, tiles=tiles,
        work_indptr=arrays["work_indptr"], tok_page=arrays["tok_page"], tok_slot=arrays["tok_slot"],
        offsets_key=offsets_key, layout=layout, image=image,
    )
