"""CPU tests of the benchmark tools (tools/bench.py, ab.sh, ab_summary.py, device_run.sh).

Pure parts (FLOPs, bytes, batches, peers, the table, --dry-run) need nothing but NumPy. Where
torch is installed, the whole GPU path of bench.py also runs on CPU tensors against a fake
nvrtc_attn and a fake FlashInfer that follow the real signatures, so that the one device run
has nothing left to discover but speed.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
TOOLS = REPO / "tools"
SHARED_BENCH = REPO.parent / "shared" / "bench"
sys.path.insert(0, str(TOOLS))
import ab_summary  # noqa: E402
import bench  # noqa: E402
import ncu_probe  # noqa: E402
import sass_loops  # noqa: E402

WORKLOADS = {w["id"]: w for w in bench.load_workloads()[0]}


def _env():
    env = dict(os.environ, PYTHONPATH=str(REPO), NVRTC_ATTN_LAZY_COMPILE="1")
    env.setdefault("NVRTC_ATTN_CACHE_DIR", "/tmp/nvrtc_attn_bench_tools_test")
    return env


def _run(args, **kw):
    return subprocess.run(args, cwd=REPO, env=kw.pop("env", _env()), capture_output=True, text=True,
                          timeout=kw.pop("timeout", 120), **kw)


# --------------------------------------------------------------------------------------------
# Counts


def test_w1_flops_are_the_exact_causal_pairs():
    assert bench.workload_flops(WORKLOADS["W1"]) == 4 * 128 * 32 * 16 * 1024 * 1025 / 2


def test_chunked_and_verify_flops_count_bottom_right_pairs():
    # W3: 512 queries on 4096 keys, query i sees 4096 - 512 + i + 1 keys.
    pairs = sum(4096 - 512 + i + 1 for i in range(512))
    assert bench.workload_flops(WORKLOADS["W3"]) == 4 * 128 * 32 * 8 * pairs
    # W9: 4 new tokens on 4096 keys: 4093 + 4094 + 4095 + 4096 pairs per request.
    assert bench.workload_flops(WORKLOADS["W9"]) == 4 * 128 * 32 * 32 * (4 * 4096 - 6)
    assert bench.workload_flops(WORKLOADS["W7"]) == 4 * 128 * 32 * 8192 * 8192


def test_visible_pairs_with_a_window_and_empty_requests():
    assert bench.visible_pairs(0, 10, True) == 0
    assert bench.visible_pairs(3, 3, True) == 6
    assert bench.visible_pairs(3, 3, False) == 9
    assert bench.visible_pairs(4, 4, True, window_left=1) == 1 + 2 + 2 + 2


def test_windowed_workload_flops_count_the_window():
    # W2 with window_left 1024: query i sees keys max(0, i - 1024) .. i.
    w = dict(WORKLOADS["W2"], window_left=1024)
    pairs = sum(min(i, 1024) + 1 for i in range(8192))
    assert bench.workload_flops(w) == 4 * 128 * 32 * pairs
    assert bench.window(w) == 1024 and bench.window(WORKLOADS["W2"]) == -1


def test_w9_kv_bytes_and_memory_bound():
    w9 = WORKLOADS["W9"]
    assert bench.kv_bytes(w9) == 32 * 4096 * 8 * 128 * 2 * 2 == 536_870_912
    assert bench.memory_bound(w9)
    assert not any(bench.memory_bound(w) for wid, w in WORKLOADS.items() if wid != "W9")


def test_fp8_workloads_halve_the_kv_bytes_and_keep_the_flops():
    for fp8, base in (("W1f8", "W1"), ("W2f8", "W2"), ("W7f8", "W7"), ("W2f8q", "W2"), ("W7f8q", "W7")):
        w = WORKLOADS[fp8]
        assert bench.kv_bytes(w) * 2 == bench.kv_bytes(WORKLOADS[base])
        assert bench.workload_flops(w) == bench.workload_flops(WORKLOADS[base])
        assert bench.base_workload(w, list(WORKLOADS.values())) == base
    assert bench.base_workload(WORKLOADS["W2"], list(WORKLOADS.values())) is None


def test_fp8_dtypes_and_scales_follow_workloads_about():
    about = json.loads((TOOLS / "workloads.json").read_text())["about"]
    assert "k_scale = 0.5" in about and "v_scale = 1.25" in about and "q_scale = 0.75" in about
    assert bench.dtypes(WORKLOADS["W2"]) == ("bfloat16", "bfloat16") and bench.scales(WORKLOADS["W2"]) == {}
    assert bench.dtypes(WORKLOADS["W2f8"]) == ("bfloat16", "float8_e4m3fn")
    assert bench.scales(WORKLOADS["W2f8"]) == {"k_scale": 0.5, "v_scale": 1.25}
    assert bench.scales(WORKLOADS["W2f8q"]) == {"q_scale": 0.75, "k_scale": 0.5, "v_scale": 1.25}
    assert bench.precision(WORKLOADS["W7f8q"]) == "fp8 q+kv"


def test_flashinfer_runs_only_its_ahead_of_time_modules():
    bf, f8 = bench.BF16, bench.FP8
    assert bench.fi_supported("fa3", bf, bf, 64) and bench.fi_supported("fa2", bf, bf, 256)
    assert bench.fi_supported("fa3", f8, f8, 128) and bench.fi_supported("fa2", bf, f8, 128)
    assert not bench.fi_supported("fa3", bf, f8, 128)   # would JIT-compile for minutes
    assert not bench.fi_supported("fa2", f8, f8, 128)
    assert not bench.fi_supported("fa3", f8, f8, 64)
    assert not bench.fi_supported("fa3", bf, bf, 128, window_left=1024)  # no AOT module has a window


# --------------------------------------------------------------------------------------------
# Batches


def test_w4_lengths_and_kv_equal_to_qo():
    qo, kv = bench.lengths(WORKLOADS["W4"])
    assert len(qo) == 32 and np.array_equal(qo, kv) and qo.min() >= 64 and qo.max() <= 2048


@pytest.mark.parametrize("wid", ["W1", "W2p1", "W4", "W9", "W10"])
def test_batches_use_a_permuted_pool_with_ten_percent_spare(wid):
    w = WORKLOADS[wid]
    b = bench.build_batch(w, seed=0)
    ps = w["page_size"]
    n_pages = np.diff(b["paged_kv_indptr"])
    needed = int(n_pages.sum())
    assert b["max_pages"] == max(needed + 1, math.ceil(needed * 1.1))
    idx = b["paged_kv_indices"]
    assert len(set(idx.tolist())) == needed and idx.max() < b["max_pages"]
    assert not np.array_equal(idx, np.arange(needed))
    kv = (n_pages - 1) * ps + b["paged_kv_last_page_len"]
    assert np.array_equal(kv, b["kv_lens"]) and b["kv_tok_indptr"][-1] == kv.sum()
    page, slot = bench.token_pages(b, ps)
    assert len(page) == kv.sum() and slot.max() < ps
    assert page[0] == idx[0] and page[min(ps, len(page) - 1)] == idx[min(1, needed - 1)]


def test_batches_are_deterministic():
    a, b = bench.build_batch(WORKLOADS["W3"]), bench.build_batch(WORKLOADS["W3"])
    assert all(np.array_equal(a[k], b[k]) for k in a if isinstance(a[k], np.ndarray))


# --------------------------------------------------------------------------------------------
# Data files


def test_tools_workloads_json_is_the_shared_copy():
    shared = SHARED_BENCH / "workloads.json"
    if not shared.is_file():
        pytest.skip("no ../shared/bench beside the checkout")
    assert (TOOLS / "workloads.json").read_bytes() == shared.read_bytes()


def test_tools_peers_json_is_the_shared_copy():
    shared = SHARED_BENCH / "peers_h200.json"
    if not shared.is_file():
        pytest.skip("no ../shared/bench beside the checkout")
    assert (TOOLS / "peers_h200.json").read_bytes() == shared.read_bytes()


def test_peers_file_has_best_paged_and_contiguous_for_every_bf16_workload():
    peers, path = bench.load_peers()
    assert path == TOOLS / "peers_h200.json"
    assert "H200" in peers["meta"]["device"]
    for wid, w in WORKLOADS.items():
        best_p, best_c = bench.peer_refs(peers, wid)
        if bench.precision(w) == "bf16":
            assert best_p > 0 and best_c >= best_p, wid
        else:
            assert (best_p, best_c) == (None, None)
    assert bench.peer_refs(peers, "W2") == (553.4, 661.5)
    assert bench.peer_refs(peers, "W9") == (65.6, 68.1)


def test_no_h100_constants_left_in_bench():
    src = (TOOLS / "bench.py").read_text()
    assert "BEST_PAGED_PEER" not in src and "H100" not in src


# --------------------------------------------------------------------------------------------
# Table, needed builds


def _row(wid, **kw):
    base = {"workload": wid, "status": "ok", "kv_load": "tma", "ms": 1.0, "tflops": 500.0, "kv_tbps": 0.1,
            "memory_bound": False, "plan_ms": 1.5, "best_paged": 400.0, "ratio_best_paged": 1.25,
            "best_contiguous": 500.0, "ratio_best_contiguous": 1.0, "max_rel_err": 4e-3}
    base.update(kw)
    return base


def test_table_rows_notes_and_peer_cells():
    rows = [_row("W2", fi={"fi_fa3_paged": {"tflops": 553.0, "check_ok": True},
                           "fi_fa2_paged": {"tflops": 300.0, "check_ok": False},
                           "fi_fa3_contiguous": {"error": "boom"}, "fi_fa2_contiguous": {"skip": "no AOT"}},
                fi_fa2_plan_ms=0.7, ratio_fi_best=0.9),
            _row("W9", memory_bound=True, kv_tbps=3.61),
            {"workload": "W2f8q", "status": "not supported", "reason": "plan(): ValueError: kv_data_type"},
            {"workload": "W5", "status": "error", "error": "RuntimeError: spot check"}]
    lines = bench.table_lines(rows)
    assert lines[0].split("|")[0].strip() == "W" and len(lines[0].split("|")) == len(bench.TABLE_HEAD)
    w2 = next(ln for ln in lines if ln.strip().startswith("W2 "))
    cells = [c.strip() for c in w2.split("|")]
    assert cells[bench.TABLE_HEAD.index("fa3 p")] == "553.0"
    assert cells[bench.TABLE_HEAD.index("fa2 p")] == "300.0?"
    assert cells[bench.TABLE_HEAD.index("fa3 c")] == "err"
    assert cells[bench.TABLE_HEAD.index("fa2 c")] == "-"
    assert cells[bench.TABLE_HEAD.index("FI plan")] == "0.70"
    assert cells[bench.TABLE_HEAD.index("TB/s")] == ""
    w9 = next(ln for ln in lines if ln.strip().startswith("W9 "))
    assert "3.61" in w9
    assert any("FAIL RuntimeError: spot check" in ln for ln in lines)
    assert lines[-1] == "W2f8q not supported: plan(): ValueError: kv_data_type"
    assert any(ln.strip().startswith("W2f8q |") and "not supported" in ln for ln in lines)


def test_summary_lines_give_ceiling_and_host_cost():
    result = {"meta": {"gemm_tflops": 761.3, "peers_file": "tools/peers_h200.json",
                       "peers_meta": {"device": "H200", "date": "2026-12-01"}},
              "run_host_cost": {"what": "4 one-token requests on 256 keys", "calls": 2000,
                                "us": {"nvrtc_attn": 88.6, "FlashInfer fa3": 30.9}, "errors": {}},
              "rows": []}
    text = "\n".join(bench.summary_lines(result))
    assert "761 TFLOP/s" in text and "nvrtc_attn 88.6 us, FlashInfer fa3 30.9 us" in text
    assert "2000 calls back to back" in text


def test_needed_builds_are_the_sm90_bf16_ones_of_the_selected_head_dims():
    pytest.importorskip("cuda.core")
    from nvrtc_attn import variants

    names = [v.name for v in bench.needed_variants(variants, [WORKLOADS["W1"], WORKLOADS["W5"]], "auto")]
    assert "expand_plan_sm_90a" in names
    assert "prefill_sm90_hd128_bf16_sm_90a" in names and "prefill_sm90_hd64_bf16_nopp_sm_90a" in names
    assert not any("fp16" in n or "hd256" in n or "sm80" in n for n in names)
    sm80 = [v.name for v in bench.needed_variants(variants, [WORKLOADS["W6"]], "sm80")]
    assert "prefill_sm80_hd256_bf16_sm_90a" in sm80 and not any("sm90" in n for n in sm80)


# --------------------------------------------------------------------------------------------
# Command lines without a GPU


def test_dry_run_exits_0_and_prints_every_workload():
    r = _run([sys.executable, "tools/bench.py", "--dry-run", "--flashinfer"])
    assert r.returncode == 0, r.stderr
    table = r.stdout.split("\n\n")[-1]
    for wid in WORKLOADS:
        assert f"\n{wid:6s} " in "\n" + r.stdout, wid   # the description line
        assert any(ln.split("|")[0].strip() == wid for ln in table.splitlines()), wid  # the table row
    assert "memory-bound" in r.stdout and "fi_fa3_contiguous" in r.stdout
    assert r.stdout.rstrip().splitlines()[-1].split("|")[0].strip() == list(WORKLOADS)[-1]


def test_dry_run_only_and_unknown_workload():
    r = _run([sys.executable, "tools/bench.py", "--dry-run", "--only", "W9,W2f8q"])
    assert r.returncode == 0 and "W9 " in r.stdout and "W2f8q" in r.stdout and "W1 " not in r.stdout
    r = _run([sys.executable, "tools/bench.py", "--dry-run", "--only", "W99"])
    assert r.returncode == 2 and "unknown workloads ['W99']" in r.stderr


def test_compile_dry_run_lists_builds():
    pytest.importorskip("cuda.core")
    r = _run([sys.executable, "tools/bench.py", "--compile", "needed", "--only", "W6", "--dry-run"])
    assert r.returncode == 0, r.stderr
    assert "prefill_sm90_hd256_bf16_sm_90a" in r.stdout and "hd128" not in r.stdout


def test_bench_without_a_gpu_says_so(monkeypatch, capsys):
    class NoGpu:
        def __init__(self):
            raise RuntimeError("torch sees no CUDA device")

    monkeypatch.setattr(bench, "Gpu", NoGpu)
    monkeypatch.setattr(sys, "path", list(sys.path))
    assert bench.main(["--only", "W1", "--no-precompile"]) == 2
    assert "needs torch with a CUDA GPU: RuntimeError: torch sees no CUDA device" in capsys.readouterr().err


def test_print_table_reprints_a_json(tmp_path):
    path = tmp_path / "b.json"
    path.write_text(json.dumps({"meta": {}, "rows": [_row("W1"), _row("W2")]}))
    r = _run([sys.executable, "tools/bench.py", "--print-table", str(path)])
    assert r.returncode == 0 and r.stdout.splitlines()[-1].split("|")[0].strip() == "W2"


@pytest.mark.parametrize("script", ["ab.sh", "device_run.sh", "build_kcache.sh"])
def test_shell_scripts_parse_and_start_with_a_usage_line(script):
    path = TOOLS / script
    assert subprocess.run(["bash", "-n", str(path)]).returncode == 0
    assert path.read_text().splitlines()[1].startswith("# usage: ")


def test_device_run_dry_run(tmp_path):
    env = dict(_env(), OUT=str(tmp_path / "out"), PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    r = _run(["bash", "tools/device_run.sh", "--dry-run", "--only", "W1,W9"], env=env, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    for stage in ("start:", "compile every kernel build", "GPU tests", "demo:", "bench:", "summary"):
        assert stage in out, stage
    assert "tests collected" in out
    assert out.rstrip().splitlines()[-1].startswith("=== ") and "W9 |" in out


def test_ab_dry_run_with_a_prepared_tree(tmp_path):
    env = dict(_env(), AB_DIR=str(tmp_path / "ab"), AB_RUNS=str(tmp_path / "runs"),
               PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    r = _run(["bash", "tools/ab.sh", "prep", "HEAD", "head"], env=env)
    if r.returncode != 0:
        pytest.skip(f"no git history here: {r.stderr[:200]}")
    r = _run(["bash", "tools/ab.sh", "--dry-run", "--rounds", "2", "W1,W5"], env=env, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "ab: A head" in r.stdout and "round 1 head: bench.py --lib" in r.stdout
    assert "rc=0 (2 workloads)" in r.stdout
    r = _run(["bash", "tools/ab.sh"], env=env)
    assert r.returncode == 2 and r.stdout.startswith("usage: bash tools/ab.sh")


def test_ab_summary_medians_and_ratios(tmp_path, capsys):
    for label, vals in (("A", (600, 610, 590)), ("prev", (570, 580, 600))):
        for r, v in enumerate(vals, 1):
            rows = [{"workload": "W2", "tflops": float(v)}, {"workload": "W9", "tflops": float(v) / 10},
                    {"workload": "W2f8q", "status": "not supported"}]
            (tmp_path / f"{label}__r{r}.json").write_text(json.dumps({"rows": rows}))
    assert ab_summary.main([str(tmp_path), "--json", str(tmp_path / "ab.json")]) == 0
    lines = capsys.readouterr().out.splitlines()
    w2 = [c.strip() for c in next(ln for ln in lines if ln.startswith("   W2 ")).split("|")]
    assert w2[1:] == ["600.0", "590.0-610.0", "3", "580.0", "570.0-600.0", "3", "0.967"]
    summary = json.loads((tmp_path / "ab.json").read_text())["tflops"]
    assert summary["W9"]["prev"]["ratio"] == pytest.approx(58.0 / 60.0)
    assert summary["W2f8q"] == {}
    assert ab_summary.brief(tmp_path / "A__r1.json") == "W2 600.0, W9 60.0, W2f8q not supported"


# --------------------------------------------------------------------------------------------
# The GPU path on CPU tensors (torch only): a fake library and a fake FlashInfer


def _attention(torch, q, k_tok, v_tok, qo_indptr, kv_tok_indptr, causal, out):
    """Dense float32 attention per request into out: q [total_q, H, D], k_tok/v_tok [total_kv, Hkv, D]."""
    hqo, hkv, d = q.shape[1], k_tok.shape[1], q.shape[2]
    kh = torch.arange(hqo) // (hqo // hkv)
    for b in range(len(qo_indptr) - 1):
        q0, q1, k0, k1 = int(qo_indptr[b]), int(qo_indptr[b + 1]), int(kv_tok_indptr[b]), int(kv_tok_indptr[b + 1])
        qq, kk, vv = q[q0:q1], k_tok[k0:k1][:, kh], v_tok[k0:k1][:, kh]
        s = torch.einsum("ihd,jhd->hij", qq, kk) / math.sqrt(d)
        if causal:
            i = torch.arange(q1 - q0)[:, None]
            j = torch.arange(k1 - k0)[None, :]
            s = s.masked_fill(j > i + (k1 - k0) - (q1 - q0), -math.inf)
        out[q0:q1] = torch.einsum("hij,jhd->ihd", torch.softmax(s, dim=-1), vv).to(out.dtype)


def _real(x, scale):
    return x.float() * (1.0 if scale is None else scale)


def _paged_tokens(torch, cache, indptr, indices, last, page_size):
    pages, lens = [], []
    for b in range(len(indptr) - 1):
        own = indices[int(indptr[b]): int(indptr[b + 1])].long()
        t = cache.view(torch.uint8)[own].view(cache.dtype) if cache.element_size() == 1 else cache[own]
        n = (len(own) - 1) * page_size + int(last[b]) if len(own) else 0
        pages.append(t.reshape(-1, *cache.shape[2:])[:n])
        lens.append(n)
    return torch.cat(pages), np.concatenate(([0], np.cumsum(lens)))


def _fake_library(torch, fp8: bool, bug: str | None = None):
    """nvrtc_attn stand-in: the real plan()/run() signatures, dense attention inside."""

    class Wrapper:
        def __init__(self, workspace_buffer, kv_layout="NHD", backend="auto", kv_load="auto"):
            assert kv_layout == "NHD" and workspace_buffer.dtype == torch.uint8
            self.backend, self.kernel_name, self.kv_load_path = "sm90", None, None

        def plan(self, qo_indptr, paged_kv_indptr, paged_kv_indices, paged_kv_last_page_len, num_qo_heads,
                 num_kv_heads, head_dim, page_size, causal=False, q_data_type="float16", kv_data_type=None,
                 o_data_type=None, paged_kv_cache=None):
            for x in (qo_indptr, paged_kv_indptr, paged_kv_indices, paged_kv_last_page_len):
                assert x.dtype == torch.int32 and x.device.type == "cpu"  # host inputs, like FlashInfer's
            if "float8_e4m3fn" in (q_data_type, kv_data_type) and not fp8:
                raise ValueError(f"kv_data_type must be float16 or bfloat16, got {kv_data_type!r}")
            assert o_data_type == ("bfloat16" if q_data_type != "bfloat16" else None) and paged_kv_cache is not None
            self.p = dict(qo=qo_indptr.numpy(), indptr=paged_kv_indptr.numpy(), idx=paged_kv_indices,
                          last=paged_kv_last_page_len.numpy(), ps=page_size, causal=causal, q=q_data_type)
            self.kernel_name = f"fake_{q_data_type}_{kv_data_type}"

        def run(self, q, paged_kv_cache, out=None, q_scale=None, k_scale=None, v_scale=None):
            p = self.p
            assert str(q.dtype).endswith(p["q"]) and out.dtype == torch.bfloat16
            assert (q.dtype == torch.float8_e4m3fn) == (q_scale is not None)
            k, v = paged_kv_cache
            kt, tok = _paged_tokens(torch, k, p["indptr"], p["idx"], p["last"], p["ps"])
            vt, _ = _paged_tokens(torch, v, p["indptr"], p["idx"], p["last"], p["ps"])
            causal = p["causal"] if bug != "non-causal" else not p["causal"]
            _attention(torch, _real(q, q_scale), _real(kt, k_scale), _real(vt, v_scale), p["qo"], tok, causal, out)
            if bug == "skip-last-row":
                out[-1] = math.nan
            self.kv_load_path = "tma"
            return out

    return types.SimpleNamespace(BatchPrefillWithPagedKVCacheWrapper=Wrapper, __file__=str(REPO / "fake" / "x.py"))


def _fake_flashinfer(torch, calls: list):
    """FlashInfer stand-in with 0.7.2's plan()/run() signatures (flashinfer/prefill.py)."""

    class Paged:
        def __init__(self, float_workspace_buffer, kv_layout="NHD", backend="auto"):
            self.backend = backend

        def plan(self, qo_indptr, paged_kv_indptr, paged_kv_indices, paged_kv_last_page_len, num_qo_heads,
                 num_kv_heads, head_dim_qk, page_size, head_dim_vo=None, causal=False, q_data_type="float16",
                 kv_data_type=None, o_data_type=None):
            assert all(isinstance(t, torch.dtype) for t in (q_data_type, kv_data_type, o_data_type))
            assert paged_kv_indptr.dtype == torch.int32
            self.p = (qo_indptr.numpy(), paged_kv_indptr.numpy(), paged_kv_indices, paged_kv_last_page_len.numpy(),
                      page_size, causal)
            calls.append(("plan", self.backend, "paged"))

        def run(self, q, paged_kv_cache, *args, q_scale=None, k_scale=None, v_scale=None, out=None):
            qo, indptr, idx, last, ps, causal = self.p
            kt, tok = _paged_tokens(torch, paged_kv_cache[0], indptr, idx, last, ps)
            vt, _ = _paged_tokens(torch, paged_kv_cache[1], indptr, idx, last, ps)
            _attention(torch, _real(q, q_scale), _real(kt, k_scale), _real(vt, v_scale), qo, tok, causal, out)
            calls.append(("run", self.backend, "paged"))
            return out

    class Ragged:
        def __init__(self, float_workspace_buffer, kv_layout="NHD", backend="auto"):
            self.backend = backend

        def plan(self, qo_indptr, kv_indptr, num_qo_heads, num_kv_heads, head_dim_qk, head_dim_vo=None,
                 causal=False, q_data_type="float16", kv_data_type=None, o_data_type=None):
            self.p = (qo_indptr.numpy(), kv_indptr.numpy(), causal)
            calls.append(("plan", self.backend, "ragged"))

        def run(self, q, k, v, *args, q_scale=None, k_scale=None, v_scale=None, out=None):
            qo, kv, causal = self.p
            assert k.is_contiguous() and k.shape[0] == kv[-1]
            _attention(torch, _real(q, q_scale), _real(k, k_scale), _real(v, v_scale), qo, kv, causal, out)
            calls.append(("run", self.backend, "ragged"))
            return out

    return types.SimpleNamespace(BatchPrefillWithPagedKVCacheWrapper=Paged,
                                 BatchPrefillWithRaggedKVCacheWrapper=Ragged, __version__="0.7.2-fake")


SMALL_WORKLOADS = [
    {"id": "S1", "what": "equal prompts", "requests": 2, "qo_len": 40, "kv_len": 40, "num_qo_heads": 4,
     "num_kv_heads": 2, "head_dim": 64, "page_size": 16, "causal": True},
    {"id": "S2", "what": "mixed, chunked", "requests": 3, "qo_len": [5, 17, 1], "kv_len": [30, 17, 9],
     "num_qo_heads": 4, "num_kv_heads": 1, "head_dim": 128, "page_size": 8, "causal": True},
    {"id": "S3", "what": "verify", "requests": 4, "qo_len": 4, "kv_len": 300, "num_qo_heads": 8,
     "num_kv_heads": 2, "head_dim": 128, "page_size": 16, "causal": True},
    {"id": "S4", "what": "non-causal, page 1", "requests": 1, "qo_len": 24, "kv_len": "= qo_len",
     "num_qo_heads": 2, "num_kv_heads": 2, "head_dim": 256, "page_size": 1, "causal": False},
    {"id": "S1f8", "what": "fp8 cache", "requests": 2, "qo_len": 40, "kv_len": 40, "num_qo_heads": 4,
     "num_kv_heads": 2, "head_dim": 128, "page_size": 16, "causal": True, "kv_dtype": "float8_e4m3fn"},
    {"id": "S1f8q", "what": "fp8 q and cache", "requests": 2, "qo_len": 40, "kv_len": 40, "num_qo_heads": 4,
     "num_kv_heads": 2, "head_dim": 128, "page_size": 16, "causal": True, "kv_dtype": "float8_e4m3fn",
     "q_dtype": "float8_e4m3fn"},
    {"id": "S1b", "what": "bf16 base of the fp8 rows", "requests": 2, "qo_len": 40, "kv_len": 40,
     "num_qo_heads": 4, "num_kv_heads": 2, "head_dim": 128, "page_size": 16, "causal": True},
]


@pytest.fixture
def cpu_bench(tmp_path, monkeypatch):
    """bench.main on CPU tensors: (run(fp8=..., bug=..., extra args) -> (rc, result json, stdout), calls)."""
    torch = pytest.importorskip("torch")

    class CpuGpu(bench.Gpu):
        def __init__(self):
            self.torch, self.device, self.sleep_cycles = torch, torch.device("cpu"), 0

        def name(self):
            return "cpu (test)"

        def sync(self):
            pass

        def free(self):
            pass

        def time_ms(self, fn, iters, warmup):
            fn()
            return 1.0

        def host_us(self, fn, calls, warmup=50):
            fn()
            return 42.0

    wl = tmp_path / "workloads.json"
    wl.write_text(json.dumps({"about": "test", "workloads": SMALL_WORKLOADS}))
    peers = tmp_path / "peers.json"
    peers.write_text(json.dumps({"meta": {"device": "H200 (test)", "date": "today"},
                                 "workloads": {"S1": {"best_paged": 0.5, "best_contiguous": 1.0}}}))
    calls = []
    monkeypatch.setattr(bench, "Gpu", CpuGpu)
    monkeypatch.setattr(bench, "GEMM_N", 32)
    monkeypatch.setattr(bench, "HOST_COST_WORKLOAD", dict(SMALL_WORKLOADS[0], qo_len=1, kv_len=50))
    monkeypatch.setitem(sys.modules, "flashinfer", _fake_flashinfer(torch, calls))
    monkeypatch.setenv("FLASHINFER_DISABLE_JIT", "1")
    monkeypatch.setattr(sys, "path", list(sys.path))

    monkeypatch.setitem(sys.modules, "nvrtc_attn", _fake_library(torch, fp8=True))

    def run(fp8=False, bug=None, args=()):
        monkeypatch.setitem(sys.modules, "nvrtc_attn", _fake_library(torch, fp8, bug))
        out = tmp_path / "bench.json"
        rc = bench.main(["--workloads", str(wl), "--peers", str(peers), "--json", str(out), "--no-precompile",
                         "--iters", "2", "--plan-iters", "2", "--check-rows", "6", *args])
        return rc, json.loads(out.read_text())

    run.workloads = wl
    return run, calls


def test_cpu_run_of_every_path_with_flashinfer(cpu_bench, capsys):
    run, calls = cpu_bench
    rc, result = run(fp8=True, args=["--flashinfer"])
    out = capsys.readouterr().out
    assert rc == 0, out
    rows = {r["workload"]: r for r in result["rows"]}
    assert [r["status"] for r in result["rows"]] == ["ok"] * len(SMALL_WORKLOADS)
    for r in rows.values():
        assert r["max_rel_err"] < 1e-2 and r["tflops"] > 0 and r["plan_ms"] >= 0
    s1 = rows["S1"]
    assert s1["flops"] == bench.workload_flops(SMALL_WORKLOADS[0]) and s1["ratio_best_contiguous"] == pytest.approx(
        s1["tflops"] / 1.0)
    assert rows["S3"]["memory_bound"] and rows["S3"]["kv_tbps"] > 0
    assert rows["S1f8"]["ratio_bf16"] == pytest.approx(1.0) and rows["S1f8q"]["base"] == "S1b"
    # FlashInfer: every AOT combination planned and run on the same tensors, checked against the reference
    for wid, expect in (("S1", 4), ("S1f8", 2), ("S1f8q", 2), ("S4", 4)):
        ran = [k for k, p in rows[wid]["fi"].items() if "tflops" in p]
        assert len(ran) == expect and all(rows[wid]["fi"][k]["check_ok"] for k in ran), (wid, rows[wid]["fi"])
    assert set(k for k, p in rows["S1f8"]["fi"].items() if "tflops" in p) == {"fi_fa2_paged", "fi_fa2_contiguous"}
    assert set(k for k, p in rows["S1f8q"]["fi"].items() if "tflops" in p) == {"fi_fa3_paged", "fi_fa3_contiguous"}
    assert rows["S1"]["fi_fa2_plan_ms"] is not None and rows["S1"]["ratio_fi_best"] > 0
    # plan(): a first call and a burst of --plan-iters per row, then 8 round-robin rounds of
    # --plan-iters; one more for the run() host cost
    fa2_rows = [wid for wid, r in rows.items() if "tflops" in r["fi"].get("fi_fa2_paged", {})]
    assert calls.count(("plan", "fa2", "paged")) == len(fa2_rows) * (1 + 2 + 8 * 2) + 1
    assert result["meta"]["plan_timing"] == "round robin, 8 rounds x 2 calls"
    assert ("run", "fa3", "ragged") in calls and ("run", "fa2", "paged") in calls
    assert result["run_host_cost"]["us"] == {"nvrtc_attn": 42.0, "FlashInfer fa3": 42.0, "FlashInfer fa2": 42.0}
    assert result["meta"]["gemm_tflops"] > 0 and result["meta"]["flashinfer"] == "0.7.2-fake"
    tail = out.rstrip().splitlines()
    assert tail[-1].split("|")[0].strip() == "S1b"  # the table is printed last
    assert any("run() host cost per call" in ln for ln in tail[-15:])


def test_cpu_run_without_fp8_marks_rows_not_supported(cpu_bench, capsys):
    run, _ = cpu_bench
    rc, result = run(fp8=False, args=["--no-host-cost", "--no-ceiling"])
    out = capsys.readouterr().out
    assert rc == 0
    status = {r["workload"]: r["status"] for r in result["rows"]}
    assert status["S1f8"] == status["S1f8q"] == "not supported" and status["S1"] == "ok"
    assert "S1f8q not supported: plan(): ValueError: kv_data_type" in out
    assert "run_host_cost" not in result and "gemm_tflops" not in result["meta"]


@pytest.mark.parametrize("bug", ["non-causal", "skip-last-row"])
def test_cpu_run_fails_a_wrong_kernel(cpu_bench, capsys, bug):
    run, _ = cpu_bench
    rc, result = run(fp8=False, bug=bug, args=["--only", "S1,S2", "--no-host-cost", "--no-ceiling"])
    assert rc == 1
    errors = [r.get("error", "") for r in result["rows"]]
    assert all(("spot check" in e) if bug == "non-causal" else ("NaN" in e) for e in errors), errors
    assert "FAIL" in capsys.readouterr().out


def test_ncu_probe_metrics_and_one_workload(cpu_bench, capsys):
    run, _ = cpu_bench
    assert ncu_probe.main(["--metrics"]) == 0
    metrics = capsys.readouterr().out.strip().split(",")
    assert "gpu__time_duration.sum" in metrics and len(metrics) == len(set(metrics)) == len(ncu_probe.METRICS)
    assert ncu_probe.main(["S1f8q", "--workloads", str(run.workloads)]) == 0
    assert capsys.readouterr().out.split() == ["S1f8q", "fake_float8_e4m3fn_float8_e4m3fn", "tma", "ok"]


def test_sass_loops_hot_path_leaves_out_the_cap_and_mask_branches():
    """tools/sass_loops.py on a synthetic SASS loop: the first HGMMA loop, whole and without the
    guarded soft-cap (MUFU.TANH) and mask (FSEL) regions; a loop without HGMMA is not reported."""
    def line(addr, instr):
        return f"        /*{addr:04x}*/                   {instr} ;   /* 0x0 */"
    instrs = ["MOV R0, R1",                                       # 0x00, before any loop
              "HGMMA.64x128x16.F32.BF16 R24, gdesc[UR16], RZ, !UPT",  # 0x10, the loop's start
              "@!P1 BRA 0x140",                                   # 0x20, over the soft cap
              *[f"MUFU.TANH R{i}, R{i}" for i in range(12)],         # 0x30-0xe0
              "FMUL R2, R2, R3", *["FADD R4, R4, R5"] * 4,         # 0xf0-0x130
              "MUFU.EX2 R6, R6", "FFMA R7, R7, R8, R9",           # 0x140, 0x150
              "@P2 BRA 0x10",                                     # 0x160, the loop's end
              "IADD3 R1, R1, 0x1, RZ", "@P3 BRA 0x170"]           # a loop without HGMMA
    body = [(0x10 * i, t) for i, t in enumerate(instrs)]
    ins = sass_loops.parse("\n".join(line(a, t) for a, t in body))
    assert len(ins) == len(body) and sass_loops.opcode("@!P0 FFMA.FTZ R1, R2, R3, R4") == "FFMA"
    loops = sass_loops.mma_loops(ins)
    assert [(ins[a][0], ins[b][0]) for a, b in loops] == [(0x10, 0x160)]
    hot = [ins[k][1] for k in sass_loops.hot_path(ins, *loops[0])]
    assert hot[0].startswith("HGMMA") and not any("TANH" in x or "FADD" in x for x in hot)
    assert [sass_loops.opcode(x) for x in hot] == ["HGMMA", "BRA", "MUFU", "FFMA", "BRA"]
