"""Read a cubin with cuobjdump: resource usage (registers, shared, stack, local) and SASS opcodes.

CPU only (no GPU, no driver): used by tools/dump_sass.py and tests/test_compile.py.
cuobjdump comes from the nvidia-cuda-cuobjdump wheel (found through cuda.pathfinder) or PATH.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections import Counter

__all__ = [
    "FLAG_OPCODES",
    "find_cuobjdump",
    "find_nvdisasm",
    "instruction_counts",
    "instruction_flags",
    "kernel_report",
    "missing_tools",
    "resource_usage",
    "sass_text",
]

# Opcodes whose presence tells which hardware path a kernel took:
# HMMA = mma.sync tensor cores (sm80 path), HGMMA = wgmma (Hopper), LDGSTS = cp.async,
# UTMALDG = TMA tile load (cp.async.bulk.tensor).
FLAG_OPCODES = ("HMMA", "HGMMA", "LDGSTS", "UTMALDG")

# STL/LDL: stores/loads to local memory. In our kernels (no local arrays) they are register spills.
_LOCAL_OPCODES = ("STL", "LDL")

_RES_FUNC = re.compile(r"^\s*Function\s+(\S+?):\s*$")
_RES_FIELD = re.compile(r"([A-Z_]+(?:\[\d+\])?):(\d+)")
_RES_NAMES = {"REG": "registers", "STACK": "stack", "SHARED": "shared", "LOCAL": "local"}
# "/*0130*/   @!PT LDS RZ, [RZ] ;" -> LDS ; "/*00f0*/ LDGSTS.E.BYPASS.128 [R5], ..." -> LDGSTS
_SASS_INSN = re.compile(r"^\s*/\*[0-9a-f]{4,}\*/\s+(?:@!?U?P[T0-9]+\s+)?([A-Z][A-Z0-9_]*)", re.MULTILINE)


def _find_tool(name: str) -> str | None:
    """Path of a CUDA binary utility: pip wheel via cuda.pathfinder, else PATH, else None."""
    try:
        from cuda.pathfinder import find_nvidia_binary_utility

        path = find_nvidia_binary_utility(name)
        if path:
            return str(path)
    except Exception:  # older cuda-pathfinder without the function, or nothing found
        pass
    return shutil.which(name)


def find_cuobjdump() -> str | None:
    return _find_tool("cuobjdump")


def find_nvdisasm() -> str | None:
    """cuobjdump -sass runs nvdisasm; it needs to find it on PATH or NVDISASM_PATH."""
    return _find_tool("nvdisasm")


def missing_tools() -> str | None:
    """None when SASS can be read here, else why not (for skip messages)."""
    tools = {"cuobjdump": find_cuobjdump(), "nvdisasm": find_nvdisasm()}
    missing = [name for name, path in tools.items() if not path]
    if not missing:
        return None
    wheels = " ".join(f"nvidia-cuda-{name}" for name in missing)
    return f"{' and '.join(missing)} not found (pip install {wheels}, or the [test] extra)"


def _cuobjdump(cubin: bytes, *args: str) -> str:
    exe = find_cuobjdump()
    if exe is None:
        raise FileNotFoundError(missing_tools())
    env = dict(os.environ)
    nvdisasm = find_nvdisasm()
    if nvdisasm:  # the wheels put it in their own bin/, which is not on PATH
        bindir = os.path.dirname(nvdisasm)
        env["NVDISASM_PATH"] = bindir
        env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    fd, path = tempfile.mkstemp(suffix=".cubin")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(cubin)
        proc = subprocess.run([exe, *args, path], capture_output=True, text=True, env=env)
    finally:
        os.unlink(path)
    if proc.returncode != 0:
        raise RuntimeError(f"cuobjdump {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def sass_text(cubin: bytes) -> str:
    """`cuobjdump -sass` of a cubin."""
    return _cuobjdump(cubin, "-sass")


def resource_usage(cubin: bytes) -> dict[str, dict[str, int]]:
    """Per function: registers, stack, shared (static), local, and cuobjdump's other fields.

    Example: {"prefill_sm80": {"registers": 168, "stack": 0, "shared": 0, "local": 0,
              "CONSTANT[0]": 1024, "TEXTURE": 0, ...}}
    """
    out: dict[str, dict[str, int]] = {}
    current = None
    for line in _cuobjdump(cubin, "--dump-resource-usage").splitlines():
        m = _RES_FUNC.match(line)
        if m:
            current = out.setdefault(m.group(1), {})
            continue
        if current is not None and "REG:" in line:
            for name, value in _RES_FIELD.findall(line):
                current[_RES_NAMES.get(name, name)] = int(value)
    return out


def instruction_counts(sass: str) -> Counter:
    """Base opcode (text before the first '.') -> number of occurrences in the SASS."""
    return Counter(_SASS_INSN.findall(sass))


def instruction_flags(sass: str) -> dict[str, bool]:
    """{"HMMA": bool, "HGMMA": bool, "LDGSTS": bool, "UTMALDG": bool} for this SASS text."""
    counts = instruction_counts(sass)
    return {op: counts[op] > 0 for op in FLAG_OPCODES}


def kernel_report(cubin: bytes, entry: str | None = None, sass: str | None = None) -> dict:
    """One kernel's numbers: registers, shared, stack, local, spill_stores/spill_loads (STL/LDL
    instruction counts) and the FLAG_OPCODES flags. `entry` picks the function (default: the
    only one in the cubin)."""
    usage = resource_usage(cubin)
    if entry is None:
        if len(usage) != 1:
            raise ValueError(f"cubin has functions {sorted(usage)}; pass entry")
        entry = next(iter(usage))
    if entry not in usage:
        raise KeyError(f"function {entry!r} not in cubin (has {sorted(usage)})")
    if sass is None:
        sass = sass_text(cubin)
    counts = instruction_counts(sass)
    res = usage[entry]
    report = {
        "function": entry,
        "registers": res.get("registers", 0),
        "shared": res.get("shared", 0),
        "stack": res.get("stack", 0),
        "local": res.get("local", 0),
        "spill_stores": counts["STL"],
        "spill_loads": counts["LDL"],
    }
    report.update({op: counts[op] > 0 for op in FLAG_OPCODES})
    return report
