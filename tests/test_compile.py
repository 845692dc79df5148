"""CPU-only: every kernel variant compiles with NVRTC, keeps everything in registers, and its SASS
shows the intended hardware path; plus the compile cache and CompileError. No GPU needed.
"""

from __future__ import annotations

import os
import re
import warnings

import pytest

from nvrtc_attn import compiler, sass
from nvrtc_attn.variants import KernelVariant, all_variants

VARIANTS = {v.name: v for v in all_variants()}
NAMES = list(VARIANTS)
SM80_NAMES = [n for n in NAMES if "sm80" in n]
SM90_NAMES = [n for n, v in VARIANTS.items() if v.arch == "sm_90a" and "sm90" in v.entry]

needs_cuobjdump = pytest.mark.skipif(sass.missing_tools() is not None, reason=str(sass.missing_tools()))


@pytest.fixture(scope="module")
def compiled():
    """name -> CompiledKernel or CompileError; one parallel compile_all for the whole module."""
    results = compiler.compile_all(list(VARIANTS.values()), return_exceptions=True)
    return dict(zip(VARIANTS, results))


@pytest.fixture(scope="module")
def reports(compiled):
    """name -> sass.kernel_report (registers, stack, spills, opcode flags) of compiled variants."""
    out = {}
    for name, ck in compiled.items():
        if isinstance(ck, compiler.CompiledKernel):
            out[name] = sass.kernel_report(ck.cubin, ck.variant.entry)
    return out


def _kernel(compiled, name):
    ck = compiled[name]
    if isinstance(ck, compiler.CompileError):
        pytest.fail(str(ck), pytrace=False)
    return ck


def test_variant_names_unique():
    assert len(VARIANTS) == len(all_variants())


@pytest.mark.parametrize("name", NAMES)
def test_variant_compiles(compiled, name):
    ck = _kernel(compiled, name)
    assert ck.cubin[:4] == b"\x7fELF"
    assert len(ck.key) == 64
    assert ck.variant == VARIANTS[name]


@needs_cuobjdump
@pytest.mark.parametrize("name", NAMES)
def test_no_local_memory(compiled, reports, name):
    _kernel(compiled, name)
    r = reports[name]
    spills = {k: r[k] for k in ("stack", "local", "spill_stores", "spill_loads")}
    assert spills == dict.fromkeys(spills, 0), f"{name}: registers={r['registers']}, {spills}"


@needs_cuobjdump
@pytest.mark.parametrize("name", SM80_NAMES)
def test_sm80_path_uses_mma_sync_and_cp_async(compiled, reports, name):
    _kernel(compiled, name)
    assert reports[name]["HMMA"], f"{name}: no HMMA (mma.sync) in SASS"
    assert reports[name]["LDGSTS"], f"{name}: no LDGSTS (cp.async) in SASS"


@needs_cuobjdump
@pytest.mark.parametrize("name", SM90_NAMES)
def test_sm90_path_uses_wgmma(compiled, reports, name):
    """16-bit wgmma (HGMMA) in every Hopper build; the fp8-MMA builds (FP8_MMA) run both GEMMs as e4m3
    wgmma k32 instead, which SASS spells QGMMA.64xNx32.F32.E4M3.E4M3 (N: block_n for S, head_dim for O)."""
    ck = _kernel(compiled, name)
    assert not reports[name]["HMMA"], f"{name}: mma.sync (HMMA) in the Hopper kernel"
    d = dict(VARIANTS[name].defines)
    if int(d.get("FP8_MMA", 0)):
        found = set(re.findall(r"\bQGMMA\.64x(\d+)x32\.F32\.E4M3\.E4M3\b", sass.sass_text(ck.cubin)))
        assert found == {str(d["BLOCK_N"]), str(d["HEAD_DIM"])}, f"{name}: e4m3 wgmma shapes {found}"
        assert not reports[name]["HGMMA"], f"{name}: a 16-bit wgmma in an fp8-MMA build"
    else:
        assert reports[name]["HGMMA"], f"{name}: no HGMMA (wgmma) in SASS"


@needs_cuobjdump
@pytest.mark.parametrize("name", SM90_NAMES)
def test_sm90_path_has_tma_and_gather_loads(compiled, reports, name):
    """Both K/V load paths are in every Hopper binary (run() picks one per cache view):
    UTMALDG (cp.async.bulk.tensor, the per-page TMA path and Q) and LDGSTS (the gather path)."""
    _kernel(compiled, name)
    assert reports[name]["UTMALDG"], f"{name}: no UTMALDG (TMA load) in SASS"
    assert reports[name]["LDGSTS"], f"{name}: no LDGSTS (cp.async gather) in SASS"


FP8_NAMES = [n for n, v in VARIANTS.items() if int(dict(v.defines).get("KV_FP8", 0))]


@needs_cuobjdump
@pytest.mark.parametrize("name", FP8_NAMES)
def test_fp8_builds_widen_in_shared_memory(compiled, name):
    """fp8-cache builds load bytes and widen them in shared memory (kernels_cu/fp8_convert.cuh):
    16-byte shared loads and stores, and the widening's instructions: cvt e4m3 -> f16 (F2FP ... E4M3)
    in the sm90 fp16 e4m3 builds, a bf16 multiply (HMUL2.BF16 / HFMA2.BF16) for bf16 queries, an
    f16 one (HMUL2 / HFMA2) for the sm80 fp16 e4m3 builds, byte permutes (PRMT) in all others."""
    ck = _kernel(compiled, name)
    text = sass.sass_text(ck.cubin)
    d = dict(VARIANTS[name].defines)
    e4m3, bf16, sm90 = int(d["KV_FP8"]) == 1, int(d["IS_BF16"]) == 1, ck.variant.entry == "prefill_sm90"
    assert re.search(r"\bSTS\.128\b", text) and re.search(r"\bLDS\.128\b", text), name
    if int(d.get("FP8_MMA", 0)):  # no widening: K swizzled (LDS/STS.128), V transposed, P to e4m3
        # V: transposing matrix loads, byte permutes, matrix stores (fp8::transpose_v_block), no byte loads
        assert re.search(r"\bLDSM\.16\.MT88\.4\b", text) and re.search(r"\bSTSM\.16\.M88\.4\b", text) \
            and re.search(r"\bPRMT\b", text), f"{name}: no V transpose"
        assert not re.search(r"\bLDS\.U8\b", text), f"{name}: byte loads in the V transpose"
        assert re.search(r"\bF2FP\.SATFINITE\.E4M3\.F32", text), f"{name}: no cvt f32 -> e4m3 (P)"
        assert not re.search(r"\bF2FP\.F16\.E4M3|\bH(MUL|FMA)2\.BF16", text), f"{name}: widening in an fp8-MMA build"
        return
    if bf16:
        assert re.search(r"\bH(MUL|FMA)2\.BF16", text), f"{name}: no bf16 multiply (fp8 -> bf16)"
    elif e4m3 and sm90:
        assert re.search(r"\bF2FP\.F16\.E4M3", text), f"{name}: no cvt e4m3 -> f16"
    elif e4m3:
        assert re.search(r"\bH(MUL|FMA)2\b(?!\.BF16)", text), f"{name}: no f16 multiply (e4m3 -> f16)"
    assert re.search(r"\bPRMT\b", text) or (e4m3 and sm90 and not bf16), f"{name}: no byte permute"


SM90_FP8_WIDEN_NAMES = [n for n in FP8_NAMES if n in SM90_NAMES and not int(dict(VARIANTS[n].defines).get("FP8_MMA", 0))]


@needs_cuobjdump
@pytest.mark.parametrize("name", SM90_FP8_WIDEN_NAMES)
def test_sm90_fp8_consumers_widen_v_where_built_for_it(compiled, name):
    """The consumers widen V (kConsumerV in kernels_cu/tile_sm90.cuh) in the fp8 widening builds with two
    consumer warpgroups, no turn-taking and head_dim <= 128: their two warpgroups meet at bar.sync 5 of
    256 threads (NamedBarrier::ConsumersV) before each P V; no other build has that barrier."""
    ck = _kernel(compiled, name)
    d = dict(VARIANTS[name].defines)
    want = int(d["HEAD_DIM"]) <= 128 and int(d["CONSUMER_WGS"]) == 2 and not int(d["PINGPONG"])
    has = bool(re.search(r"\bBAR\.SYNC(\.DEFER_BLOCKING)? 0x5, 0x100\b", sass.sass_text(ck.cubin)))
    assert has == want, f"{name}: ConsumersV bar.sync {'missing' if want else 'present'}"


@needs_cuobjdump
@pytest.mark.parametrize("name", [n for n in NAMES if n.startswith(("prefill_sm90", "merge_split"))])
def test_programmatic_merge_pair(compiled, name):
    """The merge follows the split prefill by a programmatic launch (launcher.merge_kernel): the
    split builds issue griddepcontrol.launch_dependents (SASS PREEXIT), merge_split waits in
    griddepcontrol.wait (ACQBULK) before it reads a partial; no other sm90 build has either."""
    text = sass.sass_text(_kernel(compiled, name).cubin)
    d = dict(VARIANTS[name].defines)
    is_merge = name.startswith("merge_split")
    assert bool(re.search(r"\bPREEXIT\b", text)) == (int(d.get("SPLIT_KV", 0)) == 1), name
    assert bool(re.search(r"\bACQBULK\b", text)) == is_merge, name


def test_both_kernels_have_variants():
    """The SASS checks above are parametrized by these lists: an empty one would skip them silently."""
    assert SM80_NAMES, "no sm80 (mma.sync) variant in all_variants()"
    assert SM90_NAMES, "no sm90 (wgmma) variant in all_variants()"
    assert FP8_NAMES, "no fp8-cache variant in all_variants()"
    assert any("FP8_MMA" in dict(VARIANTS[n].defines) for n in SM90_NAMES), "no fp8-MMA variant in all_variants()"


# ---------------------------------------------------------------------------------------------
# cache and errors, on a tiny kernel of our own (fast, independent of kernels_cu/)

TINY_HEADER = "#define TINY_OFFSET 1\n"
TINY_SOURCE = """#include "tiny.cuh"
extern "C" __global__ void tiny(float* x) { x[threadIdx.x] = x[threadIdx.x] * SCALE + TINY_OFFSET; }
"""
TINY = KernelVariant("tiny.cu", "tiny", (("SCALE", 3),), "sm_90a")


@pytest.fixture
def tiny_dirs(tmp_path):
    kernels = tmp_path / "kernels"
    kernels.mkdir()
    (kernels / "tiny.cu").write_text(TINY_SOURCE)
    (kernels / "tiny.cuh").write_text(TINY_HEADER)
    compiler.clear_memory_cache()
    yield kernels, tmp_path / "cache"
    compiler.clear_memory_cache()


def test_disk_cache_round_trip(tiny_dirs):
    kernels, cache = tiny_dirs
    cold = compiler.compile_variant(TINY, kernels_dir=kernels, cache_dir=cache)
    assert not cold.from_cache
    entry = cache / f"{cold.key}.bin"
    assert entry.is_file()
    assert [p.name for p in cache.iterdir()] == [entry.name]  # no temp files left behind

    assert compiler.compile_variant(TINY, kernels_dir=kernels, cache_dir=cache).from_cache  # memory
    compiler.clear_memory_cache()
    warm = compiler.compile_variant(TINY, kernels_dir=kernels, cache_dir=cache)  # disk
    assert warm.from_cache
    assert (warm.cubin, warm.key, warm.variant.entry) == (cold.cubin, cold.key, "tiny")


@pytest.mark.parametrize("damage", ["flip_byte", "truncate", "empty", "garbage"])
def test_corrupt_cache_entry_is_recompiled(tiny_dirs, damage):
    kernels, cache = tiny_dirs
    cold = compiler.compile_variant(TINY, kernels_dir=kernels, cache_dir=cache)
    entry = cache / f"{cold.key}.bin"
    blob = entry.read_bytes()
    damaged = {
        "flip_byte": blob[:-10] + bytes([blob[-10] ^ 0xFF]) + blob[-9:],
        "truncate": blob[: len(blob) // 2],
        "empty": b"",
        "garbage": os.urandom(len(blob)),
    }[damage]
    entry.write_bytes(damaged)
    compiler.clear_memory_cache()

    again = compiler.compile_variant(TINY, kernels_dir=kernels, cache_dir=cache)
    assert not again.from_cache and again.cubin == cold.cubin
    assert entry.read_bytes() == blob  # overwritten with a good entry
    compiler.clear_memory_cache()
    assert compiler.compile_variant(TINY, kernels_dir=kernels, cache_dir=cache).from_cache


def test_unwritable_cache_dir_warns_and_still_compiles(tiny_dirs, tmp_path):
    kernels, _ = tiny_dirs
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("")  # a cache dir below a plain file can never be created, even as root
    with pytest.warns(RuntimeWarning, match="not writable"):
        ck = compiler.compile_variant(TINY, kernels_dir=kernels, cache_dir=blocker / "cache")
    assert ck.cubin[:4] == b"\x7fELF"


def test_key_covers_every_source_file_and_the_defines(tiny_dirs):
    kernels, cache = tiny_dirs
    key = compiler.compile_variant(TINY, kernels_dir=kernels, cache_dir=cache).key
    other_define = KernelVariant("tiny.cu", "tiny", (("SCALE", 4),), "sm_90a")
    assert compiler.compile_variant(other_define, kernels_dir=kernels, cache_dir=cache).key != key
    other_arch = KernelVariant("tiny.cu", "tiny", (("SCALE", 3),), "sm_80")
    assert compiler.compile_variant(other_arch, kernels_dir=kernels, cache_dir=cache).key != key

    (kernels / "tiny.cuh").write_text(TINY_HEADER + "// edited\n")
    edited = compiler.compile_variant(TINY, kernels_dir=kernels, cache_dir=cache)
    assert edited.key != key and not edited.from_cache


def test_want_ptx_returns_ptx_of_the_same_compile(tiny_dirs):
    kernels, cache = tiny_dirs
    ck = compiler.compile_variant(TINY, kernels_dir=kernels, cache_dir=cache, want_ptx=True)
    assert ".target sm_90a" in ck.ptx and ".entry tiny" in ck.ptx
    assert compiler.compile_variant(TINY, kernels_dir=kernels, cache_dir=cache).ptx is None


def test_compile_error_carries_the_nvrtc_log(tiny_dirs):
    kernels, cache = tiny_dirs
    (kernels / "broken.cu").write_text('extern "C" __global__ void broken() { int x = ; }\n')
    broken = KernelVariant("broken.cu", "broken", (), "sm_90a")
    with pytest.raises(compiler.CompileError) as info:
        compiler.compile_variant(broken, kernels_dir=kernels, cache_dir=cache)
    err = info.value
    assert "broken.cu(1): error" in err.log
    assert err.log.strip() in str(err) and broken.name in str(err)
    assert err.variant == broken.name
    assert not any(p.suffix == ".bin" for p in cache.glob("*"))  # failures are not cached


def test_missing_entry_is_a_compile_error(tiny_dirs):
    kernels, cache = tiny_dirs
    misspelt = KernelVariant("tiny.cu", "tiny_kernel", (("SCALE", 3),), "sm_90a")
    with pytest.raises(compiler.CompileError, match="'tiny_kernel' not found"):
        compiler.compile_variant(misspelt, kernels_dir=kernels, cache_dir=cache)


def test_compile_all_in_worker_processes(tiny_dirs):
    kernels, cache = tiny_dirs
    (kernels / "broken.cu").write_text('extern "C" __global__ void broken() { int x = ; }\n')
    broken = KernelVariant("broken.cu", "broken", (), "sm_90a")
    other = KernelVariant("tiny.cu", "tiny", (("SCALE", 5),), "sm_90a")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = compiler.compile_all(
            [TINY, broken, other, TINY], max_workers=2, kernels_dir=kernels, cache_dir=cache,
            return_exceptions=True,
        )
    assert isinstance(out[1], compiler.CompileError) and "broken.cu(1): error" in out[1].log
    assert out[0].cubin == out[3].cubin and out[0].cubin != out[2].cubin
    assert [o.from_cache for o in (out[0], out[2])] == [False, False]
    with pytest.raises(compiler.CompileError, match="broken"):
        compiler.compile_all([TINY, broken], max_workers=2, kernels_dir=kernels, cache_dir=cache)
    # everything that compiled is cached: no worker process is started the second time
    again = compiler.compile_all([TINY, other], max_workers=2, kernels_dir=kernels, cache_dir=cache)
    assert all(ck.from_cache for ck in again)


def test_dead_worker_fails_one_variant_and_is_replaced(tiny_dirs, tmp_path):
    # Stands in for an NVRTC segfault: the worker process dies under a job.
    from nvrtc_attn import compile_pool

    kernels, _ = tiny_dirs
    worker = compile_pool.Worker(str(tmp_path))
    try:
        assert worker.compile(TINY, kernels)[0][:4] == b"\x7fELF"
        worker.proc.kill()
        worker.proc.wait()
        with pytest.raises(compile_pool.WorkerFailure, match=f"died while compiling {TINY.name}"):
            worker.compile(TINY, kernels)
        assert worker.compile(TINY, kernels)[0][:4] == b"\x7fELF"  # a fresh worker
    finally:
        worker.close()


def test_nvrtc_version():
    major, minor = compiler.nvrtc_version()
    assert major >= 12 and minor >= 0
