"""``--weight-decay`` (ntm_fast.train.optim.ControllerWeightDecay): the controller's weight
matrices, and only they, shrink by lr_t x rate before each optimiser step; the flat and the
per-tensor (DDP) layouts agree to the bit; resume stays exact; bad values are named."""

from __future__ import annotations

import pytest
import torch
from tiny_run import CLI, same_weights, tiny

from ntm_fast.train import Trainer, UserError
from ntm_fast.train import checkpoint as ckpt
from ntm_fast.train import trainer as trainer_module
from ntm_fast.train.cli import main
from ntm_fast.train.config import APPLIED, config_from_dict
from ntm_fast.train.flat import FlatParameters
from ntm_fast.train.optim import ControllerWeightDecay, controller_decay
from ntm_fast.train.schedule import describe_schedule


def _model(where, controller: str = "lstm", **kw) -> torch.nn.Module:
    t = Trainer(tiny(where / controller, controller=controller, **kw))
    t.close(discard_if_unused=True)
    return t.model


def _controller_matrix(name: str, p: torch.Tensor) -> bool:
    return name.startswith("controller.") and p.dim() > 1


@pytest.mark.parametrize("controller", ["lstm", "feedforward"])
@pytest.mark.parametrize("flat", [True, False])
def test_shrinks_exactly_the_controller_matrices(tmp_path, controller, flat):
    model = _model(tmp_path, controller)
    buffers = FlatParameters(list(model.parameters())) if flat else None
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    lr, rate = 0.01, 2.0
    ControllerWeightDecay(rate, model, buffers).apply(lr)
    decayed = 0
    for name, p in model.named_parameters():
        if _controller_matrix(name, p):
            decayed += 1
            # the float32 factor the mask form computes, to the bit
            factor = 1 - lr * rate * torch.ones((), dtype=p.dtype)
            assert torch.equal(p, before[name] * factor), name
            assert not torch.equal(p, before[name])
        else:
            assert torch.equal(p, before[name]), name
    assert decayed == (2 if controller == "lstm" else 1)  # weight_ih, weight_hh / one layer


def test_off_is_none_and_the_baseline_is_refused(tmp_path):
    assert controller_decay(0.0, _model(tmp_path)) is None
    baseline = _model(tmp_path, "baseline", model_overrides={"hidden_size": 16})
    with pytest.raises(ValueError, match="weight_decay: DeepLSTM has no NTM controller"):
        ControllerWeightDecay(0.1, baseline)


def _trained(config, separate: pytest.MonkeyPatch | None = None) -> Trainer:
    if separate is not None:  # one tensor per parameter: the layout under DDP
        separate.setattr(trainer_module, "FlatParameters", lambda params: None)
    t = Trainer(config)
    for _ in range(5):
        t.train_step()
    t.close()
    return t


@pytest.mark.parametrize("optimizer", ["rmsprop", "adam"])
@pytest.mark.parametrize("controller", ["lstm", "feedforward"])
def test_flat_and_separate_layouts_agree_to_the_bit(tmp_path, monkeypatch, optimizer, controller):
    kw = dict(controller=controller, optimizer=optimizer, weight_decay=5.0, lr=0.01)
    flat = _trained(tiny(tmp_path / "flat", **kw))
    plain = _trained(tiny(tmp_path / "plain", **{**kw, "weight_decay": 0.0}))
    separate = _trained(tiny(tmp_path / "separate", **kw), monkeypatch)
    assert flat.flat is not None and separate.flat is None
    for (name, x), (_, y), (_, z) in zip(
        flat.model.state_dict().items(), separate.model.state_dict().items(),
        plain.model.state_dict().items(), strict=True,
    ):  # fmt: skip
        assert torch.equal(x, y), name
        if name.startswith("controller.") and name.split(".")[-1].startswith("weight"):
            assert x.norm() < z.norm(), name  # the decay acted (5 steps x lr 0.01 x 5: ~22%)


def test_resume_is_exact_and_may_change_the_rate(tmp_path):
    assert "weight_decay" in APPLIED  # read afresh each step, like the clips
    run, straight = tmp_path / "run", tmp_path / "straight"
    Trainer(tiny(run, steps=3, weight_decay=2.0)).run()
    Trainer(tiny(straight, steps=6, weight_decay=2.0)).run()
    resumed = Trainer(tiny(run, weight_decay=2.0), resume=True, resume_overrides={"steps": 6})
    assert resumed.decay is not None and resumed.decay.rate == 2.0
    resumed.run()
    assert same_weights(ckpt.load_checkpoint(run), ckpt.load_checkpoint(straight))


def test_config_checks_and_describes_it(tmp_path):
    # tiny's lr is 3e-3: a step would scale the weights by 1 - lr x X, so X < 1 / lr
    for bad in (-0.1, 1 / 3e-3, float("inf"), float("nan")):
        with pytest.raises(
            UserError, match=r"weight_decay: expected 0 <= X < 1 / lr = 333\.333, got"
        ):
            tiny(tmp_path / "a", weight_decay=bad).resolved()
    assert tiny(tmp_path / "a", weight_decay=300.0).resolved().weight_decay == 300.0
    with pytest.raises(UserError, match=r"weight_decay: expected 0 \(the baseline"):
        tiny(tmp_path / "b", controller="baseline", weight_decay=0.1,
             model_overrides={"hidden_size": 16}).resolved()  # fmt: skip
    c = tiny(tmp_path / "c", weight_decay=0.3).resolved()
    assert "controller weight decay 0.3" in describe_schedule(c)
    assert "weight decay" not in describe_schedule(tiny(tmp_path / "d", weight_decay=0).resolved())
    # the preset's: the LSTM copy default alone (results/copy-weight-decay.md)
    assert tiny(tmp_path / "e").resolved().weight_decay == 0.3
    for task, controller in (("copy", "feedforward"), ("repeat_copy", "lstm")):
        assert tiny(tmp_path / task, task=task, controller=controller).resolved().weight_decay == 0
    # a checkpoint from before the field existed trained without it
    old = config_from_dict({"task": "copy", "controller": "lstm"}, "old.pt")
    assert old.weight_decay == 0.0


def test_cli_flag_reaches_the_run(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "copy", *CLI, "--steps", "2", "--weight-decay", "0.25",
                 "--out", str(out)]) == 0  # fmt: skip
    printed = capsys.readouterr()
    assert "controller weight decay 0.25" in printed.out + printed.err  # the run's first line
    assert ckpt.load_checkpoint(out)["config"]["weight_decay"] == 0.25
