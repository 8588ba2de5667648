"""``forward(..., history=True)``: every step's weightings `(T, B, R + Wh, N)`, memory
`(T, B, N, W)` and activated head parameters (:class:`ntm_fast.NTMHistory`), differentiable.

ReferenceNTM stacks its per-step states and parameters (equal to the detached trace's; 0 past
a sequence's length); FastNTM's native whole-sequence op returns them from what it saves (the
raw head parameters, activated in Python) and adds their gradients to each step's dL/dw_t,
dL/dM_t and dL/draw_t in the backward (csrc/cpu/sequence_bwd_loop.h,
csrc/cuda/sequence_bwd.cu; the CUDA driver is checked in tools/cuda_emulation). Checked
against the reference over the hypothesis configurations of test_native_sequence.py
(tolerances.py: SEQUENCE), with checkpoint_steps, under no_grad, on the per-step path of a
backend without the whole-sequence op, by gradcheck, and the errors; on CUDA too
(.ci/gpu_proof.sh, stage proof).
"""

from __future__ import annotations

import pytest
import torch
from devices import CUDA
from hypothesis import given
from test_native_sequence import (
    FUZZ,
    configs,
    flat,
    leaves,
    make_ref,
    one_thread,  # noqa: F401 (autouse fixture)
    op_params,
    outputs_and_grads,
    own_rounding,
    start_state,
    state_leaves,
)
from tolerances import SEQUENCE, assert_close_allowing

from ntm_fast import FastNTM, NTMHistory, native_backend, native_sequence
from ntm_fast.native_sequence import NativeSequence, NativeSequenceConfig

pytestmark = pytest.mark.skipif(
    not native_sequence.available(torch.device("cpu")),
    reason="the native whole-sequence op is not built here",
)


def took_native_op(history: torch.Tensor, batch_first: bool) -> bool:
    node = history.grad_fn
    if batch_first:  # a transpose of the op's output
        node = node.next_functions[0][0]
    return node.name() == "NativeSequenceBackward"


def tensors(h: NTMHistory) -> list[torch.Tensor]:
    """The history's tensors: weightings, memory, then each head parameter."""
    return [h.weightings, h.memory, *h.heads]


CUDA_OK = CUDA and native_sequence.available(torch.device("cuda"))
CUDA_REASON = (
    "needs a CUDA device and the extension's CUDA whole-sequence kernels: "
    f"{native_backend.unavailable_reason(torch.device('cuda')) or 'not registered for CUDA'}"
)


def check(c: dict, dtype: torch.dtype, device: str = "cpu", **fast_options) -> None:
    ref = make_ref(c, dtype).to(device)
    fast = FastNTM.from_reference(ref, backend="native")
    for name, value in fast_options.items():
        setattr(fast, name, value)
    shape = (c["B"], c["T"]) if c["bf"] else (c["T"], c["B"])
    x = torch.rand(*shape, c["F"], dtype=dtype, device=device).requires_grad_()
    lengths = None if c["lengths"] is None else torch.tensor(c["lengths"], device=device)
    s_start = start_state(ref, c, dtype)
    s_ref, s_fast = leaves(s_start), leaves(s_start)
    logits, state, h_ref = ref(x, s_ref, lengths=lengths, history=True)
    assert h_ref.weightings.shape == (*shape, c["R"] + c["Wh"], c["N"])
    assert h_ref.memory.shape == (*shape, c["N"], c["W"])
    assert h_ref.heads.gate.shape == h_ref.heads.gamma.shape == (*shape, c["R"] + c["Wh"])
    r_out, r_grads, up = outputs_and_grads(
        [*flat(logits, state), *tensors(h_ref)], [x, *state_leaves(s_ref), *ref.parameters()]
    )
    logits, state, h_fast = fast(x, s_fast, lengths=lengths, history=True)
    if not fast_options:
        assert all(took_native_op(h, c["bf"]) for h in h_fast[:2])
    f_out, f_grads, _ = outputs_and_grads(
        [*flat(logits, state), *tensors(h_fast)],
        [x, *state_leaves(s_fast), *fast.parameters()],
        up,
    )
    tol = SEQUENCE[dtype]
    own = None
    if dtype == torch.float32:

        def outputs_of(model, x_, s):
            logits_, state_, h_ = model(x_, s, lengths=lengths, history=True)
            return [*flat(logits_, state_), *tensors(h_)]

        own = own_rounding(ref, outputs_of, x, s_start, up, r_grads)
    for i, (a, e) in enumerate(zip(f_out, r_out, strict=True)):
        assert_close_allowing(a, e, tol["atol"], tol["rtol"], f"output {i} of {c}")
    for i, (a, e) in enumerate(zip(f_grads, r_grads, strict=True)):
        extra = 0.0 if own is None else own[i]
        assert_close_allowing(a, e, tol["g_atol"], tol["g_rtol"], f"gradient {i} of {c}", extra)
    with torch.no_grad():  # forward only: the op still keeps every step's state
        h = tensors(fast(x, s_start, lengths=lengths, history=True)[2])
    for a, e in zip(h, r_out[-len(h) :], strict=True):
        assert_close_allowing(a, e, tol["atol"], tol["rtol"], f"no_grad {c}")


@FUZZ
@given(c=configs())
def test_matches_reference_float64(c):
    check(c, torch.float64)


@FUZZ
@given(c=configs())
def test_matches_reference_float32(c):
    check(c, torch.float32)


@pytest.mark.skipif(not CUDA_OK, reason=CUDA_REASON)
@FUZZ
@given(c=configs())
def test_matches_reference_on_cuda(c):
    check(c, torch.float64, "cuda")
    check(c, torch.float32, "cuda")


@FUZZ
@given(c=configs())
def test_checkpoint_steps_concatenate_the_chunks(c):
    check(c, torch.float64, checkpoint_steps=2)


def test_a_backend_without_the_whole_sequence_op_takes_the_per_step_path():
    c = dict(ctrl="lstm", layers=1, R=2, Wh=1, N=5, k=1, mode="softmax", W=3, C=4, F=2, O=2,
             T=4, B=2, lengths=None, bf=False, prev=0, seed=5)  # fmt: skip
    check(c, torch.float64, requested_backend="reference")


def test_reference_history_is_the_trace_with_gradients():
    c = dict(ctrl="feedforward", layers=1, R=1, Wh=2, N=6, k=1, mode="uniform", W=3, C=4, F=2,
             O=2, T=5, B=3, seed=2)  # fmt: skip
    ref = make_ref(c)
    x = torch.rand(5, 3, 2, dtype=torch.float64)  # cpu: the CPU op
    lengths = torch.tensor([5, 2, 0])  # cpu: the CPU op
    w, memory, heads = ref(x, lengths=lengths, history=True)[2]
    trace = ref(x, lengths=lengths, trace=True)[2]
    expected = torch.cat([trace.read_weightings, trace.write_weightings], dim=2)
    torch.testing.assert_close(w.detach(), expected, rtol=0, atol=0)
    assert w.requires_grad and memory.requires_grad and not trace.read_weightings.requires_grad
    final = ref(x, lengths=lengths)[1].memory
    torch.testing.assert_close(memory[-1], final, rtol=0, atol=0)
    active = torch.arange(5)[:, None] < lengths  # cpu: the CPU op (the trace keeps ended rows)
    for name, value in heads._asdict().items():
        assert value.requires_grad, name
        want = getattr(trace, name) * active.view(5, 3, *[1] * (value.dim() - 2))
        torch.testing.assert_close(value.detach(), want, rtol=0, atol=0, msg=name)
    assert heads.gate[:, 2].abs().sum() == 0 and heads.gate[:2, 1].abs().sum() > 0
    empty = ref(x[:0], history=True)[2]
    assert empty.weightings.shape == (0, 3, 3, 6) and empty.memory.shape == (0, 3, 6, 3)
    shapes = [tuple(t.shape) for t in empty.heads]
    assert shapes == [(0, 3, 3, 3), (0, 3, 3), (0, 3, 3), (0, 3, 3, 3), (0, 3, 3),
                      (0, 3, 2, 3), (0, 3, 2, 3)]  # fmt: skip


@pytest.mark.parametrize("ctrl", ["lstm", "feedforward"])
def test_gradcheck_with_the_history_output(ctrl):
    c = dict(ctrl=ctrl, layers=1, R=1, Wh=1, N=4, k=1, mode="softmax", W=2, C=3, F=2, O=2,
             T=3, B=2, seed=3)  # fmt: skip
    ref = make_ref(c)
    cfg = NativeSequenceConfig(ref.layout, ctrl == "lstm")
    s = ref.initial_state(2)
    lengths = torch.tensor([3, 1])  # cpu: the CPU op
    leaf = lambda t: t.detach().clone().requires_grad_()  # noqa: E731
    state = [leaf(t) for t in s.controller]
    params = [leaf(p) for p in op_params(ref)]
    x = torch.rand(3, 2, 2, dtype=torch.float64, requires_grad=True)  # cpu: the CPU op

    def fn(x, memory, reads, w0, *rest):
        out = NativeSequence.apply(cfg, True, True, x, memory, reads, w0, lengths, len(state),
                                   *rest)  # fmt: skip
        return out[0], *out[-3:]  # the logits and the weighting, memory and raw histories

    w0 = torch.randn(2, 2, 4, dtype=torch.float64)  # cpu: the CPU op
    w0 = torch.softmax(w0, -1).requires_grad_()
    inputs = (x, leaf(s.memory), leaf(s.read_vectors), w0, *state, *params)
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-7, rtol=1e-5)


def test_trace_and_history_together_are_refused():
    c = dict(ctrl="lstm", layers=1, R=1, Wh=1, N=4, k=1, mode="softmax", W=2, C=3, F=2, O=2,
             seed=0)  # fmt: skip
    fast = FastNTM.from_reference(make_ref(c))
    x = torch.rand(3, 2, 2, dtype=torch.float64)  # cpu: the CPU op
    with pytest.raises(ValueError, match="trace and history"):
        fast(x, trace=True, history=True)


def test_wrong_history_gradients_are_named():
    c = dict(ctrl="feedforward", layers=1, R=1, Wh=1, N=4, k=1, mode="softmax", W=2, C=3, F=2,
             O=2, seed=0)  # fmt: skip
    ref = make_ref(c)
    s = ref.initial_state(2)
    x = torch.rand(3, 2, 2, dtype=torch.float64)  # cpu: the CPU op
    d = lambda t: t.detach()  # noqa: E731
    args = (x, d(s.memory), d(s.read_vectors), d(s.weightings), [], [d(p) for p in op_params(ref)],
            None, 1, 1, False, False)  # fmt: skip
    out = torch.ops.ntm_fast.sequence_fwd(*args, True)
    saved = list(out[4:])
    grads = [torch.ones_like(out[0]), None, None, None]
    bwd = torch.ops.ntm_fast.sequence_bwd
    wrong_w = torch.ones(3, 2, 2, 5, dtype=torch.float64)  # cpu: the CPU op
    wrong_m = torch.ones(3, 2, 4, 3, dtype=torch.float64)  # cpu: the CPU op
    wrong_p = torch.ones(3, 2, ref.layout.total + 1, dtype=torch.float64)  # cpu: the CPU op
    with pytest.raises(ValueError, match=r"weighting history.*\(T, B, H, N\)"):
        bwd([*grads, wrong_w, None, None], x, [], args[5], saved, None, 1, 1, False, False)
    with pytest.raises(ValueError, match=r"memory history.*\(T, B, N, W\)"):
        bwd([*grads, None, wrong_m, None], x, [], args[5], saved, None, 1, 1, False, False)
    with pytest.raises(ValueError, match=r"head-parameter history.*\(T, B, P\)"):
        bwd([*grads, None, None, wrong_p], x, [], args[5], saved, None, 1, 1, False, False)
    for extra in ([None], [None, None]):
        with pytest.raises(ValueError, match=r"grads: expected 4 .* or three more"):
            bwd([*grads, *extra], x, [], args[5], saved, None, 1, 1, False, False)
