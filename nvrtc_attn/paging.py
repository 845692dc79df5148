"""The stride->offset conversion: page table + cache strides -> one offset per key token.

Pure NumPy, run once in plan(); the kernel's paged loader only adds head and dim terms to these.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_INT32_MIN = int(np.iinfo(np.int32).min)
_INT32_MAX = int(np.iinfo(np.int32).max)

__all__ = [
    "TokenPages",
    "token_pages",
    "offsets_in_token_units",
    "offsets_in_elements",
    "choose_offset_mode",
]


@dataclass(frozen=True)
class TokenPages:
    """Where every key token of the batch lives.

    kv_lens:       int32[B]         keys per request
    kv_tok_indptr: int32[B+1]       exclusive cumsum of kv_lens; token t = kv_tok_indptr[b] + j
    tok_page:      int32[total_kv]  page holding token t
    tok_slot:      int32[total_kv]  slot of token t inside that page (0 <= slot < page_size)
    """

    kv_lens: np.ndarray
    kv_tok_indptr: np.ndarray
    tok_page: np.ndarray
    tok_slot: np.ndarray


def _to_int32(values: np.ndarray, what: str) -> np.ndarray:
    # Validation is validate.py's job, but a silent wrap-around here would send the kernel to the
    # wrong page, so an out-of-range value is still an error rather than a cast.
    values = np.asarray(values, dtype=np.int64)
    if values.size and (values.min() < _INT32_MIN or values.max() > _INT32_MAX):
        raise OverflowError(f"{what} does not fit in int32 (range [{values.min()}, {values.max()}])")
    return values.astype(np.int32)


def kv_lengths(paged_kv_indptr, paged_kv_last_page_len, page_size: int) -> np.ndarray:
    """int64[B]: keys per request, (n_b - 1) * page_size + last_page_len[b] for a request of n_b > 0
    pages, 0 without pages (last_page_len[b] is then ignored).

    Example: page_size=4, indptr=[0, 2, 2, 3], last_page_len=[1, 9, 2] -> [5, 0, 2]
    """
    indptr = np.asarray(paged_kv_indptr, dtype=np.int64)
    n_pages = indptr[1:] - indptr[:-1]
    kv_lens = n_pages * int(page_size)
    kv_lens += np.asarray(paged_kv_last_page_len, dtype=np.int64) - int(page_size)
    kv_lens *= n_pages > 0
    return kv_lens


def token_pages(paged_kv_indptr, paged_kv_indices, paged_kv_last_page_len, page_size: int) -> TokenPages:
    """Expand the CSR page table to one (page, slot) pair per key token, without a token loop.

    paged_kv_indptr: int[B+1], paged_kv_indices: int[nnz_pages], paged_kv_last_page_len: int[B]
    (any integer dtype; assumed validated). Request b has n_b = indptr[b+1] - indptr[b] pages and
    kv_len[b] = (n_b - 1) * page_size + last_page_len[b] keys, or 0 when n_b == 0 (then
    last_page_len[b] is ignored). Key j of request b is in page indices[indptr[b] + j // page_size],
    slot j % page_size.

    Example: page_size=4, indptr=[0, 2, 2, 3], indices=[7, 3, 5], last_page_len=[1, 9, 2]
      -> kv_lens=[5, 0, 2], kv_tok_indptr=[0, 5, 5, 7],
         tok_page=[7, 7, 7, 7, 3, 5, 5], tok_slot=[0, 1, 2, 3, 0, 0, 1]
    """
    indptr = np.asarray(paged_kv_indptr, dtype=np.int64)
    indices = np.asarray(paged_kv_indices, dtype=np.int64)
    page_size = int(page_size)

    kv_lens = kv_lengths(indptr, paged_kv_last_page_len, page_size)
    kv_tok_indptr = np.zeros(len(kv_lens) + 1, dtype=np.int64)
    np.cumsum(kv_lens, out=kv_tok_indptr[1:])
    total_kv = int(kv_tok_indptr[-1])

    # Token t belongs to request req[t] at position j[t] = t - kv_tok_indptr[req[t]].
    req = np.repeat(np.arange(len(kv_lens), dtype=np.int64), kv_lens)
    j = np.arange(total_kv, dtype=np.int64) - kv_tok_indptr[req]
    tok_page = indices[indptr[req] + j // page_size]
    tok_slot = j % page_size

    return TokenPages(
        kv_lens=_to_int32(kv_lens, "kv_len"),
        kv_tok_indptr=_to_int32(kv_tok_indptr, "total number of keys"),
        tok_page=_to_int32(tok_page, "page index"),
        tok_slot=tok_slot.astype(np.int32),
    )


def offsets_in_token_units(tok_page, tok_slot, page_ratio: int) -> np.ndarray | None:
    """Per-token offsets in units of stride_token: tok_page * page_ratio + tok_slot, as int32[total_kv].

    page_ratio = stride_page // stride_token (see choose_offset_mode). The kernel forms the element
    address as offset * stride_token + head * stride_head + d in 64-bit, so the table itself stays
    int32 (half the bytes of int64 in the loader's index loads). Returns None when any offset would
    not fit in int32; the caller then falls back to offsets_in_elements.

    Example: NHD view pool[:, l, 0] of a [P, L=2, 2, page_size=16, H, D] pool has page_ratio
    2*2*16 = 64, so (page 3, slot 5) -> 3*64 + 5 = 197.
    """
    page = np.asarray(tok_page, dtype=np.int64)
    slot = np.asarray(tok_slot, dtype=np.int64)
    offsets = page * int(page_ratio) + slot
    if offsets.size and (offsets.min() < _INT32_MIN or offsets.max() > _INT32_MAX):
        return None
    return offsets.astype(np.int32)


def offsets_in_elements(tok_page, tok_slot, stride_page: int, stride_token: int) -> np.ndarray:
    """Per-token element offsets tok_page * stride_page + tok_slot * stride_token, as int64[total_kv].

    Used when the page stride is not a whole number of token strides, or K and V disagree on the
    ratio, so one token-unit table cannot serve both. The kernel adds head * stride_head + d.
    """
    page = np.asarray(tok_page, dtype=np.int64)
    slot = np.asarray(tok_slot, dtype=np.int64)
    return page * int(stride_page) + slot * int(stride_token)


def choose_offset_mode(k_strides, v_strides) -> tuple[str, int | None]:
    """Pick one offset table that serves both K and V.

    k_strides, v_strides: (stride_page, stride_token, stride_head) in elements.
    Returns ("units", page_ratio) when both stride_token > 0, both stride_page are multiples of
    their stride_token and the two ratios are equal (then one int32 table of
    page * page_ratio + slot works for K and V, each scaled by its own stride_token);
    otherwise ("elements", None).

    Example: k = pool[:, l, 0], v = pool[:, l, 1] of a [P, L, 2, 16, 8, 128] pool both have
    (L*2*16*8*128, 8*128, 128) -> ("units", L*2*16); K in NHD with V in HND -> ("elements", None).
    """
    ratios = []
    for stride_page, stride_token, _ in (k_strides, v_strides):
        stride_page, stride_token = int(stride_page), int(stride_token)
        if stride_token <= 0 or stride_page % stride_token != 0:
            return ("elements", None)
        ratios.append(stride_page // stride_token)
    if ratios[0] != ratios[1]:
        return ("elements", None)
    return ("units", ratios[0])
