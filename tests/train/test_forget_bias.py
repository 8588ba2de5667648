"""forget_bias: added to the LSTM controller's forget-gate biases after torch's initialisation,
every other parameter as drawn without it; refused where there is no forget gate; carried by
the model's config (checkpoints, FastNTM) and by ``ntm-fast train --forget-bias``."""

from __future__ import annotations

import math

import pytest
import torch
from tiny_run import CLI

from ntm_fast import FastNTM, ReferenceNTM
from ntm_fast.train.checkpoint import load_checkpoint, load_model
from ntm_fast.train.cli import main
from ntm_fast.train.presets import preset

SIZES = dict(memory_slots=8, memory_width=4, controller_size=6)


@pytest.mark.parametrize("cls", [ReferenceNTM, FastNTM])
@pytest.mark.parametrize("bias", [1.0, -0.5, 3])
def test_only_the_forget_gate_biases_move(cls, bias):
    torch.manual_seed(3)
    plain = cls(5, 4, controller_layers=2, **SIZES).state_dict()
    torch.manual_seed(3)
    model = cls(5, 4, controller_layers=2, forget_bias=bias, **SIZES)
    C = SIZES["controller_size"]
    for name, value in model.state_dict().items():
        expected = plain[name].clone()
        if name.endswith("bias_ih"):  # torch's gate order: input, forget, cell, output
            expected[C : 2 * C] += bias
        assert torch.equal(value, expected), name
    assert model.config["forget_bias"] == bias


def test_the_config_rebuilds_the_same_model():
    torch.manual_seed(0)
    ref = ReferenceNTM(5, 4, forget_bias=1.0, **SIZES)
    torch.manual_seed(0)
    fast = FastNTM(**ref.config)
    for name, value in ref.state_dict().items():
        assert torch.equal(value, fast.state_dict()[name]), name
    x = torch.rand(6, 2, 5)
    torch.testing.assert_close(fast(x)[0], ref(x)[0], rtol=1e-5, atol=1e-5)  # float32 kernels


@pytest.mark.parametrize(
    ("kw", "error", "says"),
    [
        (dict(controller="feedforward", forget_bias=1.0), ValueError, "forget gate), got 1.0"),
        (dict(forget_bias=math.nan), ValueError, "expected a finite number, got nan"),
        (dict(forget_bias=math.inf), ValueError, "expected a finite number, got inf"),
        (dict(forget_bias="1"), TypeError, "expected a number, got str '1'"),
        (dict(forget_bias=True), TypeError, "expected a number, got bool"),
    ],
)
def test_bad_values_are_refused_by_name(kw, error, says):
    with pytest.raises(error, match="forget_bias: ") as info:
        ReferenceNTM(5, 4, **SIZES, **kw)
    assert says in str(info.value)


def test_a_feedforward_controller_takes_zero():
    assert ReferenceNTM(5, 4, controller="feedforward", forget_bias=0.0, **SIZES)


def test_every_ntm_preset_names_it():
    for task in ("copy", "repeat_copy", "associative_recall", "ngrams", "priority_sort"):
        for controller in ("lstm", "feedforward"):
            value = preset(task, controller).model["forget_bias"]
            assert value == 0.0 or controller == "lstm", (task, controller)


def test_the_training_flag_reaches_the_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "copy", *CLI, "--steps", "1", "--forget-bias", "0.75",
                 "--out", str(out)]) == 0  # fmt: skip
    assert load_checkpoint(out)["model_config"]["forget_bias"] == 0.75
    assert "model: LSTM forget-gate biases started +0.75 from torch's draw" in (
        capsys.readouterr().err
    )
    assert main(["train", "copy", *CLI, "--steps", "2", "--resume", "--out", str(out)]) == 0
    assert "forget-gate" not in capsys.readouterr().err  # an initialisation: not on resume
    warm = tmp_path / "warm"  # nor when the weights come from another run
    assert main(["train", "copy", *CLI, "--steps", "1", "--init-from", str(out),
                 "--out", str(warm)]) == 0  # fmt: skip
    assert "forget-gate" not in capsys.readouterr().err
    _, model = load_model(out)  # rebuilt from its config, then its weights loaded
    assert model.config["forget_bias"] == 0.75


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--forget-bias", "nan"], "argument --forget-bias: expected a finite number, got nan"),
        (["--forget-bias", "x"], "argument --forget-bias: expected a number, got 'x'"),
        (["--forget-bias", "1", "--controller", "baseline"],
         "--forget-bias: not a setting of --controller baseline"),
        (["--forget-bias", "1", "--controller", "feedforward"], "no forget gate"),
    ],
)  # fmt: skip
def test_the_training_flag_refuses_bad_values(tmp_path, capsys, args, says):
    try:
        rc = main(["train", "copy", "--steps", "1", *args, "--out", str(tmp_path / "r"),
                   "--no-plots", "--no-progress"])  # fmt: skip
    except SystemExit as exc:  # argparse
        rc = exc.code
    assert rc != 0
    assert says in capsys.readouterr().err
