"""The common shape of every task: a seeded, batched, resumable sequence generator."""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor


class Batch(NamedTuple):
    """One batch, time-major. ``mask`` is 1 at the steps whose cost counts (the target phase).

    ``lengths`` `(B,)` int64 is each sequence's true length; steps past it are padding (zero
    input, zero target, zero mask). Padding only ever follows a sequence's last target, so a
    causal model needs no ``lengths`` to get the same cost on the masked steps.
    """

    inputs: Tensor  # (T, B, input_size) float32
    targets: Tensor  # (T, B, output_size) float32
    mask: Tensor  # (T, B) float32
    lengths: Tensor  # (B,) int64


class Task:
    """Base class: subclasses set ``name``, ``input_size``, ``output_size`` and ``_sample``.

    Every task owns a :class:`torch.Generator` (CPU), so its data stream depends only on the
    seed and on how many batches were drawn, never on the global RNG or on the model; its
    :meth:`state_dict` (a uint8 tensor plus plain numbers) restores the stream exactly, which
    is what makes ``--resume`` bit-identical.
    """

    name = "task"
    input_size = 0
    output_size = 0
    #: Settings that shape the training stream only; evaluation drops them and tests the
    #: paper's distribution (e.g. copy's ``zero_vector_percent``).
    training_only: tuple[str, ...] = ()
    #: Whether the last output channel marks the end of the output (repeat copy): the channel
    #: ``--marker-weight`` weights in the loss (:func:`ntm_fast.train.objective.end_marker_cost`).
    end_marker: bool = False
    #: How many data-parallel streams draw batches of the same size in step with this one
    #: (set by the trainer to the world size), so that a count of training sequences, like
    #: copy's ``zero_vector_until``, counts the whole run's and switches on every rank at once.
    streams: int = 1

    def __init__(self, seed: int = 0) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed: expected an int, got {type(seed).__name__} {seed!r}")
        self.generator = torch.Generator().manual_seed(seed)

    def sample(self, batch_size: int) -> Batch:
        """Draw ``batch_size`` fresh sequences (CPU tensors; move them with ``.to``)."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size: expected an int >= 1, got {batch_size!r}")
        return self._sample(batch_size)

    def _sample(self, batch_size: int) -> Batch:
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        """The size arguments this task was built with (plain values; rebuilds the task)."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, Tensor]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.generator.set_state(state["generator"])

    # -- helpers shared by the tasks ---------------------------------------------------------
    def _randint(self, low: int, high: int, size: tuple[int, ...]) -> Tensor:
        """Uniform integers in [low, high] inclusive."""
        return torch.randint(low, high + 1, size, generator=self.generator)

    def _lengths(self, low: int, high: int, count: int, power: int = 0) -> Tensor:
        """``count`` sequence lengths in [low, high], P(L) proportional to L**power.

        ``power`` = 0 is the uniform draw (:meth:`_randint`, so the paper's stream is unchanged);
        a larger one trains on more long sequences within the same range.
        """
        if not power:
            return self._randint(low, high, (count,))
        span = torch.arange(low, high + 1, dtype=torch.float64)
        return span.long()[torch.multinomial(span**power, count, True, generator=self.generator)]

    def _bits(self, *size: int) -> Tensor:
        """Independent fair random bits as float32."""
        return torch.randint(0, 2, size, generator=self.generator).float()


def check_range(name: str, low: object, high: object, minimum: int) -> tuple[int, int]:
    """Validate an inclusive integer range argument."""
    for v in (low, high):
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f"{name}: expected ints, got {low!r}..{high!r}")
    assert isinstance(low, int) and isinstance(high, int)
    if not minimum <= low <= high:
        raise ValueError(f"{name}: expected {minimum} <= min <= max, got {low}..{high}")
    return low, high


def check_percent(name: str, value: object) -> int:
    """An int percentage in 0..100."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
        raise ValueError(f"{name}: expected an int percentage in 0..100, got {value!r}")
    return value


def check_count(name: str, value: object) -> int:
    """A non-negative int (0 usually meaning "no limit")."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name}: expected an int >= 0, got {value!r}")
    return value


#: Beyond this the weighted draw is all but always the longest length (and L**P could
#: overflow into an invalid distribution), so a larger ``length_power`` is refused up front.
MAX_LENGTH_POWER = 16


def check_length_power(value: object) -> int:
    """``length_power`` of copy and repeat copy: an int in 0..MAX_LENGTH_POWER."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_LENGTH_POWER:
        raise ValueError(
            f"length_power: expected an int in 0..{MAX_LENGTH_POWER} (P(L) ~ L**P), got {value!r}"
        )
    return value


def pad_stack(parts: list[Tensor], T: int) -> Tensor:
    """Stack per-sequence `(T_b, F)` tensors into a zero-padded `(T, B, F)` tensor."""
    out = parts[0].new_zeros(T, len(parts), parts[0].shape[-1])
    for b, p in enumerate(parts):
        out[: p.shape[0], b] = p
    return out


def check_hold_delimiter(value: object) -> int:
    """``hold_delimiter`` of copy and repeat copy: 0 (the paper's layout, the delimiter flag on
    one step) or 1 (the flag held on through the output steps, so that an all-zero data
    vector no longer looks like the output phase's blank input; docs/results/copy.md)."""
    if isinstance(value, bool) or value not in (0, 1):
        raise ValueError(f"hold_delimiter: expected 0 or 1, got {value!r}")
    return int(value)  # type: ignore[call-overload]
