"""Session 12: where W8's time goes. GPU time (CUDA events, median) of: the full run(); the prefill
launch alone (the split pieces, no merge); the merge alone (on the pieces' partials); the unsplit
plan (disable_split_kv=True). Timing only: the prefill-only output is not the result."""
import math, statistics, sys
sys.path.insert(0, "tools")
import bench

gpu = bench.Gpu()
torch = gpu.torch
wl, _ = bench.load_workloads()
ids = sys.argv[1].split(",") if len(sys.argv) > 1 else ["W8"]
for w in [x for x in wl if x["id"] in ids]:
    batch = bench.build_batch(w)
    ops = bench.make_operands(gpu, w, batch)
    idx = bench.host_indices(torch, batch)
    flops = bench.workload_flops(w)
    res = {}
    for split in (True, False):
        wr = bench.ours_wrapper(gpu, "auto", "auto")
        out_dtype = {}
        wr.plan(*idx, w["num_qo_heads"], w["num_kv_heads"], w["head_dim"], w["page_size"], causal=bool(w["causal"]),
                q_data_type=ops.q_dtype, kv_data_type=ops.kv_dtype, paged_kv_cache=(ops.k, ops.v),
                disable_split_kv=not split)
        wr.run(ops.q, (ops.k, ops.v), out=ops.out)
        gpu.sync()
        tag = "split" if split else "unsplit"
        res[tag + " run"] = gpu.time_ms(lambda: wr.run(ops.q, (ops.k, ops.v), out=ops.out), 50, 5)
        st = torch.cuda.current_stream().cuda_stream
        plan = wr._plan
        res[tag + " prefill"] = gpu.time_ms(lambda: wr._kernels[0].launch(plan.num_ctas, wr._params, st, wr._maps), 50, 5)
        if wr._merge is not None:
            res[tag + " merge"] = gpu.time_ms(lambda: wr._merge.launch(wr._merge_grid, wr._merge_params, st), 50, 5)
            print(f"{w['id']} pieces {plan.num_ctas} ctas, merges {plan.num_merges}", flush=True)
    for k, v in res.items():
        print(f"{w['id']} {k:16s} {v*1e3:8.1f} us  {flops / (v * 1e-3) / 1e12:7.1f} TFLOP/s", flush=True)
