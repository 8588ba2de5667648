"""The NTM recurrent module: :class:`ReferenceNTM` runs it on the plain-PyTorch memory ops.

Order of operations inside one time step t (the one place this is defined; restated with the
rest of the math in docs/math.md#one-time-step):

1. The controller sees ``[x_t, r_{t-1}]`` (the input and all previous read vectors) and its
   own state, and emits ``h_t``.
2. One linear layer maps ``h_t`` to every head's raw parameters (:mod:`ntm_fast.heads`).
3. Every head, read and write alike, addresses the memory ``M_{t-1}`` from its previous
   weighting ``w_{t-1}`` (eqs. 5-9), all heads in one ``address`` call.
4. Read heads read ``r_t`` from ``M_{t-1}`` (eq. 2) - reads happen before this step's write.
5. Write heads erase then add (eqs. 3-4), giving ``M_t``.
6. The output layer maps ``[h_t, r_t]`` to logits; the paper's sigmoid output layer is left
   to the loss (``BCEWithLogitsLoss``) or the caller (``torch.sigmoid``).

Episodic reset (paper section 4; docs/math.md#episodic-reset-and-initial-state): without a
``state`` argument every sequence starts from learned bias parameters - ``memory_bias``
`(N, W)` (``memory_init="per_slot"``) or `(1, W)` copied to every slot (``"shared"``: an
unwritten slot looks the same at every position; docs/training-memory.md), ``read_bias``
`(R, W)`, ``weighting_logits`` `(R + Wh, N)` (the initial weightings are their softmax, so
they are always valid distributions) and, for the LSTM controller,
``controller_h0``/``controller_c0`` `(layers, C)`. Initialisation: memory ~ U(-σ, σ) with
σ = 1/sqrt(N + W) (a zero memory would still be safe here since the cosine is ε-guarded, but
a random start breaks the symmetry between slots); read vectors and controller state 0; the
weighting logits put 2·log N on slot 0 and 0 elsewhere, so every head starts focused
(≈ 1 - 1/N) on slot 0 and location-based iteration can begin at step 1. Linear and LSTM
layers use PyTorch's default initialisation.
"""

from __future__ import annotations

import math
from types import ModuleType

import torch
from torch import Tensor, nn

from . import reference
from .controllers import FeedforwardController, LSTMController
from .heads import HeadLayout, HeadParams
from .model_checks import NTMState, check_input, check_state, lengths_mask, one_of, positive
from .trace import NTMHistory, NTMTrace, make_history, make_trace, zero_ended


class ReferenceNTM(nn.Module):
    """A Neural Turing Machine as a recurrent module in the style of :class:`torch.nn.LSTM`.

    Args:
        input_size: features per input step.
        output_size: logits per output step.
        memory_slots: N, the number of memory locations.
        memory_width: W, the width of each location (the paper's M).
        read_heads, write_heads: number of heads of each kind (>= 1 each).
        controller: ``"lstm"`` or ``"feedforward"``.
        controller_size: hidden units per controller layer.
        controller_layers: number of controller layers.
        shift_range: k; shifts -k..k are allowed (S = 2k + 1 <= N).
        shift_mode: ``"softmax"`` (a distribution over the 2k+1 shifts) or ``"uniform"``
            (the paper's single scalar read as the lower bound of a width-one uniform).
        batch_first: inputs and logits are `(B, T, F)` instead of `(T, B, F)`.
        memory_init: ``"per_slot"`` (a learned initial row per slot) or ``"shared"``.
        forget_bias: added to the LSTM controller's forget-gate biases at initialisation.

    Example::

        ntm = ReferenceNTM(9, 8)
        logits, state = ntm(torch.rand(41, 16, 9))   # (T, B, input_size) -> (T, B, 8)
        more, state = ntm(torch.rand(5, 16, 9), state)  # continue the same sequences
    """

    def __init__(
        self,
        input_size: int,
        output_size: int,
        *,
        memory_slots: int = 128,
        memory_width: int = 20,
        read_heads: int = 1,
        write_heads: int = 1,
        controller: str = "lstm",
        controller_size: int = 100,
        controller_layers: int = 1,
        shift_range: int = 1,
        shift_mode: str = "softmax",
        batch_first: bool = False,
        memory_init: str = "per_slot",
        forget_bias: float = 0.0,
    ) -> None:
        super().__init__()
        self.config = dict(
            input_size=input_size, output_size=output_size, memory_slots=memory_slots,
            memory_width=memory_width, read_heads=read_heads, write_heads=write_heads,
            controller=controller, controller_size=controller_size,
            controller_layers=controller_layers, shift_range=shift_range,
            shift_mode=shift_mode, batch_first=batch_first, memory_init=memory_init,
            forget_bias=forget_bias,
        )  # fmt: skip
        """The constructor arguments, so an equal module can be rebuilt (checkpoints, FastNTM)."""
        self.input_size = positive("input_size", input_size)
        self.output_size = positive("output_size", output_size)
        N = self.memory_slots = positive("memory_slots", memory_slots)
        W = self.memory_width = positive("memory_width", memory_width)
        R = self.read_heads = positive("read_heads", read_heads)
        Hw = self.write_heads = positive("write_heads", write_heads)
        C = self.controller_size = positive("controller_size", controller_size)
        self.controller_layers = positive("controller_layers", controller_layers)
        self.shift_range = positive("shift_range", shift_range, minimum=0)
        if 2 * shift_range + 1 > memory_slots:
            raise ValueError(
                f"shift_range: expected 2 * shift_range + 1 <= memory_slots = {memory_slots}, "
                f"got shift_range = {shift_range}"
            )
        self.controller_kind = one_of("controller", controller, ("lstm", "feedforward"))
        self.memory_init = one_of("memory_init", memory_init, ("per_slot", "shared"))
        self.shift_mode = one_of("shift_mode", shift_mode, ("softmax", "uniform"))
        if not isinstance(batch_first, bool):
            raise TypeError(f"batch_first: expected a bool, got {type(batch_first).__name__}")
        self.batch_first = batch_first

        ctrl_cls = LSTMController if controller == "lstm" else FeedforwardController
        self.controller = ctrl_cls(input_size + R * W, C, self.controller_layers, forget_bias)
        self.layout = HeadLayout(R, Hw, W, shift_range, shift_mode)
        self.heads = nn.Linear(C, self.layout.total)
        self.output = nn.Linear(C + R * W, output_size)

        sigma = 1.0 / math.sqrt(N + W)
        rows = N if memory_init == "per_slot" else 1
        self.memory_bias = nn.Parameter(torch.empty(rows, W).uniform_(-sigma, sigma))
        self.read_bias = nn.Parameter(torch.zeros(R, W))
        logits = torch.zeros(R + Hw, N)
        logits[:, 0] = 2 * math.log(N)
        self.weighting_logits = nn.Parameter(logits)
        if controller == "lstm":
            self.controller_h0 = nn.Parameter(torch.zeros(self.controller_layers, C))
            self.controller_c0 = nn.Parameter(torch.zeros(self.controller_layers, C))

    # -- the memory ops this module runs on; FastNTM swaps in a fast backend ---------------
    def memory_ops(self, device: torch.device) -> ModuleType:
        return reference

    # -- state -------------------------------------------------------------------------------
    def initial_state(self, batch_size: int) -> NTMState:
        """The learned episodic start state for ``batch_size`` sequences."""
        B = positive("batch_size", batch_size)
        ctrl: tuple[Tensor, ...] = ()
        if self.controller_kind == "lstm":
            ctrl = tuple(
                p.unsqueeze(1).expand(-1, B, -1) for p in (self.controller_h0, self.controller_c0)
            )
        return NTMState(
            memory=self.memory_bias.expand(B, self.memory_slots, -1),
            read_vectors=self.read_bias.expand(B, -1, -1),
            weightings=torch.softmax(self.weighting_logits, dim=-1).expand(B, -1, -1),
            controller=ctrl,
        )

    def parameter_counts(self) -> dict[str, int]:
        """Parameters per component: controller, heads, output, initial_state and total."""
        counts = {
            "controller": _count(self.controller),
            "heads": _count(self.heads),
            "output": _count(self.output),
        }
        counts["initial_state"] = _count(self) - sum(counts.values())
        counts["total"] = _count(self)
        return counts

    # -- forward -----------------------------------------------------------------------------
    def forward(
        self,
        x: Tensor,
        state: NTMState | None = None,
        *,
        lengths: Tensor | None = None,
        trace: bool = False,
        history: bool = False,
    ) -> tuple[Tensor, NTMState] | tuple[Tensor, NTMState, NTMTrace | NTMHistory]:
        """Run the NTM over a sequence.

        Args:
            x: `(T, B, input_size)` (or `(B, T, input_size)` with ``batch_first``).
            state: the state returned by a previous call, to continue those sequences;
                ``None`` starts from the learned initial state.
            lengths: optional `(B,)` integer tensor on x's device, 0 <= lengths <= T. Steps
                at or past a sequence's length leave its state unchanged and give zero
                logits, so a padded batch matches running each sequence alone
                (docs/math.md#variable-length-sequences).
            trace: also return an :class:`NTMTrace` of every step (detached, for plots).
            history: also return an :class:`NTMHistory` of every step's weightings, memory
                and head parameters, differentiable (e.g. for a penalty on addressing or
                writes). Not with ``trace``.

        Returns:
            ``(logits, state)``, ``(logits, state, trace)`` or ``(logits, state, history)``;
            logits and history have x's layout.
        """
        if trace and history:
            raise ValueError("trace and history: ask for one (the trace is detached, for plots)")
        x = self._check_input(x)
        T, B = x.shape[0], x.shape[1]
        active = self._check_lengths(lengths, T, B, x.device)
        state = self.initial_state(B) if state is None else self._check_state(state, B, x)
        ops = self.memory_ops(x.device)
        outputs: list[Tensor] = []
        records: list[tuple[Tensor, ...]] = []
        for t in range(T):
            out, new_state, params = self.step(x[t], state, ops)
            if active is not None:
                out, new_state = _masked(active[t], out, new_state, state)
            outputs.append(out)
            if trace:
                records.append((new_state.weightings, new_state.read_vectors, *params))
            elif history:
                heads = params if active is None else zero_ended(params, active[t])
                records.append((new_state.weightings, new_state.memory, heads))
            state = new_state
        logits = torch.stack(outputs) if outputs else x.new_zeros(0, B, self.output_size)
        if self.batch_first:
            logits = logits.transpose(0, 1)
        sizes = (self.read_heads, self.write_heads, self.memory_slots, self.memory_width)
        sizes = (*sizes, self.layout.shifts)
        if trace:
            return logits, state, make_trace(records, x, sizes)
        if history:
            h = make_history(records, x, sizes)
            return logits, state, h.batch_first() if self.batch_first else h
        return logits, state

    def step(
        self, x_t: Tensor, state: NTMState, ops: ModuleType
    ) -> tuple[Tensor, NTMState, HeadParams]:
        """One time step (see the module docstring for the order of operations)."""
        B, R = x_t.shape[0], self.read_heads
        ctrl_in = torch.cat([x_t, state.read_vectors.reshape(B, -1)], dim=-1)
        h, ctrl_state = self.controller(ctrl_in, state.controller)
        p = self.layout.activate(self.heads(h))
        memory = state.memory
        if p.key.dtype != memory.dtype:  # autocast: the memory ops run in the memory's dtype
            p = HeadParams(*(t.to(memory.dtype) for t in p))
        w = ops.address(memory, p.key, p.beta, p.gate, p.shift, p.gamma, state.weightings)
        reads = ops.read(memory, w[:, :R])
        memory = ops.write(memory, w[:, R:], p.erase, p.add)
        out = self.output(torch.cat([h, reads.reshape(B, -1)], dim=-1))
        return out, NTMState(memory, reads, w, ctrl_state), p

    # -- helpers -------------------------------------------------------------------------------
    def _check_input(self, x: object) -> Tensor:
        return check_input(x, self.input_size, self.batch_first, self.memory_bias)

    @staticmethod
    def _check_lengths(lengths: object, T: int, B: int, device: torch.device) -> Tensor | None:
        """`(T, B)` bool mask of active steps, or None when every step is active."""
        return lengths_mask(lengths, T, B, device)

    def _check_state(self, state: object, B: int, x: Tensor) -> NTMState:
        R, Hw, N, W = self.read_heads, self.write_heads, self.memory_slots, self.memory_width
        shapes = {"memory": (B, N, W), "read_vectors": (B, R, W), "weightings": (B, R + Hw, N)}
        ctrl = [(layers, B, size) for layers, size in self.controller.state_shapes]
        dtype = self.memory_bias.dtype
        return check_state(state, x, dtype, shapes, ctrl, self.controller_kind)

    def extra_repr(self) -> str:
        return (
            f"memory={self.memory_slots}x{self.memory_width}, read_heads={self.read_heads}, "
            f"write_heads={self.write_heads}, shift_range={self.shift_range}, "
            f"shift_mode={self.shift_mode!r}, batch_first={self.batch_first}"
        )


def _masked(active: Tensor, out: Tensor, new: NTMState, old: NTMState) -> tuple[Tensor, NTMState]:
    """Keep ``old`` and zero the output where a sequence has ended (``active`` is `(B,)`)."""

    def pick(n: Tensor, o: Tensor, batch_dim: int = 0) -> Tensor:
        shape = [1] * n.dim()
        shape[batch_dim] = -1
        return torch.where(active.view(shape), n, o)

    out = torch.where(active.unsqueeze(-1), out, torch.zeros_like(out))
    ctrl = tuple(pick(n, o, 1) for n, o in zip(new.controller, old.controller, strict=True))
    return out, NTMState(
        pick(new.memory, old.memory),
        pick(new.read_vectors, old.read_vectors),
        pick(new.weightings, old.weightings),
        ctrl,
    )


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
