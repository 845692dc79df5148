"""NVRTC compiles in parallel worker processes, for compiler.compile_all's cache misses.

Workers are fresh interpreters that load compiler.py by path: no fork (the caller may hold a CUDA
context and threads), no re-run of the caller's __main__ (multiprocessing's spawn does that, and
fails outright under `python -`), no import of the nvrtc_attn package. Each worker serves many
jobs; a compiler crash (segfault) fails only the variant it was on, by name, and a fresh worker
takes the next job. This module imports nothing of the package: compiler.py drives it.
"""
from __future__ import annotations

import concurrent.futures
import json
import os
import pickle
import subprocess
import sys
import tempfile
import threading
import types
from pathlib import Path
from typing import Callable

_COMPILER = Path(__file__).resolve().with_name("compiler.py")

_WORKER_BOOTSTRAP = """
import importlib.util, json, sys
sys.path[:] = json.loads(sys.argv[2])
spec = importlib.util.spec_from_file_location("_nvrtc_attn_compile_pool", sys.argv[1])
mod = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
mod._worker_loop(sys.argv[3])
"""


class WorkerFailure(Exception):
    """A job failed in a worker: `message` and NVRTC's `log` (the caller raises its CompileError)."""

    def __init__(self, message: str, log: str = ""):
        super().__init__(message)
        self.message, self.log = message, log


def _load_by_path(name: str, path: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, path)
    mod = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _worker_loop(compiler_path: str) -> None:
    """Worker side: per stdin line "job.pkl<TAB>out.pkl", compile and answer "done" on stdout."""
    compiler = _load_by_path("_nvrtc_attn_compiler", compiler_path)
    replies = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # stray prints go to stderr, never into the reply channel
    for line in sys.stdin:
        job_path, out_path = line.rstrip("\n").split("\t")
        with open(job_path, "rb") as f:
            job = pickle.load(f)
        try:
            variant = types.SimpleNamespace(**job["variant"])
            result = ("ok", compiler._compile_uncached(variant, Path(job["kernels_dir"])))
        except compiler.CompileError as e:
            result = ("error", (e.message, e.log))
        except Exception as e:  # a bug or a broken install: report it, keep serving
            import traceback

            message = f"compiler worker failed on {job['variant']['name']}: {e!r}"
            result = ("error", (message, traceback.format_exc()))
        with open(out_path, "wb") as f:
            pickle.dump(result, f)
        replies.write("done\n")
        replies.flush()


class Worker:
    """Caller side of one worker process; restarted after it dies."""

    def __init__(self, tmpdir: str):
        self.tmpdir = tmpdir
        self.proc = None
        self.jobs = 0

    def compile(self, variant, kernels_dir: Path) -> tuple:
        """The worker's compile result for variant (compiler._compile_uncached's tuple); raises
        WorkerFailure on a compile error or when the worker process died under the job."""
        if self.proc is None:
            path = json.dumps([str(p) for p in sys.path])
            self.proc = subprocess.Popen(
                [sys.executable, "-c", _WORKER_BOOTSTRAP, str(Path(__file__).resolve()), path, str(_COMPILER)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.jobs += 1
        job_path = os.path.join(self.tmpdir, f"{id(self)}-{self.jobs}.job")
        out_path = job_path[:-4] + ".out"
        job = {"kernels_dir": str(kernels_dir),
               "variant": {"name": variant.name, "source": variant.source, "entry": variant.entry,
                           "arch": variant.arch, "defines": tuple(variant.defines)}}
        with open(job_path, "wb") as f:
            pickle.dump(job, f)
        try:
            self.proc.stdin.write(f"{job_path}\t{out_path}\n")
            self.proc.stdin.flush()
            reply = self.proc.stdout.readline()
        except OSError:  # broken pipe: the worker is gone
            reply = ""
        if reply != "done\n":
            code = self._reap()
            how = f"killed by signal {-code}: an NVRTC crash?" if code < 0 else f"exit code {code}"
            raise WorkerFailure(f"the compiler process died while compiling {variant.name} ({how}; its stderr is above)")
        with open(out_path, "rb") as f:
            status, payload = pickle.load(f)
        if status == "error":
            raise WorkerFailure(*payload)
        return payload

    def _reap(self) -> int:
        """Close the pipes (stdin first: that ends the worker's loop), wait, return its code."""
        proc, self.proc = self.proc, None
        for pipe in (proc.stdin, proc.stdout):
            try:
                pipe.close()
            except OSError:  # flushing into a dead worker
                pass
        return proc.wait()

    def close(self) -> None:
        if self.proc is not None:
            self._reap()


def map_in_workers(jobs: list, n_workers: int, run_job: Callable) -> list:
    """[run_job(job, compile) for job in jobs], n_workers jobs at a time, each with the compile
    function of an idle worker process (Worker.compile); results in job order."""
    with tempfile.TemporaryDirectory(prefix="nvrtc_attn-") as tmp:
        idle = [Worker(tmp) for _ in range(n_workers)]  # one per pool thread at a time
        lock = threading.Lock()

        def run(job):
            with lock:
                worker = idle.pop()
            try:
                return run_job(job, worker.compile)
            finally:
                with lock:
                    idle.append(worker)

        try:  # threads only feed the worker processes and wait on them
            with concurrent.futures.ThreadPoolExecutor(max_workers=n_workers) as pool:
                return list(pool.map(run, jobs))
        finally:
            for worker in idle:
                worker.close()
