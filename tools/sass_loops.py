"""usage: python tools/sass_loops.py FILE.sass [--all]

The instruction mix of a kernel's key-block loop, from its SASS (tools/dump_sass.py's .sass files, or
`cuobjdump -sass` of another library's kernels, one function per file): the first loop (a backward
branch) whose body holds HGMMA instructions, whole and on its hot path, which leaves out the forward
branches over the soft cap (a region with MUFU.TANH) and over the mask (a region with 40+ FSEL):
what a block without cap or mask executes per consumer thread. --all: every such loop, whole.

    python tools/dump_sass.py --filter hd128_bf16_bn176_nopp_sm -o /tmp/sass
    python tools/sass_loops.py /tmp/sass/prefill_sm90_hd128_bf16_bn176_nopp_sm_90a.sass
"""
from __future__ import annotations

import argparse
import collections
import re
import sys

_LINE = re.compile(r"\s*/\*([0-9a-f]{4,})\*/\s+(.*?)\s*;")
_BRANCH = re.compile(r"\bBRA(?:\.\S+)?\s+(?:!?U?P\w+,\s*)?(?:`\()?.*?0x([0-9a-f]+)")


def parse(text: str) -> list[tuple[int, str]]:
    """(address, instruction) of every SASS line of `text`, in order."""
    return [(int(m.group(1), 16), m.group(2)) for m in map(_LINE.match, text.splitlines()) if m]


def opcode(instr: str) -> str:
    """The opcode without its guard predicate and modifiers: '@!P0 FFMA.FTZ R1, ...' -> 'FFMA'."""
    return re.sub(r"^@!?U?P\w+\s+", "", instr).split()[0].split(".")[0]


def mma_loops(ins: list[tuple[int, str]]) -> list[tuple[int, int]]:
    """(first, last) indices of every loop (a backward branch and its target) whose body holds HGMMA."""
    at = {a: i for i, (a, _) in enumerate(ins)}
    out = []
    for i, (a, t) in enumerate(ins):
        m = _BRANCH.search(t)
        if m and int(m.group(1), 16) < a and int(m.group(1), 16) in at:
            j = at[int(m.group(1), 16)]
            if any("HGMMA" in x for _, x in ins[j:i + 1]):
                out.append((j, i))
    return out


def hot_path(ins: list[tuple[int, str]], first: int, last: int) -> list[int]:
    """Indices of the loop body's instructions outside the guarded soft-cap and mask regions."""
    at = {a: i for i, (a, _) in enumerate(ins)}
    skip = set()
    for k in range(first, last + 1):
        a, t = ins[k]
        m = _BRANCH.search(t)
        if not (m and t.startswith("@")):
            continue
        end = at.get(int(m.group(1), 16))
        if end is None or not k < end <= last:
            continue
        region = [x for _, x in ins[k + 1:end]]
        if sum("MUFU.TANH" in x for x in region) > 10 or sum(opcode(x) == "FSEL" for x in region) >= 40:
            skip.update(range(k + 1, end))
    return [k for k in range(first, last + 1) if k not in skip]


def mix(instrs) -> str:
    c = collections.Counter(opcode(x) for x in instrs)
    return ", ".join(f"{k} {v}" for k, v in c.most_common(12))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sass")
    ap.add_argument("--all", action="store_true", help="every HGMMA loop, whole")
    args = ap.parse_args(argv)
    with open(args.sass) as f:
        ins = parse(f.read())
    loops = mma_loops(ins)
    if not loops:
        print("no loop with HGMMA found", file=sys.stderr)
        return 1
    for first, last in loops if args.all else loops[:1]:
        body = [x for _, x in ins[first:last + 1]]
        print(f"loop {ins[first][0]:#x}-{ins[last][0]:#x}: {len(body)} instructions: {mix(body)}")
        if not args.all:
            hot = [ins[k][1] for k in hot_path(ins, first, last)]
            print(f"hot path: {len(hot)} instructions: {mix(hot)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
