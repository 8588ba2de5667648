"""One home for the rule every hand-written backward follows: it is not itself differentiable,
so asking for a graph of the gradient (``torch.autograd.grad(..., create_graph=True)``, a
gradient penalty, Hessian-vector products) raises here instead of returning a gradient with
no graph, which would silently drop the second-order terms."""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch


def refuse_double_backward(what: str) -> None:
    """Raise when called from a backward that autograd runs with ``create_graph=True``.

    The autograd engine runs backward functions with grad mode equal to ``create_graph``;
    ``torch.compile`` traces backwards itself (and never asks for their graph), so its tracing
    is let through.
    """
    if torch.is_grad_enabled() and not torch.compiler.is_compiling():
        raise RuntimeError(
            f"{what}: double backward is not supported (a gradient was requested with "
            "create_graph=True, e.g. for a gradient penalty or a Hessian-vector product): its "
            "backward is hand-written and not itself differentiable. Use ReferenceNTM, "
            "FastNTM(backend='reference') or ntm_fast.reference ops for higher-order gradients."
        )


def hand_written_backward(what: str) -> Callable:
    """Decorator for an ``autograd.Function.backward`` written by hand: refuses double backward
    (:func:`refuse_double_backward`), then runs the body without recording a graph."""

    def decorate(backward: Callable) -> Callable:
        @functools.wraps(backward)
        def wrapper(ctx, *grads):
            refuse_double_backward(what)
            with torch.no_grad():
                return backward(ctx, *grads)

        return wrapper

    return decorate
