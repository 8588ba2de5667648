"""tools.repeat_count_probe: the linear probe recovers a linear code exactly, the states it
reads are the ones on entering each repeat, and on a committed network it finds the count in
the LSTM cell, not in the read vectors."""

from __future__ import annotations

from pathlib import Path

import torch

from ntm_fast.train.checkpoint import load_model
from tools.repeat_beyond import sample
from tools.repeat_count_probe import features, fit, main, probe, repeat_states

ROOT = Path(__file__).resolve().parents[2]
SEED5 = ROOT / "docs/checkpoints/repeat-copy-lstm-seed5"


def test_fit_recovers_a_linear_code():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 5, generator=g, dtype=torch.float64)
    y = x @ torch.tensor([1.0, -2.0, 0.0, 0.5, 3.0], dtype=torch.float64) + 4.0
    decode = fit(x, y, ridge=1e-9)
    fresh = torch.randn(20, 5, generator=g, dtype=torch.float64)
    want = fresh @ torch.tensor([1.0, -2.0, 0.0, 0.5, 3.0], dtype=torch.float64) + 4.0
    torch.testing.assert_close(decode(fresh), want, rtol=1e-6, atol=1e-6)


def test_states_are_those_entering_each_repeat():
    state, model = load_model(SEED5, "reference")
    model = model.double()
    batch = sample(state["task_config"], 3, 4, 2, 0)
    x = batch.inputs.double()
    kept = repeat_states(model, x, 3, 4)
    _, _, history = model(x, history=True)
    assert len(kept) == 4
    for r, s in enumerate(kept):  # after step 3 + 3 r: the delimiter, then each repeat's end
        torch.testing.assert_close(s.memory, history.memory[3 + 3 * r], rtol=0, atol=0)
    x_r, left = features(model, state["task_config"], "c", 3, 4, 2, 0)
    assert x_r.shape == (8, 100) and left.tolist() == [4, 4, 3, 3, 2, 2, 1, 1]


def test_the_default_seed_5_holds_its_count_in_the_cell(capsys):
    state, model = load_model(SEED5, "auto")
    model = model.double()
    cell, _ = probe(model, state["task_config"], "c", 20, sequences=8, step=2)
    reads, _ = probe(model, state["task_config"], "reads", 20, sequences=8, step=2)
    assert cell < 0.6 and reads > 1.5  # predicting the mean: 2.44 repeats
    assert main([str(SEED5), "--parts", "h", "--length", "12", "--sequences", "1"]) == 0
    out = capsys.readouterr().out
    assert "decoded - true repeats left at 12 x 10" in out and "training range rms" in out
