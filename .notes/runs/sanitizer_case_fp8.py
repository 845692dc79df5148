import torch, nvrtc_attn
torch.manual_seed(0)
dev = "cuda"
ps, hkv, hq, d = 16, 2, 4, 128
qo, kv = [37, 5], [300, 70]
import math
pages = [math.ceil(k / ps) for k in kv]
n = sum(pages) + 3
perm = torch.randperm(n)[: sum(pages)].int().to(dev)
kv_indptr = torch.tensor([0, pages[0], sum(pages)], dtype=torch.int32, device=dev)
last = torch.tensor([k - (p - 1) * ps for k, p in zip(kv, pages)], dtype=torch.int32, device=dev)
qo_indptr = torch.tensor([0, qo[0], sum(qo)], dtype=torch.int32, device=dev)
cache = (torch.randn(n, 2, ps, hkv, d, device=dev) * 0.5).to(torch.float8_e4m3fn)
for qdt, mma in ((torch.bfloat16, False), (torch.float8_e4m3fn, True)):
    q = (torch.randn(sum(qo), hq, d, device=dev) * 0.5).to(qdt)
    ws = torch.empty(64 << 20, dtype=torch.uint8, device=dev)
    w = nvrtc_attn.BatchPrefillWithPagedKVCacheWrapper(ws, "NHD", fp8_mma=mma)
    w.plan(qo_indptr, kv_indptr, perm, last, hq, hkv, d, ps, causal=True, q_data_type=qdt,
           kv_data_type=torch.float8_e4m3fn, o_data_type=torch.bfloat16 if mma else None)
    o = w.run(q, cache, k_scale=0.37, v_scale=2.5)
    torch.cuda.synchronize()
    print(w.kernel_name, float(o.float().abs().mean()), bool(torch.isfinite(o.float()).all()))
