"""Build script: the pure-Python package, with `kernels/` mapped to `ntm_fast._kernels`,
plus the native extension `ntm_fast._C` built from `csrc/` by `_native_extensions()`.

Native build rules (no network access, no hardware probing):

* ``NTM_FAST_NO_NATIVE=1`` skips the extension: a pure Python (+ Triton) install.
* torch must be importable at build time, so build with
  ``pip install --no-build-isolation -e .``; without torch no extension is built (a message
  says so) and the package still installs and imports.
* A CPU-only torch builds a ``CppExtension`` from the C++ sources (the ``.cu`` files are left
  out). A CUDA torch (``torch.version.cuda`` set) with a CUDA toolkit found (``CUDA_HOME``; see
  ``_cuda_toolkit_root``) builds a
  ``CUDAExtension`` with the CUDA kernels too, for the architectures in
  ``TORCH_CUDA_ARCH_LIST`` (torch's own handling of that variable); when it is unset we set
  ``DEFAULT_CUDA_ARCH_LIST`` (Ampere, Ada, Hopper, plus PTX for newer GPUs).
* ``MAX_JOBS`` limits parallel compile jobs (torch's BuildExtension, ninja when present).
"""

import os
import sys
from pathlib import Path

from setuptools import setup

ROOT = Path(__file__).parent
CSRC = ROOT / "csrc"
DEFAULT_CUDA_ARCH_LIST = "8.0;8.6;8.9;9.0+PTX"


def _log(msg):
    print(f"ntm_fast setup: {msg}", file=sys.stderr)


def _cuda_toolkit_root(guess, fallbacks=None):
    """(root, None) for the CUDA toolkit to build with, or (None, why not). torch's guess is
    $CUDA_HOME or $CUDA_PATH when set (kept as given), else the directory above the `nvcc` on
    PATH - wrong when that nvcc is a wrapper script outside the toolkit (/usr/local/bin/nvcc
    gives /usr/local, and the build stops at "cuda_runtime.h: No such file"). A guessed root
    without the headers is replaced by the first complete one of ``fallbacks`` (default:
    /usr/local/cuda, then /usr/local/cuda-X.Y, newest first)."""
    import glob
    import re

    def complete(root):
        return (Path(root) / "include" / "cuda_runtime.h").is_file() and any(
            (Path(root) / "bin" / nvcc).is_file() for nvcc in ("nvcc", "nvcc.exe")
        )

    if guess is None:
        return None, "nvcc was not found (set CUDA_HOME to the CUDA toolkit's root)"
    if complete(guess) or os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH"):
        return guess, None
    if fallbacks is None:
        version = lambda p: [int(n) for n in re.findall(r"\d+", Path(p).name)]  # noqa: E731
        others = sorted(glob.glob("/usr/local/cuda-*"), key=version, reverse=True)
        fallbacks = ["/usr/local/cuda", *others]
    for root in fallbacks:
        if complete(root):
            _log(f"CUDA_HOME guessed as {guess} (no include/cuda_runtime.h there): using {root}")
            return root, None
    tried = ", ".join(map(str, fallbacks)) or "no other root"
    return None, (
        f"nvcc was found but neither {guess}/include nor {tried} has cuda_runtime.h "
        "(set CUDA_HOME to the CUDA toolkit's root)"
    )


def _native_extensions():
    if os.environ.get("NTM_FAST_NO_NATIVE", "0") == "1":
        _log("NTM_FAST_NO_NATIVE=1: skipping the native extension ntm_fast._C")
        return [], {}
    try:
        import torch
        from torch.utils import cpp_extension
    except ImportError as exc:
        _log(
            f"torch is not importable ({exc}); building WITHOUT the native extension "
            "ntm_fast._C. Install torch, then `pip install --no-build-isolation -e .`"
        )
        return [], {}

    rel = lambda p: os.path.relpath(p, ROOT)  # noqa: E731  (setuptools wants relative paths)
    # Every C++ file under csrc/cpu/ (one per op, named by its stem) is part of the build.
    cpu_files = sorted((CSRC / "cpu").glob("*.cpp"))
    cpp_sources = [rel(CSRC / "registration.cpp"), *(rel(p) for p in cpu_files)]
    cxx_flags = ["-O3", "-fno-math-errno"]  # the C++ standard is the one torch picks
    cuda_home, missing = _cuda_toolkit_root(cpp_extension.CUDA_HOME)
    with_cuda = torch.version.cuda is not None and cuda_home is not None
    if not with_cuda:
        why = "torch is a CPU-only build" if torch.version.cuda is None else missing
        _log(f"{why}: building the CPU-only extension ntm_fast._C (no CUDA kernels)")
        ext = cpp_extension.CppExtension(
            "ntm_fast._C",
            cpp_sources,
            extra_compile_args={"cxx": cxx_flags},
        )
    else:
        cpp_extension.CUDA_HOME = cuda_home  # where torch's build finds nvcc and the headers
        os.environ.setdefault("TORCH_CUDA_ARCH_LIST", DEFAULT_CUDA_ARCH_LIST)
        _log(
            f"building ntm_fast._C with CUDA {torch.version.cuda} for "
            f"TORCH_CUDA_ARCH_LIST={os.environ['TORCH_CUDA_ARCH_LIST']}"
        )
        # Every C++ binding and CUDA source under csrc/cuda/ (per-op and whole-sequence ops).
        cuda_files = sorted((CSRC / "cuda").glob("*.cpp")) + sorted((CSRC / "cuda").glob("*.cu"))
        cuda_sources = [rel(p) for p in cuda_files]
        ext = cpp_extension.CUDAExtension(
            "ntm_fast._C",
            cpp_sources + cuda_sources,
            define_macros=[("NTM_FAST_WITH_CUDA", "1")],
            extra_compile_args={
                "cxx": cxx_flags,
                "nvcc": ["-O3", "--expt-relaxed-constexpr"],
            },
        )
    build_ext = cpp_extension.BuildExtension.with_options(no_python_abi_suffix=False)
    return [ext], {"build_ext": build_ext}


ext_modules, cmdclass = _native_extensions()

setup(
    packages=["ntm_fast", "ntm_fast._kernels", "ntm_fast.train", "ntm_fast.train.tasks"],
    package_dir={"ntm_fast": "ntm_fast", "ntm_fast._kernels": "kernels"},
    ext_modules=ext_modules,
    cmdclass=cmdclass,
)
