"""Signals a training run obeys, and the exit codes they lead to.

* ``SIGINT`` (Ctrl-C) and ``SIGTERM`` (what ``kill``, schedulers and preemption send first):
  finish the current step, save a checkpoint, exit with :data:`EXIT_INTERRUPTED` (130) or
  :data:`EXIT_TERMINATED` (143); ``--resume`` continues exactly. A second such signal
  interrupts at once (``KeyboardInterrupt``; the checkpoint of the last whole step is still
  written in a single process).
* ``SIGUSR1``: save a checkpoint at the next step boundary and keep training (e.g. to evaluate
  a running job, or on a scheduler's early warning such as Slurm's ``--signal=USR1@120``).
"""

from __future__ import annotations

import signal
from typing import Any

#: ``ntm-fast train`` exit codes (128 + signal number, the shell's convention)
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143
#: summary "reason" for each stop signal, and the order that wins when ranks disagree
STOP_REASONS = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated"}
REASON_CODES = {"interrupted": 1, "terminated": 2}
EXIT_CODES = {"interrupted": EXIT_INTERRUPTED, "terminated": EXIT_TERMINATED}
_SNAPSHOT = getattr(signal, "SIGUSR1", None)


class StopFlag:
    """While entered: the first SIGINT/SIGTERM sets :attr:`reason` (a request to stop at the
    next step boundary, so the saved checkpoint is a whole step), a second raises
    KeyboardInterrupt; SIGUSR1 sets :attr:`checkpoint_requested`. Handlers are restored on
    exit."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self.checkpoint_requested = False
        self._old: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        return self.reason is not None

    def _stop(self, signum: int, frame: Any) -> None:
        if self.reason is not None:
            raise KeyboardInterrupt
        self.reason = STOP_REASONS[signum]

    def _snapshot(self, signum: int, frame: Any) -> None:
        self.checkpoint_requested = True

    def __enter__(self) -> StopFlag:
        handlers = {sig: self._stop for sig in STOP_REASONS}
        if _SNAPSHOT is not None:
            handlers[_SNAPSHOT] = self._snapshot
        for sig, handler in handlers.items():
            try:
                self._old[sig] = signal.signal(sig, handler)
            except ValueError:  # not the main thread: KeyboardInterrupt is caught instead
                break
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old.clear()
