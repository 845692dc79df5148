"""Several GPUs in one process (issue 12): a wrapper per device, plans and runs interleaved on each
device's current stream, wrong-device inputs refused before any launch, tensor-parallel head shards
against a single-GPU run, one process per GPU, and one kernel cache for all devices. Needs two GPUs
(the `multi_gpu` marker skips these cleanly elsewhere).
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.gpu, pytest.mark.multi_gpu]
REPO = Path(__file__).resolve().parent.parent


def _torch():
    from conftest import require_torch_cuda

    require_torch_cuda()
    import torch

    return torch


def _case(kit, torch, device, seed, hq=32, hkv=8, d=128, ps=16):
    batch = kit.make_page_table([70, 200, 33], [300, 200, 90], ps, seed)
    with torch.cuda.device(device):
        g = torch.Generator(device=f"cuda:{device}")
        g.manual_seed(seed)
        pool = torch.randn(batch.max_pages, 2, 2, ps, hkv, d, generator=g, device=f"cuda:{device}").to(torch.bfloat16)
        q = torch.randn(batch.total_q, hq, d, generator=g, device=f"cuda:{device}").to(torch.bfloat16)
        ws = torch.empty(64 << 20, dtype=torch.uint8, device=f"cuda:{device}")
    return batch, pool, q, ws


def test_wrapper_per_device_interleaved(kit):
    torch = _torch()
    import nvrtc_attn
    from nvrtc_attn.reference import paged_prefill_reference

    cases = [_case(kit, torch, dev, 10 + dev) for dev in (0, 1)]
    wrappers = [nvrtc_attn.BatchPrefillWithPagedKVCacheWrapper(ws, "NHD") for (_, _, _, ws) in cases]
    torch.cuda.set_device(0)  # the current device stays 0: nothing may silently run there for GPU 1
    for rep in range(2):
        for dev in (1, 0):
            batch, pool, q, _ = cases[dev]
            wrappers[dev].plan(*batch.index_args(), 32, 8, 128, 16, causal=True, q_data_type=torch.bfloat16)
        for dev in (0, 1):
            batch, pool, q, _ = cases[dev]
            with torch.cuda.device(dev):
                o = wrappers[dev].run(q, (pool[:, 1, 0], pool[:, 1, 1]))
            assert o.device == q.device
            ref, _ = paged_prefill_reference(q, (pool[:, 1, 0], pool[:, 1, 1]), *batch.index_args(), causal=True)
            kit.check_attention(o, None, ref, None, "bfloat16", what=f"cuda:{dev} rep {rep}")
    assert torch.cuda.current_device() == 0


def test_wrong_device_inputs_are_refused(kit):
    torch = _torch()
    import nvrtc_attn

    batch, pool0, q0, ws0 = _case(kit, torch, 0, 20)
    _, pool1, q1, _ = _case(kit, torch, 1, 20)
    w = nvrtc_attn.BatchPrefillWithPagedKVCacheWrapper(ws0, "NHD")
    w.plan(*batch.index_args(), 32, 8, 128, 16, causal=True, q_data_type=torch.bfloat16)
    out = kit.poison(torch.empty_like(q0))
    with pytest.raises(ValueError, match=r"cuda:0.*cuda:1|cuda:1.*cuda:0"):
        w.run(q1, (pool0[:, 1, 0], pool0[:, 1, 1]), out=out)
    with pytest.raises(ValueError, match=r"cuda:0.*cuda:1|cuda:1.*cuda:0"):
        w.run(q0, (pool1[:, 1, 0], pool1[:, 1, 1]), out=out)
    with pytest.raises(ValueError, match=r"cuda:0.*cuda:1|cuda:1.*cuda:0"):
        w.run(q1, (pool1[:, 1, 0], pool1[:, 1, 1]))  # planned on GPU 0
    torch.cuda.synchronize(0)
    assert bool(torch.isnan(out).all())


def test_tensor_parallel_head_shards_match_one_gpu(kit):
    """32 query / 8 KV heads split over two GPUs (16/4 each) from one pool per GPU, concatenated,
    against all heads on one GPU."""
    torch = _torch()
    import nvrtc_attn

    batch, pool, q, ws = _case(kit, torch, 0, 30)
    full = nvrtc_attn.BatchPrefillWithPagedKVCacheWrapper(ws, "NHD")
    full.plan(*batch.index_args(), 32, 8, 128, 16, causal=True, q_data_type=torch.bfloat16)
    ref = full.run(q, (pool[:, 1, 0], pool[:, 1, 1]))
    shards = []
    for dev in (0, 1):
        kv = pool[:, 1, :, :, 4 * dev: 4 * dev + 4].to(f"cuda:{dev}")  # this GPU's KV heads
        qd = q[:, 16 * dev: 16 * dev + 16].to(f"cuda:{dev}")
        wd = nvrtc_attn.BatchPrefillWithPagedKVCacheWrapper(torch.empty(64 << 20, dtype=torch.uint8,
                                                                         device=f"cuda:{dev}"), "NHD")
        wd.plan(*batch.index_args(), 16, 4, 128, 16, causal=True, q_data_type=torch.bfloat16)
        with torch.cuda.device(dev):
            shards.append(wd.run(qd, (kv[:, 0], kv[:, 1])).to("cuda:0"))
    both = torch.cat(shards, dim=1)
    err = float((both.float() - ref.float()).norm() / ref.float().norm())
    assert err <= 1e-2, err


def test_one_process_per_gpu_and_one_kernel_cache(tmp_path):
    """Two processes, one per GPU (CUDA_VISIBLE_DEVICES), share one kernel cache directory: the
    second finds every build there."""
    child = textwrap.dedent("""
        import sys, torch, numpy as np, nvrtc_attn
        from nvrtc_attn import compiler
        from nvrtc_attn.reference import paged_prefill_reference
        qo = np.array([0, 50, 130], np.int32); kv = np.array([0, 5, 9], np.int32)
        idx = np.random.default_rng(1).permutation(12)[:9].astype(np.int32); last = np.array([16, 16], np.int32)
        pool = torch.randn(12, 2, 16, 8, 128, device="cuda", dtype=torch.bfloat16)
        q = torch.randn(130, 32, 128, device="cuda", dtype=torch.bfloat16)
        w = nvrtc_attn.BatchPrefillWithPagedKVCacheWrapper(torch.empty(1 << 24, dtype=torch.uint8, device="cuda"))
        w.plan(qo, kv, idx, last, 32, 8, 128, 16, causal=True, q_data_type=torch.bfloat16)
        o = w.run(q, pool)
        ref, _ = paged_prefill_reference(q, pool, qo, kv, idx, last, causal=True)
        err = float(np.linalg.norm(o.float().cpu().numpy() - ref.get()) / np.linalg.norm(ref.get()))
        fresh = [k for k in compiler._memory_cache.values() if not k.from_cache]
        print("ERR", err, "COMPILED", len(fresh))
    """)
    cache = tmp_path / "cache"
    outs = []
    for dev in ("0", "1"):
        env = dict(os.environ, CUDA_VISIBLE_DEVICES=dev, NVRTC_ATTN_CACHE_DIR=str(cache),
                   PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        proc = subprocess.run([sys.executable, "-c", child], env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        outs.append(proc.stdout.split())
    for words in outs:
        assert float(words[words.index("ERR") + 1]) <= 2e-2
    assert int(outs[1][outs[1].index("COMPILED") + 1]) == 0, "the second process recompiled"
