"""Plain float32 (or float64) paged prefill attention, the yardstick for tests, demo and bench.

Gathers each request's pages by fancy indexing into the page table and runs a dense softmax;
deliberately independent of paging.py / schedule.py so that a planner bug cannot hide in both.
An fp8 cache (torch float8 tensors, or uint8 bytes with kv_data_type) and fp8 queries (likewise, with
q_data_type) are decoded here from their bit patterns with a table of its own, independent of the
kernels' fp8_convert.cuh.
"""

from __future__ import annotations

import math

import numpy as np

try:  # CuPy is optional here: the reference also runs on NumPy arrays without a GPU.
    import cupy as _cupy
except Exception:  # pragma: no cover - depends on the machine
    _cupy = None

__all__ = ["paged_prefill_reference", "as_float_array", "array_module", "fp8_table", "decode_fp8"]

_LN2 = math.log(2.0)
# Budget for one chunk of logits, in elements (256 MiB of float32): 8k x 8k x 32 heads would be
# 8.6 GB in one piece, so query rows are processed in chunks that keep the logits under this.
_CHUNK_ELEMS = 64 << 20


def _is_torch(x) -> bool:
    return type(x).__module__.startswith("torch")


FP8_KINDS = ("float8_e4m3fn", "float8_e5m2")


def fp8_table(kind: str) -> np.ndarray:
    """float32 [256]: the value of every fp8 bit pattern of `kind` ("float8_e4m3fn": bias 7, no inf,
    S.1111.111 NaN; "float8_e5m2": bias 15, IEEE-style inf and NaN), decoded from sign, exponent and
    mantissa fields."""
    if kind not in FP8_KINDS:
        raise ValueError(f"reference: fp8 kind must be one of {FP8_KINDS}, got {kind!r}")
    out = np.empty(256, dtype=np.float32)
    man_bits, bias = (3, 7) if kind == "float8_e4m3fn" else (2, 15)
    exp_max = (1 << (7 - man_bits)) - 1
    for b in range(256):
        sign = -1.0 if b & 0x80 else 1.0
        e, m = (b & 0x7F) >> man_bits, b & ((1 << man_bits) - 1)
        frac = m / (1 << man_bits)
        if kind == "float8_e4m3fn" and e == exp_max and m == (1 << man_bits) - 1:
            value = math.nan
        elif kind == "float8_e5m2" and e == exp_max:
            value = math.inf if m == 0 else math.nan
        elif e == 0:
            value = frac * 2.0 ** (1 - bias)
        else:
            value = (1.0 + frac) * 2.0 ** (e - bias)
        out[b] = sign * value
    return out


def decode_fp8(raw, kind: str):
    """uint8 bit patterns (NumPy or CuPy) -> float32 values of the fp8 kind, by table lookup."""
    xp = _cupy.get_array_module(raw) if _cupy is not None else np
    return xp.asarray(fp8_table(kind))[raw.astype(xp.uint8, copy=False)]


def _to_xp_raw(x, kv_data_type=None, what: str = "cache", arg: str = "kv_data_type"):
    """x as a NumPy or CuPy array without changing its values (bf16 becomes its uint16 bits, fp8 its
    uint8 bits).

    Returns (array, encoding): "bf16", an fp8 kind (FP8_KINDS) or "" (the array's own dtype). torch
    tensors cross through DLPack (CUDA -> CuPy, CPU -> NumPy); bf16 and fp8 are viewed as integers
    first because NumPy and CuPy have neither. A uint8 array is fp8 bytes when kv_data_type names
    an fp8 kind (what / arg name the operand and its dtype argument in the error).
    """
    if _is_torch(x):
        import torch

        name = str(x.dtype).rsplit(".", 1)[-1]
        enc = "bf16" if x.dtype == torch.bfloat16 else name if name in FP8_KINDS else ""
        t = x.view(torch.int16) if enc == "bf16" else x.view(torch.uint8) if enc else x
        if t.is_cuda:
            if _cupy is None:
                raise TypeError("a CUDA torch tensor needs cupy for the reference")
            arr = _cupy.from_dlpack(t)
        else:
            arr = t.detach().numpy()
        return arr, enc
    if _cupy is not None and isinstance(x, _cupy.ndarray):
        arr = x
    elif isinstance(x, np.ndarray):
        arr = x
    elif hasattr(x, "__dlpack__") and _cupy is not None and _dlpack_on_cuda(x):
        arr = _cupy.from_dlpack(x)
    else:
        arr = np.asarray(x)
    if arr.dtype.name == "bfloat16":  # ml_dtypes-style bf16 on NumPy (or a future CuPy)
        return arr.view(np.uint16), "bf16"
    if arr.dtype.name in FP8_KINDS:  # ml_dtypes-style fp8
        return arr.view(np.uint8), arr.dtype.name
    if arr.dtype == np.uint8 and kv_data_type is not None:
        kind = str(kv_data_type).rsplit(".", 1)[-1]
        if kind not in FP8_KINDS:
            raise ValueError(f"reference: a uint8 {what} needs {arg} in {FP8_KINDS}, got {kv_data_type!r}")
        return arr, kind
    return arr, ""


def _dlpack_on_cuda(x) -> bool:
    try:
        dev_type, _ = x.__dlpack_device__()
    except Exception:
        return False
    return int(dev_type) in (2, 13)  # kDLCUDA, kDLCUDAManaged


def array_module(x):
    """numpy or cupy, whichever holds x (torch CUDA tensors count as cupy)."""
    arr, _ = _to_xp_raw(x)
    if _cupy is not None:
        return _cupy.get_array_module(arr)
    return np


def _widen(arr, enc: str, dtype):
    """Convert (raw array, encoding) to a float array of `dtype` (bf16 bits -> float32 exactly, fp8
    bits -> their decoded values)."""
    if enc == "bf16":
        xp = _cupy.get_array_module(arr) if _cupy is not None else np
        # bf16 is the top half of a float32: shift the 16 bits up and reinterpret.
        f32 = (arr.astype(xp.uint16).astype(xp.uint32) << 16).view(xp.float32)
        return f32.astype(dtype, copy=False)
    if enc in FP8_KINDS:
        return decode_fp8(arr, enc).astype(dtype, copy=False)
    return arr.astype(dtype, copy=False)


def as_float_array(x, dtype="float32", kv_data_type=None):
    """Any supported array (NumPy, CuPy, torch CPU/CUDA, fp16/bf16/fp32/fp8, uint8 fp8 bytes with
    kv_data_type) as a NumPy/CuPy float array.

    Used by the tests to compare a kernel's bf16 torch output with the reference.
    """
    arr, enc = _to_xp_raw(x, kv_data_type)
    return _widen(arr, enc, np.dtype(dtype))


def _host_ints(x, name: str) -> np.ndarray:
    if _is_torch(x):
        x = x.detach().cpu().numpy()
    elif _cupy is not None and isinstance(x, _cupy.ndarray):
        x = _cupy.asnumpy(x)
    a = np.asarray(x)
    if a.ndim != 1 or not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"reference: {name} must be a 1-D integer array, got {a.dtype} {a.shape}")
    return a.astype(np.int64)


def _split_cache(paged_kv_cache):
    if isinstance(paged_kv_cache, (tuple, list)):
        if len(paged_kv_cache) != 2:
            raise ValueError("reference: paged_kv_cache tuple must be (k, v)")
        return paged_kv_cache[0], paged_kv_cache[1]
    if len(paged_kv_cache.shape) != 5 or paged_kv_cache.shape[1] != 2:
        raise ValueError(
            f"reference: paged_kv_cache must be (k, v) or 5-D with K/V on dim 1, got shape "
            f"{tuple(paged_kv_cache.shape)}"
        )
    return paged_kv_cache[:, 0], paged_kv_cache[:, 1]


def _head_scale(scale, num_kv_heads: int, dtype, xp):
    """k_scale / v_scale as a multiplier of [Hkv, kv_len, D] gathers: 1, a number, or [Hkv] values."""
    if scale is None:
        return dtype.type(1.0)
    if isinstance(scale, (int, float, np.floating, np.integer)):
        return dtype.type(scale)
    values = as_float_array(scale, dtype.name)
    values = xp.asarray(values.get() if hasattr(values, "get") and xp is np else values, dtype=dtype)
    if values.shape != (num_kv_heads,):
        raise ValueError(f"reference: per-head scales must have shape [{num_kv_heads}], got {values.shape}")
    return values[:, None, None]


def _query_scale(scale, num_qo_heads: int, num_kv_heads: int, dtype, xp):
    """q_scale as a multiplier of [rows, Hqo, D] queries: 1, a number, or an array per KV head [Hkv]
    (each value for its group of query heads) or per query head [Hqo]."""
    if scale is None or isinstance(scale, (int, float, np.floating, np.integer)):
        return dtype.type(1.0 if scale is None else scale)
    values = as_float_array(scale, dtype.name)
    values = xp.asarray(values.get() if hasattr(values, "get") and xp is np else values, dtype=dtype)
    if values.shape == (num_kv_heads,):
        values = xp.repeat(values, num_qo_heads // num_kv_heads)
    elif values.shape != (num_qo_heads,):
        raise ValueError(f"reference: q_scale must have shape [{num_kv_heads}] or [{num_qo_heads}], "
                         f"got {values.shape}")
    return values[None, :, None]


def _gather(cache_raw, enc, pages, kv_len, kv_layout, dtype, xp):
    """Keys (or values) 0..kv_len-1 of one request as [Hkv, kv_len, D] in `dtype`."""
    g = cache_raw[xp.asarray(pages)]  # plain fancy indexing: [n_pages, ...] in the storage dtype
    if kv_layout == "NHD":  # [n, page_size, H, D] -> [H, n * page_size, D]
        n, ps, h, d = g.shape
        g = g.reshape(n * ps, h, d).transpose(1, 0, 2)
    else:  # HND: [n, H, page_size, D] -> [H, n * page_size, D]
        n, h, ps, d = g.shape
        g = g.transpose(1, 0, 2, 3).reshape(h, n * ps, d)
    return _widen(g[:, :kv_len], enc, dtype)


def paged_prefill_reference(
    q,
    paged_kv_cache,
    qo_indptr,
    paged_kv_indptr,
    paged_kv_indices,
    paged_kv_last_page_len,
    *,
    kv_layout="NHD",
    causal=False,
    sm_scale=None,
    window_left=-1,
    logits_soft_cap=None,
    compute_dtype="float32",
    kv_data_type=None,
    q_scale=None,
    k_scale=None,
    v_scale=None,
    q_data_type=None,
):
    """Batch prefill attention over a paged KV cache, computed densely per request.

    q: [total_q, Hqo, D]; paged_kv_cache: (k, v) of [pages, page_size, Hkv, D] (NHD) or
    [pages, Hkv, page_size, D] (HND), any strides, or one 5-D array with K/V on dim 1.
    NumPy, CuPy or torch (CUDA tensors go to CuPy through DLPack, CPU tensors to NumPy); fp16,
    bf16, fp32, and for the cache and q also fp8 (torch float8_e4m3fn / float8_e5m2 tensors, or uint8
    bytes with kv_data_type / q_data_type naming the kind). Index arrays: any array kind, host or device.

    logits = sm_scale * q_scale * q.(k_scale k) (sm_scale defaults to 1/sqrt(D)); with a soft cap c,
    logits = c * tanh(logits / c); o = softmax @ (v_scale v). q_scale: a number, or an array per KV
    head [Hkv] or per query head [Hqo]; k_scale, v_scale: numbers or per-KV-head arrays [Hkv] (any
    array kind). Query i of a request (qo_len q, kv_len k) sees key j iff
    j < k, (not causal or j <= i + k - q) and (window_left < 0 or j >= i + k - q - window_left).

    Returns (o, lse) as NumPy/CuPy arrays of `compute_dtype`: o [total_q, Hqo, D] = softmax @ v,
    lse [total_q, Hqo] = log2(sum_j exp(logit_j)). Rows that see no key: o = 0, lse = -inf.

    Example:
        o, lse = paged_prefill_reference(q, (k, v), qo_indptr, kv_indptr, kv_indices,
                                         last_page_len, causal=True)
    """
    if kv_layout not in ("NHD", "HND"):
        raise ValueError(f"reference: kv_layout must be 'NHD' or 'HND', got {kv_layout!r}")
    dtype = np.dtype(compute_dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"reference: compute_dtype must be float32 or float64, got {compute_dtype}")

    q_raw, q_enc = _to_xp_raw(q, q_data_type, "q", "q_data_type")
    k, v = _split_cache(paged_kv_cache)
    k_raw, k_enc = _to_xp_raw(k, kv_data_type)
    v_raw, v_enc = _to_xp_raw(v, kv_data_type)
    xp = _cupy.get_array_module(q_raw) if _cupy is not None else np
    if q_raw.ndim != 3 or k_raw.ndim != 4 or v_raw.ndim != 4:
        raise ValueError("reference: q must be 3-D and k, v 4-D")

    qo_indptr = _host_ints(qo_indptr, "qo_indptr")
    kv_indptr = _host_ints(paged_kv_indptr, "paged_kv_indptr")
    kv_indices = _host_ints(paged_kv_indices, "paged_kv_indices")
    last_len = _host_ints(paged_kv_last_page_len, "paged_kv_last_page_len")
    batch = len(qo_indptr) - 1
    if len(kv_indptr) != batch + 1 or len(last_len) != batch:
        raise ValueError("reference: index arrays disagree on the batch size")

    total_q, num_qo_heads, head_dim = q_raw.shape
    num_kv_heads = k_raw.shape[2] if kv_layout == "NHD" else k_raw.shape[1]
    page_size = k_raw.shape[1] if kv_layout == "NHD" else k_raw.shape[2]
    if num_qo_heads % num_kv_heads:
        raise ValueError("reference: num_qo_heads must be a multiple of num_kv_heads")
    group = num_qo_heads // num_kv_heads
    if sm_scale is None:
        sm_scale = 1.0 / math.sqrt(head_dim)
    qs = _query_scale(q_scale, num_qo_heads, num_kv_heads, dtype, xp)
    ks = _head_scale(k_scale, num_kv_heads, dtype, xp)
    vs = _head_scale(v_scale, num_kv_heads, dtype, xp)
    cap = float(logits_soft_cap) if logits_soft_cap is not None and logits_soft_cap > 0 else None

    o = xp.zeros((total_q, num_qo_heads, head_dim), dtype=dtype)
    lse = xp.full((total_q, num_qo_heads), -np.inf, dtype=dtype)

    for b in range(batch):
        q0, q1 = int(qo_indptr[b]), int(qo_indptr[b + 1])
        qo_len = q1 - q0
        pages = kv_indices[kv_indptr[b] : kv_indptr[b + 1]]
        kv_len = (len(pages) - 1) * page_size + int(last_len[b]) if len(pages) else 0
        if qo_len <= 0 or kv_len <= 0:
            continue  # nothing visible: rows keep o = 0, lse = -inf
        kk = _gather(k_raw, k_enc, pages, kv_len, kv_layout, dtype, xp) * ks  # [Hkv, kv_len, D]
        vv = _gather(v_raw, v_enc, pages, kv_len, kv_layout, dtype, xp) * vs
        kk_t = kk.transpose(0, 2, 1)  # [Hkv, D, kv_len]
        j = xp.arange(kv_len)[None, :]
        chunk = max(1, _CHUNK_ELEMS // (num_qo_heads * kv_len))
        for c0 in range(0, qo_len, chunk):
            c1 = min(qo_len, c0 + chunk)
            rows = c1 - c0
            qq = _widen(q_raw[q0 + c0 : q0 + c1], q_enc, dtype) * qs  # [rows, Hqo, D]
            # Packed rows r = i * G + g of kv head kh, as in the kernels' GQA packing.
            qq = qq.reshape(rows, num_kv_heads, group, head_dim).transpose(1, 0, 2, 3)
            qq = qq.reshape(num_kv_heads, rows * group, head_dim)
            s = xp.matmul(qq, kk_t) * dtype.type(sm_scale)  # [Hkv, rows*G, kv_len]
            if cap is not None:
                s = dtype.type(cap) * xp.tanh(s / dtype.type(cap))
            s = s.reshape(num_kv_heads, rows, group, kv_len)
            i = xp.arange(c0, c1)[:, None]
            diag = i + (kv_len - qo_len)  # last visible key under the causal mask
            visible = xp.ones((rows, kv_len), dtype=bool)
            if causal:
                visible &= j <= diag
            if window_left is not None and window_left >= 0:
                visible &= j >= diag - window_left
            s = xp.where(visible[None, :, None, :], s, -xp.inf)
            m = s.max(axis=-1, keepdims=True)
            any_visible = xp.isfinite(m)
            m_safe = xp.where(any_visible, m, 0)
            p = xp.exp(s - m_safe)  # masked -> exp(-inf) = 0
            denom = p.sum(axis=-1, keepdims=True)
            denom_safe = xp.where(any_visible, denom, 1)
            out = xp.matmul(p.reshape(num_kv_heads, rows * group, kv_len), vv)
            out = out.reshape(num_kv_heads, rows, group, head_dim) / denom_safe
            out = xp.where(any_visible, out, 0)
            row_lse = xp.where(any_visible, (m + xp.log(denom_safe)) / dtype.type(_LN2), -xp.inf)
            # [Hkv, rows, G, ...] -> [rows, Hkv * G, ...]
            o[q0 + c0 : q0 + c1] = out.transpose(1, 0, 2, 3).reshape(rows, num_qo_heads, head_dim)
            lse[q0 + c0 : q0 + c1] = row_lse[..., 0].transpose(1, 0, 2).reshape(rows, num_qo_heads)
    return o, lse
