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
        ("k_tok_elems", _p), ("v_tok_elems", _p), ("tiles", _p), ("work_indptr", _p),
        ("q_stride_tok", _i64), ("q_stride_head", _i64),
        ("o_stride_tok", _i64), ("o_stride_head", _i64),
        ("lse_stride_tok", _i64), ("lse_stride_head", _i64),
        ("k_stride_tok", _i64), ("k_stride_head", _i64),
        ("v_stride_tok", _i64), ("v_stride_head", _i64),
        ("num_qo_heads", _i32), ("group_size", _i32), ("causal", _i32), ("window_left", _i32),
        ("scale_log2", _f32), ("soft_cap", _f32), ("cap_scale", _f32), ("pad0", _i32),
    ]


class OffsetParams(ctypes.Structure):
    """Mirror of `struct OffsetParams` (kernels_cu/params.cuh)."""

    _fields_ = [
        ("tok_page", _p), ("tok_slot", _p), ("tok_units", _p), ("k_tok_elems", _p), ("v_tok_elems", _p),
        ("page_ratio", _i64), ("k_stride_page", _i64), ("k_stride_tok", _i64),
        ("v_stride_page", _i64), ("v_stride_tok", _i64), ("total_kv", _i64),
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

    def launch(self, grid: int, params: ctypes.Structure, stream: int) -> None:
        from cuda.bindings import driver

        if grid <= 0:
            return
        args = (ctypes.c_void_p * 1)(ctypes.addressof(params))
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


def prefill_sm90_kernel(head_dim: int, dtype: str, device: int) -> LoadedKernel:
    """The Hopper kernel (sm_90a only)."""
    if compute_capability(device) != (9, 0):
        raise ValueError(f"backend='sm90' needs a Hopper GPU (compute capability 9.0), "
                         f"cuda:{device} is {compute_capability(device)}")
    key = ("sm90", head_dim, dtype, device)
    with _lock:
        k = _kernels.get(key)
    if k is None:
        tile = variants.SM90_TILES[head_dim]
        k = LoadedKernel(variants.prefill_sm90_variant(head_dim, dtype), device, tile.threads,
                         tile.smem_bytes(head_dim))
        with _lock:
            _kernels[key] = k
    return k


def offsets_kernel(device: int) -> LoadedKernel:
    arch = variants.HOPPER_ARCH if compute_capability(device) == (9, 0) else variants.PORTABLE_ARCH
    key = ("offsets", arch, device)
    with _lock:
        k = _kernels.get(key)
    if k is None:
        k = LoadedKernel(variants.kv_offsets_variant(arch), device, 256, 0)
        with _lock:
            _kernels[key] = k
    return k


def copy_host_to_device(dst_ptr: int, host_array, stream: int) -> None:
    """One stream-ordered host-to-device copy (the plan upload)."""
    from cuda.bindings import driver

    nbytes = int(host_array.nbytes)
    if nbytes:
        _check(driver.cuMemcpyHtoDAsync(dst_ptr, host_array.ctypes.data, nbytes, driver.CUstream(stream)))
