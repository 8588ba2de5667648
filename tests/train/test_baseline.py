"""The LSTM baseline (Table 3): Graves's one bias per gate, against a written-out recurrence,
torch's two-bias form and the paper's parameter counts."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ntm_fast.train.baseline import DeepLSTM
from ntm_fast.train.presets import build_model, preset


def graves_deep_lstm(model: DeepLSTM, x: torch.Tensor) -> torch.Tensor:
    """Graves (2013) eqs. 7-11 without peepholes, step by step: every layer sees the input and
    the layer below, the output sees every layer; one bias per gate (the last input column)."""
    T, B, _ = x.shape
    H = model.h0.shape[1]
    below, tops = None, []
    for i, lstm in enumerate(model.lstms):
        w_ih, w_hh = lstm.weight_ih_l0, lstm.weight_hh_l0
        bias, w_in = w_ih[:, -1], w_ih[:, :-1]
        h, c = model.h0[i].expand(B, H), model.c0[i].expand(B, H)
        hs = []
        for t in range(T):
            inp = x[t] if below is None else torch.cat([x[t], below[t]], dim=-1)
            i_g, f_g, g_g, o_g = (inp @ w_in.T + h @ w_hh.T + bias).chunk(4, dim=-1)
            c = torch.sigmoid(f_g) * c + torch.sigmoid(i_g) * torch.tanh(g_g)
            h = torch.sigmoid(o_g) * torch.tanh(c)
            hs.append(h)
        below = torch.stack(hs)
        tops.append(below)
    return model.output(torch.cat(tops, dim=-1))


@settings(max_examples=15, deadline=None)
@given(
    steps=st.integers(1, 6), batch=st.integers(1, 3), inputs=st.integers(1, 5),
    outputs=st.integers(1, 4), hidden=st.integers(1, 6), layers=st.integers(1, 3),
    seed=st.integers(0, 2**16),
)  # fmt: skip
def test_one_bias_form_is_graves_recurrence(steps, batch, inputs, outputs, hidden, layers, seed):
    torch.manual_seed(seed)
    model = DeepLSTM(inputs, outputs, hidden_size=hidden, layers=layers).double()
    with torch.no_grad():  # learned initial states away from 0, so they are exercised too
        model.h0.normal_()
        model.c0.normal_()
    x = torch.randn(steps, batch, inputs, dtype=torch.float64)
    logits, _ = model(x)
    # float64 on both sides: only summation order differs (~1e-15 relative)
    torch.testing.assert_close(logits, graves_deep_lstm(model, x), rtol=1e-10, atol=1e-12)


def test_one_bias_equals_torch_two_biases_summed():
    torch.manual_seed(0)
    two = DeepLSTM(4, 3, hidden_size=5, layers=3, gate_biases=2).double()
    one = DeepLSTM(4, 3, hidden_size=5, layers=3, gate_biases=1).double()
    with torch.no_grad():
        for a, b in zip(one.lstms, two.lstms, strict=True):
            a.weight_ih_l0.copy_(
                torch.cat([b.weight_ih_l0, (b.bias_ih_l0 + b.bias_hh_l0)[:, None]], 1)
            )
            a.weight_hh_l0.copy_(b.weight_hh_l0)
        one.output.load_state_dict(two.output.state_dict())
        one.h0.copy_(two.h0.normal_())
        one.c0.copy_(two.c0.normal_())
    x = torch.randn(7, 2, 4, dtype=torch.float64)
    (y1, (h1, c1)), (y2, (h2, c2)) = one(x), two(x)
    for a, b in ((y1, y2), (h1, h2), (c1, c2)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_one_bias_gradients_gradcheck():
    torch.manual_seed(1)
    model = DeepLSTM(3, 2, hidden_size=3, layers=2).double()
    x = torch.randn(4, 2, 3, dtype=torch.float64, requires_grad=True)
    w = model.lstms[1].weight_ih_l0
    assert torch.autograd.gradcheck(
        lambda x_, w_: torch.func.functional_call(model, {"lstms.1.weight_ih_l0": w_}, (x_,))[0],
        (x, w.detach().clone().requires_grad_()),
    )


# Table 3's counts. Associative recall and N-grams: exact with this package's task layouts.
# Priority sort: 348,424 - the paper prints 384,424, the same digits with 4 and 8 swapped (no
# input/output width gives 384,424 with 3 x 128). Copy and repeat copy: exact with 10/9 and 8/7
# input/output channels, where this package's layouts (from the text) have 9/8 and 10/9.
@pytest.mark.parametrize(
    "task, ours, paper",
    [("associative_recall", 1_344_518, 1_344_518), ("ngrams", 331_905, 331_905),
     ("priority_sort", 348_424, 384_424), ("copy", 1_349_128, 1_352_969),
     ("repeat_copy", 5_327_369, 5_312_007)],
)  # fmt: skip
def test_table_3_parameter_counts(task, ours, paper):
    p = preset(task, "baseline")
    assert p.paper_parameters == paper
    assert build_model(p.model).parameter_counts()["total"] == ours


def test_copy_and_repeat_copy_counts_fit_other_widths():
    assert DeepLSTM(10, 9, hidden_size=256).parameter_counts()["total"] == 1_352_969
    assert DeepLSTM(8, 7, hidden_size=512).parameter_counts()["total"] == 5_312_007


def test_configs_without_gate_biases_build_torchs_two_biases():
    """Checkpoints written before the option hold torch's form; they must load as saved."""
    legacy = {"kind": "lstm", "input_size": 3, "output_size": 2, "hidden_size": 4, "layers": 2}
    model = build_model(legacy)
    assert model.gate_biases == 2 and "lstms.0.bias_hh_l0" in model.state_dict()
    assert "lstms.0.bias_hh_l0" not in build_model({**legacy, "gate_biases": 1}).state_dict()


@pytest.mark.parametrize("bad", [0, 3, True, 1.0, "1"])
def test_gate_biases_is_checked(bad):
    with pytest.raises(ValueError, match=r"gate_biases: expected 1 \(Graves 2013"):
        DeepLSTM(3, 2, gate_biases=bad)
