"""Wrapper lifecycle: construction checks (CPU), run() before plan(), re-planning, one plan for
several stride sets and layers, independent wrappers (GPU).
"""

from __future__ import annotations

import numpy as np
import pytest

import nvrtc_attn

# --------------------------------------------------------------------------------------------
# CPU: what fails before any device is needed


def test_public_names():
    for name in ("BatchPrefillWithPagedKVCacheWrapper", "paged_prefill"):
        assert name in nvrtc_attn.__all__
        assert callable(getattr(nvrtc_attn, name))


def _host_ws():
    return np.empty(1 << 20, dtype=np.uint8)


def test_bad_kv_layout_cpu():
    with pytest.raises(ValueError, match="kv_layout"):
        nvrtc_attn.BatchPrefillWithPagedKVCacheWrapper(_host_ws(), kv_layout="NDH")


def test_bad_backend_cpu():
    with pytest.raises(ValueError, match="backend"):
        nvrtc_attn.BatchPrefillWithPagedKVCacheWrapper(_host_ws(), backend="sm70")


def test_unknown_keyword_cpu():
    with pytest.raises(TypeError, match="no_such_option"):
        nvrtc_attn.BatchPrefillWithPagedKVCacheWrapper(_host_ws(), no_such_option=1)


def test_host_workspace_rejected_cpu():
    with pytest.raises(ValueError, match="workspace_buffer"):
        nvrtc_attn.BatchPrefillWithPagedKVCacheWrapper(_host_ws(), backend="sm80")


def test_workspace_not_an_array_cpu():
    with pytest.raises(TypeError, match="workspace_buffer"):
        nvrtc_attn.BatchPrefillWithPagedKVCacheWrapper(12345, backend="sm80")


# --------------------------------------------------------------------------------------------
# GPU


def _batch(kit, qo, kv, ps, seed):
    return kit.make_page_table(qo, kv, ps, seed)


def _check_run(kit, w, batch, q, cache, *, causal, kv_layout="NHD", what=""):
    from nvrtc_attn.reference import paged_prefill_reference

    out = kit.poison(kit.empty("cupy", q.shape, "float16"))
    o, lse = w.run(q, cache, out=out, return_lse=True)
    ref_o, ref_lse = paged_prefill_reference(q, cache, *batch.index_args(), causal=causal,
                                             kv_layout=kv_layout)
    kit.check_attention(o, lse, ref_o, ref_lse, "float16", what=what)


def _wrapper(kit, kv_layout="NHD"):
    return nvrtc_attn.BatchPrefillWithPagedKVCacheWrapper(kit.workspace("cupy"), kv_layout=kv_layout,
                                                          backend="sm80")


@pytest.mark.gpu
def test_run_before_plan_raises(kit):
    w = _wrapper(kit)
    pool = kit.make_pool("cupy", "float16", 4, 16, 2, 64, seed=1)
    q = kit.randn("cupy", (10, 4, 64), "float16", 2)
    with pytest.raises(RuntimeError, match=r"plan\(\)"):
        w.run(q, pool.layer(0))


@pytest.mark.gpu
def test_replan_changes_batch(kit):
    """plan(A) run, plan(B) run, plan(A) again: each run follows the latest plan."""
    w = _wrapper(kit)
    a = _batch(kit, [40, 7], [100, 7], 16, 1)
    b = _batch(kit, [3, 150, 20], [300, 40, 20], 16, 2)
    hqo, hkv, d = 8, 2, 128
    pool = kit.make_pool("cupy", "float16", max(a.max_pages, b.max_pages), 16, hkv, d, seed=3)
    qa = kit.randn("cupy", (a.total_q, hqo, d), "float16", 4)
    qb = kit.randn("cupy", (b.total_q, hqo, d), "float16", 5)
    w.plan(*a.index_args(), hqo, hkv, d, 16, causal=True)
    _check_run(kit, w, a, qa, pool.layer(0), causal=True, what="plan A")
    w.plan(*b.index_args(), hqo, hkv, d, 16, causal=False)
    _check_run(kit, w, b, qb, pool.layer(1), causal=False, what="plan B")
    with pytest.raises(ValueError, match=r"\bq\b"):  # q of the old batch no longer fits
        w.run(qa, pool.layer(1))
    w.plan(*a.index_args(), hqo, hkv, d, 16, causal=True)
    _check_run(kit, w, a, qa, pool.layer(2), causal=True, what="plan A again")


@pytest.mark.gpu
@pytest.mark.parametrize("plan_cache", [False, True], ids=["lazy", "planned"])
def test_one_plan_many_stride_sets(kit, plan_cache):
    """One plan serves caches with different strides: pool layer views, a contiguous copy,
    K and V with different strides, then the pool again (offsets rebuilt as needed)."""
    import cupy

    batch = _batch(kit, [33, 64, 5], [90, 64, 200], 5, 6)
    hqo, hkv, d = 4, 1, 64
    pool = kit.make_pool("cupy", "float16", batch.max_pages, 5, hkv, d, seed=7)
    snap = kit.Snapshot(pool.buf)
    q = kit.randn("cupy", (batch.total_q, hqo, d), "float16", 8)
    w = _wrapper(kit)
    kwargs = {"paged_kv_cache": pool.layer(0)} if plan_cache else {}
    w.plan(*batch.index_args(), hqo, hkv, d, 5, causal=True, **kwargs)
    k1, v1 = pool.layer(1)
    vpad = cupy.zeros(v1.shape[:-1] + (d + 8,), dtype=cupy.float16)
    vpad[..., :d] = v1
    caches = [
        ("pool layer 0", pool.layer(0)),
        ("contiguous copy", (cupy.ascontiguousarray(k1), cupy.ascontiguousarray(v1))),
        ("5-D contiguous", cupy.ascontiguousarray(pool.buf[:, 2])),
        ("K view, padded V", (k1, vpad[..., :d])),
        ("pool layer 3", pool.layer(3)),
        ("pool layer 0 again", pool.layer(0)),
    ]
    for what, cache in caches:
        _check_run(kit, w, batch, q, cache, causal=True, what=what)
    assert snap.unchanged()


@pytest.mark.gpu
def test_replans_on_the_same_cache_views_keep_every_check(kit):
    """plan() checks a cache view once per view and plan fields (an engine passes the same views every
    step), but every plan's page indices against it: a later batch past the pool's pages, or a plan
    whose dtype or page size the views do not have, still fails before anything runs; a good plan after
    a failed one runs and matches the reference."""
    hqo, hkv, d, ps = 4, 2, 64, 16
    good = _batch(kit, [20, 9], [40, 30], ps, 11)
    pool = kit.make_pool("cupy", "float16", good.max_pages, ps, hkv, d, seed=12)
    q = kit.randn("cupy", (good.total_q, hqo, d), "float16", 13)
    w = _wrapper(kit)
    for _ in range(2):  # the second plan meets the remembered views
        w.plan(*good.index_args(), hqo, hkv, d, ps, causal=True, paged_kv_cache=pool.layer(0))
    far = good.paged_kv_indices.copy()
    far[0] = good.max_pages + 3  # a page the pool does not have
    with pytest.raises(ValueError, match=r"page index \d+ .*valid range"):
        w.plan(good.qo_indptr, good.paged_kv_indptr, far, good.paged_kv_last_page_len, hqo, hkv, d, ps,
               causal=True, paged_kv_cache=pool.layer(0))
    with pytest.raises(TypeError, match=r"paged_kv_cache dtype"):
        w.plan(*good.index_args(), hqo, hkv, d, ps, causal=True, q_data_type="bfloat16",
               paged_kv_cache=pool.layer(0))
    with pytest.raises(ValueError, match=r"paged_kv_cache"):  # the views have 2 KV heads
        w.plan(*good.index_args(), hqo, 1, d, ps, causal=True, paged_kv_cache=pool.layer(0))
    w.plan(*good.index_args(), hqo, hkv, d, ps, causal=True, paged_kv_cache=pool.layer(0))
    _check_run(kit, w, good, q, pool.layer(0), causal=True, what="after the refused plans")


@pytest.mark.gpu
def test_two_wrappers_are_independent(kit):
    hqo, hkv, d = 8, 8, 64
    a = _batch(kit, [70], [70], 16, 9)
    b = _batch(kit, [12, 90], [200, 95], 1, 10)
    pa = kit.make_pool("cupy", "float16", a.max_pages, 16, hkv, d, kv_layout="HND", seed=11)
    pb = kit.make_pool("cupy", "float16", b.max_pages, 1, hkv, d, kv_layout="HND", seed=12)
    qa = kit.randn("cupy", (a.total_q, hqo, d), "float16", 13)
    qb = kit.randn("cupy", (b.total_q, hqo, d), "float16", 14)
    wa, wb = _wrapper(kit, "HND"), _wrapper(kit, "HND")
    wa.plan(*a.index_args(), hqo, hkv, d, 16, causal=True)
    wb.plan(*b.index_args(), hqo, hkv, d, 1, causal=False, window_left=20)
    from nvrtc_attn.reference import paged_prefill_reference

    for rep in range(2):
        oa = wa.run(qa, pa.layer(rep))
        ob = wb.run(qb, pb.layer(rep))
        ra, _ = paged_prefill_reference(qa, pa.layer(rep), *a.index_args(), kv_layout="HND",
                                        causal=True)
        rb, _ = paged_prefill_reference(qb, pb.layer(rep), *b.index_args(), kv_layout="HND",
                                        window_left=20)
        kit.check_attention(oa, None, ra, None, "float16", what=f"wrapper a rep {rep}")
        kit.check_attention(ob, None, rb, None, "float16", what=f"wrapper b rep {rep}")


@pytest.mark.gpu
def test_small_float_workspace_holds_no_plan(kit):
    """The plan lives in the wrapper's own buffer (engines share the float workspace among wrappers
    as run-time scratch): a 4 KiB float workspace plans and runs a batch whose plan is far larger."""
    import cupy

    from nvrtc_attn.reference import paged_prefill_reference

    batch = _batch(kit, [500, 500], [2000, 2000], 1, 15)
    w = nvrtc_attn.BatchPrefillWithPagedKVCacheWrapper(cupy.empty(4096, dtype=cupy.uint8), backend="sm80")
    w.plan(*batch.index_args(), 8, 2, 128, 1, causal=True)
    assert w._plan.workspace_bytes > 4096
    pool = kit.make_pool("cupy", "float16", batch.max_pages, 1, 2, 128, seed=16)
    q = kit.randn("cupy", (batch.total_q, 8, 128), "float16", 17)
    o = w.run(q, pool.layer(0))
    ref, _ = paged_prefill_reference(q, pool.layer(0), *batch.index_args(), causal=True)
    kit.check_attention(o, None, ref, None, "float16", what="small float workspace")


@pytest.mark.gpu
def test_run_on_current_cupy_stream(kit):
    """run() issues its work on CuPy's current stream: syncing only that stream suffices."""
    import cupy

    from nvrtc_attn.reference import paged_prefill_reference

    batch = _batch(kit, [300], [400], 16, 16)
    hqo, hkv, d = 8, 2, 128
    pool = kit.make_pool("cupy", "float16", batch.max_pages, 16, hkv, d, seed=17)
    q = kit.randn("cupy", (batch.total_q, hqo, d), "float16", 18)
    out = kit.poison(cupy.empty(q.shape, dtype=cupy.float16))
    w = _wrapper(kit)
    w.plan(*batch.index_args(), hqo, hkv, d, 16, causal=True)
    kit.synchronize()
    stream = cupy.cuda.Stream(non_blocking=True)
    with stream:
        w.run(q, pool.layer(2), out=out)
        host = cupy.asnumpy(out, stream=stream)
        stream.synchronize()
    ref_o, ref_lse = paged_prefill_reference(q, pool.layer(2), *batch.index_args(), causal=True)
    kit.check_attention(cupy.asarray(host), None, ref_o, ref_lse, "float16", what="stream")
