"""nvrtc_attn: paged-KV-cache prefill attention for NVIDIA GPUs (Hopper first), CUDA compiled at
run time with NVRTC. Plan once per batch, run every layer; FlashInfer's wrapper API.

Importing compiles nothing. The first plan() of a (backend, head_dim, dtype) compiles every kernel
build such a plan may choose, in parallel worker processes, or loads them from the disk cache
(NVRTC_ATTN_CACHE_DIR, default ~/.cache/nvrtc_attn); later plans and every run() only launch.
`python -m nvrtc_attn` compiles the builds this machine's GPU uses and runs a checked prefill.
"""
from .compiler import CompileError
from .wrapper import BatchPrefillWithPagedKVCacheWrapper, paged_prefill

__all__ = ["BatchPrefillWithPagedKVCacheWrapper", "paged_prefill", "CompileError", "__version__"]
__version__ = "0.2.0"
