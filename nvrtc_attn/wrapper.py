"""The public API: FlashInfer's BatchPrefillWithPagedKVCacheWrapper (plan once per batch, run per
layer; same names, order, defaults and CUDA-graph contract) and the one-call `paged_prefill`.

This file holds the API and its lifecycle only: checks live in validate.py, the plan in planner.py,
the build choice in variants.py, parameters, tensor maps and launches in launcher.py.
"""
from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np

from . import arrays, launcher, paging, planner, schedule, validate, variants

LOG2E = 1.4426950408889634
LN2 = 0.6931471805599453
KV_LOADS = ("auto", "gather")
# FlashInfer backend names we answer: ours, and FlashInfer's for the kernel of the same design.
BACKEND_ALIASES = {"auto": "auto", "sm90": "sm90", "sm80": "sm80", "fa3": "sm90", "fa2": "sm80"}


def _needs_plan(method):
    """Lifecycle precondition: run() before plan() is a clear error, not a crash."""
    @functools.wraps(method)
    def checked(self, *args, **kwargs):
        if self._plan is None:
            raise RuntimeError(f"{method.__name__}() cannot be called before plan() has been called "
                               f"on this BatchPrefillWithPagedKVCacheWrapper.")
        return method(self, *args, **kwargs)
    return checked


@dataclasses.dataclass(frozen=True)
class _SplitArgs:
    """FlashInfer's split-KV knobs of a plan() (kept for forward()'s re-plans): disable_split_kv
    never splits; fixed_pages > 0 (fixed_split_size) cuts every tile at fixed key positions, 0 lets
    the planner decide (schedule.split_rows)."""

    disable: bool = False
    fixed_pages: int = 0


@dataclasses.dataclass(frozen=True)
class _GraphMode:
    """use_cuda_graph=True: the caller's index buffers and the capacity every later plan() must fit
    (set by the first plan), so a run() captured once stays valid across re-plans."""

    qo_indptr_buf: arrays.Operand
    paged_kv_indptr_buf: arrays.Operand
    paged_kv_indices_buf: arrays.Operand
    paged_kv_last_page_len_buf: arrays.Operand

    @property
    def batch_size(self) -> int:
        return self.qo_indptr_buf.shape[0] - 1


class BatchPrefillWithPagedKVCacheWrapper:
    """Batch prefill attention over a paged KV cache with any strides (FlashInfer's API).

    float_workspace_buffer: a device uint8 array (CuPy, torch, DLPack), e.g. 128 MiB; plan() writes
    the batch's plan into it with one host-to-device copy, every layer's run() reads it.
    kv_layout: "NHD" ([pages, page_size, Hkv, D]) or "HND" ([pages, Hkv, page_size, D]).
    use_cuda_graph and the four *_buf buffers: FlashInfer's graph contract (capture run() once,
    replay after every later plan() of a batch of the same size; see README).
    backend: "auto" (sm90 on Hopper, sm80 elsewhere), "sm90" (alias "fa3") or "sm80" (alias "fa2").
    kv_load (keyword, ours): "auto" loads K/V pages with TMA where the page size and view allow it
    (full tiles; the short tiles of memory-bound batches always gather: variants.SHORT_TILES_GATHER),
    "gather" always uses the cp.async gather.
    fp8_mma (keyword, ours; off by default: faster, less accurate): plans of fp8 queries at head_dim
    128 on sm90 run both GEMMs on the fp8 tensor cores (e4m3 wgmma, P rounded to e4m3: up to 2^-4
    relative error in O) instead of widening Q, K and V to 16 bits.

    Example (one plan, every layer of a [pages, layers, 2, page_size, Hkv, D] pool):
        w = BatchPrefillWithPagedKVCacheWrapper(cupy.empty(128 << 20, cupy.uint8))
        w.plan(qo_indptr, kv_indptr, kv_indices, last_page_len, 32, 8, 128, 16, causal=True,
               q_data_type="bfloat16")
        for layer in range(num_layers):
            o = w.run(q[layer], (pool[:, layer, 0], pool[:, layer, 1]))
    """

    def __init__(self, float_workspace_buffer, kv_layout: str = "NHD", use_cuda_graph: bool = False,
                 qo_indptr_buf=None, paged_kv_indptr_buf=None, paged_kv_indices_buf=None,
                 paged_kv_last_page_len_buf=None, custom_mask_buf=None, mask_indptr_buf=None,
                 backend: str = "auto", jit_args=None, jit_kwargs=None, variant_owns_mask: bool = False,
                 *, kv_load: str = "auto", fp8_mma: bool = False) -> None:
        self._kv_layout = validate.check_kv_layout(kv_layout)
        if not isinstance(fp8_mma, (bool, np.bool_)):
            raise TypeError(f"fp8_mma must be a bool, got {fp8_mma!r}")
        self._fp8_mma = bool(fp8_mma)
        if backend not in BACKEND_ALIASES:
            raise ValueError(f"backend must be one of {tuple(BACKEND_ALIASES)}, got {backend!r}")
        self._kv_load = validate.check_choice(kv_load, "kv_load", KV_LOADS)
        validate.refuse("custom_mask_buf", custom_mask_buf)
        validate.refuse("mask_indptr_buf", mask_indptr_buf)
        validate.refuse("jit_args", jit_args)
        validate.refuse("jit_kwargs", jit_kwargs)
        validate.refuse("variant_owns_mask", variant_owns_mask, False)
        self._backend_request = BACKEND_ALIASES[backend]
        self._backend = self._backend_request  # "auto" is resolved for the device in plan()
        ws = arrays.wrap(float_workspace_buffer, "float_workspace_buffer")
        if ws.device is None:
            raise ValueError("float_workspace_buffer must be a CUDA device array, got a host array")
        if ws.strides != arrays._contiguous_strides(ws.shape):
            raise ValueError(f"float_workspace_buffer must be contiguous, got strides {ws.strides}")
        if ws.ptr % 16:
            raise ValueError(f"float_workspace_buffer must be 16-byte aligned, got address {ws.ptr:#x}")
        # Engines share one float workspace among their wrappers (vLLM: prefill and decode; SGLang:
        # ragged and paged) and plan them all before running any, so it only ever holds a run's
        # scratch. The plan lives in this wrapper's own device buffer (self._plan_buffer).
        self._float_workspace_buffer = float_workspace_buffer
        self._workspace = ws
        self._workspace_bytes = int(np.prod(ws.shape, dtype=np.int64)) * ws.itemsize
        self._plan_buffer = None     # CuPy uint8 array on the workspace's device
        self._plan_ptr = 0
        self._plan_bytes = 0
        self._use_cuda_graph = bool(use_cuda_graph)
        self._graph = self._graph_buffers(qo_indptr_buf, paged_kv_indptr_buf, paged_kv_indices_buf,
                                          paged_kv_last_page_len_buf) if use_cuda_graph else None
        self._capacity = None        # graph mode: planner.PlanCapacity fixed by the first plan()
        self._max_total_q = 0        # graph mode: FlashInfer's row bound, the first plan's total
        self._plan = None            # planner.Plan of the current batch (its .build: variants.Build)
        self._args = None            # validate.PlanArgs of the current batch
        self._kernels = ()           # the build's loaded kernels
        self._offsets_key = None     # the offset tables in the workspace serve this key
        self._cache_memo = (None, None, None)  # plan()'s cache views: signature, offset key, checked plan fields
        self._prepared_builds = None  # the variants.builds_of tuple the last plan() prepared
        self._device_memo = None     # (backend, arch, SM count) of the workspace's device, from the first plan()
        self._choice_memo = (None,)  # (BatchChoice, _SplitArgs, num_ctas, PartialSlots, SplitRequest) of the last plan()
        self._params = None          # launcher.PrefillParams with the plan's fields filled in
        self._maps = launcher.Sm90TensorMaps()
        self._kv_load_path = None    # "tma" or "gather": what the last run() used
        self._last_operands = None   # what self._params holds (run() refills it only on change)
        self._last_call = None       # signature of the last validated run() with given outputs
        self._scales_memo = (None, None)
        self._splits = _SplitArgs()  # the last plan()'s split-KV knobs
        self._merge = None           # split builds: the merge kernel, its launcher.MergeParams and grid
        self._merge_params = None
        self._merge_grid = 0
        self._set_attributes(False, -1, None, None)

    # ------------------------------------------------------------------------------------------
    # FlashInfer's attributes (engines read them after plan(): vLLM asserts _causal, _window_left,
    # _logits_soft_cap and _sm_scale)

    def _set_attributes(self, causal, window_left, logits_soft_cap, sm_scale) -> None:
        self._causal = bool(causal)
        self._window_left = int(window_left)
        self._logits_soft_cap = 0.0 if logits_soft_cap is None else logits_soft_cap
        self._sm_scale = sm_scale

    @property
    def is_cuda_graph_enabled(self) -> bool:
        return self._use_cuda_graph

    @property
    def backend(self) -> str:
        """"sm90" or "sm80" once planned ("auto" resolved for the device)."""
        return self._backend

    @property
    def kv_layout(self) -> str:
        return self._kv_layout

    @property
    def kernel_name(self) -> str | None:
        """The kernel build plan() chose (e.g. "prefill_sm90_hd128_bf16_sm_90a"), None before plan()."""
        return self._plan.build.name if self._plan is not None else None

    @property
    def kv_load_path(self) -> str | None:
        """"tma" or "gather": how the last run() loaded K/V (None before the first run)."""
        return self._kv_load_path

    # ------------------------------------------------------------------------------------------
    # plan

    def plan(self, qo_indptr, paged_kv_indptr, paged_kv_indices, paged_kv_last_page_len,
             num_qo_heads: int, num_kv_heads: int, head_dim_qk: int, page_size: int,
             head_dim_vo: int | None = None, custom_mask=None, packed_custom_mask=None,
             causal: bool = False, pos_encoding_mode: str = "NONE", use_fp16_qk_reduction: bool = False,
             sm_scale: float | None = None, window_left: int = -1, logits_soft_cap: float | None = None,
             rope_scale: float | None = None, rope_theta: float | None = None,
             q_data_type="float16", kv_data_type=None, o_data_type=None, non_blocking: bool = True,
             prefix_len_ptr=None, token_pos_in_items_ptr=None, token_pos_in_items_len: int = 0,
             max_item_len_ptr=None, seq_lens=None, seq_lens_q=None, block_tables=None,
             max_token_per_sequence: int | None = None, max_sequence_kv: int | None = None,
             fixed_split_size: int | None = None, disable_split_kv: bool = False,
             uniform_q_len: int | None = None, *, paged_kv_cache=None, stream=None) -> None:
        """Plan one batch (host work, once; may synchronize). Index arrays: NumPy, CuPy or torch.

        Arguments as FlashInfer's plan(). Honoured: the index arrays, head counts, head_dim_qk
        (head_dim_vo must equal it), page_size, causal, sm_scale, window_left, logits_soft_cap,
        q/kv/o data types: q float16 or bfloat16, the cache q's dtype or fp8 (kv_data_type
        torch.float8_e4m3fn / torch.float8_e5m2 or their names; run() then takes a torch fp8 cache or
        its bytes as a uint8 array, e.g. from CuPy), the output q's dtype; or fp8 queries
        (q_data_type float8_e4m3fn or float8_e5m2, a torch fp8 tensor or its bytes as uint8) on a cache of
        the same kind (kv_data_type None or q's), output o_data_type float16 or bfloat16 (None: bfloat16,
        validate.FP8_Q_DEFAULT_O_DTYPE);
        and split-KV (sm90): by default plan() splits long key ranges into pieces when the batch's
        tiles cannot fill the SMs (schedule.split_rows), their partial results in
        float_workspace_buffer, merged after the prefill kernel; disable_split_kv=True never splits;
        fixed_split_size=N (pages) cuts every tile at multiples of N * page_size keys (rounded up to
        whole key blocks) from key 0 of its request, with the kernel build fixed, so a request's
        output bits do not depend on the rest of the batch (-1 or None: automatic). The sm80 backend
        plans without splits; an fp8 cache splits and takes the sm90 short tiles like a 16-bit
        one (fp8 queries then on the widening build, not fp8_mma's). Accepted hints that do not change the result: non_blocking, max_token_per_sequence,
        max_sequence_kv, uniform_q_len (checked), rope_scale/rope_theta (RoPE is off). Everything
        else that would change the result raises NotImplementedError.
        paged_kv_cache (ours): the cache, or any layer view of the pool; its strides let plan() build
        the K/V offset tables now, on the host. Without it the first run() builds them on the device.
        """
        validate.refuse("custom_mask", custom_mask)
        validate.refuse("packed_custom_mask", packed_custom_mask)
        validate.refuse("pos_encoding_mode", pos_encoding_mode, "NONE")
        validate.refuse("use_fp16_qk_reduction", use_fp16_qk_reduction, False)
        if head_dim_vo is not None and head_dim_vo != head_dim_qk:
            raise NotImplementedError(f"head_dim_vo={head_dim_vo!r} != head_dim_qk={head_dim_qk!r} is not supported")
        for name, value in (("prefix_len_ptr", prefix_len_ptr), ("token_pos_in_items_ptr", token_pos_in_items_ptr),
                            ("max_item_len_ptr", max_item_len_ptr), ("seq_lens", seq_lens),
                            ("seq_lens_q", seq_lens_q), ("block_tables", block_tables)):
            validate.refuse(name, value)
        validate.refuse("token_pos_in_items_len", token_pos_in_items_len, 0)
        fixed = 0
        if fixed_split_size is not None and fixed_split_size != -1:
            fixed = validate.positive_int(fixed_split_size, "fixed_split_size")
        args = validate.check_plan_args(qo_indptr, paged_kv_indptr, paged_kv_indices, paged_kv_last_page_len,
                                        num_qo_heads, num_kv_heads, head_dim_qk, page_size, causal, sm_scale,
                                        window_left, logits_soft_cap, q_data_type, kv_data_type, o_data_type)
        if uniform_q_len is not None and np.any(np.diff(args.qo_indptr) != uniform_q_len):
            raise ValueError(f"uniform_q_len={uniform_q_len!r} but the requests' query lengths differ from it")
        cache = arrays.split_cache(paged_kv_cache, kv_layout=self._kv_layout) if paged_kv_cache is not None else None
        self._plan_args(args, cache, stream, _SplitArgs(bool(disable_split_kv), fixed))
        self._set_attributes(args.causal, args.window_left, logits_soft_cap, sm_scale)

    begin_forward = plan  # FlashInfer's older name

    def end_forward(self) -> None:
        """FlashInfer's older API: no effect (the plan stays valid until the next plan())."""

    def _plan_args(self, args: validate.PlanArgs, cache, stream, splits: _SplitArgs | None = None) -> None:
        """Plan validated arguments: the steps of plan() after its checks (also used by forward(),
        which keeps the last plan's split knobs)."""
        splits = self._splits if splits is None else splits
        device = self._workspace.device
        if self._device_memo is None:  # the wrapper's device, so its backend and SM count, never changes
            self._device_memo = (self._resolve_backend(device), launcher.device_arch(device), launcher.sm_count(device))
        backend, arch, sm_count = self._device_memo
        if self._graph is not None:
            self._check_graph_batch(args)
        kv_fp8 = args.kv_dtype if args.kv_dtype in variants.FP8_KV_DTYPES else None
        q_fp8 = args.q_dtype or None
        builds = variants.builds_of(backend, arch, args.head_dim, args.dtype, kv_fp8, q_fp8, self._fp8_mma)
        if builds is not self._prepared_builds:  # (builds_of is memoized: the last plan's tuple is prepared)
            launcher.prepare(builds, device)
            self._prepared_builds = builds
        # Graph mode: the first plan's build (and so its tiles and grid) for the wrapper's life.
        pinned = self._plan.build if self._graph is not None and self._plan is not None else None
        choice = variants.batch_choice(
            backend, arch, args.head_dim, args.dtype, args.page_size, args.num_qo_heads, args.num_kv_heads,
            args.window_left, args.qo_lens, args.kv_lens, has_q=args.total_q > 0, kv_load=self._kv_load,
            kv_dtype=kv_fp8, q_dtype=q_fp8, fp8_mma=self._fp8_mma, pinned=pinned,
            fixed_split=splits.fixed_pages > 0, sm_count=sm_count)
        tile = choice.tile
        # The grid, the workspace's partial-result slots and the split request follow from the choice
        # (batch_choice's memoized objects) and the split knobs alone: the last plan's, when the same.
        memo = self._choice_memo
        if memo[0] is not choice or memo[1] != splits:
            grid = choice.grid_build
            num_ctas = sm_count * (launcher.load_build(grid, device)[0].blocks_per_sm if grid else tile.ctas_per_sm)
            slots = planner.PartialSlots.for_workspace(self._workspace_bytes, tile.block_m, args.head_dim)
            split = None  # schedule.SplitRequest: pieces allowed
            if choice.may_split(splits.disable, slots.slots):
                split = schedule.SplitRequest(slots.slots, splits.fixed_pages * args.page_size)
            memo = self._choice_memo = (choice, splits, num_ctas, slots, split)
        num_ctas, slots, split = memo[2:]
        if self._graph is not None and self._capacity is None:  # FlashInfer: the first plan sets the row bound
            self._max_total_q = args.total_q
            self._capacity = planner.PlanCapacity.for_batch(
                args.batch_size, args.total_q, self._graph.paged_kv_indices_buf.shape[0], args.page_size,
                args.num_qo_heads, args.num_kv_heads, tile.block_m, slots.slots if split is not None else 0)
        # Offsets for the cache given, else for the stride set the last run() used (every layer of
        # one pool shares it; in graph mode it is the one a captured run() reads).
        if cache is not None:  # the same views as the last plan() (an engine's every step): their key as then
            sig = (cache[0][1:], cache[1][1:], args.page_size)  # the Operand fields but the array object
            if sig != self._cache_memo[0]:
                self._cache_memo = (sig, self._offset_key(cache[0], cache[1], args.page_size), None)
            key = self._cache_memo[1]
        else:
            key = self._offsets_key
        extra = {"capacity": self._capacity} if self._capacity is not None else {}
        # The build of the planned row tiles (before any split), beside the variants it chooses among.
        choose_build = functools.partial(choice.build_for, split=split, graph=self._graph is not None)
        plan = planner.make_plan(args.qo_indptr, args.paged_kv_indptr, args.paged_kv_indices,
                                 args.paged_kv_last_page_len, args.num_qo_heads, args.num_kv_heads, args.head_dim,
                                 args.page_size, causal=args.causal, window_left=args.window_left,
                                 sm_scale=args.scale, logits_soft_cap=args.logits_soft_cap, dtype=args.dtype,
                                 kv_dtype=kv_fp8, q_dtype=q_fp8,
                                 num_ctas=num_ctas, block_m=tile.block_m, offsets_key=key,
                                 l2_section_bytes=tile.l2_section_bytes, choose_build=choose_build, split=split,
                                 lengths=(args.qo_lens, args.kv_lens), max_page_index=args.max_page_index,
                                 split_build=variants.split_build, **extra)
        build = plan.build  # with pieces: the split-KV twin (same tile and key block)
        last = self._plan.build if self._plan is not None else None  # its kernels: self._kernels
        if build.split and build is not last:  # both compiled together the first time
            launcher.prepare([*build.variants, variants.merge_split_variant()], device)
        kernels = self._kernels if build is last else launcher.load_build(build, device)
        merge = launcher.merge_kernel(device) if build.split else None
        if cache is not None:
            # All checks once per view signature and the plan fields they read; then the page range alone
            # (K and V have as many pages: checked).
            fields = (plan.dtype, plan.kv_dtype, plan.page_size, plan.num_kv_heads, plan.head_dim)
            if self._cache_memo[2] != fields:
                validate.check_cache(cache[0], cache[1], plan, self._kv_layout)
                self._cache_memo = self._cache_memo[:2] + (fields,)
            else:
                validate.check_page_range(cache[0], plan)
        raw_stream = arrays.current_stream(self._workspace, stream)
        self._reserve_plan_buffer(plan.workspace_bytes)
        with launcher.device_context(device):  # the upload runs on this wrapper's GPU, whichever is current
            launcher.copy_host_to_device(self._plan_ptr, plan.image, raw_stream)
            launcher.expand_plan(plan, self._plan_ptr, plan.offsets_key, raw_stream, device)
            if self._graph is not None:
                self._fill_graph_buffers(args, raw_stream)
        self._backend, self._args, self._plan, self._kernels = backend, args, plan, kernels
        self._splits, self._merge = splits, merge
        self._offsets_key = plan.offsets_key
        ws = self._workspace.ptr
        self._params = launcher.plan_params(plan, self._plan_ptr, ws, slots if build.split else None)
        self._merge_params = launcher.merge_params(plan, self._plan_ptr, ws, slots) if build.split else None
        self._merge_grid = launcher.merge_grid(plan) if build.split else 0
        self._last_operands = None   # the params hold no run's operands yet
        self._last_call = None
        self._kv_load_path = None

    def _reserve_plan_buffer(self, nbytes: int) -> None:
        """A plan buffer of at least nbytes. It only grows, and never in graph mode after the first
        plan (a captured run() holds its address). The old buffer is freed to CuPy's pool; the next
        upload and every later run are ordered after the runs that read it on the plan's stream."""
        if nbytes <= self._plan_bytes:
            return
        if self._graph is not None and self._plan is not None:
            raise ValueError(f"cuda graph mode: this plan needs {nbytes} bytes of plan buffer but the first "
                             f"plan sized it at {self._plan_bytes}")
        import cupy

        size = max(nbytes + nbytes // 4, 1 << 20)
        with cupy.cuda.Device(self._workspace.device):
            self._plan_buffer = cupy.empty(size, dtype=cupy.uint8)
        self._plan_ptr, self._plan_bytes = int(self._plan_buffer.data.ptr), size

    def _resolve_backend(self, device: int) -> str:
        cc = launcher.compute_capability(device)
        if self._backend_request == "auto":
            return variants.auto_backend(cc)
        if self._backend_request == "sm90" and cc != variants.HOPPER_CC:
            raise ValueError(f"backend='sm90' needs a Hopper GPU (compute capability 9.0), "
                             f"cuda:{device} is {cc}; use backend='auto' or 'sm80'")
        return self._backend_request

    def _offset_key(self, k, v, page_size: int) -> planner.OffsetKey:
        """The offset key of a cache view: O(1), no device work. Whether token-unit offsets fit
        int32 is judged on the cache's page count, so the key of one pool never changes between
        batches (graph replays rely on it); run() computes the same key inline."""
        ks = arrays.cache_strides(k, self._kv_layout, page_size)
        vs = arrays.cache_strides(v, self._kv_layout, page_size)
        return planner.offset_key(ks, vs, k.shape[0] - 1, page_size)

    # ------------------------------------------------------------------------------------------
    # CUDA-graph mode

    def _graph_buffers(self, *bufs) -> _GraphMode:
        names = ("qo_indptr_buf", "paged_kv_indptr_buf", "paged_kv_indices_buf", "paged_kv_last_page_len_buf")
        ops = []
        for name, buf in zip(names, bufs):
            if buf is None:
                raise ValueError(f"{name} must be a device int32 array in CUDA graph mode (use_cuda_graph=True)")
            op = arrays.wrap(buf, name)
            if op.ndim != 1 or op.dtype != "int32" or (op.shape[0] > 1 and op.strides[0] != 1):
                raise ValueError(f"{name} must be a contiguous 1-D int32 array, got {op.dtype} shape {list(op.shape)}")
            validate.check_device(op, name, self._workspace.device, "float_workspace_buffer")
            ops.append(op)
        graph = _GraphMode(*ops)
        if graph.paged_kv_indptr_buf.shape[0] != graph.batch_size + 1:
            raise ValueError("The length of paged_kv_indptr_buf should be batch_size + 1 "
                             f"({graph.batch_size + 1}, from qo_indptr_buf), got {graph.paged_kv_indptr_buf.shape[0]}")
        if graph.paged_kv_last_page_len_buf.shape[0] != graph.batch_size:
            raise ValueError(f"The length of paged_kv_last_page_len_buf should be batch_size ({graph.batch_size}), "
                             f"got {graph.paged_kv_last_page_len_buf.shape[0]}")
        return graph

    def _check_graph_batch(self, args: validate.PlanArgs) -> None:
        """Graph mode: the batch fits what a captured run() baked in (FlashInfer's checks, plus the
        launch parameters our kernels take by value)."""
        g = self._graph
        if args.batch_size != g.batch_size:
            raise ValueError(f"The batch size should be fixed during the lifecycle of the wrapper in cuda graph "
                             f"mode: this plan has batch_size {args.batch_size}, the buffers {g.batch_size}")
        n_idx = int(args.paged_kv_indptr[-1])
        if n_idx > g.paged_kv_indices_buf.shape[0]:
            raise ValueError(f"The length of paged_kv_indices ({n_idx}) exceeds paged_kv_indices_buf "
                             f"({g.paged_kv_indices_buf.shape[0]})")
        if self._capacity is not None and args.total_q > self._max_total_q:
            raise ValueError(f"The total number of rows in qo_indptr {args.total_q} in cuda graph mode cannot "
                             f"exceed the number of rows of the first plan ({self._max_total_q})")
        old = self._args
        if old is not None:
            for field in ("num_qo_heads", "num_kv_heads", "head_dim", "page_size", "causal", "window_left",
                          "dtype", "kv_dtype", "q_dtype", "sm_scale", "logits_soft_cap"):
                if getattr(args, field) != getattr(old, field):
                    raise ValueError(f"cuda graph mode: {field} changed from {getattr(old, field)!r} to "
                                     f"{getattr(args, field)!r}; a captured run() keeps the first plan's value")

    def _fill_graph_buffers(self, args: validate.PlanArgs, stream: int) -> None:
        """FlashInfer's contract: in graph mode plan() copies the index arrays into the caller's buffers."""
        g = self._graph
        n_idx = int(args.paged_kv_indptr[-1])
        for buf, host in ((g.qo_indptr_buf, args.qo_indptr), (g.paged_kv_indptr_buf, args.paged_kv_indptr),
                          (g.paged_kv_indices_buf, args.paged_kv_indices[:n_idx]),
                          (g.paged_kv_last_page_len_buf, args.paged_kv_last_page_len)):
            launcher.copy_host_to_device(buf.ptr, np.ascontiguousarray(host, dtype=np.int32), stream)

    # ------------------------------------------------------------------------------------------
    # run

    @_needs_plan
    def run(self, q, paged_kv_cache, *args, q_scale=None, k_scale=None, v_scale=None, out=None, lse=None,
            return_lse: bool = False, lse_base: str = "log2", lse_layout: str = "NH", enable_pdl=None,
            window_left: int | None = None, sinks=None, kv_cache_sf=None,
            skip_softmax_threshold_scale_factor=None, use_fp16_softmax=None, uses_spcompress=None,
            stream=None):
        """Attention for one layer: o [total_q, num_qo_heads, head_dim] in q's array type, or
        (o, lse) with lse float32 [total_q, num_qo_heads] ("NH"; "HN": transposed), the log-sum-exp of
        the scaled logits in base 2 (lse_base="log2") or e ("ln").

        q_scale and k_scale multiply the logit scale, v_scale the output (in the kernel's epilogue):
        Python floats, or with an fp8 cache float32 device arrays [num_kv_heads] (per KV head; read
        by the kernel, so they may change between graph replays); q_scale also [num_qo_heads] per
        query head with fp8 queries (FlashInfer's convention; each row's fp32 scores take their
        head's factor). fp8 plans also take the three scales positionally, as
        FlashInfer's fp8 call does: run(q, paged_kv_cache, q_scale, k_scale, v_scale). fp8 queries
        (plan()'s q_data_type float8_e4m3fn / float8_e5m2): q a torch fp8 tensor or its bytes as uint8,
        o in plan()'s o_data_type.
        No host-device sync; no allocation when out (and lse) are given: CUDA-graph capturable.
        enable_pdl is a hint. stream (ours): a stream object or raw handle; default: q's framework's
        current stream. One wrapper's runs must be ordered (one stream, or events), as FlashInfer's
        workspace requires: the sm90 kernel claims its tiles from a counter in the plan.
        """
        if args and len(args) == 3 and self._plan is not None and (self._plan.kv_dtype or self._plan.q_dtype):
            q_scale, k_scale, v_scale = self._positional_scales(args, q_scale, k_scale, v_scale)
            args = ()
        if (args or sinks is not None or kv_cache_sf is not None or skip_softmax_threshold_scale_factor is not None
                or use_fp16_softmax or uses_spcompress or (window_left is not None and window_left != self._window_left)):
            self._refuse_run_options(args, sinks, kv_cache_sf, skip_softmax_threshold_scale_factor, use_fp16_softmax,
                                     uses_spcompress, window_left)
        # A call with the same operands (addresses, shapes, strides, dtypes; per-head scale arrays
        # likewise) and options as the last validated one only launches again.
        sig = arrays.torch_signature(q, paged_kv_cache, out, lse, (q_scale, k_scale, v_scale))
        if sig is not None:
            sig = (sig, return_lse, lse_base, lse_layout, self._sm_scale, self._logits_soft_cap)
            if sig == self._last_call:
                self._launch(arrays.launch_stream(q, stream))
                return (out, lse) if return_lse else out
        if lse_base != "log2":
            validate.check_choice(lse_base, "lse_base", validate.LSE_BASES)
        if lse_layout != "NH":
            validate.check_choice(lse_layout, "lse_layout", validate.LSE_LAYOUTS)
        plan = self._plan
        if plan.kv_dtype:  # fp8 cache: k_scale / v_scale per tensor or per KV head
            k_tensor, k_heads = validate.check_head_scales(k_scale, "k_scale", plan, self._workspace.device)
            o_scale, v_heads = validate.check_head_scales(v_scale, "v_scale", plan, self._workspace.device)
            q_tensor, q_kv_heads, q_qo_heads = validate.check_q_scale(q_scale, plan, self._workspace.device)
            logit_scale = q_tensor * k_tensor
            head_scales = tuple(x.ptr if x else 0 for x in (k_heads, v_heads, q_kv_heads, q_qo_heads))
        else:
            logit_scale = validate.check_scale(q_scale, "q_scale") * validate.check_scale(k_scale, "k_scale")
            o_scale = validate.check_scale(v_scale, "v_scale")
            head_scales = (0, 0, 0, 0)

        raw_stream = arrays.launch_stream(q, stream)
        qo = arrays.wrap(q, "q", raw_stream)
        validate.check_q(qo, plan)
        k, v = arrays.split_cache(paged_kv_cache, stream=raw_stream, kv_layout=self._kv_layout)
        validate.check_cache(k, v, plan, self._kv_layout)
        validate.check_device(k, "paged_kv_cache", qo.device)
        validate.check_device(qo, "q", self._workspace.device, "float_workspace_buffer (the plan)")
        oo = lo = None
        if out is not None:
            oo = arrays.wrap(out, "out", raw_stream)
            validate.check_out(oo, qo, plan.dtype)
        if lse is not None:
            lo = arrays.wrap(lse, "lse", raw_stream)
            validate.check_lse(lo, qo, lse_layout)
        out_raw = lse_raw = None
        if oo is None:
            out_raw = arrays.empty_raw(qo, qo.shape, plan.dtype)
            oo = arrays.wrap(out_raw, "out")
        if lo is None and return_lse:
            shape = qo.shape[:2] if lse_layout == "NH" else qo.shape[1::-1]
            lse_raw = arrays.empty_raw(qo, shape, "float32")
            lo = arrays.wrap(lse_raw, "lse")

        ks = arrays.cache_strides(k, self._kv_layout, plan.page_size)
        vs = arrays.cache_strides(v, self._kv_layout, plan.page_size)
        key = planner.offset_key(ks, vs, k.shape[0] - 1, plan.page_size)
        if key != self._offsets_key:
            launcher.expand_plan(plan, self._plan_ptr, key, raw_stream, self._workspace.device, offsets_only=True)
            self._offsets_key = key
        p = self._params
        scales = self._scales(logit_scale, o_scale, lse_base)
        # The params struct still holds the last run's operands: refill it only when they changed.
        operands = (qo.ptr, qo.shape[0], qo.strides, k.ptr, v.ptr, k.shape[0], v.shape[0], ks, vs, oo.ptr,
                    oo.strides, None if lo is None else (lo.ptr, lo.strides), lse_layout, key, scales, head_scales)
        if operands != self._last_operands:
            launcher.set_run_params(p, plan, self._plan_ptr, key, qo, ks, vs, k, v, oo, lo, lse_layout, scales,
                                    head_scales)
            if plan.build.backend == "sm90":
                kv_tma = launcher.set_tensor_maps(self._maps, p, plan, plan.build, qo, k, v, ks, vs)
                self._kv_load_path = "tma" if kv_tma else "gather"
            else:
                self._kv_load_path = "gather"
            if self._merge_params is not None:  # per-tensor v_scale (per-head factors: in the pieces)
                launcher.set_merge_run_params(self._merge_params, oo, lo, lse_layout, scales[3], scales[4])
            self._last_operands = operands
        self._launch(raw_stream)
        # Only calls whose outputs were given repeat without allocation: those may skip the checks.
        self._last_call = sig if out_raw is None and lse_raw is None else None
        o_ret = out if out_raw is None else arrays.as_callers_kind(qo, out_raw, plan.dtype)
        if not return_lse:
            return o_ret
        return o_ret, (lse if lse_raw is None else arrays.as_callers_kind(qo, lse_raw, "float32"))

    def _launch(self, stream: int) -> None:
        """The prefill launch with the params and tensor maps the last full run() filled in, then
        the merge of split tiles' pieces (same stream)."""
        plan = self._plan
        if plan.num_tiles > 0 or self._graph is not None:  # in graph mode a captured launch must exist
            if plan.build.backend == "sm90":
                self._kernels[0].launch(plan.num_ctas, self._params, stream, self._maps)
            else:
                self._kernels[0 if self._offsets_key.mode == "units" else 1].launch(plan.num_ctas, self._params, stream)
        if self._merge is not None and (plan.num_merges or self._graph is not None):
            self._merge.launch(self._merge_grid, self._merge_params, stream)

    @staticmethod
    def _positional_scales(args, q_scale, k_scale, v_scale):
        """FlashInfer's fp8 call run(q, paged_kv_cache, scale_q, scale_k, scale_v): three positional
        scales (per-head arrays or numbers) are q_scale, k_scale and v_scale; each may be given once."""
        for name, given in (("q_scale", q_scale), ("k_scale", k_scale), ("v_scale", v_scale)):
            if given is not None:
                raise TypeError(f"run(): {name} given both positionally (the 3 scales after paged_kv_cache) "
                                f"and by keyword")
        return args

    def _refuse_run_options(self, args, sinks, kv_cache_sf, skip_softmax_threshold_scale_factor, use_fp16_softmax,
                            uses_spcompress, window_left) -> None:
        """run()'s FlashInfer options that we do not implement: NotImplementedError naming each."""
        if args:
            raise NotImplementedError(f"run(): {len(args)} extra positional argument(s) are not supported (fp8 "
                                      f"plans take exactly 3: q_scale, k_scale, v_scale; custom kernels' "
                                      f"arguments are not implemented)")
        for name, value in (("sinks", sinks), ("kv_cache_sf", kv_cache_sf),
                            ("skip_softmax_threshold_scale_factor", skip_softmax_threshold_scale_factor),
                            ("use_fp16_softmax", use_fp16_softmax or None), ("uses_spcompress", uses_spcompress or None)):
            validate.refuse(name, value)
        if window_left is not None and window_left != self._window_left:
            raise NotImplementedError(f"run(window_left={window_left!r}) differs from the planned "
                                      f"window_left={self._window_left}; re-plan instead")

    def _scales(self, logit_scale: float, o_scale: float, lse_base: str) -> tuple[float, float, float, float, float]:
        """(scale_log2, soft_cap, cap_scale, v_scale, lse_scale) for the kernels from the wrapper's
        sm_scale / logits_soft_cap (plan() or forward()) and the run's q/k/v scales."""
        memo = (logit_scale, o_scale, lse_base, self._sm_scale, self._logits_soft_cap)
        if memo == self._scales_memo[0]:
            return self._scales_memo[1]
        out = self._compute_scales(logit_scale, o_scale, lse_base)
        self._scales_memo = (memo, out)
        return out

    def _compute_scales(self, logit_scale: float, o_scale: float, lse_base: str) -> tuple:
        sm_scale = self._sm_scale if self._sm_scale is not None else 1.0 / math.sqrt(self._plan.head_dim)
        sm_scale *= logit_scale
        cap = float(self._logits_soft_cap or 0.0)
        lse_scale = 1.0 if lse_base == "log2" else LN2
        if cap > 0:
            return LOG2E, cap, sm_scale / cap, o_scale, lse_scale
        return sm_scale * LOG2E, 0.0, 0.0, o_scale, lse_scale

    run_return_lse = functools.partialmethod(run, return_lse=True)

    @_needs_plan
    def forward(self, q, paged_kv_cache, causal: bool = False, pos_encoding_mode: str = "NONE",
                use_fp16_qk_reduction: bool = False, k_scale=None, v_scale=None, window_left: int = -1,
                logits_soft_cap: float | None = None, sm_scale: float | None = None,
                rope_scale: float | None = None, rope_theta: float | None = None):
        """FlashInfer's older API: sets causal / window_left / logits_soft_cap / sm_scale for this
        and later runs (as FlashInfer does), then run(). A causal or window_left other than the
        plan's re-plans the batch once (not allowed in CUDA-graph mode)."""
        return self._forward(q, paged_kv_cache, causal, pos_encoding_mode, use_fp16_qk_reduction, k_scale,
                             v_scale, window_left, logits_soft_cap, sm_scale, False)

    @_needs_plan
    def forward_return_lse(self, q, paged_kv_cache, causal: bool = False, pos_encoding_mode: str = "NONE",
                           use_fp16_qk_reduction: bool = False, k_scale=None, v_scale=None,
                           window_left: int = -1, logits_soft_cap: float | None = None,
                           sm_scale: float | None = None, rope_scale: float | None = None,
                           rope_theta: float | None = None):
        """forward() returning (o, lse)."""
        return self._forward(q, paged_kv_cache, causal, pos_encoding_mode, use_fp16_qk_reduction, k_scale,
                             v_scale, window_left, logits_soft_cap, sm_scale, True)

    def _forward(self, q, paged_kv_cache, causal, pos_encoding_mode, use_fp16_qk_reduction, k_scale, v_scale,
                 window_left, logits_soft_cap, sm_scale, return_lse):
        validate.refuse("pos_encoding_mode", pos_encoding_mode, "NONE")
        validate.refuse("use_fp16_qk_reduction", use_fp16_qk_reduction, False)
        validate.optional_positive(sm_scale, "sm_scale")
        validate.optional_positive(logits_soft_cap, "logits_soft_cap", allow_zero=True)
        a = self._args
        if (causal, window_left) != (a.causal, a.window_left):
            if self._graph is not None:
                raise ValueError(f"forward(causal={causal!r}, window_left={window_left!r}) differs from the "
                                 f"plan's ({a.causal}, {a.window_left}); in cuda graph mode re-plan instead")
            self._plan_args(validate.check_plan_args(
                a.qo_indptr, a.paged_kv_indptr, a.paged_kv_indices, a.paged_kv_last_page_len, a.num_qo_heads,
                a.num_kv_heads, a.head_dim, a.page_size, causal, a.sm_scale, window_left, a.logits_soft_cap,
                a.q_dtype or a.dtype, a.kv_dtype, a.dtype), None, None)
        self._set_attributes(causal, window_left, logits_soft_cap, sm_scale)
        return self.run(q, paged_kv_cache, k_scale=k_scale, v_scale=v_scale, return_lse=return_lse)


_functional: dict = {}


def _functional_wrapper(device: int, kv_layout: str, backend: str) -> BatchPrefillWithPagedKVCacheWrapper:
    """One wrapper per (device, layout, backend), reused by every call."""
    import cupy

    key = (device, kv_layout, backend)
    w = _functional.get(key)
    if w is None:
        with cupy.cuda.Device(device):
            # The float workspace holds split pieces' partial results only (the plan has its own
            # buffer): 32 MiB is 508 slots at head_dim 128 (W8 uses 128).
            w = BatchPrefillWithPagedKVCacheWrapper(cupy.empty(32 << 20, dtype=cupy.uint8), kv_layout,
                                                    backend=backend)
        _functional[key] = w
    return w


def paged_prefill(q, paged_kv_cache, qo_indptr, paged_kv_indptr, paged_kv_indices, paged_kv_last_page_len,
                  *, causal: bool = False, kv_layout: str = "NHD", sm_scale: float | None = None,
                  window_left: int = -1, logits_soft_cap: float | None = None, return_lse: bool = False,
                  backend: str = "auto", out=None, lse=None, stream=None, kv_data_type=None,
                  q_scale=None, k_scale=None, v_scale=None, q_data_type=None, o_data_type=None):
    """One-call prefill: plan + run. Head counts, head_dim, page_size and dtype come from the
    arrays (kv_data_type: needed for an fp8 cache given as uint8 bytes; q_data_type likewise for fp8
    queries given as uint8 bytes; o_data_type: the output of fp8 queries, None: bfloat16; scales as
    in run()). For many layers of one batch use the wrapper (plan once, run per layer).

    Example: o = paged_prefill(q, (k_cache, v_cache), qo_indptr, kv_indptr, kv_indices,
                               last_page_len, causal=True)
    """
    qo = arrays.wrap(q, "q")
    if qo.ndim != 3:
        raise ValueError(f"q must be 3-D [total_q, num_qo_heads, head_dim], got shape {list(qo.shape)}")
    validate.check_kv_layout(kv_layout)
    k, _ = arrays.split_cache(paged_kv_cache, kv_layout=kv_layout)
    if k.ndim != 4:
        raise ValueError(f"paged_kv_cache K must be 4-D, got shape {list(k.shape)}")
    page_size, num_kv_heads = (k.shape[1], k.shape[2]) if kv_layout == "NHD" else (k.shape[2], k.shape[1])
    if qo.device is None:
        raise ValueError("q must be on a CUDA device, got a host array")
    if kv_data_type is None and k.dtype == "uint8":
        raise TypeError("paged_kv_cache is uint8: pass kv_data_type='float8_e4m3fn' or 'float8_e5m2' for an fp8 "
                        "cache given as bytes")
    if q_data_type is None and qo.dtype == "uint8":
        raise TypeError("q is uint8: pass q_data_type='float8_e4m3fn' or 'float8_e5m2' for fp8 queries given as bytes")
    w = _functional_wrapper(qo.device, kv_layout, backend)
    w.plan(qo_indptr, paged_kv_indptr, paged_kv_indices, paged_kv_last_page_len, qo.shape[1], num_kv_heads,
           qo.shape[2], page_size, causal=causal, sm_scale=sm_scale, window_left=window_left,
           logits_soft_cap=logits_soft_cap, q_data_type=qo.dtype if q_data_type is None else q_data_type,
           kv_data_type=k.dtype if kv_data_type is None else kv_data_type, o_data_type=o_data_type,
           paged_kv_cache=paged_kv_cache, stream=stream)
    return w.run(q, paged_kv_cache, out=out, lse=lse, return_lse=return_lse, stream=stream, q_scale=q_scale,
                 k_scale=k_scale, v_scale=v_scale)
