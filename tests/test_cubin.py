"""cubin.py reads exported `extern "C" __device__ const` values from a cubin without a GPU."""
import pytest

from nvrtc_attn import compiler, cubin
from nvrtc_attn.variants import KernelVariant

SOURCE = """
extern "C" __device__ const int answer = 6 * 7;
extern "C" __device__ const int negative = -123456;
extern "C" __device__ const long long wide = 1;
extern "C" __global__ void probe(int* x) { x[threadIdx.x] = answer; }
"""
PROBE = KernelVariant("probe.cu", "probe", (), "sm_90a")


@pytest.fixture(scope="module")
def probe_cubin(tmp_path_factory):
    kernels = tmp_path_factory.mktemp("kernels")
    (kernels / "probe.cu").write_text(SOURCE)
    return compiler.compile_variant(PROBE, kernels_dir=kernels, cache_dir=kernels / "cache").cubin


def test_reads_int_symbols(probe_cubin):
    assert cubin.symbol_int(probe_cubin, "answer") == 42
    assert cubin.symbol_int(probe_cubin, "negative") == -123456


def test_symbol_bytes_and_size_check(probe_cubin):
    assert cubin.symbol_bytes(probe_cubin, "wide") == (1).to_bytes(8, "little")
    with pytest.raises(ValueError, match="8 bytes, not a 32-bit int"):
        cubin.symbol_int(probe_cubin, "wide")


def test_missing_symbol_and_not_an_elf(probe_cubin):
    with pytest.raises(KeyError, match="no symbol 'dynamic_smem_bytes'"):
        cubin.symbol_int(probe_cubin, cubin.SMEM_BYTES_SYMBOL)
    with pytest.raises(KeyError):
        cubin.symbol_int(probe_cubin, "answe")  # whole names only
    with pytest.raises(ValueError, match="not a little-endian ELF64"):
        cubin.symbol_int(b"\0" * 64, "answer")
