"""The device half of plan() (kernels_cu/kv_offsets.cu through launcher.expand_plan) against the
host references it replaces: tile rows (planner.device_tiles of the decoded work list), tok_page /
tok_slot (paging.token_pages) and both offset tables (planner.build_offsets), on random batches
with empty requests and page_size 1; and an expansion captured in a CUDA graph, replayed after a
later plan of another batch with the same capacity (GPU)."""

import numpy as np
import pytest

from nvrtc_attn import launcher, paging, planner

pytestmark = pytest.mark.gpu

POISON = 0x7F  # every device-built byte starts as 0x7F7F7F7F...: an unwritten entry cannot match


def _keys(page_size):
    # units: a [pages, 4 layers, 2, page_size, H, D] pool view; elements: page strides whose
    # products pass 2**31 (int64 offsets), K and V different.
    return {"none": None, "units": ("units", 4 * 2 * page_size),
            "elements": ("elements", (1 << 24) + 8, 1032, 3 << 22, 136)}


def _random_batch(make_page_table, rng, page_size, seed):
    batch_size = int(rng.integers(1, 9))
    qo = rng.integers(0, 120, batch_size)
    kv = qo + rng.integers(0, 400, batch_size)
    qo[rng.integers(batch_size)] = 0                  # a request without queries (no tiles)
    empty = rng.integers(batch_size)
    qo[empty], kv[empty] = 0, 0                       # and one without keys (no pages)
    return make_page_table(qo, kv, page_size, seed, extra_pages=int(rng.integers(0, 40)))


def _upload(ws, plan, stream):
    import cupy

    with stream:  # ordered before the copy on the same stream
        ws.fill(POISON)
    launcher.copy_host_to_device(ws.data.ptr, plan.image, stream.ptr)
    return cupy.cuda.Device().id


def _read(ws, plan, name, dtype=np.int32):
    import cupy

    start, nbytes = plan.layout[name]
    return cupy.asnumpy(ws[start:start + nbytes]).view(dtype)


def _check_tables(ws, plan, batch, key):
    """Every device-built section the expansion owns equals its host reference."""
    qo_indptr = _read(ws, plan, "qo_indptr")[: plan.batch_size + 1]
    kv_tok_indptr = _read(ws, plan, "kv_tok_indptr")[: plan.batch_size + 1]
    want_tiles = planner.device_tiles(plan.tiles, qo_indptr, plan.kv_lens, kv_tok_indptr, plan.num_kv_heads)
    np.testing.assert_array_equal(_read(ws, plan, "tiles").reshape(-1, 12)[: plan.num_tiles], want_tiles)

    pages = paging.token_pages(*batch.index_args()[1:], batch.page_size)
    n = plan.total_kv
    np.testing.assert_array_equal(_read(ws, plan, "tok_page")[:n], pages.tok_page)
    np.testing.assert_array_equal(_read(ws, plan, "tok_slot")[:n], pages.tok_slot)
    if key is not None:
        for name, table in planner.build_offsets(pages.tok_page, pages.tok_slot, key).items():
            np.testing.assert_array_equal(_read(ws, plan, name, table.dtype)[:n], table, err_msg=name)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("page_size", (1, 5, 16))
@pytest.mark.parametrize("mode", ("none", "units", "elements"))
@pytest.mark.parametrize("when", ("plan", "run"))
def test_expansion_matches_host_references(make_page_table, seed, page_size, mode, when):
    """when="plan": one expansion with the key, as plan() does given the cache; "run": plan()'s
    expansion without a key, then run()'s offsets_only expansion for it."""
    import cupy

    rng = np.random.default_rng([seed, page_size])
    batch = _random_batch(make_page_table, rng, page_size, seed)
    key = _keys(page_size)[mode]
    causal, window = bool(seed % 2), (-1 if seed < 2 else 30)
    plan = planner.make_plan(*batch.index_args(), 8, 2, 128, page_size, causal=causal, window_left=window,
                             num_ctas=int(rng.choice([3, 132])), block_m=64, offsets_key=key,
                             l2_section_bytes=1 << 16)
    ws = cupy.empty(plan.workspace_bytes, dtype=cupy.uint8)
    stream = cupy.cuda.Stream(non_blocking=True)
    device = _upload(ws, plan, stream)
    if when == "plan":
        launcher.expand_plan(plan, ws.data.ptr, key, stream.ptr, device)
    else:
        launcher.expand_plan(plan, ws.data.ptr, None, stream.ptr, device)
        if key is not None:
            launcher.expand_plan(plan, ws.data.ptr, key, stream.ptr, device, offsets_only=True)
    stream.synchronize()
    _check_tables(ws, plan, batch, key)


@pytest.mark.parametrize("fixed", (0, 3))
def test_expansion_of_split_plan(make_page_table, fixed):
    """A plan with split row tiles (automatic, or fixed_split_size 3 pages): the pieces' tile rows
    carry 1 + their partial slot (piece * num_kv_heads + kv_head), the others 0."""
    import cupy

    from nvrtc_attn import schedule

    batch = make_page_table([40, 0, 7], [9000, 50, 3000], 16, 7)
    plan = planner.make_plan(*batch.index_args(), 8, 2, 128, 16, causal=True, num_ctas=132, block_m=64,
                             offsets_key=_keys(16)["units"], split=schedule.SplitRequest(4000, fixed * 16, 128))
    assert plan.num_merges > 0, "the batch did not split"
    ws = cupy.empty(plan.workspace_bytes, dtype=cupy.uint8)
    stream = cupy.cuda.Stream(non_blocking=True)
    device = _upload(ws, plan, stream)
    launcher.expand_plan(plan, ws.data.ptr, plan.offsets_key, stream.ptr, device)
    stream.synchronize()
    _check_tables(ws, plan, batch, plan.offsets_key)
    slots = _read(ws, plan, "tiles").reshape(-1, 12)[: plan.num_tiles, 10]
    np.testing.assert_array_equal(np.sort(slots[slots > 0]), np.arange(1, plan.num_pieces + 1))


@pytest.mark.parametrize("mode", ("units", "elements"))
def test_captured_expansion_replays_after_a_later_plan(make_page_table, mode):
    """A graph captured around the expansion of one plan, replayed after uploading another batch's
    plan of the same capacity, builds that batch's tables: counts come from the workspace and the
    grid from the capacity."""
    import cupy

    page_size = 16
    key = _keys(page_size)[mode]
    first = make_page_table([100, 37, 0, 250], [300, 37, 0, 250], page_size, 1)
    later = make_page_table([5, 600, 1], [900, 600, 1], page_size, 2)
    cap = planner.PlanCapacity.for_batch(4, 700, 120, page_size, 8, 2, 64)
    plans = [planner.make_plan(*b.index_args(), 8, 2, 128, page_size, causal=True, num_ctas=132, block_m=64,
                               offsets_key=key, capacity=cap) for b in (first, later)]
    assert plans[0].layout == plans[1].layout
    ws = cupy.empty(plans[0].workspace_bytes, dtype=cupy.uint8)
    stream = cupy.cuda.Stream(non_blocking=True)
    device = _upload(ws, plans[0], stream)
    launcher.expand_plan(plans[0], ws.data.ptr, key, stream.ptr, device)  # loads the kernel
    stream.synchronize()
    stream.begin_capture()
    launcher.expand_plan(plans[0], ws.data.ptr, key, stream.ptr, device)
    graph = stream.end_capture()
    for plan, batch in ((plans[1], later), (plans[0], first)):
        _upload(ws, plan, stream)
        graph.launch(stream)
        stream.synchronize()
        _check_tables(ws, plan, batch, key)


def test_uploads_behind_a_busy_stream():
    """launcher.copy_host_to_device (the plan upload): copies queued behind a long kernel on a
    stream, the host arrays overwritten right after each call (as plan() drops its image), all land
    with the values they had at the call; sizes from a few bytes to past 16 MB."""
    import cupy

    rng = np.random.default_rng()
    stream = cupy.cuda.Stream(non_blocking=True)
    sizes = [int(s) for s in rng.integers(1, 200_000, 20)] + [(16 << 20) + 4096]
    dst = [cupy.full(n, 0x7F, dtype=cupy.uint8) for n in sizes]
    cupy.cuda.Device().synchronize()
    busy = cupy.random.default_rng(0).standard_normal((4096, 4096), dtype=cupy.float32)
    expected = []
    with stream:
        for _ in range(20):  # tens of milliseconds of queued work ahead of the copies
            busy = busy @ busy
            busy /= cupy.linalg.norm(busy)
    for d, n in zip(dst, sizes):
        host = rng.integers(0, 256, n, dtype=np.uint8)
        expected.append(host.copy())
        launcher.copy_host_to_device(d.data.ptr, host, stream.ptr)
        host[:] = 0x7F  # the caller reuses its array at once
    stream.synchronize()
    for d, e in zip(dst, expected):
        np.testing.assert_array_equal(cupy.asnumpy(d), e)
