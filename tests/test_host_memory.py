"""C calls never write into Python-owned immutable memory (issue 8, defect 1).

NVRTC's log/PTX getters write into the buffer they are given; handing them `b" " * size` wrote into
CPython's shared one-byte object b" " whenever the log was empty, corrupting every later b" " in the
process (torch's schema parser then failed on "annotate(str tag)"). Checked in a fresh interpreter
that compiles from an empty cache, so the compile really runs NVRTC.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

_CHILD = textwrap.dedent("""
    import sys
    from nvrtc_attn import compiler, variants
    ck = compiler.compile_variant(variants.kv_offsets_variant(), want_ptx=True)
    assert not ck.from_cache, "expected a real NVRTC compile"
    assert ck.ptx and ck.ptx.lstrip().startswith("//"), "PTX text came back"
    # The shared single-byte object must still hold a space (0x20), not the NUL NVRTC wrote.
    assert b" "[0] == 32 and repr(b" ") == "b' '", repr(b" ")
    assert b"x"[0] == 120 and bytes([32])[0] == 32
    try:
        import torch  # noqa: F401  (its schema parser trips over a corrupted b" ")
        torch.ops.aten.add.Tensor  # touch the operator registry
    except ImportError:
        pass
    print("clean")
""")


def test_compile_leaves_interpreter_intact(tmp_path):
    env = dict(os.environ, NVRTC_ATTN_CACHE_DIR=str(tmp_path / "cache"), NVRTC_ATTN_LAZY_COMPILE="1",
               PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip().endswith("clean")


def test_nvrtc_getters_use_owned_buffers():
    """Every size-then-get NVRTC call goes through the one helper that allocates a bytearray."""
    from nvrtc_attn import compiler

    src = Path(compiler.__file__).read_text()
    assert 'b" " *' not in src and "b' ' *" not in src
    calls = [line for line in src.splitlines() if "nvrtcGetProgramLog(" in line or "nvrtcGetPTX(" in line]
    assert not calls, calls  # only passed by reference to _nvrtc_string
