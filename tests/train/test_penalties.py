"""``--write-penalty X`` (ntm_fast.train.objective.batch_loss): the loss adds X times the squared
change of each sequence's memory over its target phase (target_memory_change), computed from
the model's differentiable history; the fast path's loss and gradients equal the reference's;
resume stays exact; bad values are named; the logged cost stays the task's."""

from __future__ import annotations

import pytest
import torch
from tiny_run import CLI, same_weights, tiny

from ntm_fast import FastNTM, ReferenceNTM
from ntm_fast.train import Trainer, UserError
from ntm_fast.train import checkpoint as ckpt
from ntm_fast.train.cli import main
from ntm_fast.train.config import APPLIED, config_from_dict, describe_schedule
from ntm_fast.train.objective import batch_loss, sequence_cost, target_memory_change
from ntm_fast.train.tasks import Batch, make_task


def test_target_memory_change_by_hand():
    # T = 4 steps, B = 3: targets at steps 2-3, 1-1 and none
    mask = torch.tensor([[0, 0, 0], [0, 1, 0], [1, 0, 0], [1, 0, 0]], dtype=torch.float32)
    lengths = torch.tensor([4, 2, 3])
    batch = Batch(torch.zeros(4, 3, 1), torch.zeros(4, 3, 1), mask, lengths)
    memory = torch.arange(5 * 3, dtype=torch.float32).view(5, 3, 1, 1) ** 2  # before step 0, after
    m = memory[:, :, 0, 0]
    by_hand = [(m[4, 0] - m[2, 0]) ** 2, (m[2, 1] - m[1, 1]) ** 2, 0.0]  # no target: no change
    expected = sum(by_hand) / 3
    torch.testing.assert_close(target_memory_change(memory, batch), torch.tensor(expected))


def _pair(controller: str):
    torch.manual_seed(0)
    ref = ReferenceNTM(9, 8, memory_slots=8, memory_width=6, controller=controller,
                       controller_size=16).double()  # fmt: skip
    return ref, FastNTM.from_reference(ref)


@pytest.mark.parametrize("controller", ["lstm", "feedforward"])
def test_fast_loss_and_gradients_equal_the_reference(controller):
    ref, fast = _pair(controller)
    task = make_task("copy", 3, max_length=5)
    batch = Batch(*(t.double() if t.is_floating_point() else t for t in task.sample(4)))
    results = []
    for model in (ref, fast):
        model.zero_grad()
        loss, cost, _ = batch_loss(model, model, batch, 0.5)
        loss.backward()
        results.append((loss, cost, [p.grad for p in model.parameters()]))
    (r_loss, r_cost, r_grads), (f_loss, f_cost, f_grads) = results
    assert r_loss > r_cost  # the penalty is there and positive
    torch.testing.assert_close(f_loss, r_loss, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(f_cost, r_cost, rtol=1e-10, atol=1e-10)
    for a, b in zip(f_grads, r_grads, strict=True):  # float64: both exact to rounding
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)
    # the penalty's gradient reaches the initial memory (its change from step 0 counts)
    assert ref.memory_bias.grad.abs().sum() > 0


def test_off_is_the_plain_cost():
    ref, _ = _pair("lstm")
    batch = make_task("copy", 1, max_length=4).sample(3)
    ref.float()
    loss, cost, errors = batch_loss(ref, ref, batch, 0.0)
    expected = sequence_cost(ref(batch.inputs)[0], batch)
    assert loss is cost and torch.equal(cost, expected[0]) and torch.equal(errors, expected[1])


def test_the_logged_cost_leaves_the_penalty_out(tmp_path):
    logged = []
    for name, penalty in (("off", 0.0), ("on", 100.0)):
        t = Trainer(tiny(tmp_path / name, write_penalty=penalty))
        t.train_step()  # the first step's cost is computed before any update
        t.close()
        logged.append(t.acc[0] / t.acc[2])
    assert torch.equal(logged[0], logged[1])


def test_resume_is_exact_and_may_change_it(tmp_path):
    assert "write_penalty" in APPLIED
    run, straight = tmp_path / "run", tmp_path / "straight"
    Trainer(tiny(run, steps=3, write_penalty=0.5)).run()
    Trainer(tiny(straight, steps=6, write_penalty=0.5)).run()
    Trainer(tiny(run, write_penalty=0.5), resume=True, resume_overrides={"steps": 6}).run()
    assert same_weights(ckpt.load_checkpoint(run), ckpt.load_checkpoint(straight))
    plain = tmp_path / "plain"
    Trainer(tiny(plain, steps=6, write_penalty=0.0)).run()
    assert not same_weights(ckpt.load_checkpoint(plain), ckpt.load_checkpoint(straight))


def test_config_checks_and_describes_it(tmp_path):
    for bad in (-0.1, float("inf"), float("nan")):
        with pytest.raises(UserError, match=r"write_penalty: expected a finite X >= 0, got"):
            tiny(tmp_path / "a", write_penalty=bad).resolved()
    with pytest.raises(UserError, match=r"write_penalty: expected 0 \(the baseline has no"):
        tiny(tmp_path / "b", controller="baseline", write_penalty=0.1,
             model_overrides={"hidden_size": 16}).resolved()  # fmt: skip
    c = tiny(tmp_path / "c", write_penalty=0.1).resolved()
    assert "target-phase write penalty 0.1" in describe_schedule(c)
    off = tiny(tmp_path / "d", write_penalty=0).resolved()
    assert "write penalty" not in describe_schedule(off)
    old = config_from_dict({"task": "copy", "controller": "lstm"}, "old.pt")
    assert old.write_penalty == 0.0  # a checkpoint from before the field trained without it


def test_cli_flag_reaches_the_run(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "copy", *CLI, "--steps", "2", "--write-penalty", "0.25",
                 "--out", str(out)]) == 0  # fmt: skip
    printed = capsys.readouterr()
    assert "target-phase write penalty 0.25" in printed.out + printed.err
    assert ckpt.load_checkpoint(out)["config"]["write_penalty"] == 0.25


def test_it_starts_at_write_penalty_from(tmp_path):
    runs = {}
    for name, kw in {"off": dict(write_penalty=0.0), "late": dict(write_penalty=5.0,
                     write_penalty_from=4), "from 2": dict(write_penalty=5.0,
                     write_penalty_from=2)}.items():  # fmt: skip
        Trainer(tiny(tmp_path / name, steps=4, **kw)).run()
        runs[name] = ckpt.load_checkpoint(tmp_path / name)
    assert same_weights(runs["off"], runs["late"])  # steps 0-3: before its first step
    assert not same_weights(runs["off"], runs["from 2"])
    with pytest.raises(UserError, match=r"write_penalty_from: expected a step >= 0, got -1"):
        tiny(tmp_path / "bad", write_penalty_from=-1).resolved()
    c = tiny(tmp_path / "c", write_penalty=0.1, write_penalty_from=5000).resolved()
    assert "target-phase write penalty 0.1 from step 5000" in describe_schedule(c)
    assert "write_penalty_from" in APPLIED
    old = config_from_dict({"task": "copy", "controller": "lstm"}, "old.pt")
    assert old.write_penalty_from == 0
