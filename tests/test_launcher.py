"""The ctypes mirrors in launcher.py match kernels_cu/params.cuh: NVRTC checks every field offset
and the struct size with static_assert; the launch sizes the host reads from the cubins; TMA
geometry and tile choice (CPU only, no GPU)."""
import ctypes
import json
import re
from pathlib import Path

import numpy as np
import pytest

from nvrtc_attn import compiler, cubin, launcher, sass, variants


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


E4M3 = "float8_e4m3fn"


@pytest.mark.parametrize("head_dim, page_size, window_left, kv_dtype, q_dtype, fp8_mma, kv_load, threshold", [
    (128, 16, -1, None, None, False, "auto", variants.PINGPONG_MAX_BLOCKS_LONG),   # nopp = the 176-key tile
    (128, 32, -1, None, None, False, "auto", variants.PINGPONG_MAX_BLOCKS_LONG),
    (128, 1, -1, None, None, False, "auto", variants.PINGPONG_MAX_BLOCKS),         # the gather: 128 keys either way
    (128, 16, -1, None, None, False, "gather", variants.PINGPONG_MAX_BLOCKS),
    (128, 16, 1024, None, None, False, "auto", variants.PINGPONG_MAX_BLOCKS),      # windows keep 128 keys
    (128, 16, -1, E4M3, None, False, "auto", variants.PINGPONG_MAX_BLOCKS_FP8),     # fp8: the widening builds
    (128, 1, -1, "float8_e5m2", None, False, "auto", variants.PINGPONG_MAX_BLOCKS_FP8),
    (128, 16, -1, E4M3, E4M3, False, "auto", variants.PINGPONG_MAX_BLOCKS_FP8_Q),
    (128, 16, -1, E4M3, E4M3, True, "auto", variants.PINGPONG_MAX_BLOCKS),          # fp8-MMA builds keep 8
    (64, 16, -1, E4M3, None, False, "auto", variants.PINGPONG_MAX_BLOCKS),
    (64, 16, -1, None, None, False, "auto", variants.PINGPONG_MAX_BLOCKS),
    (256, 16, -1, None, None, False, "auto", variants.PINGPONG_MAX_BLOCKS)])
def test_sm90_turn_taking_threshold(head_dim, page_size, window_left, kv_dtype, q_dtype, fp8_mma, kv_load, threshold):
    """Turn-taking below the threshold of the build the batch would run without turns: 5.75 mean key
    blocks where that is the long tile, 5 / 4 on fp8 caches at head_dim 128 with 16-bit / e4m3 queries
    (s24r1, s24r2, s24r8 A/Bs), 8 elsewhere; the long tile exactly where it is the rule."""
    assert variants.PINGPONG_MAX_BLOCKS_FP8_Q < variants.PINGPONG_MAX_BLOCKS_FP8 < variants.PINGPONG_MAX_BLOCKS_LONG \
        < variants.PINGPONG_MAX_BLOCKS
    for mean in (threshold - 0.25, threshold, threshold + 0.25):
        b = variants.choose_build("sm90", variants.HOPPER_ARCH, head_dim, "bfloat16", page_size, 4, window_left,
                                  mean, kv_load, kv_dtype=kv_dtype, q_dtype=q_dtype, fp8_mma=fp8_mma)
        assert b.pingpong == (mean < threshold), mean
        long = threshold == variants.PINGPONG_MAX_BLOCKS_LONG and not b.pingpong
        assert (b.tile is variants.SM90_LONG_TILES.get(head_dim)) == long, mean


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


# An H100/H200 SM: 228 KB of shared memory and 64K registers for the CTAs it runs at once.
SM_SHARED_BYTES, SM_REGISTERS = 228 * 1024, 65536
SM90_TILE_SETS = {"full": variants.SM90_TILES, "long": variants.SM90_LONG_TILES, "short": variants.SM90_SHORT_TILES,
                  "fp8": variants.SM90_FP8_TILES}


def _sm90_builds_of(hd, tile, kind):
    """The builds of all_variants() with this tile (both dtypes, with and without turn-taking, their
    split-KV twins; kind "fp8": the fp8-cache builds of both kinds)."""
    builds = {v.name for v in variants.all_variants()}
    kvs = variants.FP8_KV_DTYPES if kind == "fp8" else (None,)
    mine = [v for kv in kvs for dt in variants.DTYPES for pp in (True, False) for split in (False, True)
            if (v := variants.prefill_sm90_variant(hd, dt, pp, tile, split=split, kv_dtype=kv)).name in builds]
    assert mine, f"head_dim {hd}: no build of tile {tile}"
    return mine


@pytest.mark.parametrize("kind, hd", [(k, hd) for k, tiles in SM90_TILE_SETS.items() for hd in tiles])
def test_sm90_tiles_fit_their_ctas_per_sm(kind, hd):
    """Exactly tile.ctas_per_sm CTAs of every build fit on an SM by shared memory (the cubin's static
    shared memory, which on sm_90 is the 1 KB the system reserves per CTA, plus dynamic_smem_bytes):
    the full tiles' plan() sizes the grid as sm_count * ctas_per_sm before any build is loaded, the
    short tiles' from the loaded build's occupancy, which must then be 2."""
    tile = SM90_TILE_SETS[kind][hd]
    assert tile.ctas_per_sm == (2 if kind == "short" else 1)
    for v in _sm90_builds_of(hd, tile, kind):
        ck = compiler.compile_variant(v)
        per_cta = cubin.symbol_int(ck.cubin, cubin.SMEM_BYTES_SYMBOL) + 1024
        assert tile.ctas_per_sm * per_cta <= SM_SHARED_BYTES, f"{v.name}: {per_cta} B per CTA"
        assert (tile.ctas_per_sm + 1) * per_cta > SM_SHARED_BYTES, f"{v.name}: room for another CTA"


@pytest.mark.skipif(sass.missing_tools() is not None, reason=str(sass.missing_tools()))
@pytest.mark.parametrize("kind, hd", [(k, hd) for k, tiles in SM90_TILE_SETS.items() for hd in tiles])
def test_sm90_registers_fit_their_ctas_per_sm(kind, hd):
    """Registers allow tile.ctas_per_sm CTAs: the launch count of the cubin (per thread, whole
    warps) times threads times CTAs fits the SM's 64K, and the setmaxnreg split in the SASS (producer
    warpgroup down, consumer warpgroups up) fits the CTA's launch allocation."""
    tile = SM90_TILE_SETS[kind][hd]
    for v in _sm90_builds_of(hd, tile, kind):
        ck = compiler.compile_variant(v)
        text = sass.sass_text(ck.cubin)
        regs = sass.kernel_report(ck.cubin, v.entry, sass=text)["registers"]
        assert regs * tile.threads * tile.ctas_per_sm <= SM_REGISTERS, f"{v.name}: {regs} registers"
        up = [int(x, 16) for x in re.findall(r"USETMAXREG\.TRY_ALLOC\S*\s+\w+,\s*0x([0-9a-f]+)", text)]
        down = [int(x, 16) for x in re.findall(r"USETMAXREG\.DEALLOC\S*\s+0x([0-9a-f]+)", text)]
        assert len(up) == 1 and len(down) == 1, f"{v.name}: setmaxnreg {up} {down}"
        assert down[0] * 128 + up[0] * 128 * tile.consumer_wgs <= regs * tile.threads, (v.name, regs, up, down)
        if kind == "short":  # the split of tile_sm90.cuh: producer 56, one consumer warpgroup 200
            assert (regs, down[0], up[0]) == (128, 56, 200), v.name


def _workload_lens(w):
    n = int(w["requests"])
    qo = np.asarray(w["qo_len"] if isinstance(w["qo_len"], list) else [w["qo_len"]] * n)
    kv = qo if w["kv_len"] == "= qo_len" else np.asarray(w["kv_len"] if isinstance(w["kv_len"], list)
                                                        else [w["kv_len"]] * n)
    return qo, kv


def test_sm90_short_tiles_rule_on_the_standard_workloads():
    """Of the standard workloads only W9 (speculative-decoding verification, 16 packed rows per
    (request, KV head)) is planned with the short tiles; W1-W8 and W10 keep the full tiles."""
    data = json.loads((Path(__file__).resolve().parent.parent / "tools" / "workloads.json").read_text())
    short = set()
    for w in data["workloads"]:
        qo, kv = _workload_lens(w)
        if variants.sm90_short_tiles(int(w["head_dim"]), qo, kv, w["num_qo_heads"] // w["num_kv_heads"]):
            short.add(w["id"])
    assert short == {"W9"}


def test_sm90_short_tiles_rule_worked_examples():
    """The worked examples of variants.SHORT_TILE_MAX_WORK, and the edges: every request's rows
    fitting 64 (any group, one token), the 64/65-row boundary, head_dim 64's 192-row full tiles,
    requests without keys or queries, and an empty batch (full tiles)."""
    rule, work = variants.sm90_short_tiles, variants.sm90_short_tile_work
    assert work(128, [4] * 32, [4096] * 32, 4) == 0.5 and rule(128, [4] * 32, [4096] * 32, 4)  # W9
    assert work(128, [1024] * 16, [1024] * 16, 4) == 1.0 and not rule(128, [1024] * 16, [1024] * 16, 4)  # W1
    assert work(128, [4] * 31 + [17], [4096] * 32, 4) == pytest.approx(0.516, abs=1e-3)
    assert rule(128, [4] * 31 + [17], [4096] * 32, 4)
    assert work(128, [2048] + [4] * 100, [2048] + [4096] * 100, 4) == pytest.approx(0.621, abs=1e-3)
    assert rule(128, [2048] + [4] * 100, [2048] + [4096] * 100, 4)       # 0.62 <= 0.66 (measured: +3%)
    assert not rule(128, [2048] + [4] * 32, [2048] + [4096] * 32, 4)     # 0.75: full tiles
    for hd in variants.HEAD_DIMS:
        for g in (1, 4, 8, 16, 64):
            assert rule(hd, [1] * 8, [300] * 8, g) == (hd != 256)          # decode: g rows per tile
        assert rule(hd, [16], [100], 4) == (hd != 256) and not rule(hd, [65], [100], 1)  # 64 rows; 65 rows
    assert not rule(64, [100], [1000], 1)                                  # 128 / 192 = 0.67
    assert rule(128, [4, 0, 4, 3000], [4096, 4096, 4096, 0], 4)            # no keys, no queries: no weight
    assert work(128, [], [], 4) is None and work(128, [4, 4], [0, 0], 4) is None  # no work at all
    assert not rule(128, [], [], 4) and not rule(128, [4, 4], [0, 0], 4)
    # the fill rule: W9's 256 short tiles fill 264 CTAs; 3 requests' 24 tiles do not (full tiles, split)
    assert rule(128, [4] * 32, [4096] * 32, 4, 8, 264) and not rule(128, [4] * 3, [4096] * 3, 4, 8, 264)


def test_batch_choice():
    """variants.batch_choice, plan()'s decisions around the planner: the short tiles for a W9-like
    batch (their build sets the grid; no pieces), never under fixed_split_size or on sm80 (whose
    units build sets the grid); build_for picks by the mean key blocks, the split-KV twin in graph
    mode when pieces are allowed, and a pinned build stays (pieces only if it is a twin)."""
    from nvrtc_attn.schedule import SplitRequest

    hopper = variants.HOPPER_ARCH
    qo, kv = np.full(32, 4), np.full(32, 4096)

    def choice(backend="sm90", **kw):
        return variants.batch_choice(backend, hopper, 128, "bfloat16", 16, 32, 8, -1, qo, kv, has_q=True, **kw)

    short = choice()
    assert short.short and short.grid_build.short_tiles and short.tile is variants.SM90_SHORT_TILES[128]
    assert not short.may_split(False, 100)
    assert short.build_for(None, None, False) is short.grid_build
    full = choice(fixed_split=True)
    assert not full.short and full.grid_build is None and full.tile is variants.SM90_TILES[128]
    assert full.may_split(False, 100) and not full.may_split(True, 100) and not full.may_split(False, 0)
    sm80 = choice("sm80")
    assert not sm80.short and sm80.grid_build.backend == "sm80" and not sm80.may_split(False, 100)
    rows = np.zeros((4, 8), np.int32)
    rows[:, 5] = 4096  # 32 blocks of 128 keys: no turn-taking
    b = full.build_for(rows, None, False)
    assert not b.pingpong and not b.split and full.build_for(rows, None, True) == b
    assert full.build_for(rows, SplitRequest(100, 0), True) == variants.split_build(b)
    assert full.build_for(rows, SplitRequest(100, 0), False) == b  # automatic pieces: the twin comes later
    rows[:, 5] = 256  # 2 blocks: turn-taking
    assert full.build_for(rows, None, False).pingpong
    pinned = choice(pinned=b)
    assert not pinned.short and pinned.build_for(rows, None, True) is b and not pinned.may_split(False, 100)
    assert choice(pinned=variants.split_build(b)).may_split(False, 100)
    # memoized (the wrapper keys its launch config on the object), but never across a flipped knob:
    # SHORT_TILES_GATHER off gives the short build its TMA boxes, also after a choice made with it on
    assert choice() is short and short.grid_build.kv_box == 0
    old, variants.SHORT_TILES_GATHER = variants.SHORT_TILES_GATHER, False
    try:
        boxed = choice()
        assert boxed is not short and boxed.grid_build.short_tiles and boxed.grid_build.kv_box > 0
    finally:
        variants.SHORT_TILES_GATHER = old
    assert choice() is short


def test_sm90_short_tile_builds():
    """choose_build(short_tiles=True): the one build of SM90_SHORT_TILES (no turn-taking), compiled
    with the other builds of its head_dim; K/V by the gather (no box: SHORT_TILES_GATHER), TMA boxes
    of its block_n with that switch off; Q by TMA where group_size divides 64. Without short_tiles
    nothing changes."""
    for hd, tile in variants.SM90_SHORT_TILES.items():
        assert (tile.block_m, tile.consumer_wgs, tile.ctas_per_sm, tile.threads) == (64, 1, 2, 256)
        assert variants.planning_tile("sm90", hd, variants.HOPPER_ARCH, short_tiles=True) is tile
        assert variants.planning_tile("sm90", hd, variants.HOPPER_ARCH) is variants.SM90_TILES[hd]
        for dt in variants.DTYPES:
            def short(page_size=16, group=4, kv_load="auto"):
                return variants.choose_build("sm90", variants.HOPPER_ARCH, hd, dt, page_size, group, -1, 0.0, kv_load,
                                             short_tiles=True)
            b = short()
            assert b.short_tiles and b.tile is tile and not b.pingpong and len(b.variants) == 1
            assert "_m64_" in b.name and b.variants[0] in variants.builds_of("sm90", variants.HOPPER_ARCH, hd, dt)
            assert b.kv_box == 0 and b.q_box == (64, 4, 16)
            assert short(group=3).q_box is None and short(group=64).q_box == (64, 64, 1)
            for mean_blocks in (1.0, 50.0):
                full = variants.choose_build("sm90", variants.HOPPER_ARCH, hd, dt, 16, 4, -1, mean_blocks)
                assert not full.short_tiles and "_m64_" not in full.name
    names = {v.name for v in variants.all_variants()}
    assert {"prefill_sm90_hd128_bf16_bn64_m64_nopp_sm_90a", "prefill_sm90_hd64_fp16_m64_nopp_sm_90a"} <= names
    assert not any("hd256" in n and "_m64_" in n for n in names)  # no short tiles at head_dim 256
    # boxes tile the short key blocks: 64 keys at head_dim 128, 128 at 64
    assert [variants.sm90_kv_box_tokens(ps, 128, variants.SM90_SHORT_TILES[128]) for ps in (8, 16, 64, 256)] == \
        [8, 16, 64, 64]


def test_sm90_short_tile_builds_with_tma_boxes(short_tiles_tma):
    """With SHORT_TILES_GATHER off the short builds take TMA boxes of their block_n where the page
    size allows them (pages of 1, or kv_load="gather": none); the switch changes nothing else."""
    for hd, tile in variants.SM90_SHORT_TILES.items():
        def short(page_size=16, kv_load="auto"):
            return variants.choose_build("sm90", variants.HOPPER_ARCH, hd, "bfloat16", page_size, 4, -1, 0.0, kv_load,
                                         short_tiles=True)
        assert short().kv_box == 16 and short().q_box == (64, 4, 16) and short().tile is tile
        assert short(page_size=64).kv_box == variants.sm90_kv_box_tokens(64, hd, tile)
        assert short(page_size=1).kv_box == 0 and short(kv_load="gather").kv_box == 0


def test_programmatic_launch_config():
    """The merge kernel's launch (launcher.merge_kernel: programmatic) allows programmatic stream
    serialization on the caller's stream, with its block and shared-memory size; grid set per launch."""
    from cuda.bindings import driver

    stream = driver.CUstream(0)
    config = launcher._programmatic_config(256, 1024, stream)
    assert (config.blockDimX, config.blockDimY, config.blockDimZ) == (256, 1, 1)
    assert (config.gridDimY, config.gridDimZ, config.sharedMemBytes) == (1, 1, 1024)
    assert int(config.hStream) == int(stream)
    assert config.numAttrs == 1
    (attr,) = config.attrs
    assert attr.id == driver.CUlaunchAttributeID.CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION
    assert attr.value.programmaticStreamSerializationAllowed == 1


def test_launch_argument_cache_is_bounded():
    """Every plan() brings new parameter structs (one launch each): LoadedKernel keeps the argument
    arrays of the latest _ARGS_CACHED sets only, and a set still launched (a wrapper's run() after
    many plans of other wrappers) gets its own structs' addresses every time. Without the bound the
    cache grew by one entry per plan()."""
    kernel = object.__new__(launcher.LoadedKernel)  # no device: the launch itself is recorded
    kernel._args, kernel.device, kernel.programmatic = {}, 0, False
    sent = []
    kernel._launch = lambda grid, stream, address: sent.append(
        tuple(ctypes.cast(address, ctypes.POINTER(ctypes.c_void_p))[i] for i in range(2)))
    kept = launcher.OffsetParams(), launcher.OffsetParams()
    for i in range(5 * launcher._ARGS_CACHED):
        a, b = launcher.OffsetParams(), launcher.OffsetParams()
        kernel.launch(1, a, 0, b)
        assert sent[-1] == (ctypes.addressof(a), ctypes.addressof(b))
        kernel.launch(1, kept[0], 0, kept[1])
        assert sent[-1] == (ctypes.addressof(kept[0]), ctypes.addressof(kept[1]))
        assert len(kernel._args) <= launcher._ARGS_CACHED
    assert len(sent) == 10 * launcher._ARGS_CACHED


def test_upload_refuses_a_non_contiguous_host_array(monkeypatch):
    """copy_host_to_device copies nbytes from the array's first byte: a strided view would send
    other bytes than its elements, so it is refused before any driver call."""
    monkeypatch.setattr(launcher, "_driver", lambda: pytest.fail("no driver call for a refused upload"))
    strided = np.arange(64, dtype=np.int32)[::2]
    with pytest.raises(ValueError, match="C-contiguous"):
        launcher.copy_host_to_device(0, strided, 0)
