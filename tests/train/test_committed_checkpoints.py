"""The trained checkpoints committed under docs/checkpoints/ (docs/results/) still
load and still copy: a change of the checkpoint format, the presets or the model that breaks
them fails here, not in a user's `ntm-fast eval`."""

import pytest
from committed import CHECKPOINTS, ngrams_excess, two_stage_rows

from ntm_fast.train import checkpoint as ckpt
from ntm_fast.train.evaluate import evaluate


def test_feedforward_associative_recall_checkpoint_recalls():
    run = CHECKPOINTS / "assoc-ff-seed0"
    result = evaluate(run, batches=1, batch_size=8, write=False)
    rows = {row["setting"]: row for row in result["rows"]}
    assert result["controller"] == "feedforward" and result["sequences_trained"] == 320_000
    # results/associative-recall.md: 0.00-0.07 bit errors per sequence at 6-20 items (128 each)
    assert rows["6 items"]["bit_errors_per_sequence"] == 0.0
    assert rows["20 items"]["bit_errors_per_sequence"] <= 0.25


def test_lstm_associative_recall_checkpoint_recalls_up_to_20_items():
    result = evaluate(CHECKPOINTS / "assoc-lstm-seed0", batches=1, batch_size=8, write=False)
    rows = {row["setting"]: row for row in result["rows"]}
    assert result["controller"] == "lstm" and result["sequences_trained"] == 320_000
    # results/associative-recall.md: no bit error at 6-20 items (but one ambiguous sequence)
    assert rows["6 items"]["bit_errors_per_sequence"] == 0.0
    assert rows["20 items"]["bit_errors_per_sequence"] == 0.0


def test_ngrams_checkpoint_is_near_the_optimal_estimator():
    result = evaluate(CHECKPOINTS / "ngrams-lstm-seed0", batches=1, batch_size=64, write=False)
    row = result["rows"][0]
    # results.md: 1.0 bit above the optimal estimator on 1,000 sequences; 64 vary more
    assert 0 < row["bits_per_sequence"] - row["optimal_bits_per_sequence"] < 3


def test_the_ngrams_default_commands_checkpoint_is_at_the_optimal_estimator():
    """results/ngrams.md (session 34): `ntm-fast train ngrams`, seed 0, 300k sequences (90k
    steps at a constant rate, then the cosine decay), 0.07 +- 0.015 bits above the optimal
    estimator on 1,000 sequences; the same run at 180k, before the decay, 0.65 +- 0.04. On 64
    sequences the excess's standard error is ~0.06 (decayed) and ~0.15 (at 180k)."""

    decayed = ngrams_excess("ngrams-lstm-default-seed0", "lstm", 300_000)
    constant = ngrams_excess("ngrams-lstm-90k-seed0", "lstm", 180_000)
    assert -0.2 < decayed < 0.3
    assert 0.3 < constant < 2
    assert constant - decayed > 0.3


def test_feedforward_repeat_copy_checkpoint_repeats_within_the_training_range():
    run = CHECKPOINTS / "repeat-copy-ff-per-slot-seed0"
    result = evaluate(run, batches=1, batch_size=8, write=False)
    rows = {row["setting"]: row for row in result["rows"]}
    assert result["controller"] == "feedforward" and result["sequences_trained"] == 475_354
    # results/repeat-copy.md: 0.02 bit errors per sequence at length 10 x 10 repeats
    assert rows["length 10, 10 repeats"]["bit_error_rate"] < 1e-3
    assert rows["length 20, 10 repeats"]["bit_error_rate"] > 0.1  # the stated failure


@pytest.mark.parametrize("seed", [0, 1])
def test_priority_sort_ntm_checkpoints_sort(seed):
    result = evaluate(CHECKPOINTS / f"priority-sort-lstm-seed{seed}", batches=1,
                      batch_size=50, write=False)  # fmt: skip
    assert result["sequences_trained"] == 600_000
    # results/priority-sort.md: 13.6 and 14.5 bits per sequence on 1,000, baseline 90.3
    assert result["rows"][0]["bits_per_sequence"] < 25
    # sorts priorities held 0.1 apart (0.00 and 0.17 bit errors per sequence on 1,000):
    # its errors are near-ties; the gap table's widest bin has none
    assert result["rows"][1]["setting"] == "priorities 0.1 apart"
    assert result["rows"][1]["bit_errors_per_sequence"] < 0.5
    assert result["errors_by_gap"][-1]["bit_errors_per_output"] < 0.01
    assert result["memory_use"]["read_hits"] > 0.5


# results/ngrams.md, 1,000 sequences: 1.93, 2.02, 2.40, 7.34, 2.91, 3.07, 5.07 bits above the
# optimal estimator (standard errors 0.1-0.2; on the 64 sequences here ~0.5-0.8)
@pytest.mark.parametrize(
    ("seed", "sequences", "low", "high"),
    [(0, 780_000, 0.5, 4), (2, 1_260_000, 0.5, 4), (3, 780_000, 0.5, 4), (5, 780_000, 5, 10),
     (6, 780_000, 0.5, 5), (7, 780_000, 1, 5.5), (8, 780_000, 3, 8)],
)  # fmt: skip
def test_feedforward_ngrams_checkpoints_are_where_results_says(seed, sequences, low, high):
    run = CHECKPOINTS / f"ngrams-ff-seed{seed}"
    result = evaluate(run, batches=1, batch_size=64, write=False)
    row = result["rows"][0]
    assert result["controller"] == "feedforward" and result["sequences_trained"] == sequences
    assert low < row["bits_per_sequence"] - row["optimal_bits_per_sequence"] < high


def test_feedforward_ngrams_writing_where_it_read_is_near_the_optimal_estimator():
    """results/ngrams-write-follows-read.md (session 36): seed 8 through the default phased
    command with --write-follow-penalty 0.01, 0.49 +- 0.04 bits above the optimal estimator on
    1,000 sequences where its default run ends 5.07 +- 0.18 (paired: -4.58 +- 0.18). On the
    same 64 sequences here the standard errors are ~0.15 and ~0.6."""
    config = ckpt.load_checkpoint(CHECKPOINTS / "ngrams-ff-follow-seed8")["config"]
    assert (config["seed"], config["write_follow_penalty"]) == (8, 0.01)
    follow = ngrams_excess("ngrams-ff-follow-seed8", "feedforward", 780_000)
    default = ngrams_excess("ngrams-ff-seed8", "feedforward", 780_000)
    assert -0.3 < follow < 1.3 and default - follow > 2


def test_feedforward_ngrams_writing_where_it_read_seed_4():
    """The same command on seed 4 (sessions 38-39): 0.67 +- 0.04 bits above the optimal
    estimator on 1,000 sequences (its default run: 8.27 at 300k); 0.74 on these 64."""
    config = ckpt.load_checkpoint(CHECKPOINTS / "ngrams-ff-follow-seed4")["config"]
    assert (config["seed"], config["write_follow_penalty"]) == (4, 0.01)
    assert -0.3 < ngrams_excess("ngrams-ff-follow-seed4", "feedforward", 780_000) < 1.3


# results/repeat-copy-128.md, trained on 128 slots: per-bit error at length 20 x 10 repeats
# (128 sequences) 0.0001, 0.0048, 0.18, 0.058, 0.109, 0.176, 0.115, 0.038, 0.024, 0.025 for the
# LSTM-controlled seeds 0-9 (at 10 x 10 below 1e-3, seed 7's 0.0072 aside); bounds leave room
# for the 16 sequences used here
@pytest.mark.parametrize(
    ("seed", "low", "high"),
    [(0, 0, 0.01), (1, 0, 0.02), (2, 0.1, 0.3), (3, 0.02, 0.12), (4, 0.05, 0.2), (5, 0.1, 0.3),
     (6, 0.05, 0.25), (7, 0.02, 0.15), (8, 0.01, 0.08), (9, 0.01, 0.08)],
)  # fmt: skip
def test_repeat_copy_checkpoints_on_128_slots_generalise_as_results_says(seed, low, high):
    run = CHECKPOINTS / f"repeat-copy-lstm-on128-seed{seed}"
    result = evaluate(run, batches=1, batch_size=16, write=False)
    rows = {row["setting"]: row for row in result["rows"]}
    assert result["sequences_trained"] == 80_000
    assert rows["length 10, 10 repeats"]["bit_error_rate"] < (0.02 if seed == 7 else 1e-3)
    assert low <= rows["length 20, 10 repeats"]["bit_error_rate"] <= high
    if seed == 0:  # copies on past 10 repeats; the end marker fails there, as in the paper
        assert rows["length 10, 20 repeats"]["copy_bit_error_rate"] < 0.1
        assert rows["length 10, 20 repeats"]["end_marker_right"] == 0


def test_feedforward_repeat_copy_with_a_shared_row_nearly_generalises():
    result = evaluate(CHECKPOINTS / "repeat-copy-ff-on128-seed0", batches=1, batch_size=16,
                      write=False)  # fmt: skip
    rows = {row["setting"]: row for row in result["rows"]}
    assert result["sequences_trained"] == 150_000
    # results/repeat-copy.md: 1.2% of bits wrong at length 20 (the row per slot: 36%)
    assert rows["length 20, 10 repeats"]["bit_error_rate"] < 0.05


def test_feedforward_priority_sort_checkpoint_is_where_results_says():
    run = CHECKPOINTS / "priority-sort-ff-seed0"
    result = evaluate(run, batches=1, batch_size=50, write=False)
    assert result["controller"] == "feedforward" and result["sequences_trained"] == 1_057_660
    # results/priority-sort.md: 36.4 bits per sequence on 1,000 sequences (78.3 at the 134k
    # plateau, 42.1 at 419k); writes by priority
    assert 30 < result["rows"][0]["bits_per_sequence"] < 60
    assert result["rows"][1]["bit_errors_per_sequence"] < 0.5  # 0.1 apart: 0.02 on 1,000
    assert result["memory_use"]["fit_r2"] > 0.5


@pytest.mark.parametrize(("run", "high"), [("repeat-copy-lstm-on128-seed5", 0.03),
                                           ("repeat-copy-ff-on128-seed1", 0.01)])  # fmt: skip
def test_repeat_copy_with_more_memory_slots_as_results_says(run, high):
    """results/repeat-copy.md: with 256 slots the write head no longer wraps onto the stored
    sequence; seed 5 goes from 18% to 0.9% of bits wrong at length 20 x 10, the feedforward
    seed 1 from 12% of copied bits to none (bounds for the 16 sequences used here)."""
    run_dir = CHECKPOINTS / run
    grown = evaluate(run_dir, batches=1, batch_size=16, write=False, memory_slots=256)
    rows = {row["setting"]: row for row in grown["rows"]}
    assert grown["memory_slots"] == 256
    assert rows["length 20, 10 repeats"]["copy_bit_error_rate"] < high
    trained = evaluate(run_dir, batches=1, batch_size=16, write=False)
    assert trained["rows"][1]["copy_bit_error_rate"] > 0.05  # the 128-slot failure


# results/repeat-copy.md, the default of session 9 (a constant rate over 40k steps on 64 of
# the 128 slots, evaluated with 128): per-bit error at length 20 x 10 (128 sequences)
# 0.0000, 0.036, 0.023, 0.029, 0.011, 0.0003 for seeds 0-5; 10 x 10 <= 0.0016 except seed 3
# (0.0103). Bounds leave room for the 16 sequences used here (one wrong sequence ~0.02-0.04).
@pytest.mark.parametrize(
    ("seed", "high"), [(0, 0.005), (1, 0.1), (2, 0.08), (3, 0.1), (4, 0.05), (5, 0.005)]
)
def test_repeat_copy_constant_rate_checkpoints_trained_on_64_slots(seed, high):
    run = CHECKPOINTS / f"repeat-copy-lstm-constant-seed{seed}"
    result = evaluate(run, batches=1, batch_size=16, write=False)
    rows = {row["setting"]: row for row in result["rows"]}
    assert (result["memory_slots"], result["train_memory_slots"]) == (128, 64)
    assert result["sequences_trained"] == 80_000
    assert rows["length 10, 10 repeats"]["bit_error_rate"] < (0.02 if seed == 3 else 1e-3)
    assert rows["length 20, 10 repeats"]["bit_error_rate"] <= high


@pytest.mark.parametrize("seed", [0, 3])
def test_feedforward_trained_on_64_slots_copies_but_misplaces_the_end_marker(seed):
    """results/repeat-copy.md: no copy error at 20 x 10 with 128 slots, the end marker wrong
    in every sequence there, and right within the training range on the 64 it trained on."""
    run = CHECKPOINTS / f"repeat-copy-ff-on64-seed{seed}"
    at128 = {r["setting"]: r for r in evaluate(run, batches=1, batch_size=16, write=False)["rows"]}
    assert at128["length 20, 10 repeats"]["copy_bit_error_rate"] == 0
    assert at128["length 20, 10 repeats"]["bit_error_rate"] < 0.01
    assert at128["length 10, 10 repeats"]["end_marker_right"] == 0
    at64 = evaluate(run, batches=1, batch_size=16, write=False, memory_slots=64)["rows"]
    assert at64[0]["end_marker_right"] > 0.8


# results/repeat-copy-feedforward.md, the feedforward default of sessions 10-24 (75k steps on
# 64 of the 128 slots, then a finishing stage of 10k on all 128): per-bit error at 20 x 10 (128
# sequences) 0.0003, 0.161, 0.0000, 0.018 for seeds 0, 1, 3, 4. Bounds for the 16 sequences used.
@pytest.mark.parametrize(("seed", "low", "high"), [(0, 0, 0.005), (1, 0.05, 0.3), (3, 0, 0.005),
                                                   (4, 0, 0.15)])  # fmt: skip
def test_feedforward_75k_two_stage_checkpoints(seed, low, high):
    rows = two_stage_rows(f"repeat-copy-ff-75k-seed{seed}", 75_000, 170_000)
    assert low <= rows["length 20, 10 repeats"]["bit_error_rate"] <= high
    if seed in (0, 3):  # the end marker works with 128 slots now, within and beyond training
        assert rows["length 10, 10 repeats"]["end_marker_right"] == 1
        assert rows["length 20, 10 repeats"]["end_marker_right"] > 0.9


# results/repeat-copy-feedforward.md, the feedforward default since session 25 (150k steps on
# 64 slots, then the same finishing stage): per-bit error at 20 x 10 (128 sequences) 0.0033,
# 0.083, 0.0001, 0.0004, 0.0009, 0.024 for seeds 0-5 (on these 16: 0.0027, 0.10, 0, 0.0004,
# 0.0007, 0.021). Seeds 1 (never learned) and 5 (lost in the finishing stage) are the misses.
@pytest.mark.parametrize(("seed", "low", "high"), [(0, 0, 0.01), (1, 0.04, 0.3), (2, 0, 0.005),
                                                   (3, 0, 0.005), (4, 0, 0.005),
                                                   (5, 0.01, 0.06)])  # fmt: skip
def test_feedforward_two_stage_default_checkpoints(seed, low, high):
    rows = two_stage_rows(f"repeat-copy-ff-seed{seed}", 150_000, 320_000)
    assert low <= rows["length 20, 10 repeats"]["bit_error_rate"] <= high
    if seed in (2, 3, 4):  # no copy error at 20 x 10; the end marker right within training
        assert rows["length 20, 10 repeats"]["copy_bit_error_rate"] == 0
        assert rows["length 10, 10 repeats"]["end_marker_right"] > 0.9


# results/repeat-copy.md, the LSTM default since session 11 (cosine decay over 100k steps on 64
# of the 128 slots; "") and session 10's over 50k ("cos50k-"): per-bit error at 20 x 10 (128
# sequences) for seeds 0-9 0.37, 0.023, 0.0072, 0.0030, 0.0028, 0.0078, 0.031, 0.0044, 0.011,
# 0.036 and 0.0039, 0.0064, 0.0081, 0.0116, 0.41, 0.35, 0.0078, 0.0122, 0.43, 0.043 (4, 5, 8
# not learned). Bounds for the 16 sequences used here.
@pytest.mark.parametrize(
    ("name", "steps", "seed", "low", "high"),
    [("", 100_000, 0, 0.2, 0.6), ("", 100_000, 1, 0, 0.06), ("", 100_000, 2, 0, 0.02),
     ("", 100_000, 3, 0, 0.02), ("", 100_000, 4, 0, 0.02), ("", 100_000, 5, 0, 0.02),
     ("", 100_000, 6, 0, 0.06), ("", 100_000, 7, 0, 0.02), ("", 100_000, 8, 0, 0.06),
     ("", 100_000, 9, 0, 0.06),
     ("cos50k-", 50_000, 0, 0, 0.02), ("cos50k-", 50_000, 1, 0, 0.02),
     ("cos50k-", 50_000, 2, 0, 0.02), ("cos50k-", 50_000, 3, 0, 0.08),
     ("cos50k-", 50_000, 4, 0.2, 0.6), ("cos50k-", 50_000, 5, 0.2, 0.6),
     ("cos50k-", 50_000, 6, 0, 0.02), ("cos50k-", 50_000, 7, 0, 0.05),
     ("cos50k-", 50_000, 8, 0.2, 0.6), ("cos50k-", 50_000, 9, 0, 0.08)],
)  # fmt: skip
def test_repeat_copy_cosine_checkpoints(name, steps, seed, low, high):
    run = CHECKPOINTS / f"repeat-copy-lstm-{name}seed{seed}"
    config = ckpt.load_checkpoint(run)["config"]
    assert (config["lr_schedule"], config["steps"], config["train_memory_slots"]) == (
        "cosine", steps, 64)  # fmt: skip
    result = evaluate(run, batches=1, batch_size=16, write=False)
    rows = {row["setting"]: row for row in result["rows"]}
    assert result["sequences_trained"] == 2 * steps
    assert low <= rows["length 20, 10 repeats"]["bit_error_rate"] <= high
