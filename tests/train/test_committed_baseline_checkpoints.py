"""The committed LSTM baselines (Table 3) of docs/results/: they load and are still as far from
the task as the pages say (a baseline that got better here would mean the evaluation changed)."""

from __future__ import annotations

from committed import CHECKPOINTS, ngrams_excess

from ntm_fast.train.evaluate import evaluate


def test_associative_recall_baseline_checkpoint_has_not_learned_the_task():
    result = evaluate(CHECKPOINTS / "assoc-baseline-seed0", batches=1, batch_size=16,
                      write=False)  # fmt: skip
    rows = {row["setting"]: row for row in result["rows"]}
    assert result["controller"] == "baseline" and result["sequences_trained"] == 320_000
    # results/associative-recall.md: 4.0 bit errors per sequence at 6 items, 7.8 at 20
    assert 2 < rows["6 items"]["bit_errors_per_sequence"] < 6
    assert rows["20 items"]["bit_errors_per_sequence"] > 5


def test_priority_sort_baseline_checkpoint_is_where_results_says():
    run = CHECKPOINTS / "priority-sort-baseline-seed0"
    result = evaluate(run, batches=1, batch_size=50, write=False)
    assert result["controller"] == "baseline" and result["sequences_trained"] == 290_820
    # results/priority-sort.md: 90.3 bits per sequence on 1,000 sequences
    assert 80 < result["rows"][0]["bits_per_sequence"] < 100
    assert result["rows"][1]["bit_errors_per_sequence"] > 20  # 0.1 apart: no better (31.8)


def test_ngrams_baseline_checkpoints_are_where_results_says():
    """results/ngrams.md: the default command (session 34, 300k sequences, the rate decayed
    after 180k) 4.28 +- 0.17 bits above the optimal estimator on 1,000 sequences, the same run
    at 180k 6.80 +- 0.20 (the NTMs: 0.07 and 1.93). On these 64 (4.29 and 6.86 measured) the
    standard error is ~0.7."""

    assert 2.5 < ngrams_excess("ngrams-baseline-seed0", "baseline", 300_000) < 6.5
    assert 4.5 < ngrams_excess("ngrams-baseline-90k-seed0", "baseline", 180_000) < 9.5


def test_repeat_copy_baseline_checkpoint_converged_and_fails_to_generalise():
    result = evaluate(CHECKPOINTS / "repeat-copy-baseline-seed0", batches=1, batch_size=16,
                      write=False)  # fmt: skip
    rows = {row["setting"]: row for row in result["rows"]}
    assert result["controller"] == "baseline" and result["sequences_trained"] == 240_000
    # results/repeat-copy.md (128 sequences each): no bit wrong at 10 x 10, 39% at 20 x 10,
    # 11% at 10 x 20, the end marker never right beyond the training range (the paper's LSTM)
    assert rows["length 10, 10 repeats"]["bit_error_rate"] < 1e-3
    assert 0.3 < rows["length 20, 10 repeats"]["bit_error_rate"] < 0.5
    assert 0.05 < rows["length 10, 20 repeats"]["bit_error_rate"] < 0.2
    assert rows["length 10, 20 repeats"]["end_marker_right"] == 0
