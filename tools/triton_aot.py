"""Compile every recorded Triton launch ahead of time for real GPUs, without a GPU.

Input: launch records written by ``tools/triton_record.py`` (the test suite run under the
interpreter with the recorder, plus ``--meta-sweep`` for shapes too large to interpret).
Each record is bound exactly as ``JITFunction.run`` binds a launch (Triton's own binder for a
CUDA backend: argument types, 16-byte alignment, integers equal to 1 or divisible by 16,
constexprs), distinct specialisations are compiled with ``triton.compile(ASTSource(...),
target=GPUTarget("cuda", arch, 32))`` in parallel processes, and ptxas' own report
(``-v``) gives registers, spills and stack; Triton's metadata gives the shared memory.

Fails (exit 1) on a compile error, naming kernel, specialisation and architecture, and on what
``tools/gpu_checks.py`` rejects (any spill in a float32/half kernel, a launch that cannot
fit an SM).

Works with Triton 3.3 to 3.9 (``ASTSource(fn, signature, constexprs, attrs)`` and the binder
``create_function_from_signature(sig, params, backend)`` of both; Triton 3.2's ``constants``
keyed by name is handled too).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import inspect
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tools import triton_record
from tools.gpu_checks import failures


class _FakeTensor:
    """What Triton's binder looks at: ``dtype`` and ``data_ptr()`` (for 16-byte alignment)."""

    def __init__(self, dtype: Any, aligned: bool) -> None:
        self.dtype = dtype
        self._ptr = 0 if aligned else 4

    def data_ptr(self) -> int:
        return self._ptr


def decode(value: Any) -> Any:
    """The inverse of ``triton_record.encode`` (tensors become ``_FakeTensor``)."""
    import torch
    import triton.language as tl

    if not isinstance(value, dict):
        return value
    ((kind, v),) = ((k, x) for k, x in value.items() if k != "align16")
    if kind == "tensor":
        return _FakeTensor(getattr(torch, v), value["align16"])
    if kind == "tl_dtype":
        return tl.dtype(v)
    return v  # int, float, bool


def resolve(key: str) -> Any:
    module, name = key.split(":")
    return getattr(importlib.import_module(module), name)


_binders: dict[tuple[int, int], Any] = {}


def specialise(fn: Any, backend: Any, args: dict, options: dict) -> tuple[dict, dict, dict]:
    """``(signature, constexprs, attrs)`` exactly as ``JITFunction.run`` derives them."""
    from triton._utils import find_paths_if, get_iterable_path
    from triton.runtime.jit import create_function_from_signature

    binder = _binders.get((id(fn), id(backend)))
    if binder is None:
        binder = create_function_from_signature(fn.signature, fn.params, backend)
        _binders[(id(fn), id(backend))] = binder
    values = {n: decode(v) for n, v in args.items()}
    bound, spec, _ = binder(**values, **{k: decode(v) for k, v in options.items()})
    sigvals = [x[0] for x in spec]
    signature = {p.name: t for p, t in zip(fn.params, sigvals, strict=True)}
    paths = find_paths_if(sigvals, lambda _, v: v == "constexpr")
    constexprs = {p: get_iterable_path(list(bound.values()), p) for p in paths}
    attrvals = ["" if x[0] == "constexpr" else x[1] for x in spec]
    paths = find_paths_if(attrvals, lambda _, x: isinstance(x, str))
    attrs = {p: backend.parse_attr(get_iterable_path(attrvals, p)) for p in paths}
    return signature, constexprs, attrs


def make_source(fn: Any, signature: dict, constexprs: dict, attrs: dict) -> Any:
    from triton.compiler.compiler import ASTSource

    params = inspect.signature(ASTSource.__init__).parameters
    if "constexprs" in params:  # Triton >= 3.3
        return ASTSource(fn, signature, constexprs, attrs)
    names = [p.name for p in fn.params]  # Triton 3.2: constants keyed by name
    constants = {names[p[0]]: v for p, v in constexprs.items()}
    return ASTSource(fn, signature, constants=constants, attrs=attrs)


def describe(key: str, signature: dict, constexprs: dict, options: dict) -> str:
    """``kernel[N:i32 W:i32:16 H=1 BN=64 ... num_warps=4]`` with the pointer dtypes."""
    name = key.split(":")[1]
    parts = []
    ptrs = sorted({t for t in signature.values() if t.startswith("*")})
    parts.append("/".join(ptrs))
    by_name = {n: v for n, v in zip(signature, range(len(signature)), strict=True)}
    for n, t in signature.items():
        if t == "constexpr":
            v = constexprs.get((by_name[n],))
            parts.append(f"{n}={getattr(v, 'name', v)}")
    parts += [f"{k}={decode(v)}" for k, v in sorted(options.items())]
    return f"{name}[{' '.join(parts)}]"


def _ptxas_path(arch: int) -> str | None:
    from triton.backends.nvidia import compiler as nv

    if hasattr(nv, "get_ptxas"):
        try:
            tool = nv.get_ptxas(arch)
        except TypeError:
            tool = nv.get_ptxas()
        tool = getattr(tool, "path", tool)
        return tool[0] if isinstance(tool, tuple) else tool  # (path, version) before 3.4
    if hasattr(nv, "_path_to_binary"):
        return nv._path_to_binary("ptxas")[0]
    return shutil.which("ptxas")


def parse_ptxas(log: str) -> dict[str, int] | None:
    """Registers, spill stores/loads, stack frame and static shared memory from ``ptxas -v``."""
    regs = re.search(r"Used (\d+) registers", log)
    if regs is None:
        return None
    frame = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill", log)
    smem = re.search(r"(\d+) bytes smem", log)
    stack, st, ld = (int(x) for x in frame.groups()) if frame else (0, 0, 0)
    return {
        "regs": int(regs.group(1)),
        "spill_stores": st,
        "spill_loads": ld,
        "stack": stack,
        "static_smem": int(smem.group(1)) if smem else 0,
    }


def _rerun_ptxas(ptx: str, arch: int) -> str:
    """``ptxas -v`` on Triton's PTX, when its own log was not printed (Triton without
    TRITON_DUMP_PTXAS_LOG); flags as close to Triton's as the version allows."""
    suffix = "a" if arch >= 90 else ""
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "k.ptx"
        src.write_text(ptx)
        cmd = [_ptxas_path(arch), "-v", f"--gpu-name=sm_{arch}{suffix}", str(src), "-o", f"{src}.o"]
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stderr


def compile_one(job: dict[str, Any]) -> dict[str, Any]:
    """Compile one specialisation for one architecture; never raises."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler.compiler import make_backend

    arch = job["arch"]
    out = {k: job.get(k, "") for k in ("kernel", "arch", "desc", "dtype", "test")}
    out["sources"] = job.get("sources", [])
    t0 = time.perf_counter()
    try:
        fn = resolve(job["kernel"])
        target = GPUTarget("cuda", arch, 32)
        backend = make_backend(target)
        signature, constexprs, attrs = specialise(fn, backend, job["args"], job["options"])
        src = make_source(fn, signature, constexprs, attrs)
        options = {k: decode(v) for k, v in job["options"].items()}
        log = io.StringIO()
        with contextlib.redirect_stdout(log):
            kernel = triton.compile(src, target=target, options=options)
        res = parse_ptxas(log.getvalue()) or parse_ptxas(_rerun_ptxas(kernel.asm["ptx"], arch))
        if res is None:
            raise RuntimeError("ptxas -v printed no register count")
        md = kernel.metadata
        res["smem"] = res.pop("static_smem") + int(md.shared)
        res["num_warps"] = int(md.num_warps)
        out.update(res)
    except Exception as exc:  # reported by the caller with kernel, specialisation, arch
        lines = f"{type(exc).__name__}: {exc}".strip().splitlines()
        out["error"] = "\n".join(lines[:40])
    out["seconds"] = round(time.perf_counter() - t0, 2)
    return out


def plan(records: list[dict], archs: list[int]) -> list[dict[str, Any]]:
    """One job per distinct (kernel, specialisation, options, arch)."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler.compiler import make_backend

    jobs: dict[str, dict] = {}
    for arch in archs:
        backend = make_backend(GPUTarget("cuda", arch, 32))
        for rec in records:
            fn = resolve(rec["kernel"])
            sig, cx, attrs = specialise(fn, backend, rec["args"], rec["options"])
            key = repr((rec["kernel"], sig, sorted(cx.items(), key=str), sorted(attrs.items())))
            key += repr((sorted(rec["options"].items()), arch))
            if key in jobs:  # the same specialisation from another launch: note its sources
                have = jobs[key]["sources"]
                have += [x for x in rec.get("sources", []) if x not in have]
            else:
                tensors = (rec["args"][p.name] for p in fn.params)
                dtype = next(v["tensor"] for v in tensors if _is_tensor(v))  # the first one
                desc = describe(rec["kernel"], sig, cx, rec["options"])
                div = [fn.params[p[0]].name for p, a in attrs.items() if a and len(p) == 1]
                div = [n for n in div if not sig[n].startswith("*")]
                if div:
                    desc = desc[:-1] + " " + " ".join(f"{n}%16" for n in div) + "]"
                sources = list(rec.get("sources", []))  # its own list: merged into above
                jobs[key] = {**rec, "arch": arch, "desc": desc, "dtype": dtype, "sources": sources}
    # costliest first (fused address kernels, big tiles) so the pool ends together
    return sorted(jobs.values(), key=lambda j: ("address" not in j["kernel"], -_tile(j), j["desc"]))


def _is_tensor(v: Any) -> bool:
    return isinstance(v, dict) and "tensor" in v


def _tile(job: dict) -> int:
    a = job["args"]
    return int(a.get("BN", {}).get("int", 1)) * int(a.get("BW", {}).get("int", 1))


def run(records: list[dict], archs: list[int], jobs: int) -> list[dict[str, Any]]:
    todo = plan(records, archs)
    arch_list = "/".join(f"sm_{a}" for a in archs)
    print(f"triton_aot: {len(records)} recorded launches -> {len(todo)} compilations "
          f"({len(todo) // max(1, len(archs))} specialisations x {arch_list}), "
          f"{jobs} processes", flush=True)  # fmt: skip
    results = []
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
        for r in pool.map(compile_one, todo, chunksize=1):
            results.append(r)
            if len(results) % 100 == 0 or len(results) == len(todo):
                print(f"triton_aot: {len(results)}/{len(todo)} compiled "
                      f"({time.perf_counter() - t0:.0f} s)", flush=True)  # fmt: skip
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("records", nargs="+", type=Path, help="launch records (.jsonl or folders)")
    ap.add_argument("--arch", type=int, nargs="+", default=[80, 90])
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--json", type=Path, help="write every result here")
    args = ap.parse_args(argv)
    # before the kernels are imported: compile for a GPU target, never interpret; Triton 3.9
    # warns when the FP-fusion default is not set (1 is the default of every version)
    os.environ.pop("TRITON_INTERPRET", None)
    os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    records = triton_record.load(args.records)
    if not records:
        print("triton_aot: no launch records found", file=sys.stderr)
        return 1
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as cache:
        os.environ["TRITON_CACHE_DIR"] = cache  # cold: every kernel really compiled, ptxas logged
        os.environ["TRITON_DUMP_PTXAS_LOG"] = "1"
        results = run(records, args.arch, args.jobs)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1))
    msgs, notes = failures(results)
    for m in notes:
        print("note:", m)
    for m in msgs:
        print(m, file=sys.stderr)
    slowest = max(results, key=lambda r: r["seconds"])
    print(f"triton_aot: {len(results)} compiled in {time.perf_counter() - t0:.0f} s "
          f"(slowest {slowest['seconds']} s: {slowest['desc']} sm_{slowest['arch']}); "
          f"{len(msgs)} problem(s)")  # fmt: skip
    return 1 if msgs else 0


if __name__ == "__main__":
    sys.exit(main())
