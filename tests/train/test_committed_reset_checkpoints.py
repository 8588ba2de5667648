"""The committed runs of the repeat-copy LSTM default since session 28
(docs/results/repeat-copy-controller-reset.md): the controller's state reset in half the
batches, 100k steps on 64 slots, then the finishing stage on all 128. They load, were trained
as the page says, and still copy as it says."""

from __future__ import annotations

import pytest
from committed import CHECKPOINTS, two_stage_rows

from ntm_fast.train import checkpoint as ckpt


# Per-bit error at 20 x 10 on 128 sequences: 1.02%, 40.2%, 0.03%, 0.28% for seeds 0, 6, 8, 9
# (on the 16 here: 1.74%, 40.7%, 0.07%, 0.27%); seed 6 is the miss (it learned late in its
# first stage). Bounds for the 16 sequences used.
@pytest.mark.parametrize(("seed", "low", "high"), [(0, 0.002, 0.04), (6, 0.2, 0.6),
                                                   (8, 0, 0.01), (9, 0, 0.01)])  # fmt: skip
def test_reset_default_checkpoints(seed, low, high):
    name = f"repeat-copy-lstm-reset-seed{seed}"
    for d in (CHECKPOINTS / name / "stage1", CHECKPOINTS / name):
        assert ckpt.load_checkpoint(d)["config"]["controller_reset"] == 0.5
    rows = two_stage_rows(name, 100_000, 220_000)
    assert low <= rows["length 20, 10 repeats"]["bit_error_rate"] <= high
    assert rows["length 10, 10 repeats"]["bit_error_rate"] < 0.01  # all four: the training range
    if seed in (8, 9):  # the end marker right within training, the copy right beyond it
        assert rows["length 10, 10 repeats"]["end_marker_right"] == 1
        assert rows["length 20, 10 repeats"]["copy_bit_error_rate"] < 0.005
