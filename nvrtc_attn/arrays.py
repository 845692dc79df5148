"""The DLPack/CuPy boundary: what an operand is (pointer, shape, element strides, dtype, device),
the caller's stream, and outputs allocated in the caller's kind of array (CuPy, torch, or any
DLPack producer such as JAX). No validation policy here; validate.py decides what is allowed.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

_DTYPE_ALIASES = {
    "float16": "float16", "half": "float16", "fp16": "float16", "f16": "float16",
    "bfloat16": "bfloat16", "bf16": "bfloat16",
    "float32": "float32", "float": "float32", "fp32": "float32",
    "int32": "int32", "int64": "int64", "uint8": "uint8", "int8": "int8",
    "uint16": "uint16", "int16": "int16", "float64": "float64",
}


_dtype_names: dict = {}  # dtype object -> name (run() asks on every call)
# Names given as strings -> name (plan() asks about its dtype arguments several times a call); apart
# from the objects, so that a string never meets a dtype object that compares equal to it.
_dtype_strings: dict = {}


def dtype_name(dtype: Any) -> str:
    """Canonical name of a dtype given as a string ("bf16", "torch.float16"), a NumPy/CuPy/JAX dtype
    or scalar type (np.float16, jnp.bfloat16) or a torch.dtype."""
    memo = _dtype_strings if type(dtype) is str else _dtype_names
    try:
        return memo[dtype]
    except (KeyError, TypeError):  # TypeError: unhashable
        pass
    name = _dtype_name(dtype)
    if len(memo) < 256 and (memo is _dtype_strings or not isinstance(dtype, str)):  # (str subclasses: not kept)
        try:
            memo[dtype] = name
        except TypeError:
            pass
    return name


def _dtype_name(dtype: Any) -> str:
    if not isinstance(dtype, str):
        try:
            text = np.dtype(dtype).name  # dtypes and scalar types; not torch.dtype (TypeError)
        except TypeError:
            text = str(dtype)
    else:
        text = dtype
    text = text.rsplit(".", 1)[-1].lower()
    return _DTYPE_ALIASES.get(text, text)


class Operand(NamedTuple):
    """A strided array seen from the kernel: byte address, shape, strides in ELEMENTS. (A NamedTuple:
    immutable and cheap to build, since run() wraps every operand on every call.)"""

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


_TORCH_TYPES: set = set()  # exact types seen to be torch.Tensor (subclasses included)


def _is_torch(x) -> bool:
    t = type(x)
    if t in _TORCH_TYPES:
        return True
    if t.__module__.startswith("torch"):
        import torch
        if isinstance(x, torch.Tensor):
            _TORCH_TYPES.add(t)
            return True
    return False


def wrap(x: Any, name: str, stream: int = 0) -> Operand:
    """Describe x without copying or synchronizing. Raises TypeError naming `name` when x is not
    an array this library understands.

    stream: the raw CUstream the caller's work will run on. Only DLPack producers other than CuPy
    and torch (e.g. JAX) see it: DLPack makes the producer order its pending writes of x before
    that stream (their own stream is not visible to us)."""
    if _is_torch(x):  # first: engines call with torch tensors, several times per run()
        dev = x.get_device()  # -1 on the host
        return Operand(x, "torch", x.data_ptr(), tuple(x.shape), x.stride(), dtype_name(x.dtype),
                       x.element_size(), dev if dev >= 0 else None)
    mod = type(x).__module__
    if mod.startswith("cupy"):
        import cupy
        if isinstance(x, cupy.ndarray):
            item = x.dtype.itemsize
            return Operand(x, "cupy", int(x.data.ptr), tuple(x.shape),
                           tuple(s // item for s in x.strides), dtype_name(x.dtype), item, int(x.device.id))
    if isinstance(x, np.ndarray):
        item = x.itemsize
        return Operand(x, "numpy", x.ctypes.data, x.shape, tuple([s // item for s in x.strides]),
                       dtype_name(x.dtype), item, None)
    if hasattr(x, "__dlpack__"):
        return _wrap_dlpack(x, name, stream)
    raise TypeError(f"{name} must be a CuPy array, torch tensor or DLPack array, got {type(x).__name__}")


def torch_signature(q, paged_kv_cache, out, lse, scales=()) -> tuple | None:
    """(address, shape, strides, dtype) of each torch operand of a run(), None unless all of q, the
    cache (a (k, v) tuple or one tensor) and out are torch tensors. Equal signatures describe the
    same memory with the same layout: what run()'s checks and parameters depend on. scales (q_scale,
    k_scale, v_scale): numbers and None as they are, torch arrays (an fp8 cache's per-head scales)
    by their signature; any other array gives None."""
    if not (_is_torch(q) and _is_torch(out)):
        return None
    scale_sig = []
    for x in scales:
        if _is_torch(x):
            scale_sig.append((x.data_ptr(), x.shape, x.stride(), x.dtype))
        elif hasattr(x, "__dlpack__") or hasattr(x, "__cuda_array_interface__") or isinstance(x, np.ndarray):
            return None
        else:
            scale_sig.append(x)
    parts = [q, out]
    if isinstance(paged_kv_cache, tuple) and len(paged_kv_cache) == 2:
        parts += paged_kv_cache
    else:
        parts.append(paged_kv_cache)
    if lse is not None:
        parts.append(lse)
    sig = []
    for x in parts:
        if not _is_torch(x):
            return None
        sig.append((x.data_ptr(), x.shape, x.stride(), x.dtype))
    return tuple(sig), tuple(scale_sig)


# DLPack device types of CUDA memory (kDLCUDA, kDLCUDAManaged) and DLPack's name for the legacy
# default stream (a consumer may not pass 0: it is ambiguous in the protocol).
_DLPACK_CUDA = (2, 13)
_DLPACK_LEGACY_STREAM = 1


def _wrap_dlpack(x: Any, name: str, stream: int) -> Operand:
    from cuda.core.utils import StridedMemoryView

    try:
        dev_type, dev_id = x.__dlpack_device__()
    except Exception as exc:  # noqa: BLE001
        raise TypeError(f"{name}: cannot read this DLPack array's device ({exc})") from exc
    on_cuda = int(dev_type) in _DLPACK_CUDA
    consumer = (int(stream) or _DLPACK_LEGACY_STREAM) if on_cuda else None
    try:
        view = StridedMemoryView.from_dlpack(x, stream_ptr=consumer)
    except Exception as exc:  # noqa: BLE001 - dtype unknown to NumPy (bfloat16 without ml_dtypes), ...
        raise TypeError(f"{name}: cannot read this DLPack array ({type(exc).__name__}: {exc})") from exc
    dt = view.dtype
    strides = view.strides or _contiguous_strides(view.shape)
    return Operand(x, "dlpack", int(view.ptr), tuple(view.shape), tuple(strides),
                   dtype_name(dt), dt.itemsize, int(dev_id) if on_cuda else None)


def _contiguous_strides(shape) -> tuple:
    strides, acc = [], 1
    for dim in reversed(shape):
        strides.append(acc)
        acc *= max(int(dim), 1)
    return tuple(reversed(strides))


def split_cache(paged_kv_cache: Any, name: str = "paged_kv_cache", stream: int = 0,
                kv_layout: str = "NHD") -> tuple[Operand, Operand]:
    """(k, v) 4-D operands from FlashInfer's cache forms: a (k, v) tuple of 4-D arrays, or of 3-D
    [slots, num_kv_heads, head_dim] arrays (page_size 1, as SGLang passes its token pools), or one
    5-D array [num_pages, 2, ...] (one 4-D [num_pages, 2, num_kv_heads, head_dim]: page_size 1)
    with K and V on dim 1."""
    if isinstance(paged_kv_cache, (tuple, list)):
        if len(paged_kv_cache) != 2:
            raise ValueError(f"{name} as a tuple must be (k_cache, v_cache), got {len(paged_kv_cache)} items")
        k = wrap(paged_kv_cache[0], name + "[0]", stream)
        v = wrap(paged_kv_cache[1], name + "[1]", stream)
        return _with_page_dim(k, kv_layout), _with_page_dim(v, kv_layout)
    both = wrap(paged_kv_cache, name, stream)
    if both.ndim not in (4, 5) or both.shape[1] != 2:
        raise ValueError(f"{name} must be a (k, v) tuple of 4-D (or 3-D) arrays or a 5-D array "
                         f"[num_pages, 2, ...] with K/V on dim 1, got shape {both.shape}")
    shape = (both.shape[0],) + both.shape[2:]
    strides = (both.strides[0],) + both.strides[2:]
    k = Operand(both.obj, both.kind, both.ptr, shape, strides, both.dtype, both.itemsize, both.device)
    v = Operand(both.obj, both.kind, both.ptr + both.strides[1] * both.itemsize, shape, strides,
                both.dtype, both.itemsize, both.device)
    return _with_page_dim(k, kv_layout), _with_page_dim(v, kv_layout)


def _with_page_dim(op: Operand, kv_layout: str) -> Operand:
    """A 3-D [slots, num_kv_heads, head_dim] pool as 4-D pages of one token (NHD [slots, 1, H, D],
    HND [slots, H, 1, D]); 4-D and other ranks pass through (validate.check_cache judges them)."""
    if op.ndim != 3:
        return op
    (n, h, d), (sn, sh, sd) = op.shape, op.strides
    shape, strides = ((n, 1, h, d), (sn, sn, sh, sd)) if kv_layout == "NHD" else ((n, h, 1, d), (sn, sh, sn, sd))
    return op._replace(shape=shape, strides=strides)


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


def launch_stream(x: Any, stream: Any = None) -> int:
    """The raw CUstream a call on array x runs on: `stream` when given, else the current stream of
    x's framework on x's device (torch, CuPy), else the legacy default stream (0), which DLPack
    producers such as JAX are then asked to order their writes before."""
    if stream is not None:
        return stream_handle(stream)
    if _is_torch(x):
        if x.is_cuda:
            import torch
            return _torch_stream(torch, x.get_device())
        return 0
    mod = type(x).__module__
    if mod.startswith("cupy"):
        import cupy
        if isinstance(x, cupy.ndarray):
            return int(cupy.cuda.get_current_stream(x.device.id).ptr)
    return 0


def current_stream(op: Operand, stream: Any = None) -> int:
    """Raw CUstream handle: the explicit `stream` if given, else the current stream of the
    operand's framework on its device (CuPy, torch), else the legacy default stream (0)."""
    if stream is not None:
        return stream_handle(stream)
    if op.kind == "torch":
        import torch
        return _torch_stream(torch, op.device)
    if op.kind == "cupy":
        import cupy
        return int(cupy.cuda.get_current_stream(op.device).ptr)
    return 0


def _torch_stream(torch, device: int | None) -> int:
    """torch's current raw CUstream on a device; the raw getter (what Triton uses) skips building a
    Stream object per call, the public API is the fallback."""
    index = torch.cuda.current_device() if device is None else device
    getter = getattr(torch._C, "_cuda_getCurrentRawStream", None)
    if getter is not None:
        return int(getter(index))
    return int(torch.cuda.current_stream(index).cuda_stream)


def stream_handle(stream: Any) -> int:
    """Raw CUstream of a stream object (torch, CuPy, cuda.core, anything with __cuda_stream__) or int."""
    for attr in ("cuda_stream", "ptr", "handle"):
        if hasattr(stream, attr):
            return int(getattr(stream, attr))
    if hasattr(stream, "__cuda_stream__"):
        return int(stream.__cuda_stream__()[1])
    return int(stream)


def empty_raw(op: Operand, shape: tuple, dtype: str) -> Any:
    """A new device array on op's device: torch for torch callers, else CuPy (bfloat16 as raw
    uint16 storage: CuPy has no bfloat16). Hand it to the caller with `as_callers_kind` only after
    the kernel that writes it is launched (DLPack orders the consumer after work issued so far)."""
    if op.kind == "torch":
        import torch
        return torch.empty(shape, dtype=getattr(torch, dtype), device=op.obj.device)
    import cupy
    with cupy.cuda.Device(op.device):
        return cupy.empty(shape, dtype=cupy.uint16 if dtype == "bfloat16" else dtype)


def as_callers_kind(op: Operand, raw: Any, dtype: str) -> Any:
    """`raw` (from empty_raw(op, ..., dtype)) as an array of op's kind: itself for torch/CuPy callers,
    else through DLPack in the caller's package (e.g. a JAX array), bfloat16 viewed from its raw
    uint16 storage."""
    if op.kind in ("torch", "cupy"):
        return raw
    import importlib
    root = type(op.obj).__module__.split(".")[0]
    root = {"jaxlib": "jax"}.get(root, root)  # JAX arrays are jaxlib types; jax.numpy reads DLPack
    for mod_name in (root + ".numpy", root, root + ".dlpack"):
        try:
            mod = importlib.import_module(mod_name)
        except ImportError:
            continue
        if hasattr(mod, "from_dlpack"):
            arr = mod.from_dlpack(raw)
            if dtype == "bfloat16" and hasattr(arr, "view") and hasattr(mod, "bfloat16"):
                arr = arr.view(mod.bfloat16)
            return arr
    return raw
