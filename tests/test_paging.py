"""paging.py against plain NumPy indexing into real page pools (CPU only)."""

import numpy as np
import pytest

from nvrtc_attn.paging import (
    choose_offset_mode,
    offsets_in_elements,
    offsets_in_token_units,
    token_pages,
)

SEEDS = range(6)
PAGE_SIZES = (1, 5, 16, 64)
H, D = 3, 4


def random_page_table(rng, page_size, num_pages, index_dtype):
    """A batch with some empty requests; pages drawn with replacement (shared prefixes are legal)."""
    batch = int(rng.integers(1, 6))
    n_pages = rng.integers(0, 4, size=batch)
    n_pages[rng.integers(batch)] = 0  # at least one kv_len == 0 request
    indptr = np.concatenate(([0], np.cumsum(n_pages))).astype(index_dtype)
    indices = rng.integers(0, num_pages, size=int(indptr[-1])).astype(index_dtype)
    last = rng.integers(1, page_size + 1, size=batch)
    last[n_pages == 0] = rng.integers(0, page_size + 1)  # ignored for empty requests
    return indptr, indices, last.astype(index_dtype)


class View:
    """A [pages, page_size, H, D] logical view (NHD order) plus its element strides in a flat buffer."""

    def __init__(self, buffer, view_nhd, strides, offset):
        self.flat = buffer.reshape(-1)
        self.logical = view_nhd
        self.strides = strides  # (page, token, head)
        self.offset = offset


def make_view(buffer, view, layout):
    # HND views are [pages, H, page_size, D]; swap to NHD order for the plain-indexing reference
    # and swap the token/head strides so the tuple is always (page, token, head).
    itemsize = view.itemsize
    off = (view.__array_interface__["data"][0] - buffer.__array_interface__["data"][0]) // itemsize
    s = [st // itemsize for st in view.strides]
    assert s[3] == 1
    if layout == "NHD":
        return View(buffer, view, (s[0], s[1], s[2]), off)
    return View(buffer, view.transpose(0, 2, 1, 3), (s[0], s[2], s[1]), off)


def gather(view, offsets, mode):
    """Keys [total_kv, H, D] read from the flat buffer the way the kernel does."""
    _, stride_token, stride_head = view.strides
    tok = offsets.astype(np.int64) * (stride_token if mode == "units" else 1)
    idx = view.offset + tok[:, None, None] + np.arange(H)[None, :, None] * stride_head + np.arange(D)[None, None, :]
    return view.flat[idx]


def reference(view, indptr, indices, last, page_size):
    """Keys [total_kv, H, D] by plain per-request fancy indexing from the page table."""
    out = []
    for b in range(len(indptr) - 1):
        pages = indices[indptr[b]:indptr[b + 1]]
        if len(pages) == 0:
            continue
        kv_len = (len(pages) - 1) * page_size + int(last[b])
        j = np.arange(kv_len)
        out.append(view.logical[pages[j // page_size], j % page_size])
    return np.concatenate(out) if out else np.zeros((0, H, D), np.float32)


def pools(rng, page_size, num_pages):
    """(name, k view, v view, expected mode) cases over real pools."""
    L, layer = 3, 1
    nhd = rng.standard_normal((num_pages, L, 2, page_size, H, D)).astype(np.float32)
    hnd = rng.standard_normal((num_pages, L, 2, H, page_size, D)).astype(np.float32)
    # Per-page padding: page stride is no multiple of the token stride (H * D = 12, pad 5).
    padded = rng.standard_normal((num_pages, page_size * H * D + 5)).astype(np.float32)
    padded_view = padded[:, : page_size * H * D].reshape(num_pages, page_size, H, D)
    assert np.shares_memory(padded_view, padded)
    # Padded head dim in a different pool: K/V strides differ but share the page/token ratio.
    wide = rng.standard_normal((num_pages, L, 2, page_size, H, D + 3)).astype(np.float32)
    # Another layer count: same layout, different page/token ratio.
    other_l = rng.standard_normal((num_pages, L + 1, 2, page_size, H, D)).astype(np.float32)
    return [
        ("nhd_pool", make_view(nhd, nhd[:, layer, 0], "NHD"), make_view(nhd, nhd[:, layer, 1], "NHD"), "units"),
        ("hnd_pool", make_view(hnd, hnd[:, layer, 0], "HND"), make_view(hnd, hnd[:, layer, 1], "HND"), "units"),
        ("k_nhd_v_wide", make_view(nhd, nhd[:, layer, 0], "NHD"),
         make_view(wide, wide[:, layer, 1, :, :, :D], "NHD"), "units"),
        ("padded_page", make_view(padded, padded_view, "NHD"), make_view(nhd, nhd[:, layer, 1], "NHD"), "elements"),
        ("k_nhd_v_hnd", make_view(nhd, nhd[:, layer, 0], "NHD"), make_view(hnd, hnd[:, layer, 1], "HND"), "elements"),
        ("other_layers", make_view(nhd, nhd[:, 0, 0], "NHD"), make_view(other_l, other_l[:, 2, 1], "NHD"), "elements"),
    ]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("page_size", PAGE_SIZES)
@pytest.mark.parametrize("index_dtype", (np.int32, np.int64))
def test_offsets_match_plain_indexing(seed, page_size, index_dtype):
    rng = np.random.default_rng(1000 * seed + page_size)
    num_pages = 7
    indptr, indices, last = random_page_table(rng, page_size, num_pages, index_dtype)
    tp = token_pages(indptr, indices, last, page_size)
    for name, k, v, expected_mode in pools(rng, page_size, num_pages):
        mode, ratio = choose_offset_mode(k.strides, v.strides)
        assert mode == expected_mode, name
        for view in (k, v):
            if mode == "units":
                offsets = offsets_in_token_units(tp.tok_page, tp.tok_slot, ratio)
                assert offsets is not None and offsets.dtype == np.int32
            else:
                offsets = offsets_in_elements(tp.tok_page, tp.tok_slot, view.strides[0], view.strides[1])
                assert offsets.dtype == np.int64
            np.testing.assert_array_equal(
                gather(view, offsets, mode), reference(view, indptr, indices, last, page_size), err_msg=name
            )
            # Element offsets are always valid, whatever mode was chosen.
            elements = offsets_in_elements(tp.tok_page, tp.tok_slot, view.strides[0], view.strides[1])
            np.testing.assert_array_equal(gather(view, elements, "elements"), reference(view, indptr, indices, last, page_size))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("page_size", PAGE_SIZES)
def test_token_pages_fields(seed, page_size):
    rng = np.random.default_rng(seed + 17 * page_size)
    indptr, indices, last = random_page_table(rng, page_size, 50, np.int64)
    tp = token_pages(indptr, indices, last, page_size)
    n_pages = np.diff(indptr)
    expected_lens = np.where(n_pages > 0, (n_pages - 1) * page_size + last, 0)
    np.testing.assert_array_equal(tp.kv_lens, expected_lens)
    np.testing.assert_array_equal(tp.kv_tok_indptr, np.concatenate(([0], np.cumsum(expected_lens))))
    for arr in (tp.kv_lens, tp.kv_tok_indptr, tp.tok_page, tp.tok_slot):
        assert arr.dtype == np.int32
    for b in range(len(n_pages)):
        lo, hi = tp.kv_tok_indptr[b], tp.kv_tok_indptr[b + 1]
        j = np.arange(hi - lo)
        np.testing.assert_array_equal(tp.tok_page[lo:hi], indices[indptr[b] + j // page_size])
        np.testing.assert_array_equal(tp.tok_slot[lo:hi], j % page_size)


def test_token_pages_docstring_example():
    tp = token_pages(np.array([0, 2, 2, 3]), np.array([7, 3, 5]), np.array([1, 9, 2]), 4)
    np.testing.assert_array_equal(tp.kv_lens, [5, 0, 2])
    np.testing.assert_array_equal(tp.kv_tok_indptr, [0, 5, 5, 7])
    np.testing.assert_array_equal(tp.tok_page, [7, 7, 7, 7, 3, 5, 5])
    np.testing.assert_array_equal(tp.tok_slot, [0, 1, 2, 3, 0, 0, 1])


def test_token_pages_all_empty():
    tp = token_pages(np.array([0, 0, 0], np.int32), np.zeros(0, np.int32), np.array([1, 1], np.int32), 16)
    assert tp.tok_page.shape == (0,) and tp.tok_slot.shape == (0,)
    np.testing.assert_array_equal(tp.kv_tok_indptr, [0, 0, 0])
    assert offsets_in_token_units(tp.tok_page, tp.tok_slot, 32).shape == (0,)
    assert offsets_in_elements(tp.tok_page, tp.tok_slot, 32, 4).shape == (0,)


def test_units_int32_overflow_returns_none():
    int32_max = np.iinfo(np.int32).max
    ratio = 1 << 12
    page = np.array([0, int32_max // ratio], np.int32)
    slot = np.array([0, int32_max % ratio], np.int32)
    fits = offsets_in_token_units(page, slot, ratio)
    assert fits is not None and fits[-1] == int32_max
    assert offsets_in_token_units(page, slot + 1, ratio) is None
    assert offsets_in_token_units(np.array([1 << 20], np.int32), np.array([0], np.int32), ratio) is None
    # The element table is int64 and never overflows at these sizes.
    assert offsets_in_elements(np.array([1 << 20]), np.array([3]), ratio * 128, 128)[0] == (1 << 32) * 128 + 3 * 128


@pytest.mark.parametrize(
    "k_strides, v_strides, expected",
    [
        ((6 * 16 * 1024, 1024, 128), (6 * 16 * 1024, 1024, 128), ("units", 96)),  # pool[:, l, 0/1]
        ((16 * 1024, 128, 16 * 128), (16 * 1024, 128, 16 * 128), ("units", 128)),  # HND
        ((16 * 1024, 1024, 128), (16 * 1040, 1040, 130), ("units", 16)),  # padded D in V only
        ((16 * 1024 + 8, 1024, 128), (16 * 1024 + 8, 1024, 128), ("elements", None)),  # page % token != 0
        ((16 * 1024, 1024, 128), (16 * 1024, 128, 16 * 128), ("elements", None)),  # ratios 16 vs 128
        ((1024, 0, 128), (1024, 0, 128), ("elements", None)),  # stride_token == 0
    ],
)
def test_choose_offset_mode(k_strides, v_strides, expected):
    assert choose_offset_mode(k_strides, v_strides) == expected
