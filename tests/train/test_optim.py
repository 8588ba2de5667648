"""GravesRMSprop against steps computed by hand from Graves (2013) eqs. (38)-(41)."""

import math

import pytest
import torch

from ntm_fast.train.optim import GravesRMSprop


def _by_hand(w, grads, lr, alpha=0.95, mom=0.9, eps=1e-4):
    n = g = d = 0.0
    for e in grads:
        n = alpha * n + (1 - alpha) * e * e
        g = alpha * g + (1 - alpha) * e
        d = mom * d - lr * e / math.sqrt(n - g * g + eps)
        w = w + d
    return w


def test_first_step_by_hand():
    # one step from zero state: n = 0.05 ε², g = 0.05 ε, n - g² = 0.0475 ε²
    p = torch.nn.Parameter(torch.tensor([1.0, -2.0], dtype=torch.float64))
    opt = GravesRMSprop([p], lr=0.1)
    p.grad = torch.tensor([0.5, 1.0], dtype=torch.float64)
    opt.step()
    expected = [1.0 - 0.1 * 0.5 / math.sqrt(0.0475 * 0.25 + 1e-4),
                -2.0 - 0.1 * 1.0 / math.sqrt(0.0475 + 1e-4)]  # fmt: skip
    assert p.tolist() == pytest.approx(expected, rel=1e-12)


def test_several_steps_with_momentum():
    grads = [0.3, -1.2, 2.0, 0.7]
    p = torch.nn.Parameter(torch.tensor([0.25], dtype=torch.float64))
    opt = GravesRMSprop([p], lr=1e-2)
    for e in grads:
        p.grad = torch.tensor([e], dtype=torch.float64)
        opt.step()
    assert float(p.detach()) == pytest.approx(_by_hand(0.25, grads, 1e-2), rel=1e-12)
    assert set(opt.state[p]) == {"n", "g", "delta"}


def test_state_dict_roundtrip_continues_identically():
    torch.manual_seed(0)
    a = torch.nn.Parameter(torch.randn(5))
    b = torch.nn.Parameter(a.detach().clone())
    oa, ob = GravesRMSprop([a], lr=1e-3), GravesRMSprop([b], lr=1e-3)
    grads = [torch.randn(5) for _ in range(4)]
    for gr in grads[:2]:
        a.grad, b.grad = gr.clone(), gr.clone()
        oa.step()
        ob.step()
    ob2 = GravesRMSprop([b], lr=1e-3)
    ob2.load_state_dict(ob.state_dict())
    for gr in grads[2:]:
        a.grad, b.grad = gr.clone(), gr.clone()
        oa.step()
        ob2.step()
    assert torch.equal(a, b)


def test_bad_hyperparameters():
    p = torch.nn.Parameter(torch.zeros(1))
    with pytest.raises(ValueError, match="lr"):
        GravesRMSprop([p], lr=0.0)
    with pytest.raises(ValueError, match="momentum"):
        GravesRMSprop([p], momentum=1.0)
