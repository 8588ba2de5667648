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
TOL64 = dict(atol=1e-11, rtol=1e-9)  # float64: the two orders of summation agree to rounding
TOL32 = dict(atol=2e-5, rtol=2e-4)  # float32, well-conditioned draws: ~100 ulps of O(1) values


def double(a):
    """``a`` (an op argument, or a list of them) with its floating-point tensors in float64."""
    if isinstance(a, list):
        return [double(t) for t in a]
    return a.double() if isinstance(a, torch.Tensor) and a.is_floating_point() else a


def assert_matches(emu, cpu, exact, msg: str) -> None:
    """float64 (``exact`` None): to rounding. float32: within TOL32 of the CPU op or, where
    that fails, at most 4x the CPU op's own error against ``exact`` (the float64 CPU op on the
    same inputs; the two sum in different orders) plus 8 ulps of the largest element: on
    ill-conditioned draws both float32 ops are 1e-4 off (e.g. W = 1, a cosine similarity of
    one-element vectors), beyond any fixed tolerance that would still catch a bug."""
    if emu is None or cpu is None:
        assert emu is None and cpu is None, msg
        return
    if exact is None:
        torch.testing.assert_close(emu, cpu, **TOL64, msg=msg)
        return
    assert emu.shape == cpu.shape == exact.shape and emu.dtype == cpu.dtype, msg
    if not torch.allclose(emu, cpu, **TOL32):
        err = (emu.double() - exact).abs().max().item() if emu.numel() else 0.0
        own = (cpu.double() - exact).abs().max().item() if emu.numel() else 0.0
        ulps = 8 * torch.finfo(emu.dtype).eps * (exact.abs().max().item() if emu.numel() else 0)
        assert err <= 4 * own + ulps, f"{msg}: error {err:.3g} against the CPU op's {own:.3g}"


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
    a = op_args(c, dtype)
    a64 = double(a) if dtype != torch.float64 else None  # the exact answer's arguments
    n = 4 + len(a[4])
    for save in (True, False):
        emu, cpu = EMU.sequence_fwd(*a, save), CPU.sequence_fwd(*a, save)
        exact = CPU.sequence_fwd(*a64, save) if a64 else [None] * len(cpu)
        if save:
            assert len(cpu) == len(emu) + CPU_EXTRA_SAVED, (len(cpu), len(emu))
            cpu, exact = cpu[: len(emu)], exact[: len(emu)]
        assert len(emu) == len(cpu) == (len(cpu) if save else n)
        for i, (e, r, t) in enumerate(zip(emu, cpu, exact, strict=True)):
            assert_matches(e, r, t, msg=f"save={save}: output {i} of {c}")
    g = torch.Generator().manual_seed(7)
    grads = [None if (unused >> i) & 1 else torch.randn(o.shape, generator=g, dtype=dtype)
             for i, o in enumerate(cpu[:n])]  # fmt: skip
    if (unused >> 6) & 1:  # the histories' gradients (FastNTM's history=True), some None
        T, B, P = a[0].shape[0], a[0].shape[1], a[5][-4].shape[0]
        shapes = [(T, *a[3].shape), (T, *a[1].shape), (T, B, P)]  # weightings, memory, raw
        grads += [None if (unused >> (7 + i)) & 1 else torch.randn(s, generator=g, dtype=dtype)
                  for i, s in enumerate(shapes)]  # fmt: skip
    results = []
    for op, args, g_out in ((EMU, a, grads), (CPU, a, grads), (CPU, a64, double(grads))):
        if args is None:
            results.append([None] * len(results[0]))
            continue
        x, _, _, _, state, params, lengths, R, k, uniform, lstm = args
        saved = list(op.sequence_fwd(*args, True)[n:])
        results.append(op.sequence_bwd(g_out, x, state, params, saved, lengths, R, k, uniform,
                                       lstm))  # fmt: skip
    assert len(results[0]) == len(results[1]) == len(results[2])
    for i, (e, r, t) in enumerate(zip(*results, strict=True)):
        assert_matches(e, r, t, msg=f"gradient {i} of {c}")


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
