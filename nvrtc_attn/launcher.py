"""Kernel launches: the Python mirror of kernels_cu/params.cuh, shared-memory attribute, grid
size from occupancy, and cuLaunchKernel on the caller's stream.

Launches go through cuda.bindings' cuLaunchKernel rather than cuda.core.launch because the
kernels take one by-value parameter struct (`const __grid_constant__ PrefillParams`), which
cuda.core's argument packing does not express; the struct is packed with ctypes.
"""
from __future__ import annotations

import ctypes
import functools
import threading

from . import compiler, variants

_p, _i64, _i32, _f32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int32, ctypes.c_float


class PrefillParams(ctypes.Structure):
    """Mirror of `struct PrefillParams` (kernels_cu/params.cuh); tests check size and offsets."""

    _fields_ = [
        ("q", _p), ("k", _p), ("v", _p), ("o", _p), ("lse", _p),
        ("qo_indptr", _p), ("kv_lens", _p), ("kv_tok_indptr", _p), ("tok_units", _p),
        ("k_tok_elems", _p), ("v_tok_elems", _p), ("tok_page", _p), ("tok_slot", _p),
        ("tiles", _p), ("work_indptr", _p),
        ("q_stride_tok", _i64), ("q_stride_head", _i64),
        ("o_stride_tok", _i64), ("o_stride_head", _i64),
        ("lse_stride_tok", _i64), ("lse_stride_head", _i64),
        ("k_stride_tok", _i64), ("k_stride_head", _i64),
        ("v_stride_tok", _i64), ("v_stride_head", _i64),
        ("num_qo_heads", _i32), ("group_size", _i32), ("causal", _i32), ("window_left", _i32),
        ("scale_log2", _f32), ("soft_cap", _f32), ("cap_scale", _f32),
        ("kv_box_tokens", _i32), ("q_tma", _i32), ("k_page_heads", _i32), ("v_page_heads", _i32),
    ]


class TensorMap(ctypes.Structure):
    """Mirror of `struct TensorMap` (kernels_cu/params.cuh): the driver's opaque CUtensorMap."""

    _fields_ = [("opaque", ctypes.c_uint64 * 16)]


class Sm90TensorMaps(ctypes.Structure):
    """Mirror of `struct Sm90TensorMaps` (kernels_cu/params.cuh), the sm90 kernel's 2nd parameter."""

    _fields_ = [("q", TensorMap), ("k", TensorMap), ("v", TensorMap)]


class OffsetParams(ctypes.Structure):
    """Mirror of `struct OffsetParams` (kernels_cu/params.cuh): the expansion kernel's parameters."""

    _fields_ = [
        ("counts", _p), ("qo_indptr", _p), ("kv_lens", _p), ("kv_tok_indptr", _p), ("paged_kv_indptr", _p),
        ("page_indices", _p), ("rows", _p), ("blocks", _p), ("entries", _p), ("work_indptr", _p), ("tile_cta", _p),
        ("tiles", _p), ("tok_page", _p), ("tok_slot", _p), ("tok_units", _p), ("k_tok_elems", _p),
        ("v_tok_elems", _p),
        ("page_ratio", _i64), ("k_stride_page", _i64), ("k_stride_tok", _i64),
        ("v_stride_page", _i64), ("v_stride_tok", _i64),
        ("page_size", _i32), ("reserved", _i32),
    ]


def _check(result):
    """cuda.bindings returns (CUresult, *values); raise on error, return the values."""
    from cuda.bindings import driver

    err, *rest = result if isinstance(result, tuple) else (result,)
    if err != driver.CUresult.CUDA_SUCCESS:
        _, text = driver.cuGetErrorString(err)
        raise RuntimeError(f"CUDA driver error {int(err)}: {text.decode() if text else err}")
    return rest[0] if len(rest) == 1 else rest


class LoadedKernel:
    """A compiled variant loaded on one device: CUfunction, block size, dynamic shared memory."""

    def __init__(self, variant: variants.KernelVariant, device: int, threads: int, smem_bytes: int):
        from cuda.bindings import driver
        from cuda.core import Device

        Device(device).set_current()  # the primary context, shared with CuPy and torch
        kernel = compiler.load_kernel(compiler.compile_variant(variant))
        self.variant = variant
        self.threads = threads
        self.smem_bytes = smem_bytes
        self.function = _check(driver.cuKernelGetFunction(kernel.handle))
        if smem_bytes > 48 * 1024:
            _check(driver.cuFuncSetAttribute(
                self.function, driver.CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                smem_bytes))
        self.blocks_per_sm = max(1, _check(driver.cuOccupancyMaxActiveBlocksPerMultiprocessor(
            self.function, threads, smem_bytes)))

    def launch(self, grid: int, params: ctypes.Structure, stream: int, *more: ctypes.Structure) -> None:
        """One launch; params (and `more` by-value structs) are the kernel's parameters in order."""
        from cuda.bindings import driver

        if grid <= 0:
            return
        structs = (params,) + more
        args = (ctypes.c_void_p * len(structs))(*[ctypes.addressof(x) for x in structs])
        _check(driver.cuLaunchKernel(self.function, grid, 1, 1, self.threads, 1, 1, self.smem_bytes,
                                     driver.CUstream(stream), ctypes.addressof(args), 0))


_lock = threading.Lock()
_kernels: dict = {}
_sm_counts: dict = {}


def sm_count(device: int) -> int:
    with _lock:
        if device not in _sm_counts:
            from cuda.core import Device
            _sm_counts[device] = int(Device(device).properties.multiprocessor_count)
        return _sm_counts[device]


@functools.lru_cache(maxsize=None)
def compute_capability(device: int) -> tuple[int, int]:
    from cuda.core import Device
    cc = Device(device).compute_capability
    return int(cc[0]), int(cc[1])


def prefill_sm80_kernel(head_dim: int, dtype: str, device: int, units: bool = True) -> LoadedKernel:
    """The portable kernel for this device (sm_90a build on Hopper, sm_80 elsewhere) and K/V
    load path (units: int32 token-unit offsets; else int64 element offsets)."""
    arch = variants.HOPPER_ARCH if compute_capability(device) == (9, 0) else variants.PORTABLE_ARCH
    key = ("sm80", head_dim, dtype, arch, device, units)
    with _lock:
        k = _kernels.get(key)
    if k is None:
        tile = variants.sm80_tile(head_dim, arch)
        k = LoadedKernel(variants.prefill_sm80_variant(head_dim, dtype, arch, units), device,
                         tile.threads, tile.smem_bytes(head_dim))
        with _lock:
            _kernels[key] = k
    return k


def prefill_sm90_kernel(head_dim: int, dtype: str, device: int, pingpong: bool = True,
                        tile: variants.Sm90Tile | None = None) -> LoadedKernel:
    """The Hopper kernel (sm_90a only); pingpong picks the turn-taking build (variants.sm90_pingpong),
    tile the key block and stages (variants.sm90_tile; SM90_TILES[head_dim] by default)."""
    if compute_capability(device) != (9, 0):
        raise ValueError(f"backend='sm90' needs a Hopper GPU (compute capability 9.0), "
                         f"cuda:{device} is {compute_capability(device)}")
    tile = tile or variants.SM90_TILES[head_dim]
    variant = variants.prefill_sm90_variant(head_dim, dtype, pingpong, tile)
    key = ("sm90", variant.name, device)
    with _lock:
        k = _kernels.get(key)
    if k is None:
        k = LoadedKernel(variant, device, tile.threads, tile.smem_bytes(head_dim))
        with _lock:
            _kernels[key] = k
    return k


def offsets_kernel(device: int) -> LoadedKernel:
    """The plan expansion kernel (kernels_cu/kv_offsets.cu) loaded on `device`."""
    arch = variants.HOPPER_ARCH if compute_capability(device) == (9, 0) else variants.PORTABLE_ARCH
    key = ("offsets", arch, device)
    with _lock:
        k = _kernels.get(key)
    if k is None:
        k = LoadedKernel(variants.kv_offsets_variant(arch), device, 256, 0)
        with _lock:
            _kernels[key] = k
    return k


# Blocks of the expansion kernel's grid-stride loops: enough to fill any GPU, few enough that a
# small batch does not launch idle blocks.
_EXPAND_MAX_BLOCKS = 1024


def expand_plan(plan, workspace_ptr: int, offsets_key: tuple | None, stream: int, device: int, *,
                offsets_only: bool = False) -> None:
    """The device half of plan(): one launch, on `stream` after the upload of plan.image to
    workspace_ptr, that writes the plan's DEVICE_BUILT sections from the uploaded ones: the tile
    rows (planner.DEVICE_TILE_FIELDS, CTA order), tok_page / tok_slot, and with an offsets key
    (planner.offset_key) its offset table(s). plan() calls it after every upload; run(), meeting
    strides of another offsets key, calls it with offsets_only=True for that key's table alone.
    Every count comes from the workspace, and the grid from the plan's capacity when it has one,
    so the launch can be captured in a CUDA graph and replayed after later plans of that capacity.
    """
    def section(name):
        return workspace_ptr + plan.layout[name][0]

    op = OffsetParams()
    inputs = ("counts", "qo_indptr", "kv_lens", "kv_tok_indptr", "paged_kv_indptr", "page_indices", "rows",
              "blocks", "entries", "work_indptr", "tile_cta")
    for name in inputs if offsets_only else inputs + ("tiles", "tok_page", "tok_slot"):
        setattr(op, name, section(name))
    op.page_size = plan.page_size
    if offsets_key is not None and offsets_key[0] == "units":
        op.tok_units = section("tok_units")
        op.page_ratio = offsets_key[1]
    elif offsets_key is not None:
        op.k_tok_elems, op.v_tok_elems = section("k_tok_elems"), section("v_tok_elems")
        op.k_stride_page, op.k_stride_tok, op.v_stride_page, op.v_stride_tok = offsets_key[1:]
    cap = plan.capacity
    work = max(cap.max_kv_tokens, cap.max_tiles) if cap is not None else max(plan.total_kv, plan.num_tiles)
    kernel = offsets_kernel(device)
    blocks = max(-(-work // kernel.threads), -(-plan.num_ctas * 32 // kernel.threads))  # a warp per CTA
    kernel.launch(min(max(1, blocks), _EXPAND_MAX_BLOCKS), op, stream)


# cuTensorMapEncodeTiled for 16-bit elements with the 128-byte swizzle the wgmma operands use.
_TMA_CACHE_MAX = 512
_tma_cache: dict = {}


def encode_tensor_map(dst: TensorMap, ptr: int, dims, byte_strides, box) -> bool:
    """Fill `dst` with a tiled TMA descriptor of a 16-bit tensor: dims (innermost first, elements),
    byte_strides of dims 1.. (len(dims) - 1 values), box (elements per dim). Returns False, leaving
    dst untouched, when the driver rejects the geometry (the caller then gathers with cp.async).
    Encodings are cached by geometry and address: every layer's K/V view is encoded once.
    """
    key = (ptr, tuple(dims), tuple(byte_strides), tuple(box))
    raw = _tma_cache.get(key)
    if raw is None:
        from cuda.bindings import driver

        rank = len(dims)
        err, tmap = driver.cuTensorMapEncodeTiled(
            driver.CUtensorMapDataType.CU_TENSOR_MAP_DATA_TYPE_UINT16, rank, ptr,
            [driver.cuuint64_t(int(d)) for d in dims], [driver.cuuint64_t(int(s)) for s in byte_strides],
            [driver.cuuint32_t(int(b)) for b in box], [driver.cuuint32_t(1)] * rank,
            driver.CUtensorMapInterleave.CU_TENSOR_MAP_INTERLEAVE_NONE,
            driver.CUtensorMapSwizzle.CU_TENSOR_MAP_SWIZZLE_128B,
            driver.CUtensorMapL2promotion.CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
            driver.CUtensorMapFloatOOBfill.CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE)
        if err != driver.CUresult.CUDA_SUCCESS:
            return False
        raw = ctypes.string_at(tmap.getPtr(), ctypes.sizeof(TensorMap))
        with _lock:
            if len(_tma_cache) >= _TMA_CACHE_MAX:
                _tma_cache.clear()
            _tma_cache[key] = raw
    ctypes.memmove(ctypes.addressof(dst), raw, len(raw))
    return True


def copy_host_to_device(dst_ptr: int, host_array, stream: int) -> None:
    """One stream-ordered host-to-device copy (the plan upload)."""
    from cuda.bindings import driver

    nbytes = int(host_array.nbytes)
    if nbytes:
        _check(driver.cuMemcpyHtoDAsync(dst_ptr, host_array.ctypes.data, nbytes, driver.CUstream(stream)))
