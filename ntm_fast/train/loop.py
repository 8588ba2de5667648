"""The loop of :meth:`ntm_fast.train.trainer.Trainer.run`: stop conditions and signals, the log, the
checkpoints, the final save and the figures.

Stops: ``steps`` reached, ``--minutes``, ``--stop-cost``, SIGINT (Ctrl-C) or SIGTERM at the
next step boundary (:mod:`ntm_fast.train.stopping`; the summary's reason is "interrupted" or
"terminated"), SIGUSR1 saves a checkpoint and carries on. Errors: a NaN/inf cost at a log, or
NaN/inf weights at a save, raise :class:`NonFiniteError` without saving (the last good
checkpoint stays); a failed write raises :class:`UserError` naming the file, after trying to
save the checkpoint of the last whole step (single process).
"""

from __future__ import annotations

import math
import sys
import time
from typing import TYPE_CHECKING, Any

import torch
from tqdm import tqdm

from . import distributed
from .arithmetic import arithmetic, describe_change
from .checkpoint import CHECKPOINT
from .config import TrainConfig, UserError
from .objective import LN2
from .plotting import write_run_figures
from .presets import parameter_table
from .rundir import file_error
from .schedule import describe_schedule
from .stopping import REASON_CODES, StopFlag
from .tasks import task_options

if TYPE_CHECKING:  # annotations only: the trainer imports this module
    from .runlog import Logger
    from .trainer import Trainer

_CODE_REASONS = {code: reason for reason, code in REASON_CODES.items()}


class NonFiniteError(UserError):
    """The training cost or the weights became NaN or inf: the run stopped without saving
    them (the last good checkpoint stays)."""


def nonfinite_message(t: Trainer, what: str) -> str:
    """Why the run stopped on a NaN/inf ``what``, and which checkpoint is kept."""
    ckpt = t.out / CHECKPOINT
    if t._saved_step is not None:
        kept = (f"{ckpt} keeps the last good checkpoint (step {t._saved_step}); resume "
                "it with a lower --lr or --clip-norm")  # fmt: skip
    else:
        kept = (f"no checkpoint was written yet (the first was due at step "
                f"{t.config.checkpoint_every}); start again with a lower --lr or "
                "--clip-norm")  # fmt: skip
    return f"step {t.step}: the {what} became NaN or inf, so training stopped; {kept}"


def print_header(t: Trainer, resume: bool) -> None:
    """What the run is (its settings in effect, the resume's changes) and its parameter table,
    on stderr."""
    c, k = t.config, distributed.world_size()
    per_rank = f" per rank x {k} ranks" if k > 1 else ""
    print(f"{c.task} / {c.controller}: batch {c.batch_size}{per_rank}, {c.optimizer} "
          f"lr {c.lr:g} ({describe_schedule(c)}), seed {c.seed}, device {c.device}, "
          f"run dir {t.out}", file=sys.stderr)  # fmt: skip
    options = task_options({"name": c.task, **t.task.config()})
    if options:  # trained on other than the task's defaults (--task-arg): say so
        print("task: " + ", ".join(f"{k}={v}" for k, v in options.items()), file=sys.stderr)
    if t.model_config.get("forget_bias") and not resume and t.warm_start is None:  # fresh init
        print(f"model: LSTM forget-gate biases started {t.model_config['forget_bias']:+g} "
              "from torch's draw", file=sys.stderr)  # fmt: skip
    if resume:
        changed = "; changed: " + ", ".join(t.resume_changes) if t.resume_changes else ""
        began = f" (a run started from the weights of {c.init_from})" if c.init_from else ""
        print(f"resuming at step {t.step}{began}{changed}", file=sys.stderr)
        note = describe_change(t.saved_arithmetic, arithmetic(t.device))
        if note:
            print(note, file=sys.stderr)
    if t.warm_start is not None:
        print(t.warm_start.describe(), file=sys.stderr)
    if c.train_memory_slots:  # the model is evaluated with its own slots (config.py)
        print(f"training on {c.train_memory_slots} of the model's "
              f"{t.model_config['memory_slots']} memory slots (its initial weightings: "
              f"{c.train_memory_slots} logits per head instead of "
              f"{t.model_config['memory_slots']})", file=sys.stderr)  # fmt: skip
    print(parameter_table(t.model, t.paper_parameters), file=sys.stderr)


def run(t: Trainer) -> dict[str, Any]:
    """Train ``t`` until it stops; the summary dict (run_dir, reason, step, sequences,
    seconds, nonfinite_steps (gradients dropped), and the last log row's cost_bits,
    bit_errors, seq_per_s)."""
    c = t.config
    logger = t.open_logger()
    bar = progress_bar(c, t.step)
    stop = StopFlag()
    start, t_log, seq_log = time.monotonic(), time.monotonic(), t.sequences
    elapsed0 = t.elapsed
    last: dict[str, Any] = {}
    reason, save_at_end, failing = "steps", True, False
    try:
        with stop:
            while t.step < c.steps:
                code, snapshot = distributed.max_over_ranks(
                    REASON_CODES.get(stop.reason, 0), stop.checkpoint_requested
                )
                if code:
                    reason = _CODE_REASONS[code]
                    break
                if snapshot:  # SIGUSR1: a checkpoint now, then carry on
                    stop.checkpoint_requested = False
                    t.save()
                t.train_step()
                now = time.monotonic()
                t.elapsed = elapsed0 + now - start
                if t.step % c.log_every == 0 or t.step == c.steps:
                    rate = (t.sequences - seq_log) / max(now - t_log, 1e-9)
                    last = log_row(t, logger, bar, rate)
                    t_log, seq_log = now, t.sequences
                    if c.stop_cost is not None and last["cost_bits"] <= c.stop_cost:
                        reason = "stop_cost"
                        break
                if t.step % c.checkpoint_every == 0:
                    t.save()
                if c.minutes is not None and distributed.any_rank(now - start >= 60 * c.minutes):
                    reason = "minutes"
                    break
    except KeyboardInterrupt:  # a second signal, or no handler: the last whole step
        reason = stop.reason or "interrupted"
        save_at_end = not distributed.active()  # other ranks may be inside a collective
    except NonFiniteError:
        save_at_end = False  # keep the last good checkpoint
        raise
    except BaseException:
        failing = True
        save_at_end = not distributed.active()
        raise
    finally:
        bar.close()
        if save_at_end:
            final_save(t, failing)
        logger.close()
    summary: dict[str, Any] = {
        "run_dir": str(t.out), "reason": reason, "step": t.step,
        "sequences": t.sequences, "seconds": round(t.elapsed, 1),
        "nonfinite_steps": t.nonfinite_steps(),
    }  # fmt: skip
    summary.update({k: last.get(k) for k in ("cost_bits", "bit_errors", "seq_per_s")})
    if c.plots and reason not in ("interrupted", "terminated") and distributed.is_main():
        try:
            figs = write_run_figures(t.out, t.model, t.task, t.device)
        except OSError as exc:
            raise file_error(t.out / "figures", "write the figures", exc) from None
        print(f"figures: {', '.join(str(f) for f in figs)}", file=sys.stderr)
    return summary


def final_save(t: Trainer, failing: bool) -> None:
    """The checkpoint at the end; while another error propagates, a failure to save is
    reported on stderr instead of replacing that error."""
    try:
        t.save()
    except UserError as exc:
        if not failing:
            raise
        print(f"ntm-fast: also could not save the checkpoint: {exc}", file=sys.stderr)


def log_row(t: Trainer, logger: Logger, bar: Any, rate: float) -> dict[str, Any]:
    """Average the accumulated cost and errors (over ranks too), write one log row."""
    distributed.average_(t.acc)  # under torchrun: the global batch's means
    # the one host sync per log interval (dropped: the same on every rank, gradients are shared)
    cost, errors, n, dropped = torch.cat([t.acc, t.dropped.view(1)]).tolist()
    if not math.isfinite(cost):
        raise NonFiniteError(nonfinite_message(t, "training cost"))
    if dropped and dropped >= n:  # not one usable step since the last row: stuck, stop
        what = f"gradient of every one of the {int(n)} steps since the last log"
        raise NonFiniteError(nonfinite_message(t, what))
    if dropped and distributed.is_main():
        print(f"ntm-fast: warning: step {t.step}: {int(dropped)} of the last {int(n)} steps "
              "had a NaN or inf gradient (float32 overflow through the sequence) and were "
              f"dropped ({t.dropped_before + int(dropped)} in the run so far)",
              file=sys.stderr)  # fmt: skip
    row = {
        "step": t.step, "sequences": t.sequences,
        "cost_bits": cost / max(n, 1) / LN2, "bit_errors": errors / max(n, 1),
        "seconds": round(t.elapsed, 2), "seq_per_s": round(rate, 1),
    }  # fmt: skip
    failure = None
    try:
        logger.write(row)
    except UserError as exc:
        failure = exc
    if distributed.any_rank(failure is not None):
        raise failure or UserError(f"{t.out}: rank 0 could not write the training log")
    t.acc.zero_()  # only now: after a failed write the checkpoint keeps these steps' sums
    t.dropped_before += int(dropped)
    t.dropped.zero_()
    bar.update(t.step - bar.n)
    bar.set_postfix(seqs=t.sequences, cost=f"{row['cost_bits']:.3f}", seq_s=f"{rate:.0f}")
    return row


def progress_bar(c: TrainConfig, initial: int) -> Any:
    return tqdm(total=c.steps, initial=initial, unit="step",
                disable=not c.progress or not distributed.is_main(),
                dynamic_ncols=True, desc=f"{c.task}/{c.controller}")  # fmt: skip
