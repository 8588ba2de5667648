"""The committed copy checkpoints (docs/results/copy.md, copy-blanked-vectors.md,
copy-weight-decay.md, copy-gate-penalty.md, copy-forget-bias.md) still load and still copy as
documented: the LSTM
default and its earlier ones, the LSTM trained with blanked vectors, the feedforward default
and its earlier one, and the LSTM baseline."""

import pytest
from committed import CHECKPOINTS

from ntm_fast.train.checkpoint import load_checkpoint
from ntm_fast.train.evaluate import evaluate, format_table

RUNS = sorted(CHECKPOINTS.glob("copy-lstm-seed*"))  # the default command (session 23)
GATE = sorted(CHECKPOINTS.glob("copy-gate-lstm-seed*"))  # the default of session 22
DECAY = sorted(CHECKPOINTS.glob("copy-decay-lstm-seed*"))  # the default of sessions 19-21
BLANKED_5K = sorted(CHECKPOINTS.glob("copy-blanked5k-lstm-seed*"))  # the default of sessions 17-18
FAIR = sorted(CHECKPOINTS.glob("copy-fair-lstm-seed*"))  # the default of sessions 5-16
ZEROS = sorted(CHECKPOINTS.glob("copy-zeros10-lstm-seed*"))  # --task-arg zero_vector_percent=10
#: what each was trained with (the evaluation's "training_options")
TRAINED_WITH = {
    **{
        r.name: {"zero_vector_percent": 10, "zero_vector_until": 5000}
        for r in RUNS + GATE + DECAY + BLANKED_5K
    },
    **{run.name: {"zero_vector_percent": 10} for run in ZEROS},
}
#: results/copy.md: length-120 bit errors per sequence (128 sequences) of those that fail
LENGTH_120_ERRORS = {"copy-zeros10-lstm-seed2": 38.0, "copy-blanked5k-lstm-seed2": 35.9,
                     "copy-decay-lstm-seed2": 39.2, "copy-decay-lstm-seed3": 45.8}  # fmt: skip


def test_the_four_copy_runs_of_each_default_are_there():
    assert [r.name for r in RUNS] == [f"copy-lstm-seed{s}" for s in range(4)]
    assert [r.name for r in GATE] == [f"copy-gate-lstm-seed{s}" for s in range(4)]
    assert [r.name for r in DECAY] == [f"copy-decay-lstm-seed{s}" for s in range(4)]
    assert [r.name for r in BLANKED_5K] == [f"copy-blanked5k-lstm-seed{s}" for s in range(4)]
    assert [r.name for r in FAIR] == [f"copy-fair-lstm-seed{s}" for s in range(4)]
    assert [r.name for r in ZEROS] == [f"copy-zeros10-lstm-seed{s}" for s in range(4)]


@pytest.mark.parametrize(
    "run", RUNS + GATE + DECAY + BLANKED_5K + FAIR + ZEROS, ids=lambda r: r.name
)
def test_copy_checkpoint_evaluates_as_documented(run):
    result = evaluate(run, batches=1, batch_size=8, write=False)
    rows = {row["setting"]: row for row in result["rows"]}
    assert result["sequences_trained"] == 30_000
    trained_with = result.get("training_options")
    assert trained_with == TRAINED_WITH.get(run.name)
    assert rows["length 50"]["bit_errors_per_sequence"] == 0.0
    assert rows["length 10"]["bits_per_sequence"] < 0.05
    errors = rows["length 120"]["bit_errors_per_sequence"]
    exact = rows["length 120"]["sequences_exact"]
    if run.name in LENGTH_120_ERRORS:  # 8 sequences here, the same failure, in every one
        assert errors > LENGTH_120_ERRORS[run.name] / 2 and exact == 0.0
    else:  # every length-120 sequence copied exactly (fixed eval seed)
        assert errors == 0.0 and exact == 1.0
    assert "| length 120 |" in format_table(result) and "exact sequences" in format_table(result)


FEEDFORWARD = [CHECKPOINTS / f"copy-ff-seed{s}" for s in range(8)]  # the default (session 22)
FEEDFORWARD_NO_GATE = [CHECKPOINTS / f"copy-ff-nogate-seed{s}" for s in range(8)]  # sessions 16-21
#: length-120 sequences not copied exactly, of 256 (copy-gate-penalty.md, copy-blanked-vectors.md)
FEEDFORWARD_120_WRONG = {
    **dict(zip(FEEDFORWARD, [0, 0, 0, 24, 0, 1, 0, 135], strict=True)),
    **dict(zip(FEEDFORWARD_NO_GATE, [0, 0, 202, 84, 105, 0, 0, 244], strict=True)),
}


@pytest.mark.parametrize("run", FEEDFORWARD + FEEDFORWARD_NO_GATE, ids=lambda r: r.name)
def test_feedforward_copy_checkpoints_evaluate_as_documented(run):
    """The feedforward default (10% of training vectors blanked, and since session 22 the
    write-gate penalty 0.05) copies length 120 exactly where FEEDFORWARD_120_WRONG says 0;
    8 sequences here, so those missing 1 or 24 of 256 may well copy all of them."""
    result = evaluate(run, batches=1, batch_size=8, write=False)
    rows = {row["setting"]: row for row in result["rows"]}
    assert result["controller"] == "feedforward" and result["sequences_trained"] == 30_000
    assert result["training_options"] == {"zero_vector_percent": 10}
    assert rows["length 10"]["sequences_exact"] == 1.0
    exact_120, wrong = rows["length 120"]["sequences_exact"], FEEDFORWARD_120_WRONG[run]
    if wrong == 0:
        assert exact_120 == 1.0
    elif wrong > 64:  # most of 256 wrong: some of these 8 are too
        assert exact_120 < 1.0


def test_copy_baseline_checkpoint_has_not_learned_copy():
    run = CHECKPOINTS / "copy-baseline-seed0"
    result = evaluate(run, batches=1, batch_size=16, write=False)
    rows = {row["setting"]: row for row in result["rows"]}
    assert result["controller"] == "baseline" and result["sequences_trained"] == 30_000
    # results/copy.md: 8.3 bit errors per length-10 sequence (10%), 49% wrong at length 120
    assert 0.05 < rows["length 10"]["bit_error_rate"] < 0.2
    assert rows["length 120"]["bit_error_rate"] > 0.4


# results/ngrams.md: 1.93, 2.02 and 2.40 bits above the optimal estimator on 1,000 sequences
# (seeds 0, 2, 3); the bounds leave room for the 64 used here (standard error ~0.45 bits)


def test_the_default_has_the_forget_bias_and_the_one_before_not():
    """copy-forget-bias.md: the default since session 23 adds 1 to the LSTM's forget-gate
    biases at initialisation; session 22's (the same recipe otherwise) did not."""
    for run, bias in [*((r, 1.0) for r in RUNS), *((r, 0.0) for r in GATE)]:
        config = load_checkpoint(run)["model_config"]
        assert config.get("forget_bias", 0.0) == bias, run.name
