"""Fig. 17's analysis of priority sort (ntm_fast.train.sort_analysis): the linear fit of write
locations to priorities over circular memory, the read-hit rate and the heads chosen, on a
stand-in model whose memory use is known, and on a real (untrained) NTM end to end."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from ntm_fast import FastNTM
from ntm_fast.train.plotting import plot_sort_memory_use
from ntm_fast.train.sort_analysis import (
    _best_linear_fit,
    _rank_correlation,
    analyse_sort_memory_use,
)
from ntm_fast.train.tasks import PrioritySortTask

N = 32


def test_fit_finds_the_rotation_of_wrapped_linear_locations():
    prio = torch.linspace(-1, 1, 20)
    loc = (torch.round(10 * prio + 5) + 20) % N  # linear, but wraps past location N-1
    r2, rotation, fitted = _best_linear_fit(prio, loc, N)
    assert r2 > 0.99
    assert torch.allclose(fitted, ((loc - rotation) % N).double(), atol=0.6)
    shuffled = loc[torch.randperm(20, generator=torch.Generator().manual_seed(0))]
    assert _best_linear_fit(prio, shuffled, N)[0] < r2


class _SortingByPriority(nn.Module):
    """Write head 1 writes input i near location 12 * priority_i (mod N, jittered by up to 1);
    head 0's weighting is near-uniform with a faint bump exactly there (its arg max fits the
    priorities perfectly, but it does not focus); head 2 writes at random. Read head 2 reads
    output j from where head 1 wrote the j-th highest priority; read heads 0 and 1 at random."""

    def __init__(self, task: PrioritySortTask, noise_seed: int = 0) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))
        self.task, self.g = task, torch.Generator().manual_seed(noise_seed)

    def _random_one_hot(self, *shape):
        return nn.functional.one_hot(torch.randint(0, N, shape, generator=self.g), N).float()

    def forward(self, x, trace=False):
        n, k, bits = self.task.inputs, self.task.outputs, self.task.bits
        T, B = x.shape[:2]
        prio = x[:n, :, bits]
        exact = torch.round(12 * prio).long() % N  # (n, B)
        loc = (exact + torch.randint(-1, 2, exact.shape, generator=self.g)) % N
        ww = self._random_one_hot(T, B, 3)
        bump = torch.full((n, B, N), 1.0) + 1e-3 * nn.functional.one_hot(exact, N)
        ww[:n, :, 0] = bump / bump.sum(-1, keepdim=True)
        ww[:n, :, 1] = nn.functional.one_hot(loc, N).float()
        rw = self._random_one_hot(T, B, 3)
        order = torch.argsort(prio, 0, descending=True)[:k]
        rw[n + 1 : n + 1 + k, :, 2] = nn.functional.one_hot(loc.gather(0, order), N).float()
        return x, None, SimpleNamespace(write_weightings=ww, read_weightings=rw)


def test_a_head_that_never_moves_does_not_fit_the_priorities():
    prio = torch.rand(16)
    assert _best_linear_fit(prio, torch.full((16,), 7), 32)[0] == 0.0


def test_rank_correlation():
    assert _rank_correlation(torch.tensor([3, 5, 9, 20])) == pytest.approx(1.0)
    assert _rank_correlation(torch.tensor([9, 5, 3, 1])) == pytest.approx(-1.0)
    assert abs(_rank_correlation(torch.tensor([1, 4, 2, 3, 0]))) < 0.5


def test_analysis_recovers_a_known_sorting_memory_use(tmp_path):
    task = PrioritySortTask(0, inputs=10, outputs=8)
    use = analyse_sort_memory_use(_SortingByPriority(task), task, sequences=20)
    assert (use.write_head, use.read_head) == (1, 2)  # not the unfocused head 0
    assert use.write_focus[0] < 0.05 and use.write_focus[1] == 1.0
    assert 0.8 < use.fit_r2 < 1.0  # the jitter
    assert use.read_hits == 1.0
    assert use.read_order > 0.9  # reads follow priority order, which the locations encode
    assert use.write_weightings.shape == (10 + 1 + 8, N)
    path = plot_sort_memory_use(use, tmp_path / "fig17.png")
    assert path.stat().st_size > 1000


@pytest.mark.parametrize("backend", ["reference", "native"])
def test_analysis_runs_on_an_untrained_ntm(backend):
    from ntm_fast import native_backend

    if backend == "native" and native_backend.unavailable_reason(torch.device("cpu")):
        pytest.skip(f"native backend: {native_backend.unavailable_reason(torch.device('cpu'))}")
    task = PrioritySortTask(0, inputs=6, outputs=4)
    torch.manual_seed(0)
    model = FastNTM(task.input_size, task.output_size, memory_slots=16, memory_width=4,
                    read_heads=2, write_heads=2, controller_size=8, backend=backend)  # fmt: skip
    model.train()
    use = analyse_sort_memory_use(model, task, sequences=5)
    assert model.training  # restored
    assert 0 <= use.write_head < 2 and 0 <= use.read_head < 2
    assert -1e-9 <= use.fit_r2 <= 1 + 1e-9 and 0 <= use.read_hits <= 1
    assert use.priorities.shape == (6,) and use.fitted_locations.shape == (6,)


def test_eval_reports_memory_use_for_priority_sort_ntms(tmp_path):
    from tiny_run import TINY, tiny

    from ntm_fast.train import Trainer
    from ntm_fast.train.evaluate import evaluate, format_table

    overrides = {"inputs": 6, "outputs": 4}
    heads = {**TINY, "read_heads": 2, "write_heads": 2}
    config = tiny(tmp_path / "run", task="priority_sort", task_overrides=overrides,
                  model_overrides=heads)  # fmt: skip
    t = Trainer(config)
    t.train_step()
    t.save()
    t.close()
    result = evaluate(tmp_path / "run", batches=1, batch_size=4, write=False)
    use = result["memory_use"]
    assert set(use) >= {"write_head", "fit_r2", "read_head", "read_hits", "read_order"}
    assert 0 <= use["read_hits"] <= 1 and len(use["write_focus"]) == 2
    assert "memory use (Fig. 17" in format_table(result)
