"""The CUDA whole-sequence op's drivers, binding and step kernels compiled for the CPU
(emulation.py) against the CPU op: forward (saving on and off: outputs, final state, every saved
tensor) and backward (every gradient, unused outputs' gradients None, with and without the
weighting, memory and raw head-parameter histories', each possibly None) over the hypothesis
configurations of tests/model/test_native_sequence.py. Outputs are NaN-poisoned, so an
element the drivers forget to write fails. Run: ``bash .ci/emulate_cuda.sh`` (no GPU needed)."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "model"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import emulation
from test_native_sequence import configs, make_ref, op_params, start_state

emulation.load()
EMU, CPU = torch.ops.ntm_emu, torch.ops.ntm_fast
TOL = {torch.float64: dict(atol=1e-11, rtol=1e-9), torch.float32: dict(atol=2e-5, rtol=2e-4)}


def op_args(c: dict, dtype: torch.dtype) -> list:
    m = make_ref(c, dtype)
    s = start_state(m, c, dtype) or m.initial_state(c["B"])
    d = lambda t: t.detach().contiguous()  # noqa: E731
    g = torch.Generator().manual_seed(c["seed"])
    x = torch.rand(c["T"], c["B"], c["F"], generator=g, dtype=dtype)
    lengths = None if c["lengths"] is None else torch.tensor(c["lengths"])
    return [x, d(s.memory), d(s.read_vectors), d(s.weightings), [d(t) for t in s.controller],
            [d(p) for p in op_params(m)], lengths, c["R"], c["k"], c["mode"] == "uniform",
            c["ctrl"] == "lstm"]  # fmt: skip


# The CPU op saves one tensor more than CUDA after the shared layout: its content dots and
# norms (csrc/sequence_config.h).
CPU_EXTRA_SAVED = 1


def check(c: dict, dtype: torch.dtype, unused: int) -> None:
    a, tol = op_args(c, dtype), TOL[dtype]
    n = 4 + len(a[4])
    for save in (True, False):
        emu, cpu = EMU.sequence_fwd(*a, save), CPU.sequence_fwd(*a, save)
        if save:
            assert len(cpu) == len(emu) + CPU_EXTRA_SAVED, (len(cpu), len(emu))
            cpu = cpu[: len(emu)]
        assert len(emu) == len(cpu) == (len(cpu) if save else n)
        for i, (e, r) in enumerate(zip(emu, cpu, strict=True)):
            torch.testing.assert_close(e, r, **tol, msg=f"save={save}: output {i} of {c}")
    g = torch.Generator().manual_seed(7)
    grads = [None if (unused >> i) & 1 else torch.randn(o.shape, generator=g, dtype=dtype)
             for i, o in enumerate(cpu[:n])]  # fmt: skip
    if (unused >> 6) & 1:  # the histories' gradients (FastNTM's history=True), some None
        T, B, P = a[0].shape[0], a[0].shape[1], a[5][-4].shape[0]
        shapes = [(T, *a[3].shape), (T, *a[1].shape), (T, B, P)]  # weightings, memory, raw
        grads += [None if (unused >> (7 + i)) & 1 else torch.randn(s, generator=g, dtype=dtype)
                  for i, s in enumerate(shapes)]  # fmt: skip
    x, _, _, _, state, params, lengths, R, k, uniform, lstm = a
    results = []
    for op in (EMU, CPU):
        saved = list(op.sequence_fwd(*a, True)[n:])
        results.append(op.sequence_bwd(grads, x, state, params, saved, lengths, R, k, uniform,
                                       lstm))  # fmt: skip
    assert len(results[0]) == len(results[1])
    for i, (e, r) in enumerate(zip(*results, strict=True)):
        torch.testing.assert_close(e, r, **tol, msg=f"gradient {i} of {c}")


FUZZ = settings(deadline=None, suppress_health_check=list(HealthCheck))


@settings(FUZZ, max_examples=150)
@given(c=configs(), unused=st.integers(0, 1023))
def test_float64_matches_the_cpu_op(c, unused):
    check(c, torch.float64, unused)


@settings(FUZZ, max_examples=60)
@given(c=configs(), unused=st.integers(0, 1023))
def test_float32_matches_the_cpu_op(c, unused):
    check(c, torch.float32, unused)


def test_bias_gradients_over_several_row_chunks():
    """T*B = 550 rows: the column sums of the bias gradients add three chunks of 256 rows (the
    last one partial); the hypothesis sizes stay within one."""
    lengths = [(7 * b) % 12 for b in range(50)]
    for ctrl in ("lstm", "feedforward"):
        c = dict(ctrl=ctrl, layers=2, R=1, Wh=1, N=4, k=1, mode="softmax", W=2, C=3, F=2, O=2,
                 T=11, B=50, lengths=lengths, prev=0, seed=1)  # fmt: skip
        check(c, torch.float64, 0)
