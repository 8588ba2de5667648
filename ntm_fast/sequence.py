"""The whole-sequence fast path of :class:`ntm_fast.FastNTM`: one autograd node per sequence.

The eager module records ~60 autograd nodes per time step; at small batch sizes their
bookkeeping, not arithmetic, is the cost. :class:`NTMSequence` runs the same step (order of
operations as in :mod:`ntm_fast.model`) with autograd off and the fused kernels called
directly, and its backward is backpropagation through time written by hand:

* per step, forward: 1 matmul per controller layer (input and recurrent weights concatenated;
  the input part of layer 0 is projected for all T at once before the loop), the LSTM
  pointwise ops, 1 matmul for every head's parameters, their activations, and one fused
  addressing, one read and one write kernel;
* per step, backward: the write, read and addressing backward kernels, the activation and
  LSTM derivatives, and one matmul per layer for the input gradients;
* every weight gradient and the output layer (forward and backward) are single matmuls over
  all T·B rows after the loop.

Saved for backward, per step: the memory before the step (B·N·W values), the weightings
(B·H·N), the heads' raw outputs, and the controller's gate activations, cell states and layer
inputs - dominated by B·N·W, the same memory the eager reference keeps for its own backward.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import Tensor

from .autograd_checks import hand_written_backward
from .heads import HeadLayout, HeadParams, sigmoid_backward, tanh_backward


@dataclass(frozen=True)
class SequenceConfig:
    """What the sequence Function needs to know that is not a tensor."""

    ops: Any  # torch.ops namespace with <op>_fwd / <op>_bwd (native or Triton)
    layout: HeadLayout
    lstm: bool
    layers: int
    input_size: int


def controller_weights(module) -> list[Tensor]:
    """The controller's parameters in the order :class:`NTMSequence` takes them."""
    if module.controller_kind == "lstm":
        return [
            t
            for cell in module.controller.cells
            for t in (cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh)
        ]
    return [t for layer in module.controller.layers for t in (layer.weight, layer.bias)]


class _Step(NamedTuple):
    """What the backward needs of one forward step."""

    memory: Tensor  # before the step's write
    w_prev: Tensor
    raw: Tensor  # the heads' raw outputs
    p: HeadParams  # their activations
    inp: list[Tensor]  # per controller layer: its input (with h_prev for an LSTM)
    act: list[Tensor]  # per layer: gate activations (LSTM) or tanh output (feedforward)
    c_prev: list[Tensor]  # per LSTM layer: the cell state before the step


def _unpack_step(flat: list[Tensor], cfg: SequenceConfig) -> _Step:
    n = len(HeadParams._fields)
    L = cfg.layers
    rest = flat[3 + n :]
    return _Step(
        flat[0], flat[1], flat[2], HeadParams(*flat[3 : 3 + n]),
        list(rest[:L]), list(rest[L : 2 * L]), list(rest[2 * L : 3 * L]),
    )  # fmt: skip


class NTMSequence(torch.autograd.Function):
    """``apply(cfg, x, memory, reads, weightings, n_state, *state, *params)`` ->
    ``(logits, memory, reads, weightings, *state)`` where ``state`` is the controller state
    ``(h, c)`` (LSTM) or nothing, and ``params`` are the controller weights
    (:func:`controller_weights`), heads.weight, heads.bias, output.weight, output.bias."""

    @staticmethod
    def forward(ctx, cfg: SequenceConfig, x, memory, reads, weightings, n_state, *rest):
        state, params = rest[:n_state], rest[n_state:]
        per_layer = 4 if cfg.lstm else 2
        ctrl_p = [params[i * per_layer : (i + 1) * per_layer] for i in range(cfg.layers)]
        w_heads, b_heads, w_out, b_out = params[cfg.layers * per_layer :]
        T, B, F = x.shape
        R = cfg.layout.read_heads
        ops = cfg.ops

        # Layer weights with the input and recurrent parts side by side: one matmul per layer.
        if cfg.lstm:
            w_cat = [torch.cat([p[0], p[1]], dim=1) for p in ctrl_p]
            bias = [p[2] + p[3] for p in ctrl_p]
            hs = list(state[0].unbind(0))
            cs = list(state[1].unbind(0))
        else:
            w_cat = [p[0] for p in ctrl_p]
            bias = [p[1] for p in ctrl_p]
        x_proj = torch.addmm(bias[0], x.reshape(T * B, F), w_cat[0][:, :F].t()).view(T, B, -1)
        w0_rest = w_cat[0][:, F:].t()  # read vectors (and h for an LSTM) -> layer 0

        records: list[Tensor] = []  # per step: _pack_step; saved with save_for_backward so that
        tops, all_reads = [], []  # activation checkpointing can drop and recompute them
        for t in range(T):
            # -- controller -----------------------------------------------------------------
            layer_in = reads.reshape(B, -1)
            step_in, step_act, step_c = [], [], []
            for layer in range(cfg.layers):
                if cfg.lstm:
                    inp = torch.cat([layer_in, hs[layer]], dim=1)
                    if layer == 0:
                        gates = torch.addmm(x_proj[t], inp, w0_rest)
                    else:
                        gates = torch.addmm(bias[layer], inp, w_cat[layer].t())
                    act = torch.sigmoid(gates)
                    g = torch.tanh(gates.narrow(1, 2 * act.shape[1] // 4, act.shape[1] // 4))
                    act.narrow(1, 2 * act.shape[1] // 4, act.shape[1] // 4).copy_(g)
                    i, f, g, o = act.chunk(4, dim=1)
                    step_c.append(cs[layer])
                    cs[layer] = torch.addcmul(i * g, f, cs[layer])
                    hs[layer] = o * torch.tanh(cs[layer])
                    layer_in = hs[layer]
                else:
                    inp = layer_in
                    if layer == 0:
                        pre = torch.addmm(x_proj[t], inp, w0_rest)
                    else:
                        pre = torch.addmm(bias[layer], inp, w_cat[layer].t())
                    act = torch.tanh(pre)
                    layer_in = act
                step_in.append(inp)
                step_act.append(act)
            top = layer_in
            # -- heads and memory -------------------------------------------------------------
            raw = torch.addmm(b_heads, top, w_heads.t())
            p = cfg.layout.activate(raw)
            w = ops.address_fwd(memory, p.key, p.beta, p.gate, p.shift, p.gamma, weightings)
            reads = ops.read_fwd(memory, w[:, :R].contiguous())
            records += [memory, weightings, raw, *p, *step_in, *step_act, *step_c]
            memory = ops.write_fwd(memory, w[:, R:].contiguous(), p.erase, p.add)
            weightings = w
            tops.append(top)
            all_reads.append(reads)

        top_all = torch.stack(tops) if T else x.new_zeros(0, B, w_heads.shape[1])
        reads_all = torch.stack(all_reads) if T else reads.new_zeros((0, *reads.shape))
        out_in = torch.cat([top_all, reads_all.reshape(T, B, -1)], dim=-1)
        logits = torch.addmm(b_out, out_in.reshape(T * B, -1), w_out.t()).view(T, B, -1)

        new_state = (torch.stack(hs), torch.stack(cs)) if cfg.lstm else ()
        ctx.cfg, ctx.n_state, ctx.T = cfg, n_state, T
        ctx.n_params = len(params)
        ctx.save_for_backward(x, out_in, *params, *records, weightings)
        return (logits, memory, reads, weightings, *new_state)

    @staticmethod
    @hand_written_backward("FastNTM (fused sequence path)")
    def backward(ctx, d_logits, d_memory, d_reads, d_w, *d_state):
        cfg, T = ctx.cfg, ctx.T
        x, out_in, *saved = ctx.saved_tensors
        params, records, w_last = saved[: ctx.n_params], saved[ctx.n_params : -1], saved[-1]
        per_step = len(records) // T
        steps = [_unpack_step(records[t * per_step : (t + 1) * per_step], cfg) for t in range(T)]
        per_layer = 4 if cfg.lstm else 2
        ctrl_p = [params[i * per_layer : (i + 1) * per_layer] for i in range(cfg.layers)]
        w_heads, _, w_out, _ = params[cfg.layers * per_layer :]
        _, B, F = x.shape
        R, layout, ops = cfg.layout.read_heads, cfg.layout, cfg.ops
        C = w_heads.shape[1]

        def zeros_if_none(g, like):
            return torch.zeros_like(like) if g is None else g

        d_logits = zeros_if_none(d_logits, out_in[..., :1].expand(T, B, w_out.shape[0]))
        d_out_in = (d_logits.reshape(T * B, -1) @ w_out).view(T, B, -1)
        d_top_out, d_reads_out = d_out_in[..., :C], d_out_in[..., C:]

        d_mem = zeros_if_none(d_memory, steps[0].memory)
        d_w_carry = zeros_if_none(d_w, w_last)
        reads_shape = (B, R, layout.width)
        d_reads_carry = d_reads if d_reads is not None else x.new_zeros(reads_shape)
        if cfg.lstm:
            h_final = d_state[0] if d_state and d_state[0] is not None else None
            c_final = d_state[1] if len(d_state) > 1 and d_state[1] is not None else None
            d_h = [x.new_zeros(B, C) if h_final is None else h_final[i] for i in range(cfg.layers)]
            d_c = [x.new_zeros(B, C) if c_final is None else c_final[i] for i in range(cfg.layers)]
        w_cat = [torch.cat([p[0], p[1]], dim=1) if cfg.lstm else p[0] for p in ctrl_p]

        d_raw_all, d_pre_all = [], [[] for _ in range(cfg.layers)]
        for t in range(T - 1, -1, -1):
            memory, w_prev, raw, p = steps[t].memory, steps[t].w_prev, steps[t].raw, steps[t].p
            w = steps[t + 1].w_prev if t + 1 < T else w_last
            d_read = d_reads_out[t].reshape(reads_shape) + d_reads_carry
            dm_write, dw_write, d_erase, d_add = ops.write_bwd(
                d_mem, memory, w[:, R:].contiguous(), p.erase, p.add
            )
            dm_read, dw_read = ops.read_bwd(d_read, memory, w[:, :R].contiguous())
            d_w_total = torch.cat([dw_read, dw_write], dim=1) + d_w_carry
            dm_addr, d_key, d_beta, d_gate, d_shift, d_gamma, d_w_carry = ops.address_bwd(
                d_w_total, memory, p.key, p.beta, p.gate, p.shift, p.gamma, w_prev
            )
            d_mem = dm_write + dm_read + dm_addr
            grads = HeadParams(d_key, d_beta, d_gate, d_shift, d_gamma, d_erase, d_add)
            d_raw = layout.activation_grads(raw, p, grads)
            d_raw_all.append(d_raw)
            d_layer_out = torch.addmm(d_top_out[t], d_raw, w_heads)
            for layer in range(cfg.layers - 1, -1, -1):
                act = steps[t].act[layer]
                if cfg.lstm:
                    i, f, g, o = act.chunk(4, dim=1)
                    c_prev = steps[t].c_prev[layer]
                    c_new = torch.addcmul(i * g, f, c_prev)
                    tanh_c = torch.tanh(c_new)
                    d_hl = d_layer_out + d_h[layer]
                    d_cl = d_c[layer] + tanh_backward(d_hl * o, tanh_c)
                    # d/d(gate activations), then through the sigmoids (i, f, o) and the
                    # tanh (g) in two whole-row calls instead of one chain per gate
                    d_act = torch.cat([d_cl * g, d_cl * c_prev, d_cl * i, d_hl * tanh_c], dim=1)
                    d_pre = sigmoid_backward(d_act, act)
                    d_g = d_act.narrow(1, 2 * C, C)
                    d_pre.narrow(1, 2 * C, C).copy_(tanh_backward(d_g, g))
                    d_c[layer] = d_cl * f
                    d_inp = d_pre @ (w_cat[layer][:, F:] if layer == 0 else w_cat[layer])
                    n_in = d_inp.shape[1] - C
                    d_h[layer] = d_inp[:, n_in:]
                    d_layer_out = d_inp[:, :n_in]
                else:
                    d_pre = tanh_backward(d_layer_out, act)
                    d_layer_out = (
                        d_pre @ w_cat[layer][:, F:] if layer == 0 else d_pre @ w_cat[layer]
                    )
                d_pre_all[layer].append(d_pre)
            d_reads_carry = d_layer_out.reshape(reads_shape)

        # -- weight gradients: one matmul each over all T·B rows ------------------------------
        def rows(ts):
            return torch.stack(ts).reshape(T * B, -1)

        grads: list[Tensor | None] = []
        d_x = None
        for layer in range(cfg.layers):
            d_pre = rows(d_pre_all[layer][::-1])  # collected backwards in time
            full_in = rows([s.inp[layer] for s in steps])
            if layer == 0:
                full_in = torch.cat([x.reshape(T * B, F), full_in], dim=1)
            d_w_cat = d_pre.t() @ full_in
            d_bias = d_pre.sum(0)
            if layer == 0 and ctx.needs_input_grad[1]:
                d_x = (d_pre @ w_cat[0][:, :F]).view(T, B, F)
            if cfg.lstm:
                n_in = ctrl_p[layer][0].shape[1]
                grads += [d_w_cat[:, :n_in], d_w_cat[:, n_in:], d_bias, d_bias]
            else:
                grads += [d_w_cat, d_bias]
        d_raw = rows(d_raw_all[::-1])
        top_rows = out_in[..., :C].reshape(T * B, C)
        grads += [d_raw.t() @ top_rows, d_raw.sum(0)]
        d_logit_rows = d_logits.reshape(T * B, -1)
        grads += [d_logit_rows.t() @ out_in.reshape(T * B, -1), d_logit_rows.sum(0)]

        d_state_out = (torch.stack(d_h), torch.stack(d_c)) if cfg.lstm else ()
        return (None, d_x, d_mem, d_reads_carry, d_w_carry, None, *d_state_out, *grads)
