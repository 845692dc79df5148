"""The ctypes mirrors in launcher.py match kernels_cu/params.cuh: NVRTC checks every field offset
and the struct size with static_assert; the launch sizes the host reads from the cubins; TMA
geometry and tile choice (CPU only, no GPU)."""
import ctypes

import pytest

from nvrtc_attn import compiler, cubin, launcher, variants


def _layout_source(struct: type, cxx_name: str) -> str:
    lines = ['#include "params.cuh"']
    for name, _ in struct._fields_:
        offset = getattr(struct, name).offset
        lines.append(f'static_assert(__builtin_offsetof({cxx_name}, {name}) == {offset}, "{name}");')
    lines.append(f'static_assert(sizeof({cxx_name}) == {ctypes.sizeof(struct)}, "size");')
    lines.append('extern "C" __global__ void layout_probe() {}')
    return "\n".join(lines)


def _has_builtin_offsetof() -> bool:
    from cuda.core import Program, ProgramOptions

    src = 'struct S { int a; long long b; };\nstatic_assert(__builtin_offsetof(S, b) == 8, "b");\n'
    try:
        Program(src, "c++", ProgramOptions(arch=variants.HOPPER_ARCH, std="c++17")).compile("cubin")
        return True
    except Exception:
        return False


# NVRTC 13.0 has no __builtin_offsetof (13.5 does); the layout is the same C ABI either way, so the
# check runs wherever the compiler supports it (CI installs the newest NVRTC).
needs_offsetof = pytest.mark.skipif(not _has_builtin_offsetof(), reason="this NVRTC lacks __builtin_offsetof")


@needs_offsetof
@pytest.mark.parametrize("struct, cxx_name", [(launcher.PrefillParams, "PrefillParams"),
                                              (launcher.OffsetParams, "OffsetParams"),
                                              (launcher.MergeParams, "MergeParams"),
                                              (launcher.Sm90TensorMaps, "Sm90TensorMaps")])
def test_params_mirror_matches_cuda_struct(struct, cxx_name):
    from cuda.core import Program, ProgramOptions

    opts = ProgramOptions(arch=variants.HOPPER_ARCH, std="c++17", include_path=[str(compiler.KERNELS_DIR)])
    Program(_layout_source(struct, cxx_name), "c++", opts).compile("cubin")  # raises on mismatch


@needs_offsetof
def test_mirror_check_can_fail():
    """The probe really detects a wrong offset (the test above cannot pass vacuously)."""
    from cuda.core import Program, ProgramOptions

    src = '#include "params.cuh"\nstatic_assert(__builtin_offsetof(PrefillParams, k) == 0, "k");\n'
    opts = ProgramOptions(arch=variants.HOPPER_ARCH, std="c++17", include_path=[str(compiler.KERNELS_DIR)])
    with pytest.raises(Exception):
        Program(src, "c++", opts).compile("cubin")


def _prefill_variants():
    return [v for v in variants.all_variants() if v.entry in ("prefill_sm80", "prefill_sm90")]


def _cubin_smem_bytes(v) -> int:
    return cubin.symbol_int(compiler.compile_variant(v).cubin, cubin.SMEM_BYTES_SYMBOL)


def test_cubin_smem_bytes_is_the_kernel_constant():
    """The size the launcher reads from each prefill cubin is the kSmemBytes its kernel traps on
    (checked by NVRTC), so the two can never disagree."""
    from cuda.core import Program, ProgramOptions

    for v in _prefill_variants():
        smem = _cubin_smem_bytes(v)
        assert 0 < smem <= 227 * 1024, (v.name, smem)
        src = (open(compiler.KERNELS_DIR / v.source).read()
               + f'\nstatic_assert(kSmemBytes == {smem}, "smem");\n')
        opts = ProgramOptions(arch=v.arch, std="c++17", include_path=[str(compiler.KERNELS_DIR)],
                              define_macro=[(k, str(x)) for k, x in v.defines])
        Program(src, "c++", opts).compile("cubin")  # raises on mismatch


def test_tma_geometry_pins_size_one_strides():
    """Size-1 dims (one head, one page, one token) get a packed positive stride, others keep theirs."""
    from nvrtc_attn.launcher import tma_geometry as _tma_geometry

    dims, strides = _tma_geometry((128, 16, 1, 40), (8 * 128, 0, 4 * 2 * 16 * 8 * 128))
    assert dims == (128, 16, 1, 40)
    assert strides == (2 * 8 * 128, 2 * 8 * 128 * 16, 2 * 4 * 2 * 16 * 8 * 128)
    assert all(s > 0 and s % 16 == 0 for s in strides)


@pytest.mark.parametrize("page_size, head_dim, box", [(1, 128, 0), (5, 128, 0), (12, 128, 0), (8, 128, 8),
                                                      (16, 128, 16), (24, 128, 8), (64, 128, 64),
                                                      (256, 128, 128), (256, 256, 64), (32, 256, 32)])
def test_sm90_kv_box_tokens(page_size, head_dim, box):
    """TMA boxes lie in one page, fill whole 8-row swizzle groups and tile a key block exactly."""
    assert variants.sm90_kv_box_tokens(page_size, head_dim) == box
    if box:
        assert page_size % box == 0 and variants.SM90_TILES[head_dim].block_n % box == 0 and box % 8 == 0


@pytest.mark.parametrize("page_size, box", [(1, 0), (5, 0), (8, 8), (12, 0), (16, 16), (24, 8), (32, 16),
                                            (64, 16), (256, 16)])
def test_sm90_kv_box_tokens_176_key_blocks(page_size, box):
    """The long head_dim 128 tile's 176-key blocks (11 x 16) take boxes of at most 16 keys."""
    tile = variants.SM90_LONG_TILES[128]
    assert tile.block_n == 176
    assert variants.sm90_kv_box_tokens(page_size, 128, tile) == box


def test_sm90_tile_choice():
    """176-key blocks only for long tiles (no turn-taking) loaded by TMA without a window, at head_dim
    128; planning is the same."""
    wide = variants.SM90_LONG_TILES[128]
    assert variants.sm90_tile(128, pingpong=False, kv_tma=True) is wide
    for kw in (dict(pingpong=True, kv_tma=True), dict(pingpong=False, kv_tma=False),
               dict(pingpong=False, kv_tma=True, window_left=64)):
        assert variants.sm90_tile(128, **kw) is variants.SM90_TILES[128], kw
    for hd in (64, 256):
        assert variants.sm90_tile(hd, pingpong=False, kv_tma=True) is variants.SM90_TILES[hd]
    assert (wide.block_m, wide.l2_section_bytes) == (variants.SM90_TILES[128].block_m,
                                                    variants.SM90_TILES[128].l2_section_bytes)
    names = {v.name for v in variants.all_variants()}
    assert {"prefill_sm90_hd128_bf16_bn176_nopp_sm_90a", "prefill_sm90_hd128_fp16_bn176_nopp_sm_90a"} <= names


def test_kv_tma_geometry_folds_heads_into_pages():
    """A [pages, layers=4, 2, 16, H=8, 128] pool view: 5-D map whose last dim is head + page * R."""
    from nvrtc_attn.launcher import kv_tma_geometry as _kv_tma_geometry

    st, sh = 8 * 128, 128
    sp = 4 * 2 * 16 * st
    dims, strides, ratio = _kv_tma_geometry(128, 16, 8, 100, (sp, st, sh))
    assert ratio == sp // sh == 1024
    assert dims == (64, 8, 2, 2, 99 * 1024 + 8)
    assert strides == (2 * st, 128, 2 * 8 * st, 2 * sh)
    # HND: head stride page_size * D, token stride D
    dims, strides, ratio = _kv_tma_geometry(64, 32, 4, 10, (4 * 32 * 64 * 6, 64, 32 * 64))
    assert ratio == 4 * 6 and dims == (64, 8, 1, 4, 9 * 24 + 4) and strides == (128, 128, 1024, 2 * 32 * 64)
    # one KV head: the page is the coordinate
    dims, strides, ratio = _kv_tma_geometry(128, 16, 1, 7, (16 * 128 * 3, 128, 0))
    assert ratio == 1 and dims[-1] == 7 and strides[-1] == 2 * 16 * 128 * 3
    # page stride not a multiple of the head stride, or a page size that is not a multiple of 8
    assert _kv_tma_geometry(128, 16, 8, 10, (8 * 128 * 16 + 64, 8 * 128, 128)) is None
    assert _kv_tma_geometry(128, 12, 8, 10, (8 * 128 * 12, 8 * 128, 128)) is None


def test_sm90_tiles_run_one_cta_per_sm():
    """plan() sizes the sm90 grid as sm_count * ctas_per_sm before any build is loaded: each tile's
    shared memory (read from its builds' cubins) must leave no room for a second CTA (228 KB per
    H100 SM)."""
    builds = {v.name for v in variants.all_variants()}
    for hd, tile in [*variants.SM90_TILES.items(), *variants.SM90_LONG_TILES.items()]:
        assert tile.ctas_per_sm == 1
        mine = [v for dt in variants.DTYPES for pingpong in (True, False)
                if (v := variants.prefill_sm90_variant(hd, dt, pingpong, tile)).name in builds]
        assert mine, f"head_dim {hd}: no build of tile {tile}"
        for v in mine:
            assert 2 * _cubin_smem_bytes(v) > 228 * 1024, f"{v.name}: two CTAs would fit on an SM"
