"""nvrtc_attn: paged-KV-cache prefill attention for NVIDIA GPUs (Hopper first), CUDA compiled at
run time with NVRTC. Plan once per batch, run every layer.

Importing compiles the default kernel variants (head_dim 128, fp16/bf16, sm_90a) or loads them from
the disk cache (NVRTC_ATTN_CACHE_DIR, default ~/.cache/nvrtc_attn); other variants compile on first
use. Set NVRTC_ATTN_LAZY_COMPILE=1 to skip the import-time compile.
"""
import os as _os

from . import compiler as _compiler
from . import variants as _variants
from .compiler import CompileError
from .wrapper import BatchPrefillWithPagedKVCacheWrapper, paged_prefill

__all__ = ["BatchPrefillWithPagedKVCacheWrapper", "paged_prefill", "CompileError", "__version__"]
__version__ = "0.1.0"

if _os.environ.get("NVRTC_ATTN_LAZY_COMPILE", "") not in ("1", "true", "yes"):
    for _v in _variants.default_variants():
        _compiler.compile_variant(_v)
