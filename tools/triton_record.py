"""Record every Triton kernel launch of ``ntm_fast._kernels``: which kernel, the type of each
argument (tensor dtype and 16-byte alignment, integer values, constexprs) and the launch
options (``num_warps``, ...), as JSON lines; ``tools/triton_aot.py`` compiles what was recorded
for real GPU targets.

The hook wraps ``run`` of every ``@triton.jit`` object found in the kernel modules, so a new
kernel or launcher is recorded without being listed anywhere. It works in both modes: under
``TRITON_INTERPRET=1`` (CI, CPU tensors) and compiled (a GPU machine).

As a pytest plugin (``-p tools.triton_record``, or ``PYTEST_PLUGINS=tools.triton_record``) it
records into the folder named by ``NTM_FAST_TRITON_RECORD`` (one file per process); without
that variable it does nothing. ``install(dry=True)`` records without running the kernel (for
meta-device launches of shapes too large for the interpreter, see ``tools/triton_aot.py``).
"""

from __future__ import annotations

import functools
import importlib
import inspect
import json
import os
import pkgutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ENV = "NTM_FAST_TRITON_RECORD"
PACKAGE = "ntm_fast._kernels"

_installed: dict[str, Any] = {}
_seen: set[str] = set()
_out: Path | None = None
_dry = False


def kernel_objects() -> Iterator[tuple[str, Any]]:
    """``("module:name", kernel)`` for every ``@triton.jit`` object defined in the kernels."""
    from triton.runtime.jit import KernelInterface

    pkg = importlib.import_module(PACKAGE)
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        mod = importlib.import_module(f"{PACKAGE}.{info.name}")
        for name, obj in sorted(vars(mod).items()):
            if isinstance(obj, KernelInterface) and obj.fn.__module__ == mod.__name__:
                yield f"{mod.__name__}:{name}", obj


def encode(value: Any) -> Any:
    """A JSON form of one launch argument that keeps what Triton specialises on."""
    import torch
    import triton.language as tl

    if value is None or isinstance(value, str):
        return value
    if isinstance(value, torch.Tensor):
        dtype = str(value.dtype).removeprefix("torch.")
        return {"tensor": dtype, "align16": value.data_ptr() % 16 == 0}
    if isinstance(value, bool):
        return {"bool": value}
    if isinstance(value, int):
        return {"int": value}
    if isinstance(value, float):
        return {"float": value}
    if isinstance(value, tl.dtype):
        return {"tl_dtype": value.name}
    if isinstance(value, tl.constexpr):
        return encode(value.value)
    raise TypeError(f"cannot record a launch argument of type {type(value).__name__}")


def describe(key: str, kernel: Any, args: tuple, kwargs: dict) -> dict[str, Any]:
    """The record of one launch: kernel key, arguments by name, launch options."""
    names = list(inspect.signature(kernel.fn).parameters)
    bound = dict(zip(names, args, strict=False))
    options = {}
    for k, v in kwargs.items():
        if k in names:
            bound[k] = v
        elif k not in ("debug",):
            options[k] = v
    missing = [n for n in names if n not in bound]
    if missing:
        raise TypeError(f"{key}: launch without argument(s) {missing}")
    return {
        "kernel": key,
        "args": {n: encode(bound[n]) for n in names},
        "options": {k: encode(v) for k, v in sorted(options.items())},
    }


def _write(record: dict[str, Any]) -> None:
    line = json.dumps(record, sort_keys=True)
    if line in _seen or _out is None:
        return
    _seen.add(line)
    # the test that first made this launch (pytest sets PYTEST_CURRENT_TEST), for the log
    test = os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" (", 1)[0]
    with open(_out / f"launches-{os.getpid()}.jsonl", "a") as f:
        f.write(json.dumps({**record, "test": test}, sort_keys=True) + "\n")


def _wrap(key: str, kernel: Any, run: Callable) -> Callable:
    @functools.wraps(run)
    def recording_run(*args, grid, warmup, **kwargs):
        _write(describe(key, kernel, args, kwargs))
        if _dry:
            return None
        return run(*args, grid=grid, warmup=warmup, **kwargs)

    return recording_run


def install(out_dir: str | os.PathLike, *, dry: bool = False) -> int:
    """Record launches into ``out_dir`` from now on; returns the number of kernels hooked.
    With ``dry`` the kernels are not run (their outputs stay as allocated)."""
    global _out, _dry
    if _out != Path(out_dir):
        _seen.clear()
    _out = Path(out_dir)
    _out.mkdir(parents=True, exist_ok=True)
    _dry = dry
    for key, kernel in kernel_objects():
        if key not in _installed:
            _installed[key] = kernel.run
            kernel.run = _wrap(key, kernel, kernel.run)
    return len(_installed)


def uninstall() -> None:
    """Stop recording and restore the kernels' own ``run``."""
    global _out, _dry
    for key, kernel in kernel_objects():
        if key in _installed:
            kernel.run = _installed.pop(key)
    _out, _dry = None, False


def load(paths: list[Path]) -> list[dict[str, Any]]:
    """All distinct records in the given ``.jsonl`` files or folders of them (the first
    test to make each launch kept in ``"test"``, the names of the paths that hold it in
    ``"sources"``)."""
    out: dict[str, dict[str, Any]] = {}
    for p in paths:
        files = sorted(p.glob("*.jsonl")) if p.is_dir() else [p]
        for f in files:
            for line in f.read_text().splitlines():
                if line.strip():
                    rec = json.loads(line)
                    test = rec.pop("test", "")
                    kept = out.setdefault(json.dumps(rec, sort_keys=True), {**rec, "test": test})
                    kept.setdefault("sources", [])
                    if p.name not in kept["sources"]:
                        kept["sources"].append(p.name)
    return list(out.values())


# --- dry sweep on the meta device ---------------------------------------------------------------


def _meta(letters: tuple[str, ...], size: dict[str, int], dtype: Any) -> Any:
    import torch

    return torch.empty([size[c] for c in letters], dtype=dtype, device="meta")


def sweep(cases: list[tuple[str, tuple[int, ...], Any]], out_dir: str | os.PathLike) -> int:
    """Run each op's forward and backward launcher on meta tensors of the shapes ``(op,
    (B, H, N, W, S), torch dtype)`` with the kernels hooked in dry mode: the launchers choose
    blocks and warps as for real data and every launch is recorded, nothing is computed.
    Returns the number of cases."""
    from ntm_fast.op_table import ARG_SHAPES, OPS

    global _out, _dry
    before = (_out, _dry)  # a recording already running (the pytest plugin) goes on after
    install(out_dir, dry=True)
    try:
        for op, dims, dtype in cases:
            mod = importlib.import_module(f"{PACKAGE}.{op}")  # <op>_fwd(*args), _bwd(grad, *args)
            size = dict(zip("BHNWS", dims, strict=True))
            inputs = [_meta(ARG_SHAPES[a], size, dtype) for a in OPS[op].args]
            getattr(mod, f"{op}_fwd")(*inputs)
            getattr(mod, f"{op}_bwd")(_meta(OPS[op].out, size, dtype), *inputs)
    finally:
        if before[0] is None:
            uninstall()
        else:
            _seen.clear()
            _out, _dry = before
    return len(cases)


# --- pytest plugin ----------------------------------------------------------------------------


def pytest_sessionstart(session: Any) -> None:
    """Hook the kernels once the test conftest has chosen interpreted or compiled Triton."""
    out = os.environ.get(ENV)
    if out:
        install(out)


# --- shapes of tests and benchmarks too large for the interpreter ------------------------------


class _CaseCollector:
    """pytest plugin: ``(op, dims, dtype)`` of every collected item parametrised with an op
    and a shape (``dims`` or ``cfg``), for the Triton backend on CUDA where those are params."""

    def __init__(self) -> None:
        self.cases: list[tuple[str, tuple[int, ...], Any]] = []

    def pytest_collection_finish(self, session: Any) -> None:  # after -m/-k deselection
        import torch

        from ntm_fast.op_table import OP_NAMES

        for item in session.items:
            p = getattr(item, "callspec", None)
            p = p.params if p else {}
            dims = p.get("dims", p.get("cfg"))
            if p.get("op") not in OP_NAMES or not isinstance(dims, tuple) or len(dims) != 5:
                continue
            if p.get("backend", "triton") != "triton" or str(p.get("device", "cuda")) != "cuda":
                continue
            self.cases.append((p["op"], dims, p.get("dtype", torch.float32)))


def collect_cases(pytest_args: list[str]) -> list[tuple[str, tuple[int, ...], Any]]:
    """The op cases that ``pytest_args`` select (collected, not run)."""
    import pytest

    collector = _CaseCollector()
    args = ["-o", "addopts=", "--collect-only", "-qq", "-p", "no:cacheprovider", *pytest_args]
    rc = pytest.main(args, plugins=[collector])
    if rc not in (0, 5):
        raise RuntimeError(f"collecting {pytest_args} failed (pytest exit {rc})")
    return list(dict.fromkeys(collector.cases))


#: What the meta sweep covers: the slow tests (GPU-sized, not run in CI) and the benchmarks
#: (the Triton backend is skipped on the CPU).
SWEEP_SOURCES = [["-m", "slow", "tests"], ["bench/test_ops.py"]]

#: A fixed grid, every op in every data type: (B, H, N, W, S) over the launchers' regimes (one
#: block and tiled N, narrow and wide W, H = 1 and integers Triton specialises as divisible by
#: 16 or not). docs/gpu-resources.md is rendered from the sweep alone, so it is the same on
#: every run; the test suite's launches (hypothesis draws vary) are compiled and checked too.
GRID_SHAPES = [
    (1, 1, 8, 4, 3), (2, 2, 100, 20, 3), (32, 2, 128, 20, 3), (4, 1, 1024, 64, 3),
    (2, 4, 4096, 8, 5), (2, 1, 64, 256, 3), (2, 1, 1000, 100, 3),
]  # fmt: skip
GRID_DTYPES = ("float64", "float32", "float16", "bfloat16")


def grid_cases() -> list[tuple[str, tuple[int, ...], Any]]:
    """``GRID_SHAPES`` x ``GRID_DTYPES`` x every op of the op table."""
    import torch

    from ntm_fast.op_table import OP_NAMES

    return [
        (op, dims, getattr(torch, dt))
        for op in OP_NAMES
        for dt in GRID_DTYPES
        for dims in GRID_SHAPES
    ]


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(
        description="Record Triton launches of shapes too large for "
        "the interpreter (slow tests, benchmarks) on the meta device."
    )
    ap.add_argument("out_dir", type=Path)
    a = ap.parse_args(argv)
    cases = [c for src in SWEEP_SOURCES for c in collect_cases(src)]
    cases = list(dict.fromkeys([*cases, *grid_cases()]))
    sweep(cases, a.out_dir)
    print(f"triton_record: {len(cases)} op cases (slow tests, benchmarks, grid) swept into "
          f"{a.out_dir}")  # fmt: skip
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
