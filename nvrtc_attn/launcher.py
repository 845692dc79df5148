"""Kernel launches: the Python mirror of kernels_cu/params.cuh, shared-memory attribute (the size
read from the kernel's cubin), grid size from occupancy, and cuLaunchKernel on the caller's stream.

Launches go through cuda.bindings' cuLaunchKernel rather than cuda.core.launch because the
kernels take one by-value parameter struct (`const __grid_constant__ PrefillParams`), which
cuda.core's argument packing does not express; the struct is packed with ctypes.
"""
from __future__ import annotations

import contextlib
import ctypes
import functools
import threading

from . import compiler, cubin, planner, variants

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
        ("v_scale", _f32), ("lse_scale", _f32),
        ("reserved", _i32), ("partial_o", _p), ("partial_lse", _p),
        ("k_scale_heads", _p), ("v_scale_heads", _p),
        ("counts", _p),
        ("q_scale_kv_heads", _p), ("q_scale_qo_heads", _p),
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
        ("page_size", _i32), ("num_kv_heads", _i32),
    ]


class MergeParams(ctypes.Structure):
    """Mirror of `struct MergeParams` (kernels_cu/params.cuh): the merge of split tiles."""

    _fields_ = [
        ("counts", _p), ("merges", _p), ("qo_indptr", _p), ("partial_o", _p), ("partial_lse", _p),
        ("o", _p), ("lse", _p),
        ("o_stride_tok", _i64), ("o_stride_head", _i64), ("lse_stride_tok", _i64), ("lse_stride_head", _i64),
        ("num_kv_heads", _i32), ("group_size", _i32), ("head_dim", _i32), ("block_m", _i32),
        ("v_scale", _f32), ("lse_scale", _f32), ("is_bf16", _i32), ("reserved", _i32),
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
    """A compiled variant loaded on one device: CUfunction, block size, dynamic shared memory.

    smem_bytes: None reads the kernel's own size from its cubin (the `dynamic_smem_bytes` symbol
    of the prefill kernels, see cubin.py), so the host never keeps a copy of the layout arithmetic.
    """

    def __init__(self, variant: variants.KernelVariant, device: int, threads: int, smem_bytes: int | None = None,
                 programmatic: bool = False):
        from cuda.bindings import driver

        compiled = compiler.compile_variant(variant)
        if smem_bytes is None:
            smem_bytes = cubin.symbol_int(compiled.cubin, cubin.SMEM_BYTES_SYMBOL)
        kernel = compiler.load_kernel(compiled)
        self.variant = variant
        self.device = device
        self.threads = threads
        self.smem_bytes = smem_bytes
        with device_context(device) as ctx:  # the device's primary context (shared with CuPy and torch)
            self.context = ctx
            self.function = _check(driver.cuKernelGetFunction(kernel.handle))
        _devices.add(device)
        if smem_bytes > 48 * 1024:
            _check(driver.cuFuncSetAttribute(
                self.function, driver.CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                smem_bytes))
        self.blocks_per_sm = max(1, _check(driver.cuOccupancyMaxActiveBlocksPerMultiprocessor(
            self.function, threads, smem_bytes)))
        self._args: dict = {}  # ids of parameter structs -> (address of the argument array, array, structs)
        # programmatic: launched with programmatic stream serialization (cuLaunchKernelEx), so the
        # kernel may be scheduled before the one ahead of it on the stream ends; it must start with
        # ptx::grid_dependency_wait. One launch config per stream, built once.
        self.programmatic = programmatic
        self._configs: dict = {}

    def launch(self, grid: int, params: ctypes.Structure, stream: int, *more: ctypes.Structure) -> None:
        """One launch; params (and `more` by-value structs) are the kernel's parameters in order.

        The host cost matters (run() launches once per layer): the argument array of a set of
        parameter structs and the CUstream of a handle are built once and reused (a wrapper passes
        the same structs on every run(), refilled in place)."""
        if grid <= 0:
            return
        key = (id(params),) + tuple(map(id, more))
        args = self._args.get(key)
        if args is None:
            structs = (params,) + more
            array = (ctypes.c_void_p * len(structs))(*[ctypes.addressof(x) for x in structs])
            if len(self._args) >= _ARGS_CACHED:  # every plan() brings new structs: keep the latest few
                del self._args[next(iter(self._args))]  # (the launch copied their values: safe to drop)
            args = self._args[key] = (ctypes.addressof(array), array, structs)  # keeps them alive
        cu_stream = _cu_stream(stream)
        if len(_devices) > 1 and not self._is_current():  # several GPUs: launch in this kernel's context
            with device_context(self.device):
                self._launch(grid, cu_stream, args[0])
        else:
            self._launch(grid, cu_stream, args[0])

    def _launch(self, grid: int, cu_stream, args_address: int) -> None:
        if self.programmatic:
            config = self._configs.get(cu_stream)
            if config is None:
                config = self._configs[cu_stream] = _programmatic_config(self.threads, self.smem_bytes, cu_stream)
            config.gridDimX = grid
            (err,) = _driver().cuLaunchKernelEx(config, self.function, args_address, 0)
        else:
            (err,) = _driver().cuLaunchKernel(self.function, grid, 1, 1, self.threads, 1, 1, self.smem_bytes,
                                              cu_stream, args_address, 0)
        if err != _SUCCESS:
            _check((err,))

    def _is_current(self) -> bool:
        err, ctx = _driver().cuCtxGetCurrent()
        return int(ctx) == int(self.context)


def _programmatic_config(threads: int, smem_bytes: int, cu_stream):
    """A CUlaunchConfig (grid set per launch) with programmatic stream serialization allowed."""
    driver = _driver()
    attr = driver.CUlaunchAttribute()
    attr.id = driver.CUlaunchAttributeID.CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION
    attr.value.programmaticStreamSerializationAllowed = 1
    config = driver.CUlaunchConfig()
    config.gridDimY = config.gridDimZ = 1
    config.blockDimX, config.blockDimY, config.blockDimZ = threads, 1, 1
    config.sharedMemBytes = smem_bytes
    config.hStream = cu_stream
    config.attrs = [attr]
    config.numAttrs = 1
    return config


@functools.lru_cache(maxsize=None)
def _driver():
    from cuda.bindings import driver

    return driver


# Argument arrays a LoadedKernel keeps (insertion order, the oldest dropped first): a wrapper launches
# the structs of its last plan() on every run(), and several wrappers may share a kernel; each
# plan() makes new ones, so an unbounded cache would grow by an entry per plan().
_ARGS_CACHED = 32
_SUCCESS = 0  # CUresult.CUDA_SUCCESS (an IntEnum member compares equal to 0)
_devices: set = set()  # devices with loaded kernels: with more than one, launches check the context


@contextlib.contextmanager
def device_context(device: int):
    """Make `device`'s primary context current for the block (yields it) and restore the caller's
    current context afterwards: loading a kernel or launching for one GPU never changes which device
    the caller's framework (torch, CuPy) is on."""
    driver = _driver()
    err, prev = driver.cuCtxGetCurrent()
    ctx = _primary_contexts.get(device)
    if ctx is not None and int(prev) == int(ctx):  # already current: nothing to switch (plan()'s usual case)
        yield ctx
        return
    if ctx is None:
        from cuda.core import Device

        Device(device).set_current()  # retains the primary context, shared with CuPy and torch
        _, ctx = driver.cuCtxGetCurrent()
        _primary_contexts[device] = ctx
    else:
        _check(driver.cuCtxSetCurrent(ctx))
    try:
        yield ctx
    finally:
        if int(prev) and int(prev) != int(ctx):
            _check(driver.cuCtxSetCurrent(prev))


_primary_contexts: dict = {}  # device -> its primary CUcontext (retained once, by cuda.core)
_streams: dict = {}  # raw handle -> driver.CUstream (launch arguments are reused, not rebuilt)


def _cu_stream(stream: int):
    """The driver.CUstream of a raw stream handle, built once (launches and uploads reuse it)."""
    cu_stream = _streams.get(stream)
    if cu_stream is None:
        cu_stream = _streams[stream] = _driver().CUstream(stream)
    return cu_stream

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


def device_arch(device: int) -> str:
    return variants.arch_for(compute_capability(device))


def load(variant: variants.KernelVariant, device: int, threads: int, smem_bytes: int | None = None,
         programmatic: bool = False) -> LoadedKernel:
    """A compiled variant loaded on a device (compiled or read from the cache first), once per
    (variant, device); programmatic: see LoadedKernel."""
    key = (variant.name, device)
    with _lock:
        k = _kernels.get(key)
    if k is None:
        k = LoadedKernel(variant, device, threads, smem_bytes, programmatic)
        with _lock:
            _kernels[key] = k
    return k


def load_build(build: variants.Build, device: int) -> tuple[LoadedKernel, ...]:
    """The kernels of a Build on a device, in build.variants order."""
    return tuple(load(v, device, build.tile.threads) for v in build.variants)


def prefill_sm80_kernel(head_dim: int, dtype: str, device: int, units: bool = True) -> LoadedKernel:
    """The portable kernel for this device (sm_90a build on Hopper, sm_80 elsewhere) and K/V
    load path (units: int32 token-unit offsets; else int64 element offsets)."""
    arch = device_arch(device)
    tile = variants.sm80_tile(head_dim, arch)
    return load(variants.prefill_sm80_variant(head_dim, dtype, arch, units), device, tile.threads)


def offsets_kernel(device: int) -> LoadedKernel:
    """The plan expansion kernel (kernels_cu/kv_offsets.cu) loaded on `device`."""
    return load(variants.kv_offsets_variant(device_arch(device)), device, 256, 0)


def prepare(build_variants, device: int) -> None:
    """Compile (in parallel worker processes, from the disk cache when warm) every variant a plan
    may need, before any of them is loaded: the first plan() of a (head_dim, dtype) pays one
    parallel compile instead of one per build, and run() never compiles."""
    missing = [v for v in build_variants if (v.name, device) not in _kernels and v.name not in _prepared]
    if len(missing) > 1:
        compiler.compile_all(missing)
    _prepared.update(v.name for v in missing)


_prepared: set = set()  # variant names prepare() has compiled (or found cached) in this process


# Blocks of the expansion kernel's grid-stride loops: enough to fill any GPU, few enough that a
# small batch does not launch idle blocks.
_EXPAND_MAX_BLOCKS = 1024
# The sections the expansion reads (all of them with offsets_only) and, after them, those it writes
# besides the offset tables.
_EXPAND_INPUTS = ("counts", "qo_indptr", "kv_lens", "kv_tok_indptr", "paged_kv_indptr", "page_indices", "rows",
                  "blocks", "entries", "work_indptr", "tile_cta")
_EXPAND_SECTIONS = _EXPAND_INPUTS + ("tiles", "tok_page", "tok_slot")


def expand_plan(plan, workspace_ptr: int, offsets_key: planner.OffsetKey | None, stream: int, device: int, *,
                offsets_only: bool = False) -> None:
    """The device half of plan(): one launch, on `stream` after the upload of plan.image to
    workspace_ptr, that writes the plan's DEVICE_BUILT sections from the uploaded ones: the tile
    rows (planner.DEVICE_TILE_FIELDS, CTA order), tok_page / tok_slot, and with an offsets key
    (planner.offset_key) its offset table(s). plan() calls it after every upload; run(), meeting
    strides of another offsets key, calls it with offsets_only=True for that key's table alone.
    Every count comes from the workspace, and the grid from the plan's capacity when it has one,
    so the launch can be captured in a CUDA graph and replayed after later plans of that capacity.
    """
    layout = plan.layout
    # One constructor call with every field (a setattr per field costs a Python call each).
    fields = {name: workspace_ptr + layout[name][0] for name in (_EXPAND_INPUTS if offsets_only else _EXPAND_SECTIONS)}
    offsets_key = planner.as_offset_key(offsets_key)
    if offsets_key is not None and offsets_key.mode == "units":
        fields.update(tok_units=workspace_ptr + layout["tok_units"][0], page_ratio=offsets_key.ratio)
    elif offsets_key is not None:
        fields.update(k_tok_elems=workspace_ptr + layout["k_tok_elems"][0],
                      v_tok_elems=workspace_ptr + layout["v_tok_elems"][0],
                      k_stride_page=offsets_key.k_page, k_stride_tok=offsets_key.k_token,
                      v_stride_page=offsets_key.v_page, v_stride_tok=offsets_key.v_token)
    op = OffsetParams(page_size=plan.page_size, num_kv_heads=plan.num_kv_heads, **fields)
    cap = plan.capacity
    work = max(cap.max_kv_tokens, cap.max_tiles) if cap is not None else max(plan.total_kv, plan.num_tiles)
    kernel = offsets_kernel(device)
    blocks = max(-(-work // kernel.threads), -(-plan.num_ctas * 32 // kernel.threads))  # a warp per CTA
    kernel.launch(min(max(1, blocks), _EXPAND_MAX_BLOCKS), op, stream)


# cuTensorMapEncodeTiled: 16-bit elements with the 128-byte swizzle the wgmma operands use, or the
# bytes of an fp8 cache unswizzled (the producer widens them into the swizzled tiles itself), except
# in the fp8-MMA builds: K swizzled, as e4m3 wgmma reads it, and V swizzled for the producer's
# ldmatrix transpose.
_TMA_CACHE_MAX = 512
_map_cache: dict = {}  # geometry + address -> encoded descriptor(s), b"" when rejected


def _remember(key, value) -> None:
    with _lock:
        if len(_map_cache) >= _TMA_CACHE_MAX:
            _map_cache.clear()
        _map_cache[key] = value


def _encode(ptr: int, dims, byte_strides, box, bytes_per_element: int = 2, swizzle: bool | None = None) -> bytes:
    """The 128 bytes of a tiled TMA descriptor (dims innermost first, in elements; byte_strides of
    dims 1..; box in elements per dim): with the 128-byte swizzle or none (swizzle None: 16-bit
    elements swizzled, 1-byte elements (an fp8 cache) not). b"" when the driver rejects the geometry
    (the caller then gathers with cp.async)."""
    driver = _driver()
    rank = len(dims)
    one_byte = bytes_per_element == 1
    if swizzle is None:
        swizzle = not one_byte
    err, tmap = driver.cuTensorMapEncodeTiled(
        driver.CUtensorMapDataType.CU_TENSOR_MAP_DATA_TYPE_UINT8 if one_byte
        else driver.CUtensorMapDataType.CU_TENSOR_MAP_DATA_TYPE_UINT16, rank, ptr,
        [driver.cuuint64_t(int(x)) for x in dims], [driver.cuuint64_t(int(x)) for x in byte_strides],
        [driver.cuuint32_t(int(b)) for b in box], [driver.cuuint32_t(1)] * rank,
        driver.CUtensorMapInterleave.CU_TENSOR_MAP_INTERLEAVE_NONE,
        driver.CUtensorMapSwizzle.CU_TENSOR_MAP_SWIZZLE_128B if swizzle
        else driver.CUtensorMapSwizzle.CU_TENSOR_MAP_SWIZZLE_NONE,
        driver.CUtensorMapL2promotion.CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
        driver.CUtensorMapFloatOOBfill.CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE)
    if err != driver.CUresult.CUDA_SUCCESS:
        return b""
    return ctypes.string_at(tmap.getPtr(), ctypes.sizeof(TensorMap))


def encode_tensor_map(dst: TensorMap, ptr: int, dims, byte_strides, box, bytes_per_element: int = 2) -> bool:
    """Fill `dst` with a tiled TMA descriptor (see _encode: 16-bit elements swizzled, 1-byte ones
    not); False, leaving dst untouched, when the driver rejects the geometry. Cached by geometry,
    element size and address."""
    key = (ptr, tuple(dims), tuple(byte_strides), tuple(box), bytes_per_element)
    raw = _map_cache.get(key)
    if raw is None:
        raw = _encode(ptr, dims, byte_strides, box, bytes_per_element)
        _remember(key, raw)
    if raw:
        ctypes.memmove(ctypes.addressof(dst), raw, len(raw))
    return bool(raw)


def copy_host_to_device(dst_ptr: int, host_array, stream: int) -> None:
    """One stream-ordered host-to-device copy (the plan upload) of a C-contiguous NumPy array. From
    pageable memory the driver stages the bytes before it returns, so the caller may reuse the array
    at once. (Page-locked staging buffers of our own were tried: the extra driver calls, an event per
    buffer, cost more host time than the pageable copy, s13r3.)"""
    if not host_array.flags.c_contiguous:
        raise ValueError("copy_host_to_device: the host array must be C-contiguous")
    nbytes = int(host_array.nbytes)
    if nbytes:
        _check(_driver().cuMemcpyHtoDAsync(dst_ptr, host_array.ctypes.data, nbytes, _cu_stream(stream)))


# ----------------------------------------------------------------------------------------------
# TMA geometry of the sm90 kernel's operands (the K/V pool views and Q)


def tma_geometry(dims, strides, itemsize: int = 2) -> tuple[tuple, tuple]:
    """(dims, byte strides of dims 1..) for cuTensorMapEncodeTiled from element strides of dims
    1.. (dim 0 has stride 1). Size-1 dims get the packed stride: DLPack strides of such dims are
    arbitrary (even 0), and the TMA unit wants every stride a positive multiple of 16 bytes.
    """
    out, packed = [], dims[0] * itemsize
    for size, stride in zip(dims[1:], strides):
        out.append(packed if size == 1 or stride <= 0 else stride * itemsize)
        packed = out[-1] * size
    return tuple(dims), tuple(out)


def kv_tma_geometry(head_dim: int, page_size: int, num_kv_heads: int, pages: int, strides,
                    itemsize: int = 2):
    """The 5-D TMA view of a K or V pool view for the sm90 kernel, or None if it has none.

    strides: normalized (page, token, head) element strides (arrays.cache_strides). Dims, innermost
    first: 64 columns, token % 8, column block (64 columns), token // 8, and head + page * R with
    R = stride_page / stride_head (heads and pages folded into one dim, so 5 dims suffice).
    Returns (dims, byte strides of dims 1..4, R). Needs stride_page % stride_head == 0 (any
    [pages, layers, 2, page_size, H, D] or HND pool view has it) and coordinates within int32.
    """
    sp, st, sh = (int(x) for x in strides)
    if num_kv_heads == 1:
        ratio, unit = 1, sp if sp > 0 else st * page_size
    elif sh > 0 and sp % sh == 0:
        ratio, unit = sp // sh, sh
    else:
        return None
    folded = (pages - 1) * ratio + num_kv_heads
    if folded >= 2**31 or ratio >= 2**31 or page_size % 8:
        return None
    dims = (64, 8, head_dim // 64, page_size // 8, folded)
    byte_strides = (st * itemsize, 64 * itemsize, 8 * st * itemsize, unit * itemsize)
    if any(x <= 0 for x in byte_strides):
        return None
    return dims, byte_strides, ratio


def kv8_tma_geometry(head_dim: int, page_size: int, num_kv_heads: int, pages: int, strides):
    """The 3-D TMA view of an fp8 K or V pool view (1-byte elements), or None if it has none: dims
    (head_dim bytes, token in page, head + page * R), byte strides of dims 1..2, and R, folded as in
    kv_tma_geometry. A box (head_dim, kv_box_tokens, 1) lands as kv_box_tokens rows of head_dim bytes,
    the row-major staging tile of the sm90 kernel's fp8 path."""
    g = kv_tma_geometry(head_dim, page_size, num_kv_heads, pages, strides, itemsize=1)
    if g is None:
        return None
    dims, byte_strides, ratio = g
    return (head_dim, page_size, dims[4]), (byte_strides[0], byte_strides[3]), ratio


def set_tensor_maps(maps: Sm90TensorMaps, p: PrefillParams, plan, build: variants.Build, q, k, v, ks, vs) -> bool:
    """TMA descriptors of this run's q and K/V views (sm90) into `maps` and the matching params
    fields; a geometry the driver rejects falls back to the cp.async path for that operand.
    Returns whether K/V come by TMA. Results are cached by everything they depend on (a layer's
    K/V views are encoded once; run() asks on every call)."""
    d = plan.head_dim
    p.q_tma = 0
    if build.q_box is not None:
        key = (q.ptr, q.shape[0], q.strides[0], q.strides[1], plan.num_qo_heads, d, build.q_box)
        raw = _map_cache.get(key)
        if raw is None:
            raw = _encode(q.ptr, *tma_geometry((d, plan.num_qo_heads, q.shape[0]), (q.strides[1], q.strides[0])),
                          build.q_box)
            _remember(key, raw)
        if raw:
            ctypes.memmove(ctypes.addressof(maps.q), raw, len(raw))
            p.q_tma = 1
    p.kv_box_tokens = 0
    if build.kv_box:
        # The element size and the swizzle are part of the key: an fp8 build's maps (uint8, swizzled
        # in the fp8-MMA builds only) are never those of another build over the same address and shape.
        elem = 1 if build.kv_fp8 else 2
        fp8_swizzle = build.fp8_mma
        key = (k.ptr, v.ptr, k.shape[0], v.shape[0], ks, vs, d, plan.page_size, plan.num_kv_heads, build.kv_box, elem,
               fp8_swizzle)
        kv = _map_cache.get(key)
        if kv is None:
            kv = _encode_kv(plan, build.kv_box, k, v, ks, vs, elem, fp8_swizzle)
            _remember(key, kv)
        if kv:
            raw_k, raw_v, p.k_page_heads, p.v_page_heads = kv
            ctypes.memmove(ctypes.addressof(maps.k), raw_k, len(raw_k))
            ctypes.memmove(ctypes.addressof(maps.v), raw_v, len(raw_v))
            p.kv_box_tokens = build.kv_box
    return bool(p.kv_box_tokens)


def _encode_kv(plan, kv_box: int, k, v, ks, vs, bytes_per_element: int = 2, fp8_swizzle: bool = False) -> tuple | bytes:
    """(K map, V map, K page_heads, V page_heads) of a K/V view pair, or b"" without a TMA view:
    16-bit views as 5-D swizzled maps, an fp8 cache's (bytes_per_element 1) as 3-D byte maps, both
    128-byte swizzled with fp8_swizzle (the fp8-MMA builds: head_dim 128, one swizzle row per key)."""
    d = plan.head_dim
    if bytes_per_element == 1:
        box, geometry = (d, kv_box, 1), kv8_tma_geometry
    else:
        box, geometry = (64, 8, d // 64, kv_box // 8, 1), kv_tma_geometry
    gk = geometry(d, plan.page_size, plan.num_kv_heads, k.shape[0], ks)
    gv = geometry(d, plan.page_size, plan.num_kv_heads, v.shape[0], vs)
    swizzled = bytes_per_element == 2 or fp8_swizzle
    raw_k = _encode(k.ptr, gk[0], gk[1], box, bytes_per_element, swizzle=swizzled) if gk else b""
    raw_v = _encode(v.ptr, gv[0], gv[1], box, bytes_per_element, swizzle=swizzled) if gv and raw_k else b""
    return (raw_k, raw_v, gk[2], gv[2]) if raw_v else b""


# ----------------------------------------------------------------------------------------------
# Parameters of a launch


_PLAN_SECTIONS = ("qo_indptr", "kv_lens", "kv_tok_indptr", "tok_page", "tok_slot", "tiles", "work_indptr", "counts")


def plan_params(plan, workspace_ptr: int, partial_ptr: int = 0, slots=None) -> PrefillParams:
    """A PrefillParams with the plan's fields filled in (workspace sections, heads, mask); with
    slots (planner.PartialSlots) the split-KV build's partial results at partial_ptr (the float
    workspace)."""
    layout = plan.layout
    p = PrefillParams(num_qo_heads=plan.num_qo_heads, group_size=plan.group_size, causal=int(plan.causal),
                      window_left=plan.window_left,
                      **{name: workspace_ptr + layout[name][0] for name in _PLAN_SECTIONS})
    if slots is not None:
        p.partial_o, p.partial_lse = partial_ptr, partial_ptr + slots.lse_offset
    return p


# ----------------------------------------------------------------------------------------------
# The merge of split tiles (kernels_cu/merge_split.cu)

_MERGE_THREADS = 256      # kMergeThreads of merge_split.cu
_MERGE_MAX_BLOCKS = 1024  # grid-stride beyond this


def merge_kernel(device: int) -> LoadedKernel:
    """The merge of split tiles, loaded on `device` (sm_90a: only sm90 plans have pieces). A
    programmatic launch: it is scheduled while the split prefill's last tiles run and waits there
    for the whole prefill (merge_split.cu), instead of a launch gap after it."""
    return load(variants.merge_split_variant(), device, _MERGE_THREADS, 0, programmatic=True)


def merge_params(plan, workspace_ptr: int, partial_ptr: int, slots) -> MergeParams:
    """A MergeParams with the plan's fields filled in: its merge table and counts (plan buffer at
    workspace_ptr) and the partial results (planner.PartialSlots at partial_ptr)."""
    mp = MergeParams()
    for name in ("counts", "merges", "qo_indptr"):
        setattr(mp, name, workspace_ptr + plan.layout[name][0])
    mp.partial_o, mp.partial_lse = partial_ptr, partial_ptr + slots.lse_offset
    mp.num_kv_heads, mp.group_size, mp.head_dim, mp.block_m = (plan.num_kv_heads, plan.group_size, plan.head_dim,
                                                               plan.block_m)
    mp.is_bf16 = int(plan.dtype == "bfloat16")
    return mp


def set_merge_run_params(mp: MergeParams, o, lse, lse_layout: str, v_scale: float, lse_scale: float) -> None:
    """This run's output operands and scales into mp (as set_run_params does for the prefill)."""
    _set_outputs(mp, o, lse, lse_layout)
    mp.v_scale, mp.lse_scale = v_scale, lse_scale


def _set_outputs(p, o, lse, lse_layout: str) -> None:
    """o and lse (pointers, element strides; lse_layout "NH" or "HN") into a PrefillParams or
    MergeParams."""
    p.o, p.o_stride_tok, p.o_stride_head = o.ptr, o.strides[0], o.strides[1]
    if lse is None:
        p.lse, p.lse_stride_tok, p.lse_stride_head = None, 0, 0
    elif lse_layout == "NH":
        p.lse, p.lse_stride_tok, p.lse_stride_head = lse.ptr, lse.strides[0], lse.strides[1]
    else:  # [num_qo_heads, total_q]
        p.lse, p.lse_stride_tok, p.lse_stride_head = lse.ptr, lse.strides[1], lse.strides[0]


def merge_grid(plan) -> int:
    """CTAs of the merge launch: enough for the plan's merge table (for its capacity's largest one
    when it has a capacity: a captured launch serves every later plan), grid-stride past
    _MERGE_MAX_BLOCKS."""
    cap = plan.capacity
    merges = cap.max_pieces // (2 * plan.num_kv_heads) if cap is not None else plan.num_merges
    items = merges * plan.num_kv_heads * plan.block_m * (plan.head_dim // 8)
    return min(max(1, -(-items // _MERGE_THREADS)), _MERGE_MAX_BLOCKS)


def set_run_params(p: PrefillParams, plan, workspace_ptr: int, key: planner.OffsetKey, q, ks, vs, k, v, o, lse,
                   lse_layout: str, scales, head_scales=(0, 0, 0, 0)) -> None:
    """This run's operands into p: pointers and element strides of q, the K/V views (ks, vs: their
    normalized (page, token, head) strides), o and lse, the offset table of `key`, and the scales
    (scale_log2, soft_cap, cap_scale, v_scale, lse_scale), plus head_scales: device addresses of
    per-KV-head k_scale / v_scale arrays and of a q_scale array per KV head or per query head (fp8
    caches; 0 = per tensor)."""
    p.q, p.k, p.v = q.ptr, k.ptr, v.ptr
    p.q_stride_tok, p.q_stride_head = q.strides[0], q.strides[1]
    _set_outputs(p, o, lse, lse_layout)
    p.k_stride_tok, p.k_stride_head = ks[1], ks[2]
    p.v_stride_tok, p.v_stride_head = vs[1], vs[2]
    if key.mode == "units":
        p.tok_units, p.k_tok_elems, p.v_tok_elems = workspace_ptr + plan.layout["tok_units"][0], None, None
    else:
        p.tok_units = None
        p.k_tok_elems = workspace_ptr + plan.layout["k_tok_elems"][0]
        p.v_tok_elems = workspace_ptr + plan.layout["v_tok_elems"][0]
    p.scale_log2, p.soft_cap, p.cap_scale, p.v_scale, p.lse_scale = scales
    p.k_scale_heads, p.v_scale_heads, p.q_scale_kv_heads, p.q_scale_qo_heads = (x or None for x in head_scales)
