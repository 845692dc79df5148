"""Every user-facing check raises ValueError/TypeError naming the argument, BEFORE anything runs.

CPU part (CI): plan() arguments through validate.check_plan_args (the first thing plan() does),
run() arguments given as NumPy arrays through validate.check_q / check_cache / check_out /
check_lse (shape, dtype and stride rules are checked before the device), and the public entry
points that fail before touching a device. GPU part: the same mistakes through the public API,
with a poisoned `out` that must stay NaN and a KV pool that must stay bit-identical.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

# --------------------------------------------------------------------------------------------
# A small valid batch: 2 requests, qo 5 and 9 tokens on 20 and 9 keys, page_size 4.

PAGE_SIZE = 4
HQO, HKV, D = 4, 2, 64
QO_LENS = (5, 9)
KV_LENS = (20, 9)
NUM_PAGES = 12  # pool pages; the batch uses 5 + 3 = 8 of them, up to index 10


def _base_plan_args() -> dict:
    qo_indptr = np.array([0, 5, 14], dtype=np.int32)
    paged_kv_indptr = np.array([0, 5, 8], dtype=np.int32)
    paged_kv_indices = np.array([10, 3, 7, 0, 5, 9, 2, 4], dtype=np.int32)
    paged_kv_last_page_len = np.array([4, 1], dtype=np.int32)
    return dict(qo_indptr=qo_indptr, paged_kv_indptr=paged_kv_indptr,
                paged_kv_indices=paged_kv_indices, paged_kv_last_page_len=paged_kv_last_page_len,
                num_qo_heads=HQO, num_kv_heads=HKV, head_dim=D, page_size=PAGE_SIZE, causal=True,
                sm_scale=None, window_left=-1, logits_soft_cap=None, q_data_type="float16",
                kv_data_type=None)


TOTAL_Q = sum(QO_LENS)
MAX_PAGE_INDEX = 10


def _with(**changes):
    def build():
        args = _base_plan_args()
        for key, value in changes.items():
            args[key] = value(args) if callable(value) else value
        return args
    return build


def _i32(*values):
    return np.array(values, dtype=np.int32)


# (id, builder of plan kwargs, exception types, argument-name regex, rule regex)
PLAN_CASES = [
    ("heads_not_divisible", _with(num_qo_heads=6, num_kv_heads=4), (ValueError,),
     r"num_qo_heads|num_kv_heads", r"multiple|divisib"),
    ("num_kv_heads_zero", _with(num_kv_heads=0), (ValueError,), r"num_kv_heads", r"positive|>"),
    ("head_dim_unsupported", _with(head_dim=96), (ValueError,), r"head_dim", r"64|128|256"),
    ("page_size_zero", _with(page_size=0), (ValueError,), r"page_size", r"positive|>"),
    ("indptr_lengths_disagree", _with(paged_kv_indptr=_i32(0, 5, 8, 8)), (ValueError,),
     r"paged_kv_indptr|qo_indptr", r"entries|length|batch"),
    ("last_page_len_length", _with(paged_kv_last_page_len=_i32(4, 1, 1)), (ValueError,),
     r"paged_kv_last_page_len", r"entries|length|batch"),
    ("qo_indptr_not_monotonic", _with(qo_indptr=_i32(0, 9, 5)), (ValueError,), r"qo_indptr",
     r"decreas|monoton"),
    ("kv_indptr_not_monotonic", _with(paged_kv_indptr=_i32(0, 5, 4)), (ValueError,),
     r"paged_kv_indptr", r"decreas|monoton"),
    ("qo_indptr_not_from_zero", _with(qo_indptr=_i32(2, 5, 14)), (ValueError,), r"qo_indptr",
     r"\b0\b"),
    ("last_page_len_zero", _with(paged_kv_last_page_len=_i32(0, 1)), (ValueError,),
     r"paged_kv_last_page_len", r"page_size|\[1"),
    ("last_page_len_too_big", _with(paged_kv_last_page_len=_i32(4, PAGE_SIZE + 1)), (ValueError,),
     r"paged_kv_last_page_len", r"page_size|\[1"),
    ("causal_qo_longer_than_kv", _with(qo_indptr=_i32(0, 5, 15)), (ValueError,), r"causal",
     r"qo_len|kv_len"),
    ("negative_page_index", _with(paged_kv_indices=_i32(10, 3, 7, 0, -5, 9, 2, 4)), (ValueError,),
     r"paged_kv_indices", r">= ?0|negative|range"),
    ("too_few_page_indices", _with(paged_kv_indices=_i32(10, 3, 7)), (ValueError,),
     r"paged_kv_indices", r"entries|paged_kv_indptr|length"),
    ("index_dtype_float", _with(qo_indptr=np.array([0.0, 5.0, 14.0])), (TypeError, ValueError),
     r"qo_indptr", r"int"),
    ("index_2d", _with(paged_kv_indices=lambda a: a["paged_kv_indices"].reshape(2, 4)),
     (ValueError, TypeError), r"paged_kv_indices", r"1-D|dim|shape"),
    ("q_data_type_float32", _with(q_data_type="float32"), (ValueError, TypeError),
     r"q_data_type", r"float16|bfloat16"),
    ("kv_data_type_mismatch", _with(kv_data_type="bfloat16"), (ValueError, TypeError),
     r"kv_data_type", r"q_data_type|equal|mix"),
    ("window_left_below_minus_one", _with(window_left=-2), (ValueError,), r"window_left", r"-1"),
    ("soft_cap_negative", _with(logits_soft_cap=-1.0), (ValueError,), r"logits_soft_cap",
     r"negative|>= ?0|positive"),
    ("sm_scale_nonpositive", _with(sm_scale=0.0), (ValueError,), r"sm_scale", r"positive|> ?0"),
]

# Valid edge cases that must NOT raise.
PLAN_OK = [
    ("empty_request_ignores_last_page_len",
     _with(paged_kv_indptr=_i32(0, 5, 5), paged_kv_last_page_len=_i32(4, 0), causal=False)),
    ("non_causal_qo_longer_than_kv", _with(qo_indptr=_i32(0, 30, 39), causal=False)),
    ("int64_and_list_indices", _with(qo_indptr=[0, 5, 14],
                                     paged_kv_indices=lambda a: a["paged_kv_indices"].astype(np.int64))),
    ("zero_length_query", _with(qo_indptr=_i32(0, 0, 9))),
]


def _assert_names(excinfo, name_re, rule_re):
    msg = str(excinfo.value)
    assert re.search(name_re, msg), f"message does not name the argument ({name_re}): {msg!r}"
    assert re.search(rule_re, msg, re.IGNORECASE), f"message does not state the rule ({rule_re}): {msg!r}"


@pytest.mark.parametrize("case", PLAN_CASES, ids=[c[0] for c in PLAN_CASES])
def test_plan_args_rejected_cpu(case):
    from nvrtc_attn import validate

    _, build, exc, name_re, rule_re = case
    with pytest.raises(exc) as ei:
        validate.check_plan_args(**build())
    _assert_names(ei, name_re, rule_re)


@pytest.mark.parametrize("case", PLAN_OK, ids=[c[0] for c in PLAN_OK])
def test_plan_args_accepted_cpu(case):
    from nvrtc_attn import validate

    validate.check_plan_args(**case[1]())


# --------------------------------------------------------------------------------------------
# run() arguments as NumPy arrays, against a plan built on the CPU


def _np_aligned(shape, dtype, offset_elems=0, align=256):
    """A C-contiguous NumPy array whose data starts `offset_elems` past a 256-byte boundary."""
    dtype = np.dtype(dtype)
    n = int(np.prod(shape))
    raw = np.empty((n + offset_elems) * dtype.itemsize + align, dtype=np.uint8)
    start = (-raw.ctypes.data) % align
    arr = raw[start : start + (n + offset_elems) * dtype.itemsize].view(dtype)[offset_elems:]
    arr = arr.reshape(shape)
    arr[...] = np.random.default_rng(n).standard_normal(shape).astype(dtype)
    return arr


def _cpu_plan():
    from nvrtc_attn import planner, validate

    a = validate.check_plan_args(**_base_plan_args())
    return planner.make_plan(
        a.qo_indptr, a.paged_kv_indptr, a.paged_kv_indices, a.paged_kv_last_page_len,
        a.num_qo_heads, a.num_kv_heads, a.head_dim, a.page_size, causal=a.causal,
        window_left=a.window_left, dtype=a.dtype, num_ctas=4, block_m=64)


def _np_pool(layout="NHD", dtype="float16", num_pages=NUM_PAGES, pad_token=0):
    """[pages, layers=2, 2, page_size, Hkv, D] pool (HND: [.., Hkv, page_size, D]) -> (k, v) of
    layer 1; pad_token adds elements to the token stride (NHD only)."""
    if layout == "NHD":
        buf = _np_aligned((num_pages, 2, 2, PAGE_SIZE, HKV * D + pad_token), dtype)
        pool = buf[..., : HKV * D].reshape(num_pages, 2, 2, PAGE_SIZE, HKV, D)
    else:
        pool = _np_aligned((num_pages, 2, 2, HKV, PAGE_SIZE, D), dtype)
    return pool[:, 1, 0], pool[:, 1, 1]


def _flat_misaligned(shape, dtype="float16"):
    """Contiguous data starting 2 bytes past an aligned address."""
    return _np_aligned(shape, dtype, offset_elems=1)


def _q(dtype="float16"):
    return _np_aligned((TOTAL_Q, HQO, D), dtype)


RUN_Q_CASES = [  # (id, builder of q, exception types, rule regex)
    ("q_float32", lambda: _q("float32"), (TypeError,), r"float16|dtype"),
    ("q_wrong_heads", lambda: _np_aligned((TOTAL_Q, HQO + 1, D), "float16"), (ValueError,), r"shape"),
    ("q_wrong_tokens", lambda: _np_aligned((TOTAL_Q - 1, HQO, D), "float16"), (ValueError,), r"shape"),
    ("q_head_dim_stride_2", lambda: _np_aligned((TOTAL_Q, HQO, 2 * D), "float16")[..., ::2],
     (ValueError,), r"stride"),
    ("q_misaligned_pointer", lambda: _flat_misaligned((TOTAL_Q, HQO, D)), (ValueError,),
     r"align"),
    ("q_misaligned_token_stride",
     lambda: _np_aligned((TOTAL_Q, HQO * D + 1), "float16")[:, : HQO * D].reshape(TOTAL_Q, HQO, D),
     (ValueError,), r"stride|multiple"),
]


@pytest.mark.parametrize("case", RUN_Q_CASES, ids=[c[0] for c in RUN_Q_CASES])
def test_run_q_rejected_cpu(case):
    from nvrtc_attn import arrays, validate

    _, build, exc, rule_re = case
    with pytest.raises(exc) as ei:
        validate.check_q(arrays.wrap(build(), "q"), _cpu_plan())
    _assert_names(ei, r"\bq\b", rule_re)


def _cache_cases():
    def misaligned_ptr():
        k, v = _np_pool()
        flat = _flat_misaligned((NUM_PAGES, PAGE_SIZE, HKV, D))
        return flat, v

    def five_d_bad():
        return _np_aligned((NUM_PAGES, 3, PAGE_SIZE, HKV, D), "float16")

    return [  # (id, builder of paged_kv_cache, exception types, name regex, rule regex)
        ("kv_float32", lambda: _np_pool(dtype="float32"), (TypeError,), r"paged_kv_cache",
         r"dtype|float16"),
        ("kv_wrong_page_size",
         lambda: tuple(x[:, : PAGE_SIZE - 1] for x in _np_pool()), (ValueError,),
         r"paged_kv_cache", r"page_size|shape|must be"),
        ("kv_wrong_heads", lambda: tuple(x[:, :, :1] for x in _np_pool()), (ValueError,),
         r"paged_kv_cache", r"num_kv_heads|shape|must be"),
        ("kv_head_dim_stride_2",
         lambda: tuple(_np_aligned((NUM_PAGES, PAGE_SIZE, HKV, 2 * D), "float16")[..., ::2]
                       for _ in range(2)), (ValueError,),
         r"paged_kv_cache", r"stride"),
        ("kv_misaligned_pointer", misaligned_ptr, (ValueError,), r"paged_kv_cache", r"align"),
        ("kv_misaligned_token_stride", lambda: _np_pool(pad_token=1), (ValueError,),
         r"paged_kv_cache", r"stride|multiple"),
        ("kv_page_index_out_of_range",
         lambda: tuple(x[:MAX_PAGE_INDEX] for x in _np_pool()), (ValueError,),
         r"paged_kv_indices|paged_kv_cache", r"page index|valid range"),
        ("kv_k_v_page_counts_differ", lambda: (_np_pool()[0], _np_pool()[1][: MAX_PAGE_INDEX + 1]),
         (ValueError,), r"paged_kv_cache", r"page"),
        ("kv_5d_dim1_not_2", five_d_bad, (ValueError,), r"paged_kv_cache", r"5-D|dim 1|\(k, v\)"),
        ("kv_tuple_of_three", lambda: _np_pool() + (_np_pool()[0],), (ValueError,),
         r"paged_kv_cache", r"\(k_cache, v_cache\)|\(k, v\)|tuple"),
    ]


CACHE_CASES = _cache_cases()


@pytest.mark.parametrize("case", CACHE_CASES, ids=[c[0] for c in CACHE_CASES])
def test_run_cache_rejected_cpu(case):
    from nvrtc_attn import arrays, validate

    _, build, exc, name_re, rule_re = case
    with pytest.raises(exc) as ei:
        k, v = arrays.split_cache(build())
        validate.check_cache(k, v, _cpu_plan(), "NHD")
    _assert_names(ei, name_re, rule_re)


OUT_CASES = [  # (id, argument, builder, exception types, rule regex)
    ("out_float32", "out", lambda: _q("float32"), (TypeError,), r"dtype|float16"),
    ("out_wrong_shape", "out", lambda: _np_aligned((TOTAL_Q, HQO, D // 2), "float16"),
     (ValueError,), r"shape"),
    ("out_head_dim_stride_2", "out", lambda: _np_aligned((TOTAL_Q, HQO, 2 * D), "float16")[..., ::2],
     (ValueError,), r"stride"),
    ("lse_float16", "lse", lambda: _np_aligned((TOTAL_Q, HQO), "float16"), (TypeError,),
     r"float32|dtype"),
    ("lse_wrong_shape", "lse", lambda: _np_aligned((TOTAL_Q, HQO + 1), "float32"), (ValueError,),
     r"shape"),
]


@pytest.mark.parametrize("case", OUT_CASES, ids=[c[0] for c in OUT_CASES])
def test_run_out_lse_rejected_cpu(case):
    from nvrtc_attn import arrays, validate

    _, name, build, exc, rule_re = case
    q = arrays.wrap(_q(), "q")
    check = validate.check_out if name == "out" else validate.check_lse
    with pytest.raises(exc) as ei:
        check(arrays.wrap(build(), name), q)
    _assert_names(ei, rf"\b{name}\b", rule_re)


def test_valid_host_arrays_rejected_as_not_on_device_cpu():
    """Shapes, dtypes and strides pass; then the host array itself is refused, naming it."""
    from nvrtc_attn import arrays, validate

    plan = _cpu_plan()
    with pytest.raises(ValueError) as ei:
        validate.check_q(arrays.wrap(_q(), "q"), plan)
    _assert_names(ei, r"\bq\b", r"device|CUDA")
    k, v = arrays.split_cache(_np_pool())
    with pytest.raises(ValueError) as ei:
        validate.check_cache(k, v, plan, "NHD")
    _assert_names(ei, r"paged_kv_cache", r"device|CUDA")


def test_hnd_pool_views_pass_layout_checks_cpu():
    """HND pool views with the right shape fail only for being on the host."""
    from nvrtc_attn import arrays, validate

    k, v = arrays.split_cache(_np_pool("HND"))
    with pytest.raises(ValueError, match=r"device|CUDA"):
        validate.check_cache(k, v, _cpu_plan(), "HND")


def test_not_an_array_is_type_error_cpu():
    from nvrtc_attn import arrays

    with pytest.raises(TypeError, match=r"\bq\b"):
        arrays.wrap([[1.0]], "q")


# Public entry points that fail before any device work (CPU).


def test_functional_api_rejects_2d_q_cpu():
    import nvrtc_attn

    a = _base_plan_args()
    q = _np_aligned((TOTAL_Q, HQO * D), "float16")
    with pytest.raises(ValueError, match=r"\bq\b"):
        nvrtc_attn.paged_prefill(q, _np_pool(), a["qo_indptr"], a["paged_kv_indptr"],
                                 a["paged_kv_indices"], a["paged_kv_last_page_len"], causal=True)


def test_functional_api_rejects_host_q_cpu():
    import nvrtc_attn

    a = _base_plan_args()
    with pytest.raises(ValueError) as ei:
        nvrtc_attn.paged_prefill(_q(), _np_pool(), a["qo_indptr"], a["paged_kv_indptr"],
                                 a["paged_kv_indices"], a["paged_kv_last_page_len"], causal=True)
    _assert_names(ei, r"\bq\b", r"device|CUDA")


def test_functional_api_rejects_bad_layout_cpu():
    import nvrtc_attn

    a = _base_plan_args()
    with pytest.raises(ValueError, match="kv_layout"):
        nvrtc_attn.paged_prefill(_q(), _np_pool(), a["qo_indptr"], a["paged_kv_indptr"],
                                 a["paged_kv_indices"], a["paged_kv_last_page_len"], kv_layout="NDH")


# --------------------------------------------------------------------------------------------
# GPU: the same mistakes through the public API; nothing is written, the KV pool is untouched.


def _gpu_setup(kit, causal=True):
    """A planned wrapper plus valid CuPy q, pool views, poisoned out/lse and pool snapshot."""
    import cupy

    import nvrtc_attn

    a = _base_plan_args()
    a["causal"] = causal
    pool = kit.make_pool("cupy", "float16", NUM_PAGES, PAGE_SIZE, HKV, D, num_layers=2, seed=7)
    q = kit.randn("cupy", (TOTAL_Q, HQO, D), "float16", 8)
    out = kit.poison(cupy.empty((TOTAL_Q, HQO, D), dtype=cupy.float16))
    lse = kit.poison(cupy.empty((TOTAL_Q, HQO), dtype=cupy.float32))
    w = nvrtc_attn.BatchPrefillWithPagedKVCacheWrapper(kit.workspace("cupy"), kv_layout="NHD",
                                                       backend="sm80")
    return w, a, pool, q, out, lse


def _plan_positional(a):
    keys = ("qo_indptr", "paged_kv_indptr", "paged_kv_indices", "paged_kv_last_page_len",
            "num_qo_heads", "num_kv_heads", "head_dim", "page_size")
    rest = {k: v for k, v in a.items() if k not in keys}
    return [a[k] for k in keys], rest


@pytest.mark.gpu
@pytest.mark.parametrize("case", PLAN_CASES, ids=[c[0] for c in PLAN_CASES])
def test_plan_args_rejected_gpu(kit, case):
    w, _, pool, q, out, lse = _gpu_setup(kit)
    _, build, exc, name_re, rule_re = case
    args, kwargs = _plan_positional(build())
    with pytest.raises(exc) as ei:
        w.plan(*args, **kwargs)
    _assert_names(ei, name_re, rule_re)
    with pytest.raises(RuntimeError, match=r"plan\(\)"):  # a failed plan() leaves no plan
        w.run(q, pool.layer(1), out=out)
    assert bool(np.isnan(out.get()).all())


def _bad_run_inputs(kit, pool, q, out, lse):
    """(id, run kwargs, exception types, name regex, rule regex) for the GPU run() cases."""
    import cupy

    k, v = pool.layer(1)
    t, h, d = q.shape
    flat = cupy.empty(t * h * d + 8, dtype=cupy.float16)
    wide = cupy.empty((t, h * d + 1), dtype=cupy.float16)
    kbig = kit.randn("cupy", (NUM_PAGES, PAGE_SIZE, HKV, 2 * D), "float16", 3)
    kflat = cupy.empty(k.size + 8, dtype=cupy.float16)
    kpad = kit.randn("cupy", (NUM_PAGES, PAGE_SIZE, HKV * D + 1), "float16", 4)
    kpad = kpad[..., : HKV * D].reshape(NUM_PAGES, PAGE_SIZE, HKV, D)
    bad_out = kit.poison(cupy.empty((t, h, d), dtype=cupy.float32))
    bad_lse = kit.poison(cupy.empty((t, h + 1), dtype=cupy.float32))
    return [
        ("q_float32", dict(q=q.astype(cupy.float32)), (TypeError,), r"\bq\b", r"dtype|float16"),
        ("q_wrong_heads", dict(q=q[:, :-1]), (ValueError,), r"\bq\b", r"shape"),
        ("q_head_dim_stride_2", dict(q=cupy.empty((t, h, 2 * d), cupy.float16)[..., ::2]),
         (ValueError,), r"\bq\b", r"stride"),
        ("q_misaligned_pointer", dict(q=flat[1 : 1 + t * h * d].reshape(t, h, d)), (ValueError,),
         r"\bq\b", r"align"),
        ("q_misaligned_token_stride", dict(q=wide[:, : h * d].reshape(t, h, d)), (ValueError,),
         r"\bq\b", r"stride|multiple"),
        ("q_on_host", dict(q=q.get()), (ValueError, TypeError), r"\bq\b", r"device|CUDA|host"),
        ("kv_float32", dict(paged_kv_cache=(k.astype(cupy.float32), v.astype(cupy.float32))),
         (TypeError,), r"paged_kv_cache", r"dtype|float16"),
        ("kv_head_dim_stride_2", dict(paged_kv_cache=(kbig[..., ::2], v)), (ValueError,),
         r"paged_kv_cache", r"stride"),
        ("kv_misaligned_pointer",
         dict(paged_kv_cache=(kflat[1 : 1 + k.size].reshape(k.shape), v)), (ValueError,),
         r"paged_kv_cache", r"align"),
        ("kv_misaligned_token_stride", dict(paged_kv_cache=(kpad, v)), (ValueError,),
         r"paged_kv_cache", r"stride|multiple"),
        ("kv_page_index_out_of_range",
         dict(paged_kv_cache=(k[:MAX_PAGE_INDEX], v[:MAX_PAGE_INDEX])), (ValueError,),
         r"paged_kv_indices|paged_kv_cache", r"page index|valid range"),
        ("kv_wrong_page_size", dict(paged_kv_cache=(k[:, :-1], v[:, :-1])), (ValueError,),
         r"paged_kv_cache", r"page_size|shape|must be"),
        ("kv_on_host", dict(paged_kv_cache=(k.get(), v.get())), (ValueError, TypeError),
         r"paged_kv_cache", r"device|CUDA|host"),
        ("out_float32", dict(out=bad_out), (TypeError,), r"\bout\b", r"dtype|float16"),
        ("out_head_dim_stride_2",
         dict(out=kit.poison(cupy.empty((t, h, 2 * d), cupy.float16))[..., ::2]), (ValueError,),
         r"\bout\b", r"stride"),
        ("lse_wrong_shape", dict(lse=bad_lse, return_lse=True), (ValueError,), r"\blse\b",
         r"shape"),
    ]


_RUN_IDS = ["q_float32", "q_wrong_heads", "q_head_dim_stride_2", "q_misaligned_pointer",
            "q_misaligned_token_stride", "q_on_host", "kv_float32", "kv_head_dim_stride_2",
            "kv_misaligned_pointer", "kv_misaligned_token_stride", "kv_page_index_out_of_range",
            "kv_wrong_page_size", "kv_on_host", "out_float32", "out_head_dim_stride_2",
            "lse_wrong_shape"]


@pytest.mark.gpu
@pytest.mark.parametrize("case_id", _RUN_IDS)
def test_run_args_rejected_gpu(kit, case_id):
    from nvrtc_attn.reference import paged_prefill_reference

    w, a, pool, q, out, lse = _gpu_setup(kit)
    args, kwargs = _plan_positional(a)
    w.plan(*args, **kwargs)
    snap = kit.Snapshot(pool.buf)
    cases = {c[0]: c for c in _bad_run_inputs(kit, pool, q, out, lse)}
    _, changes, exc, name_re, rule_re = cases[case_id]
    call = dict(q=q, paged_kv_cache=pool.layer(1), out=out, lse=lse, return_lse=True)
    call.update(changes)
    kit.synchronize()
    with pytest.raises(exc) as ei:
        w.run(**call)
    _assert_names(ei, name_re, rule_re)
    kit.synchronize()
    for arr in (out, lse, call["out"], call["lse"]):
        assert bool(np.isnan(arr.get()).all()), "an output was written by a rejected run()"
    assert snap.unchanged(), "a rejected run() modified the KV pool"
    # The wrapper is still usable afterwards.
    o, o_lse = w.run(q, pool.layer(1), out=out, lse=lse, return_lse=True)
    ref_o, ref_lse = paged_prefill_reference(q, pool.layer(1), *args[:4], causal=True)
    kit.check_attention(o, o_lse, ref_o, ref_lse, "float16", what=f"after {case_id}")


def test_gpu_run_case_ids_match():
    """Keeps _RUN_IDS (needed at collection, without a GPU) in step with _bad_run_inputs."""
    import inspect

    src = inspect.getsource(_bad_run_inputs)
    assert re.findall(r'\(\s*"([a-z0-9_]+)",\s*dict\(', src) == _RUN_IDS
