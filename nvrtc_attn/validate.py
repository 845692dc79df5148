"""Every user-facing check. Each raises ValueError/TypeError naming the argument, the value seen
and the rule, BEFORE anything is launched or written (never `assert`: it vanishes under -O).
"""
from __future__ import annotations

import functools
import math
import numbers
from typing import NamedTuple

import numpy as np

from .arrays import Operand, dtype_name
from .variants import DTYPES, FP8_KV_DTYPES, FP8_Q_DTYPES, HEAD_DIMS

KV_LAYOUTS = ("NHD", "HND")
ALIGN_BYTES = 16  # cp.async / TMA move 16-byte chunks
LSE_BASES = ("log2", "ln")
LSE_LAYOUTS = ("NH", "HN")


def host_ints(x, name: str) -> np.ndarray:
    """A 1-D int64 host copy of an index array given as NumPy, CuPy, torch or a list.
    (plan() may synchronize: it runs once per batch, not per layer.)"""
    if type(x) is np.ndarray:
        arr = x
    else:
        if hasattr(x, "get") and type(x).__module__.startswith("cupy"):
            x = x.get()
        elif type(x).__module__.startswith("torch"):
            # A host tensor without autograd: a view, one call (detach().cpu() would cost two more)
            x = x.numpy() if x.is_cpu and not x.requires_grad else x.detach().cpu().numpy()
        elif hasattr(x, "__dlpack__") and not isinstance(x, np.ndarray):
            try:
                x = np.from_dlpack(x)
            except Exception:  # noqa: BLE001 - device arrays of other producers: copy through __array__
                x = np.asarray(x)
        arr = np.asarray(x)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size and arr.dtype.kind not in "iu":  # signed and unsigned integers (not bool)
        raise TypeError(f"{name} must hold integers, got dtype {arr.dtype}")
    # Always a copy: engines refill their (pinned) index buffers for the next step while this plan lives.
    # (astype: the same copy as np.array(arr, dtype=np.int64), without its array-coercion step.)
    return arr.astype(np.int64)


# Up to this many items a NumPy reduction costs more than a list and Python's min/max: batches are
# often a few requests, and plan() reduces its per-request arrays about ten times.
_SMALL = 64


def bounds(arr: np.ndarray) -> tuple[int, int]:
    """(min, max) of a non-empty int array as Python ints (a short one through a list)."""
    if arr.size <= _SMALL:
        values = arr.tolist()
        return min(values), max(values)
    return int(np.minimum.reduce(arr)), int(np.maximum.reduce(arr))


def positive_int(value, name: str) -> int:
    if type(value) is int and value > 0:  # the usual argument: no ABC check (plan() checks four)
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def real_number(value, name: str) -> float:
    """A finite Python float from a real number (int, float, NumPy scalar); TypeError otherwise."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number (float), got {type(value).__name__} {value!r}")
    out = float(value)
    if not math.isfinite(out):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return out


def optional_positive(value, name: str, allow_zero: bool = False) -> float | None:
    if value is None:
        return None
    out = real_number(value, name)
    if out < 0 or (out == 0 and not allow_zero):
        rule = "non-negative" if allow_zero else "positive (> 0)"
        raise ValueError(f"{name} must be None or a {rule} finite number, got {value!r}")
    return out


def check_indptr(arr: np.ndarray, name: str, from_zero: bool = True) -> np.ndarray:
    """A CSR indptr: batch_size + 1 non-decreasing entries from 0 (from_zero=False: from any
    offset >= 0, as paged_kv_indptr may start when an engine plans the tail of a larger batch).
    Returns its lengths arr[1:] - arr[:-1] (plan() needs them anyway)."""
    return _indptr_lengths(arr, name, from_zero)[0]


def _indptr_lengths(arr: np.ndarray, name: str, from_zero: bool = True) -> tuple[np.ndarray, int, int]:
    """check_indptr's lengths, the shortest and the longest of them (0, 0 without requests): plan()
    reads them again, and one pass over a short batch's list finds both."""
    if arr.size < 1:
        raise ValueError(f"{name} must have batch_size + 1 >= 1 entries, got 0")
    first = arr.item(0)
    if from_zero and first != 0:
        raise ValueError(f"{name}[0] must be 0, got {first}")
    if first < 0:
        raise ValueError(f"{name}[0] must be >= 0, got {first}")
    lens = arr[1:] - arr[:-1]
    shortest, longest = bounds(lens) if lens.size else (0, 0)
    if shortest < 0:
        bad = int(np.flatnonzero(lens < 0)[0])
        raise ValueError(f"{name} must be non-decreasing, but {name}[{bad + 1}] = {int(arr[bad + 1])} "
                         f"< {name}[{bad}] = {int(arr[bad])}")
    return lens, shortest, longest


def check_dtype_arg(value, name: str) -> str:
    """A 16-bit float dtype given as a string ("float16", "bf16", "torch.bfloat16"), a NumPy/CuPy/
    JAX dtype or scalar type (np.float16), or a torch.dtype."""
    dt = dtype_name(value)
    if dt not in DTYPES:
        raise ValueError(f"{name} must be float16 or bfloat16 (a string, NumPy/torch dtype or type), "
                         f"got {value!r}")
    return dt


def check_kv_dtype_arg(value, q_dtype: str) -> str:
    """plan()'s kv_data_type: None (q's dtype), q's 16-bit dtype, or an fp8 cache dtype
    (torch.float8_e4m3fn / torch.float8_e5m2 or their names; a uint8 cache then holds its bytes)."""
    if value is None:
        return q_dtype
    dt = dtype_name(value)
    if dt in FP8_KV_DTYPES:
        return dt
    if dt not in DTYPES:
        raise ValueError(f"kv_data_type must be float16, bfloat16, float8_e4m3fn or float8_e5m2 (a string or "
                         f"torch dtype), got {value!r}")
    if dt != q_dtype:
        raise ValueError(f"kv_data_type ({dt}) must equal q_data_type ({q_dtype}) for a 16-bit cache: mixed "
                         f"16-bit precision is not supported (an fp8 cache is: float8_e4m3fn, float8_e5m2)")
    return dt


# fp8 queries with o_data_type=None: FlashInfer's plan() would make the output fp8 (o_data_type =
# q_data_type), which we do not write; its only 16-bit default for fp8 inputs is bfloat16 (the
# cute-dsl paged route: "fp8 inputs produce bf16 output"), and bfloat16 also holds every v_scale * V.
FP8_Q_DEFAULT_O_DTYPE = "bfloat16"


def check_fp8_q_dtypes(q_data_type, kv_data_type, o_data_type) -> tuple[str, str, str]:
    """plan()'s dtypes for fp8 queries: (q dtype, output dtype, cache dtype). q float8_e4m3fn or
    float8_e5m2 needs a cache of the same kind (kv_data_type None means q's, as in FlashInfer); the
    output is o_data_type, float16 or bfloat16 (None: FP8_Q_DEFAULT_O_DTYPE), never fp8."""
    q_dt = dtype_name(q_data_type)
    if q_dt not in FP8_Q_DTYPES:
        raise NotImplementedError(f"q_data_type={q_data_type!r}: fp8 queries must be one of {tuple(FP8_Q_DTYPES)}")
    kv_dt = q_dt if kv_data_type is None else dtype_name(kv_data_type)
    if kv_dt in DTYPES:
        raise ValueError(f"q_data_type={q_dt} (fp8 queries) needs an fp8 cache, got kv_data_type={kv_dt}: pass "
                         f"kv_data_type={q_dt!r}, or 16-bit queries (q_data_type float16/bfloat16) for a "
                         f"16-bit cache")
    if kv_dt != q_dt:
        raise NotImplementedError(f"q_data_type={q_dt} with kv_data_type={kv_data_type!r}: fp8 queries need a "
                                  f"cache of their kind (kv_data_type {q_dt}); a cache of the other fp8 kind "
                                  f"takes 16-bit queries")
    if o_data_type is None:
        return q_dt, FP8_Q_DEFAULT_O_DTYPE, kv_dt
    o_dt = dtype_name(o_data_type)
    if o_dt in FP8_KV_DTYPES:
        raise NotImplementedError(f"o_data_type={o_data_type!r}: fp8 output is not supported; with fp8 queries "
                                  f"pass o_data_type float16 or bfloat16 (None: {FP8_Q_DEFAULT_O_DTYPE})")
    return q_dt, check_dtype_arg(o_data_type, "o_data_type"), kv_dt


class PlanArgs(NamedTuple):
    """plan() arguments after validation: host int64 index arrays and plain Python scalars. (A
    NamedTuple, like arrays.Operand: immutable and cheap to build, since plan() makes one per call.)"""

    qo_indptr: np.ndarray
    paged_kv_indptr: np.ndarray          # rebased: starts at 0
    paged_kv_indices: np.ndarray         # exactly the pages the batch uses, paged_kv_indptr[-1] of them
    paged_kv_last_page_len: np.ndarray   # 1 where a request has no pages (ignored there)
    num_qo_heads: int
    num_kv_heads: int
    head_dim: int
    page_size: int
    causal: bool
    sm_scale: float | None               # as given; None: 1 / sqrt(head_dim)
    window_left: int
    logits_soft_cap: float               # 0.0: off
    dtype: str                           # output and 16-bit compute type (and q's unless q_dtype): "float16"/"bfloat16"
    max_page_index: int                  # -1 when the batch has no pages
    kv_dtype: str = ""                   # the cache: dtype, "float8_e4m3fn" or "float8_e5m2" ("": dtype)
    qo_lens: np.ndarray | None = None    # int64 [B]: query tokens per request (the checks computed them)
    kv_lens: np.ndarray | None = None    # int64 [B]: keys per request (paging.kv_lengths), 0 without pages
    q_dtype: str = ""                    # fp8 queries: "float8_e4m3fn" or "float8_e5m2" ("": dtype)

    @property
    def batch_size(self) -> int:
        return int(self.qo_indptr.size - 1)

    @property
    def total_q(self) -> int:
        return int(self.qo_indptr[-1])

    @property
    def scale(self) -> float:
        """The softmax scale the kernel uses."""
        return self.sm_scale if self.sm_scale is not None else 1.0 / math.sqrt(self.head_dim)


def check_plan_args(qo_indptr, paged_kv_indptr, paged_kv_indices, paged_kv_last_page_len,
                    num_qo_heads, num_kv_heads, head_dim, page_size, causal=False, sm_scale=None,
                    window_left=-1, logits_soft_cap=None, q_data_type="float16", kv_data_type=None,
                    o_data_type=None) -> PlanArgs:
    """Validate plan() arguments (head_dim is FlashInfer's head_dim_qk); returns a PlanArgs."""
    num_qo_heads = positive_int(num_qo_heads, "num_qo_heads")
    num_kv_heads = positive_int(num_kv_heads, "num_kv_heads")
    if num_qo_heads % num_kv_heads:
        raise ValueError(f"num_qo_heads ({num_qo_heads}) must be a multiple of num_kv_heads ({num_kv_heads})")
    head_dim = positive_int(head_dim, "head_dim_qk")
    if head_dim not in HEAD_DIMS:
        raise ValueError(f"head_dim_qk (head_dim) must be one of {HEAD_DIMS}, got {head_dim}")
    page_size = positive_int(page_size, "page_size")
    fp8_q = ""
    q_name = dtype_name(q_data_type)
    if q_name in FP8_KV_DTYPES or q_name in FP8_Q_DTYPES:
        fp8_q, q_dt, kv_dt = check_fp8_q_dtypes(q_data_type, kv_data_type, o_data_type)  # q_dt: the output's
    else:
        q_dt = check_dtype_arg(q_data_type, "q_data_type")
        kv_dt = check_kv_dtype_arg(kv_data_type, q_dt)
        if o_data_type is not None and dtype_name(o_data_type) in FP8_KV_DTYPES:
            raise NotImplementedError(f"o_data_type={o_data_type!r}: fp8 output is not supported; the output "
                                      f"dtype is q's ({q_dt})")
        if o_data_type is not None and dtype_name(o_data_type) != q_dt:
            raise NotImplementedError(f"o_data_type={o_data_type!r}: the output dtype must be q's ({q_dt})")
    usual = type(window_left) is int and window_left >= -1  # (no ABC checks for the usual argument)
    if not usual and (isinstance(window_left, (bool, np.bool_)) or not isinstance(window_left, numbers.Integral)
                      or window_left < -1):
        raise ValueError(f"window_left must be an integer >= -1 (-1: no window), got {window_left!r}")
    sm_scale = optional_positive(sm_scale, "sm_scale")
    soft_cap = optional_positive(logits_soft_cap, "logits_soft_cap", allow_zero=True) or 0.0
    if not isinstance(causal, (bool, np.bool_)):
        raise TypeError(f"causal must be a bool, got {causal!r}")

    qo = host_ints(qo_indptr, "qo_indptr")
    kv = host_ints(paged_kv_indptr, "paged_kv_indptr")
    idx = host_ints(paged_kv_indices, "paged_kv_indices")
    last = host_ints(paged_kv_last_page_len, "paged_kv_last_page_len")
    qo_lens, _, longest_q = _indptr_lengths(qo, "qo_indptr")
    n_pages, fewest_pages, _ = _indptr_lengths(kv, "paged_kv_indptr", from_zero=False)
    batch = qo.size - 1
    if kv.size != qo.size:
        raise ValueError(f"paged_kv_indptr has {kv.size} entries but qo_indptr has {qo.size}: "
                         f"both must be batch_size + 1")
    if last.size != batch:
        raise ValueError(f"paged_kv_last_page_len has {last.size} entries, expected batch_size = {batch}")
    kv_first, kv_end = kv.item(0), kv.item(-1)
    if idx.size < kv_end:
        raise ValueError(f"paged_kv_indices has {idx.size} entries but paged_kv_indptr[-1] = {kv_end}")
    used = idx[kv_first: kv_end]  # entries past paged_kv_indptr[-1] are slack, never read
    max_page_index = -1
    if used.size:
        smallest, max_page_index = bounds(used)
        if smallest < 0:
            raise ValueError(f"paged_kv_indices must be >= 0, got {smallest}")
    if batch and fewest_pages > 0:  # every request has pages: the usual batch, fewer steps
        lo, hi = bounds(last)
        if lo < 1 or hi > page_size:
            _raise_last_page_len(last, np.ones(batch, dtype=bool), page_size)
        kv_lens = n_pages * page_size
        kv_lens += last
        kv_lens -= page_size
    else:
        has_pages = n_pages > 0
        _raise_last_page_len(last, has_pages, page_size)
        kv_lens = np.where(has_pages, (n_pages - 1) * page_size + last, 0)
        last = np.where(has_pages, last, 1)
    if causal and batch and bounds(qo_lens - kv_lens)[1] > 0:
        b = int(np.flatnonzero(qo_lens > kv_lens)[0])
        raise ValueError(f"causal=True needs qo_len <= kv_len, but request {b} has qo_len "
                         f"{int(qo_lens[b])} > kv_len {int(kv_lens[b])}")
    group = num_qo_heads // num_kv_heads
    # (The keys are at most the pages times page_size: a batch far from the bound skips their sum.)
    if batch and (qo.item(-1) >= 2**31 or longest_q * group >= 2**31 or
                  ((kv_end - kv_first) * page_size >= 2**31 and int(np.add.reduce(kv_lens)) >= 2**31)):
        raise ValueError("qo_indptr / paged_kv_indptr: batch too large for int32 indexing")
    return PlanArgs(  # the page table rebased to start at 0: request b's pages are used[kv[b]-kv[0] ...]
        qo_indptr=qo, paged_kv_indptr=kv - kv_first if kv_first else kv, paged_kv_indices=used,
        paged_kv_last_page_len=last, num_qo_heads=num_qo_heads,
        num_kv_heads=num_kv_heads, head_dim=head_dim, page_size=page_size, causal=bool(causal),
        sm_scale=sm_scale, window_left=int(window_left), logits_soft_cap=soft_cap, dtype=q_dt,
        max_page_index=max_page_index, kv_dtype=kv_dt, qo_lens=qo_lens, kv_lens=kv_lens, q_dtype=fp8_q)


def _raise_last_page_len(last: np.ndarray, has_pages: np.ndarray, page_size: int) -> None:
    """ValueError for the first request with pages whose paged_kv_last_page_len is not in
    [1, page_size], if any."""
    bad = has_pages & ((last < 1) | (last > page_size))
    if np.count_nonzero(bad):  # (np.any is a Python-level wrapper; plan() checks batches with empty requests here)
        b = int(np.nonzero(bad)[0][0])
        raise ValueError(f"paged_kv_last_page_len[{b}] = {int(last[b])} must be in [1, page_size={page_size}]")


def refuse(name: str, value, default=None) -> None:
    """An argument that would change the result and is not implemented: NotImplementedError naming
    it, unless it has its default (None, False, 0, "NONE", ...). Never silently ignored."""
    if value is default or (isinstance(value, (bool, int, float, str, np.bool_)) and value == default):
        return
    text = repr(value) if isinstance(value, (bool, int, float, str, type(None))) else f"<{type(value).__name__}>"
    raise NotImplementedError(f"{name}={text[:60]} is not supported by nvrtc_attn (only {default!r}); "
                              f"refusing it rather than ignoring it")


def check_kv_layout(kv_layout) -> str:
    if kv_layout not in KV_LAYOUTS:
        raise ValueError(f"kv_layout must be 'NHD' or 'HND', got {kv_layout!r}")
    return kv_layout


def check_choice(value, name: str, choices: tuple) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


def _is_array(value) -> bool:
    return hasattr(value, "__dlpack__") or hasattr(value, "__cuda_array_interface__") or isinstance(value, np.ndarray)


def check_scale(value, name: str, fp8_cache: bool = False) -> float:
    """q_scale / k_scale / v_scale: None (1.0) or a positive finite Python/NumPy number."""
    if value is None:
        return 1.0
    if type(value) is float and 0.0 < value < math.inf:  # the common case (vLLM passes 1.0)
        return value
    if _is_array(value):
        if fp8_cache:  # (check_head_scales / check_q_scale take the arrays)
            raise NotImplementedError(f"{name}: a per-head array is not taken here; pass a Python float")
        raise NotImplementedError(f"{name}: per-head scale arrays need an fp8 KV cache (kv_data_type "
                                  f"float8_e4m3fn or float8_e5m2 in plan()); pass a Python float")
    return optional_positive(value, name)


def check_head_scales(value, name: str, plan, device: int | None):
    """k_scale / v_scale of an fp8 plan: None, a positive finite number (per tensor; returns
    (value, None)) or a float32 device array [num_kv_heads] on q's device (per KV head; returns
    (1.0, operand)). The array's values are not read here (no device sync): they must be positive
    and finite."""
    if not _is_array(value):
        return check_scale(value, name), None
    op = _scale_array(value, name, f"[num_kv_heads] = [{plan.num_kv_heads}]")
    if op.shape != (plan.num_kv_heads,):
        raise ValueError(f"{name} as a per-head array must have shape [num_kv_heads] = [{plan.num_kv_heads}], "
                         f"got {list(op.shape)}")
    check_device(op, name, device)
    return 1.0, op


def check_q_scale(value, plan, device: int | None):
    """q_scale of an fp8-cache plan: None or a positive finite number (per tensor; returns (value,
    None, None)), or a float32 device array on q's device: [num_kv_heads] per KV head (returns (1.0,
    operand, None); with num_qo_heads == num_kv_heads that is also per query head) or
    [num_qo_heads] per query head (FlashInfer's fp8 convention; returns (1.0, None, operand)), which
    the fp8-query builds apply to each row's fp32 scores: fp8-query plans (q_data_type
    float8_e4m3fn) only. Values are not read here (no device sync): they must be positive and
    finite."""
    if not _is_array(value):
        return check_scale(value, "q_scale", fp8_cache=True), None, None
    op = _scale_array(value, "q_scale", f"[num_kv_heads] = [{plan.num_kv_heads}] or [num_qo_heads] = "
                                       f"[{plan.num_qo_heads}]")
    if op.shape == (plan.num_kv_heads,):
        check_device(op, "q_scale", device)
        return 1.0, op, None
    if op.shape != (plan.num_qo_heads,):
        raise ValueError(f"q_scale as a per-head array must have shape [num_kv_heads] = [{plan.num_kv_heads}] "
                         f"or [num_qo_heads] = [{plan.num_qo_heads}], got {list(op.shape)}")
    if not plan.q_dtype:
        raise NotImplementedError(f"q_scale per query head ([num_qo_heads] = [{plan.num_qo_heads}]) needs fp8 "
                                  f"queries (plan(q_data_type=float8_e4m3fn)); with 16-bit queries pass a "
                                  f"Python float or an array per KV head [num_kv_heads] = [{plan.num_kv_heads}]")
    check_device(op, "q_scale", device)
    return 1.0, None, op


def _scale_array(value, name: str, shapes: str):
    """A per-head scale array's operand after the checks every such array takes: float32, 1-D,
    contiguous, 4-byte aligned (shapes: the shapes it may have, for the message); the caller checks
    its length, then its device."""
    from .arrays import wrap

    op = wrap(value, name)
    if op.dtype != "float32":
        raise TypeError(f"{name} as a per-head array must be float32, got {op.dtype}")
    if len(op.shape) != 1:
        raise ValueError(f"{name} as a per-head array must be 1-D, {shapes}, got shape {list(op.shape)}")
    if op.shape[0] > 1 and op.strides[0] != 1:
        raise ValueError(f"{name} must be contiguous (stride 1), got stride {op.strides[0]}")
    if op.ptr % 4:
        raise ValueError(f"{name} data pointer must be 4-byte aligned, got {op.ptr:#x}")
    return op


def _check_inner(op: Operand, name: str) -> None:
    """head_dim stride 1, 16-byte aligned base and strides (cp.async/TMA chunks)."""
    if 0 in op.shape:
        return  # empty: frameworks report arbitrary strides and pointers, nothing is read or written
    rule = _layout_rule(op.shape, op.strides, op.itemsize)
    if rule is not None:
        raise ValueError(f"{name} {rule}")
    if op.ptr % ALIGN_BYTES:
        raise ValueError(f"{name} data pointer must be {ALIGN_BYTES}-byte aligned, got address {op.ptr:#x}")


@functools.lru_cache(maxsize=4096)
def _layout_rule(shape: tuple, strides: tuple, itemsize: int) -> str | None:
    """The stride rule a (shape, strides) layout breaks, or None (memoized: run() checks the same
    few layouts on every call)."""
    if shape[-1] > 1 and strides[-1] != 1:
        return f"must have stride 1 on head_dim (last dim), got strides {strides}"
    for dim, (size, stride) in enumerate(zip(shape[:-1], strides[:-1])):
        if size > 1 and (stride * itemsize) % ALIGN_BYTES:
            return (f"stride of dim {dim} is {stride} elements = {stride * itemsize} bytes; "
                    f"must be a multiple of {ALIGN_BYTES} bytes")
        if size > 1 and stride < 0:
            return f"stride of dim {dim} must be non-negative, got {stride}"
    return None


def check_device(op: Operand, name: str, device: int | None, what: str = "q") -> None:
    """op lives on a CUDA device, and on cuda:`device` when given (the device of `what`)."""
    if op.device is None:
        raise ValueError(f"{name} must be on a CUDA device, got a host array")
    if device is not None and op.device != device:
        raise ValueError(f"{name} is on cuda:{op.device} but {what} is on cuda:{device}: "
                         f"all arrays of one call must be on one device")


def check_q(q: Operand, plan) -> None:
    """q's dtype (an fp8 plan's q_dtype, or its bytes as uint8), shape, layout and device."""
    expect = (plan.total_q, plan.num_qo_heads, plan.head_dim)
    want = plan.q_dtype or plan.dtype
    if q.dtype != want and not (plan.q_dtype and q.dtype == "uint8"):
        if q.dtype == "uint8":
            raise TypeError(f"q is uint8: fp8 queries given as bytes need q_data_type='float8_e4m3fn' or "
                            f"'float8_e5m2' (and a cache of that kind) in plan(); this plan has q_data_type {want}")
        extra = " (or its bytes as uint8)" if plan.q_dtype else ""
        raise TypeError(f"q dtype must be {want}{extra} (q_data_type given to plan()), got {q.dtype}")
    if q.shape != expect:
        raise ValueError(f"q must have shape [qo_indptr[-1], num_qo_heads, head_dim] = {list(expect)}, got {list(q.shape)}")
    _check_inner(q, "q")
    check_device(q, "q", None)


def _check_cache_dtype(op: Operand, plan) -> None:
    """The cache's dtype is the plan's kv_data_type; an fp8 plan also takes the bytes as uint8 (CuPy
    and other producers without fp8 dtypes)."""
    want = plan.kv_dtype or plan.dtype
    if op.dtype == want or (want in FP8_KV_DTYPES and op.dtype == "uint8"):
        return
    if op.dtype == "uint8":
        raise TypeError(f"paged_kv_cache is uint8: an fp8 cache given as bytes needs kv_data_type="
                        f"'float8_e4m3fn' or 'float8_e5m2' in plan() (this plan has kv_data_type {want})")
    if want in FP8_KV_DTYPES:
        raise TypeError(f"paged_kv_cache dtype must be {want} (or its bytes as uint8), the kv_data_type given to "
                        f"plan(), got {op.dtype}")
    raise TypeError(f"paged_kv_cache dtype must be {want} (kv_data_type), got {op.dtype}")


def check_page_range(k: Operand, plan) -> None:
    """Every page index of the plan is a page of the cache view (check_cache checks K's and V's; a
    plan() on views check_cache passed before checks this alone)."""
    if plan.max_page_index >= k.shape[0]:
        raise ValueError(f"paged_kv_indices holds page index {plan.max_page_index} but paged_kv_cache "
                         f"has only {k.shape[0]} pages (valid range [0, {k.shape[0] - 1}])")


def check_cache(k: Operand, v: Operand, plan, kv_layout: str) -> None:
    for op, name in ((k, "paged_kv_cache (K)"), (v, "paged_kv_cache (V)")):
        _check_cache_dtype(op, plan)
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
        check_page_range(op, plan)
        _check_inner(op, f"paged_kv_cache {name}")
    if k.shape[0] != v.shape[0]:
        raise ValueError(f"paged_kv_cache: K has {k.shape[0]} pages but V has {v.shape[0]}")
    check_device(k, "paged_kv_cache", None)
    check_device(v, "paged_kv_cache (V)", k.device, "paged_kv_cache (K)")


def check_out(out: Operand, q: Operand, dtype: str | None = None) -> None:
    """out: the plan's output dtype (dtype; None: q's), q's shape, layout and device."""
    dtype = dtype or q.dtype
    if out.dtype != dtype:
        what = "the plan's o_data_type" if dtype != q.dtype else "q dtype (o_data_type)"
        raise TypeError(f"out dtype must be {dtype}, {what}, got {out.dtype}")
    if out.shape != q.shape:
        raise ValueError(f"out must have q's shape {list(q.shape)}, got {list(out.shape)}")
    _check_inner(out, "out")
    check_device(out, "out", q.device)


def check_lse(lse: Operand, q: Operand, lse_layout: str = "NH") -> None:
    if lse.dtype != "float32":
        raise TypeError(f"lse dtype must be float32, got {lse.dtype}")
    expect = q.shape[:2] if lse_layout == "NH" else q.shape[1::-1]
    what = "[total_q, num_qo_heads]" if lse_layout == "NH" else "[num_qo_heads, total_q] (lse_layout='HN')"
    if lse.shape != expect:
        raise ValueError(f"lse must have shape {what} = {list(expect)}, got {list(lse.shape)}")
    if lse.ptr % 4:
        raise ValueError(f"lse data pointer must be 4-byte aligned, got {lse.ptr:#x}")
    check_device(lse, "lse", q.device)
