"""ReferenceNTM: gradients, streaming, variable lengths, trace, state and argument checks."""

import pytest
import torch
from torch.func import functional_call

from ntm_fast import FastNTM, NTMState, ReferenceNTM

SMALL = dict(memory_slots=7, memory_width=4, controller_size=5)


def small_ntm(**kw) -> ReferenceNTM:
    return ReferenceNTM(3, 2, **{**SMALL, **kw}).double()


CONFIGS = [
    dict(controller="lstm"),
    dict(controller="feedforward"),
    dict(controller="lstm", read_heads=2, write_heads=2, shift_range=3),
    dict(controller="feedforward", read_heads=2, write_heads=3, shift_range=3),
    dict(controller="lstm", shift_mode="uniform", shift_range=3),
    dict(controller="lstm", controller_layers=2, shift_range=0),
    dict(controller="feedforward", memory_init="shared"),
]


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: "-".join(f"{v}" for v in c.values()))
def test_gradcheck_parameters_and_inputs(cfg):
    model = small_ntm(**cfg)
    # Random initial-state biases so the gradcheck does not start at a special point.
    with torch.no_grad():
        model.read_bias.normal_()
        model.weighting_logits.normal_()
    names = [n for n, _ in model.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_() for p in model.parameters())
    x = torch.rand(3, 2, 3, dtype=torch.float64, requires_grad=True)

    def run(x, *ps):
        logits, state = functional_call(model, dict(zip(names, ps, strict=True)), (x,))
        return logits, state.memory

    assert torch.autograd.gradcheck(run, (x, *params), fast_mode=True)


def test_uniform_shift_mode_gradcheck_full():
    model = small_ntm(controller="feedforward", shift_mode="uniform", shift_range=2)
    x = torch.rand(4, 2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: model(x)[0], (x,))


@pytest.mark.parametrize("cfg", CONFIGS[:3])
@pytest.mark.parametrize("batch_first", [False, True])
def test_streaming_equals_whole_sequence(cfg, batch_first):
    model = small_ntm(**cfg, batch_first=batch_first)
    x = torch.rand(9, 3, 3, dtype=torch.float64)
    if batch_first:
        x = x.transpose(0, 1)
    whole, final = model(x)
    state, pieces = None, []
    for chunk in (x[:, :4], x[:, 4:5], x[:, 5:]) if batch_first else (x[:4], x[4:5], x[5:]):
        out, state = model(chunk, state)
        pieces.append(out)
    torch.testing.assert_close(torch.cat(pieces, dim=1 if batch_first else 0), whole)
    for a, b in zip(state[:3], final[:3], strict=True):
        torch.testing.assert_close(a, b)
    for a, b in zip(state.controller, final.controller, strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("controller", ["lstm", "feedforward"])
def test_lengths_match_running_each_sequence_alone(controller):
    model = small_ntm(controller=controller, read_heads=2)
    T, lengths = 6, torch.tensor([6, 2, 0, 4])
    x = torch.rand(T, 4, 3, dtype=torch.float64)
    weights = torch.rand(T, 4, 2, dtype=torch.float64)
    logits, state = model(x, lengths=lengths)
    (logits * weights).sum().backward()
    padded_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    total = 0
    for b, n in enumerate(lengths.tolist()):
        assert torch.all(logits[n:, b] == 0), "outputs past a sequence's end must be zero"
        if n == 0:
            init = model.initial_state(1)
            torch.testing.assert_close(state.memory[b], init.memory[0])
            continue
        alone, alone_state = model(x[:n, b : b + 1])
        torch.testing.assert_close(logits[:n, b], alone[:, 0])
        torch.testing.assert_close(state.memory[b], alone_state.memory[0])
        torch.testing.assert_close(state.weightings[b], alone_state.weightings[0])
        total = total + (alone[:, 0] * weights[:n, b]).sum()
    total.backward()
    for g_padded, p in zip(padded_grads, model.parameters(), strict=True):
        torch.testing.assert_close(g_padded, p.grad)


def test_trace_records_every_step():
    model = small_ntm(read_heads=2, write_heads=1, shift_range=2)
    x = torch.rand(5, 3, 3, dtype=torch.float64)
    logits, state, trace = model(x, trace=True)
    assert trace.read_weightings.shape == (5, 3, 2, 7)
    assert trace.write_weightings.shape == (5, 3, 1, 7)
    assert trace.read_vectors.shape == (5, 3, 2, 4)
    assert trace.erase.shape == trace.add.shape == (5, 3, 1, 4)
    assert trace.shift.shape == (5, 3, 3, 5)
    torch.testing.assert_close(trace.read_weightings.sum(-1), torch.ones(5, 3, 2, dtype=x.dtype))
    torch.testing.assert_close(trace.read_vectors[-1], state.read_vectors)
    assert torch.all(trace.gamma >= 1) and torch.all((trace.gate > 0) & (trace.gate < 1))
    torch.testing.assert_close(model(x)[0], logits)


def test_initial_state_is_valid_and_focused_on_slot_zero():
    model = ReferenceNTM(4, 4, memory_slots=128)
    s = model.initial_state(3)
    torch.testing.assert_close(s.weightings.sum(-1), torch.ones(3, 2))
    assert torch.all(s.weightings[..., 0] > 0.99)
    assert s.memory.shape == (3, 128, 20) and s.controller[0].shape == (1, 3, 100)


def test_zero_memory_and_extreme_inputs_give_finite_gradients():
    model = small_ntm(read_heads=2, write_heads=2, shift_range=3)
    with torch.no_grad():
        model.memory_bias.zero_()
        model.read_bias.zero_()
    for dtype in (torch.float64, torch.float32):
        m = model.to(dtype)
        x = torch.cat([torch.zeros(3, 2, 3), 1e3 * torch.randn(3, 2, 3)]).to(dtype)
        logits, state = m(x)
        (logits.sum() + state.memory.sum()).backward()
        assert torch.isfinite(logits).all()
        assert all(torch.isfinite(p.grad).all() for p in m.parameters())
        m.zero_grad()


def test_state_dict_round_trip_with_fast_ntm():
    ref = small_ntm(read_heads=2)
    fast = FastNTM(3, 2, **SMALL, read_heads=2, backend="reference").double()
    fast.load_state_dict(ref.state_dict())
    x = torch.rand(4, 2, 3, dtype=torch.float64)
    torch.testing.assert_close(fast(x)[0], ref(x)[0], rtol=0, atol=0)
    ref2 = small_ntm(read_heads=2)
    ref2.load_state_dict(fast.state_dict())
    torch.testing.assert_close(ref2(x)[0], ref(x)[0], rtol=0, atol=0)
    clone = FastNTM.from_reference(ref, backend="reference")
    assert clone.backend is None
    torch.testing.assert_close(clone(x)[0], ref(x)[0], rtol=0, atol=0)
    assert clone.backend == "reference"


def test_shared_initial_memory_is_one_row_in_every_slot():
    """memory_init="shared" is the per-slot model with all rows tied: same outputs when the
    per-slot rows are equal, and the shared row's gradient is the sum of theirs."""
    shared = small_ntm(memory_init="shared", read_heads=2)
    per_slot = small_ntm(read_heads=2)
    assert shared.memory_bias.shape == (1, SMALL["memory_width"])
    assert shared.initial_state(2).memory.shape == (2, SMALL["memory_slots"], 4)
    assert shared.parameter_counts()["total"] == per_slot.parameter_counts()["total"] - 6 * 4
    state = {**shared.state_dict()}
    state["memory_bias"] = state["memory_bias"].expand(SMALL["memory_slots"], -1).clone()
    per_slot.load_state_dict(state)
    x = torch.rand(5, 2, 3, dtype=torch.float64)
    for m in (shared, per_slot):
        m(x)[0].sum().backward()
    torch.testing.assert_close(shared(x)[0], per_slot(x)[0], rtol=0, atol=0)
    torch.testing.assert_close(shared.memory_bias.grad, per_slot.memory_bias.grad.sum(0, True))
    with pytest.raises(RuntimeError, match="memory_bias"):  # a per-slot checkpoint: refused
        shared.load_state_dict(per_slot.state_dict())


def test_parameter_counts_add_up():
    model = ReferenceNTM(9, 8)
    counts = model.parameter_counts()
    assert counts["total"] == sum(p.numel() for p in model.parameters())
    parts = counts["controller"] + counts["heads"] + counts["output"] + counts["initial_state"]
    assert parts == counts["total"]
    # LSTM(29 -> 100): 4*100*(29 + 100) weights + 2*4*100 biases.
    assert counts["controller"] == 4 * 100 * 129 + 800


# -- argument checking ------------------------------------------------------------------------

CONSTRUCTOR_ERRORS = [
    (dict(input_size=0), ValueError, "input_size"),
    (dict(output_size=-1), ValueError, "output_size"),
    (dict(memory_slots=0), ValueError, "memory_slots"),
    (dict(memory_width=0), ValueError, "memory_width"),
    (dict(read_heads=0), ValueError, "read_heads"),
    (dict(write_heads=0), ValueError, "write_heads"),
    (dict(controller_size=0), ValueError, "controller_size"),
    (dict(controller_layers=0), ValueError, "controller_layers"),
    (dict(shift_range=-1), ValueError, "shift_range"),
    (dict(shift_range=4, memory_slots=8), ValueError, "shift_range"),
    (dict(memory_slots=2.5), TypeError, "memory_slots"),
    (dict(controller="gru"), ValueError, "controller"),
    (dict(shift_mode="gaussian"), ValueError, "shift_mode"),
    (dict(batch_first=1), TypeError, "batch_first"),
    (dict(memory_init="zeros"), ValueError, "memory_init"),
]


@pytest.mark.parametrize("cls", [ReferenceNTM, FastNTM])
@pytest.mark.parametrize(("kw", "exc", "name"), CONSTRUCTOR_ERRORS)
def test_constructor_errors_name_the_argument(cls, kw, exc, name):
    args = {"input_size": 3, "output_size": 2, **kw}
    with pytest.raises(exc, match=name):
        cls(args.pop("input_size"), args.pop("output_size"), **args)


def test_fast_ntm_rejects_unknown_backend():
    with pytest.raises(ValueError, match="backend"):
        FastNTM(3, 2, backend="cuda-magic")


def _forward_error_cases():
    x = torch.rand(4, 2, 3, dtype=torch.float64)
    other = small_ntm(memory_slots=9)
    return [
        ("rank", dict(x=x[0]), ValueError, r"x: .*got shape \(2, 3\)"),
        ("features", dict(x=torch.rand(4, 2, 5, dtype=torch.float64)), ValueError, "input_size"),
        ("int dtype", dict(x=x.long()), TypeError, "x:"),
        ("dtype", dict(x=x.float()), TypeError, "x: expected dtype torch.float64"),
        ("device", dict(x=x.to("meta")), ValueError, "x: expected device"),
        ("not tensor", dict(x=[1.0]), TypeError, "x:"),
        ("lengths dtype", dict(x=x, lengths=torch.ones(2)), TypeError, "lengths"),
        ("lengths shape", dict(x=x, lengths=torch.ones(3).long()), ValueError, "lengths"),
        ("lengths range", dict(x=x, lengths=torch.tensor([5, 1])), ValueError, "lengths"),
        ("lengths neg", dict(x=x, lengths=torch.tensor([-1, 1])), ValueError, "lengths"),
        (
            "lengths device",
            dict(x=x, lengths=torch.ones(2, dtype=torch.long, device="meta")),
            ValueError,
            "lengths: expected device",
        ),
        ("state type", dict(x=x, state="abc"), TypeError, "state"),
        ("state config", dict(x=x, state=other(x)[1]), ValueError, r"state\.memory"),
        (
            "state batch",
            dict(x=x, state=small_ntm()(x[:, :1])[1]),
            ValueError,
            r"state\.memory: expected shape \(2, 7, 4\)",
        ),
        (
            "state controller",
            dict(x=x, state=small_ntm(controller="feedforward")(x)[1]),
            ValueError,
            "state.controller",
        ),
    ]


@pytest.mark.parametrize(("case", "kw", "exc", "pattern"), _forward_error_cases())
def test_forward_errors_name_the_argument(case, kw, exc, pattern):
    model = small_ntm()
    x = kw.pop("x")
    with pytest.raises(exc, match=pattern):
        model(x, **kw)


def test_state_is_a_named_tuple_that_can_be_rebuilt():
    model = small_ntm()
    x = torch.rand(2, 2, 3, dtype=torch.float64)
    _, state = model(x)
    rebuilt = NTMState(*tuple(state))
    torch.testing.assert_close(model(x, rebuilt)[0], model(x, state)[0])
