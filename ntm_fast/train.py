"""Training (paper section 4.6): binary cross-entropy, cost in bits per sequence, gradients
clipped element-wise to (-10, 10), Graves's RMSProp (or Adam), checkpoints and exact resume.

Run as ``ntm-fast train TASK ...`` or ``python -m ntm_fast.train TASK ...`` (same options).
The loop keeps the cost and bit errors as tensors and reads them (one sync) only every
``log_every`` steps. Resume is bit-identical: the checkpoint holds the model, the optimiser,
the task's generator (the data stream), the global torch RNG and the logging accumulators.
"""

from __future__ import annotations

import csv
import math
import signal
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import distributed, resources
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .optim import GravesRMSprop
from .presets import build_model, parameter_table, preset
from .tasks import Batch, make_task

LN2 = math.log(2.0)
CSV_FIELDS = ("step", "sequences", "cost_bits", "bit_errors", "seconds", "seq_per_s")


class UserError(Exception):
    """A problem with the user's request; the CLI prints the message without a traceback."""


@dataclass
class TrainConfig:
    """Everything a run is defined by (stored in its checkpoint as a plain dict).

    ``None`` for batch_size / lr / optimizer / steps means the preset's CPU default.
    ``model_overrides`` / ``task_overrides`` change preset sizes (e.g. a tiny test model).
    """

    task: str = "copy"
    controller: str = "lstm"
    steps: int | None = None
    minutes: float | None = None
    batch_size: int | None = None
    lr: float | None = None
    optimizer: str | None = None
    seed: int = 0
    device: str = "cpu"
    backend: str = "auto"
    out: str | None = None
    checkpoint_every: int = 500
    log_every: int = 50
    threads: int | None = 1
    stop_cost: float | None = None
    clip: float = 10.0
    clip_norm: float | None = None
    warmup_steps: int | None = None
    lr_schedule: str | None = None
    model_overrides: dict[str, Any] = field(default_factory=dict)
    task_overrides: dict[str, Any] = field(default_factory=dict)
    plots: bool = True
    progress: bool = True

    def resolved(self) -> TrainConfig:
        """A copy with the preset's defaults filled in and every value checked."""
        try:
            p = preset(self.task, self.controller)
        except ValueError as exc:
            raise UserError(str(exc)) from None
        c = TrainConfig(**{f.name: getattr(self, f.name) for f in fields(self)})
        c.batch_size = c.batch_size or p.train["batch_size"]
        c.lr = c.lr or p.train["lr"]
        c.optimizer = c.optimizer or p.train["optimizer"]
        c.steps = c.steps if c.steps is not None else p.train.get("steps", 100_000)
        if c.clip_norm is None:
            c.clip_norm = p.train.get("clip_norm", 0.0)
        if c.warmup_steps is None:
            c.warmup_steps = p.train.get("warmup_steps", 0)
        c.lr_schedule = c.lr_schedule or p.train.get("lr_schedule", "constant")
        if c.lr_schedule not in LR_SCHEDULES:
            raise UserError(f"lr_schedule: expected one of {LR_SCHEDULES}, got {c.lr_schedule!r}")
        if c.optimizer not in ("rmsprop", "adam"):
            raise UserError(f"optimizer: expected 'rmsprop' or 'adam', got {c.optimizer!r}")
        for name in ("steps", "batch_size", "checkpoint_every", "log_every"):
            if getattr(c, name) < 1:
                raise UserError(f"{name}: expected >= 1, got {getattr(c, name)}")
        if not c.lr > 0:
            raise UserError(f"lr: expected > 0, got {c.lr}")
        if c.clip_norm < 0 or c.warmup_steps < 0:
            bad = "clip_norm" if c.clip_norm < 0 else "warmup_steps"
            raise UserError(f"{bad}: expected >= 0 (0 turns it off), got {getattr(c, bad)}")
        if c.minutes is not None and not c.minutes > 0:
            raise UserError(f"minutes: expected > 0, got {c.minutes}")
        if c.device.startswith("cuda") and not torch.cuda.is_available():
            raise UserError("device: cuda requested but torch.cuda.is_available() is False")
        return c


def sequence_cost(logits: Tensor, batch: Batch) -> tuple[Tensor, Tensor]:
    """Mean cost per sequence in nats (for the gradient) and mean bit errors per sequence.

    Cross-entropy is summed over the masked steps and all output bits of each sequence, then
    averaged over the batch; divide by ln 2 for the paper's bits per sequence.
    """
    B = logits.shape[1]
    ce = F.binary_cross_entropy_with_logits(logits, batch.targets, reduction="none").sum(-1)
    cost = (ce * batch.mask).sum() / B
    wrong = ((logits > 0).to(logits.dtype) != batch.targets).to(logits.dtype).sum(-1)
    return cost, (wrong * batch.mask).sum().detach() / B


LR_SCHEDULES = ("constant", "cosine")


def learning_rate(c: TrainConfig, step: int) -> float:
    """The learning rate of optimiser step ``step`` (0-based): a linear warm-up from
    lr / warmup_steps to lr over the first ``warmup_steps`` steps, then constant, or for
    ``lr_schedule="cosine"`` a half cosine from lr down to 0 at step ``steps`` (so resuming
    with more ``steps`` stretches the rest of the schedule)."""
    if c.warmup_steps and step < c.warmup_steps:
        return c.lr * (step + 1) / c.warmup_steps
    if c.lr_schedule == "cosine":
        progress = (step - c.warmup_steps) / max(1, c.steps - c.warmup_steps)
        return c.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return c.lr


def describe_schedule(c: TrainConfig) -> str:
    """E.g. "cosine, warm-up 100, clip |g| 5, clip g_i 10": what shapes the updates."""
    parts = [c.lr_schedule]
    if c.warmup_steps:
        parts.append(f"warm-up {c.warmup_steps}")
    if c.clip_norm:
        parts.append(f"clip |g| {c.clip_norm:g}")
    parts.append(f"clip g_i {c.clip:g}")
    return ", ".join(parts)


def make_optimizer(name: str, params: Any, lr: float) -> torch.optim.Optimizer:
    if name == "rmsprop":
        return GravesRMSprop(params, lr=lr)
    return torch.optim.Adam(params, lr=lr)


class Trainer:
    """Builds the task, model and optimiser of a :class:`TrainConfig` and trains them."""

    def __init__(
        self,
        config: TrainConfig,
        *,
        resume: bool = False,
        resume_overrides: dict[str, Any] | None = None,
    ) -> None:
        """With ``resume``, the run in ``config.out`` continues under its stored configuration,
        except for ``resume_overrides`` (e.g. more ``steps``, a new ``minutes`` limit)."""
        if resume and not config.out:
            raise UserError("--resume needs --out RUN_DIR (the run to continue)")

        def open_run() -> tuple[Path, dict[str, Any] | None]:  # under torchrun: on rank 0 only
            out = Path(config.out or default_run_dir(config))
            ckpt_path = out / "checkpoint.pt"
            if resume:
                return out, _load_for_resume(ckpt_path, config)
            if ckpt_path.exists():
                raise UserError(
                    f"{ckpt_path} exists: pass --resume to continue that run "
                    "or choose another --out"
                )
            return out, None

        self.out, state = distributed.from_main(open_run)
        if state is not None:
            state = distributed.this_rank(state, self.out / "checkpoint.pt")
            config = TrainConfig(**{**state["config"], **(resume_overrides or {})})
            config.out = str(self.out)
        self.config = c = config.resolved()
        if c.threads:
            torch.set_num_threads(c.threads)
        self.device = distributed.local_device(c.device)
        try:  # rank r of a data-parallel run draws its own stream (distributed.data_seed)
            self.task = make_task(c.task, distributed.data_seed(c.seed), **c.task_overrides)
        except (TypeError, ValueError) as exc:
            raise UserError(f"task {c.task}: {exc}") from None
        p = preset(c.task, c.controller)
        io = {"input_size": self.task.input_size, "output_size": self.task.output_size}
        self.model_config = {**p.model, **io, **c.model_overrides}
        self.paper_parameters = p.paper_parameters
        if c.controller != "baseline":
            self._check_memory(c)
        torch.manual_seed(c.seed)  # parameter initialisation
        try:
            self.model = build_model(self.model_config, c.backend).to(self.device)
        except (TypeError, ValueError) as exc:
            raise UserError(f"model: {exc}") from None
        self.net = distributed.wrap(self.model, self.device)  # DDP under torchrun
        self.optimizer = make_optimizer(c.optimizer, self.model.parameters(), c.lr)
        self.step = self.sequences = 0
        self.elapsed = 0.0
        self.acc = torch.zeros(3, device=self.device)  # cost nats, bit errors, steps since log
        if state is not None:
            self._restore(state)

    def _check_memory(self, c: TrainConfig) -> None:
        """Fail before training when a step cannot fit in the device's memory
        (:func:`ntm_fast.resources.check_training_fits`). The longest episode is estimated from
        a separately seeded copy of the task, so the training stream is untouched."""
        probe = make_task(c.task, 0, **c.task_overrides)
        steps = max(probe.sample(64).inputs.shape[0] for _ in range(8))
        try:
            resources.check_training_fits(
                self.model_config,
                batch_size=c.batch_size,
                steps=steps,
                device=self.device,
                optimizer_states=3 if c.optimizer == "rmsprop" else 2,
            )
        except resources.InsufficientMemoryError as exc:
            raise UserError(str(exc)) from None

    # -- checkpointing -----------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {
            "config": asdict(self.config),
            "model_config": self.model_config,
            "task_config": {"name": self.config.task, **self.task.config()},
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "task": self.task.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "step": self.step,
            "sequences": self.sequences,
            "elapsed": self.elapsed,
            "log_acc": self.acc.cpu(),
            "paper_parameters": self.paper_parameters,
        }

    def save(self) -> Path | None:
        """Write the checkpoint (under torchrun: every rank's data stream, on rank 0)."""
        state = distributed.collect(self.state())
        return None if state is None else save_checkpoint(self.out / "checkpoint.pt", state)

    def _restore(self, s: dict[str, Any]) -> None:
        try:
            self.model.load_state_dict(s["model"])
            self.optimizer.load_state_dict(s["optimizer"])
            self.task.load_state_dict(s["task"])
        except (RuntimeError, KeyError, ValueError) as exc:
            raise CheckpointError(
                f"{self.out / 'checkpoint.pt'}: does not match this configuration: {exc}"
            ) from None
        torch.set_rng_state(s["torch_rng"])
        self.step, self.sequences, self.elapsed = s["step"], s["sequences"], s["elapsed"]
        self.acc = s["log_acc"].to(self.device)

    # -- the loop ------------------------------------------------------------------------------
    def train_step(self) -> None:
        """One optimiser step on a fresh batch; no host sync."""
        batch = Batch(*(t.to(self.device) for t in self.task.sample(self.config.batch_size)))
        logits = self.net(batch.inputs)[0]
        cost, errors = sequence_cost(logits, batch)
        self.optimizer.zero_grad(set_to_none=True)
        cost.backward()  # under DDP: the mean over ranks, i.e. of the global batch's cost
        c = self.config
        nn.utils.clip_grad_value_(self.model.parameters(), c.clip)
        if c.clip_norm:
            nn.utils.clip_grad_norm_(self.model.parameters(), c.clip_norm)
        for group in self.optimizer.param_groups:  # a function of the step: resume stays exact
            group["lr"] = learning_rate(c, self.step)
        self.optimizer.step()
        self.acc += torch.stack([cost.detach(), errors, torch.ones_like(errors)])
        self.step += 1
        self.sequences += self.config.batch_size * distributed.world_size()

    def run(self) -> dict[str, Any]:
        """Train until steps, minutes or stop_cost is reached, or Ctrl-C; checkpoint; plot."""
        c = self.config
        main = distributed.is_main()
        if main:
            self.out.mkdir(parents=True, exist_ok=True)
        logger = _Logger(self.out, append=self.step > 0) if main else _NullLogger()
        bar = _progress(c, self.step)
        stop = _StopFlag()
        start, t_log, seq_log = time.monotonic(), time.monotonic(), self.sequences
        elapsed0 = self.elapsed
        last: dict[str, Any] = {}
        reason = "steps"
        clean = False
        try:
            with stop:
                while self.step < c.steps:
                    if distributed.any_rank(stop.requested):
                        reason = "interrupted"
                        break
                    self.train_step()
                    now = time.monotonic()
                    self.elapsed = elapsed0 + now - start
                    if self.step % c.log_every == 0 or self.step == c.steps:
                        rate = (self.sequences - seq_log) / max(now - t_log, 1e-9)
                        last = self._log(logger, bar, rate)
                        t_log, seq_log = now, self.sequences
                        if c.stop_cost is not None and last["cost_bits"] <= c.stop_cost:
                            reason = "stop_cost"
                            break
                    if self.step % c.checkpoint_every == 0:
                        self.save()
                    if c.minutes is not None and distributed.any_rank(
                        now - start >= 60 * c.minutes
                    ):
                        reason = "minutes"
                        break
            clean = True
        except KeyboardInterrupt:  # a second Ctrl-C, or no signal handler: last whole step
            reason = "interrupted"
            clean = not distributed.active()  # other ranks may be inside a collective
        finally:
            bar.close()
            if clean or not distributed.active():
                self.save()
            logger.close()
        summary: dict[str, Any] = {
            "run_dir": str(self.out), "reason": reason, "step": self.step,
            "sequences": self.sequences, "seconds": round(self.elapsed, 1),
        }  # fmt: skip
        summary.update({k: last.get(k) for k in ("cost_bits", "bit_errors", "seq_per_s")})
        if c.plots and reason != "interrupted" and main:
            from .plotting import write_run_figures

            figs = write_run_figures(self.out, self.model, self.task, self.device)
            print(f"figures: {', '.join(str(f) for f in figs)}", file=sys.stderr)
        return summary

    def _log(self, logger: _Logger, bar: Any, rate: float) -> dict[str, Any]:
        distributed.average_(self.acc)  # under torchrun: the global batch's means
        cost, errors, n = self.acc.tolist()  # the one host sync per log interval
        self.acc.zero_()
        row = {
            "step": self.step, "sequences": self.sequences,
            "cost_bits": cost / max(n, 1) / LN2, "bit_errors": errors / max(n, 1),
            "seconds": round(self.elapsed, 2), "seq_per_s": round(rate, 1),
        }  # fmt: skip
        logger.write(row)
        bar.update(self.step - bar.n)
        bar.set_postfix(seqs=self.sequences, cost=f"{row['cost_bits']:.3f}", seq_s=f"{rate:.0f}")
        return row


class _StopFlag:
    """Turns the first SIGINT into a request to stop at the next step boundary (so the saved
    checkpoint is a whole step); a second SIGINT raises KeyboardInterrupt as usual."""

    def __init__(self) -> None:
        self.requested = False
        self._old: Any = None

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> _StopFlag:
        try:
            self._old = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread: KeyboardInterrupt is caught instead
            self._old = None
        return self

    def __exit__(self, *exc: object) -> None:
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)


class _NullLogger:
    """What ranks other than 0 log to."""

    def write(self, row: dict[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass


class _Logger:
    """CSV log (always) and TensorBoard scalars (when tensorboard is installed)."""

    def __init__(self, out: Path, append: bool) -> None:
        path = out / "log.csv"
        fresh = not (append and path.exists())
        self.file = path.open("w" if fresh else "a", newline="")
        self.csv = csv.DictWriter(self.file, CSV_FIELDS)
        if fresh:
            self.csv.writeheader()
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb: Any = SummaryWriter(str(out / "tensorboard"))
        except Exception:  # tensorboard not installed
            self.tb = None

    def write(self, row: dict[str, Any]) -> None:
        self.csv.writerow(row)
        self.file.flush()
        if self.tb is not None:
            for k in ("cost_bits", "bit_errors", "seq_per_s"):
                self.tb.add_scalar(k, row[k], row["sequences"])

    def close(self) -> None:
        self.file.close()
        if self.tb is not None:
            self.tb.close()


def _progress(c: TrainConfig, initial: int) -> Any:
    from tqdm import tqdm

    return tqdm(total=c.steps, initial=initial, unit="step",
                disable=not c.progress or not distributed.is_main(),
                dynamic_ncols=True, desc=f"{c.task}/{c.controller}")  # fmt: skip


def _load_for_resume(path: Path, config: TrainConfig) -> dict[str, Any]:
    state = load_checkpoint(path)
    stored = state["config"]
    for name in ("task", "controller"):
        if stored.get(name) != getattr(config, name):
            raise CheckpointError(
                f"{path}: was trained with {name}={stored.get(name)!r}, "
                f"not {getattr(config, name)!r}"
            )
    return state


def default_run_dir(c: TrainConfig) -> str:
    return f"runs/{c.task}-{c.controller}-seed{c.seed}-{time.strftime('%Y%m%d-%H%M%S')}"


def train(
    config: TrainConfig,
    *,
    resume: bool = False,
    resume_overrides: dict[str, Any] | None = None,
    dist_backend: str | None = None,
) -> dict[str, Any]:
    """Train (or resume) a run and return its summary; prints the parameter table.

    Under ``torchrun`` this is data-parallel training (see :mod:`ntm_fast.distributed`):
    ``config.batch_size`` is per rank, and ``dist_backend`` overrides the process group's
    backend (default: nccl for CUDA tensors, gloo for CPU tensors).
    """
    with distributed.session(dist_backend):
        trainer = Trainer(config, resume=resume, resume_overrides=resume_overrides)
        c = trainer.config
        if distributed.is_main():
            k = distributed.world_size()
            per_rank = f" per rank x {k} ranks" if k > 1 else ""
            print(
                f"{c.task} / {c.controller}: batch {c.batch_size}{per_rank}, {c.optimizer} "
                f"lr {c.lr:g} ({describe_schedule(c)}), seed {c.seed}, device {c.device}, "
                f"run dir {trainer.out}",
                file=sys.stderr,
            )
            print(parameter_table(trainer.model, trainer.paper_parameters), file=sys.stderr)
        summary = trainer.run()
        del trainer  # free DDP's reducer before its process group is destroyed
    return summary


if __name__ == "__main__":
    from .cli import main

    sys.exit(main(["train", *sys.argv[1:]]))
