"""Every user-facing check. Each raises ValueError/TypeError naming the argument, the value seen
and the rule, BEFORE anything is launched or written (never `assert`: it vanishes under -O).
"""
from __future__ import annotations

import numbers

import numpy as np

from .arrays import Operand, dtype_name

SUPPORTED_HEAD_DIMS = (64, 128, 256)
SUPPORTED_DTYPES = ("float16", "bfloat16")
KV_LAYOUTS = ("NHD", "HND")
ALIGN_BYTES = 16  # cp.async / TMA move 16-byte chunks


def host_ints(x, name: str) -> np.ndarray:
    """A 1-D int64 host copy of an index array given as NumPy, CuPy, torch or a list.
    (plan() may synchronize: it runs once per batch, not per layer.)"""
    if hasattr(x, "get") and type(x).__module__.startswith("cupy"):
        x = x.get()
    elif type(x).__module__.startswith("torch"):
        x = x.detach().cpu().numpy()
    elif hasattr(x, "__dlpack__") and not isinstance(x, np.ndarray):
        try:
            x = np.from_dlpack(x)
        except Exception:
            x = np.asarray(x)
    arr = np.asarray(x)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name} must hold integers, got dtype {arr.dtype}")
    return arr.astype(np.int64, copy=False)


def positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def check_indptr(arr: np.ndarray, name: str) -> None:
    if arr.size < 1:
        raise ValueError(f"{name} must have batch_size + 1 >= 1 entries, got 0")
    if arr[0] != 0:
        raise ValueError(f"{name}[0] must be 0, got {int(arr[0])}")
    if arr.size > 1 and np.any(np.diff(arr) < 0):
        bad = int(np.nonzero(np.diff(arr) < 0)[0][0])
        raise ValueError(f"{name} must be non-decreasing, but {name}[{bad + 1}] = {int(arr[bad + 1])} "
                         f"< {name}[{bad}] = {int(arr[bad])}")


def check_dtype_arg(value, name: str) -> str:
    dt = dtype_name(value)
    if dt not in SUPPORTED_DTYPES:
        raise ValueError(f"{name} must be float16 or bfloat16, got {value!r}")
    return dt


def check_plan_args(qo_indptr, paged_kv_indptr, paged_kv_indices, paged_kv_last_page_len,
                    num_qo_heads, num_kv_heads, head_dim, page_size, causal, sm_scale,
                    window_left, logits_soft_cap, q_data_type, kv_data_type):
    """Validate plan() arguments; returns normalized host arrays and scalars as a dict."""
    num_qo_heads = positive_int(num_qo_heads, "num_qo_heads")
    num_kv_heads = positive_int(num_kv_heads, "num_kv_heads")
    if num_qo_heads % num_kv_heads:
        raise ValueError(f"num_qo_heads ({num_qo_heads}) must be a multiple of num_kv_heads ({num_kv_heads})")
    head_dim = positive_int(head_dim, "head_dim")
    if head_dim not in SUPPORTED_HEAD_DIMS:
        raise ValueError(f"head_dim must be one of {SUPPORTED_HEAD_DIMS}, got {head_dim}")
    page_size = positive_int(page_size, "page_size")
    q_dt = check_dtype_arg(q_data_type, "q_data_type")
    kv_dt = q_dt if kv_data_type is None else check_dtype_arg(kv_data_type, "kv_data_type")
    if kv_dt != q_dt:
        raise ValueError(f"kv_data_type ({kv_dt}) must equal q_data_type ({q_dt}): mixed precision is not supported")
    if isinstance(window_left, bool) or not isinstance(window_left, numbers.Integral) or window_left < -1:
        raise ValueError(f"window_left must be an integer >= -1 (-1: no window), got {window_left!r}")
    if sm_scale is not None and not (float(sm_scale) > 0 and np.isfinite(float(sm_scale))):
        raise ValueError(f"sm_scale must be a positive finite number or None, got {sm_scale!r}")
    if logits_soft_cap is not None and not (float(logits_soft_cap) >= 0 and np.isfinite(float(logits_soft_cap))):
        raise ValueError(f"logits_soft_cap must be None or a non-negative finite number, got {logits_soft_cap!r}")
    if not isinstance(causal, (bool, np.bool_)):
        raise TypeError(f"causal must be a bool, got {causal!r}")

    qo = host_ints(qo_indptr, "qo_indptr")
    kv = host_ints(paged_kv_indptr, "paged_kv_indptr")
    idx = host_ints(paged_kv_indices, "paged_kv_indices")
    last = host_ints(paged_kv_last_page_len, "paged_kv_last_page_len")
    check_indptr(qo, "qo_indptr")
    check_indptr(kv, "paged_kv_indptr")
    batch = qo.size - 1
    if kv.size != qo.size:
        raise ValueError(f"paged_kv_indptr has {kv.size} entries but qo_indptr has {qo.size}: "
                         f"both must be batch_size + 1")
    if last.size != batch:
        raise ValueError(f"paged_kv_last_page_len has {last.size} entries, expected batch_size = {batch}")
    if idx.size < kv[-1]:
        raise ValueError(f"paged_kv_indices has {idx.size} entries but paged_kv_indptr[-1] = {int(kv[-1])}")
    used = idx[: int(kv[-1])]
    if used.size and used.min() < 0:
        raise ValueError(f"paged_kv_indices must be >= 0, got {int(used.min())}")
    n_pages = np.diff(kv)
    has_pages = n_pages > 0
    bad = has_pages & ((last < 1) | (last > page_size))
    if np.any(bad):
        b = int(np.nonzero(bad)[0][0])
        raise ValueError(f"paged_kv_last_page_len[{b}] = {int(last[b])} must be in [1, page_size={page_size}]")
    kv_lens = np.where(has_pages, (n_pages - 1) * page_size + last, 0)
    qo_lens = np.diff(qo)
    if causal and np.any(qo_lens > kv_lens):
        b = int(np.nonzero(qo_lens > kv_lens)[0][0])
        raise ValueError(f"causal=True needs qo_len <= kv_len, but request {b} has qo_len "
                         f"{int(qo_lens[b])} > kv_len {int(kv_lens[b])}")
    if qo[-1] >= 2**31 or kv_lens.sum() >= 2**31 or (qo_lens * (num_qo_heads // num_kv_heads)).max(initial=0) >= 2**31:
        raise ValueError("qo_indptr / paged_kv_indptr: batch too large for int32 indexing")
    return dict(max_page_index=int(used.max()) if used.size else -1, qo_indptr=qo, paged_kv_indptr=kv, paged_kv_indices=idx, paged_kv_last_page_len=np.where(has_pages, last, 1),
                num_qo_heads=num_qo_heads, num_kv_heads=num_kv_heads, head_dim=head_dim,
                page_size=page_size, dtype=q_dt, window_left=int(window_left),
                sm_scale=None if sm_scale is None else float(sm_scale),
                logits_soft_cap=None if not logits_soft_cap else float(logits_soft_cap), causal=bool(causal))


def check_kv_layout(kv_layout) -> str:
    if kv_layout not in KV_LAYOUTS:
        raise ValueError(f"kv_layout must be 'NHD' or 'HND', got {kv_layout!r}")
    return kv_layout


def _check_inner(op: Operand, name: str) -> None:
    """head_dim stride 1, 16-byte aligned base and strides (cp.async/TMA chunks)."""
    if 0 in op.shape:
        return  # empty: frameworks report arbitrary strides and pointers, nothing is read or written
    if op.shape[-1] > 1 and op.strides[-1] != 1:
        raise ValueError(f"{name} must have stride 1 on head_dim (last dim), got strides {op.strides}")
    if op.ptr % ALIGN_BYTES:
        raise ValueError(f"{name} data pointer must be {ALIGN_BYTES}-byte aligned, got address {op.ptr:#x}")
    for dim, (size, stride) in enumerate(zip(op.shape[:-1], op.strides[:-1])):
        if size > 1 and (stride * op.itemsize) % ALIGN_BYTES:
            raise ValueError(f"{name} stride of dim {dim} is {stride} elements = {stride * op.itemsize} bytes; "
                             f"must be a multiple of {ALIGN_BYTES} bytes")
        if size > 1 and stride < 0:
            raise ValueError(f"{name} stride of dim {dim} must be non-negative, got {stride}")


def _check_device(op: Operand, name: str, device: int | None) -> None:
    if op.device is None:
        raise ValueError(f"{name} must be on a CUDA device, got a host array")
    if device is not None and op.device != device:
        raise ValueError(f"{name} is on cuda:{op.device} but q is on cuda:{device}")


def check_q(q: Operand, plan) -> None:
    expect = (plan.total_q, plan.num_qo_heads, plan.head_dim)
    if q.dtype != plan.dtype:
        raise TypeError(f"q dtype must be {plan.dtype} (q_data_type given to plan()), got {q.dtype}")
    if q.shape != expect:
        raise ValueError(f"q must have shape [qo_indptr[-1], num_qo_heads, head_dim] = {list(expect)}, got {list(q.shape)}")
    _check_inner(q, "q")
    _check_device(q, "q", None)


def check_cache(k: Operand, v: Operand, plan, kv_layout: str) -> None:
    for op, name in ((k, "paged_kv_cache (K)"), (v, "paged_kv_cache (V)")):
        if op.dtype != plan.dtype:
            raise TypeError(f"paged_kv_cache dtype must be {plan.dtype} (kv_data_type), got {op.dtype}")
        if op.ndim != 4:
            raise ValueError(f"paged_kv_cache: {name} must be 4-D, got shape {list(op.shape)}")
        if kv_layout == "NHD":
            expect = (plan.page_size, plan.num_kv_heads, plan.head_dim)
            what = "[num_pages, page_size, num_kv_heads, head_dim]"
        else:
            expect = (plan.num_kv_heads, plan.page_size, plan.head_dim)
            what = "[num_pages, num_kv_heads, page_size, head_dim]"
        if tuple(op.shape[1:]) != expect:
            raise ValueError(f"paged_kv_cache: {name} with kv_layout={kv_layout} must be {what} = "
                             f"[*, {', '.join(map(str, expect))}], got {list(op.shape)}")
        if plan.max_page_index >= op.shape[0]:
            raise ValueError(f"paged_kv_indices holds page index {plan.max_page_index} but paged_kv_cache "
                             f"has only {op.shape[0]} pages (valid range [0, {op.shape[0] - 1}])")
        _check_inner(op, f"paged_kv_cache {name}")
    if k.shape[0] != v.shape[0]:
        raise ValueError(f"paged_kv_cache: K has {k.shape[0]} pages but V has {v.shape[0]}")
    _check_device(k, "paged_kv_cache", None)
    _check_device(v, "paged_kv_cache", k.device)


def check_out(out: Operand, q: Operand) -> None:
    if out.dtype != q.dtype:
        raise TypeError(f"out dtype must equal q dtype {q.dtype}, got {out.dtype}")
    if out.shape != q.shape:
        raise ValueError(f"out must have q's shape {list(q.shape)}, got {list(out.shape)}")
    _check_inner(out, "out")
    _check_device(out, "out", q.device)


def check_lse(lse: Operand, q: Operand) -> None:
    if lse.dtype != "float32":
        raise TypeError(f"lse dtype must be float32, got {lse.dtype}")
    if lse.shape != q.shape[:2]:
        raise ValueError(f"lse must have shape [total_q, num_qo_heads] = {list(q.shape[:2])}, got {list(lse.shape)}")
    if lse.ptr % 4:
        raise ValueError(f"lse data pointer must be 4-byte aligned, got {lse.ptr:#x}")
    _check_device(lse, "lse", q.device)
