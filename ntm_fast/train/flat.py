"""The trainer's parameters and gradients, each in one contiguous buffer.

Why: at the copy default's batch of 2 the whole-sequence op takes ~2.4 ms a step, and the
element-wise clipping and optimiser step took another ~1.2 ms, not for their arithmetic (67k
numbers) but for issuing a handful of small ops per parameter tensor (13 of them). With every
parameter a view of one buffer and every gradient a view of another, those become a handful of
ops in all. The norms are still taken per tensor (:func:`torch.nn.utils.get_total_norm` over
the views), and element-wise ops do not care how the elements are grouped, so training is
bit-identical to the per-tensor form (tested) and checkpoints keep torch's per-parameter
optimiser layout (converted on save and load), so runs resume across the two.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn


class FlatParameters:
    """Re-points ``params`` (one device and dtype) at views of one buffer, their gradients at
    views of another (kept between steps: autograd accumulates into them in place).

    ``param`` is the flat buffer as the one parameter to give the optimiser, ``param.grad``
    the flat gradient; ``grads`` are the per-parameter gradient views.
    """

    def __init__(self, params: list[nn.Parameter]) -> None:
        if not params:
            raise ValueError("params: expected at least one parameter, got none")
        kinds = {(p.device, p.dtype) for p in params}
        if len(kinds) != 1:
            kinds_seen = sorted(map(str, kinds))
            raise ValueError(f"params: expected one device and dtype, got {kinds_seen}")
        self.params = params
        self.shapes = [p.shape for p in params]
        self.numels = [p.numel() for p in params]
        with torch.no_grad():
            self.param = nn.Parameter(torch.cat([p.detach().reshape(-1) for p in params]))
        self.param.grad = torch.zeros_like(self.param)
        self.grads = self._views(self.param.grad)
        for p, data, grad in zip(params, self._views(self.param.data), self.grads, strict=True):
            p.data = data
            p.grad = grad

    def _views(self, flat: Tensor) -> list[Tensor]:
        return [v.view(s) for v, s in zip(flat.split(self.numels), self.shapes, strict=True)]

    def zero_grad(self) -> None:
        self.param.grad.zero_()

    def mask(self, chosen: list[Tensor]) -> Tensor:
        """1 on the elements of :attr:`param` that hold the ``chosen`` parameters, 0 elsewhere."""
        mask = torch.zeros_like(self.param.data)
        for p, view in zip(self.params, self._views(mask), strict=True):
            if any(p is c for c in chosen):
                view.fill_(1)
        return mask

    # -- the optimiser's state in torch's per-parameter layout (checkpoints) ---------------------
    def split_optimizer_state(self, state: dict[str, Any]) -> dict[str, Any]:
        """``state`` of an optimiser over :attr:`param` -> the same optimiser's state over the
        separate parameters: flat tensors split (copied) per parameter, scalars (Adam's
        ``step``) copied to each."""
        per: dict[int, dict[str, Any]] = {i: {} for i in range(len(self.params))}
        for key, value in state["state"].get(0, {}).items():
            if isinstance(value, Tensor) and value.shape == self.param.shape:
                parts = self._views(value)
            else:
                parts = [value] * len(self.params)
            for i, part in enumerate(parts):
                per[i][key] = part.clone() if isinstance(part, Tensor) else part
        groups = [{**g, "params": list(range(len(self.params)))} for g in state["param_groups"]]
        return {"state": per if state["state"] else {}, "param_groups": groups}

    def join_optimizer_state(self, state: dict[str, Any]) -> dict[str, Any]:
        """The inverse of :meth:`split_optimizer_state`; raises ValueError naming what does not
        match (a checkpoint of another model)."""
        groups = state.get("param_groups")
        if not isinstance(groups, list) or len(groups) != 1:
            raise ValueError(f"optimizer state: expected one parameter group, got {groups!r}")
        n = len(self.params)
        if list(groups[0].get("params", [])) != list(range(n)):
            raise ValueError(f"optimizer state: expected parameters 0..{n - 1}")
        per = state["state"]
        joined: dict[str, Any] = {}
        if per:
            if sorted(per) != list(range(n)):
                raise ValueError(f"optimizer state: expected the state of {n} parameters")
            for key, first in per[0].items():
                parts = [per[i].get(key) for i in range(n)]
                shaped = zip(parts, self.shapes, strict=True)
                if all(isinstance(t, Tensor) and t.shape == s for t, s in shaped):
                    joined[key] = torch.cat([t.reshape(-1) for t in parts])
                elif isinstance(first, Tensor) and first.dim() == 0:  # Adam's step
                    joined[key] = first.clone()
                elif isinstance(first, Tensor):
                    shapes = [None if t is None else tuple(t.shape) for t in parts]
                    raise ValueError(
                        f"optimizer state {key!r}: shapes {shapes}, expected the "
                        f"parameters' {[tuple(s) for s in self.shapes]}"
                    )
                else:
                    joined[key] = first
        return {"state": {0: joined} if per else {}, "param_groups": [{**groups[0], "params": [0]}]}


def optimizer_state(optimizer: torch.optim.Optimizer, flat: FlatParameters | None) -> dict:
    """``optimizer``'s state dict in torch's per-parameter layout (for checkpoints)."""
    state = optimizer.state_dict()
    return state if flat is None else flat.split_optimizer_state(state)


def load_optimizer_state(
    optimizer: torch.optim.Optimizer, state: dict, flat: FlatParameters | None
) -> None:
    """Load a per-parameter ``state`` (:func:`optimizer_state`) into ``optimizer``."""
    optimizer.load_state_dict(state if flat is None else flat.join_optimizer_state(state))
