"""Build the CUDA whole-sequence op's host code and step kernels for the CPU, as the op
``torch.ops.ntm_emu.sequence_fwd`` / ``sequence_bwd``, to check them without a GPU.

What is compiled unchanged: the drivers (``csrc/cuda/sequence_fwd.cu``, ``sequence_bwd.cu``),
the torch binding (``csrc/cuda/sequence_binding.cpp``: checks, outputs, workspace, the
``seq_gemm`` views through ATen's matmul) and the step kernels
(``csrc/cuda/sequence_kernels.cu``), with three mechanical edits: kernel launches
``k<<<grid, block, 0, s>>>(args)`` become calls ``k(args)`` run by one thread
(``cuda_runtime.h`` here), the c10/cuda includes become ``c10_cuda.h`` here (CPU device, null
stream), and the registration goes to the CPU key of a namespace of its own (``ntm_emu``,
whose schemas are ``csrc/registration.cpp``'s, with NaN-poisoned outputs always on). The
memory-op launchers are ``launchers_cpu.cpp`` (the ntm_fast CPU ops), so this checks
everything of the CUDA op but the memory kernels (``csrc/cuda/<op>.cu``) and the CUDA runtime.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
OUT = ROOT / "build" / "cuda-emulation"


def _edit(path: Path, *subs: tuple[str, str]) -> None:
    text = path.read_text()
    for pattern, repl in subs:
        text, n = re.subn(pattern, repl, text, flags=re.S)
        if n == 0:
            raise RuntimeError(f"{path.name}: {pattern!r} not found (source changed?)")
    path.write_text(text)


def prepare(out: Path = OUT) -> list[Path]:
    """A copy of csrc/ under ``out`` with the edits above; returns the sources to compile."""
    src = out / "csrc"
    shutil.rmtree(src, ignore_errors=True)
    shutil.copytree(ROOT / "csrc", src)
    _edit(src / "registration.cpp", (r"g_poison\{false\}", "g_poison{true}"),
          (r"TORCH_LIBRARY\(ntm_fast,", "TORCH_LIBRARY(ntm_emu,"),
          (r"PyInit__C", "PyInit_ntm_emu_unused"))  # fmt: skip
    cuda = src / "cuda"
    _edit(cuda / "sequence_binding.cpp",
          (r"(#include <c10/cuda/\w+\.h>\n)+", '#include "c10_cuda.h"\n'),
          (r"c10::kCUDA", "c10::kCPU"), (r"x\.is_cuda\(\)", "x.is_cpu()"),
          (r"TORCH_LIBRARY_IMPL\(ntm_fast, CUDA,", "TORCH_LIBRARY_IMPL(ntm_emu, CPU,"))  # fmt: skip
    kernels = cuda / "sequence_kernels_cpu.cpp"
    kernels.write_text((cuda / "sequence_kernels.cu").read_text())
    _edit(kernels, (r"<<<.*?>>>", ""))
    for name in ("sequence_fwd", "sequence_bwd"):
        shutil.copy(cuda / f"{name}.cu", cuda / f"{name}_cpu.cpp")
    shutil.copy(HERE / "launchers_cpu.cpp", src / "launchers_cpu.cpp")
    names = ["registration.cpp", "launchers_cpu.cpp", "cuda/sequence_binding.cpp",
             "cuda/sequence_kernels_cpu.cpp", "cuda/sequence_fwd_cpu.cpp",
             "cuda/sequence_bwd_cpu.cpp"]  # fmt: skip
    return [src / n for n in names]


def load(out: Path = OUT) -> None:
    """Prepare, compile (torch's JIT extension build) and load: registers torch.ops.ntm_emu."""
    from torch.utils import cpp_extension

    import ntm_fast  # noqa: F401  (registers the ntm_fast CPU ops launchers_cpu.cpp calls)

    sources = prepare(out)
    (out / "obj").mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("MAX_JOBS", "2")
    cpp_extension.load(
        name="ntm_emu",
        sources=[str(s) for s in sources],
        extra_include_paths=[str(HERE), str(out / "csrc")],
        extra_cflags=["-O1", "-Wall", "-Wno-unused-function"],
        is_python_module=False,
        build_directory=str(out / "obj"),
    )
