"""Read values the kernels export from a cubin (an ELF64 file) in pure Python: no GPU, no driver.

The kernels publish facts the host must agree with as `extern "C" __device__ const int` symbols
(e.g. `dynamic_smem_bytes`, the dynamic shared memory a prefill kernel needs), so the host reads them
from the compiled binary instead of keeping a mirror of the kernel's arithmetic:

    >>> from nvrtc_attn import compiler, cubin, variants
    >>> ck = compiler.compile_variant(variants.prefill_sm90_variant(128, "bfloat16"))
    >>> cubin.symbol_int(ck.cubin, cubin.SMEM_BYTES_SYMBOL)   # doctest: +SKIP
    218240
"""
from __future__ import annotations

import struct

__all__ = ["SMEM_BYTES_SYMBOL", "symbol_bytes", "symbol_int"]

# The dynamic shared-memory size of a prefill kernel (prefill_sm80.cu, prefill_sm90.cu).
SMEM_BYTES_SYMBOL = "dynamic_smem_bytes"

_SHT_SYMTAB, _SHT_NOBITS = 2, 8
_SHN_LORESERVE = 0xFF00


def _sections(elf: bytes) -> list[tuple[int, int, int, int, int]]:
    """(sh_name, sh_type, sh_offset, sh_size, sh_link) of every section header."""
    if elf[:4] != b"\x7fELF" or elf[4] != 2 or elf[5] != 1:
        raise ValueError("not a little-endian ELF64 file (a cubin)")
    (shoff,) = struct.unpack_from("<Q", elf, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", elf, 0x3A)
    out = []
    for i in range(shnum):
        name, kind, _flags, _addr, offset, size, link = struct.unpack_from("<IIQQQQI", elf, shoff + i * shentsize)
        out.append((name, kind, offset, size, link))
    return out


def symbol_bytes(elf: bytes, name: str) -> bytes:
    """The initialized bytes of data symbol `name` (its st_size bytes from its section).

    Raises KeyError when the cubin has no such symbol, ValueError when it has no data in the file.
    """
    sections = _sections(elf)
    wanted = name.encode()
    for _, kind, offset, size, link in sections:
        if kind != _SHT_SYMTAB:
            continue
        strtab = sections[link][2]
        for pos in range(offset, offset + size, 24):  # Elf64_Sym
            st_name, _info, _other, shndx, value, sym_size = struct.unpack_from("<IBBHQQ", elf, pos)
            end = elf.index(b"\0", strtab + st_name)
            if elf[strtab + st_name:end] != wanted:
                continue
            if shndx == 0 or shndx >= _SHN_LORESERVE:
                raise ValueError(f"symbol {name!r} is not defined in a section of this cubin")
            _, sec_kind, sec_offset, sec_size, _ = sections[shndx]
            if sec_kind == _SHT_NOBITS or value + sym_size > sec_size:
                raise ValueError(f"symbol {name!r} has no initialized data in this cubin")
            return elf[sec_offset + value:sec_offset + value + sym_size]  # cubin values are section-relative
    raise KeyError(f"no symbol {name!r} in this cubin")


def symbol_int(elf: bytes, name: str) -> int:
    """The value of a 4-byte `extern "C" __device__ const int` symbol."""
    data = symbol_bytes(elf, name)
    if len(data) != 4:
        raise ValueError(f"symbol {name!r} is {len(data)} bytes, not a 32-bit int")
    return struct.unpack("<i", data)[0]
