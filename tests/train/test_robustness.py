"""No NaN or inf from valid inputs, over real training.

FastNTM on the native backend learns the copy task (``ntm_fast.train.tasks.CopyTask``) with the
training recipe's optimiser (Graves's RMSProp, gradients clipped element-wise to ±10) at a
deliberately high learning rate, so weights, key strengths β and sharpenings γ drift far from
their initial values. Every loss, every logit and every parameter gradient must be finite;
the first steps run under ``torch.autograd.set_detect_anomaly(True)``, which also checks every
backward node's output. The CI test runs 300 steps; the ``slow`` one 3000.
"""

from __future__ import annotations

import pytest
import torch

from ntm_fast import FastNTM, backends
from ntm_fast.train.optim import GravesRMSprop
from ntm_fast.train.tasks.copy import CopyTask

needs_native = pytest.mark.skipif(
    backends.unavailable_reason("native", torch.device("cpu")) is not None,
    reason=str(backends.unavailable_reason("native", torch.device("cpu"))),
)


def train_checked(steps: int, anomaly_steps: int, lr: float = 3e-3) -> dict[str, float]:
    torch.manual_seed(0)
    task = CopyTask(seed=0, bits=4, min_length=1, max_length=6)
    model = FastNTM(
        task.input_size, task.output_size, backend="native",
        memory_slots=16, memory_width=8, controller_size=32,
    )  # fmt: skip
    opt = GravesRMSprop(model.parameters(), lr=lr)
    losses: list[float] = []
    peak = dict(beta=0.0, gamma=0.0, grad=0.0)
    for step in range(steps):
        batch = task.sample(8)
        with torch.autograd.set_detect_anomaly(step < anomaly_steps):
            logits, state = model(batch.inputs)
            per = torch.nn.functional.binary_cross_entropy_with_logits(
                logits, batch.targets, reduction="none"
            ).sum(-1)
            loss = (per * batch.mask).sum() / batch.mask.sum()
            opt.zero_grad()
            loss.backward()
        assert torch.isfinite(loss), f"step {step}: loss {loss.item()}"
        assert torch.isfinite(logits).all(), f"step {step}: non-finite logits"
        for t in state[:3]:
            assert torch.isfinite(t).all(), f"step {step}: non-finite state"
        for name, p in model.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all(), f"step {step}: d/d{name}"
            peak["grad"] = max(peak["grad"], float(p.grad.abs().max()))
            p.grad.clamp_(-10, 10)
        opt.step()
        if step % 50 == 0:  # how extreme the addressing parameters got (per-step path: trace)
            with torch.no_grad():
                _, _, trace = model(batch.inputs[:5], trace=True)
            peak["beta"] = max(peak["beta"], float(trace.beta.max()))
            peak["gamma"] = max(peak["gamma"], float(trace.gamma.max()))
            assert torch.isfinite(trace.read_weightings).all()
        losses.append(loss.item())
    window = min(50, steps // 3)  # single batches of 8 are noisy: compare window means
    first, last = sum(losses[:window]) / window, sum(losses[-window:]) / window
    return dict(first=first, last=last, **peak)


@needs_native
def test_training_300_steps_is_finite():
    r = train_checked(steps=300, anomaly_steps=10)
    assert r["last"] < 0.8 * r["first"], r  # it trained (not a no-op that is trivially finite)


@needs_native
@pytest.mark.slow
def test_training_3000_steps_is_finite():
    r = train_checked(steps=3000, anomaly_steps=100)
    assert r["last"] < 0.5 * r["first"], r
