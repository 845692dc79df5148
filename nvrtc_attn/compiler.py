"""kernels_cu/ -> NVRTC (through cuda.core.Program) -> cubin, with a memory + disk cache.

Compiling needs no GPU and no driver; only `load_kernel` touches the device.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import os
import struct
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Any, Iterable

__all__ = [
    "BASE_OPTIONS",
    "KERNELS_DIR",
    "CompileError",
    "CompiledKernel",
    "clear_memory_cache",
    "compile_all",
    "compile_variant",
    "cuda_core_version",
    "default_cache_dir",
    "load_kernel",
    "nvrtc_version",
]

_log = logging.getLogger(__name__)

# Every cuda.core ProgramOptions field the library sets, in one place (besides arch, defines,
# include path and name, which come from the variant). All of it goes into the cache key.
# Optimisation is NVRTC's default (device code optimised, ptxas -O3), so it is not repeated here.
# Fast math stays off: exp2/rcp precision is chosen explicitly in the kernels.
BASE_OPTIONS: dict[str, Any] = {
    "std": "c++17",
    "lineinfo": False,
    "use_fast_math": False,
}


def _find_kernels_dir() -> Path:
    """kernels_cu/ inside the package (wheel) or next to it (source tree, editable install)."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "kernels_cu", here.parent / "kernels_cu"):
        if candidate.is_dir():
            return candidate
    return here.parent / "kernels_cu"


KERNELS_DIR: Path = _find_kernels_dir()

# Bump when the disk entry layout or the key recipe changes.
_FORMAT_VERSION = 2
_MAGIC = b"NVATTNC\x00"
# magic, format version, 4 section lengths (meta json, cubin, ptx, log), sha256 of key + sections.
_HEADER = struct.Struct("<8sI4Q32s")


class CompileError(Exception):
    """NVRTC rejected a variant. `.log` is the NVRTC log, `.variant` the variant's name."""

    def __init__(self, message: str, log: str = "", variant: str | None = None):
        super().__init__(message, log)
        self.message = message
        self.log = log
        self.variant = variant

    def __str__(self) -> str:
        if not self.log:
            return self.message
        return f"{self.message}\n--- NVRTC log ---\n{self.log.rstrip()}"

    def __reduce__(self):  # keep the fields across process boundaries (compile_all)
        return (type(self), (self.message, self.log, self.variant))


@dataclasses.dataclass(frozen=True)
class CompiledKernel:
    """Result of compiling one KernelVariant.

    cubin: sm_XX machine code; ptx: the PTX of the same compile when asked for (else None);
    log: NVRTC's log (warnings); key: cache key (sha256 hex); from_cache: served from a cache.
    The kernel's symbol in the cubin is variant.entry (every entry is extern "C").
    """

    variant: Any
    cubin: bytes = dataclasses.field(repr=False)
    ptx: str | None = dataclasses.field(repr=False)
    log: str = dataclasses.field(repr=False)
    key: str
    from_cache: bool

    @property
    def name(self) -> str:
        return self.variant.name


# ----------------------------------------------------------------------------------------------
# versions and key


_nvrtc_version: tuple[int, int] | None = None


def nvrtc_version() -> tuple[int, int]:
    """(major, minor) of the NVRTC library that cuda.bindings loads, e.g. (13, 5)."""
    global _nvrtc_version
    if _nvrtc_version is None:
        from cuda.bindings import nvrtc

        err, major, minor = nvrtc.nvrtcVersion()
        if int(err) != 0:
            raise RuntimeError(f"nvrtcVersion() failed: {err!r}")
        _nvrtc_version = (int(major), int(minor))
    return _nvrtc_version


def cuda_core_version() -> str:
    try:
        from cuda.core import __version__ as version

        return str(version)
    except ImportError:
        from importlib.metadata import version as dist_version

        return dist_version("cuda-core")


# (dir, ((relpath, size, mtime_ns), ...)) -> sha256 hex of the directory's files
_sources_digest_cache: dict[tuple, str] = {}


def _source_files(kernels_dir: Path) -> list[tuple[str, Path]]:
    files = []
    for path in kernels_dir.rglob("*"):
        rel = path.relative_to(kernels_dir)
        if any(part.startswith(".") or part == "__pycache__" for part in rel.parts):
            continue  # editor swap files, caches: not sources
        if path.is_file():
            files.append((rel.as_posix(), path))
    return sorted(files)


def _sources_digest(kernels_dir: Path) -> str:
    """sha256 over every file in kernels_dir (sorted names + contents); re-read only on change."""
    files = _source_files(kernels_dir)
    stamp = (str(kernels_dir), tuple((rel, p.stat().st_size, p.stat().st_mtime_ns) for rel, p in files))
    digest = _sources_digest_cache.get(stamp)
    if digest is None:
        h = hashlib.sha256()
        for rel, path in files:
            data = path.read_bytes()
            h.update(rel.encode())
            h.update(struct.pack("<Q", len(data)))
            h.update(data)
        digest = h.hexdigest()
        _sources_digest_cache[stamp] = digest
    return digest


def _define_value(value: Any) -> str:
    if isinstance(value, bool):  # before int: True would otherwise become "True"
        return "1" if value else "0"
    return str(value)


def _defines(variant) -> list[tuple[str, str]]:
    return [(str(name), _define_value(value)) for name, value in variant.defines]


def _cache_key(variant, kernels_dir: Path) -> str:
    material = {
        "format": _FORMAT_VERSION,
        "sources": _sources_digest(kernels_dir),
        "source": variant.source,
        "entry": variant.entry,
        "arch": variant.arch,
        "defines": _defines(variant),
        "options": {k: repr(v) for k, v in sorted(BASE_OPTIONS.items())},
        "nvrtc": list(nvrtc_version()),
        "cuda_core": cuda_core_version(),
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


# ----------------------------------------------------------------------------------------------
# disk cache


def default_cache_dir() -> Path:
    """NVRTC_ATTN_CACHE_DIR, else $XDG_CACHE_HOME/nvrtc_attn, else ~/.cache/nvrtc_attn."""
    env = os.environ.get("NVRTC_ATTN_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg).expanduser() / "nvrtc_attn"
    return Path.home() / ".cache" / "nvrtc_attn"


_unwritable_dirs: set[str] = set()


def _entry_path(directory: Path, key: str) -> Path:
    return directory / f"{key}.bin"


def _pack_entry(key: str, meta: dict, cubin: bytes, ptx: str | None, log: str) -> bytes:
    sections = [json.dumps(meta, sort_keys=True).encode(), cubin, (ptx or "").encode(), log.encode()]
    h = hashlib.sha256(key.encode())
    for s in sections:
        h.update(s)
    header = _HEADER.pack(_MAGIC, _FORMAT_VERSION, *(len(s) for s in sections), h.digest())
    return header + b"".join(sections)


def _unpack_entry(key: str, blob: bytes) -> tuple[dict, bytes, str | None, str]:
    """Raises ValueError on anything but a complete, checksummed entry for this key."""
    if len(blob) < _HEADER.size:
        raise ValueError(f"short entry ({len(blob)} bytes)")
    magic, version, *rest = _HEADER.unpack_from(blob)
    lengths, digest = rest[:4], rest[4]
    if magic != _MAGIC or version != _FORMAT_VERSION:
        raise ValueError("bad magic or format version")
    if _HEADER.size + sum(lengths) != len(blob):
        raise ValueError(f"size mismatch: header says {_HEADER.size + sum(lengths)}, file has {len(blob)}")
    sections, pos = [], _HEADER.size
    for n in lengths:
        sections.append(blob[pos : pos + n])
        pos += n
    h = hashlib.sha256(key.encode())
    for s in sections:
        h.update(s)
    if h.digest() != digest:
        raise ValueError("checksum mismatch")
    meta_b, cubin, ptx_b, log_b = sections
    meta = json.loads(meta_b.decode())
    ptx = ptx_b.decode() if meta.get("has_ptx") else None
    return meta, bytes(cubin), ptx, log_b.decode()


def _disk_load(directory: Path, key: str):
    path = _entry_path(directory, key)
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        _log.warning("nvrtc_attn: cannot read cache entry %s (%s); recompiling", path, e)
        return None
    try:
        return _unpack_entry(key, blob)
    except Exception as e:  # corrupt, truncated, foreign: recompile and overwrite
        _log.warning("nvrtc_attn: discarding corrupt cache entry %s (%s); recompiling", path, e)
        return None


def _disk_store(directory: Path, key: str, blob: bytes) -> None:
    if str(directory) in _unwritable_dirs:
        return
    tmp = None
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".bin")
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
        os.replace(tmp, _entry_path(directory, key))  # atomic: readers see old or new, never half
        tmp = None
    except OSError as e:
        _unwritable_dirs.add(str(directory))
        warnings.warn(
            f"nvrtc_attn: kernel cache directory {directory} is not writable ({e}); "
            "disk caching disabled for it (set NVRTC_ATTN_CACHE_DIR to change it)",
            RuntimeWarning,
            stacklevel=3,
        )
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


# ----------------------------------------------------------------------------------------------
# compile


_memory_cache: dict[str, CompiledKernel] = {}
_memory_lock = threading.Lock()


def clear_memory_cache() -> None:
    """Forget in-process results (the disk cache stays)."""
    with _memory_lock:
        _memory_cache.clear()


def _nvrtc_string(get_size, get, handle) -> bytes | None:
    """NVRTC's size-then-get pattern (log, PTX): NVRTC writes `size` bytes into a buffer we own.

    The buffer is a fresh bytearray: never a bytes object, which is immutable (and for short sizes
    may be one of CPython's shared one-byte objects: a size-1 "empty" log went into the b" " of the
    whole process).
    Returns the text without its NUL terminator, or None on an NVRTC error.
    """
    err, size = get_size(handle)
    if int(err) != 0:
        return None
    buf = bytearray(int(size))
    (err,) = get(handle, buf)
    if int(err) != 0:
        return None
    return bytes(buf).rstrip(b"\x00")


def _nvrtc_log(program) -> str | None:
    """The program log straight from NVRTC (works after success and after failure)."""
    try:
        from cuda.bindings import nvrtc

        handle = program.handle
        text = _nvrtc_string(nvrtc.nvrtcGetProgramLogSize, nvrtc.nvrtcGetProgramLog, handle)
        return None if text is None else text.decode(errors="replace")
    except Exception:
        return None


def _nvrtc_ptx(program) -> str | None:
    """The PTX NVRTC produced on its way to the cubin (no second compile)."""
    try:
        from cuda.bindings import nvrtc

        handle = program.handle
        text = _nvrtc_string(nvrtc.nvrtcGetPTXSize, nvrtc.nvrtcGetPTX, handle)
        return text.decode() if text else None
    except Exception:
        return None


def _program_options(variant, kernels_dir: Path):
    from cuda.core import ProgramOptions

    return ProgramOptions(
        name=variant.source,  # log lines read "prefill_sm80.cu(12): error ..."
        arch=variant.arch,
        define_macro=_defines(variant) or None,
        include_path=[str(kernels_dir)],
        **BASE_OPTIONS,
    )


def _compile_uncached(variant, kernels_dir: Path) -> tuple[bytes, str | None, str, str]:
    """Returns (cubin, ptx, log); raises CompileError. Entries are extern "C" names."""
    from cuda.core import Program

    src_path = kernels_dir / variant.source
    try:
        src = src_path.read_text()
    except OSError as e:
        raise CompileError(f"cannot read kernel source {src_path}: {e}", "", variant.name) from e

    program = Program(src, "c++", _program_options(variant, kernels_dir))
    logs = io.StringIO()
    try:
        try:
            obj = program.compile("cubin", logs=logs)
        except Exception as e:
            log = _nvrtc_log(program) or logs.getvalue() or str(e)
            raise CompileError(
                f"NVRTC failed to compile {variant.name} ({variant.source}, entry {variant.entry}, "
                f"arch {variant.arch}, NVRTC {'.'.join(map(str, nvrtc_version()))})",
                log,
                variant.name,
            ) from None  # the cuda.core error only repeats the log
        cubin = bytes(obj.code)
        log = _nvrtc_log(program)
        if log is None:
            log = logs.getvalue()
        ptx = _nvrtc_ptx(program)
    finally:
        # Drop the last reference now: a Program that lives on in a kept CompileError's traceback
        # is deallocated at interpreter exit, where cuda.core 1.2.2 prints an ignored exception.
        program.close()
        del program

    # A misspelt entry only shows when get_kernel fails on a GPU; catch it here, on the CPU.
    if b"\0" + variant.entry.encode() + b"\0" not in cubin:  # a whole name in the ELF string table
        raise CompileError(
            f"{variant.name}: entry {variant.entry!r} not found in the cubin of {variant.source} "
            '(is the kernel extern "C" and not removed as unused?)',
            log,
            variant.name,
        )
    return cubin, ptx, log.strip()


def _cached(variant, key: str, disk: Path, want_ptx: bool) -> CompiledKernel | None:
    """Memory cache, then disk cache (filling memory); None on a miss or if PTX is missing."""
    with _memory_lock:
        hit = _memory_cache.get(key)
    if hit is None:
        entry = _disk_load(disk, key)
        if entry is None:
            return None
        meta, cubin, ptx, log = entry
        hit = CompiledKernel(variant, cubin, ptx, log, key, True)
        with _memory_lock:
            _memory_cache[key] = hit
    if want_ptx and hit.ptx is None:
        return None
    return dataclasses.replace(hit, variant=variant, from_cache=True, ptx=hit.ptx if want_ptx else None)


def _store(variant, key: str, disk: Path, compiled: tuple, want_ptx: bool, use_cache: bool) -> CompiledKernel:
    cubin, ptx, log = compiled
    if want_ptx and ptx is None:
        raise CompileError(f"{variant.name}: NVRTC returned no PTX", log, variant.name)
    ck = CompiledKernel(variant, cubin, ptx, log, key, False)
    if use_cache:
        meta = {"variant": variant.name, "has_ptx": ptx is not None}
        _disk_store(disk, key, _pack_entry(key, meta, cubin, ptx, log))  # overwrites a corrupt one
        with _memory_lock:
            _memory_cache[key] = ck
    return dataclasses.replace(ck, ptx=ptx if want_ptx else None)


def compile_variant(
    variant,
    *,
    want_ptx: bool = False,
    kernels_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    use_cache: bool = True,
) -> CompiledKernel:
    """Compile one KernelVariant (`kernels_cu/<variant.source>`) to a cubin, in this process.

    Looks in the memory cache, then the disk cache (`default_cache_dir()` unless `cache_dir`),
    then runs NVRTC and fills both. `want_ptx=True` also returns the PTX of the same compile
    (for tools). `use_cache=False` always runs NVRTC and stores nothing (cold timings).
    `kernels_dir` defaults to KERNELS_DIR. Raises CompileError carrying NVRTC's log.

    Example:
        ck = compile_variant(all_variants()[0])
        assert ck.cubin[:4] == b"\\x7fELF" and ck.key == compile_variant(ck.variant).key
    """
    kdir = Path(kernels_dir) if kernels_dir is not None else KERNELS_DIR
    disk = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    key = _cache_key(variant, kdir)
    if use_cache:
        hit = _cached(variant, key, disk, want_ptx)
        if hit is not None:
            return hit
    return _store(variant, key, disk, _compile_uncached(variant, kdir), want_ptx, use_cache)


def compile_all(
    variants: Iterable,
    max_workers: int | None = None,
    *,
    want_ptx: bool = False,
    kernels_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    use_cache: bool = True,
    return_exceptions: bool = False,
) -> list:
    """Compile many variants; cache misses in parallel worker processes; results in input order.

    Cached variants are answered without starting any process; duplicates compile once. Up to
    `max_workers` (default: CPU count) NVRTC worker processes run at a time; with one CPU, one
    miss or max_workers=1 the compile is serial in this process. With return_exceptions=True a
    failing variant's slot holds its CompileError instead of the first one being raised.

    Example:
        kernels = compile_all(all_variants())   # cold: about one variant's time per CPU core
    """
    variants = list(variants)
    kdir = Path(kernels_dir) if kernels_dir is not None else KERNELS_DIR
    disk = Path(cache_dir) if cache_dir is not None else default_cache_dir()

    results: list = [None] * len(variants)
    misses: dict[str, list[int]] = {}  # cache key -> positions
    for i, v in enumerate(variants):
        key = _cache_key(v, kdir)
        hit = _cached(v, key, disk, want_ptx) if use_cache and key not in misses else None
        if hit is not None:
            results[i] = hit
        else:
            misses.setdefault(key, []).append(i)

    jobs = list(misses.items())
    n_workers = max_workers if max_workers is not None else (os.cpu_count() or 1)
    n_workers = max(1, min(n_workers, len(jobs)))

    def finish(job, compile_one):
        key, positions = job
        v = variants[positions[0]]
        try:
            return _store(v, key, disk, compile_one(v, kdir), want_ptx, use_cache)
        except CompileError as e:
            return e

    if n_workers == 1:
        outcomes = [finish(job, _compile_uncached) for job in jobs]
    else:
        from . import compile_pool

        def in_worker(compile_one):
            def compile_variant_in_worker(v, kdir):
                try:
                    return compile_one(v, kdir)
                except compile_pool.WorkerFailure as e:
                    raise CompileError(e.message, e.log, v.name) from None
            return compile_variant_in_worker

        outcomes = compile_pool.map_in_workers(jobs, n_workers, lambda job, c: finish(job, in_worker(c)))

    for (_, positions), outcome in zip(jobs, outcomes):
        for i in positions:
            is_kernel = isinstance(outcome, CompiledKernel)
            results[i] = dataclasses.replace(outcome, variant=variants[i]) if is_kernel else outcome

    if not return_exceptions:
        for r in results:
            if isinstance(r, BaseException):
                raise r
    return results


# ----------------------------------------------------------------------------------------------
# load (GPU only)


_loaded: dict[tuple[str, str], Any] = {}
_loaded_lock = threading.Lock()


def load_kernel(compiled: CompiledKernel):
    """cuda.core Kernel for a CompiledKernel; loaded once per process (needs a driver + GPU).

    The cubin is loaded as a context-independent CUlibrary (cuda.core ObjectCode); launch it
    with a current Device (`Device().set_current()`).
    """
    from cuda.core import ObjectCode

    cache_key = (compiled.key, compiled.variant.entry)
    with _loaded_lock:
        kernel = _loaded.get(cache_key)
        if kernel is None:
            obj = ObjectCode.from_cubin(compiled.cubin, name=compiled.variant.name)
            kernel = obj.get_kernel(compiled.variant.entry)
            _loaded[cache_key] = kernel
    return kernel
