"""RMSProp in the centred form of Graves (2013), "Generating sequences with recurrent neural
networks", eqs. (38)-(41), which the NTM paper (section 4.6) trains with, momentum 0.9.

For each parameter w with gradient ε = ∂L/∂w (after clipping)::

    n ← ℵ n + (1 - ℵ) ε²          # running mean of squared gradients
    g ← ℵ g + (1 - ℵ) ε           # running mean of gradients (the "centring" term)
    Δ ← ℶ Δ - ג ε / sqrt(n - g² + ℷ)
    w ← w + Δ

with Graves's constants ℵ = 0.95 (``alpha``), ℶ = 0.9 (``momentum``), ℷ = 1e-4 (``eps``,
inside the square root, unlike torch's RMSprop which adds it outside) and ג = the learning
rate (1e-4 in Graves 2013; Tables 1-3 of the NTM paper give 1e-4 or 3e-5). n, g, Δ start at 0.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor


class GravesRMSprop(torch.optim.Optimizer):
    """Centred RMSProp with momentum exactly as in the module docstring."""

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-4,
        alpha: float = 0.95,
        momentum: float = 0.9,
        eps: float = 1e-4,
    ) -> None:
        for name, v, lo, hi in (
            ("lr", lr, 0.0, float("inf")),
            ("alpha", alpha, 0.0, 1.0),
            ("momentum", momentum, 0.0, 1.0),
            ("eps", eps, 0.0, float("inf")),
        ):
            if not lo <= v < hi or (name in ("lr", "eps") and v <= 0):
                raise ValueError(f"{name}: got {v}, expected a value in the valid range")
        super().__init__(params, dict(lr=lr, alpha=alpha, momentum=momentum, eps=eps))

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, alpha, mom, eps = group["lr"], group["alpha"], group["momentum"], group["eps"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                state = self.state[p]
                if not state:
                    state["n"] = torch.zeros_like(p)
                    state["g"] = torch.zeros_like(p)
                    state["delta"] = torch.zeros_like(p)
                n, g, delta = state["n"], state["g"], state["delta"]
                n.mul_(alpha).addcmul_(grad, grad, value=1 - alpha)
                g.mul_(alpha).add_(grad, alpha=1 - alpha)
                denom = (n - g * g).add_(eps).sqrt_()
                delta.mul_(mom).addcdiv_(grad, denom, value=-lr)
                p.add_(delta)
        return loss


class SpikeClip:
    """Clips the global gradient norm to ``factor`` times its running mean (decay ``decay``,
    over the clipped norms), so one unusual sequence moves the weights about as far as a
    typical step does.

    Why: at batch 1-2 after convergence the copy task's rare hard sequences (an all-zero
    input vector, docs/copy-recipes.md) give gradients hundreds of times the typical norm; a
    fixed norm clip large enough for early training lets such a step undo the learned
    solution. The mean starts at the first step's norm. Tensor ops only (no host sync).
    """

    def __init__(self, factor: float, decay: float = 0.99, device: torch.device | None = None):
        if not factor > 1:
            raise ValueError(f"factor: expected > 1, got {factor}")
        self.factor, self.decay = factor, decay
        self.mean = torch.zeros((), device=device)  # 0: no step seen yet

    def __call__(
        self, params: Iterable[Tensor], flat: Tensor | None = None, update: Tensor | None = None
    ) -> Tensor:
        """Scale the gradients of ``params`` in place (``flat``: one buffer they are all views
        of, scaled in one op); returns the norm before clipping. ``update``: a device bool;
        when False the running mean is left as it is (a dropped, all-zero gradient)."""
        grads = [p.grad for p in params if p.grad is not None]
        norm = torch.nn.utils.get_total_norm(grads)  # torch's fused (foreach) norm
        started = self.mean > 0
        limit = torch.where(started, self.mean * self.factor, norm)
        _scale(grads, flat, (limit / norm.clamp_min(1e-30)).clamp(max=1.0))
        kept = torch.minimum(norm, limit)
        new = torch.where(started, self.mean * self.decay + kept * (1 - self.decay), kept)
        self.mean.copy_(new if update is None else torch.where(update, new, self.mean))
        return norm


def _scale(grads: list[Tensor], flat: Tensor | None, factor: Tensor) -> None:
    if flat is not None:
        flat.mul_(factor)
    else:
        torch._foreach_mul_(grads, factor)


def clip_gradients(
    params: list[Tensor],
    value: float,
    norm: float,
    spike: SpikeClip | None,
    flat: Tensor | None = None,
    norm_first: bool = False,
) -> Tensor:
    """The trainer's clipping, in order: each element to ±``value`` (the paper's), the global
    norm to ``norm`` (0: off), then to ``spike``'s multiple of its running mean (None: off).
    ``norm_first``: scale the whole gradient to the norm ``norm`` before all that, so that a
    gradient that explodes keeps its direction (Pascanu et al. 2013) instead of becoming, at
    the element clip, ±``value`` in most of its elements: the sign of its direction. The
    element clip and the norm clip after it then change (almost) nothing.

    A gradient with any NaN or inf element is dropped first: every gradient is set to zero,
    so the optimiser step that follows carries no information from the batch (its momentum
    still applies) instead of writing NaN into the weights. This happens when the gradient
    through a long sequence overflows float32 (seen in float64 at 1e42 on N-grams with the
    feedforward controller, docs/training.md#non-finite-gradients). Returns a device bool,
    False when the gradient was dropped; no host sync.

    ``flat``: one buffer that every parameter's gradient is a view of
    (:class:`ntm_fast.train.flat.FlatParameters`): the element-wise parts run on it as one op
    each; the norms are still taken per tensor, so the result is the same to the bit as
    :func:`torch.nn.utils.clip_grad_value_` and :func:`~torch.nn.utils.clip_grad_norm_`."""
    grads = [p.grad for p in params if p.grad is not None]
    finite = _all_finite(grads if flat is None else [flat])
    for g in [flat] if flat is not None else grads:
        g.masked_fill_(~finite, 0.0)
    if norm_first and norm:
        _clip_norm(grads, flat, norm, wide=True)
    if flat is None:
        torch.nn.utils.clip_grad_value_(params, value)
    else:
        flat.clamp_(-value, value)
    if norm:
        _clip_norm(grads, flat, norm)
    if spike is not None:
        spike(params, flat, update=finite)
    return finite


def _clip_norm(grads: list[Tensor], flat: Tensor | None, norm: float, wide: bool = False) -> None:
    total = torch.nn.utils.get_total_norm(grads)
    if wide:  # the factor from float64, rounded once: as session 37's norm-first runs had it
        total = total.double()
    _scale(grads, flat, (norm / (total + 1e-6)).clamp(max=1.0))  # as clip_grad_norm_


def _all_finite(tensors: list[Tensor]) -> Tensor:
    if not tensors:
        return torch.ones((), dtype=torch.bool)
    return torch.stack([t.isfinite().all() for t in tensors]).all()


class ControllerWeightDecay:
    """Decoupled weight decay (the AdamW form) of the NTM controller's weight matrices: before
    each optimiser step, w <- w * (1 - lr_t * ``rate``), lr_t that step's scheduled rate.
    Biases, heads, output layer and initial state are left alone.

    Why: on the copy task the LSTM controller's cell state grows (max |c| 6-13 over a
    length-120 output phase without it, ~2 with 0.3) and the converged network relapses less
    often: over seeds 0-31, 28 never back above 1 bit after first reaching 0.1, against 20
    (docs/results/copy-weight-decay.md).

    ``flat`` (:class:`ntm_fast.train.flat.FlatParameters`): decay its buffer through a 0/1
    mask; without it (DDP) each matrix with a mask of ones: one formula, so the two layouts
    stay bit-identical. Stateless: resuming is exact.
    """

    def __init__(self, rate: float, model: torch.nn.Module, flat: Any = None) -> None:
        chosen = [
            p for n, p in model.named_parameters() if n.startswith("controller.") and p.dim() > 1
        ]
        if not chosen:
            raise ValueError(
                f"weight_decay: {type(model).__name__} has no NTM controller weights to decay "
                "(the plain LSTM baseline); expected 0"
            )
        self.rate = rate
        if flat is not None:
            masks = [(flat.param.data, flat.mask(chosen))]
        else:
            masks = [(p.data, torch.ones_like(p)) for p in chosen]
        # (weights, mask, factor buffer): the factor 1 - lr*rate*mask is rebuilt in place each
        # step (the rate follows the schedule) without allocating on the hot path
        self.targets = [(w, m, torch.empty_like(m)) for w, m in masks]

    @torch.no_grad()
    def apply(self, lr: float) -> None:
        for weights, mask, factor in self.targets:
            torch.mul(mask, lr * self.rate, out=factor)
            weights.mul_(factor.neg_().add_(1))  # = 1 - lr*rate*mask to the bit


def controller_decay(
    rate: float, model: torch.nn.Module, flat: Any = None
) -> ControllerWeightDecay | None:
    """:class:`ControllerWeightDecay` at ``rate``, or None for 0 (no decay)."""
    return ControllerWeightDecay(rate, model, flat) if rate else None


def optimizer_step(
    optimizer: torch.optim.Optimizer, lr: float, decay: ControllerWeightDecay | None
) -> None:
    """One step at rate ``lr`` (set on every group), after ``decay`` if any."""
    for group in optimizer.param_groups:
        group["lr"] = lr
    if decay:
        decay.apply(lr)
    optimizer.step()
