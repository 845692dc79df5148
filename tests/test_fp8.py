"""fp8 KV cache with 16-bit queries (issue 10, mode 1): the fp8 decoder of the reference, plan()/run()
validation, build choice, and (GPU) the public API against the reference on the dequantized cache.
Mode 2 (fp8 e4m3 queries on an e4m3 cache: the widening builds `_q8_` and the e4m3-wgmma builds
`_q8_mma8_`) has its own sections at the end, with their error bounds.

Error bounds: the kernels widen e4m3/e5m2 to the queries' 16-bit type exactly (fp16 and bf16 hold
every finite fp8 value), so the kernel's own rounding is that of a 16-bit cache: P and O in 16 bits,
fp32 accumulation. The reference (float32) computes on the same dequantized values, scales applied in
float32, and the test_prefill bounds apply unchanged: rel L2 5e-3 (fp16), 2e-2 (bf16), LSE 1e-2 abs.
Two GPU tests check the widening bit-exactly on every finite fp8 value (V through O, K through LSE).

GPU cases poison the outputs with NaN and check that the cache (torch fp8 tensor or CuPy uint8
bytes) is bit-identical afterwards. Backends: "sm90" (Hopper only: the `hopper` marker skips it
elsewhere) and "sm80". With main's split-KV and short tiles: an fp8 batch that cannot fill the SMs
splits (the split-KV twin of its fp8 build keeps KV_FP8; per-head v_scale factors are applied by the
pieces, the per-tensor one by the merge), and few-query batches take the short tiles as a 16-bit cache's
do (SM90_FP8_SHORT_TILES: 64 rows, two CTAs per SM).
"""

from __future__ import annotations

import math
import zlib

import numpy as np
import pytest
from conftest import BACKENDS, GRID_SHAPE_FACTORS, grid_case_valid, grid_lengths, pairwise_cases  # sm90: `hopper`

from nvrtc_attn.reference import decode_fp8, fp8_table

KINDS = ("float8_e4m3fn", "float8_e5m2")


def _seed(*parts) -> int:
    return zlib.crc32(repr(parts).encode()) & 0x7FFFFFFF


# --------------------------------------------------------------------------------------------
# The reference's fp8 decoder (CPU)

KNOWN = {  # bit pattern -> value, from the formats' definitions (OCP FP8: E4M3 "fn", E5M2)
    "float8_e4m3fn": {0x00: 0.0, 0x80: -0.0, 0x01: 2.0 ** -9, 0x07: 7 * 2.0 ** -9, 0x08: 2.0 ** -6,
                      0x38: 1.0, 0x3C: 1.5, 0x40: 2.0, 0x7E: 448.0, 0xFE: -448.0, 0x77: 240.0,
                      0xB8: -1.0, 0x7F: math.nan, 0xFF: math.nan},
    "float8_e5m2": {0x00: 0.0, 0x80: -0.0, 0x01: 2.0 ** -16, 0x03: 3 * 2.0 ** -16, 0x04: 2.0 ** -14,
                    0x3C: 1.0, 0x3E: 1.5, 0x40: 2.0, 0x7B: 57344.0, 0xFB: -57344.0, 0x7C: math.inf,
                    0xFC: -math.inf, 0x7D: math.nan, 0x7F: math.nan, 0xBC: -1.0},
}


def _same(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)


@pytest.mark.parametrize("kind", KINDS)
def test_fp8_table_known_values(kind):
    table = fp8_table(kind)
    for bits, value in KNOWN[kind].items():
        assert _same(float(table[bits]), value), (kind, hex(bits), table[bits], value)
    finite = table[np.isfinite(table)]
    assert finite.size == (254 if kind == "float8_e4m3fn" else 248)
    assert np.all(np.diff(np.sort(finite[finite > 0])) > 0)  # positive values all distinct


@pytest.mark.parametrize("kind", KINDS)
def test_fp8_table_matches_torch_or_ml_dtypes(kind):
    """Against torch's float8 dtypes (or ml_dtypes') where importable; bit-exact incl. -0 and NaN."""
    bits = np.arange(256, dtype=np.uint8)
    try:
        import torch

        ref = torch.from_numpy(bits.copy()).view(getattr(torch, kind)).float().numpy()
    except Exception:  # noqa: BLE001 - no torch, or a torch without float8
        ml = pytest.importorskip("ml_dtypes", reason="neither torch nor ml_dtypes for an independent decoder")
        ref = bits.view(getattr(ml, kind)).astype(np.float32)
    got = decode_fp8(bits, kind)
    for b in range(256):
        assert _same(float(got[b]), float(ref[b])), (kind, hex(b), got[b], ref[b])


def encode_fp8(x, kind: str) -> np.ndarray:
    """float values -> uint8 bit patterns of the nearest finite fp8 value (test data for caches
    without an fp8 dtype, e.g. CuPy)."""
    table = fp8_table(kind)
    codes = np.nonzero(np.isfinite(table))[0]
    order = np.argsort(table[codes], kind="stable")
    values, codes = table[codes][order], codes[order]
    x = np.asarray(x, dtype=np.float32)
    hi = np.clip(np.searchsorted(values, x), 1, values.size - 1)
    lo = hi - 1
    pick = np.where(np.abs(values[hi] - x) < np.abs(x - values[lo]), hi, lo)
    return codes[pick].astype(np.uint8)


@pytest.mark.parametrize("kind", KINDS)
def test_encode_fp8_round_trips(kind):
    table = fp8_table(kind)
    finite = np.nonzero(np.isfinite(table))[0].astype(np.uint8)
    back = encode_fp8(table[finite], kind)
    assert np.array_equal(table[back], table[finite])  # +0 and -0 may swap codes, values agree
    x = np.random.default_rng(0).standard_normal(1000).astype(np.float32)
    err = np.abs(decode_fp8(encode_fp8(x, kind), kind) - x)
    assert float(err.max()) <= (0.0625 if kind == "float8_e4m3fn" else 0.125) * 4  # half an ulp at |x| < 4


@pytest.mark.parametrize("kind", KINDS)
def test_reference_decodes_bytes_and_applies_scales(kind, make_page_table):
    """The reference on a uint8 cache with kv_data_type and per-head scales equals the reference on
    the decoded float32 cache with the scales multiplied in by hand (NumPy, CPU)."""
    from nvrtc_attn.reference import paged_prefill_reference

    rng = np.random.default_rng(3)
    batch = make_page_table([5, 9], [20, 9], 4, 4)
    hq, hkv, d = 4, 2, 64
    q = rng.standard_normal((batch.total_q, hq, d)).astype(np.float32)
    kb = encode_fp8(rng.standard_normal((batch.max_pages, 4, hkv, d)), kind)
    vb = encode_fp8(rng.standard_normal((batch.max_pages, 4, hkv, d)), kind)
    ks, vs = np.array([0.37, 2.5], np.float32), np.array([2.5, 0.37], np.float32)
    o, lse = paged_prefill_reference(q, (kb, vb), *batch.index_args(), causal=True, kv_data_type=kind,
                                     q_scale=1.5, k_scale=ks, v_scale=vs)
    kf = decode_fp8(kb, kind) * ks[None, None, :, None]
    vf = decode_fp8(vb, kind) * vs[None, None, :, None]
    o2, lse2 = paged_prefill_reference(q, (kf, vf), *batch.index_args(), causal=True, sm_scale=1.5 / 8.0)
    np.testing.assert_allclose(o, o2, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(lse, lse2, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="kv_data_type"):
        paged_prefill_reference(q, (kb, vb), *batch.index_args(), kv_data_type="int8")


# --------------------------------------------------------------------------------------------
# Validation (CPU): plan() arguments, cache dtypes and scale arrays before any device work

def _plan_args(**changes):
    args = dict(qo_indptr=np.array([0, 5, 14], np.int32), paged_kv_indptr=np.array([0, 5, 8], np.int32),
                paged_kv_indices=np.array([10, 3, 7, 0, 5, 9, 2, 4], np.int32),
                paged_kv_last_page_len=np.array([4, 1], np.int32), num_qo_heads=4, num_kv_heads=2,
                head_dim=64, page_size=4, causal=True, q_data_type="bfloat16", kv_data_type="float8_e4m3fn")
    args.update(changes)
    return args


class _FakeTorchDtype:
    """Stands in for torch.float8_e4m3fn where torch is absent (same str())."""

    def __init__(self, name):
        self.name = name

    def __str__(self):
        return f"torch.{self.name}"


@pytest.mark.parametrize("kv", ["float8_e4m3fn", "float8_e5m2", _FakeTorchDtype("float8_e4m3fn"),
                                _FakeTorchDtype("float8_e5m2")], ids=str)
def test_plan_accepts_fp8_kv_data_type_cpu(kv):
    from nvrtc_attn import validate

    a = validate.check_plan_args(**_plan_args(kv_data_type=kv))
    assert a.dtype == "bfloat16" and a.kv_dtype == str(kv).rsplit(".", 1)[-1]
    assert validate.check_plan_args(**_plan_args(kv_data_type=kv, o_data_type="bfloat16")).kv_dtype == a.kv_dtype


PLAN_FP8_CASES = [  # (id, changes, exception, message regex)
    ("fp8_q_e5m2_e4m3_kv", dict(q_data_type="float8_e5m2", kv_data_type="float8_e4m3fn"), NotImplementedError,
     r"q_data_type=float8_e5m2 with kv_data_type='float8_e4m3fn'.*cache of their kind \(kv_data_type float8_e5m2\)"),
    ("fp8_q_e5m2_e4m3_kv_torch", dict(q_data_type=_FakeTorchDtype("float8_e5m2"),
                                      kv_data_type=_FakeTorchDtype("float8_e4m3fn")), NotImplementedError,
     r"cache of their kind"),
    ("fp8_q_fnuz", dict(q_data_type=_FakeTorchDtype("float8_e4m3fnuz")), ValueError, r"q_data_type"),
    ("fp8_q_16bit_kv", dict(q_data_type="float8_e4m3fn", kv_data_type="float16"), ValueError,
     r"q_data_type=float8_e4m3fn.*fp8 cache.*kv_data_type=float16"),
    ("fp8_q_bf16_kv_torch", dict(q_data_type=_FakeTorchDtype("float8_e4m3fn"),
                                 kv_data_type=_FakeTorchDtype("bfloat16")), ValueError, r"needs an fp8 cache"),
    ("fp8_q_e5m2_kv", dict(q_data_type="float8_e4m3fn", kv_data_type="float8_e5m2"), NotImplementedError,
     r"cache of their kind \(kv_data_type float8_e4m3fn\)"),
    ("fp8_q_fp8_o", dict(q_data_type="float8_e4m3fn", o_data_type="float8_e4m3fn"), NotImplementedError,
     r"o_data_type.*fp8 output"),
    ("fp8_q_int_o", dict(q_data_type="float8_e4m3fn", o_data_type="int8"), ValueError, r"o_data_type"),
    ("fp8_o", dict(o_data_type="float8_e4m3fn"), NotImplementedError, r"o_data_type.*fp8"),
    ("o_other_16bit", dict(o_data_type="float16"), NotImplementedError, r"o_data_type.*bfloat16"),
    ("kv_uint8", dict(kv_data_type="uint8"), ValueError, r"kv_data_type.*float8_e4m3fn"),
    ("kv_fnuz", dict(kv_data_type=_FakeTorchDtype("float8_e4m3fnuz")), ValueError, r"kv_data_type"),
    ("kv_other_16bit", dict(kv_data_type="float16"), ValueError, r"kv_data_type.*q_data_type"),
]


@pytest.mark.parametrize("case", PLAN_FP8_CASES, ids=[c[0] for c in PLAN_FP8_CASES])
def test_plan_fp8_rejections_cpu(case):
    from nvrtc_attn import validate

    _, changes, exc, msg = case
    with pytest.raises(exc, match=msg):
        validate.check_plan_args(**_plan_args(**changes))


def _cpu_plan(kv_data_type="float8_e4m3fn"):
    from nvrtc_attn import planner, validate, variants

    a = validate.check_plan_args(**_plan_args(kv_data_type=kv_data_type))
    kv = a.kv_dtype if a.kv_dtype in variants.FP8_KV_DTYPES else None
    return planner.make_plan(a.qo_indptr, a.paged_kv_indptr, a.paged_kv_indices, a.paged_kv_last_page_len,
                             a.num_qo_heads, a.num_kv_heads, a.head_dim, a.page_size, causal=True, dtype=a.dtype,
                             kv_dtype=kv, num_ctas=4, block_m=64)


def _np_cache(dtype, shape=(12, 4, 2, 64)):
    k = np.zeros(shape, dtype=dtype)
    return k, np.zeros(shape, dtype=dtype)


CACHE_FP8_CASES = [  # (id, plan kv_data_type, cache dtype, message regex)
    ("uint8_cache_16bit_plan", None, np.uint8, r"uint8.*kv_data_type"),
    ("16bit_cache_fp8_plan", "float8_e4m3fn", np.float16, r"float8_e4m3fn.*uint8.*got float16"),
]


@pytest.mark.parametrize("case", CACHE_FP8_CASES, ids=[c[0] for c in CACHE_FP8_CASES])
def test_cache_dtype_rejections_cpu(case):
    from nvrtc_attn import arrays, validate

    _, kv, dtype, msg = case
    plan = _cpu_plan(kv)
    k, v = (arrays.wrap(x, "paged_kv_cache") for x in _np_cache(dtype))
    with pytest.raises(TypeError, match=msg):
        validate.check_cache(k, v, plan, "NHD")


def test_uint8_cache_passes_dtype_check_of_fp8_plan_cpu():
    """The bytes of an fp8 cache pass the dtype rule and fail only for being on the host."""
    from nvrtc_attn import arrays, validate

    k, v = (arrays.wrap(x, "paged_kv_cache") for x in _np_cache(np.uint8))
    with pytest.raises(ValueError, match="device"):
        validate.check_cache(k, v, _cpu_plan(), "NHD")


HEAD_SCALE_CASES = [  # (id, value, exception, message regex)
    ("host_array", np.ones(2, np.float32), ValueError, r"k_scale.*device"),
    ("wrong_shape", np.ones(3, np.float32), ValueError, r"k_scale.*\[num_kv_heads\] = \[2\].*\[3\]"),
    ("wrong_rank", np.ones((2, 1), np.float32), ValueError, r"k_scale.*\[num_kv_heads\]"),
    ("float16", np.ones(2, np.float16), TypeError, r"k_scale.*float32"),
    ("negative_float", -1.0, ValueError, r"k_scale.*positive"),
    ("string", "2.0", TypeError, r"k_scale"),
]


@pytest.mark.parametrize("case", HEAD_SCALE_CASES, ids=[c[0] for c in HEAD_SCALE_CASES])
def test_head_scale_rejections_cpu(case):
    from nvrtc_attn import validate

    _, value, exc, msg = case
    with pytest.raises(exc, match=msg):
        validate.check_head_scales(value, "k_scale", _cpu_plan(), 0)


def test_head_scales_per_tensor_cpu():
    from nvrtc_attn import validate

    assert validate.check_head_scales(None, "v_scale", _cpu_plan(), 0) == (1.0, None)
    assert validate.check_head_scales(2.5, "v_scale", _cpu_plan(), 0) == (2.5, None)


def test_scale_arrays_refused_for_16bit_cache_cpu():
    from nvrtc_attn import validate

    with pytest.raises(NotImplementedError, match=r"k_scale.*fp8"):
        validate.check_scale(np.ones(2, np.float32), "k_scale")


# --------------------------------------------------------------------------------------------
# Build choice (CPU)


@pytest.mark.parametrize("kv", KINDS)
@pytest.mark.parametrize("hd", [64, 128, 256])
def test_choose_build_fp8(kv, hd):
    from nvrtc_attn import variants

    code = variants.FP8_KV_DTYPES[kv]
    for mean_blocks, pingpong in ((2.0, True), (40.0, False)):
        b = variants.choose_build("sm90", variants.HOPPER_ARCH, hd, "bfloat16", 16, 4, -1, mean_blocks,
                                  kv_dtype=kv)
        assert b.kv_fp8 == code and b.pingpong == pingpong
        assert b.tile is variants.SM90_FP8_TILES[hd] and b.tile.block_n <= 128  # no 176-key fp8 build
        assert b.kv_box == variants.sm90_kv_box_tokens(16, hd, b.tile) == 16
        assert b.variants[0] in variants.builds_of("sm90", variants.HOPPER_ARCH, hd, "bfloat16", kv)
        assert b.name.endswith(f"_{'e4m3' if code == 1 else 'e5m2'}_sm_90a")
    b80 = variants.choose_build("sm80", variants.PORTABLE_ARCH, hd, "float16", 5, 1, -1, 0.0, kv_dtype=kv)
    assert b80.kv_fp8 == code and len(b80.variants) == 2
    built = variants.builds_of("sm80", variants.PORTABLE_ARCH, hd, "float16", kv)
    assert set(b80.variants) <= set(built)
    names = {v.name for v in variants.all_variants()}
    assert {v.name for v in built} <= names
    # 16-bit builds are untouched by the fp8 axis (KV_FP8 = 0, same names as before)
    assert variants.choose_build("sm90", variants.HOPPER_ARCH, 128, "bfloat16", 16, 4, -1, 40.0).name == \
        "prefill_sm90_hd128_bf16_bn176_nopp_sm_90a"


def test_fp8_variant_count():
    """24 sm90 fp8 builds (3 head dims x 2 q dtypes x 2 fp8 kinds x turn-taking or not), their 24
    split-KV twins, 8 short-tile builds (head_dim 64 and 128 x 2 q dtypes x 2 fp8 kinds: two CTAs per
    SM, no turn-taking, no split twin), and 48 sm80 ones (x 2 offset tables x 2 archs)."""
    from nvrtc_attn import variants

    fp8 = variants.fp8_variants()
    sm90 = [v for v in fp8 if v.entry == "prefill_sm90"]
    short = [v for v in sm90 if dict(v.defines)["CTAS_PER_SM"] == 2]
    assert len(short) == 8 and all("_m64_nopp_e" in v.name and not dict(v.defines)["SPLIT_KV"] and
                                   dict(v.defines)["HEAD_DIM"] in (64, 128) for v in short)
    full = [v for v in sm90 if v not in short]
    assert sum(not dict(v.defines)["SPLIT_KV"] for v in full) == 24
    assert sum(dict(v.defines)["SPLIT_KV"] for v in full) == 24
    assert all(dict(v.defines)["CTAS_PER_SM"] == 1 and "_m64_" not in v.name for v in full)
    assert sum(v.entry == "prefill_sm80" for v in fp8) == 48
    assert len({v.name for v in fp8}) == len(fp8)
    assert {v.name for v in fp8} <= {v.name for v in variants.all_variants()}


@pytest.mark.parametrize("kv", KINDS)
@pytest.mark.parametrize("hd", [64, 128, 256])
@pytest.mark.parametrize("mean_blocks", [2.0, 64.0])
@pytest.mark.parametrize("page_size", [5, 16])
def test_fp8_split_twin_keeps_kv_fp8(kv, hd, mean_blocks, page_size):
    """The split-KV twin of every fp8 build choose_build can pick: SPLIT_KV=1 the only define that
    differs (KV_FP8 kept), the same tile, turn-taking and boxes, and it is the build all_variants()
    (and so the kernel cache) holds."""
    from nvrtc_attn import variants

    build = variants.choose_build("sm90", variants.HOPPER_ARCH, hd, "bfloat16", page_size, 4, -1, mean_blocks,
                                  kv_dtype=kv)
    assert build.can_split
    twin = variants.split_build(build)
    a, b = dict(build.variants[0].defines), dict(twin.variants[0].defines)
    assert {k for k in a if a[k] != b[k]} == {"SPLIT_KV"} and b["KV_FP8"] == variants.FP8_KV_DTYPES[kv]
    assert (twin.tile, twin.pingpong, twin.kv_box, twin.q_box, twin.kv_fp8) == \
        (build.tile, build.pingpong, build.kv_box, build.q_box, build.kv_fp8)
    assert twin.variants[0] == variants.prefill_sm90_variant(hd, "bfloat16", build.pingpong, build.tile, split=True,
                                                             kv_dtype=kv)
    assert twin.variants[0] in variants.all_variants()
    assert twin.name == build.name.replace("_sm_90a", "_split_sm_90a")


@pytest.mark.parametrize("kv", KINDS)
@pytest.mark.parametrize("q8", [False, True])
def test_fp8_batches_take_the_short_tiles(kv, q8):
    """A few-query batch (W9-like: 32 requests of 4 tokens, GQA group 4, 8 KV heads, 264 short CTAs)
    takes the short tiles with an fp8 cache as with a 16-bit one (a prompt-like batch does not), and
    its build is the fp8 short build: KV_FP8 kept, 64 rows, two CTAs per SM, no turn-taking, K/V by
    the gather, fp8 queries widened (never the fp8-MMA build, which has no short tile), and it is
    among the builds plan() prepares and all_variants() holds (the kernel cache)."""
    from nvrtc_attn import variants

    q = kv if q8 else None  # fp8 queries: of the cache's kind
    for hd in (64, 128):
        assert variants.sm90_short_tiles(hd, [4] * 32, [1024] * 32, 4, 8, 264)
        assert variants.sm90_short_tiles(hd, [4] * 32, [1024] * 32, 4, 8, 264, kv)
        assert not variants.sm90_short_tiles(hd, [1024] * 16, [1024] * 16, 4, 8, 264, kv)
        choice = variants.batch_choice("sm90", variants.HOPPER_ARCH, hd, "bfloat16", 16, 32, 8, -1, [4] * 32,
                                       [1024] * 32, has_q=True, kv_dtype=kv, q_dtype=q, fp8_mma=q8)
        assert choice.short and choice.tile is variants.SM90_SHORT_TILES[hd]
        build = choice.grid_build
        assert build is choice.build_for(None, None, False)
        assert build.short_tiles and build.tile == variants.SM90_FP8_SHORT_TILES[hd] and not build.can_split
        assert build.kv_fp8 == variants.FP8_KV_DTYPES[kv] and not build.fp8_mma
        assert build.q_fp8 == (variants.FP8_Q_DTYPES[kv] if q8 else 0)
        assert not build.pingpong and build.kv_box == 0 and (build.q_box is None) == q8
        d = dict(build.variants[0].defines)
        assert (d["CONSUMER_WGS"], d["CTAS_PER_SM"], d["PINGPONG"], d["SPLIT_KV"]) == (1, 2, 0, 0)
        assert build.variants[0] in variants.builds_of("sm90", variants.HOPPER_ARCH, hd, "bfloat16", kv, q, q8)
        assert build.variants[0] in variants.all_variants()
    assert not variants.sm90_short_tiles(256, [4] * 32, [1024] * 32, 4, 8, 264, kv)  # no head_dim 256 short tile


def test_tensor_map_cache_keys_the_element_size(monkeypatch):
    """set_tensor_maps caches the K/V maps per element size and swizzle: a 16-bit, an fp8 and an
    fp8-MMA build over the same addresses, shapes and strides get their own encodings (16-bit
    swizzled; uint8 unswizzled; uint8 swizzled), each encoded once (driver call replaced
    by a recorder, CPU)."""
    import ctypes
    from types import SimpleNamespace

    from nvrtc_attn import launcher, variants

    calls = []

    def fake_encode(ptr, dims, byte_strides, box, bytes_per_element=2, swizzle=None):
        swizzled = bytes_per_element == 2 if swizzle is None else swizzle
        calls.append((ptr, len(dims), bytes_per_element, swizzled))
        return bytes([bytes_per_element, len(dims), swizzled, 0]) * (ctypes.sizeof(launcher.TensorMap) // 4)

    monkeypatch.setattr(launcher, "_encode", fake_encode)
    monkeypatch.setattr(launcher, "_map_cache", {})
    hkv, d, ps = 2, 128, 16
    plan = SimpleNamespace(head_dim=d, page_size=ps, num_kv_heads=hkv, num_qo_heads=8)
    strides = (ps * hkv * d, hkv * d, d)
    k = SimpleNamespace(ptr=1 << 20, shape=(10, ps, hkv, d))
    v = SimpleNamespace(ptr=1 << 21, shape=(10, ps, hkv, d))
    q = SimpleNamespace(ptr=1 << 22, shape=(64, 8, d), strides=(8 * d, d, 1))
    e4m3 = "float8_e4m3fn"
    builds = {
        "16": variants.choose_build("sm90", variants.HOPPER_ARCH, d, "bfloat16", ps, 4, -1, 2.0),
        "fp8": variants.choose_build("sm90", variants.HOPPER_ARCH, d, "bfloat16", ps, 4, -1, 2.0, kv_dtype=e4m3),
        "mma": variants.choose_build("sm90", variants.HOPPER_ARCH, d, "bfloat16", ps, 4, -1, 2.0, kv_dtype=e4m3,
                                     q_dtype=e4m3, fp8_mma=True),
    }
    assert builds["mma"].fp8_mma and not builds["fp8"].fp8_mma and not builds["16"].fp8_mma
    expect = {"16": ((2, 5, 1), (2, 5, 1)), "fp8": ((1, 3, 0), (1, 3, 0)), "mma": ((1, 3, 1), (1, 3, 1))}
    for kind in ("16", "fp8", "mma", "16", "fp8", "mma"):
        maps, p = launcher.Sm90TensorMaps(), launcher.PrefillParams()
        assert launcher.set_tensor_maps(maps, p, plan, builds[kind], q, k, v, strides, strides)
        assert (tuple(bytes(maps.k)[:3]), tuple(bytes(maps.v)[:3])) == expect[kind], kind
    kv_calls = [c for c in calls if c[0] in (k.ptr, v.ptr)]
    assert kv_calls == [(k.ptr, 5, 2, True), (v.ptr, 5, 2, True), (k.ptr, 3, 1, False), (v.ptr, 3, 1, False),
                        (k.ptr, 3, 1, True), (v.ptr, 3, 1, True)]


def test_kv8_tma_geometry():
    """fp8 pool view [pages, layers=4, 2, 16, H=8, 128] bytes: 3-D map (D, token, head + page * R)."""
    from nvrtc_attn.launcher import kv8_tma_geometry

    st, sh = 8 * 128, 128
    sp = 4 * 2 * 16 * st
    dims, strides, ratio = kv8_tma_geometry(128, 16, 8, 100, (sp, st, sh))
    assert ratio == sp // sh and dims == (128, 16, 99 * ratio + 8) and strides == (st, sh)
    assert all(s % 16 == 0 for s in strides)
    dims, strides, ratio = kv8_tma_geometry(256, 64, 4, 10, (4 * 64 * 256 * 6, 256, 64 * 256))  # HND
    assert ratio == 4 * 6 and dims == (256, 64, 9 * 24 + 4) and strides == (256, 64 * 256)
    assert kv8_tma_geometry(128, 12, 8, 10, (8 * 128 * 12, 8 * 128, 128)) is None  # page not a multiple of 8


# --------------------------------------------------------------------------------------------
# GPU: building fp8 inputs


def _fp8_random(kit, fw, kind, shape, seed, scale=1.0):
    """Random normal data stored as fp8: a torch float8 tensor, or (CuPy) uint8 bytes."""
    shape = tuple(int(s) for s in shape)
    if fw == "torch":
        import torch

        g = torch.Generator(device="cuda")
        g.manual_seed(int(seed))
        x = torch.randn(shape, generator=g, device="cuda", dtype=torch.float32) * scale
        return x.to(getattr(torch, kind))
    import cupy

    x = np.random.default_rng(int(seed)).standard_normal(shape).astype(np.float32) * scale
    return cupy.asarray(encode_fp8(x, kind))


def _kv_dtype_arg(fw, kind):
    if fw == "torch":
        import torch

        return getattr(torch, kind)
    return kind


def _fp8_cache(kit, fw, kind, cache, layout, max_pages, ps, hkv, d, seed):
    """(paged_kv_cache, contiguous buffers to snapshot), as test_prefill._make_cache for fp8."""
    page = (ps, hkv, d) if layout == "NHD" else (hkv, ps, d)
    if cache == "tuple":
        k = _fp8_random(kit, fw, kind, (max_pages,) + page, seed)
        v = _fp8_random(kit, fw, kind, (max_pages,) + page, seed + 1)
        return (k, v), [k, v]
    if cache == "5d":
        kv = _fp8_random(kit, fw, kind, (max_pages, 2) + page, seed)
        return kv, [kv]
    pool = _fp8_random(kit, fw, kind, (max_pages, 3, 2) + page, seed)  # [pages, layers, 2, ...]
    if cache == "pool":
        return (pool[:, 1, 0], pool[:, 1, 1]), [pool]
    # "kvdiff": K a pool view, V its own buffer with head_dim padded by 16 bytes
    vbuf = _fp8_random(kit, fw, kind, (max_pages,) + page[:-1] + (d + 16,), seed + 1)
    return (pool[:, 2, 0], vbuf[..., :d]), [pool, vbuf]


NAN_BYTE = 0x7F  # NaN in both e4m3fn (S.1111.111) and e5m2 (S.11111.11)


def _bytes_of(x):
    if type(x).__module__.startswith("torch"):
        import torch

        return x.view(torch.uint8)
    return x


def _poison_unowned8(kit, batch, cache, layout):
    """NaN bytes into every cache slot no request's tokens occupy: none may reach the output."""
    kit.poison_unowned_slots(batch, tuple(_bytes_of(x) for x in cache), layout, NAN_BYTE)


def _scales(fw, kind, hkv, rng):
    """(run kwargs, reference kwargs) for per-tensor / per-head k and v scales."""
    if kind == "none":
        return {}, {}
    if kind == "tensor":
        return dict(k_scale=0.37, v_scale=2.5), dict(k_scale=0.37, v_scale=2.5)
    ks = np.array([0.37, 2.5, 1.3, 0.8][:hkv] if hkv <= 4 else rng.uniform(0.3, 2.5, hkv), np.float32)
    vs = np.array([2.5, 0.37, 0.9, 1.6][:hkv] if hkv <= 4 else rng.uniform(0.3, 2.5, hkv), np.float32)
    return dict(k_scale=_device_array(fw, ks), v_scale=_device_array(fw, vs)), dict(k_scale=ks, v_scale=vs)


def _device_array(fw, host):
    """A copy of the NumPy array `host` on the GPU, as a torch tensor or a CuPy array."""
    if fw == "torch":
        import torch

        return torch.as_tensor(host, device="cuda")
    import cupy

    return cupy.asarray(host)


def _wrapper(kit, fw, layout, backend, kv_load="auto", **kwargs):
    return kit.make_wrapper(fw, layout, backend, kv_load=kv_load, **kwargs)


def _plan(w, backend, *args, **kwargs):
    """plan() on either backend: an fp8 case the library refuses fails (sm90 runs only where the
    `hopper` marker lets it: nothing here is skipped on purpose)."""
    w.plan(*args, **kwargs)


# --------------------------------------------------------------------------------------------
# GPU: the grid (pairwise, as test_prefill) in mode 1

FACTORS = {
    **GRID_SHAPE_FACTORS,
    "dtype": ("float16", "bfloat16"),
    "kv": KINDS,
    "fw": ("cupy", "torch"),
    "lens": ("lt", "eq", "gt", "mixed"),
    "extra": ("none", "softcap", "window"),
    "scales": ("none", "tensor", "head"),
    "q_scale": (None, "kvheads"),
    "lse": (False, True),
    "kv_load": ("auto", "gather"),
    "plan_cache": (False, True),
}


def _case_id(c: dict) -> str:
    return "-".join([f"ps{c['ps']}", f"hd{c['hd']}", f"g{c['g']}", "causal" if c["causal"] else "full",
                     c["layout"], c["cache"], "bf16" if c["dtype"] == "bfloat16" else "fp16",
                     "e4m3" if c["kv"] == "float8_e4m3fn" else "e5m2", c["fw"], c["lens"], c["extra"],
                     f"sc{c['scales']}", f"qs{c['q_scale']}", "lse" if c["lse"] else "nolse", c["kv_load"],
                     "plancache" if c["plan_cache"] else "lazycache"])


CASES = pairwise_cases(FACTORS, grid_case_valid, seed=10)


def _run_case(kit, c: dict, backend: str, seed: int):
    """One grid case: mode 1 (16-bit queries of c["dtype"] on a c["kv"] cache) or, when the case has
    "odt", mode 2 (fp8 e4m3 queries on an e4m3 cache, output c["odt"]; "default": None, bfloat16)."""
    from nvrtc_attn.reference import paged_prefill_reference

    fw = c["fw"]
    if fw == "torch":
        kit.require_torch_cuda()
    q8 = "odt" in c
    mma = bool(c.get("mma"))  # the e4m3-wgmma builds (wrapper fp8_mma=True)
    kind = c.get("qkind", Q8) if q8 else c["kv"]  # mode 2: queries and cache of one fp8 kind
    dtype = ("bfloat16" if c["odt"] == "default" else c["odt"]) if q8 else c["dtype"]
    rng = np.random.default_rng(seed)
    hkv = 1 if c["g"] == 8 else 2
    hqo, d, ps, layout = hkv * c["g"], c["hd"], c["ps"], c["layout"]
    qo, kv = grid_lengths(c["lens"], c["causal"], rng, longer=120)  # up to 3 key blocks
    batch = kit.make_page_table(qo, kv, ps, seed)
    t = batch.total_q
    window_left, soft_cap, q_mag = -1, None, 1.0
    if c["extra"] == "softcap":
        soft_cap, q_mag = 5.0, 3.0
    elif c["extra"] == "window":
        window_left = int(rng.integers(3, 150))
    if q8:
        q = _fp8_random(kit, fw, kind, (t, hqo, d), seed + 11, q_mag)
    else:
        q = kit.randn(fw, (t, hqo, d), dtype, seed + 11, q_mag)
    cache, bases = _fp8_cache(kit, fw, kind, c["cache"], layout, batch.max_pages, ps, hkv, d, seed + 23)
    if c["cache"] != "5d":  # (a 5-D cache is one array: K and V as views of it)
        _poison_unowned8(kit, batch, cache, layout)
    else:
        _poison_unowned8(kit, batch, (cache[:, 0], cache[:, 1]), layout)
    run_scales, ref_scales = _scales(fw, c["scales"], hkv, rng)
    if isinstance(c.get("q_scale"), str):  # an array per KV head or per query head
        values = rng.uniform(0.3, 2.5, hkv if c["q_scale"] == "kvheads" else hqo).astype(np.float32)
        run_scales["q_scale"], ref_scales["q_scale"] = _device_array(fw, values), values
    elif c.get("q_scale") is not None:
        run_scales["q_scale"] = ref_scales["q_scale"] = c["q_scale"]
    out = kit.poison(kit.empty(fw, (t, hqo, d), dtype))
    lse = kit.poison(kit.empty(fw, (t, hqo), "float32")) if c["lse"] else None
    snaps = [kit.Snapshot(b) for b in bases + [q]]
    w = _wrapper(kit, fw, layout, backend, c["kv_load"], **({"fp8_mma": True} if mma else {}))
    kw = dict(causal=c["causal"], window_left=window_left, logits_soft_cap=soft_cap, q_data_type=dtype,
              kv_data_type=_kv_dtype_arg(fw, kind))
    ref_kw = dict(kv_data_type=kind, **ref_scales)
    if q8:
        kw.update(q_data_type=_kv_dtype_arg(fw, kind), o_data_type=None if c["odt"] == "default" else dtype)
        ref_kw["q_data_type"] = kind
    if c["plan_cache"]:
        kw["paged_kv_cache"] = cache
    _plan(w, backend, *batch.index_args(), hqo, hkv, d, ps, **kw)
    res = w.run(q, cache, out=out, lse=lse, return_lse=c["lse"], **run_scales)
    o, o_lse = res if c["lse"] else (res, None)
    assert kit.dtype_name(o) == dtype and tuple(o.shape) == (t, hqo, d)
    expect_path = "gather" if c["kv_load"] == "gather" or ps % 8 or backend == "sm80" else "tma"
    assert w.kv_load_path == expect_path, (w.kv_load_path, expect_path)
    kind_part = "e4m3" if kind == Q8 else "e5m2"
    part = "_q8_mma8_" if mma and backend == "sm90" else f"_{kind_part}_q8_" if q8 else kind_part
    assert part in w.kernel_name, w.kernel_name
    ref_o, ref_lse = paged_prefill_reference(q, cache, *batch.index_args(), kv_layout=layout, causal=c["causal"],
                                             window_left=window_left, logits_soft_cap=soft_cap, **ref_kw)
    kit.check_attention(o, o_lse, ref_o, ref_lse, dtype, what=f"{backend} {w.kernel_name}",
                        rel_tol=q8_mma_rel_tol(dtype) if "_mma8_" in w.kernel_name else None,
                        lse_tol=Q8_MMA_LSE_TOL if "_mma8_" in w.kernel_name else None)
    for s in snaps:
        assert s.unchanged(), "run() modified the fp8 cache or q"


@pytest.mark.gpu
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_fp8_grid(kit, case, backend):
    _run_case(kit, case, backend, _seed(_case_id(case), backend))


# --------------------------------------------------------------------------------------------
# GPU: the widening is exact, on every finite fp8 value


def _finite_bytes(kind):
    table = fp8_table(kind)
    return np.nonzero(np.isfinite(table))[0].astype(np.uint8)


def _raw_fp8(fw, kind, host_bytes):
    if fw == "torch":
        import torch

        return torch.as_tensor(host_bytes, device="cuda").view(getattr(torch, kind))
    import cupy

    return cupy.asarray(host_bytes)


@pytest.mark.gpu
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("path", ["tma", "gather"])
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("kind", KINDS)
def test_fp8_widening_exact(kit, kind, dtype, path, backend):
    """V: q = 0 makes every P equal, and 128 identical V rows holding every finite fp8 value (head_dim
    256) give O = those values exactly (sums of 128 equal terms and the division by 128 are exact; the
    16-bit output holds every fp8 value). K: one-hot queries read key column j into the logit, and the
    LSE of n identical keys, minus log2(n), is K[j] * log2(e) to float32 rounding."""
    from nvrtc_attn.reference import as_float_array

    fw = "torch" if dtype == "bfloat16" else "cupy"
    if fw == "torch":
        kit.require_torch_cuda()
    hd, ps, n_keys = 256, (16 if path == "tma" else 5), 128
    vals = _finite_bytes(kind)
    row = np.zeros(hd, np.uint8)
    row[: vals.size] = vals
    batch = kit.make_page_table([hd], [n_keys], ps, _seed("exact", kind, path))
    pages = batch.max_pages
    buf = np.broadcast_to(row, (pages, ps, 1, hd)).copy()  # every key row the same: [pages, ps, 1, hd]
    k = _raw_fp8(fw, kind, buf)
    v = _raw_fp8(fw, kind, buf.copy())
    import cupy

    table = fp8_table(kind)
    expect = table[row].astype(np.float32)
    w = _wrapper(kit, fw, "NHD", backend, "auto" if path == "tma" else "gather")
    _plan(w, backend, *batch.index_args(), 1, 1, hd, ps, causal=False, sm_scale=1.0, q_data_type=dtype,
          kv_data_type=_kv_dtype_arg(fw, kind))
    # V through O
    q0 = kit.empty(fw, (hd, 1, hd), dtype)
    q0[...] = 0
    o = w.run(q0, (k, v))
    assert w.kv_load_path == ("tma" if path == "tma" and backend == "sm90" else "gather")
    of = cupy.asnumpy(as_float_array(o))
    bad = np.nonzero(of[:, 0, :] != expect[None, :])
    assert bad[0].size == 0, f"O != V at columns {sorted(set(bad[1].tolist()))[:10]}: {of[0, 0, bad[1][:5]]} vs {expect[bad[1][:5]]}"
    # K through LSE: query i is one-hot at column i
    q1 = np.zeros((hd, 1, hd), np.float32)
    q1[np.arange(hd), 0, np.arange(hd)] = 1.0
    if fw == "torch":
        import torch

        qd = torch.as_tensor(q1, device="cuda").to(getattr(torch, dtype))
    else:
        qd = cupy.asarray(q1.astype(dtype))
    _, lse = w.run(qd, (k, v), return_lse=True)
    lf = cupy.asnumpy(as_float_array(lse))[:, 0] - math.log2(n_keys)
    want = expect * np.float32(1.0 / math.log(2.0))
    err = np.abs(lf - want)
    tol = 4e-6 * np.abs(want) + 2e-6
    assert bool(np.all(err <= tol)), f"K widening: worst column {int(np.argmax(err / tol))}, lse {lf[np.argmax(err / tol)]} vs {want[np.argmax(err / tol)]}"


# --------------------------------------------------------------------------------------------
# GPU: targeted cases


@pytest.mark.gpu
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("ps", [16, 5], ids=["tma", "gather"])
def test_fp8_many_tiles_per_cta(kit, backend, ps):
    """Many tiles per CTA (the producer's look-ahead crosses tile boundaries, loads the next tile's Q
    after widening the last V), empty requests in between, per-head scales, e5m2 and e4m3 in turn."""
    kit.require_torch_cuda()
    import torch

    from nvrtc_attn.reference import paged_prefill_reference

    seed = _seed("many", backend, ps)
    rng = np.random.default_rng(seed)
    qo = rng.integers(1, 260, 40)
    qo[::7] = 0
    kv = qo + rng.integers(0, 400, 40)
    kv[3] = 0
    qo[3] = 0
    batch = kit.make_page_table(qo, kv, ps, seed)
    hkv, g, d = 4, 4, 128
    hqo = hkv * g
    q = kit.randn("torch", (batch.total_q, hqo, d), "bfloat16", seed + 1)
    for kind in KINDS:
        cache, bases = _fp8_cache(kit, "torch", kind, "pool", "NHD", batch.max_pages, ps, hkv, d, seed + 2)
        _poison_unowned8(kit, batch, cache, "NHD")
        ks = torch.tensor([0.37, 2.5, 1.1, 0.6], device="cuda")
        vs = torch.tensor([2.5, 0.37, 1.7, 0.9], device="cuda")
        w = _wrapper(kit, "torch", "NHD", backend)
        _plan(w, backend, *batch.index_args(), hqo, hkv, d, ps, causal=True, q_data_type="bfloat16",
              kv_data_type=getattr(torch, kind))
        out = kit.poison(torch.empty_like(q))
        lse = kit.poison(torch.empty(batch.total_q, hqo, dtype=torch.float32, device="cuda"))
        snap = kit.Snapshot(bases[0])
        o, l = w.run(q, cache, out=out, lse=lse, return_lse=True, k_scale=ks, v_scale=vs)
        ref_o, ref_lse = paged_prefill_reference(q, cache, *batch.index_args(), causal=True, k_scale=ks, v_scale=vs)
        kit.check_attention(o, l, ref_o, ref_lse, "bfloat16", what=f"{backend} {kind} {w.kernel_name}")
        assert snap.unchanged()
        if backend == "sm90":
            assert w._plan.num_tiles > 2 * w._plan.num_ctas, "the case must put several tiles on each CTA"


@pytest.mark.gpu
@pytest.mark.parametrize("c", [
    dict(ps=16, hd=128, g=4, causal=True, dtype="bfloat16", kind="float8_e4m3fn", lens=([300, 64], [300, 500]),
         layout="NHD", window=-1, cap=None, scales="head"),
    dict(ps=5, hd=64, g=1, causal=False, dtype="float16", kind="float8_e5m2", lens=([90, 200], [40, 130]),
         layout="HND", window=-1, cap=8.0, scales="tensor"),
    dict(ps=1, hd=256, g=8, causal=True, dtype="bfloat16", kind="float8_e5m2", lens=([130, 7], [260, 7]),
         layout="NHD", window=45, cap=None, scales="head"),
    dict(ps=64, hd=128, g=8, causal=False, dtype="float16", kind="float8_e4m3fn", lens=([0, 100, 33], [10, 300, 0]),
         layout="HND", window=-1, cap=None, scales="none"),
    dict(ps=16, hd=128, g=2, causal=False, dtype="bfloat16", kind="float8_e4m3fn",
         lens=([70, 0, 200], [1300, 5, 1700]), layout="NHD", window=-1, cap=30.0, scales="head"),
    dict(ps=32, hd=256, g=4, causal=True, dtype="float16", kind="float8_e4m3fn", lens=([500], [900]),
         layout="NHD", window=-1, cap=None, scales="tensor"),
], ids=lambda c: f"ps{c['ps']}-hd{c['hd']}-g{c['g']}-{c['kind'][6:10]}")
@pytest.mark.hopper
def test_fp8_sm90_matches_sm80(kit, c):
    """The Hopper path (TMA or gather into staging, producer widening, wgmma) against the portable one
    (cp.async, all-thread widening with the portable bit path, mma.sync) on the same inputs."""
    from nvrtc_attn.reference import paged_prefill_reference

    dtype, kind = c["dtype"], c["kind"]
    fw = "torch" if dtype == "bfloat16" else "cupy"
    if fw == "torch":
        kit.require_torch_cuda()
    seed = _seed("cross8", c["ps"], c["hd"], c["g"], kind)
    batch = kit.make_page_table(*c["lens"], c["ps"], seed)
    hkv = 1 if c["g"] == 8 else 2
    hqo, d = hkv * c["g"], c["hd"]
    q = kit.randn(fw, (batch.total_q, hqo, d), dtype, seed)
    cache, _ = _fp8_cache(kit, fw, kind, "pool", c["layout"], batch.max_pages, c["ps"], hkv, d, seed + 1)
    _poison_unowned8(kit, batch, cache, c["layout"])
    run_scales, ref_scales = _scales(fw, c["scales"], hkv, np.random.default_rng(seed))
    results = {}
    for backend in ("sm90", "sm80"):
        w = _wrapper(kit, fw, c["layout"], backend)
        _plan(w, backend, *batch.index_args(), hqo, hkv, d, c["ps"], causal=c["causal"], window_left=c["window"],
              logits_soft_cap=c["cap"], q_data_type=dtype, kv_data_type=_kv_dtype_arg(fw, kind))
        out = kit.poison(kit.empty(fw, (batch.total_q, hqo, d), dtype))
        results[backend] = w.run(q, cache, out=out, return_lse=True, **run_scales)
    ref_o, ref_lse = paged_prefill_reference(q, cache, *batch.index_args(), kv_layout=c["layout"], causal=c["causal"],
                                             window_left=c["window"], logits_soft_cap=c["cap"], kv_data_type=kind,
                                             **ref_scales)
    for backend, (o, lse) in results.items():
        kit.check_attention(o, lse, ref_o, ref_lse, dtype, what=backend)
    kit.check_agreement(results, dtype)


@pytest.mark.gpu
@pytest.mark.parametrize("backend", BACKENDS)
def test_fp8_layers_one_plan_and_graph(kit, backend):
    """One plan, every layer of an fp8 pool; then run() captured in a CUDA graph with per-head scale
    arrays, replayed after new scale values are written into the same arrays (the kernel reads them)."""
    kit.require_torch_cuda()
    import torch

    from nvrtc_attn.reference import paged_prefill_reference

    seed = _seed("layers8", backend)
    batch = kit.make_page_table([64, 17, 120], [64, 200, 150], 16, seed)
    hqo, hkv, d = 8, 2, 128
    pool = _fp8_random(kit, "torch", "float8_e4m3fn", (batch.max_pages, 4, 2, 16, hkv, d), seed)
    snap = kit.Snapshot(pool)
    w = _wrapper(kit, "torch", "NHD", backend)
    _plan(w, backend, *batch.index_args(), hqo, hkv, d, 16, causal=True, q_data_type="bfloat16",
          kv_data_type=torch.float8_e4m3fn, paged_kv_cache=(pool[:, 0, 0], pool[:, 0, 1]))
    q = kit.randn("torch", (batch.total_q, hqo, d), "bfloat16", seed + 1)
    out = torch.empty_like(q)
    for layer in range(4):
        cache = (pool[:, layer, 0], pool[:, layer, 1])
        kit.poison(out)
        w.run(q, cache, out=out, k_scale=0.5, v_scale=1.25)
        ref_o, ref_lse = paged_prefill_reference(q, cache, *batch.index_args(), causal=True, k_scale=0.5,
                                                 v_scale=1.25)
        kit.check_attention(out, None, ref_o, ref_lse, "bfloat16", what=f"{backend} layer {layer}")
    cache = (pool[:, 2, 0], pool[:, 2, 1])
    ks = torch.tensor([0.37, 2.5], device="cuda")
    vs = torch.tensor([2.5, 0.37], device="cuda")
    lse = torch.empty(batch.total_q, hqo, dtype=torch.float32, device="cuda")
    graph = kit.torch_graph(lambda: w.run(q, cache, out=out, lse=lse, return_lse=True, k_scale=ks, v_scale=vs))
    for rep, (k_new, v_new) in enumerate([((1.5, 0.25), (0.5, 3.0)), ((0.37, 2.5), (2.5, 0.37))]):
        ks.copy_(torch.tensor(k_new, device="cuda"))
        vs.copy_(torch.tensor(v_new, device="cuda"))
        kit.poison(out)
        kit.poison(lse)
        graph.replay()
        torch.cuda.synchronize()
        ref_o, ref_lse = paged_prefill_reference(q, cache, *batch.index_args(), causal=True, k_scale=np.array(k_new),
                                                 v_scale=np.array(v_new))
        kit.check_attention(out, lse, ref_o, ref_lse, "bfloat16", what=f"{backend} replay {rep}")
    assert snap.unchanged()


@pytest.mark.gpu
def test_fp8_functional_api_uint8(kit):
    """paged_prefill with a CuPy uint8 cache and kv_data_type; without kv_data_type a clear TypeError."""
    import cupy

    import nvrtc_attn
    from nvrtc_attn.reference import paged_prefill_reference

    seed = _seed("functional8")
    batch = kit.make_page_table([40, 0, 77], [90, 12, 77], 16, seed)
    hqo, hkv, d = 8, 2, 128
    q = kit.randn("cupy", (batch.total_q, hqo, d), "float16", seed)
    cache, bases = _fp8_cache(kit, "cupy", "float8_e5m2", "pool", "NHD", batch.max_pages, 16, hkv, d, seed + 1)
    with pytest.raises(TypeError, match="kv_data_type"):
        nvrtc_attn.paged_prefill(q, cache, *batch.index_args(), causal=True)
    o, lse = nvrtc_attn.paged_prefill(q, cache, *batch.index_args(), causal=True, return_lse=True,
                                      kv_data_type="float8_e5m2", k_scale=0.37, v_scale=2.5)
    ref_o, ref_lse = paged_prefill_reference(q, cache, *batch.index_args(), causal=True, kv_data_type="float8_e5m2",
                                             k_scale=0.37, v_scale=2.5)
    kit.check_attention(o, lse, ref_o, ref_lse, "float16", what="paged_prefill fp8")
    assert isinstance(o, cupy.ndarray)


# --------------------------------------------------------------------------------------------
# GPU: fp8 with split-KV, the run() fast path and the short-tile rule

def _dev_f32(fw, values):
    """A float32 device array (per-head scales) of fw's kind."""
    x = np.asarray(values, np.float32)
    if fw == "torch":
        import torch

        return torch.as_tensor(x, device="cuda")
    import cupy

    return cupy.asarray(x)


# (id, qo_lens, kv_lens, (Hqo, Hkv), head_dim, page_size, q dtype, fp8 kind, layout, causal, window,
#  soft cap, scales, fixed_split_size or None). Few queries on long keys: every case splits on a
# 132-SM H200 with a 128 MB workspace (test_fp8_split_cases_plan_as_they_expect checks it on the CPU).
SPLIT_CASES = [
    ("e4m3_head_scales", [64, 64], [16000, 12000], (16, 4), 128, 16, "bfloat16", "float8_e4m3fn", "NHD", True, -1,
     None, "head", None),
    ("e5m2_gather_softcap", [40], [20000], (32, 8), 128, 5, "float16", "float8_e5m2", "NHD", True, -1, 30.0,
     "tensor", None),
    ("e4m3_hd256_window_hnd", [30, 7], [12000, 30000], (16, 4), 256, 16, "bfloat16", "float8_e4m3fn", "HND", True,
     5000, None, "head", None),
    ("e5m2_hd64_fixed_empty", [100, 0, 3], [5000, 300, 9000], (8, 8), 64, 16, "bfloat16", "float8_e5m2", "NHD",
     False, -1, None, "head", 32),
]


def test_fp8_split_cases_plan_as_they_expect():
    """Pre-flight for test_fp8_split_kv (CPU): each case's plan, made as the wrapper makes it on a
    132-SM Hopper GPU, has pieces, and runs the split twin of an fp8 build."""
    from test_split import _as_wrapper_plans

    for name, qo, kv, heads, hd, ps, dtype, kind, layout, causal, window, cap, scales, fixed in SPLIT_CASES:
        plan, kernel = _as_wrapper_plans(qo, kv, heads, hd, ps, causal, window, fixed, kv_dtype=kind)
        tag = "e4m3" if kind == "float8_e4m3fn" else "e5m2"
        assert plan.num_merges > 0 and kernel.endswith(f"_{tag}_split_sm_90a"), (name, plan.num_merges, kernel)


@pytest.mark.gpu
@pytest.mark.hopper
@pytest.mark.parametrize("case", SPLIT_CASES, ids=[c[0] for c in SPLIT_CASES])
def test_fp8_split_kv(kit, case):
    """An fp8 batch that cannot fill the SMs runs split (the fp8 build's split-KV twin, then
    merge_split.cu), unsplit (disable_split_kv) and on sm80: each against the reference on the
    dequantized cache, and split against the others. Per-head scales: the pieces apply the KV head's
    v factor and logit scale (partial LSE), the merge the per-tensor v_scale. Outputs and the float
    workspace are poisoned before every run; a second run (another layer) repeats the bits."""
    import nvrtc_attn
    from nvrtc_attn.reference import paged_prefill_reference

    name, qo, kv, (hqo, hkv), d, ps, dtype, kind, layout, causal, window, cap, scales, fixed = case
    fw = "torch" if dtype == "bfloat16" else "cupy"
    if fw == "torch":
        kit.require_torch_cuda()
    seed = _seed("split8", name)
    batch = kit.make_page_table(qo, kv, ps, seed)
    q = kit.randn(fw, (batch.total_q, hqo, d), dtype, seed + 1)
    cache, bases = _fp8_cache(kit, fw, kind, "pool", layout, batch.max_pages, ps, hkv, d, seed + 2)
    _poison_unowned8(kit, batch, cache, layout)
    run_scales, ref_scales = _scales(fw, scales, hkv, np.random.default_rng(seed))
    ref_o, ref_lse = paged_prefill_reference(q, cache, *batch.index_args(), kv_layout=layout, causal=causal,
                                             window_left=window, logits_soft_cap=cap, kv_data_type=kind,
                                             **ref_scales)
    snaps = [kit.Snapshot(b) for b in bases + [q]]
    tag = "e4m3" if kind == "float8_e4m3fn" else "e5m2"
    results = {}
    for mode in ("split", "unsplit", "sm80"):
        ws = kit.workspace(fw)
        backend = "sm80" if mode == "sm80" else "sm90"
        w = nvrtc_attn.BatchPrefillWithPagedKVCacheWrapper(ws, layout, backend=backend)
        _plan(w, backend, *batch.index_args(), hqo, hkv, d, ps, causal=causal, window_left=window,
              logits_soft_cap=cap, q_data_type=dtype, kv_data_type=_kv_dtype_arg(fw, kind),
              disable_split_kv=mode == "unsplit", fixed_split_size=fixed)
        p = w._plan
        what = f"{name} {mode}: {w.kernel_name}, {p.num_tiles} tiles, {p.num_merges} split row tiles"
        assert tag in w.kernel_name, what
        assert (p.num_merges > 0) == (mode == "split") and ("split" in w.kernel_name) == (mode == "split"), what
        outs = []
        for _ in range(2):
            out = kit.poison(kit.empty(fw, (batch.total_q, hqo, d), dtype))
            lse = kit.poison(kit.empty(fw, (batch.total_q, hqo), "float32"))
            kit.poison_workspace(ws)
            w.run(q, cache, out=out, lse=lse, return_lse=True, **run_scales)
            kit.synchronize()
            kit.check_attention(out, lse, ref_o, ref_lse, dtype, what=what)
            outs.append((out, lse))
        assert kit.bits_equal(outs[0][0], outs[1][0]), f"{what}: a second run gave other bits"
        results[mode] = outs[0]
    for other in ("unsplit", "sm80"):
        kit.check_attention(*results["split"], *results[other], dtype, what=f"{name}: split vs {other}")
    for sn in snaps:
        assert sn.unchanged(), f"{name}: the fp8 cache or q was written"


@pytest.mark.gpu
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("fw", ["torch", "cupy"])
def test_fp8_repeated_runs_follow_the_scales(kit, fw, backend):
    """run() refills its parameters only when an operand changed, and with torch operands a call
    equal to the last validated one only launches: both must see the per-head scale arrays. Scale
    sets alternate (arrays, other arrays, an array's contents rewritten in place, per-tensor values),
    each run twice (the second time through the fast path), each against the reference; a set's bits
    repeat on the second pass."""
    from nvrtc_attn.reference import paged_prefill_reference

    dtype = "bfloat16" if fw == "torch" else "float16"
    if fw == "torch":
        kit.require_torch_cuda()
    seed = _seed("repeat8", fw, backend)
    batch = kit.make_page_table([40, 90], [120, 300], 16, seed)
    hqo, hkv, d = 8, 2, 128
    cache, _ = _fp8_cache(kit, fw, "float8_e4m3fn", "pool", "NHD", batch.max_pages, 16, hkv, d, seed)
    q = kit.randn(fw, (batch.total_q, hqo, d), dtype, seed + 1)
    out = kit.empty(fw, (batch.total_q, hqo, d), dtype)
    w = _wrapper(kit, fw, "NHD", backend)
    _plan(w, backend, *batch.index_args(), hqo, hkv, d, 16, causal=True, q_data_type=dtype,
          kv_data_type=_kv_dtype_arg(fw, "float8_e4m3fn"))
    a = dict(k_scale=_dev_f32(fw, [0.37, 2.5]), v_scale=_dev_f32(fw, [2.5, 0.37]))
    b = dict(k_scale=_dev_f32(fw, [1.5, 0.25]), v_scale=_dev_f32(fw, [0.5, 3.0]))
    sets = [("a", a), ("b", b), ("a again", a), ("tensor k, array v", dict(k_scale=0.5, v_scale=b["v_scale"])),
            ("tensor", dict(k_scale=0.7, v_scale=1.3)), ("a rewritten", a)]
    bits = {}
    for name, sc in sets:
        if name == "a rewritten":
            a["k_scale"][...] = _dev_f32(fw, [0.9, 1.7])
        ref_sc = {key: (np.asarray(val.tolist(), np.float32) if hasattr(val, "tolist") else val)
                  for key, val in sc.items()}
        ref_o, _ = paged_prefill_reference(q, cache, *batch.index_args(), causal=True,
                                           kv_data_type="float8_e4m3fn", **ref_sc)
        for rep in range(2):
            kit.poison(out)
            w.run(q, cache, out=out, **sc)
            kit.synchronize()
            kit.check_attention(out, None, ref_o, None, dtype, what=f"{backend} {fw} {name} run {rep}")
        snapshot = kit.empty(fw, out.shape, dtype)
        snapshot[...] = out
        key = name.replace(" again", "")
        if key in bits:
            assert kit.bits_equal(snapshot, bits[key]), f"{name}: other bits than the first run of these scales"
        bits[key] = snapshot


# Few-query batches on the sm90 short tiles with an fp8 cache (SM90_FP8_SHORT_TILES): (mode: "bf16" /
# "fp16" queries or "q8" e4m3 queries with bf16 output, fp8 kind, page_size, head_dim, group, Hkv,
# qo_lens, kv_lens, causal, window, soft cap, layout, cache form, scales, framework, K/V path with
# SHORT_TILES_GATHER off). Key counts with partial last blocks, one key, empty requests.
FP8_SHORT_CASES = [
    ("bf16", "float8_e4m3fn", 16, 128, 4, 2, [4] * 6, [700, 1000, 333, 64, 65, 4], True, -1, None, "NHD", "pool",
     "head", "torch", "tma"),
    ("fp16", "float8_e5m2", 64, 128, 8, 2, [1] * 5, [129, 4000, 64, 63, 2000], False, -1, None, "HND", "tuple",
     "tensor", "cupy", "tma"),
    ("q8", "float8_e4m3fn", 16, 128, 4, 2, [0, 4, 3, 0, 5, 8], [100, 0, 256, 0, 1000, 3], False, -1, None, "NHD",
     "pool", "tensor", "torch", "tma"),
    ("bf16", "float8_e5m2", 16, 128, 4, 2, [8, 2, 16], [900, 300, 2000], True, 100, 5.0, "NHD", "5d", "head",
     "torch", "tma"),
    ("q8", "float8_e4m3fn", 5, 128, 8, 1, [2, 8], [333, 1000], False, 50, None, "HND", "tuple", "head", "torch",
     "gather"),
    ("fp16", "float8_e4m3fn", 1, 128, 1, 4, [16, 3, 9], [500, 3, 1200], True, -1, None, "NHD", "kvdiff", "none",
     "cupy", "gather"),
    ("bf16", "float8_e4m3fn", 16, 128, 4, 2, [4] * 7 + [17], [1000] * 7 + [1100], True, -1, None, "NHD", "pool",
     "tensor", "torch", "tma"),
    ("bf16", "float8_e4m3fn", 16, 64, 4, 2, [4] * 4, [1000, 129, 5, 2048], True, -1, None, "NHD", "pool", "head",
     "torch", "tma"),
    ("q8", "float8_e4m3fn", 8, 64, 1, 3, [16, 1], [300, 77], False, -1, 5.0, "HND", "pool", "tensor", "torch", "tma"),
    ("fp16", "float8_e5m2", 32, 64, 3, 2, [5, 12, 1], [400, 1500, 31], False, -1, None, "NHD", "tuple", "none",
     "cupy", "tma"),
]


def _fp8_short_id(c):
    cap = f"-cap{c[10]:g}" if c[10] else ""
    return (f"{c[0]}-{'e4m3' if c[1] == 'float8_e4m3fn' else 'e5m2'}-ps{c[2]}-hd{c[3]}-g{c[4]}-q{max(c[6])}-{c[11]}-{c[12]}-"
            f"sc{c[13]}-{c[14]}-{'causal' if c[8] else 'full'}-w{c[9]}{cap}")


@pytest.fixture
def _short_fill(monkeypatch):
    """Small batches on the short tiles (plan() would give them to the full tiles with split-KV: too
    few tiles to fill the short grid, variants.SHORT_TILE_MIN_FILL)."""
    from nvrtc_attn import variants

    monkeypatch.setattr(variants, "SHORT_TILE_MIN_FILL", 0.0)


@pytest.mark.gpu
@pytest.mark.hopper
@pytest.mark.parametrize("c", FP8_SHORT_CASES, ids=[_fp8_short_id(c) for c in FP8_SHORT_CASES])
def test_fp8_short_tiles(kit, c, _short_fill):
    """The fp8 short build on each case (K/V by the gather, the short tiles' default) against the
    float32 reference on the dequantized cache (and queries), then the same inputs through sm80."""
    _fp8_short_case(kit, c, "gather")


FP8_SHORT_TMA_CASES = [c for c in FP8_SHORT_CASES if c[-1] == "tma"][:4]


@pytest.mark.gpu
@pytest.mark.hopper
@pytest.mark.parametrize("c", FP8_SHORT_TMA_CASES, ids=[_fp8_short_id(c) for c in FP8_SHORT_TMA_CASES])
def test_fp8_short_tiles_tma_boxes(kit, c, _short_fill, short_tiles_tma):
    """The fp8 short build with K/V by TMA page boxes (conftest's short_tiles_tma), against the
    reference and sm80."""
    _fp8_short_case(kit, c, "tma")


def _fp8_short_case(kit, c, path):
    from nvrtc_attn import launcher, variants
    from nvrtc_attn.reference import paged_prefill_reference

    mode, kind, ps, d, g, hkv, qo_lens, kv_lens, causal, window, cap, layout, form, sc, fw, case_path = c
    path = path if case_path == "tma" else "gather"
    if fw == "torch":
        kit.require_torch_cuda()
    assert variants.sm90_short_tiles(d, qo_lens, kv_lens, g, kv_dtype=kind), "not a short-tile batch"
    seed = _seed("fp8short", _fp8_short_id(c))
    rng = np.random.default_rng(seed)
    batch = kit.make_page_table(qo_lens, kv_lens, ps, seed)
    t, hqo = batch.total_q, hkv * g
    dtype = "bfloat16" if mode in ("bf16", "q8") else "float16"
    q_mag = 3.0 if cap else 1.0
    q = _fp8_random(kit, fw, Q8, (t, hqo, d), seed + 1, q_mag) if mode == "q8" else \
        kit.randn(fw, (t, hqo, d), dtype, seed + 1, q_mag)
    cache, bases = _fp8_cache(kit, fw, kind, form, layout, batch.max_pages, ps, hkv, d, seed + 2)
    _poison_unowned8(kit, batch, (cache[:, 0], cache[:, 1]) if form == "5d" else cache, layout)
    run_scales, ref_scales = _scales(fw, sc, hkv, rng)
    kw = dict(causal=causal, window_left=window, logits_soft_cap=cap, q_data_type=dtype,
              kv_data_type=_kv_dtype_arg(fw, kind))
    ref_kw = dict(kv_data_type=kind, **ref_scales)
    if mode == "q8":
        run_scales["q_scale"] = ref_kw["q_scale"] = 0.37
        kw.update(q_data_type=_kv_dtype_arg(fw, Q8), o_data_type=dtype)
        ref_kw["q_data_type"] = Q8
    snaps = [kit.Snapshot(b) for b in bases + [q]]
    ref_o, ref_lse = paged_prefill_reference(q, cache, *batch.index_args(), kv_layout=layout, causal=causal,
                                             window_left=window, logits_soft_cap=cap, **ref_kw)
    outs = {}
    for backend, kv_load in (("sm90", "auto"), ("sm90", "gather"), ("sm80", "auto")):
        w = _wrapper(kit, fw, layout, backend, kv_load)
        _plan(w, backend, *batch.index_args(), hqo, hkv, d, ps, **kw)
        name = f"{backend} {kv_load} {w.kernel_name}"
        if backend == "sm90":
            plan, kernel = w._plan, w._kernels[0]
            assert "_m64_nopp_" in w.kernel_name and plan.build.short_tiles and plan.block_m == 64, name
            assert plan.build.kv_fp8 == variants.FP8_KV_DTYPES[kind] and plan.build.q_fp8 == (mode == "q8"), name
            assert kernel.blocks_per_sm == 2 and plan.num_ctas == 2 * launcher.sm_count(0), name
        out = kit.poison(kit.empty(fw, (t, hqo, d), dtype))
        lse = kit.poison(kit.empty(fw, (t, hqo), "float32"))
        w.run(q, cache, out=out, lse=lse, return_lse=True, **run_scales)
        kit.synchronize()
        want = "gather" if backend == "sm80" or kv_load == "gather" else path
        assert w.kv_load_path == want, f"{name}: K/V by {w.kv_load_path}, expected {want}"
        kit.check_attention(out, lse, ref_o, ref_lse, dtype, what=name)
        outs["sm80" if backend == "sm80" else name] = (out, lse)
    for s in snaps:
        assert s.unchanged(), "run() modified the fp8 cache or q"
    kit.check_agreement(outs, dtype)


@pytest.mark.gpu
@pytest.mark.hopper
def test_fp8_cuda_graph_mode_with_splits(kit):
    """use_cuda_graph=True with an fp8 cache: the first plan pins the split-KV twin of its fp8 build;
    run() with per-head scale arrays is captured once (prefill + merge), then batches that split
    automatically, do not split, or split by fixed_split_size are re-planned and replayed with new
    scale values written into the captured arrays; each replay matches the reference."""
    kit.require_torch_cuda()
    import torch

    import nvrtc_attn
    from nvrtc_attn.reference import paged_prefill_reference

    bs, hqo, hkv, d, ps = 2, 16, 4, 128, 16
    max_pages = 2600
    pool = _fp8_random(kit, "torch", "float8_e4m3fn", (max_pages, 3, 2, ps, hkv, d), 201)
    cache = (pool[:, 2, 0], pool[:, 2, 1])
    snap = kit.Snapshot(pool)
    ws = kit.workspace("torch")
    w = nvrtc_attn.BatchPrefillWithPagedKVCacheWrapper(ws, "NHD", True, backend="sm90",
                                                       **kit.graph_buffers(bs, max_pages))
    plan_kw = dict(causal=True, q_data_type="bfloat16", kv_data_type=torch.float8_e4m3fn)
    first = kit.make_page_table([300, 200], [400, 200], ps, 202, extra_pages=0)
    w.plan(*first.index_args(), hqo, hkv, d, ps, **plan_kw)
    assert "split" in w.kernel_name and "e4m3" in w.kernel_name, w.kernel_name
    t_max = first.total_q
    q = kit.randn("torch", (t_max, hqo, d), "bfloat16", 203)
    out = torch.empty(t_max, hqo, d, dtype=torch.bfloat16, device="cuda")
    lse = torch.empty(t_max, hqo, dtype=torch.float32, device="cuda")
    ks = torch.ones(hkv, device="cuda")
    vs = torch.ones(hkv, device="cuda")
    graph = kit.torch_graph(lambda: w.run(q, cache, out=out, lse=lse, return_lse=True, k_scale=ks, v_scale=vs))
    replans = [("auto split", [64, 64], [16000, 12000], {}, True),
               ("no split", [250, 250], [250, 700], {}, False),
               ("fixed_split_size", [100, 3], [5000, 9000], {"fixed_split_size": 32}, True),
               ("auto split again", [10, 90], [20000, 3000], {}, True)]
    rng = np.random.default_rng(204)
    for rep, (name, qo, kv, extra, splits) in enumerate(replans):
        batch = kit.make_page_table(qo, kv, ps, 210 + rep, extra_pages=0)
        shift = int(rng.integers(0, max_pages - batch.max_pages + 1))
        indices = batch.paged_kv_indices + shift
        index_args = (batch.qo_indptr, batch.paged_kv_indptr, indices, batch.paged_kv_last_page_len)
        w.plan(*index_args, hqo, hkv, d, ps, **plan_kw, **extra)
        what = f"replay {rep} ({name}): {w.kernel_name}, {w._plan.num_merges} split row tiles"
        assert (w._plan.num_merges > 0) == splits, what
        n = batch.total_q
        q[:n].copy_(kit.randn("torch", (n, hqo, d), "bfloat16", 220 + rep))
        k_new, v_new = rng.uniform(0.3, 2.5, hkv).astype(np.float32), rng.uniform(0.3, 2.5, hkv).astype(np.float32)
        ks.copy_(torch.as_tensor(k_new, device="cuda"))
        vs.copy_(torch.as_tensor(v_new, device="cuda"))
        kit.poison(out)
        kit.poison(lse)
        kit.poison_workspace(ws)
        graph.replay()
        torch.cuda.synchronize()
        ref_o, ref_lse = paged_prefill_reference(q[:n], cache, *index_args, causal=True, k_scale=k_new,
                                                 v_scale=v_new)
        kit.check_attention(out[:n], lse[:n], ref_o, ref_lse, "bfloat16", what=what)
    assert snap.unchanged()


# --------------------------------------------------------------------------------------------
# GPU: bad input through the public API; nothing is written, the cache is untouched


def _bad_setup(kit):
    kit.require_torch_cuda()
    import torch

    batch = kit.make_page_table([20, 9], [40, 9], 16, 91)
    hqo, hkv, d = 4, 2, 64
    pool = _fp8_random(kit, "torch", "float8_e4m3fn", (batch.max_pages, 2, 2, 16, hkv, d), 92)
    q = kit.randn("torch", (batch.total_q, hqo, d), "bfloat16", 93)
    out = kit.poison(torch.empty_like(q))
    w = _wrapper(kit, "torch", "NHD", "auto")
    w.plan(*batch.index_args(), hqo, hkv, d, 16, causal=True, q_data_type="bfloat16",
           kv_data_type=torch.float8_e4m3fn)
    return w, batch, pool, q, out


BAD_RUN_CASES = ["bf16_cache", "e5m2_cache", "k_scale_shape", "v_scale_dtype", "k_scale_host", "v_scale_rank",
                 "q_scale_qo_heads", "k_scale_negative"]


@pytest.mark.gpu
@pytest.mark.parametrize("case", BAD_RUN_CASES)
def test_fp8_run_rejections_write_nothing(kit, case):
    import torch

    w, batch, pool, q, out = _bad_setup(kit)
    snap = kit.Snapshot(pool)
    cache = (pool[:, 1, 0], pool[:, 1, 1])
    kw = {}
    exc, msg = ValueError, ""
    if case == "bf16_cache":
        cache = tuple(x.to(torch.bfloat16) for x in cache)
        exc, msg = TypeError, r"float8_e4m3fn.*got bfloat16"
    elif case == "e5m2_cache":
        cache = tuple(x.view(torch.uint8).view(torch.float8_e5m2) for x in cache)
        exc, msg = TypeError, r"float8_e4m3fn.*got float8_e5m2"
    elif case == "k_scale_shape":
        kw, msg = dict(k_scale=torch.ones(3, device="cuda")), r"k_scale.*num_kv_heads"
    elif case == "v_scale_dtype":
        kw, exc, msg = dict(v_scale=torch.ones(2, device="cuda", dtype=torch.float16)), TypeError, r"v_scale.*float32"
    elif case == "k_scale_host":
        kw, msg = dict(k_scale=torch.ones(2)), r"k_scale.*device"
    elif case == "v_scale_rank":
        kw, msg = dict(v_scale=torch.ones(1, 2, device="cuda")), r"v_scale.*num_kv_heads"
    elif case == "q_scale_qo_heads":  # per query head needs fp8 queries (per KV head is taken)
        kw, exc, msg = dict(q_scale=torch.ones(4, device="cuda")), NotImplementedError, r"q_scale per query head"
    elif case == "k_scale_negative":
        kw, msg = dict(k_scale=-0.5), r"k_scale.*positive"
    torch.cuda.synchronize()
    with pytest.raises(exc, match=msg):
        w.run(q, cache, out=out, **kw)
    torch.cuda.synchronize()
    assert bool(torch.isnan(out).all()), "a rejected run() wrote the output"
    assert snap.unchanged()


@pytest.mark.gpu
def test_fp8_plan_rejections_gpu(kit):
    """A 16-bit plan refuses an fp8 cache (and its bytes); fp8 queries with a 16-bit cache are refused at
    plan() (mode 2 needs an fp8 cache)."""
    kit.require_torch_cuda()
    import torch

    w, batch, pool, q, out = _bad_setup(kit)
    w.plan(*batch.index_args(), 4, 2, 64, 16, causal=True, q_data_type="bfloat16")
    cache = (pool[:, 1, 0], pool[:, 1, 1])
    with pytest.raises(TypeError, match=r"bfloat16.*float8_e4m3fn"):
        w.run(q, cache, out=out)
    with pytest.raises(TypeError, match=r"uint8.*kv_data_type"):
        w.run(q, tuple(x.view(torch.uint8) for x in cache), out=out)
    with pytest.raises(ValueError, match="needs an fp8 cache"):
        w.plan(*batch.index_args(), 4, 2, 64, 16, causal=True, q_data_type=torch.float8_e4m3fn,
               kv_data_type=torch.bfloat16)
    torch.cuda.synchronize()
    assert bool(torch.isnan(out).all())


# --------------------------------------------------------------------------------------------
# Mode 2: fp8 e4m3 queries on an e4m3 cache (q_data_type float8_e4m3fn; output o_data_type)
#
# Error bounds: the kernels widen the e4m3 queries to the output's 16-bit type exactly (fp16 and bf16
# hold every finite e4m3 value; test_fp8q_widening_exact checks all 254 of them), and the reference
# computes on the same dequantized q and cache with q_scale in float32: the kernels' own rounding is
# that of 16-bit queries on a 16-bit cache (P and O in the output's type, fp32 accumulation), so the
# mode-1 bounds apply with the output's dtype: rel L2 5e-3 (fp16), 2e-2 (bf16), LSE 1e-2 abs.

Q8 = "float8_e4m3fn"


def _q8_plan_args(**changes):
    return _plan_args(**{"q_data_type": Q8, "kv_data_type": Q8, **changes})


@pytest.mark.parametrize("kind", [Q8, "float8_e5m2"])
@pytest.mark.parametrize("torch_q", [False, True])
@pytest.mark.parametrize("kv", [None, "name", "torch"])
@pytest.mark.parametrize("o", [None, "float16", "bfloat16", _FakeTorchDtype("float16")], ids=str)
def test_plan_accepts_fp8_queries_cpu(kind, torch_q, kv, o):
    from nvrtc_attn import validate

    q = _FakeTorchDtype(kind) if torch_q else kind
    kv = {None: None, "name": kind, "torch": _FakeTorchDtype(kind)}[kv]
    a = validate.check_plan_args(**_q8_plan_args(q_data_type=q, kv_data_type=kv, o_data_type=o))
    assert a.q_dtype == kind and a.kv_dtype == kind
    assert a.dtype == (validate.FP8_Q_DEFAULT_O_DTYPE if o is None else str(o).rsplit(".", 1)[-1])
    assert validate.FP8_Q_DEFAULT_O_DTYPE == "bfloat16"  # FlashInfer's 16-bit convention for fp8 inputs
    assert validate.check_plan_args(**_plan_args()).q_dtype == ""  # 16-bit queries: unchanged


@pytest.mark.parametrize("hd", [64, 128, 256])
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_choose_build_fp8_queries(hd, dtype):
    """fp8 queries take the mode-1 e4m3 tiles with Q_FP8=1 (name `_e4m3_q8_`), Q without a TMA box, on
    both backends; their split twins keep Q_FP8; the builds are in builds_of() and all_variants()."""
    from nvrtc_attn import variants

    names = {v.name for v in variants.all_variants()}
    for mean_blocks, pingpong in ((2.0, True), (40.0, False)):
        b = variants.choose_build("sm90", variants.HOPPER_ARCH, hd, dtype, 16, 4, -1, mean_blocks, kv_dtype=Q8,
                                  q_dtype=Q8)
        mode1 = variants.choose_build("sm90", variants.HOPPER_ARCH, hd, dtype, 16, 4, -1, mean_blocks, kv_dtype=Q8)
        assert (b.q_fp8, b.kv_fp8, b.pingpong, b.q_box) == (1, 1, pingpong, None)
        assert (b.tile, b.kv_box) == (mode1.tile, mode1.kv_box) and mode1.q_fp8 == 0 and mode1.q_box is not None
        assert b.name == mode1.name.replace("_e4m3_sm_90a", "_e4m3_q8_sm_90a")
        assert b.variants[0] in variants.builds_of("sm90", variants.HOPPER_ARCH, hd, dtype, Q8, Q8)
        twin = variants.split_build(b)
        a, t = dict(b.variants[0].defines), dict(twin.variants[0].defines)
        assert {k for k in a if a[k] != t[k]} == {"SPLIT_KV"} and t["Q_FP8"] == 1
        assert twin.variants[0] == variants.prefill_sm90_variant(hd, dtype, pingpong, b.tile, split=True,
                                                                 kv_dtype=Q8, q_dtype=Q8)
        assert {b.name, twin.name} <= names
        assert "Q_FP8" not in dict(mode1.variants[0].defines)  # other builds' macros unchanged
    for arch in (variants.HOPPER_ARCH, variants.PORTABLE_ARCH):
        b80 = variants.choose_build("sm80", arch, hd, dtype, 5, 1, -1, 0.0, kv_dtype=Q8, q_dtype=Q8)
        assert b80.q_fp8 == 1 and len(b80.variants) == 2 and {v.name for v in b80.variants} <= names
        assert set(b80.variants) <= set(variants.builds_of("sm80", arch, hd, dtype, Q8, Q8))
    with pytest.raises(ValueError, match="float8_e4m3fn"):
        variants.prefill_sm90_variant(hd, dtype, kv_dtype="float8_e5m2", q_dtype=Q8)


def test_fp8_q_variant_count():
    """Per fp8 query kind (e4m3, e5m2; the cache of the same kind): 24 sm90 builds (3 head dims x 2
    output dtypes x turn-taking or not, plus as many split twins), 4 short-tile ones (head_dim 64 and
    128 x 2 output dtypes) and 24 sm80 ones (x 2 offset tables x 2 archs); for e4m3 also 8 e4m3-wgmma
    ones (head_dim 128 likewise); all named `_<kind>_q8_`, Q_FP8 the cache's KV_FP8."""
    from nvrtc_attn import variants

    q8 = variants.fp8_q_variants()
    mma = [v for v in q8 if "FP8_MMA" in dict(v.defines)]
    assert len(mma) == 8 and all("_e4m3_q8_mma8_" in v.name and dict(v.defines)["HEAD_DIM"] == 128 for v in mma)
    for kind, code in (("e4m3", 1), ("e5m2", 2)):
        of = [v for v in q8 if dict(v.defines)["Q_FP8"] == code]
        assert all(f"_{kind}_q8_" in v.name and dict(v.defines)["KV_FP8"] == code for v in of)
        short = [v for v in of if v.entry == "prefill_sm90" and dict(v.defines)["CTAS_PER_SM"] == 2]
        assert len(short) == 4 and all(f"_m64_nopp_{kind}_q8_" in v.name and "FP8_MMA" not in dict(v.defines)
                                       for v in short)
        assert sum(v.entry == "prefill_sm90" for v in of) == 24 + 4 + (8 if code == 1 else 0)
        assert sum(v.entry == "prefill_sm80" for v in of) == 24
    assert len({v.name for v in q8}) == len(q8) == 2 * (24 + 4 + 24) + 8
    others = [v for v in variants.all_variants() if v not in q8]
    assert not any("Q_FP8" in dict(v.defines) or "_q8" in v.name for v in others)


def _cpu_q8_plan(**changes):
    from nvrtc_attn import planner, validate

    a = validate.check_plan_args(**_q8_plan_args(**changes))
    return planner.make_plan(a.qo_indptr, a.paged_kv_indptr, a.paged_kv_indices, a.paged_kv_last_page_len,
                             a.num_qo_heads, a.num_kv_heads, a.head_dim, a.page_size, causal=True, dtype=a.dtype,
                             kv_dtype=a.kv_dtype, q_dtype=a.q_dtype or None, num_ctas=4, block_m=64)


Q_DTYPE_CASES = [  # (id, plan kind: "q8" fp8 queries / "mode1" bf16 queries on e4m3, q dtype, message regex)
    ("uint8_q_mode1_plan", "mode1", np.uint8, r"q is uint8.*q_data_type='float8_e4m3fn'.*bfloat16"),
    ("f16_q_q8_plan", "q8", np.float16, r"q dtype must be float8_e4m3fn \(or its bytes as uint8\).*got float16"),
    ("f32_q_q8_plan", "q8", np.float32, r"float8_e4m3fn.*got float32"),
]


@pytest.mark.parametrize("case", Q_DTYPE_CASES, ids=[c[0] for c in Q_DTYPE_CASES])
def test_q_dtype_rejections_cpu(case):
    from nvrtc_attn import arrays, validate

    _, kind, dtype, msg = case
    plan = _cpu_q8_plan() if kind == "q8" else _cpu_plan()
    q = arrays.wrap(np.zeros((plan.total_q, 4, 64), dtype=dtype), "q")
    with pytest.raises(TypeError, match=msg):
        validate.check_q(q, plan)


def test_uint8_q_passes_dtype_check_of_fp8_q_plan_cpu():
    """The bytes of fp8 queries pass the dtype rule of an fp8-query plan and fail only for being on the host."""
    from nvrtc_attn import arrays, validate

    plan = _cpu_q8_plan()
    assert plan.q_dtype == Q8 and plan.dtype == "bfloat16"
    q = arrays.wrap(np.zeros((plan.total_q, 4, 64), np.uint8), "q")
    with pytest.raises(ValueError, match="device"):
        validate.check_q(q, plan)


def test_out_dtype_of_fp8_q_plan_cpu():
    """out must have the plan's o_data_type (fp8 queries: not q's dtype)."""
    from nvrtc_attn import arrays, validate

    q = arrays.wrap(np.zeros((14, 4, 64), np.uint8), "q")
    out = arrays.wrap(np.zeros((14, 4, 64), np.float32), "out")
    with pytest.raises(TypeError, match=r"out dtype must be float16, the plan's o_data_type, got float32"):
        validate.check_out(out, q, "float16")


def _q_scale_plan(q_dtype=Q8, num_qo_heads=8, num_kv_heads=2):
    """What validate.check_q_scale reads of a plan."""
    import types

    return types.SimpleNamespace(num_qo_heads=num_qo_heads, num_kv_heads=num_kv_heads, q_dtype=q_dtype)


Q_SCALE_CASES = [  # (id, value, plan overrides, exception, message regex)
    ("host_kv_heads", np.ones(2, np.float32), {}, ValueError, r"q_scale.*device"),
    ("host_qo_heads", np.ones(8, np.float32), {}, ValueError, r"q_scale.*device"),
    ("length", np.ones(3, np.float32), {}, ValueError,
     r"q_scale.*\[num_kv_heads\] = \[2\] or \[num_qo_heads\] = \[8\], got \[3\]"),
    ("length1", np.ones(1, np.float32), {}, ValueError, r"q_scale.*\[num_kv_heads\] = \[2\].*got \[1\]"),
    ("rank", np.ones((2, 1), np.float32), {}, ValueError, r"q_scale.*1-D.*\[num_kv_heads\]"),
    ("float16", np.ones(2, np.float16), {}, TypeError, r"q_scale.*float32.*float16"),
    ("strided", np.ones(4, np.float32)[::2], {}, ValueError, r"q_scale.*contiguous"),
    ("qo_heads_16bit_queries", np.ones(8, np.float32), dict(q_dtype=""), NotImplementedError,
     r"q_scale per query head.*\[8\].*fp8 queries.*\[num_kv_heads\] = \[2\]"),
    ("string", "2.0", {}, TypeError, r"q_scale must be a real number"),
    ("negative", -0.5, {}, ValueError, r"q_scale.*positive"),
    ("zero", 0.0, {}, ValueError, r"q_scale.*positive"),
    ("inf", math.inf, {}, ValueError, r"q_scale.*finite"),
]


@pytest.mark.parametrize("case", Q_SCALE_CASES, ids=[c[0] for c in Q_SCALE_CASES])
def test_q_scale_rejections_cpu(case):
    """q_scale of an fp8 plan: a number, or a float32 device array per KV head or (fp8 queries on the
    widening builds) per query head; everything else is refused with the rule it breaks."""
    from nvrtc_attn import validate

    _, value, plan_kw, exc, msg = case
    with pytest.raises(exc, match=msg):
        validate.check_q_scale(value, _q_scale_plan(**plan_kw), 0)


def test_q_scale_numbers_cpu():
    from nvrtc_attn import validate

    for plan in (_q_scale_plan(), _q_scale_plan(q_dtype="")):
        assert validate.check_q_scale(None, plan, 0) == (1.0, None, None)
        assert validate.check_q_scale(0.37, plan, 0) == (0.37, None, None)
        assert validate.check_q_scale(np.float32(2.5), plan, 0) == (2.5, None, None)


def test_positional_fp8_scales_cpu():
    """FlashInfer's fp8 call passes the three scales after paged_kv_cache; each may come once."""
    from nvrtc_attn import BatchPrefillWithPagedKVCacheWrapper as W

    assert W._positional_scales((1.0, 2.0, 3.0), None, None, None) == (1.0, 2.0, 3.0)
    for name in ("q_scale", "k_scale", "v_scale"):
        args = {"q_scale": None, "k_scale": None, "v_scale": None, name: 1.0}
        with pytest.raises(TypeError, match=f"{name} given both positionally"):
            W._positional_scales((1.0, 2.0, 3.0), **args)


def test_reference_query_scales(make_page_table):
    """The reference's q_scale arrays: per KV head equals the same values repeated per query head,
    and a per-query-head array equals scaling the queries themselves (NumPy, CPU)."""
    from nvrtc_attn.reference import paged_prefill_reference

    rng = np.random.default_rng(6)
    batch = make_page_table([5, 9], [20, 9], 4, 4)
    hq, hkv, d = 4, 2, 64
    q = rng.standard_normal((batch.total_q, hq, d))
    k = rng.standard_normal((batch.max_pages, 4, hkv, d))
    v = rng.standard_normal((batch.max_pages, 4, hkv, d))
    per_kv = np.array([0.37, 2.5], np.float32)
    per_qo = np.array([0.37, 0.37, 2.5, 2.5], np.float32)
    kw = dict(causal=True, compute_dtype="float64")
    o1, l1 = paged_prefill_reference(q, (k, v), *batch.index_args(), q_scale=per_kv, **kw)
    o2, l2 = paged_prefill_reference(q, (k, v), *batch.index_args(), q_scale=per_qo, **kw)
    o3, l3 = paged_prefill_reference(q * per_qo.astype(np.float64)[None, :, None], (k, v), *batch.index_args(), **kw)
    np.testing.assert_array_equal(o1, o2)
    np.testing.assert_array_equal(l1, l2)
    np.testing.assert_allclose(o2, o3, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(l2, l3, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="q_scale"):
        paged_prefill_reference(q, (k, v), *batch.index_args(), q_scale=np.ones(3, np.float32), **kw)


def test_reference_decodes_fp8_queries(make_page_table):
    """The reference on uint8 e4m3 queries (q_data_type) equals the reference on the decoded float32
    queries; without q_data_type a uint8 q is refused (NumPy, CPU)."""
    from nvrtc_attn.reference import paged_prefill_reference

    rng = np.random.default_rng(5)
    batch = make_page_table([5, 9], [20, 9], 4, 4)
    hq, hkv, d = 4, 2, 64
    qb = encode_fp8(rng.standard_normal((batch.total_q, hq, d)), Q8)
    kb = encode_fp8(rng.standard_normal((batch.max_pages, 4, hkv, d)), Q8)
    vb = encode_fp8(rng.standard_normal((batch.max_pages, 4, hkv, d)), Q8)
    o, lse = paged_prefill_reference(qb, (kb, vb), *batch.index_args(), causal=True, kv_data_type=Q8,
                                     q_data_type=Q8, q_scale=2.5, k_scale=0.37, v_scale=2.5)
    o2, lse2 = paged_prefill_reference(decode_fp8(qb, Q8), (kb, vb), *batch.index_args(), causal=True,
                                       kv_data_type=Q8, q_scale=2.5, k_scale=0.37, v_scale=2.5)
    np.testing.assert_array_equal(o, o2)
    np.testing.assert_array_equal(lse, lse2)
    with pytest.raises(ValueError, match="q_data_type"):
        paged_prefill_reference(qb, (kb, vb), *batch.index_args(), kv_data_type=Q8, q_data_type="int8")


# GPU: the grid (pairwise) in mode 2. "odt": the output dtype given to plan() ("default": None, which is
# bfloat16); bf16 outputs need torch (CuPy has no bf16).
Q8_FACTORS = {
    **GRID_SHAPE_FACTORS,
    "odt": ("float16", "bfloat16", "default"),
    "fw": ("cupy", "torch"),
    "lens": ("lt", "eq", "gt", "mixed"),
    "extra": ("none", "softcap", "window"),
    "scales": ("none", "tensor", "head"),
    "q_scale": (None, 0.37, 2.5, "kvheads", "qoheads"),
    "qkind": (Q8, "float8_e5m2"),
    "lse": (False, True),
    "kv_load": ("auto", "gather"),
    "plan_cache": (False, True),
}


def _q8_valid(case: dict) -> bool:
    if case.get("fw") == "cupy" and case.get("odt") in ("bfloat16", "default"):
        return False
    return grid_case_valid(case)


def _q8_case_id(c: dict) -> str:
    return "-".join([f"ps{c['ps']}", f"hd{c['hd']}", f"g{c['g']}", "causal" if c["causal"] else "full",
                     c["layout"], c["cache"], f"o{c['odt']}", c["fw"], c["lens"], c["extra"], f"sc{c['scales']}",
                     f"qs{c['q_scale']}", "e5m2q" if c.get("qkind") == "float8_e5m2" else "e4m3q",
                     "lse" if c["lse"] else "nolse", c["kv_load"], "plancache" if c["plan_cache"] else "lazycache"])


Q8_CASES = pairwise_cases(Q8_FACTORS, _q8_valid, seed=20)


@pytest.mark.gpu
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", Q8_CASES, ids=[_q8_case_id(c) for c in Q8_CASES])
def test_fp8q_grid(kit, case, backend):
    _run_case(kit, case, backend, _seed(_q8_case_id(case), backend, "q8"))


@pytest.mark.gpu
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("odt", ["float16", "bfloat16"])
@pytest.mark.parametrize("path", ["tma", "gather"])
@pytest.mark.parametrize("kind", [Q8, "float8_e5m2"])
def test_fp8q_widening_exact(kit, kind, path, odt, backend):
    """The queries' widening is exact on every finite value of their fp8 kind: one key of all ones
    (1.0), query row r one-hot at column r holding value r of the finite table (head_dim 256; 254
    e4m3 or 248 e5m2 codes), sm_scale 1: the LSE of the single key is q[r, r] * log2(e) to float32
    rounding, for both widening paths (e4m3 to fp16: the hardware cvt on sm90; bf16, e5m2 and sm80:
    the portable bit path)."""
    kit.require_torch_cuda()
    import torch

    hd, ps = 256, (16 if path == "tma" else 5)
    vals = _finite_bytes(kind)
    qb = np.zeros((hd, 1, hd), np.uint8)
    qb[np.arange(vals.size), 0, np.arange(vals.size)] = vals
    batch = kit.make_page_table([hd], [1], ps, _seed("q8exact", path, kind))
    one = 0x38 if kind == Q8 else 0x3C  # 1.0
    ones = np.full((batch.max_pages, ps, 1, hd), one, np.uint8)
    tdt = getattr(torch, kind)
    k = torch.as_tensor(ones, device="cuda").view(tdt)
    v = torch.as_tensor(ones.copy(), device="cuda").view(tdt)
    q = torch.as_tensor(qb, device="cuda").view(tdt)
    w = _wrapper(kit, "torch", "NHD", backend, "auto" if path == "tma" else "gather")
    _plan(w, backend, *batch.index_args(), 1, 1, hd, ps, causal=False, sm_scale=1.0,
          q_data_type=tdt, kv_data_type=tdt, o_data_type=getattr(torch, odt))
    assert ("_e4m3_q8_" if kind == Q8 else "_e5m2_q8_") in w.kernel_name, w.kernel_name
    o, lse = w.run(q, (k, v), return_lse=True)
    torch.cuda.synchronize()
    want = np.zeros(hd, np.float32)
    want[: vals.size] = fp8_table(kind)[vals] * np.float32(1.0 / math.log(2.0))
    got = lse.cpu().numpy()[:, 0]
    err = np.abs(got - want)
    tol = 4e-6 * np.abs(want) + 2e-6
    worst = int(np.argmax(err / tol))
    assert bool(np.all(err <= tol)), f"q widening: row {worst}: lse {got[worst]} vs {want[worst]}"
    # O is P V / l with P = exp2(fma(s, c2, -max c2)): the fused product leaves s c2 minus the rounded
    # max c2, at most half a float32 ulp of |s c2|. Below 2^11 that is under 2^-13, so P (16-bit) and O
    # round to exactly 1; e5m2's large codes (up to 57344, 2^16.3 in log2 units) leave up to 2^-8, so
    # P, and O after its own rounding, may sit one 16-bit ulp off 1 (2^-7 in bf16, the coarser).
    o_rows = o.float().cpu().numpy()[:, 0, :]
    small = np.abs(want) < 2.0 ** 11
    assert bool(np.all(o_rows[small] == 1.0)), "O of one key of ones must be exactly 1"
    off = float(np.max(np.abs(o_rows[~small] - 1.0), initial=0.0))
    assert off <= 2.0 ** -7, f"O of one key of ones, large logits: {off} from 1"


@pytest.mark.gpu
@pytest.mark.parametrize("c", [
    dict(ps=16, hd=128, g=4, causal=True, odt="bfloat16", lens=([300, 64], [300, 500]), layout="NHD", window=-1,
         cap=None, scales="head", q_scale=0.37),
    dict(ps=16, hd=128, g=4, causal=False, odt="float16", lens=([700], [900]), layout="HND", window=-1,
         cap=None, scales="tensor", q_scale=2.5),
    dict(ps=5, hd=64, g=1, causal=False, odt="float16", lens=([90, 200], [40, 130]), layout="HND", window=-1,
         cap=8.0, scales="tensor", q_scale=None),
    dict(ps=1, hd=256, g=8, causal=True, odt="bfloat16", lens=([130, 7], [260, 7]), layout="NHD", window=45,
         cap=None, scales="head", q_scale=2.5),
    dict(ps=64, hd=128, g=8, causal=False, odt="float16", lens=([0, 100, 33], [10, 300, 0]), layout="HND",
         window=-1, cap=None, scales="none", q_scale=0.37),
    dict(ps=32, hd=256, g=4, causal=True, odt="bfloat16", lens=([500], [900]), layout="NHD", window=-1, cap=None,
         scales="tensor", q_scale=None),
], ids=lambda c: f"ps{c['ps']}-hd{c['hd']}-g{c['g']}-{c['odt']}")
@pytest.mark.hopper
def test_fp8q_sm90_matches_sm80(kit, c):
    """fp8 queries: the Hopper path against the portable one on the same inputs (and both against the
    reference)."""
    kit.require_torch_cuda()
    import torch

    from nvrtc_attn.reference import paged_prefill_reference

    odt = c["odt"]
    seed = _seed("cross8q", c["ps"], c["hd"], c["g"], odt)
    batch = kit.make_page_table(*c["lens"], c["ps"], seed)
    hkv = 1 if c["g"] == 8 else 2
    hqo, d = hkv * c["g"], c["hd"]
    q = _fp8_random(kit, "torch", Q8, (batch.total_q, hqo, d), seed)
    cache, _ = _fp8_cache(kit, "torch", Q8, "pool", c["layout"], batch.max_pages, c["ps"], hkv, d, seed + 1)
    _poison_unowned8(kit, batch, cache, c["layout"])
    run_scales, ref_scales = _scales("torch", c["scales"], hkv, np.random.default_rng(seed))
    if c["q_scale"] is not None:
        run_scales["q_scale"] = ref_scales["q_scale"] = c["q_scale"]
    results = {}
    for backend in ("sm90", "sm80"):
        w = _wrapper(kit, "torch", c["layout"], backend)
        _plan(w, backend, *batch.index_args(), hqo, hkv, d, c["ps"], causal=c["causal"], window_left=c["window"],
              logits_soft_cap=c["cap"], q_data_type=torch.float8_e4m3fn, kv_data_type=torch.float8_e4m3fn,
              o_data_type=getattr(torch, odt))
        out = kit.poison(torch.empty(q.shape, dtype=getattr(torch, odt), device="cuda"))
        results[backend] = w.run(q, cache, out=out, return_lse=True, **run_scales)
        assert "_q8_" in w.kernel_name
    ref_o, ref_lse = paged_prefill_reference(q, cache, *batch.index_args(), kv_layout=c["layout"], causal=c["causal"],
                                             window_left=c["window"], logits_soft_cap=c["cap"], **ref_scales)
    for backend, (o, lse) in results.items():
        kit.check_attention(o, lse, ref_o, ref_lse, odt, what=backend)
    kit.check_agreement(results, odt)


Q8_BAD_RUN_CASES = ["bf16_q", "uint8_q_16bit_plan", "out_fp16_for_bf16_plan", "q_scale_array", "q_scale_string",
                    "q_scale_negative", "e5m2_q"]


@pytest.mark.gpu
@pytest.mark.parametrize("case", Q8_BAD_RUN_CASES)
def test_fp8q_run_rejections_write_nothing(kit, case):
    """Bad run() inputs of an fp8-query plan (and fp8 queries on a 16-bit-query plan): a clear error
    before launch; out stays NaN, q and the cache untouched."""
    kit.require_torch_cuda()
    import torch

    batch = kit.make_page_table([20, 9], [40, 9], 16, 95)
    hqo, hkv, d = 4, 2, 64
    pool = _fp8_random(kit, "torch", Q8, (batch.max_pages, 2, 2, 16, hkv, d), 96)
    q = _fp8_random(kit, "torch", Q8, (batch.total_q, hqo, d), 97)
    cache = (pool[:, 1, 0], pool[:, 1, 1])
    w = _wrapper(kit, "torch", "NHD", "auto")
    w.plan(*batch.index_args(), hqo, hkv, d, 16, causal=True, q_data_type=torch.float8_e4m3fn,
           kv_data_type=torch.float8_e4m3fn)  # o_data_type None: bfloat16
    out = kit.poison(torch.empty(q.shape, dtype=torch.bfloat16, device="cuda"))
    snaps = [kit.Snapshot(pool.view(torch.uint8)), kit.Snapshot(q.view(torch.uint8))]
    kw, qq = {}, q
    exc, msg = TypeError, ""
    if case == "bf16_q":
        qq, msg = q.to(torch.bfloat16), r"q dtype must be float8_e4m3fn.*got bfloat16"
    elif case == "uint8_q_16bit_plan":
        w.plan(*batch.index_args(), hqo, hkv, d, 16, causal=True, q_data_type=torch.bfloat16,
               kv_data_type=torch.float8_e4m3fn)
        qq, msg = q.view(torch.uint8), r"q is uint8.*q_data_type='float8_e4m3fn'"
    elif case == "out_fp16_for_bf16_plan":
        out = kit.poison(torch.empty(q.shape, dtype=torch.float16, device="cuda"))
        msg = r"out dtype must be bfloat16, the plan's o_data_type, got float16"
    elif case == "q_scale_array":
        kw, exc, msg = dict(q_scale=torch.ones(1, device="cuda")), ValueError, \
            r"q_scale.*\[num_kv_heads\] = \[2\] or \[num_qo_heads\] = \[4\], got \[1\]"
    elif case == "q_scale_string":
        kw, msg = dict(q_scale="2"), r"q_scale must be a real number"
    elif case == "q_scale_negative":
        kw, exc, msg = dict(q_scale=-1.0), ValueError, r"q_scale.*positive"
    elif case == "e5m2_q":
        qq, msg = q.view(torch.uint8).view(torch.float8_e5m2), r"float8_e4m3fn.*got float8_e5m2"
    torch.cuda.synchronize()
    with pytest.raises(exc, match=msg):
        w.run(qq, cache, out=out, **kw)
    torch.cuda.synchronize()
    assert bool(torch.isnan(out).all()), "a rejected run() wrote the output"
    assert all(s.unchanged() for s in snaps)


def _per_head_e4m3(x, dims):
    """FlashInfer's test quantization: scale = amax / 448 over `dims` (float32, one per head), x / scale
    rounded to e4m3; returns (e4m3 tensor, scales)."""
    import torch

    scale = torch.clamp(x.abs().amax(dim=dims).float() / 448.0, min=1e-6)
    shape = [1] * x.dim()
    shape[-2] = -1
    return (x / scale.view(shape)).clamp(-448, 448).to(torch.float8_e4m3fn), scale


FI_FP8_CALLS = [  # (id, backend, fp8_mma, qo_lens, kv_lens, disable_split_kv, expected path)
    pytest.param("full", "sm90", False, [128, 256, 77], [128, 256, 300], True, "full", marks=pytest.mark.hopper),
    pytest.param("short", "sm90", False, [4] * 32, [1024] * 32, True, "short", marks=pytest.mark.hopper),
    pytest.param("split", "sm90", False, [128], [8192], False, "split", marks=pytest.mark.hopper),
    pytest.param("fp8_mma", "sm90", True, [128, 256, 77], [128, 256, 300], True, "full", marks=pytest.mark.hopper),
    ("sm80", "sm80", False, [128, 256, 77], [128, 256, 300], True, "full"),
]


@pytest.mark.gpu
@pytest.mark.parametrize("name, backend, mma, qo_lens, kv_lens, no_split, path", FI_FP8_CALLS)
def test_fp8q_flashinfer_call(kit, name, backend, mma, qo_lens, kv_lens, no_split, path):
    """FlashInfer's fp8 prefill call, as its Hopper fp8 tests make it: fp16 q, k, v quantized per head
    to e4m3 (scale amax / 448), plan(q_data_type=kv_data_type=float8_e4m3fn, o_data_type=float16),
    run(q8, (k8, v8), s_q, s_k, s_v) with s_q per query head [32] and s_k, s_v per KV head [8],
    positionally. Against the reference on the e4m3 bytes and the same scales, on the full, short and
    split sm90 tiles, the fp8_mma=True builds and sm80; with s_q per KV head too; keyword scales give
    the same bits."""
    kit.require_torch_cuda()
    import torch

    from nvrtc_attn.reference import paged_prefill_reference

    seed = _seed("ficall", name)
    hqo, hkv, d, ps = 32, 8, 128, 16
    batch = kit.make_page_table(qo_lens, kv_lens, ps, seed)
    g = torch.Generator(device="cuda")
    g.manual_seed(seed)
    q16 = torch.randn((batch.total_q, hqo, d), generator=g, device="cuda", dtype=torch.float16)
    head_mag = (1.0 + 0.1 * torch.arange(hkv, device="cuda", dtype=torch.float16)).view(1, 1, hkv, 1)
    k16 = torch.randn((batch.max_pages, ps, hkv, d), generator=g, device="cuda", dtype=torch.float16) * head_mag
    v16 = torch.randn((batch.max_pages, ps, hkv, d), generator=g, device="cuda", dtype=torch.float16) * head_mag
    q8, s_q = _per_head_e4m3(q16, (0, 2))
    k8, s_k = _per_head_e4m3(k16.view(-1, hkv, d), (0, 2))
    v8, s_v = _per_head_e4m3(v16.view(-1, hkv, d), (0, 2))
    k8, v8 = k8.view(k16.shape), v8.view(v16.shape)
    s_q_kv = s_q.view(hkv, hqo // hkv).mean(dim=1).contiguous()  # one query scale per KV head
    snaps = [kit.Snapshot(x) for x in (q8, k8, v8)]
    w = _wrapper(kit, "torch", "NHD", backend, **({"fp8_mma": True} if mma else {}))
    w.plan(*batch.index_args(), hqo, hkv, d, ps, causal=True, q_data_type=torch.float8_e4m3fn,
           kv_data_type=torch.float8_e4m3fn, o_data_type=torch.float16, disable_split_kv=no_split)
    plan = w._plan
    assert (plan.build.short_tiles, plan.merges.shape[0] > 0) == (path == "short", path == "split"), (name, plan.build)
    assert ("_mma8_" in w.kernel_name) == mma, w.kernel_name
    tol = dict(rel_tol=q8_mma_rel_tol("float16"), lse_tol=Q8_MMA_LSE_TOL) if mma else {}
    host = {key: x.cpu().numpy() for key, x in (("q", s_q), ("q_kv", s_q_kv), ("k", s_k), ("v", s_v))}
    calls = [("per query head", s_q, host["q"]), ("per KV head", s_q_kv, host["q_kv"])]
    for what, sq, ref_sq in calls:
        ref_o, ref_lse = paged_prefill_reference(q8, (k8, v8), *batch.index_args(), causal=True,
                                                 kv_data_type=Q8, q_data_type=Q8, q_scale=ref_sq,
                                                 k_scale=host["k"], v_scale=host["v"])
        out = kit.poison(torch.empty(q8.shape, device="cuda", dtype=torch.float16))
        o = w.run(q8, (k8, v8), sq, s_k, s_v)
        assert o.dtype == torch.float16 and tuple(o.shape) == tuple(q8.shape)
        lse = kit.poison(torch.empty((batch.total_q, hqo), device="cuda", dtype=torch.float32))
        w.run(q8, (k8, v8), q_scale=sq, k_scale=s_k, v_scale=s_v, out=out, lse=lse, return_lse=True)
        kit.check_attention(o, None, ref_o, None, "float16", what=f"{name} {what} positional", **tol)
        kit.check_attention(out, lse, ref_o, ref_lse, "float16", what=f"{name} {what} keywords", **tol)
        assert kit.bits_equal(o, out), f"{name} {what}: positional and keyword scales differ"
    with pytest.raises(TypeError, match="q_scale given both"):
        w.run(q8, (k8, v8), s_q_kv, s_k, s_v, q_scale=s_q_kv)
    with pytest.raises(NotImplementedError, match="positional"):
        w.run(q8, (k8, v8), s_q_kv, s_k)
    for sn in snaps:
        assert sn.unchanged(), f"{name}: run() modified q or the cache"


@pytest.mark.gpu
def test_fp8q_functional_api_uint8(kit):
    """paged_prefill with CuPy uint8 queries and cache: q_data_type / kv_data_type name them (without
    q_data_type a clear TypeError); o_data_type float16 (CuPy has no bf16)."""
    import cupy

    import nvrtc_attn
    from nvrtc_attn.reference import paged_prefill_reference

    seed = _seed("functional8q")
    batch = kit.make_page_table([40, 0, 77], [90, 12, 77], 16, seed)
    hqo, hkv, d = 8, 2, 128
    q = _fp8_random(kit, "cupy", Q8, (batch.total_q, hqo, d), seed)
    cache, _ = _fp8_cache(kit, "cupy", Q8, "pool", "NHD", batch.max_pages, 16, hkv, d, seed + 1)
    with pytest.raises(TypeError, match="q_data_type"):
        nvrtc_attn.paged_prefill(q, cache, *batch.index_args(), causal=True, kv_data_type=Q8)
    o, lse = nvrtc_attn.paged_prefill(q, cache, *batch.index_args(), causal=True, return_lse=True, q_data_type=Q8,
                                      kv_data_type=Q8, o_data_type="float16", q_scale=0.37, k_scale=2.5,
                                      v_scale=0.37)
    ref_o, ref_lse = paged_prefill_reference(q, cache, *batch.index_args(), causal=True, kv_data_type=Q8,
                                             q_data_type=Q8, q_scale=0.37, k_scale=2.5, v_scale=0.37)
    kit.check_attention(o, lse, ref_o, ref_lse, "float16", what="paged_prefill fp8 q")
    assert isinstance(o, cupy.ndarray) and o.dtype == cupy.float16


# --------------------------------------------------------------------------------------------
# Mode 2 on the fp8 tensor cores (FP8_MMA builds, wrapper fp8_mma=True; head_dim 128 on sm90)
#
# Error bound: S = Q K^T is exact in fp32 up to summation order (e4m3 x e4m3 products are exact in
# fp32), so the LSE bound stays 1e-2. P V rounds each P (times 2^8, kernels_cu/tile_sm90.cuh kPExp)
# to e4m3: a relative error delta_k with |delta_k| <= 2^-4 (3 mantissa bits, round to nearest; P below
# 2^-14 is subnormal there with an absolute error <= 2^-18, negligible). The row sum l uses the fp32 P.
# O's error sum_k delta_k p_k v_k / l has, for the tests' zero-mean independent V, an expected squared
# norm of at most 2^-8 times that of O itself: rel L2 <= 2^-4 from P, plus the 16-bit output's bound.

def q8_mma_rel_tol(dtype: str) -> float:
    from conftest import REL_TOL

    return 2.0 ** -4 + REL_TOL[dtype]


# LSE of the e4m3-wgmma builds: P's rounding does not enter it (l sums the fp32 P), but Q K^T does:
# Hopper's fp8 wgmma accumulates with fewer mantissa bits than fp32 (about 14 kept, as DeepSeek-V3
# measured on H800), so a logit carries an error of order 2^-14 * sum_i |q_i k_i| * scale rather than
# fp32's 2^-24, which grows with q_scale and the k scales (2.5 in the grid). The first H200 run saw
# 1.24e-2 on the grid's largest-scale case; 3e-2 leaves room for other draws, and stays well below
# what a wrong fragment order or descriptor gives (errors of order 1).
Q8_MMA_LSE_TOL = 3e-2


def test_fp8_mma_p_and_v_orders_agree_cpu():
    """The fp8-MMA builds' P V: pack_p's bytes (S's accumulator order) read through wgmma's k32 A
    fragment (register 0: row g, columns 4t..4t+3; 1: row g+8, same columns; 2, 3: columns 16+4t..)
    against V transposed in fp8::transpose_v_block's position order give exactly P V (NumPy emulation
    of one warp's 16 x 32 slice)."""
    import re
    from pathlib import Path

    src = (Path(__file__).resolve().parent.parent / "kernels_cu" / "fp8_convert.cuh").read_text()
    formula = re.search(r"int pv_key_of_position\(int q\) \{ return (.+?); \}", src).group(1)
    key_of = eval("lambda q: " + formula.replace("/", "//"))  # the kernel's constexpr, integer division
    assert [key_of(q) for q in range(16)] == [0, 1, 8, 9, 2, 3, 10, 11, 4, 5, 12, 13, 6, 7, 14, 15]
    rng = np.random.default_rng(0)
    P = rng.random((16, 32))
    V = rng.standard_normal((32, 8))
    A = np.full((16, 32), np.nan)
    for lane in range(32):
        g, t = lane // 4, lane % 4
        x = np.empty(16)  # sacc[16 kk + ...] of this thread for the 32-key slice (4 chunks of 8 keys)
        for c in range(4):
            x[4 * c: 4 * c + 4] = P[g, 8 * c + 2 * t], P[g, 8 * c + 2 * t + 1], P[g + 8, 8 * c + 2 * t], \
                P[g + 8, 8 * c + 2 * t + 1]
        regs = [x[[0, 1, 4, 5]], x[[2, 3, 6, 7]], x[[8, 9, 12, 13]], x[[10, 11, 14, 15]]]  # pack_p
        for r, (row, col0) in enumerate(((g, 4 * t), (g + 8, 4 * t), (g, 16 + 4 * t), (g + 8, 16 + 4 * t))):
            A[row, col0: col0 + 4] = regs[r]
    assert not np.isnan(A).any()
    Vt = np.empty((8, 32))
    for pos in range(32):
        Vt[:, pos] = V[16 * (pos // 16) + key_of(pos % 16)]
    np.testing.assert_allclose(A @ Vt.T, P @ V, rtol=1e-12)


def test_choose_build_fp8_mma_cpu():
    """fp8_mma=True picks the e4m3-wgmma builds for fp8 queries at head_dim 128 on sm90 (TMA or gather
    pages; two Q buffers), and changes nothing elsewhere (other head dims, sm80, 16-bit queries)."""
    from nvrtc_attn import variants

    for ps, box in ((16, 16), (5, 0)):
        b = variants.choose_build("sm90", variants.HOPPER_ARCH, 128, "bfloat16", ps, 4, -1, 40.0, kv_dtype=Q8,
                                  q_dtype=Q8, fp8_mma=True)
        assert "_q8_mma8_" in b.name and b.tile is variants.SM90_FP8_MMA_TILES[128] and b.kv_box == box
        assert dict(b.variants[0].defines)["FP8_MMA"] == 1 and b.q_box is None
        assert b.variants[0] in variants.builds_of("sm90", variants.HOPPER_ARCH, 128, "bfloat16", Q8, Q8, True)
        assert variants.split_build(b).variants[0] in variants.all_variants()
    same = [variants.choose_build("sm90", variants.HOPPER_ARCH, 64, "float16", 16, 4, -1, 2.0, kv_dtype=Q8,
                                  q_dtype=Q8, fp8_mma=True),
            variants.choose_build("sm80", variants.HOPPER_ARCH, 128, "float16", 16, 4, -1, 2.0, kv_dtype=Q8,
                                  q_dtype=Q8, fp8_mma=True),
            variants.choose_build("sm90", variants.HOPPER_ARCH, 128, "float16", 16, 4, -1, 2.0, kv_dtype=Q8,
                                  fp8_mma=True)]
    assert not any("mma8" in b.name for b in same)
    assert not any("mma8" in b.name for b in (variants.choose_build(
        "sm90", variants.HOPPER_ARCH, 128, "bfloat16", 16, 4, -1, 2.0, kv_dtype=Q8, q_dtype=Q8),))  # default: off
    with pytest.raises(ValueError, match="fp8_mma"):
        variants.prefill_sm90_variant(256, "bfloat16", kv_dtype=Q8, q_dtype=Q8, fp8_mma=True)
    assert variants.sm90_fp8_wgmma_ns() == (128,)


def test_wrapper_fp8_mma_flag_cpu():
    import nvrtc_attn

    with pytest.raises(TypeError, match="fp8_mma must be a bool"):
        nvrtc_attn.BatchPrefillWithPagedKVCacheWrapper(np.zeros(16, np.uint8), fp8_mma="yes")


Q8_MMA_CASES = [  # head_dim 128, GQA 4 (the W2f8q / W7f8q shape, shorter), both page paths and layouts
    dict(ps=16, hd=128, g=4, causal=True, layout="NHD", cache="pool", odt="bfloat16", fw="torch", lens="eq",
         extra="none", scales="tensor", q_scale=0.37, lse=True, kv_load="auto", plan_cache=True),
    dict(ps=16, hd=128, g=4, causal=False, layout="HND", cache="tuple", odt="float16", fw="cupy", lens="lt",
         extra="none", scales="head", q_scale="kvheads", lse=True, kv_load="auto", plan_cache=False),
    dict(ps=16, hd=128, g=8, causal=True, layout="NHD", cache="kvdiff", odt="default", fw="torch", lens="mixed",
         extra="window", scales="head", q_scale=None, lse=False, kv_load="auto", plan_cache=False),
    dict(ps=64, hd=128, g=1, causal=False, layout="NHD", cache="5d", odt="float16", fw="cupy", lens="gt",
         extra="softcap", scales="none", q_scale=0.37, lse=True, kv_load="auto", plan_cache=True),
    dict(ps=5, hd=128, g=4, causal=True, layout="HND", cache="pool", odt="bfloat16", fw="torch", lens="lt",
         extra="none", scales="tensor", q_scale="qoheads", lse=True, kv_load="auto", plan_cache=False),
    dict(ps=16, hd=128, g=4, causal=False, layout="NHD", cache="pool", odt="bfloat16", fw="torch", lens="eq",
         extra="none", scales="head", q_scale="kvheads", lse=True, kv_load="gather", plan_cache=False),
    # K boxes straight into the swizzled ring stage (4 boxes per block, 1 box), next to gathered last blocks
    dict(ps=32, hd=128, g=4, causal=True, layout="NHD", cache="pool", odt="bfloat16", fw="torch", lens="mixed",
         extra="none", scales="tensor", q_scale=0.37, lse=True, kv_load="auto", plan_cache=True),
    dict(ps=128, hd=128, g=8, causal=False, layout="HND", cache="pool", odt="float16", fw="cupy", lens="gt",
         extra="window", scales="head", q_scale=2.5, lse=True, kv_load="auto", plan_cache=False),
]


@pytest.mark.gpu
@pytest.mark.hopper
@pytest.mark.parametrize("case", Q8_MMA_CASES, ids=[_q8_case_id(c) for c in Q8_MMA_CASES])
def test_fp8q_mma_grid(kit, case):
    """The e4m3-wgmma builds against the reference on dequantized q and cache (bound: q8_mma_rel_tol)."""
    _run_case(kit, {**case, "mma": True}, "sm90", _seed(_q8_case_id(case), "mma8"))


@pytest.mark.gpu
@pytest.mark.hopper
@pytest.mark.parametrize("causal", [True, False])
def test_fp8q_mma_long_and_split(kit, causal):
    """One 2048-token request, 32 q / 8 KV heads, page 16 (W2f8q / W7f8q at a quarter length): the
    e4m3-wgmma build over many key blocks and tiles per CTA, against the reference and against the
    widening build; then disable_split_kv=False on a short-query tail (pieces and the merge)."""
    kit.require_torch_cuda()
    import torch

    from nvrtc_attn.reference import paged_prefill_reference

    seed = _seed("mma8long", causal)
    batch = kit.make_page_table([2048], [2048], 16, seed)
    hqo, hkv, d = 32, 8, 128
    q = _fp8_random(kit, "torch", Q8, (batch.total_q, hqo, d), seed)
    cache, _ = _fp8_cache(kit, "torch", Q8, "pool", "NHD", batch.max_pages, 16, hkv, d, seed + 1)
    results = {}
    for mma in (True, False):
        w = _wrapper(kit, "torch", "NHD", "sm90", fp8_mma=mma)
        w.plan(*batch.index_args(), hqo, hkv, d, 16, causal=causal, q_data_type=torch.float8_e4m3fn,
               kv_data_type=torch.float8_e4m3fn)
        assert ("_mma8_" in w.kernel_name) == mma
        out = kit.poison(torch.empty(q.shape, dtype=torch.bfloat16, device="cuda"))
        results[mma] = w.run(q, cache, out=out, return_lse=True, q_scale=0.37, k_scale=2.5, v_scale=0.37)
    ref_o, ref_lse = paged_prefill_reference(q, cache, *batch.index_args(), causal=causal, q_scale=0.37,
                                             k_scale=2.5, v_scale=0.37)
    kit.check_attention(*results[True], ref_o, ref_lse, "bfloat16", what="mma8", rel_tol=q8_mma_rel_tol("bfloat16"),
                       lse_tol=Q8_MMA_LSE_TOL)
    kit.check_attention(*results[False], ref_o, ref_lse, "bfloat16", what="widened")
    tail = kit.make_page_table([16], [4096], 16, seed + 2)  # few rows, long keys: split-KV pieces
    qt = _fp8_random(kit, "torch", Q8, (tail.total_q, hqo, d), seed + 3)
    ct, _ = _fp8_cache(kit, "torch", Q8, "pool", "NHD", tail.max_pages, 16, hkv, d, seed + 4)
    w = _wrapper(kit, "torch", "NHD", "sm90", fp8_mma=True)
    w.plan(*tail.index_args(), hqo, hkv, d, 16, causal=causal, q_data_type=torch.float8_e4m3fn,
           kv_data_type=torch.float8_e4m3fn, o_data_type=torch.float16)
    assert "_mma8_" in w.kernel_name and w._plan.num_merges > 0, (w.kernel_name, w._plan.num_merges)
    o, lse = w.run(qt, ct, return_lse=True, k_scale=0.37, v_scale=2.5)
    ref_o, ref_lse = paged_prefill_reference(qt, ct, *tail.index_args(), causal=causal, k_scale=0.37, v_scale=2.5)
    kit.check_attention(o, lse, ref_o, ref_lse, "float16", what="mma8 split", rel_tol=q8_mma_rel_tol("float16"),
                       lse_tol=Q8_MMA_LSE_TOL)
