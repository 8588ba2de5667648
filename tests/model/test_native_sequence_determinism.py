"""The whole-sequence native op is deterministic on the CPU: the same inputs twice give
bit-identical outputs and gradients, and so do one and two threads."""

from __future__ import annotations

import pytest
import torch
from test_native_sequence import flat, make_ref, one_thread, outputs_and_grads

from ntm_fast import FastNTM

one_thread = one_thread  # autouse: see test_native_sequence.py


def _det_run(dtype, B=3, N=8, W=4, C=6, T=5):
    c = dict(ctrl="lstm", layers=2, R=2, Wh=2, k=1, mode="softmax", N=N, W=W, C=C, F=3, O=2,
             seed=11)  # fmt: skip
    fast = FastNTM.from_reference(make_ref(c, dtype), backend="native")
    g = torch.Generator().manual_seed(2)
    x = torch.rand(T, B, 3, generator=g, dtype=dtype).requires_grad_()
    lengths = torch.randint(0, T + 1, (B,), generator=g)
    logits, state = fast(x, lengths=lengths)
    out, grads, _ = outputs_and_grads(flat(logits, state), [x, *fast.parameters()])
    return out + grads


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_same_inputs_twice_bit_identical(dtype):
    first, second = _det_run(dtype), _det_run(dtype)
    for a, b in zip(first, second, strict=True):
        assert torch.isfinite(a).all() and torch.equal(a, b)


# Every parallel_for of the op splits over 2 threads (grain 2^15); BLAS products of 768 rows.
BIG = dict(B=64, N=128, W=20, C=32, T=12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_one_vs_two_threads_bit_identical(dtype):
    """MKL's gemm and the op's parallel_for split work by thread count; no bit may change
    (observed identical up to B=256, C=512, T=24 on MKL 2024.2)."""
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        two, again = _det_run(dtype, **BIG), _det_run(dtype, **BIG)
        torch.set_num_threads(1)
        one = _det_run(dtype, **BIG)
    finally:
        torch.set_num_threads(threads)
    for i, (a, b, c) in enumerate(zip(two, again, one, strict=True)):
        assert torch.equal(a, b), f"output/grad {i}: two runs on 2 threads differ"
        assert torch.equal(a, c), f"output/grad {i}: 2 vs 1 threads: {(a - c).abs().max():.3g}"
