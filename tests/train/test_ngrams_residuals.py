"""tools.ngrams_residuals: checked on stand-in predictions whose errors are known (eq. 10 with
noise drawn afresh at each visit, or once per context and sequence; eq. 10 on counts pooled
with one other context), by hand, and on the committed networks whose difference
docs/results/ngrams-feedforward.md states."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from ntm_fast.train.checkpoint import load_model
from ntm_fast.train.evaluate import build_task
from tools.ngrams_counts import context_ids
from tools.ngrams_residuals import (
    main,
    neighbour_bleed,
    network_logits,
    optimal_logits,
    persistence,
    previous_residual,
    running_balance,
    unseen_exposure,
    unseen_rms_by_time,
)

ROOT = Path(__file__).resolve().parents[2]
C = 5


TASK = build_task({"name": "ngrams"}, 0)


def bits(n: int = 300) -> torch.Tensor:
    return build_task({"name": "ngrams"}, 3).sample_bits(n)[0]


def test_balances_and_previous_residuals_by_hand():
    b = torch.tensor([[1.0, 0, 1, 1, 0, 1, 1]])  # 2-bit contexts 10, 01, 11, 10, 01 at 2-6
    balance = running_balance(b, 2)
    assert balance[0, :, 0b10].tolist() == [0, 0, 0, 1, 1, 1, 2]  # followed by 1 at 2 and 5
    assert balance[0, :, 0b01].tolist() == [0, 0, 0, 0, 1, 1, 1]  # by 1 at step 3
    residual = torch.arange(7.0)[None]
    before = previous_residual(residual, context_ids(b, 2))
    assert before[0, 5] == 2 and before[0, 6] == 3  # 10 last seen at step 2, 01 at step 3
    assert before[0, :5].isnan().all()


def test_the_optimal_estimator_has_no_error_anywhere():
    x = bits()
    logits = optimal_logits(TASK, x)
    assert persistence(TASK, x, logits)[0] == 0
    assert unseen_rms_by_time(x, logits, C) == [0.0] * 4
    assert all(abs(v) < 1e-12 for v in neighbour_bleed(x, logits, C)["coef"].values())


def test_fresh_noise_does_not_persist_and_held_noise_does():
    x = bits()
    g = torch.Generator().manual_seed(0)
    fresh = optimal_logits(TASK, x) + 0.3 * torch.randn(x.shape, generator=g, dtype=torch.float64)
    sd, corr = persistence(TASK, x, fresh)
    assert sd == pytest.approx(0.3, rel=0.05) and abs(corr) < 0.05
    held = torch.randn(x.shape[0], 2**C, generator=g, dtype=torch.float64)  # per context
    offset = held.gather(1, context_ids(x, C).clamp(min=0)) * 0.3
    assert persistence(TASK, x, optimal_logits(TASK, x) + offset)[1] > 0.95
    rms = unseen_rms_by_time(x, fresh, C)
    assert all(0.25 < r < 0.35 for r in rms)  # the same noise in every window


def test_neighbour_bleed_finds_the_pooled_context():
    """Eq. (10) on N_c + a N_{c ^ 16}: at unseen contexts the logit is 2 a (N1 - N0) of the
    other one to first order in a, and no other context's counts matter."""
    x, a = bits(), 0.01
    ctx = context_ids(x, C)
    known, c = ctx >= 0, ctx.clamp(min=0)
    ones = running_balance(x, C)  # ones minus zeros; the totals follow from the counts
    seen = torch.zeros_like(ones)
    for t in range(1, x.shape[1]):  # every context's visits before step t
        seen[:, t] = seen[:, t - 1]
        hit = known[:, t - 1]
        seen[hit, t, c[hit, t - 1]] += 1
    n1, n0 = (seen + ones) / 2, (seen - ones) / 2
    pick = (c ^ 16)[..., None]
    m1 = n1.gather(2, c[..., None])[..., 0] + a * n1.gather(2, pick)[..., 0]
    m0 = n0.gather(2, c[..., None])[..., 0] + a * n0.gather(2, pick)[..., 0]
    p = (m1 + 0.5) / (m1 + m0 + 1)
    logits = torch.where(known, torch.log(p) - torch.log1p(-p), 0.0)
    bleed = neighbour_bleed(x, logits, C)
    assert bleed["coef"][16] == pytest.approx(2 * a, rel=0.15) and bleed["r2"] > 0.95
    assert max(abs(v) for m, v in bleed["coef"].items() if m != 16) < 0.1 * a


def test_committed_networks():
    """docs/results/ngrams-write-follows-read.md (session 36): the feedforward NTM's errors are
    several times the LSTM NTM's, at unseen contexts too, and grow through the sequence there;
    both carry a context's error to its next visit; only the feedforward one takes the
    counts of the context that differs in the oldest bit."""
    x, out = bits(200), {}
    for name in ("ngrams-ff-seed0", "ngrams-lstm-default-seed0"):
        _, model = load_model(ROOT / "docs/checkpoints" / name)
        model.eval()
        logits = network_logits(model, TASK, x)
        out[name] = (persistence(TASK, x, logits), unseen_rms_by_time(x, logits, C),
                     neighbour_bleed(x, logits, C)["coef"])  # fmt: skip
    (ff_sd, ff_corr), ff_rms, ff_bleed = out["ngrams-ff-seed0"]
    (lstm_sd, lstm_corr), lstm_rms, lstm_bleed = out["ngrams-lstm-default-seed0"]
    assert ff_sd > 3 * lstm_sd and min(ff_corr, lstm_corr) > 0.5
    assert ff_rms[-1] > 1.5 * ff_rms[0] and ff_rms[0] > 3 * lstm_rms[0]
    assert max(ff_bleed, key=lambda m: abs(ff_bleed[m])) == 16 and ff_bleed[16] > 0.02
    assert abs(lstm_bleed[16]) < 0.01
    e = unseen_exposure(model, TASK, x[:50])  # the LSTM NTM: its reads' rows fill up
    assert e["mean"][-1] > e["mean"][0] and all(not math.isnan(r) for r in e["corr"])


def test_main_prints_every_line(capsys):
    assert main([str(ROOT / "docs/checkpoints/ngrams-ff-seed0"), "--sequences", "40"]) == 0
    out = capsys.readouterr().out
    for part in ("logit error sd", "unseen contexts", "ones minus zeros", "write mass"):
        assert part in out
    with pytest.raises(SystemExit, match="an N-grams checkpoint expected"):
        main([str(ROOT / "docs/checkpoints/copy-baseline-seed0")])
