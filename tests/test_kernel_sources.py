"""CPU-only checks of kernels_cu/ as source: generated code equals its generator's output, and every
file opens by saying its job."""
import importlib.util
from pathlib import Path

from nvrtc_attn import compiler, variants

REPO = Path(__file__).resolve().parent.parent


def _load_tool(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ptx_wgmma_is_its_generators_output():
    """kernels_cu/ptx_wgmma.cuh == tools/gen_ptx_wgmma.py's text (sm90_wgmma_ns, sm90_fp8_wgmma_ns)."""
    gen = _load_tool("gen_ptx_wgmma")
    checked_in = (compiler.KERNELS_DIR / "ptx_wgmma.cuh").read_text()
    assert checked_in == gen.generate(variants.sm90_wgmma_ns(), variants.sm90_fp8_wgmma_ns()), \
        "run python tools/gen_ptx_wgmma.py"
    assert gen.main(["--check"]) == 0


def test_wgmma_ns_cover_every_sm90_gemm():
    """S = Q K^T needs N = block_n of every sm90 tile, O += P V needs N = head_dim."""
    ns = variants.sm90_wgmma_ns()
    assert list(ns) == sorted(set(ns))
    for hd, tile in [*variants.SM90_TILES.items(), *variants.SM90_LONG_TILES.items()]:
        assert tile.block_n in ns and hd in ns


def test_generator_check_fails_on_a_stale_file(tmp_path, monkeypatch):
    gen = _load_tool("gen_ptx_wgmma")
    stale = tmp_path / "ptx_wgmma.cuh"
    stale.write_text(gen.generate(variants.sm90_wgmma_ns()).replace("m64n176k16", "m64n168k16"))
    monkeypatch.setattr(gen, "OUTPUT", stale)
    assert gen.main(["--check"]) == 1


def test_every_kernel_file_opens_with_its_job():
    for path in sorted(compiler.KERNELS_DIR.iterdir()):
        first = path.read_text().splitlines()[0]
        assert first.startswith("// ") and len(first) > 20, f"{path.name} does not open with a comment on its job"
