"""FlashInfer-compatible BatchPrefillWithPagedKVCacheWrapper (plan once per batch, run per layer)
and the one-call functional API `paged_prefill`.
"""
from __future__ import annotations

import functools
import math

import numpy as np

from . import arrays, launcher, planner, schedule, validate, variants

LOG2E = 1.4426950408889634
BACKENDS = ("auto", "sm80", "sm90")
KV_LOADS = ("auto", "gather")

# FlashInfer plan()/run() keywords we accept for drop-in use, with the only values supported.
_PLAN_DEFAULTS = {"pos_encoding_mode": "NONE", "custom_mask": None, "packed_custom_mask": None,
                  "allow_fp16_qk_reduction": False, "rope_scale": None, "rope_theta": None,
                  "use_fp16_qk_reduction": False}
_PLAN_IGNORED = ("non_blocking", "o_data_type", "fixed_split_size", "disable_split_kv", "prefix_len_ptr",
                 "token_pos_in_items_ptr", "token_pos_in_items_len", "max_item_len_ptr", "seq_lens",
                 "seq_lens_q", "block_tables", "max_token_per_sequence", "max_sequence_kv")


def _needs_plan(method):
    """Lifecycle precondition: run() before plan() is a clear error, not a crash."""
    @functools.wraps(method)
    def checked(self, *args, **kwargs):
        if self._plan is None:
            raise RuntimeError(f"{method.__name__}() cannot be called before plan() has been called "
                               f"on this BatchPrefillWithPagedKVCacheWrapper.")
        return method(self, *args, **kwargs)
    return checked


def _check_extra(kwargs: dict, where: str) -> None:
    for key, value in kwargs.items():
        if key in _PLAN_IGNORED:
            continue
        if key not in _PLAN_DEFAULTS:
            raise TypeError(f"{where}() got an unexpected keyword argument {key!r}")
        if value != _PLAN_DEFAULTS[key] and not (value is None and _PLAN_DEFAULTS[key] is None):
            raise NotImplementedError(f"{where}(): {key}={value!r} is not supported "
                                      f"(only {_PLAN_DEFAULTS[key]!r})")


class BatchPrefillWithPagedKVCacheWrapper:
    """Batch prefill attention over a paged KV cache with any strides.

    workspace_buffer: a device uint8 array (CuPy, torch, DLPack), e.g. 128 MiB; plan() writes the
    batch's plan into it with one host-to-device copy, every layer's run() reads it.
    kv_layout: "NHD" ([pages, page_size, Hkv, D]) or "HND" ([pages, Hkv, page_size, D]).
    backend: "auto" (best for the GPU), "sm80" (portable mma.sync kernel) or "sm90".
    kv_load (sm90 only): "auto" loads K/V pages with TMA when page_size is a multiple of 8 and the
    cache view's geometry suits the TMA unit, else gathers rows with cp.async; "gather" always
    gathers. `kv_load_path` tells which path the last run() took.

    Example (one plan, every layer of a [pages, layers, 2, page_size, Hkv, D] pool):
        w = BatchPrefillWithPagedKVCacheWrapper(cupy.empty(128 << 20, cupy.uint8))
        w.plan(qo_indptr, kv_indptr, kv_indices, last_page_len, 32, 8, 128, 16, causal=True,
               q_data_type="float16")
        for layer in range(num_layers):
            o = w.run(q[layer], (pool[:, layer, 0], pool[:, layer, 1]))
    """

    def __init__(self, workspace_buffer, kv_layout: str = "NHD", backend: str = "auto", kv_load: str = "auto",
                 **kwargs):
        self._kv_layout = validate.check_kv_layout(kv_layout)
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        if kv_load not in KV_LOADS:
            raise ValueError(f"kv_load must be one of {KV_LOADS}, got {kv_load!r}")
        self._kv_load = kv_load
        self._kv_box = 0            # TMA box tokens chosen by plan() (0: gather)
        self._q_box = None          # Q's TMA box chosen by plan() (None: cp.async)
        self._kv_load_path = None   # "tma" or "gather": what the last run() used
        self._maps = launcher.Sm90TensorMaps()
        for key in kwargs:
            if key not in ("use_cuda_graph", "qo_indptr_buf", "paged_kv_indptr_buf", "paged_kv_indices_buf",
                           "paged_kv_last_page_len_buf", "custom_mask_buf", "mask_indptr_buf", "jit_args"):
                raise TypeError(f"BatchPrefillWithPagedKVCacheWrapper() got an unexpected keyword argument {key!r}")
        self._backend_request = backend
        self._backend = backend  # "auto" is resolved for the device in plan()
        ws = arrays.wrap(workspace_buffer, "workspace_buffer")
        if ws.device is None:
            raise ValueError("workspace_buffer must be a CUDA device array, got a host array")
        if ws.strides != arrays._contiguous_strides(ws.shape):
            raise ValueError(f"workspace_buffer must be contiguous, got strides {ws.strides}")
        if ws.ptr % 256:
            raise ValueError(f"workspace_buffer must be 256-byte aligned, got address {ws.ptr:#x}")
        self._workspace = ws
        self._workspace_bytes = int(np.prod(ws.shape, dtype=np.int64)) * ws.itemsize
        self._plan = None
        self._offsets_key = None
        self._params = None
        self._grow_workspace = False  # only the functional API's private wrappers grow

    def _reallocate_workspace(self, nbytes: int) -> None:
        import cupy

        with cupy.cuda.Device(self._workspace.device):
            buf = cupy.empty(nbytes, dtype=cupy.uint8)
        self._workspace = arrays.wrap(buf, "workspace_buffer")
        self._workspace_bytes = nbytes

    @property
    def backend(self) -> str:
        return self._backend

    @property
    def kv_layout(self) -> str:
        return self._kv_layout

    @property
    def kernel_name(self) -> str | None:
        """The compiled kernel build plan() chose (e.g. "prefill_sm90_hd128_bf16_sm_90a"), None before plan()."""
        return self._kernel.variant.name if self._plan is not None else None

    @property
    def kv_load_path(self) -> str | None:
        """"tma" or "gather": how the last run() loaded K/V (None before the first run)."""
        return self._kv_load_path

    def plan(self, qo_indptr, paged_kv_indptr, paged_kv_indices, paged_kv_last_page_len,
             num_qo_heads: int, num_kv_heads: int, head_dim: int, page_size: int,
             causal: bool = False, sm_scale: float | None = None, window_left: int = -1,
             logits_soft_cap: float | None = None, q_data_type="float16", kv_data_type=None,
             paged_kv_cache=None, stream=None, **kwargs) -> None:
        """Plan one batch (host work, once; may synchronize). Index arrays: NumPy, CuPy or torch.

        paged_kv_cache (optional, our extension): the cache, or any layer view of the pool; its
        strides let plan() build the K/V offset tables now. Without it the first run() builds
        them on the device (a small kernel, CUDA-graph capturable) and later runs reuse them;
        every layer view of one pool has the same strides, so that happens once per plan.
        """
        _check_extra(kwargs, "plan")
        a = validate.check_plan_args(qo_indptr, paged_kv_indptr, paged_kv_indices, paged_kv_last_page_len,
                                     num_qo_heads, num_kv_heads, head_dim, page_size, causal, sm_scale,
                                     window_left, logits_soft_cap, q_data_type, kv_data_type)
        key = None
        if paged_kv_cache is not None:
            k, v = arrays.split_cache(paged_kv_cache)
            key, _, _ = self._offset_key(k, v, a["page_size"], a["max_page_index"])
        device = self._workspace.device
        self._backend = self._resolve_backend(device)
        if self._backend == "sm90":
            tile = variants.SM90_TILES[a["head_dim"]]  # plans like every sm90 tile of its head_dim
            num_ctas = launcher.sm_count(device) * tile.ctas_per_sm
        else:
            kernel = launcher.prefill_sm80_kernel(a["head_dim"], a["dtype"], device)
            tile = variants.sm80_tile(a["head_dim"], kernel.variant.arch)
            num_ctas = launcher.sm_count(device) * kernel.blocks_per_sm
        plan = planner.make_plan(
            a["qo_indptr"], a["paged_kv_indptr"], a["paged_kv_indices"], a["paged_kv_last_page_len"],
            a["num_qo_heads"], a["num_kv_heads"], a["head_dim"], a["page_size"], causal=a["causal"],
            window_left=a["window_left"], sm_scale=a["sm_scale"], logits_soft_cap=a["logits_soft_cap"],
            dtype=a["dtype"], num_ctas=num_ctas, block_m=tile.block_m, offsets_key=key,
            l2_section_bytes=tile.l2_section_bytes)
        if self._backend == "sm90":  # the build (with or without turn-taking) depends on the tiles
            blocks = schedule.mean_blocks_per_tile(plan.row_tiles, tile.block_n)
            pingpong = variants.sm90_pingpong(a["head_dim"], blocks)
            kv_tma = self._kv_load == "auto" and variants.sm90_kv_box_tokens(a["page_size"], a["head_dim"]) > 0
            tile = variants.sm90_tile(a["head_dim"], pingpong, kv_tma, a["window_left"])
            kernel = launcher.prefill_sm90_kernel(a["head_dim"], a["dtype"], device, pingpong=pingpong, tile=tile)
        if plan.workspace_bytes > self._workspace_bytes and self._grow_workspace:
            self._reallocate_workspace(2 * plan.workspace_bytes)
        if plan.workspace_bytes > self._workspace_bytes:
            raise ValueError(f"workspace_buffer holds {self._workspace_bytes} bytes but this batch's plan "
                             f"needs {plan.workspace_bytes}; pass a larger buffer")
        if paged_kv_cache is not None:
            validate.check_cache(k, v, plan, self._kv_layout)
            if key[0] != "units" and self._backend == "sm80":
                launcher.prefill_sm80_kernel(a["head_dim"], a["dtype"], device, units=False)
        raw_stream = arrays.current_stream(self._workspace, stream)
        launcher.copy_host_to_device(self._workspace.ptr, plan.image, raw_stream)
        launcher.expand_plan(plan, self._workspace.ptr, plan.offsets_key, raw_stream, device)
        self._plan, self._offsets_key, self._kernel = plan, plan.offsets_key, kernel
        self._params = self._plan_params(plan)
        self._kv_box = 0
        self._q_box = None
        if self._backend == "sm90":
            if self._kv_load == "auto":
                self._kv_box = variants.sm90_kv_box_tokens(a["page_size"], a["head_dim"], tile)
            bm, g = plan.block_m, plan.group_size
            if plan.total_q and bm % g == 0 and bm // g <= 256:  # Q by TMA: whole tiles of packed rows
                self._q_box = (64, g, bm // g)
        self._kv_load_path = None

    begin_forward = plan  # FlashInfer's older name

    def _offset_key(self, k, v, page_size: int, max_page_index: int) -> tuple:
        """(offset key, K strides, V strides) of a cache view: O(1), no device work."""
        ks = arrays.cache_strides(k, self._kv_layout, page_size)
        vs = arrays.cache_strides(v, self._kv_layout, page_size)
        return planner.offset_key(ks, vs, max_page_index, page_size), ks, vs

    def _resolve_backend(self, device: int) -> str:
        """"auto": the Hopper kernel on compute capability 9.0 (on the H100 it matched or beat the
        portable one on every standard workload, 2026-11-24), the portable kernel elsewhere."""
        if self._backend_request == "auto":
            return "sm90" if launcher.compute_capability(device) == (9, 0) else "sm80"
        return self._backend_request

    def _kernel_for(self, units: bool) -> launcher.LoadedKernel:
        """The kernel of the plan's head_dim/dtype for a K/V load path; the sm80 element-offset
        build is loaded on first use (plan() preloads it when it sees such a cache). The sm90
        kernel reads either table at run time."""
        if units or self._backend == "sm90":
            return self._kernel
        plan = self._plan
        return launcher.prefill_sm80_kernel(plan.head_dim, plan.dtype, self._workspace.device, units=False)

    def _section(self, name: str) -> int:
        return self._workspace.ptr + self._plan.layout[name][0]

    def _plan_params(self, plan) -> launcher.PrefillParams:
        p = launcher.PrefillParams()
        for name in ("qo_indptr", "kv_lens", "kv_tok_indptr", "tok_page", "tok_slot", "tiles", "work_indptr"):
            setattr(p, name, self._workspace.ptr + plan.layout[name][0])
        p.num_qo_heads = plan.num_qo_heads
        p.group_size = plan.group_size
        p.causal = int(plan.causal)
        p.window_left = plan.window_left
        if plan.logits_soft_cap > 0:
            p.scale_log2 = LOG2E
            p.soft_cap = plan.logits_soft_cap
            p.cap_scale = plan.sm_scale / plan.logits_soft_cap
        else:
            p.scale_log2 = plan.sm_scale * LOG2E
        return p

    def _build_offsets(self, key: tuple, stream: int) -> None:
        launcher.expand_plan(self._plan, self._workspace.ptr, key, stream, self._workspace.device, offsets_only=True)

    @_needs_plan
    def run(self, q, paged_kv_cache, out=None, lse=None, return_lse: bool = False, stream=None,
            k_scale=None, v_scale=None):
        """Attention for one layer: returns o [total_q, num_qo_heads, head_dim] (q's array type)
        or (o, lse) with lse float32 [total_q, num_qo_heads] (base-2 log-sum-exp of the logits).
        No host-device sync and no allocation when out (and lse) are given: capturable.
        """
        if k_scale is not None or v_scale is not None:
            raise NotImplementedError("run(): k_scale/v_scale (fp8 KV) are not supported")
        plan = self._plan
        qo = arrays.wrap(q, "q")
        validate.check_q(qo, plan)
        k, v = arrays.split_cache(paged_kv_cache)
        validate.check_cache(k, v, plan, self._kv_layout)
        if k.device != qo.device or qo.device != self._workspace.device:
            raise ValueError(f"q (cuda:{qo.device}), paged_kv_cache (cuda:{k.device}) and workspace_buffer "
                             f"(cuda:{self._workspace.device}) must be on the same device")
        oo = lo = None
        if out is not None:
            oo = arrays.wrap(out, "out")
            validate.check_out(oo, qo)
        if lse is not None:
            lo = arrays.wrap(lse, "lse")
            validate.check_lse(lo, qo)
        if out is None:
            out = arrays.empty_like_kind(qo, qo.shape, qo.dtype)
            oo = arrays.wrap(out, "out")
        if lse is None and return_lse:
            lse = arrays.empty_like_kind(qo, qo.shape[:2], "float32")
            lo = arrays.wrap(lse, "lse")

        raw_stream = arrays.current_stream(qo, stream)
        key, ks, vs = self._offset_key(k, v, plan.page_size, plan.max_page_index)
        if key != self._offsets_key:
            self._build_offsets(key, raw_stream)
            self._offsets_key = key

        p = self._params
        p.q, p.k, p.v, p.o = qo.ptr, k.ptr, v.ptr, oo.ptr
        p.q_stride_tok, p.q_stride_head = qo.strides[0], qo.strides[1]
        p.o_stride_tok, p.o_stride_head = oo.strides[0], oo.strides[1]
        if lo is not None:
            p.lse, p.lse_stride_tok, p.lse_stride_head = lo.ptr, lo.strides[0], lo.strides[1]
        else:
            p.lse, p.lse_stride_tok, p.lse_stride_head = None, 0, 0
        p.k_stride_tok, p.k_stride_head = ks[1], ks[2]
        p.v_stride_tok, p.v_stride_head = vs[1], vs[2]
        units = key[0] == "units"
        if units:
            p.tok_units, p.k_tok_elems, p.v_tok_elems = self._section("tok_units"), None, None
        else:
            p.tok_units = None
            p.k_tok_elems, p.v_tok_elems = self._section("k_tok_elems"), self._section("v_tok_elems")
        if self._backend == "sm90":
            self._set_tensor_maps(p, qo, k, v, ks, vs)
            if plan.num_tiles:
                self._kernel.launch(plan.num_ctas, p, raw_stream, self._maps)
        elif plan.num_tiles:
            self._kernel_for(units).launch(plan.num_ctas, p, raw_stream)
        return (out, lse) if return_lse else out

    def _set_tensor_maps(self, p, qo, k, v, ks, vs) -> None:
        """TMA descriptors of this run's q and K/V views (sm90); a geometry the driver rejects
        falls back to the cp.async path for that operand."""
        plan = self._plan
        d = plan.head_dim
        p.q_tma = 0
        if self._q_box is not None:
            p.q_tma = int(launcher.encode_tensor_map(
                self._maps.q, qo.ptr, *_tma_geometry((d, plan.num_qo_heads, plan.total_q),
                                                     (qo.strides[1], qo.strides[0])), self._q_box))
        p.kv_box_tokens = 0
        if self._kv_box:
            box = (64, 8, d // 64, self._kv_box // 8, 1)
            gk = _kv_tma_geometry(d, plan.page_size, plan.num_kv_heads, k.shape[0], ks)
            gv = _kv_tma_geometry(d, plan.page_size, plan.num_kv_heads, v.shape[0], vs)
            if (gk and gv and launcher.encode_tensor_map(self._maps.k, k.ptr, gk[0], gk[1], box)
                    and launcher.encode_tensor_map(self._maps.v, v.ptr, gv[0], gv[1], box)):
                p.kv_box_tokens = self._kv_box
                p.k_page_heads, p.v_page_heads = gk[2], gv[2]
        self._kv_load_path = "tma" if p.kv_box_tokens else "gather"

    forward = run


def _tma_geometry(dims, strides, itemsize: int = 2) -> tuple[tuple, tuple]:
    """(dims, byte strides of dims 1..) for cuTensorMapEncodeTiled from element strides of dims
    1.. (dim 0 has stride 1). Size-1 dims get the packed stride: DLPack strides of such dims are
    arbitrary (even 0), and the TMA unit wants every stride a positive multiple of 16 bytes.
    """
    out, packed = [], dims[0] * itemsize
    for size, stride in zip(dims[1:], strides):
        out.append(packed if size == 1 or stride <= 0 else stride * itemsize)
        packed = out[-1] * size
    return tuple(dims), tuple(out)


def _kv_tma_geometry(head_dim: int, page_size: int, num_kv_heads: int, pages: int, strides,
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


_functional: dict = {}


def _functional_wrapper(device: int, kv_layout: str, backend: str) -> "BatchPrefillWithPagedKVCacheWrapper":
    """One wrapper per (device, layout, backend) whose workspace grows to the largest plan seen."""
    import cupy

    key = (device, kv_layout, backend)
    w = _functional.get(key)
    if w is None:
        with cupy.cuda.Device(device):
            w = BatchPrefillWithPagedKVCacheWrapper(cupy.empty(8 << 20, dtype=cupy.uint8), kv_layout, backend)
        w._grow_workspace = True
        _functional[key] = w
    return w


def paged_prefill(q, paged_kv_cache, qo_indptr, paged_kv_indptr, paged_kv_indices, paged_kv_last_page_len,
                  *, causal: bool = False, kv_layout: str = "NHD", sm_scale: float | None = None,
                  window_left: int = -1, logits_soft_cap: float | None = None, return_lse: bool = False,
                  backend: str = "auto", out=None, lse=None, stream=None):
    """One-call prefill: plan + run. Head counts, head_dim, page_size and dtype come from the
    arrays. For many layers of one batch use the wrapper (plan once, run per layer).

    Example: o = paged_prefill(q, (k_cache, v_cache), qo_indptr, kv_indptr, kv_indices,
                               last_page_len, causal=True)
    """
    qo = arrays.wrap(q, "q")
    if qo.ndim != 3:
        raise ValueError(f"q must be 3-D [total_q, num_qo_heads, head_dim], got shape {list(qo.shape)}")
    validate.check_kv_layout(kv_layout)
    k, _ = arrays.split_cache(paged_kv_cache)
    if k.ndim != 4:
        raise ValueError(f"paged_kv_cache K must be 4-D, got shape {list(k.shape)}")
    page_size, num_kv_heads = (k.shape[1], k.shape[2]) if kv_layout == "NHD" else (k.shape[2], k.shape[1])
    if qo.device is None:
        raise ValueError("q must be on a CUDA device, got a host array")
    w = _functional_wrapper(qo.device, kv_layout, backend)
    w.plan(qo_indptr, paged_kv_indptr, paged_kv_indices, paged_kv_last_page_len, qo.shape[1], num_kv_heads,
           qo.shape[2], page_size, causal=causal, sm_scale=sm_scale, window_left=window_left,
           logits_soft_cap=logits_soft_cap, q_data_type=qo.dtype, kv_data_type=k.dtype,
           paged_kv_cache=paged_kv_cache, stream=stream)
    return w.run(q, paged_kv_cache, out=out, lse=lse, return_lse=return_lse, stream=stream)
