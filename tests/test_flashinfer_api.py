"""FlashInfer's BatchPrefillWithPagedKVCacheWrapper API, checked without a GPU: the same parameter
names, order and defaults (flashinfer-ai/flashinfer 0.7.2, python/flashinfer/prefill.py), our own
parameters keyword-only after theirs, every argument honoured or refused, the older names kept.
The call sequences of vLLM and SGLang run on the GPU in tests/test_engines.py.
"""
from __future__ import annotations

import inspect
import re

import numpy as np
import pytest

import nvrtc_attn
from nvrtc_attn import validate

W = nvrtc_attn.BatchPrefillWithPagedKVCacheWrapper
_REQ = inspect.Parameter.empty

# FlashInfer 0.7.2: (name, default) in order; _REQ for required parameters.
FI_INIT = [("float_workspace_buffer", _REQ), ("kv_layout", "NHD"), ("use_cuda_graph", False),
           ("qo_indptr_buf", None), ("paged_kv_indptr_buf", None), ("paged_kv_indices_buf", None),
           ("paged_kv_last_page_len_buf", None), ("custom_mask_buf", None), ("mask_indptr_buf", None),
           ("backend", "auto"), ("jit_args", None), ("jit_kwargs", None), ("variant_owns_mask", False)]
FI_PLAN = [("qo_indptr", _REQ), ("paged_kv_indptr", _REQ), ("paged_kv_indices", _REQ),
           ("paged_kv_last_page_len", _REQ), ("num_qo_heads", _REQ), ("num_kv_heads", _REQ),
           ("head_dim_qk", _REQ), ("page_size", _REQ), ("head_dim_vo", None), ("custom_mask", None),
           ("packed_custom_mask", None), ("causal", False), ("pos_encoding_mode", "NONE"),
           ("use_fp16_qk_reduction", False), ("sm_scale", None), ("window_left", -1),
           ("logits_soft_cap", None), ("rope_scale", None), ("rope_theta", None),
           ("q_data_type", "float16"), ("kv_data_type", None), ("o_data_type", None),
           ("non_blocking", True), ("prefix_len_ptr", None), ("token_pos_in_items_ptr", None),
           ("token_pos_in_items_len", 0), ("max_item_len_ptr", None), ("seq_lens", None),
           ("seq_lens_q", None), ("block_tables", None), ("max_token_per_sequence", None),
           ("max_sequence_kv", None), ("fixed_split_size", None), ("disable_split_kv", False),
           ("uniform_q_len", None)]
FI_RUN = [("q", _REQ), ("paged_kv_cache", _REQ)]  # then *args, then keyword-only:
FI_RUN_KW = [("q_scale", None), ("k_scale", None), ("v_scale", None), ("out", None), ("lse", None),
             ("return_lse", False), ("lse_base", "log2"), ("lse_layout", "NH"), ("enable_pdl", None),
             ("window_left", None), ("sinks", None), ("kv_cache_sf", None),
             ("skip_softmax_threshold_scale_factor", None), ("use_fp16_softmax", None),
             ("uses_spcompress", None)]
FI_FORWARD = [("q", _REQ), ("paged_kv_cache", _REQ), ("causal", False), ("pos_encoding_mode", "NONE"),
              ("use_fp16_qk_reduction", False), ("k_scale", None), ("v_scale", None), ("window_left", -1),
              ("logits_soft_cap", None), ("sm_scale", None), ("rope_scale", None), ("rope_theta", None)]


def _params(fn):
    return [p for p in inspect.signature(fn).parameters.values() if p.name != "self"]


def _check_prefix(fn, expected, extra_kw_only=()):
    params = _params(fn)
    ours = [(p.name, p.default) for p in params[: len(expected)]]
    assert ours == expected, f"{fn.__qualname__}: {ours} != FlashInfer's {expected}"
    for p in params[: len(expected)]:
        assert p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY), p
    rest = params[len(expected):]
    assert all(p.kind == p.KEYWORD_ONLY for p in rest), f"our extras must be keyword-only: {rest}"
    assert {p.name for p in rest} <= set(extra_kw_only), rest


def test_init_signature_matches_flashinfer():
    _check_prefix(W.__init__, FI_INIT, extra_kw_only=("kv_load", "fp8_mma"))


def test_plan_signature_matches_flashinfer():
    _check_prefix(W.plan, FI_PLAN, extra_kw_only=("paged_kv_cache", "stream"))
    assert W.begin_forward is W.plan


def test_run_signature_matches_flashinfer():
    params = _params(W.run)
    assert [(p.name, p.default) for p in params[:2]] == FI_RUN
    assert params[2].kind == inspect.Parameter.VAR_POSITIONAL
    kw = [(p.name, p.default) for p in params[3:]]
    assert kw[: len(FI_RUN_KW)] == FI_RUN_KW
    assert [name for name, _ in kw[len(FI_RUN_KW):]] == ["stream"]


@pytest.mark.parametrize("name", ["forward", "forward_return_lse"])
def test_forward_signatures_match_flashinfer(name):
    _check_prefix(getattr(W, name), FI_FORWARD)


def test_old_names_exist():
    for name in ("begin_forward", "forward", "run_return_lse", "forward_return_lse", "end_forward"):
        assert callable(getattr(W, name)), name


def test_positional_binding_is_flashinfers():
    """The positional calls that bound wrongly before: 3rd constructor argument, 9th plan() argument."""
    b = inspect.signature(W.__init__).bind(None, "ws", "HND", True)
    assert b.arguments["use_cuda_graph"] is True
    b = inspect.signature(W.plan).bind(None, *range(8), 128, None, None, True)
    assert b.arguments["head_dim_vo"] == 128 and b.arguments["causal"] is True
    b = inspect.signature(W.forward).bind(None, "q", "kv", True)
    assert b.arguments["causal"] is True  # forward's 3rd parameter is causal, not out


# --------------------------------------------------------------------------------------------
# Arguments we do not implement are refused (NotImplementedError naming them), before any device
# work; hints are accepted.


def test_constructor_refusals_cpu():
    ws = np.empty(1024, np.uint8)
    for kwargs, name in ((dict(custom_mask_buf=np.zeros(4, np.uint8)), "custom_mask_buf"),
                         (dict(mask_indptr_buf=np.zeros(4, np.int32)), "mask_indptr_buf"),
                         (dict(jit_args=["custom"]), "jit_args"), (dict(variant_owns_mask=True), "variant_owns_mask")):
        with pytest.raises(NotImplementedError, match=name):
            W(ws, **kwargs)
    with pytest.raises(ValueError, match="backend"):
        W(ws, backend="cudnn")


def _planless():
    """A wrapper object without __init__: plan() refuses arguments before touching any state."""
    return object.__new__(W)


PLAN_ARGS = ([0, 4], [0, 1], [0], [4], 4, 2, 128, 16)


@pytest.mark.parametrize("kwargs, name", [
    (dict(custom_mask=np.ones(16, bool)), "custom_mask"),
    (dict(packed_custom_mask=np.ones(2, np.uint8)), "packed_custom_mask"),
    (dict(pos_encoding_mode="ROPE_LLAMA"), "pos_encoding_mode"),
    (dict(use_fp16_qk_reduction=True), "use_fp16_qk_reduction"),
    (dict(head_dim_vo=64), "head_dim_vo"),
    (dict(prefix_len_ptr=np.zeros(1, np.uint32)), "prefix_len_ptr"),
    (dict(token_pos_in_items_ptr=np.zeros(1, np.uint16)), "token_pos_in_items_ptr"),
    (dict(token_pos_in_items_len=4), "token_pos_in_items_len"),
    (dict(max_item_len_ptr=np.zeros(1, np.uint16)), "max_item_len_ptr"),
    (dict(seq_lens=np.array([4], np.uint32)), "seq_lens"),
    (dict(seq_lens_q=np.array([4], np.uint32)), "seq_lens_q"),
    (dict(block_tables=np.zeros((1, 1), np.uint32)), "block_tables"),
    (dict(o_data_type="bfloat16"), "o_data_type"),
])
def test_plan_refusals_cpu(kwargs, name):
    with pytest.raises(NotImplementedError, match=name):
        _planless().plan(*PLAN_ARGS, q_data_type="float16", **kwargs)


@pytest.mark.parametrize("kwargs", [dict(head_dim_vo=128), dict(use_fp16_qk_reduction=np.bool_(False)),
                                    dict(pos_encoding_mode=np.str_("NONE")), dict(token_pos_in_items_len=False)])
def test_plan_accepts_defaults_of_other_types(kwargs):
    """Defaults given as other objects than the usual call's still pass the refusals."""
    with pytest.raises(AttributeError):  # past them: the planless wrapper has no workspace
        _planless().plan(*PLAN_ARGS, q_data_type="float16", **kwargs)


def test_refuse_accepts_defaults():
    for name, value, default in (("x", None, None), ("mode", "NONE", "NONE"), ("flag", False, False),
                                 ("n", 0, 0), ("flag", np.bool_(False), False)):
        validate.refuse(name, value, default)


# --------------------------------------------------------------------------------------------
# Validation holes of issue 8


def _plan_args(**changes):
    base = dict(qo_indptr=[0, 5], paged_kv_indptr=[0, 2], paged_kv_indices=[3, 1], paged_kv_last_page_len=[4],
                num_qo_heads=4, num_kv_heads=2, head_dim=64, page_size=4, causal=True)
    base.update(changes)
    return base


@pytest.mark.parametrize("value", ["abc", [1.0], object()])
def test_sm_scale_must_be_a_number(value):
    with pytest.raises(TypeError, match=r"sm_scale.*(real number|float)"):
        validate.check_plan_args(**_plan_args(sm_scale=value))


def test_logits_soft_cap_must_be_a_number():
    with pytest.raises(TypeError, match="logits_soft_cap"):
        validate.check_plan_args(**_plan_args(logits_soft_cap="30"))


@pytest.mark.parametrize("dtype", [np.float16, np.dtype("float16"), "float16", "half", "fp16", "torch.float16"])
def test_q_data_type_forms_accepted(dtype):
    assert validate.check_plan_args(**_plan_args(q_data_type=dtype)).dtype == "float16"


@pytest.mark.parametrize("dtype", [np.float32, "int8", 3])
def test_q_data_type_rejected_with_rule(dtype):
    with pytest.raises(ValueError, match=r"q_data_type must be float16 or bfloat16"):
        validate.check_plan_args(**_plan_args(q_data_type=dtype))


def test_fp8_q_data_type_follows_flashinfer():
    """fp8 queries (FlashInfer's fp8 prefill): kv_data_type None means q's (a cache of the same kind,
    as in FlashInfer, for e4m3 and e5m2); o_data_type None gives bfloat16 (FlashInfer would write fp8,
    which we do not). Queries and cache of different fp8 kinds are a mode we do not build:
    NotImplementedError, not a bad value."""
    for kind in ("float8_e4m3fn", "float8_e5m2"):
        a = validate.check_plan_args(**_plan_args(q_data_type=kind))
        assert (a.q_dtype, a.kv_dtype, a.dtype) == (kind, kind, "bfloat16")
    with pytest.raises(NotImplementedError, match=r"q_data_type=float8_e5m2.*cache of their kind"):
        validate.check_plan_args(**_plan_args(q_data_type="float8_e5m2", kv_data_type="float8_e4m3fn"))


def test_paged_kv_indptr_may_start_past_zero():
    """vLLM plans the prefill tail of a batch whose decodes come first: paged_kv_indptr[0] > 0 is an
    offset into paged_kv_indices (which covers every request); slack entries past [-1] are ignored."""
    a = validate.check_plan_args(**_plan_args(paged_kv_indptr=[3, 5], paged_kv_indices=[9, 9, 9, 7, 2, 8, 8]))
    assert a.paged_kv_indptr.tolist() == [0, 2]
    assert a.paged_kv_indices.tolist() == [7, 2] and a.max_page_index == 7
    with pytest.raises(ValueError, match=r"paged_kv_indptr\[0\] must be >= 0"):
        validate.check_plan_args(**_plan_args(paged_kv_indptr=[-1, 1]))
    with pytest.raises(ValueError, match=r"qo_indptr\[0\] must be 0"):
        validate.check_plan_args(**_plan_args(qo_indptr=[1, 5]))


def test_host_index_arrays_are_copied():
    """plan() keeps its own copies: engines refill their (pinned) index buffers for the next step."""
    indptr = np.array([0, 2], np.int64)
    a = validate.check_plan_args(**_plan_args(paged_kv_indptr=indptr))
    indptr[1] = 99
    assert a.paged_kv_indptr.tolist() == [0, 2]


def test_three_d_token_pools_are_pages_of_one():
    """SGLang passes (k, v) as [slots, num_kv_heads, head_dim] token pools with page_size 1."""
    from nvrtc_attn import arrays

    k = np.zeros((10, 2, 64), np.float16)
    for layout, shape in (("NHD", (10, 1, 2, 64)), ("HND", (10, 2, 1, 64))):
        kk, vv = arrays.split_cache((k, k), kv_layout=layout)
        assert kk.shape == shape and vv.shape == shape
        assert arrays.cache_strides(kk, layout, 1) == (128, 128, 64)
    both = np.zeros((10, 2, 2, 64), np.float16)  # one 4-D [slots, 2, H, D] array
    kk, vv = arrays.split_cache(both, kv_layout="NHD")
    assert kk.shape == (10, 1, 2, 64) and vv.ptr - kk.ptr == 2 * 64 * 2


def test_tests_use_a_temporary_kernel_cache():
    import os
    from pathlib import Path

    from nvrtc_attn import compiler

    cache = compiler.default_cache_dir().resolve()
    assert os.environ.get("NVRTC_ATTN_CACHE_DIR")
    assert cache != (Path.home() / ".cache" / "nvrtc_attn").resolve()


# --------------------------------------------------------------------------------------------
# Packaging and the demo


def test_cuda12_and_cuda13_extras_are_disjoint():
    """`.[test]` installs the CUDA 13 set; `.[test-cu12]` the CUDA 12 one, never both CuPy wheels
    (they install into one `cupy` package: uninstalling either one breaks the other)."""
    tomllib = pytest.importorskip("tomllib")
    from pathlib import Path

    meta = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())["project"]
    extras = meta["optional-dependencies"]

    def closure(name):
        out = set()
        for req in extras[name]:
            m = re.fullmatch(r"nvrtc_attn\[(.*)\]", req)
            out |= set().union(*(closure(x.strip()) for x in m.group(1).split(","))) if m else {req}
        return out

    assert not any("cupy" in r for r in meta["dependencies"])
    for name, want, other in (("test", "cupy-cuda13x", "cupy-cuda12x"), ("test-cu12", "cupy-cuda12x", "cupy-cuda13x")):
        reqs = closure(name)
        assert any(r.startswith(want) for r in reqs) and not any(r.startswith(other) for r in reqs), (name, reqs)
        assert any(r.startswith("pytest") for r in reqs)


def test_demo_help_prints_usage():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "nvrtc_attn", "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.startswith("usage: python -m nvrtc_attn")


def test_license_is_apache():
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0" in text
