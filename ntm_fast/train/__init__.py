"""The training application: ``ntm-fast`` (train / eval / plot), the training loop, the
paper's tasks and presets, evaluation, figures, data-parallel training and checkpoints.

It is built on the core library (:mod:`ntm_fast`: the ops, the modules, the backends), which
never imports it. Its own dependencies are an extra: ``pip install "ntm_fast[train]"`` (the
README's ``.[dev]`` install includes them). ``python -m ntm_fast.train TASK ...`` (also under
``torchrun``) is ``ntm-fast train TASK ...``; :func:`train` and :class:`Trainer` are the API.
"""

try:  # fail at once with the fix, not deep inside a run
    import filelock  # noqa: F401
    import matplotlib  # noqa: F401
    import tqdm  # noqa: F401
except ImportError as exc:
    raise ImportError(
        f"ntm_fast.train (the training application, ntm-fast) needs {exc.name or exc}, which "
        'the core library does not: install its extras with pip install "ntm_fast[train]"'
    ) from exc

from .schedule import LR_SCHEDULES, describe_schedule, learning_rate
from .stages import train
from .trainer import CSV_FIELDS, LN2, NonFiniteError, TrainConfig, Trainer, UserError, sequence_cost

__all__ = [
    "CSV_FIELDS", "LN2", "LR_SCHEDULES", "NonFiniteError", "TrainConfig", "Trainer",
    "UserError", "describe_schedule", "learning_rate", "sequence_cost", "train",
]  # fmt: skip
