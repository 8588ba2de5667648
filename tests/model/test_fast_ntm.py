"""FastNTM against ReferenceNTM: logits, final state and every parameter gradient of a
training step, on each fast backend and device that can run here (tests/devices.py: the
Triton backend on the CPU under the interpreter, on CUDA compiled; native on the CPU and
CUDA). The fused-sequence path and checkpointing: tests/model/test_fast_sequence.py.

Tolerances: float64 runs compare at 1e-9 (summation order only, compounded over up to 120
recurrent steps); float32 runs use the forward table of tests/tolerances.py widened by
RECURRENCE (errors of ~1e-7 per op compound through the recurrence: the memory, weightings
and controller state each feed the next step, and sharpening with γ up to ~10 magnifies
relative differences in w̃ by γ).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from devices import CUDA, INTERPRET, backend_cases
from hypothesis import given
from hypothesis import strategies as st
from tolerances import forward_tol

from ntm_fast import FastNTM, ReferenceNTM, backends

RECURRENCE = 20.0


def _backends(device):
    out = []
    for name in ("native", "triton"):
        reason = backends.unavailable_reason(name, torch.device(device))
        out.append(
            pytest.param(name, marks=pytest.mark.skipif(reason is not None, reason=str(reason)))
        )
    return out


def _pair(backend, device, dtype=torch.float64, seed=0, **cfg):
    torch.manual_seed(seed)
    ref = ReferenceNTM(**cfg).to(device=device, dtype=dtype)
    with torch.no_grad():  # move off the special initial point (zero read bias etc.)
        for p in ref.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return ref, FastNTM.from_reference(ref, backend=backend)


def _train_step(model, x, y, lengths=None):
    model.zero_grad(set_to_none=True)
    logits, state = model(x, lengths=lengths)
    F.binary_cross_entropy_with_logits(logits, y).backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    return logits, state, grads


def _compare(ref, fast, x, y, tol, lengths=None):
    r_logits, r_state, r_grads = _train_step(ref, x, y, lengths)
    f_logits, f_state, f_grads = _train_step(fast, x, y, lengths)
    torch.testing.assert_close(f_logits, r_logits, **tol)
    for a, b in zip(f_state[:3], r_state[:3], strict=True):
        torch.testing.assert_close(a, b, **tol)
    for a, b in zip(f_state.controller, r_state.controller, strict=True):
        torch.testing.assert_close(a, b, **tol)
    for name, g in r_grads.items():
        torch.testing.assert_close(f_grads[name], g, **tol, msg=lambda m, n=name: f"{n}: {m}")


F64 = dict(atol=1e-9, rtol=1e-7)
CASES = backend_cases()


def _f32():
    t = forward_tol(torch.float32)
    return dict(atol=t["atol"] * RECURRENCE, rtol=t["rtol"] * RECURRENCE)


NATIVE_CONFIGS = [
    dict(controller="lstm"),
    dict(controller="feedforward", read_heads=2, write_heads=3, shift_range=3),
    dict(controller="lstm", read_heads=3, write_heads=2, shift_mode="uniform", shift_range=3),
    dict(controller="feedforward", shift_mode="uniform"),
    dict(controller="lstm", controller_layers=2, read_heads=2, write_heads=2),
    dict(controller="feedforward", memory_init="shared"),
]


@pytest.mark.parametrize(("backend", "device"), CASES)
@pytest.mark.parametrize("cfg", NATIVE_CONFIGS, ids=lambda c: "-".join(map(str, c.values())))
def test_training_step_matches_reference_float64(backend, device, cfg):
    T, B = (5, 2) if backend == "triton" and INTERPRET else (30, 8)
    mem = dict(memory_slots=7, memory_width=4) if backend == "triton" else {}
    ref, fast = _pair(backend, device, input_size=5, output_size=3, controller_size=16, **mem,
                      **cfg)  # fmt: skip
    x = torch.rand(T, B, 5, dtype=torch.float64, device=device)
    y = torch.rand(T, B, 3, dtype=torch.float64, device=device).round()
    _compare(ref, fast, x, y, F64)
    assert fast.backend == backend


@pytest.mark.parametrize(("backend", "device"), CASES)
def test_long_sequence_float32_paper_copy_configuration(backend, device):
    if backend == "triton" and INTERPRET:
        pytest.skip("120 steps at N=128 is too slow for the Triton interpreter (runs on a GPU)")
    ref, fast = _pair(backend, device, torch.float32, input_size=9, output_size=8)
    x = torch.rand(120, 4, 9, device=device).round()
    y = torch.rand(120, 4, 8, device=device).round()
    _compare(ref, fast, x, y, _f32())


@pytest.mark.parametrize(("backend", "device"), CASES)
@pytest.mark.parametrize("B", [1, 64])
def test_batch_sizes(backend, device, B):
    if backend == "triton" and INTERPRET and B > 1:
        pytest.skip("batch 64 under the Triton interpreter is slow (runs on a GPU)")
    ref, fast = _pair(backend, device, input_size=4, output_size=2, memory_slots=16,
                      memory_width=6, controller_size=12)  # fmt: skip
    x = torch.rand(6, B, 4, dtype=torch.float64, device=device)
    y = torch.rand(6, B, 2, dtype=torch.float64, device=device).round()
    _compare(ref, fast, x, y, F64)


@pytest.mark.parametrize(("backend", "device"), CASES)
def test_variable_lengths_match_reference(backend, device):
    ref, fast = _pair(backend, device, input_size=4, output_size=2, memory_slots=9,
                      memory_width=5, controller_size=8, read_heads=2)  # fmt: skip
    x = torch.rand(7, 4, 4, dtype=torch.float64, device=device)
    y = torch.rand(7, 4, 2, dtype=torch.float64, device=device).round()
    _compare(ref, fast, x, y, F64, lengths=torch.tensor([7, 3, 0, 5], device=device))


@given(
    controller=st.sampled_from(["lstm", "feedforward"]),
    read_heads=st.integers(1, 3),
    write_heads=st.integers(1, 3),
    shift_range=st.sampled_from([0, 1, 3]),
    shift_mode=st.sampled_from(["softmax", "uniform"]),
    slots=st.integers(7, 20),
    width=st.integers(1, 9),
    B=st.integers(1, 5),
    T=st.integers(1, 12),
    seed=st.integers(0, 2**16),
    memory_init=st.sampled_from(["per_slot", "shared"]),
)
def test_native_random_configurations(
    controller,
    read_heads,
    write_heads,
    shift_range,
    shift_mode,
    slots,
    width,
    B,
    T,
    seed,
    memory_init,
):
    reason = backends.unavailable_reason("native", torch.device("cpu"))
    if reason is not None:
        pytest.skip(reason)
    ref, fast = _pair(
        "native", "cpu", seed=seed, input_size=3, output_size=2, memory_slots=slots,
        memory_width=width, read_heads=read_heads, write_heads=write_heads,
        controller=controller, controller_size=8, shift_range=shift_range,
        shift_mode=shift_mode, memory_init=memory_init,
    )  # fmt: skip
    x = torch.rand(T, B, 3, dtype=torch.float64, device="cpu")
    y = torch.rand(T, B, 2, dtype=torch.float64, device="cpu").round()
    _compare(ref, fast, x, y, F64)


@pytest.mark.parametrize(("backend", "device"), CASES)
def test_streaming_and_trace_match_whole_sequence(backend, device):
    _, fast = _pair(backend, device, input_size=3, output_size=2, memory_slots=8,
                    memory_width=4, controller_size=8)  # fmt: skip
    x = torch.rand(6, 2, 3, dtype=torch.float64, device=device)
    whole, state, trace = fast(x, trace=True)
    first, s1 = fast(x[:2])
    second, s2 = fast(x[2:], s1)
    torch.testing.assert_close(torch.cat([first, second]), whole, **F64)
    torch.testing.assert_close(s2.memory, state.memory, **F64)
    assert trace.read_weightings.shape == (6, 2, 1, 8)


def test_auto_backend_is_visible_and_warns_once_when_falling_back(monkeypatch):
    fast = FastNTM(3, 2, memory_slots=8, memory_width=4, controller_size=8)
    assert fast.backend is None
    fast(torch.rand(2, 1, 3, device="cpu"))
    expected = backends.resolve_name("auto", torch.device("cpu"))
    assert fast.backend == expected
    # Pretend nothing is built: auto falls back to the reference with one warning.
    real = backends.unavailable_reason
    monkeypatch.setattr(
        backends,
        "unavailable_reason",
        lambda name, device: real(name, device) if name == "reference" else f"{name} missing",
    )
    monkeypatch.setattr(backends, "_warned", set())
    with pytest.warns(RuntimeWarning, match="native missing"):
        fast(torch.rand(2, 1, 3, device="cpu"))
    assert fast.backend == "reference"
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fast(torch.rand(2, 1, 3, device="cpu"))  # the second fallback is silent


def test_explicit_unavailable_backend_is_an_error(monkeypatch):
    fast = FastNTM(3, 2, memory_slots=8, memory_width=4, controller_size=8, backend="native")
    monkeypatch.setattr(backends, "unavailable_reason", lambda name, device: "not built here")
    with pytest.raises(backends.BackendUnavailableError, match="not built here"):
        fast(torch.rand(2, 1, 3, device="cpu"))


@pytest.mark.parametrize(("backend", "device"), CASES)
def test_compile_fullgraph(backend, device):
    if backend == "triton" and INTERPRET:
        pytest.skip("compiling the Triton interpreter path is covered by the op-level test")
    ref, fast = _pair(backend, device, torch.float32, input_size=3, output_size=2,
                      memory_slots=8, memory_width=4, controller_size=8)  # fmt: skip
    x = torch.rand(3, 2, 3, device=device)
    expected, _ = ref(x)
    compiled = torch.compile(fast, fullgraph=True)  # compiled before any eager call
    got, _ = compiled(x)
    torch.testing.assert_close(got, expected, **forward_tol(torch.float32))


@pytest.mark.parametrize(("backend", "device"), CASES)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_keeps_memory_in_float32(backend, device, dtype):
    if backend == "triton" and INTERPRET:
        pytest.skip("autocast with the Triton backend runs on a GPU")
    ref, fast = _pair(backend, device, torch.float32, input_size=3, output_size=2,
                      memory_slots=8, memory_width=4, controller_size=8)  # fmt: skip
    x = torch.rand(5, 2, 3, device=device)
    expected, _ = ref(x)
    with torch.autocast(device, dtype=dtype):
        logits, state = fast(x)
        logits.float().sum().backward()
    assert state.memory.dtype == torch.float32
    assert torch.isfinite(logits).all()
    assert all(torch.isfinite(p.grad).all() for p in fast.parameters())
    # Half-precision matmuls in the controller: a few ulp of bfloat16/float16 per layer.
    torch.testing.assert_close(logits.float(), expected, atol=0.05, rtol=0.05)


@pytest.mark.skipif(not CUDA, reason="the CUDA-graph path needs a CUDA device")
@pytest.mark.parametrize("backend", _backends("cuda") if CUDA else ["native"])
def test_cuda_graph_path_matches_eager(backend):
    ref, eager = _pair(backend, "cuda", torch.float32, input_size=9, output_size=8)
    graphed = FastNTM.from_reference(ref, backend=backend)
    graphed.cuda_graph = True
    opt_e = torch.optim.SGD(eager.parameters(), lr=0.1)
    opt_g = torch.optim.SGD(graphed.parameters(), lr=0.1)
    for _ in range(3):  # replays see new inputs and in-place parameter updates
        x = torch.rand(21, 16, 9, device="cuda").round()
        y = torch.rand(21, 16, 8, device="cuda").round()
        e_logits, e_state, e_grads = _train_step(eager, x, y)
        g_logits, g_state, g_grads = _train_step(graphed, x, y)
        torch.testing.assert_close(g_logits, e_logits, **_f32())
        torch.testing.assert_close(g_state.memory, e_state.memory, **_f32())
        for name, g in e_grads.items():
            torch.testing.assert_close(g_grads[name], g, **_f32())
        opt_e.step()
        opt_g.step()
    assert len(graphed._graphs) == 1, "one capture per shape, then replays"


@pytest.mark.skipif(not CUDA, reason="FastNTM on CUDA needs a CUDA device")
@pytest.mark.parametrize("backend", _backends("cuda") if CUDA else ["native"])
@pytest.mark.parametrize("cfg", NATIVE_CONFIGS, ids=lambda c: "-".join(map(str, c.values())))
@pytest.mark.parametrize("B", [1, 64])
def test_training_step_matches_reference_on_cuda(backend, cfg, B):
    ref, fast = _pair(backend, "cuda", input_size=5, output_size=3, controller_size=16, **cfg)
    x = torch.rand(120, B, 5, dtype=torch.float64, device="cuda")
    y = torch.rand(120, B, 3, dtype=torch.float64, device="cuda").round()
    _compare(ref, fast, x, y, F64)
    assert fast.backend == backend
