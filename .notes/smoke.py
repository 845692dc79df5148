# Device smoke test: a few correctness cases + W2 timing. Not part of the test suite.
import sys, time, math
t0 = time.time()
import numpy as np, torch, cupy
sys.path.insert(0, ".")
import nvrtc_attn
from nvrtc_attn.reference import paged_prefill_reference
print("import", time.time() - t0, flush=True)

def case(B, qo, kv, Hq, Hk, D, ps, causal, dtype=torch.bfloat16, layout="NHD", window=-1, cap=None, seed=0, timing=False, check=True, backend="auto"):
    g = torch.Generator(device="cuda").manual_seed(seed)
    rng = np.random.default_rng(seed)
    qo_lens = [qo] * B if np.isscalar(qo) else list(qo)
    kv_lens = [kv] * B if np.isscalar(kv) else list(kv)
    npages = [ -(-k // ps) for k in kv_lens]
    P = int(sum(npages) * 1.1) + 2
    perm = rng.permutation(P)
    kv_indptr = np.concatenate([[0], np.cumsum(npages)]).astype(np.int32)
    indices = perm[: kv_indptr[-1]].astype(np.int32)
    last = np.array([k - (n - 1) * ps if n else 0 for k, n in zip(kv_lens, npages)], np.int32)
    qo_indptr = np.concatenate([[0], np.cumsum(qo_lens)]).astype(np.int32)
    shape = (P, 4, 2, ps, Hk, D) if layout == "NHD" else (P, 4, 2, Hk, ps, D)
    buf = torch.randn(shape, device="cuda", dtype=dtype, generator=g)
    k, v = buf[:, 2, 0], buf[:, 2, 1]
    q = torch.randn((int(qo_indptr[-1]), Hq, D), device="cuda", dtype=dtype, generator=g)
    ws = torch.empty(256 << 20, dtype=torch.uint8, device="cuda")
    w = nvrtc_attn.BatchPrefillWithPagedKVCacheWrapper(ws, layout, backend=backend)
    tp = time.time()
    w.plan(qo_indptr, kv_indptr, indices, last, Hq, Hk, D, ps, causal=causal, window_left=window,
           logits_soft_cap=cap, q_data_type=dtype)
    plan_ms = (time.time() - tp) * 1e3
    out = torch.full_like(q, float("nan"))
    o, lse = w.run(q, (k, v), out=out, return_lse=True)
    torch.cuda.synchronize()
    if check:
        # check a subset for big cases
        ro, rl = paged_prefill_reference(q, (k, v), qo_indptr, kv_indptr, indices, last, kv_layout=layout,
                                         causal=causal, window_left=window, logits_soft_cap=cap)
        oc = cupy.from_dlpack(o.float())
        err = float(cupy.linalg.norm(oc - ro) / cupy.linalg.norm(ro))
        lc = cupy.from_dlpack(lse)
        fin = cupy.isfinite(rl)
        lerr = float(cupy.abs(lc[fin] - rl[fin]).max()) if int(fin.sum()) else 0.0
        nan = int(cupy.isnan(oc).sum())
        print(f"B={B} qo={qo} kv={kv} H={Hq}/{Hk} D={D} ps={ps} causal={causal} {layout} win={window} cap={cap}: "
              f"rel_err={err:.2e} lse_err={lerr:.2e} nan={nan} plan_ms={plan_ms:.1f}", flush=True)
    if timing:
        for _ in range(3): w.run(q, (k, v), out=out)
        ts = []
        for _ in range(20):
            a, b = torch.cuda.Event(True), torch.cuda.Event(True)
            a.record(); w.run(q, (k, v), out=out); b.record(); b.synchronize()
            ts.append(a.elapsed_time(b))
        ms = float(np.median(ts))
        pairs = 0
        for ql, kl in zip(qo_lens, kv_lens):
            i = np.arange(ql)
            hi = np.minimum(i + kl - ql + 1, kl) if causal else np.full(ql, kl)
            pairs += int(hi.sum())
        globals().setdefault("RESULTS", []).append(4 * D * Hq * pairs / ms / 1e9)
        print(f"   time {ms:.3f} ms  {4 * D * Hq * pairs / ms / 1e9:.1f} TFLOP/s", flush=True)

if __name__ == '__main__':
    case(2, 100, 300, 8, 2, 128, 16, True)
    case(2, 100, 300, 8, 2, 128, 5, False, dtype=torch.float16, layout="HND")
    case(3, [37, 0, 64], [100, 0, 64], 4, 4, 64, 1, True, window=20)
    case(2, 70, 50, 8, 1, 256, 64, False, cap=30.0)
    case(1, 8192, 8192, 32, 8, 128, 16, True, timing=True)
    case(16, 1024, 1024, 32, 8, 128, 16, True, timing=True)
    case(1, 8192, 8192, 16, 16, 256, 16, True, timing=True)
    case(4, 4096, 4096, 32, 32, 64, 16, True, timing=True)
