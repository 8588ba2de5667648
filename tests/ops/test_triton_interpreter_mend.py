"""The mend of the Triton interpreter's scalar ``__index__`` (kernels/__init__.py): Triton up to
3.6 with NumPy >= 2.4 failed every kernel that loops over a runtime size under
``TRITON_INTERPRET=1`` (triton-lang/triton#9171; found running this suite with torch 2.11 and
triton 3.6, the GPU machine's pair)."""

from __future__ import annotations

import operator
import os
import warnings

import numpy as np
import pytest
import torch

triton = pytest.importorskip("triton", reason="triton is not installed (pip install triton)")
interpreter = pytest.importorskip("triton.runtime.interpreter", reason="no Triton interpreter")
tl = pytest.importorskip("triton.language")

from ntm_fast._kernels import mend_interpreter_scalar_index  # noqa: E402


class _Scope:  # the interpreter's patch scope: records what it set, undone on exit
    def __init__(self) -> None:
        self.changes: list[tuple[object, str, object]] = []

    def set_attr(self, obj, name, value) -> None:
        self.changes.append((obj, name, getattr(obj, name, None)))
        setattr(obj, name, value)


class _Handle:
    def __init__(self, data: np.ndarray) -> None:
        self.data = data


def _as_triton_3_6(tensor, scope) -> None:  # Triton 3.6's own line, the one that fails
    scope.set_attr(tensor, "__index__", lambda self: int(self.handle.data))


def test_importing_the_kernels_mends_the_interpreter():
    mended = interpreter._patch_lang_tensor
    assert mended._ntm_fast_mended
    assert mend_interpreter_scalar_index()
    assert interpreter._patch_lang_tensor is mended  # not wrapped twice


def test_a_one_element_scalar_converts_after_the_mend(monkeypatch):
    class Tensor:
        def __init__(self, data: np.ndarray) -> None:
            self.handle = _Handle(data)

    monkeypatch.setattr(interpreter, "_patch_lang_tensor", _as_triton_3_6)
    unmended = _Scope()
    interpreter._patch_lang_tensor(Tensor, unmended)
    with warnings.catch_warnings():  # NumPy < 2.4 warns where 2.4 raises: either fails here
        warnings.simplefilter("error")
        with pytest.raises((TypeError, DeprecationWarning)):
            operator.index(Tensor(np.array([7])))

        assert mend_interpreter_scalar_index()
        scope = _Scope()
        interpreter._patch_lang_tensor(Tensor, scope)
        assert operator.index(Tensor(np.array([7]))) == 7
        assert range(0, Tensor(np.array([5], dtype=np.int32)), 2) == range(0, 5, 2)
    assert [name for _, name, _ in scope.changes].count("__index__") == 2  # both undone on exit


@pytest.mark.skipif(
    os.environ.get("TRITON_INTERPRET") != "1", reason="checks the interpreter (TRITON_INTERPRET=1)"
)
def test_a_kernel_looping_over_a_runtime_size_runs_in_the_interpreter():
    @triton.jit
    def count_tiles(p_out, n, BLOCK: tl.constexpr):
        acc = tl.zeros([BLOCK], dtype=tl.int32)
        for i0 in range(0, n, BLOCK):
            acc += (i0 + tl.arange(0, BLOCK) < n).to(tl.int32)
        tl.store(p_out, tl.sum(acc, 0))

    out = torch.zeros(1, dtype=torch.int32)
    count_tiles[(1,)](out, 37, BLOCK=8)
    assert out.item() == 37
