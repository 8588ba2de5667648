"""Training (paper section 4.6): binary cross-entropy, cost in bits per sequence, gradients
clipped element-wise to (-10, 10), Graves's RMSProp (or Adam), checkpoints and exact resume.

The loop reads the cost and bit errors every ``log_every`` steps. Resume is bit-identical:
the checkpoint holds the model, the optimiser, the task's generator (the data stream), the
torch RNG and the log accumulators.

Nothing fails silently (docs/robustness-cases.md): a locked run directory, checksummed
checkpoints, the log cut back on resume, SIGTERM saves, NaN/inf gradients dropped and a NaN
cost or weight stops the run (:class:`NonFiniteError`). See also :mod:`.loop`,
:mod:`.config`, :mod:`.run_model`, :mod:`.warm_start`.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from . import distributed, loop
from .arithmetic import arithmetic
from .checkpoint import (
    CHECKPOINT,
    CheckpointError,
    load_checkpoint,
    load_for_resume,
    save_checkpoint,
)
from .config import (
    TrainConfig,
    UserError,
    apply_resume_overrides,
    config_from_dict,
    default_run_dir,
)
from .flat import FlatParameters, load_optimizer_state, optimizer_state
from .loop import NonFiniteError
from .objective import LN2, batch_loss, make_optimizer, sequence_cost
from .optim import SpikeClip, clip_gradients, controller_decay, optimizer_step
from .run_model import build_run_model
from .rundir import RunDir, describe_os_error
from .runlog import CSV_FIELDS
from .runlog import Logger as _Logger
from .runlog import NullLogger as _NullLogger
from .schedule import at_step, learning_rate, penalties
from .tasks import Batch, make_task

__all__ = [
    "CSV_FIELDS", "LN2", "NonFiniteError", "TrainConfig", "Trainer", "UserError",
    "sequence_cost",
]  # fmt: skip


class Trainer:
    """Builds the task, model and optimiser of a :class:`TrainConfig` and trains them.

    Holds the run directory's lock from construction until :meth:`run` returns (or
    :meth:`close`); a second Trainer on that directory is refused meanwhile.
    """

    def __init__(
        self,
        config: TrainConfig,
        *,
        resume: bool = False,
        resume_overrides: dict[str, Any] | None = None,
    ) -> None:
        """With ``resume``, the run in ``config.out`` continues under its stored configuration,
        except for ``resume_overrides`` (see :func:`ntm_fast.train.config.apply_resume_overrides`:
        e.g. more ``steps``; a setting that cannot change raises :class:`UserError`)."""
        if resume and not config.out:
            raise UserError("--resume needs --out RUN_DIR (the run to continue)")
        self._run_dir: RunDir | None = None
        self.resume_changes: list[str] = []

        def open_run() -> tuple[Path, dict[str, Any] | None]:  # under torchrun: on rank 0 only
            out = Path(config.out or default_run_dir(config))
            ckpt_path = out / CHECKPOINT
            if resume and not out.exists():
                load_checkpoint(ckpt_path)  # "no such checkpoint file"; creates nothing
            run = RunDir.open(out)
            try:
                if resume:
                    state = load_for_resume(ckpt_path, config.task, config.controller)
                elif ckpt_path.exists():
                    raise UserError(
                        f"{ckpt_path} exists: pass --resume to continue that run "
                        "or choose another --out"
                    )
                else:
                    state = None
            except BaseException:
                run.release(discard_if_unused=True)
                raise
            self._run_dir = run
            return out, state

        try:
            self.out, state = distributed.from_main(open_run)
            self._setup(config, state, resume_overrides or {})
        except BaseException:
            self.close(discard_if_unused=True)
            raise

    def _setup(
        self, config: TrainConfig, state: dict[str, Any] | None, overrides: dict[str, Any]
    ) -> None:
        where = self.out / CHECKPOINT
        if state is not None:
            state = distributed.this_rank(state, where)
            try:
                stored = config_from_dict(state["config"], str(where)).resolved()
            except (ValueError, UserError) as exc:
                raise CheckpointError(f"{where}: stored configuration: {exc}") from None
            config, self.resume_changes = apply_resume_overrides(
                stored, overrides, model_config=state["model_config"],
                task_config=state["task_config"], run=str(self.out),
            )  # fmt: skip
            config.out = str(self.out)
        self.config = c = config.resolved()
        if c.controller_reset and distributed.world_size() > 1:  # two DDP forwards a step
            raise UserError(f"controller_reset: expected 0 with torchrun, got {c.controller_reset}")
        if state is not None:  # the run's own task even if the preset changed
            c.task_overrides = {k: v for k, v in state["task_config"].items() if k != "name"}
        if c.threads:
            torch.set_num_threads(c.threads)
        self.device = distributed.local_device(c.device)
        try:  # rank r draws its own stream (data_seed), one of world_size
            self.task = make_task(c.task, distributed.data_seed(c.seed), **c.task_overrides)
            self.task.streams = distributed.world_size()
        except (TypeError, ValueError) as exc:
            raise UserError(f"task {c.task}: {exc}") from None
        built = build_run_model(c, state, self.task, self.device)
        self.model, self.model_config = built.model, built.config
        self.paper_parameters, self.warm_start = built.paper_parameters, built.warm_start
        self.net = distributed.wrap(self.model, self.device)  # DDP under torchrun
        # flat.py: a buffer for the weights, one for the gradients; DDP has its own
        solo = distributed.world_size() == 1
        self.flat = FlatParameters(list(self.model.parameters())) if solo else None
        params = [self.flat.param] if self.flat else self.model.parameters()
        self.optimizer = make_optimizer(c.optimizer, params, c.lr)
        self.decay = controller_decay(c.weight_decay, self.model, self.flat)
        self.spike_clip = SpikeClip(c.clip_spike, device=self.device) if c.clip_spike else None
        self.reset_rng = torch.Generator().manual_seed(c.seed)  # objective.reset_step's draws
        self.step = self.sequences = 0
        if self.warm_start is not None:  # sequences the weights have seen
            self.sequences = self.warm_start.sequences
        self.elapsed = 0.0
        self.acc = torch.zeros(3, device=self.device)  # cost nats, bit errors, steps since log
        # steps with a dropped NaN/inf gradient: since the last log row (on device), before
        self.dropped = torch.zeros((), device=self.device)
        self.dropped_before = 0
        self.saved_arithmetic: dict[str, str] | None = None  # the checkpoint's (arithmetic.py)
        self._saved_step: int | None = None  # the step of the last good checkpoint
        if state is not None:
            self._restore(state)
            self._saved_step = self.step
            if self.step >= c.steps:
                raise UserError(
                    f"{self.out}: the run is already at step {self.step} of {c.steps}: nothing "
                    f"to resume; pass --steps N with N > {self.step} to train further"
                )

    def close(self, *, discard_if_unused: bool = False) -> None:
        """Release the run directory's lock (idempotent; :meth:`run` does it on return)."""
        if self._run_dir is not None:
            self._run_dir.release(discard_if_unused=discard_if_unused)
            self._run_dir = None

    # -- checkpointing --
    def state(self) -> dict[str, Any]:
        return {
            "config": asdict(self.config),
            "model_config": self.model_config,
            "task_config": {"name": self.config.task, **self.task.config()},
            "model": self.model.state_dict(),
            "optimizer": optimizer_state(self.optimizer, self.flat),
            "task": self.task.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "reset_rng": self.reset_rng.get_state(),
            "step": self.step,
            "sequences": self.sequences,
            "elapsed": self.elapsed,
            "log_acc": self.acc.cpu(),
            "grad_norm_mean": None if self.spike_clip is None else self.spike_clip.mean.cpu(),
            "nonfinite_steps": self.nonfinite_steps(),
            "paper_parameters": self.paper_parameters,
            "arithmetic": arithmetic(self.device),
        }

    def save(self) -> Path | None:
        """Write the checkpoint (under torchrun: every rank's data stream, on rank 0).

        Refuses (:class:`NonFiniteError`) when a weight or the cost since the last log is NaN
        or inf, so the checkpoint on disk is always the last good one; a failed write (full
        or read-only disk) is a :class:`UserError` naming the file, the previous checkpoint
        intact."""
        checks = [p.isfinite().all() for p in self.model.parameters()]
        finite = torch.stack([*checks, self.acc.isfinite().all()]).all()
        if distributed.any_rank(not bool(finite)):
            raise NonFiniteError(loop.nonfinite_message(self, "model weights or the training cost"))
        state = distributed.collect(self.state())
        path, failure = self.out / CHECKPOINT, None
        if state is not None:
            try:
                save_checkpoint(path, state)
            except OSError as exc:
                kept = f"step {self._saved_step}" if self._saved_step is not None else "none"
                failure = UserError(
                    f"{path}: could not save the checkpoint: {describe_os_error(exc)} "
                    f"(the checkpoint on disk is unchanged: {kept})"
                )
        if distributed.any_rank(failure is not None):
            raise failure or UserError(f"{path}: rank 0 could not save the checkpoint")
        self._saved_step = self.step
        return None if state is None else path

    def _restore(self, s: dict[str, Any]) -> None:
        try:
            self.model.load_state_dict(s["model"])
            load_optimizer_state(self.optimizer, s["optimizer"], self.flat)
            self.task.load_state_dict(s["task"])
            torch.set_rng_state(s["torch_rng"])
            if "reset_rng" in s:  # absent before session 28
                self.reset_rng.set_state(s["reset_rng"])
        except (RuntimeError, KeyError, ValueError, TypeError, IndexError, AttributeError) as e:
            raise CheckpointError(
                f"{self.out / CHECKPOINT}: does not match this configuration: {e}"
            ) from None
        self.step, self.sequences, self.elapsed = s["step"], s["sequences"], s["elapsed"]
        self.acc = s["log_acc"].to(self.device, torch.float32)
        mean = s.get("grad_norm_mean")  # absent before --clip-spike existed, None when off
        if self.spike_clip is not None and mean is not None:
            self.spike_clip.mean.copy_(mean)
        self.dropped_before = s.get("nonfinite_steps", 0)  # absent before it was counted
        self.saved_arithmetic = s.get("arithmetic")  # absent before session 26

    def nonfinite_steps(self) -> int:
        """Steps so far whose NaN/inf gradient was dropped (one host sync)."""
        return self.dropped_before + int(self.dropped.item())

    # -- the loop --
    def train_step(self) -> None:
        """One optimiser step on a fresh batch; no host sync (but --controller-reset's draw)."""
        c = at_step(self.config, self.step)  # its phase's lr and batch
        batch = Batch(*(t.to(self.device) for t in self.task.sample(c.batch_size)))
        terms = dict(penalties(c, self.step), reset_rng=self.reset_rng)
        loss, cost, errors = batch_loss(self.net, self.model, batch, **terms)
        if self.flat:
            self.flat.zero_grad()
        else:
            self.optimizer.zero_grad(set_to_none=True)
        loss.backward()  # under DDP: the mean over ranks (of the global batch)
        flat = self.flat and self.flat.param.grad
        finite = clip_gradients(
            list(self.model.parameters()),
            c.clip,
            c.clip_norm,
            self.spike_clip,
            flat,
            norm_first=c.clip_norm_first,
        )
        self.dropped += ~finite
        optimizer_step(self.optimizer, learning_rate(c, self.step), self.decay)  # resume exact
        self.acc += torch.stack([cost.detach(), errors, torch.ones_like(errors)])
        self.step += 1
        self.sequences += c.batch_size * distributed.world_size()

    def run(self) -> dict[str, Any]:
        """Train until steps, minutes or stop_cost is reached, or a stop signal (SIGINT,
        SIGTERM; SIGUSR1 only checkpoints); checkpoint; plot (:func:`ntm_fast.train.loop.run`).
        Releases the run directory."""
        try:
            return loop.run(self)
        finally:
            self.close()

    def open_logger(self) -> _Logger | _NullLogger:
        """The run's log (rank 0; cut back to the checkpoint on resume); a no-op elsewhere."""
        logger, failure = _NullLogger(), None
        if distributed.is_main():
            resumed = self._saved_step is not None
            try:
                logger = _Logger(self.out, self.step if resumed else None, self.sequences)
            except UserError as exc:
                failure = exc
        if distributed.any_rank(failure is not None):
            raise failure or UserError(f"{self.out}: rank 0 could not open the training log")
        return logger
