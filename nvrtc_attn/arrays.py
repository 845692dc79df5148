"""The DLPack/CuPy boundary: what an operand is (pointer, shape, element strides, dtype, device),
the caller's stream, and outputs allocated in the caller's kind of array (CuPy, torch, or any
DLPack producer such as JAX). No validation policy here; validate.py decides what is allowed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

_DTYPE_ALIASES = {
    "float16": "float16", "half": "float16", "fp16": "float16", "f16": "float16",
    "bfloat16": "bfloat16", "bf16": "bfloat16",
    "float32": "float32", "float": "float32", "fp32": "float32",
    "int32": "int32", "int64": "int64", "uint8": "uint8", "int8": "int8",
    "uint16": "uint16", "int16": "int16", "float64": "float64",
}


def dtype_name(dtype: Any) -> str:
    """Canonical name of a dtype given as a string, NumPy/CuPy dtype or torch.dtype."""
    text = str(dtype).rsplit(".", 1)[-1].lower()
    return _DTYPE_ALIASES.get(text, text)


@dataclass(frozen=True)
class Operand:
    """A strided array seen from the kernel: byte address, shape, strides in ELEMENTS."""

    obj: Any
    kind: str          # "cupy", "torch", "numpy" or "dlpack"
    ptr: int
    shape: tuple
    strides: tuple
    dtype: str
    itemsize: int
    device: int | None  # CUDA device ordinal, None when on the host

    @property
    def ndim(self) -> int:
        return len(self.shape)


def _torch_module(x):
    mod = type(x).__module__
    if mod.startswith("torch"):
        import torch
        if isinstance(x, torch.Tensor):
            return torch
    return None


def wrap(x: Any, name: str) -> Operand:
    """Describe x without copying or synchronizing. Raises TypeError naming `name` when x is not
    an array this library understands."""
    mod = type(x).__module__
    if mod.startswith("cupy"):
        import cupy
        if isinstance(x, cupy.ndarray):
            item = x.dtype.itemsize
            return Operand(x, "cupy", int(x.data.ptr), tuple(x.shape),
                           tuple(s // item for s in x.strides), dtype_name(x.dtype), item, int(x.device.id))
    torch = _torch_module(x)
    if torch is not None:
        dev = x.device.index if x.device.type == "cuda" else None
        if x.device.type == "cuda" and dev is None:
            dev = torch.cuda.current_device()
        return Operand(x, "torch", int(x.data_ptr()), tuple(x.shape), tuple(x.stride()),
                       dtype_name(x.dtype), x.element_size(), dev)
    if isinstance(x, np.ndarray):
        item = x.dtype.itemsize
        return Operand(x, "numpy", int(x.__array_interface__["data"][0]), tuple(x.shape),
                       tuple(s // item for s in x.strides), dtype_name(x.dtype), item, None)
    if hasattr(x, "__dlpack__"):
        return _wrap_dlpack(x, name)
    raise TypeError(f"{name} must be a CuPy array, torch tensor or DLPack array, got {type(x).__name__}")


def _wrap_dlpack(x: Any, name: str) -> Operand:
    from cuda.core.utils import StridedMemoryView

    try:
        view = StridedMemoryView(x, stream_ptr=-1)  # -1: no stream ordering, we only read metadata
    except Exception as exc:  # dtype unknown to NumPy (e.g. bfloat16 without ml_dtypes), ...
        raise TypeError(f"{name}: cannot read this DLPack array ({exc})") from exc
    dt = view.dtype
    dev_type, dev_id = x.__dlpack_device__()
    on_cuda = int(dev_type) in (2, 13)  # kDLCUDA, kDLCUDAManaged
    strides = view.strides or _contiguous_strides(view.shape)
    return Operand(x, "dlpack", int(view.ptr), tuple(view.shape), tuple(strides),
                   dtype_name(dt), dt.itemsize, int(dev_id) if on_cuda else None)


def _contiguous_strides(shape) -> tuple:
    strides, acc = [], 1
    for dim in reversed(shape):
        strides.append(acc)
        acc *= max(int(dim), 1)
    return tuple(reversed(strides))


def split_cache(paged_kv_cache: Any, name: str = "paged_kv_cache") -> tuple[Operand, Operand]:
    """(k, v) operands from a (k, v) tuple of 4-D arrays or one 5-D array with K/V on dim 1."""
    if isinstance(paged_kv_cache, (tuple, list)):
        if len(paged_kv_cache) != 2:
            raise ValueError(f"{name} as a tuple must be (k_cache, v_cache), got {len(paged_kv_cache)} items")
        return wrap(paged_kv_cache[0], name + "[0]"), wrap(paged_kv_cache[1], name + "[1]")
    both = wrap(paged_kv_cache, name)
    if both.ndim != 5 or both.shape[1] != 2:
        raise ValueError(f"{name} must be a (k, v) tuple of 4-D arrays or a 5-D array "
                         f"[num_pages, 2, ...] with K/V on dim 1, got shape {both.shape}")
    shape = (both.shape[0],) + both.shape[2:]
    strides = (both.strides[0],) + both.strides[2:]
    k = Operand(both.obj, both.kind, both.ptr, shape, strides, both.dtype, both.itemsize, both.device)
    v = Operand(both.obj, both.kind, both.ptr + both.strides[1] * both.itemsize, shape, strides,
                both.dtype, both.itemsize, both.device)
    return k, v


def cache_strides(op: Operand, kv_layout: str, page_size: int) -> tuple[int, int, int]:
    """Normalized (stride_page, stride_token, stride_head) in elements.

    Strides of size-1 dims are arbitrary in DLPack, so they are pinned to values that keep one
    int32 offset table usable: page_size 1 takes the token stride equal to the page stride, a
    single page takes the page stride as page_size * token stride.
    """
    if kv_layout == "NHD":
        sp, st, sh = op.strides[0], op.strides[1], op.strides[2]
    else:
        sp, sh, st = op.strides[0], op.strides[1], op.strides[2]
    if page_size == 1:
        st = sp if sp > 0 else max(st, 1)
    if op.shape[0] == 1:
        sp = st * page_size
    if op.shape[2 if kv_layout == "NHD" else 1] == 1:
        sh = 0  # one head: never multiplied by a non-zero index
    return int(sp), int(st), int(sh)


def current_stream(op: Operand, stream: Any = None) -> int:
    """Raw CUstream handle: the explicit `stream` if given, else the current stream of the
    operand's framework on its device (CuPy, torch), else the legacy default stream (0)."""
    if stream is not None:
        for attr in ("cuda_stream", "ptr", "handle"):
            if hasattr(stream, attr):
                return int(getattr(stream, attr))
        if hasattr(stream, "__cuda_stream__"):
            return int(stream.__cuda_stream__()[1])
        return int(stream)
    if op.kind == "torch":
        import torch
        return int(torch.cuda.current_stream(op.device).cuda_stream)
    if op.kind == "cupy":
        import cupy
        return int(cupy.cuda.get_current_stream().ptr)
    return 0


def empty_like_kind(op: Operand, shape: tuple, dtype: str) -> Any:
    """A new device array of the caller's kind (same framework and device as `op`)."""
    if op.kind == "torch":
        import torch
        return torch.empty(shape, dtype=getattr(torch, dtype), device=op.obj.device)
    import cupy
    with cupy.cuda.Device(op.device):
        if dtype == "bfloat16":
            raw = cupy.empty(shape, dtype=cupy.uint16)  # CuPy has no bfloat16: raw 16-bit storage
        else:
            raw = cupy.empty(shape, dtype=dtype)
    if op.kind == "cupy":
        return raw
    return _as_callers_kind(op.obj, raw, dtype)


def _as_callers_kind(like: Any, raw: Any, dtype: str) -> Any:
    """Hand a CuPy buffer back as the caller's array type through DLPack (e.g. JAX)."""
    import importlib
    root = importlib.import_module(type(like).__module__.split(".")[0])
    for mod_name in (root.__name__ + ".numpy", root.__name__, root.__name__ + ".dlpack"):
        try:
            mod = importlib.import_module(mod_name)
        except ImportError:
            continue
        if hasattr(mod, "from_dlpack"):
            arr = mod.from_dlpack(raw)
            if dtype == "bfloat16" and hasattr(arr, "view"):
                try:
                    arr = arr.view(getattr(like, "dtype"))
                except Exception:
                    pass
            return arr
    return raw
