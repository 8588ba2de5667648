"""``--marker-weight X`` (ntm_fast.train.objective.batch_loss, end_marker_cost): the end
marker's cross-entropy counts X times in the loss of a task with one (repeat copy), from
``penalty_from`` on; the logged cost stays the task's; the fast path's loss and gradients
equal the reference's; resume stays exact; bad values and tasks without a marker are named."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from tiny_run import CLI, cli_repeat_copy, same_weights, tiny

from ntm_fast import FastNTM, ReferenceNTM
from ntm_fast.train import Trainer, UserError
from ntm_fast.train import checkpoint as ckpt
from ntm_fast.train.cli import main
from ntm_fast.train.config import APPLIED, config_from_dict
from ntm_fast.train.config_checks import LOSS_TERMS
from ntm_fast.train.objective import batch_loss, end_marker_cost, sequence_cost
from ntm_fast.train.schedule import describe_schedule, penalties
from ntm_fast.train.tasks import TASKS, Batch, make_task

# without the LSTM preset's controller reset, which also starts at penalty_from
REPEAT = dict(task="repeat_copy", task_overrides={"max_length": 3, "max_repeats": 2},
              controller_reset=0.0)  # fmt: skip


def _batch(seed: int = 2, size: int = 4) -> Batch:
    batch = make_task("repeat_copy", seed, max_length=3, max_repeats=3).sample(size)
    return Batch(*(t.double() if t.is_floating_point() else t for t in batch))


def test_only_repeat_copy_has_an_end_marker():
    assert [name for name, task in TASKS.items() if task.end_marker] == ["repeat_copy"]
    batch = make_task("repeat_copy", 0).sample(8)
    last = batch.targets[..., -1] * batch.mask  # one marker bit per sequence, at its last step
    assert torch.equal(last.sum(0), torch.ones(8))
    rows = torch.arange(8)
    assert torch.equal(batch.targets[batch.lengths - 1, rows, -1], torch.ones(8))


def test_end_marker_cost_is_the_last_channel_of_the_cost():
    batch = _batch()
    logits = torch.randn(batch.targets.shape, dtype=torch.float64)
    others = Batch(batch.inputs, batch.targets[..., :-1], batch.mask, batch.lengths)
    cost, _ = sequence_cost(logits, batch)
    rest, _ = sequence_cost(logits[..., :-1], others)
    torch.testing.assert_close(end_marker_cost(logits, batch), cost - rest)  # float64: rounding
    by_hand = (
        sum(  # -log sigmoid(+-x) at each target step of each sequence
            -F.logsigmoid(logits[t, b, -1] * (2 * batch.targets[t, b, -1] - 1))
            for t in range(logits.shape[0])
            for b in range(logits.shape[1])
            if batch.mask[t, b]
        )
        / logits.shape[1]
    )
    torch.testing.assert_close(end_marker_cost(logits, batch), by_hand)


def _pair(controller: str):
    torch.manual_seed(0)
    ref = ReferenceNTM(10, 9, memory_slots=8, memory_width=6, controller=controller,
                       controller_size=16).double()  # fmt: skip
    return ref, FastNTM.from_reference(ref)


@pytest.mark.parametrize("controller", ["lstm", "feedforward"])
@pytest.mark.parametrize("weight", [0.0, 0.5, 3.0])
@pytest.mark.parametrize("gate_penalty", [0.0, 0.2], ids=["plain", "with-history"])
def test_loss_weights_the_marker_and_fast_equals_reference(controller, weight, gate_penalty):
    ref, fast = _pair(controller)
    batch = _batch()
    channel = torch.ones(9, dtype=torch.float64)
    channel[-1] = weight
    results = []
    for model in (ref, fast):
        model.zero_grad()
        loss, cost, errors = batch_loss(model, model, batch, gate_penalty=gate_penalty,
                                        marker_weight=weight)  # fmt: skip
        logits = model(batch.inputs)[0]
        plain_cost, plain_errors = sequence_cost(logits, batch)
        assert torch.equal(cost, plain_cost) and torch.equal(errors, plain_errors)
        if not gate_penalty:  # an independent form: the per-channel weight of the BCE
            ce = F.binary_cross_entropy_with_logits(logits, batch.targets, weight=channel,
                                                    reduction="none").sum(-1)  # fmt: skip
            torch.testing.assert_close(loss, (ce * batch.mask).sum() / 4)
        loss.backward()
        results.append((loss, [p.grad.clone() for p in model.parameters()]))
    (r_loss, r_grads), (f_loss, f_grads) = results
    torch.testing.assert_close(f_loss, r_loss, rtol=1e-10, atol=1e-10)
    for a, b in zip(f_grads, r_grads, strict=True):  # float64: both exact to rounding
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)
    unweighted = batch_loss(ref, ref, batch, gate_penalty=gate_penalty)[0]
    assert (r_loss > unweighted) == (weight > 1) and (r_loss < unweighted) == (weight < 1)


def test_weight_one_is_the_plain_cost():
    ref, _ = _pair("lstm")
    loss, cost, _ = batch_loss(ref, ref, _batch(), marker_weight=1.0)
    assert loss is cost


def test_the_logged_cost_leaves_the_weight_out(tmp_path):
    logged = []
    for name, weight in (("off", 1.0), ("on", 50.0)):
        t = Trainer(tiny(tmp_path / name, **REPEAT, marker_weight=weight))
        t.train_step()  # the first step's cost is computed before any update
        t.close()
        logged.append(t.acc[0] / t.acc[2])
    assert torch.equal(logged[0], logged[1])


def test_resume_is_exact_and_may_change_it(tmp_path):
    assert "marker_weight" in APPLIED
    run, straight, plain = tmp_path / "run", tmp_path / "straight", tmp_path / "plain"
    Trainer(tiny(run, steps=3, **REPEAT, marker_weight=3.0)).run()
    Trainer(tiny(straight, steps=6, **REPEAT, marker_weight=3.0)).run()
    Trainer(tiny(run, **REPEAT, marker_weight=3.0), resume=True,
            resume_overrides={"steps": 6}).run()  # fmt: skip
    assert same_weights(ckpt.load_checkpoint(run), ckpt.load_checkpoint(straight))
    Trainer(tiny(plain, steps=6, **REPEAT)).run()
    assert not same_weights(ckpt.load_checkpoint(plain), ckpt.load_checkpoint(straight))


def test_it_starts_at_penalty_from(tmp_path):
    runs = {}
    for name, kw in {"off": {}, "late": {"marker_weight": 9.0, "penalty_from": 4},
                     "from 2": {"marker_weight": 9.0, "penalty_from": 2}}.items():  # fmt: skip
        Trainer(tiny(tmp_path / name, steps=4, **REPEAT, **kw)).run()
        runs[name] = ckpt.load_checkpoint(tmp_path / name)
    assert same_weights(runs["off"], runs["late"])  # steps 0-3: before its first step
    assert not same_weights(runs["off"], runs["from 2"])
    c = tiny(tmp_path / "c", **REPEAT, marker_weight=3.0, penalty_from=500).resolved()
    assert penalties(c, 499) == LOSS_TERMS  # batch_loss's keywords, all off
    assert penalties(c, 500) == {**LOSS_TERMS, "marker_weight": 3.0}
    assert "end marker weighted 3, penalties from step 500" in describe_schedule(c)


def test_config_checks_and_describes_it(tmp_path):
    for bad in (-0.5, float("inf"), float("nan")):
        with pytest.raises(UserError, match=r"marker_weight: expected a finite X >= 0 \(1: as"):
            tiny(tmp_path / "a", **REPEAT, marker_weight=bad).resolved()
    with pytest.raises(UserError, match=r"marker_weight: expected 1 for task 'copy', which has "
                       r"no end marker \(only repeat_copy has one\), got 2"):  # fmt: skip
        tiny(tmp_path / "b", marker_weight=2.0).resolved()
    assert tiny(tmp_path / "b", marker_weight=1.0).resolved().marker_weight == 1.0
    baseline = tiny(tmp_path / "c", **REPEAT, controller="baseline", marker_weight=2.0,
                    model_overrides={"hidden_size": 16}).resolved()  # fmt: skip
    assert baseline.marker_weight == 2.0  # its outputs have the marker too
    default = tiny(tmp_path / "d", **REPEAT).resolved()
    assert default.marker_weight == 1.0 and "marker" not in describe_schedule(default)
    assert "end marker weighted 0.5" in describe_schedule(
        tiny(tmp_path / "e", **REPEAT, marker_weight=0.5).resolved()
    )
    old = config_from_dict({"task": "repeat_copy", "controller": "lstm"}, "old.pt")
    assert old.marker_weight == 1.0  # a checkpoint from before the field trained without it


def test_cli_flag_reaches_the_run(tmp_path, capsys):
    printed, config = cli_repeat_copy(tmp_path / "run", capsys, "--marker-weight", "3")
    assert "end marker weighted 3" in printed and config["marker_weight"] == 3.0
    assert main(["train", "copy", *CLI, "--steps", "2", "--marker-weight", "3",
                 "--out", str(tmp_path / "copy")]) == 1  # fmt: skip
    assert "marker_weight: expected 1 for task 'copy'" in capsys.readouterr().err


def test_the_finishing_stage_keeps_it(tmp_path):
    from ntm_fast.train.stages import finishing_config

    first = tiny(tmp_path, task="repeat_copy", controller="feedforward", task_overrides={},
                 marker_weight=2.5, penalty_from=7).resolved()  # fmt: skip
    assert first.finish_steps > 0  # the preset has a finishing stage
    second = finishing_config(first, str(tmp_path / "finish"))
    assert (second.marker_weight, second.penalty_from) == (2.5, 7)
