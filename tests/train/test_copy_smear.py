"""tools/copy_smear.py: the write head's spread in the copy output phase tells the committed
networks that copy length 120 from those that fail, from length-20 sequences
(docs/results/copy-weight-decay.md)."""

from __future__ import annotations

import pytest
from committed import CHECKPOINTS

from tools.copy_smear import smear


def test_smear_at_length_20_tells_the_length_120_failures() -> None:
    # the session-19 default: seed 0 copies length 120 exactly, seed 3 fails every such
    # sequence (copy-weight-decay.md)
    good, good_exact = smear(str(CHECKPOINTS / "copy-decay-lstm-seed0"))
    bad, bad_exact = smear(str(CHECKPOINTS / "copy-decay-lstm-seed3"))
    assert good_exact == bad_exact == 1.0  # both copy length 20 without a bit error
    assert good > 0.9 and bad < 0.1  # measured: 0.996 and 0.013
    _, bad_exact_120 = smear(str(CHECKPOINTS / "copy-decay-lstm-seed3"), length=120, skip=10)
    assert bad_exact_120 == 0.0


def test_refuses_other_tasks_and_bad_skip() -> None:
    with pytest.raises(ValueError, match="a copy checkpoint expected, got task 'repeat_copy'"):
        smear(str(CHECKPOINTS / "repeat-copy-lstm-seed0"))
    with pytest.raises(ValueError, match=r"skip: expected 0 <= skip < length \(20\), got 20"):
        smear(str(CHECKPOINTS / "copy-lstm-seed0"), skip=20)
