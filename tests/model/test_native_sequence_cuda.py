"""The CUDA whole-sequence op (``sequence_fwd``/``sequence_bwd`` for the CUDA key,
``csrc/cuda/sequence_*``) - FastNTM's native path on CUDA - against ReferenceNTM on the same
device: the hypothesis configurations of test_native_sequence.py (controllers, layers, heads,
shifts, T, B, N, W, lengths, batch_first, start state) with their check of outputs, final state
and all gradients (tolerances.py: SEQUENCE); float64 gradcheck of the op; CUDA-graph capture and
replay of forward and backward; lengths (edge values, saving off); device errors.
Run on a GPU machine by .ci/gpu_proof.sh (tests/gpu_tests.py, stage proof).
"""

from __future__ import annotations

import pytest
import torch
from devices import CUDA
from hypothesis import given
from test_native_sequence import (
    FUZZ,
    GRADCHECK_CASES,
    check_against_reference,
    configs,
    flat,
    gradcheck_case,
    make_ref,
    op_params,
    outputs_and_grads,
)
from tolerances import SEQUENCE, assert_close_allowing

from ntm_fast import FastNTM, native_backend, native_sequence

CUDA_OK = CUDA and native_sequence.available(torch.device("cuda"))
REASON = (
    "needs a CUDA device and the extension's CUDA whole-sequence kernels: "
    f"{native_backend.unavailable_reason(torch.device('cuda')) or 'not registered for CUDA'}"
)
OP = torch.ops.ntm_fast
DEV = "cuda"


@pytest.mark.skipif(not CUDA_OK, reason=REASON)
@FUZZ
@given(c=configs())
def test_matches_reference_float64_on_cuda(c):
    check_against_reference(c, torch.float64, DEV)


@pytest.mark.skipif(not CUDA_OK, reason=REASON)
@FUZZ
@given(c=configs())
def test_matches_reference_float32_on_cuda(c):
    check_against_reference(c, torch.float32, DEV)


@pytest.mark.skipif(not CUDA_OK, reason=REASON)
@pytest.mark.parametrize("case", GRADCHECK_CASES, ids=lambda c: "-".join(map(str, c.values())))
def test_gradcheck_on_cuda(case):
    gradcheck_case(case, DEV)


def fwd_args(ctrl: str, dtype: torch.dtype, lengths: list[int] | None, T: int = 6, B: int = 4):
    """Valid sequence_fwd arguments on CUDA: R = 2 read heads, 1 write head, k = 1."""
    c = dict(ctrl=ctrl, layers=2, R=2, Wh=1, k=1, mode="softmax", N=8, W=4, C=6, F=3, O=2,
             seed=4)  # fmt: skip
    m = make_ref(c, dtype).to(DEV)
    s = m.initial_state(B)
    d = lambda t: t.detach().contiguous()  # noqa: E731
    g = torch.Generator().manual_seed(5)
    x = torch.rand(T, B, 3, generator=g, dtype=dtype).to(DEV)
    len_t = None if lengths is None else torch.tensor(lengths, device=DEV)
    return [x, d(s.memory), d(s.read_vectors), d(s.weightings), [d(t) for t in s.controller],
            [d(p) for p in op_params(m)], len_t, 2, 1, False, ctrl == "lstm", True]  # fmt: skip


def run_op(args: list, upstream: list[torch.Tensor] | None = None):
    """sequence_fwd then sequence_bwd with `upstream` (random when None)."""
    out = OP.sequence_fwd(*args)
    n = 4 + len(args[4])
    if upstream is None:
        g = torch.Generator().manual_seed(6)
        upstream = [torch.randn(o.shape, generator=g, dtype=o.dtype).to(DEV) for o in out[:n]]
    x, _, _, _, state, params, lengths, R, k, uniform, lstm, _ = args
    grads = OP.sequence_bwd(upstream, x, state, params, list(out[n:]), lengths, R, k, uniform,
                            lstm)  # fmt: skip
    return list(out[:n]), list(grads), upstream


@pytest.mark.skipif(not CUDA_OK, reason=REASON)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("ctrl", ["lstm", "feedforward"])
def test_cuda_graph_capture_replays_forward_and_backward(ctrl, dtype):
    """Both ops captured in one CUDA graph (the call never synchronises or allocates in its
    loop): a replay gives the eager results, and a replay after new inputs are copied into the
    captured ones gives the eager results for those inputs."""
    args = fwd_args(ctrl, dtype, [6, 0, 3, 5])
    eager_out, eager_grads, up = run_op(args)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up off the capture, as torch.cuda.graphs recommends
        run_op(args, up)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        g_out, g_grads, _ = run_op(args, up)
    tol = dict(atol=0, rtol=1e-12 if dtype == torch.float64 else 1e-6)
    graph.replay()
    torch.cuda.synchronize()
    for i, (a, e) in enumerate(zip(g_out + g_grads, eager_out + eager_grads, strict=True)):
        torch.testing.assert_close(a, e, **tol, msg=f"replay: output/gradient {i}")
    x2 = torch.rand_like(args[0])
    args2 = [x2, *args[1:]]
    e2_out, e2_grads, _ = run_op(args2, up)
    args[0].copy_(x2)
    graph.replay()
    torch.cuda.synchronize()
    for i, (a, e) in enumerate(zip(g_out + g_grads, e2_out + e2_grads, strict=True)):
        torch.testing.assert_close(a, e, **tol, msg=f"replay on new x: output/gradient {i}")
    assert not torch.equal(e2_out[0], eager_out[0]), "the new input changed the logits"


@pytest.mark.skipif(not CUDA_OK, reason=REASON)
@pytest.mark.parametrize("ctrl", ["lstm", "feedforward"])
def test_lengths_out_of_range_act_as_their_clamp(ctrl):
    """On CUDA the op does not read lengths back (no host sync): -1 acts as 0, T + 3 as T."""
    ref_out, ref_grads, up = run_op(fwd_args(ctrl, torch.float64, [0, 6, 2, 6]))
    out, grads, _ = run_op(fwd_args(ctrl, torch.float64, [-1, 9, 2, 6]), up)
    for a, e in zip(out + grads, ref_out + ref_grads, strict=True):
        assert torch.isfinite(a).all() and torch.equal(a, e)


@pytest.mark.skipif(not CUDA_OK, reason=REASON)
@pytest.mark.parametrize("ctrl", ["lstm", "feedforward"])
def test_lengths_and_no_grad_match_reference(ctrl):
    """Lengths 0, T and in between through FastNTM on CUDA, with gradients and under no_grad
    (save=False: the op keeps two steps of history), against ReferenceNTM."""
    c = dict(ctrl=ctrl, layers=2, R=2, Wh=2, k=1, mode="uniform", N=8, W=4, C=6, F=3, O=2,
             seed=9)  # fmt: skip
    ref = make_ref(c).to(DEV)
    fast = FastNTM.from_reference(ref, backend="native")
    x = torch.rand(7, 5, 3, dtype=torch.float64, device=DEV, requires_grad=True)
    lengths = torch.tensor([7, 0, 3, 1, 6], device=DEV)
    logits, state = fast(x, lengths=lengths)
    assert logits.grad_fn.name() == "NativeSequenceBackward", "took the whole-sequence op"
    f_out, f_grads, up = outputs_and_grads(flat(logits, state), [x, *fast.parameters()])
    r_out, r_grads, _ = outputs_and_grads(
        flat(*ref(x, lengths=lengths)), [x, *ref.parameters()], up
    )
    tol = SEQUENCE[torch.float64]
    for i, (a, e) in enumerate(zip(f_out, r_out, strict=True)):
        assert_close_allowing(a, e, tol["atol"], tol["rtol"], f"output {i}")
    for i, (a, e) in enumerate(zip(f_grads, r_grads, strict=True)):
        assert_close_allowing(a, e, tol["g_atol"], tol["g_rtol"], f"gradient {i}")
    with torch.no_grad():
        for i, (a, e) in enumerate(zip(flat(*fast(x, lengths=lengths)), r_out, strict=True)):
            assert_close_allowing(a, e, tol["atol"], tol["rtol"], f"no_grad output {i}")


@pytest.mark.skipif(not CUDA_OK, reason=REASON)
@pytest.mark.parametrize("where", ["memory", "lengths", "params"])
def test_tensors_on_another_device_raise_naming_them(where):
    args = fwd_args("lstm", torch.float32, [6, 1, 2, 3])
    if where == "memory":
        args[1] = args[1].cpu()
    elif where == "lengths":
        args[6] = args[6].cpu()
    else:
        args[5] = [args[5][0].cpu(), *args[5][1:]]
    with pytest.raises((ValueError, RuntimeError), match=where):
        OP.sequence_fwd(*args)
