"""Compile the CUDA sources with the flags a torch build uses and report each kernel's
resources (no GPU needed).

The flags are those ``torch.utils.cpp_extension.BuildExtension`` gives nvcc for
``setup.py``'s extension: torch's ``COMMON_NVCC_FLAGS`` (``-D__CUDA_NO_HALF_OPERATORS__``,
``-D__CUDA_NO_HALF_CONVERSIONS__``, ``-D__CUDA_NO_BFLOAT16_CONVERSIONS__``,
``-D__CUDA_NO_HALF2_OPERATORS__``, ``--expt-relaxed-constexpr``), ``-fPIC``, the extension's
own nvcc arguments and macros (read from ``setup.py`` by running it against a stand-in CUDA
torch), torch's extension macros and ``-std=c++17``. Sources: the ``.cu`` files of
``setup.py``'s CUDA extension plus any other ``.cu`` under ``csrc/``.

Each source is compiled (``-c``, ``-Xptxas -v``, warnings as errors) per architecture; ptxas'
report gives registers, spill bytes, stack and shared memory per kernel instantiation. The
block size of each launch (``<<<grid, block, ...>>>``) is read from the source and its local
headers to check that registers x threads fit an SM. The torch bindings (``csrc/cuda/*.cpp``,
plain C++ that needs a CUDA torch to build) get a host-compiler syntax check against this
torch's headers (``check_bindings``). Exit status 1 on a compile error, on spills in a
kernel whose element type is not double, or on a launch that cannot fit.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import runpy
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from unittest import mock

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tools.gpu_checks import LIMITS  # noqa: E402


def setup_extension() -> dict[str, Any]:
    """Sources, nvcc arguments and macros of setup.py's CUDA extension, as setup.py would
    declare them on a machine with a CUDA torch and nvcc."""
    import setuptools
    import torch
    from torch.utils import cpp_extension

    cuda_home = os.environ.get("CUDA_HOME") or str(Path(nvcc()).resolve().parent.parent)
    with (
        mock.patch.object(setuptools, "setup", lambda **kw: None),
        mock.patch.object(torch.version, "cuda", torch.version.cuda or "12.8"),
        mock.patch.object(cpp_extension, "CUDA_HOME", cuda_home),
        mock.patch.dict(os.environ, {"TORCH_CUDA_ARCH_LIST": "9.0"}),
        mock.patch("sys.argv", ["setup.py"]),
    ):
        cwd = os.getcwd()
        os.chdir(ROOT)
        try:
            ns = runpy.run_path(str(ROOT / "setup.py"), run_name="ntm_fast_setup_probe")
        finally:
            os.chdir(cwd)
    exts = [e for e in ns["ext_modules"] if any(s.endswith(".cu") for s in e.sources)]
    if not exts:
        raise RuntimeError("setup.py declares no CUDA extension under a CUDA torch")
    ext = exts[0]
    args = ext.extra_compile_args
    return {
        "sources": [s for s in ext.sources if s.endswith(".cu")],
        "all_sources": list(ext.sources),
        "nvcc": list(args.get("nvcc", [])) if isinstance(args, dict) else [],
        "macros": [f"-D{k}" if v is None else f"-D{k}={v}" for k, v in ext.define_macros],
        "name": ext.name.split(".")[-1],
    }


def nvcc() -> str:
    path = os.environ.get("NVCC") or shutil.which("nvcc")
    if not path and Path("/usr/local/cuda/bin/nvcc").exists():
        path = "/usr/local/cuda/bin/nvcc"
    if not path:
        raise RuntimeError("nvcc not found (set NVCC or put it on PATH)")
    return path


def torch_nvcc_flags(ext: dict[str, Any]) -> list[str]:
    """nvcc flags of torch's BuildExtension for ``ext`` (without include paths and -gencode)."""
    import torch
    from torch.utils.cpp_extension import COMMON_NVCC_FLAGS

    abi = int(bool(torch._C._GLIBCXX_USE_CXX11_ABI))
    return [
        *COMMON_NVCC_FLAGS,
        "--compiler-options",
        "-fPIC",
        *ext["macros"],
        *ext["nvcc"],
        "-DTORCH_API_INCLUDE_EXTENSION_H",
        f"-DTORCH_EXTENSION_NAME={ext['name']}",
        f"-D_GLIBCXX_USE_CXX11_ABI={abi}",
        "-std=c++17",
    ]


def sources(ext: dict[str, Any]) -> list[str]:
    extra = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "csrc").rglob("*.cu"))
    return list(dict.fromkeys([*ext["sources"], *extra]))


def cuda_include() -> Path:
    """The CUDA toolkit's include directory (CUDA_HOME, nvcc's installation, /usr/local/cuda)."""
    homes = [os.environ.get("CUDA_HOME"), Path(nvcc()).resolve().parent.parent, "/usr/local/cuda"]
    for home in filter(None, homes):
        if (Path(home) / "include" / "cuda_runtime_api.h").exists():
            return Path(home) / "include"
    raise RuntimeError("no CUDA include directory with cuda_runtime_api.h (set CUDA_HOME)")


def check_bindings(ext: dict[str, Any], tmp: str) -> list[str]:
    """Host-compiler syntax check (``-fsyntax-only``) of the torch bindings ``csrc/cuda/*.cpp``
    with this torch's headers, the C++ standard its BuildExtension uses and the CUDA toolkit's
    headers. A CPU torch ships the c10/cuda headers but not the generated
    ``c10/cuda/impl/cuda_cmake_macros.h``; a stand-in (shared-library build) is written then."""
    import inspect

    import torch
    from torch.utils import cpp_extension

    incs = [Path(p) for p in cpp_extension.include_paths()]
    macros = Path(tmp) / "stub" / "c10" / "cuda" / "impl" / "cuda_cmake_macros.h"
    if not any((p / "c10/cuda/impl/cuda_cmake_macros.h").exists() for p in incs):
        macros.parent.mkdir(parents=True, exist_ok=True)
        macros.write_text("#pragma once\n#define C10_CUDA_BUILD_SHARED_LIBS\n")
    std = re.findall(r"cpp_flag_prefix \+ '(c\+\+\d+)'", inspect.getsource(cpp_extension))
    abi = int(bool(torch._C._GLIBCXX_USE_CXX11_ABI))
    flags = [
        f"-std={std[0] if std else 'c++17'}",
        *ext["macros"],
        "-DTORCH_API_INCLUDE_EXTENSION_H",
        f"-DTORCH_EXTENSION_NAME={ext['name']}",
        f"-D_GLIBCXX_USE_CXX11_ABI={abi}",
        f"-I{macros.parents[3]}",
        *(f"-I{p}" for p in incs),
        f"-I{cuda_include()}",
    ]
    problems = []
    for src in [s for s in ext["all_sources"] if s.startswith("csrc/cuda/") and s.endswith(".cpp")]:
        cmd = [os.environ.get("CXX", "c++"), "-fsyntax-only", *flags, src]
        p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        print(f"c++ -fsyntax-only {src}: exit {p.returncode}", flush=True)
        if p.returncode != 0:
            problems.append(f"COMPILE ERROR {src} (host syntax check):\n{p.stderr[-4000:]}")
    return problems


def demangle(names: list[str]) -> list[str]:
    tool = shutil.which("cu++filt") or shutil.which("c++filt")
    if not tool or not names:
        return names
    out = subprocess.run([tool], input="\n".join(names), capture_output=True, text=True)
    lines = out.stdout.splitlines()
    return lines if len(lines) == len(names) else names


def parse_ptxas(log: str, arch: int) -> list[dict[str, Any]]:
    """One entry per kernel ('entry function') in ``nvcc -Xptxas -v`` output."""
    entries: list[dict[str, Any]] = []
    cur: dict[str, Any] | None = None
    for line in log.splitlines():
        m = re.search(r"Compiling entry function '(\w+)' for 'sm_(\d+)a?'", line)
        if m:
            cur = {"mangled": m.group(1), "arch": int(m.group(2)), "regs": 0, "stack": 0,
                   "spill_stores": 0, "spill_loads": 0, "smem": 0}  # fmt: skip
            entries.append(cur)
            continue
        if cur is None:
            continue
        m = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill", line)
        if m:
            cur["stack"], cur["spill_stores"], cur["spill_loads"] = map(int, m.groups())
        m = re.search(r"Used (\d+) registers", line)
        if m:
            cur["regs"] = int(m.group(1))
            s = re.search(r"(\d+) bytes smem", line)
            cur["smem"] = int(s.group(1)) if s else 0
    for e, name in zip(entries, demangle([e["mangled"] for e in entries]), strict=True):
        e["kernel"], e["element"] = _short(name)
    return [e for e in entries if e["arch"] == arch]


def _short(demangled: str) -> tuple[str, str]:
    """``content_address_fwd_kernel<float, float>`` and its first template argument."""
    head = demangled.replace("(anonymous namespace)::", "").split("(")[0]
    m = re.search(r"(\w+)<(.*)>$", head)
    if not m:
        return head.split("::")[-1].replace("void ", ""), "?"
    args = [a.strip() for a in m.group(2).split(",")]
    return f"{m.group(1)}<{', '.join(args)}>", args[0]


def launch_threads(src: str) -> dict[str, int | None]:
    """Threads per block of every ``kernel<...><<<grid, block, ...>>>`` launch in ``src``
    (the largest when a kernel is launched several times; None when not a constant)."""
    consts = {k: int(v) for k, v in re.findall(r"constexpr\s+int\s+(\w+)\s*=\s*(\d+)\s*;", src)}
    dims = {
        name: _eval(f"({'*'.join(a.split(','))})", consts)
        for name, a in re.findall(r"\b(\w+)\(([\w\s,*+/-]+)\)\s*[;,]", src)
        if re.search(rf"dim3\b[^;]*\b{name}\(", src)
    }
    out: dict[str, int | None] = {}
    for kernel, block in re.findall(r"(\w+)(?:<[^<>;]*>)?\s*<<<\s*[^,]+,\s*([^,>]+)\s*[,>]", src):
        block = block.strip()
        n = dims[block] if block in dims else _eval(block, consts)
        prev = out.get(kernel, 0)
        out[kernel] = None if n is None or prev is None else max(prev, n)
    return out


def with_headers(path: Path, seen: set[Path] | None = None) -> str:
    """``path``'s text followed by that of its local headers (``#include "..."``, recursively):
    a launch's block size may be a constant of a shared header (``csrc/cuda/device.cuh``)."""
    seen = set() if seen is None else seen
    seen.add(path.resolve())
    text = path.read_text()
    parts = [text]
    for name in re.findall(r'^#include "([^"]+)"', text, re.M):
        header = (path.parent / name).resolve()
        if header.exists() and header not in seen:
            parts.append(with_headers(header, seen))
    return "\n".join(parts)


def _eval(expr: str, consts: dict[str, int]) -> int | None:
    expr = re.sub(r"\b[A-Za-z_]\w*\b", lambda m: str(consts.get(m.group(0), "?")), expr)
    if not re.fullmatch(r"[\d\s()*+/-]+", expr):
        return None
    return int(eval(expr))  # digits and arithmetic only


def compile_source(src: str, arch: int, flags: list[str], tmp: str) -> tuple[int, str]:
    cmd = [nvcc(), "-c", *flags, "-Xptxas", "-v", "-Werror", "all-warnings",
           f"-gencode=arch=compute_{arch},code=sm_{arch}", src,
           "-o", f"{tmp}/{Path(src).stem}_sm{arch}.o"]  # fmt: skip
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    return p.returncode, p.stdout + p.stderr


def check(r: dict[str, Any]) -> list[str]:
    where = f"{r['kernel']} ({r['source']}) for sm_{r['arch']}"
    problems = []
    if r["spill_stores"] and r["element"] != "double":
        problems.append(f"SPILL {where}: {r['spill_stores']} B spill stores")
    threads = r["threads"]
    if threads is None:
        problems.append(f"UNKNOWN LAUNCH {where}: block size not a constant in the source")
        return problems
    per_warp = -(-r["regs"] * 32 // 256) * 256
    lim = LIMITS.get(r["arch"], LIMITS[80])
    if -(-threads // 32) * per_warp > lim["regs"]:
        problems.append(f"DOES NOT FIT {where}: {r['regs']} registers x {threads} threads")
    if r["smem"] > lim["smem"]:
        problems.append(f"DOES NOT FIT {where}: {r['smem']} B shared memory")
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", type=int, nargs="+", default=[80, 90])
    ap.add_argument("--json", type=Path, help="write every kernel's resources here")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="parallel nvcc runs")
    ap.add_argument("--print-flags", action="store_true", help="print the nvcc flags and exit")
    ap.add_argument(
        "--no-bindings", action="store_true", help="skip the host syntax check of csrc/cuda/*.cpp"
    )
    args = ap.parse_args(argv)
    try:
        nvcc()
        ext = setup_extension()
    except RuntimeError as exc:
        print(f"cuda_resources: {exc}", file=sys.stderr)
        return 1
    flags = torch_nvcc_flags(ext)
    if args.print_flags:
        print(" ".join(flags))
        return 0
    results, problems = [], []
    jobs = [(src, arch) for src in sources(ext) for arch in args.arch]
    print(f"nvcc flags: {' '.join(flags)}", flush=True)
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(args.jobs) as pool:
        logs = pool.map(lambda j: compile_source(*j, flags, tmp), jobs)
        for (src, arch), (rc, log) in zip(jobs, logs, strict=True):
            print(f"nvcc -c {src} (sm_{arch}): exit {rc}", flush=True)
            if rc != 0:
                problems.append(f"COMPILE ERROR {src} for sm_{arch}:\n{log}")
                continue
            threads = launch_threads(with_headers(ROOT / src))
            for r in parse_ptxas(log, arch):
                r.update(source=src, threads=threads.get(r["kernel"].split("<")[0]))
                results.append(r)
                problems += check(r)
        if not args.no_bindings:
            problems += check_bindings(ext, tmp)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1))
    for p in problems:
        print(p, file=sys.stderr)
    print(f"cuda_resources: {len(results)} kernel instantiations, {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
