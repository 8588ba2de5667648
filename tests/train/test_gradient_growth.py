"""tools.gradient_growth: the uncut norm is the model's own gradient; each cut removes exactly
its path (zero where the forward pass gives that path no weight, a change where it carries
everything); the model's backend is put back; bad arguments are named."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from ntm_fast import FastNTM
from tools.gradient_growth import CUTS, growth, main, step_gradient_norms

ROOT = Path(__file__).resolve().parents[2]
W, N = 6, 12


def network(read_gate: float | None = None, write_gate: float | None = None) -> FastNTM:
    """A small feedforward NTM; a gate's raw bias set to ±40 makes that gate exactly 1 or 0
    in float32 (sigmoid), so the previous weighting has no weight or all of it."""
    torch.manual_seed(0)
    net = FastNTM(1, 1, memory_slots=N, memory_width=W, controller="feedforward",
                  controller_size=16)  # fmt: skip
    H = net.read_heads + net.write_heads
    gate = H * W + H  # the gate group's offset in the heads' output (heads.HeadLayout)
    with torch.no_grad():
        for head, value in ((0, read_gate), (1, write_gate)):
            if value is not None:
                net.heads.bias[gate + head] = value
    return net


def data(T: int = 12, B: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return (torch.randint(0, 2, (T, B, 1), generator=g).float(),
            torch.randint(0, 2, (T, B, 1), generator=g).float())  # fmt: skip


def test_uncut_norm_is_the_models_own_gradient_and_its_backend_is_put_back():
    net, (x, y) = network(), data()
    ops = net.memory_ops(x.device)
    got = step_gradient_norms(net, x, y, 9)
    assert net.memory_ops(x.device) is ops
    for b, norm in enumerate(got):
        net.zero_grad()
        F.binary_cross_entropy_with_logits(net(x[:10, b : b + 1])[0][9], y[9, b : b + 1]).backward()
        want = torch.nn.utils.get_total_norm([p.grad for p in net.parameters()])
        assert norm == pytest.approx(float(want), rel=1e-5)  # float32, two op orders


@pytest.mark.parametrize("cut,head", [("read-weighting", 0), ("write-weighting", 1)])
def test_a_weighting_cut_removes_exactly_the_previous_weightings_path(cut, head):
    x, y = data()
    gates = {"read_gate": None, "write_gate": None}
    name = "read_gate" if head == 0 else "write_gate"
    ignored = network(**{**gates, name: 40.0})  # g = 1: eq. (7) gives w_{t-1} no weight
    full, cut_norms = (step_gradient_norms(ignored, x, y, 9, c) for c in (None, cut))
    assert cut_norms == full  # its (1 - g) factors are exact zeros: the same sums
    carried = network(**{**gates, name: -40.0})  # g = 0: the weighting is w_{t-1} shifted
    full, cut_norms = (step_gradient_norms(carried, x, y, 9, c) for c in (None, cut))
    # a random network sends the write weighting's path little gradient (1e-5 of the norm
    # here) but no float32 rounding moves a norm by 1e-6
    assert all(abs(a - b) > 1e-6 * a for a, b in zip(full, cut_norms, strict=True))


def test_the_memory_cut_removes_the_content_path():
    x, y = data()
    net = network(read_gate=40.0, write_gate=40.0)  # all addressing by content
    full, cut = (step_gradient_norms(net, x, y, 9, c) for c in (None, "memory"))
    assert all(abs(a - b) > 1e-5 * a for a, b in zip(full, cut, strict=True))  # 5e-4 here


def test_growth_reports_median_and_max_per_horizon():
    net, (x, y) = network(), data()
    table = growth(net, x, y, (2, 5))
    for T, (median, largest) in table.items():
        norms = sorted(step_gradient_norms(net, x, y, T))
        assert median == pytest.approx(norms[1]) and largest == pytest.approx(norms[-1])


def test_bad_arguments_are_named():
    net, (x, y) = network(), data()
    with pytest.raises(ValueError, match="horizon"):
        step_gradient_norms(net, x, y, 12)
    with pytest.raises(ValueError, match="cut"):
        step_gradient_norms(net, x, y, 3, "controller")
    assert set(CUTS) == {"read-weighting", "write-weighting", "memory"}


def test_command_line_on_a_committed_network(capsys):
    assert main([str(ROOT / "docs/checkpoints/ngrams-ff-seed2"), "--sequences", "2"]) == 0
    out = capsys.readouterr().out
    assert "full:" in out and "cut memory:" in out and "T199" in out
