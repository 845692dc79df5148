"""usage (GPU): compute-sanitizer --tool memcheck python3 tools/sanitizer_case.py [--long [--no-split] | --short]   (or --tool racecheck)

Small batches for compute-sanitizer on the sm90 kernels: fp8 caches in both modes (widened, and
e4m3 wgmma), TMA pages and the gather, a sliding window (tiles whose first key block starts below
their visible keys) and a 16-bit cache with the window. Prints each build and whether its output
is finite; the sanitizer reports any out-of-bounds access or shared-memory race.
--long: one request of 64 queries on 1400 keys instead, whose tiles are long enough for the builds
without turn-taking (an fp8 cache's V widened by the consumers), fp8 cases and the 16-bit build
without turns both ways (gathered: lazy O rescaling; TMA with a window: exact).
--short: few-query requests on the sm90 short tiles (64 rows, two CTAs per SM) with fp8 caches, both
modes, K/V by the gather (their default) and by TMA boxes (variants.SHORT_TILES_GATHER off).
--hd256: head_dim 256 (the overlapped schedule with lazy rescaling): 16-bit and fp8 caches, TMA and
the gather, a window; with --long the builds without turn-taking.
"""
import math
import sys

import torch

import nvrtc_attn
from nvrtc_attn import variants

torch.manual_seed(0)
dev = "cuda"
HD256 = "--hd256" in sys.argv[1:]
ps, hkv, hq, d = 16, 2, 4, 256 if HD256 else 128
LONG = "--long" in sys.argv[1:]
NO_SPLIT = "--no-split" in sys.argv[1:]  # (with --long: the builds without split-KV)
SHORT = "--short" in sys.argv[1:]
qo, kv = ([64], [1400]) if LONG else ([4, 3, 8], [300, 70, 700]) if SHORT else ([37, 5], [300, 70])
if SHORT:
    variants.SHORT_TILE_MIN_FILL = 0.0  # a batch this small would go to the full tiles
pages = [math.ceil(k / ps) for k in kv]
n = sum(pages) + 3
perm = torch.randperm(n)[: sum(pages)].int().to(dev)
kv_indptr = torch.tensor([0, *torch.tensor(pages).cumsum(0).tolist()], dtype=torch.int32, device=dev)
last = torch.tensor([k - (p - 1) * ps for k, p in zip(kv, pages)], dtype=torch.int32, device=dev)
qo_indptr = torch.tensor([0, *torch.tensor(qo).cumsum(0).tolist()], dtype=torch.int32, device=dev)
base = torch.randn(n, 2, ps, hkv, d, device=dev) * 0.5
bf, e4, e5 = torch.bfloat16, torch.float8_e4m3fn, torch.float8_e5m2
cases = [  # q dtype, cache dtype, fp8_mma, kv_load, window_left
    (bf, e4, False, "auto", -1), (bf, e4, False, "gather", -1), (bf, e4, False, "auto", 50),
    (torch.float16, e5, False, "auto", -1), (e4, e4, True, "auto", -1), (e4, e4, False, "gather", 50),
    (bf, bf, False, "auto", 50), (bf, bf, False, "gather", 50)]
if LONG:
    cases = [(bf, e4, False, "auto", -1), (bf, e4, False, "gather", -1), (torch.float16, e5, False, "auto", -1),
             (e4, e4, False, "auto", -1),
             # the 16-bit 128-key build without turns: lazy rescaling when it gathers, exact on TMA boxes
             (bf, bf, False, "gather", -1), (bf, bf, False, "auto", 1100)]
if HD256:
    cases = [(bf, bf, False, "auto", -1), (bf, bf, False, "gather", -1), (bf, bf, False, "auto", 50),
             (torch.float16, torch.float16, False, "gather", 50), (bf, e4, False, "auto", -1),
             (torch.float16, e5, False, "gather", -1)]
if SHORT:  # kv_load "tma": auto with SHORT_TILES_GATHER off
    cases = [(bf, e4, False, "auto", -1), (bf, e4, False, "tma", 50), (torch.float16, e5, False, "tma", -1),
             (e4, e4, False, "auto", -1), (e4, e4, True, "tma", -1)]
for qdt, kvdt, mma, load, window in cases:
    variants.SHORT_TILES_GATHER = load != "tma"
    load = "auto" if load == "tma" else load
    cache = base.to(kvdt)
    q = (torch.randn(sum(qo), hq, d, device=dev) * 0.5).to(qdt)
    ws = torch.empty(64 << 20, dtype=torch.uint8, device=dev)
    w = nvrtc_attn.BatchPrefillWithPagedKVCacheWrapper(ws, "NHD", fp8_mma=mma, kv_load=load)
    w.plan(qo_indptr, kv_indptr, perm, last, hq, hkv, d, ps, causal=True, window_left=window, q_data_type=qdt,
           kv_data_type=kvdt, o_data_type=torch.bfloat16 if qdt == e4 else None, disable_split_kv=NO_SPLIT)
    scales = dict(k_scale=0.37, v_scale=2.5) if kvdt in (e4, e5) else {}
    o = w.run(q, cache, **scales)
    torch.cuda.synchronize()
    print(w.kernel_name, load, w.kv_load_path, window, float(o.float().abs().mean()), bool(torch.isfinite(o.float()).all()))
