# One launch of a standard workload through the wrapper (for ncu): python .notes/ncu_probe.py W2 [gather]
import sys
sys.path.insert(0, "tools"); sys.path.insert(0, ".")
import json, torch
import bench, nvrtc_attn

wid = sys.argv[1]
kv_load = sys.argv[2] if len(sys.argv) > 2 else "auto"
w = next(x for x in bench.load_workloads(None)[0] if x["id"] == wid)
b = bench.build_batch(w, seed=0)
hqo, hkv, d, ps = w["num_qo_heads"], w["num_kv_heads"], w["head_dim"], w["page_size"]
buf = torch.randn((b["max_pages"], 4, 2, ps, hkv, d), device="cuda", dtype=torch.bfloat16)
k, v = buf[:, 2, 0], buf[:, 2, 1]
q = torch.randn((int(b["qo_indptr"][-1]), hqo, d), device="cuda", dtype=torch.bfloat16)
wr = nvrtc_attn.BatchPrefillWithPagedKVCacheWrapper(torch.empty(128 << 20, dtype=torch.uint8, device="cuda"),
                                                    backend="sm90", kv_load=kv_load)
wr.plan(b["qo_indptr"], b["paged_kv_indptr"], b["paged_kv_indices"], b["paged_kv_last_page_len"], hqo, hkv, d, ps,
        causal=bool(w["causal"]), q_data_type="bfloat16", paged_kv_cache=(k, v))
for _ in range(2):
    o = wr.run(q, (k, v))
torch.cuda.synchronize()
print(wid, wr.kv_load_path, "ok")
