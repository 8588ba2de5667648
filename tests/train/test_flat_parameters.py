"""The trainer's flat parameter and gradient buffers (ntm_fast.train.flat): training is the
same to the bit as with separate tensors (every task, both optimisers, every clip), and
checkpoints are interchangeable between the two layouts."""

from __future__ import annotations

import pytest
import torch
from tiny_run import tiny

from ntm_fast.train import Trainer
from ntm_fast.train import trainer as trainer_module
from ntm_fast.train.flat import FlatParameters
from ntm_fast.train.optim import GravesRMSprop, SpikeClip, clip_gradients

CLIPS = dict(clip_norm=0.5, clip_spike=1.5)  # small enough that both clips act every step


def _separate(monkeypatch) -> None:
    """Trainers built after this keep one tensor per parameter (the layout under DDP)."""
    monkeypatch.setattr(trainer_module, "FlatParameters", lambda params: None)


def _train(config, monkeypatch=None, steps=5) -> Trainer:
    if monkeypatch is not None:
        _separate(monkeypatch)
    t = Trainer(config)
    for _ in range(steps):
        t.train_step()
    return t


def _assert_same_training(a: Trainer, b: Trainer) -> None:
    for (name, x), (_, y) in zip(a.model.state_dict().items(), b.model.state_dict().items(),
                                 strict=True):  # fmt: skip
        assert torch.equal(x, y), name
    sa, sb = a.state()["optimizer"], b.state()["optimizer"]
    assert sa["param_groups"] == sb["param_groups"]
    assert sa["state"].keys() == sb["state"].keys()
    for i in sa["state"]:
        for key, value in sa["state"][i].items():
            assert torch.equal(value, sb["state"][i][key]), (i, key)
    assert torch.equal(a.acc, b.acc)


@pytest.mark.parametrize(
    "task,controller",
    [("copy", "lstm"), ("copy", "feedforward"), ("repeat_copy", "lstm"),
     ("associative_recall", "lstm"), ("ngrams", "lstm"), ("priority_sort", "lstm"),
     ("copy", "baseline")],
)  # fmt: skip
@pytest.mark.parametrize("optimizer", ["rmsprop", "adam"])
def test_bit_identical_to_separate_tensors(tmp_path, monkeypatch, task, controller, optimizer):
    kw = dict(task=task, controller=controller, optimizer=optimizer, task_overrides={},
              backend="auto", **CLIPS)  # fmt: skip
    if controller == "baseline":
        kw["model_overrides"] = {"hidden_size": 16}
    flat = _train(tiny(tmp_path / "flat", **kw))
    assert flat.flat is not None and len(flat.optimizer.param_groups[0]["params"]) == 1
    separate = _train(tiny(tmp_path / "separate", **kw), monkeypatch)
    assert separate.flat is None
    _assert_same_training(flat, separate)
    flat.close()
    separate.close()


@pytest.mark.parametrize("optimizer", ["rmsprop", "adam"])
@pytest.mark.parametrize("saved_flat", [True, False])
def test_checkpoints_resume_across_layouts(tmp_path, monkeypatch, optimizer, saved_flat):
    """A checkpoint written with one layout resumes with the other and continues exactly as
    an uninterrupted run does."""
    kw = dict(optimizer=optimizer, steps=8, **CLIPS)
    whole = _train(tiny(tmp_path / "whole", **kw), steps=8)
    with monkeypatch.context() as m:
        first = _train(tiny(tmp_path / "run", **kw), None if saved_flat else m, steps=4)
        first.save()
        first.close()
    with monkeypatch.context() as m:
        if saved_flat:
            _separate(m)
        resumed = Trainer(tiny(tmp_path / "run", **kw), resume=True)
        assert (resumed.flat is None) == saved_flat
        for _ in range(4):
            resumed.train_step()
    _assert_same_training(whole, resumed)
    whole.close()
    resumed.close()


def test_parameters_are_views_of_one_buffer_and_loads_land_in_it():
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    flat = FlatParameters(list(model.parameters()))
    assert flat.param.numel() == sum(p.numel() for p in model.parameters())
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name])
    for p in model.parameters():
        assert p.untyped_storage().data_ptr() == flat.param.untyped_storage().data_ptr()
        assert p.grad.untyped_storage().data_ptr() == flat.param.grad.untyped_storage().data_ptr()
    model.load_state_dict({k: torch.full_like(v, 2.0) for k, v in before.items()})
    assert torch.equal(flat.param.detach(), torch.full_like(flat.param, 2.0))
    model(torch.randn(5, 3)).sum().backward()  # autograd accumulates into the views
    assert flat.param.grad.abs().sum() > 0
    flat.zero_grad()
    assert all(p.grad is not None and not p.grad.any() for p in model.parameters())


def test_clipping_on_the_flat_buffer_matches_torchs_clips():
    g = torch.Generator().manual_seed(3)
    shapes = [(7, 5), (5,), (3, 11), (1,)]
    grads = [torch.randn(s, generator=g) * 4 for s in shapes]
    separate = [torch.nn.Parameter(torch.zeros(s)) for s in shapes]
    model = torch.nn.ParameterList([torch.nn.Parameter(torch.zeros(s)) for s in shapes])
    flat = FlatParameters(list(model.parameters()))
    spikes = SpikeClip(1.2), SpikeClip(1.2)
    for step in range(4):
        scale = 10.0**step  # later steps spike, so the running-mean clip acts
        for p, q, gr in zip(separate, model.parameters(), grads, strict=True):
            p.grad = gr * scale
            q.grad.copy_(gr * scale)
        torch.nn.utils.clip_grad_value_(separate, 3.0)
        torch.nn.utils.clip_grad_norm_(separate, 5.0)
        spikes[0](separate)
        clip_gradients(list(model.parameters()), 3.0, 5.0, spikes[1], flat.param.grad)
        for p, q in zip(separate, model.parameters(), strict=True):
            assert torch.equal(p.grad, q.grad)
        assert torch.equal(spikes[0].mean, spikes[1].mean)


def test_refuses_mixed_dtypes_and_foreign_optimizer_state():
    with pytest.raises(ValueError, match="params: expected one device and dtype"):
        FlatParameters([torch.nn.Parameter(torch.zeros(2)),
                        torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))])  # fmt: skip
    with pytest.raises(ValueError, match="params: expected at least one"):
        FlatParameters([])
    flat = FlatParameters(
        [torch.nn.Parameter(torch.zeros(2, 3)), torch.nn.Parameter(torch.zeros(4))]
    )
    other = [torch.nn.Parameter(torch.zeros(2, 3)), torch.nn.Parameter(torch.zeros(5))]
    opt = GravesRMSprop(other)
    for p in other:
        p.grad = torch.ones_like(p)
    opt.step()
    with pytest.raises(ValueError, match=r"optimizer state 'n': shapes \[\(2, 3\), \(5,\)\]"):
        flat.join_optimizer_state(opt.state_dict())
    three = GravesRMSprop([torch.nn.Parameter(torch.zeros(1)) for _ in range(3)]).state_dict()
    with pytest.raises(ValueError, match=r"expected parameters 0\.\.1"):
        flat.join_optimizer_state(three)
