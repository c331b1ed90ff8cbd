"""A fused LSTM layer: the same function as the readable cell, computed the way cuDNN does.

Following Appleyard, Kocisky and Blunsom (2016), "Optimizing Performance of Recurrent
Neural Networks on GPUs":

- forward: the input projection ``x_t W_x + b`` of *all* time steps is one matrix multiply;
  each step then needs one matrix multiply ``h_{t-1} W_h`` for the four gates together and
  a few in-place elementwise operations;
- backward (hand-written, not autograd): every factor that does not depend on the
  backward recurrence (sigmoid and tanh slopes, products with the saved activations) is
  computed for all steps at once before the loop, so each step costs one matrix multiply
  and four elementwise operations; the weight gradients are then one matrix multiply each
  over the whole sequence.

Inside this module the four blocks are stacked in the order ``[g, i, f, o]`` (columns of
``W_x`` (d, 4h), ``W_h`` (h, 4h) and ``b`` (4h,)): one tanh and one sigmoid then cover all
four blocks in the forward pass, and the three blocks whose gradient scales with dL/dc
(g, i, f) are adjacent in the backward pass. Time is the leading axis of every buffer, so
that each step reads and writes contiguous memory. ``lstm_lab.nn.LSTM`` builds
the stacked matrices from its book-named parameters; the readable cell stays the reference,
and ``tests/test_nn.py`` holds the two equal, outputs and gradients.

Glossary: b batch, t time steps, d input features, h hidden units.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

FUSED_ORDER = ("g", "i", "f", "o")


class FusedLSTMFunction(torch.autograd.Function):
    """``(x, h0, c0, W_x, W_h, b) -> (hs, h_T, c_T)`` for the vanilla LSTM (eq-lstm-*).

    Shapes: x (b, t, d); h0, c0 (b, h); W_x (d, 4h); W_h (h, 4h); b (4h,);
    hs (b, t, h); h_T, c_T (b, h).
    """

    @staticmethod
    def forward(ctx, x, h0, c0, W_x, W_h, b):
        bsz, t, d = x.shape
        h = h0.shape[1]
        x_tm = x.transpose(0, 1).reshape(t * bsz, d)  # (t*b, d), time-major
        gates = torch.addmm(b, x_tm, W_x).view(t, bsz, 4 * h)  # input projection, all steps
        hs = x.new_empty(t + 1, bsz, h)  # hs[0] = h0, hs[s + 1] = h after step s
        cs = x.new_empty(t + 1, bsz, h)
        tanh_cs = x.new_empty(t, bsz, h)
        hs[0], cs[0] = h0, c0
        for s in range(t):
            a = gates[s]  # (b, 4h): becomes [g, i, f, o] in place
            a.addmm_(hs[s], W_h)  # + h_{t-1} W_h
            a[:, :h].tanh_()  # g                eq-lstm-candidate
            a[:, h:].sigmoid_()  # i, f, o       eq-lstm-input, eq-lstm-forget, eq-lstm-output
            g, i, f, o = a.split(h, dim=1)
            torch.mul(f, cs[s], out=cs[s + 1]).addcmul_(i, g)  # eq-lstm-cell
            torch.tanh(cs[s + 1], out=tanh_cs[s])
            torch.mul(o, tanh_cs[s], out=hs[s + 1])  # eq-lstm-hidden
        ctx.save_for_backward(x_tm, W_x, W_h, gates, hs, cs, tanh_cs)
        ctx.shape = (bsz, t, d, h)
        return hs[1:].transpose(0, 1).contiguous(), hs[t].clone(), cs[t].clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, dhs, dh_last, dc_last):
        x_tm, W_x, W_h, gates, hs, cs, tanh_cs = ctx.saved_tensors
        bsz, t, d, h = ctx.shape
        g, i, f, o = gates.split(h, dim=2)  # each (t, b, h)
        # Everything that does not depend on the backward recurrence, for all steps at once.
        # dL/d(pre-activation) is dc * coef for g, i, f and dh * coef for o:
        coef = torch.empty_like(gates)
        cg, ci, cf, co = coef.split(h, dim=2)
        torch.mul(i, 1 - g * g, out=cg)  # dc -> dg_pre
        torch.mul(g, i * (1 - i), out=ci)  # dc -> di_pre
        torch.mul(cs[:-1], f * (1 - f), out=cf)  # dc -> df_pre
        torch.mul(tanh_cs, o * (1 - o), out=co)  # dh -> do_pre
        dh_to_dc = o * (1 - tanh_cs * tanh_cs)  # (t, b, h): dh -> dc through h = o tanh(c)
        coef_gif = coef[:, :, : 3 * h].view(t, bsz, 3, h)

        dgates = torch.empty_like(gates)  # (t, b, 4h): dL/d(pre-activations)
        dgates_gif = dgates[:, :, : 3 * h].view(t, bsz, 3, h)
        dgates_o = dgates[:, :, 3 * h :]
        dhs_tm = dhs.transpose(0, 1).contiguous()  # (t, b, h)
        dhs_tm[t - 1] += dh_last
        W_hT = W_h.t().contiguous()  # (4h, h)
        dh = dhs_tm[t - 1]
        dc = dc_last.clone()
        for s in reversed(range(t)):
            if s < t - 1:
                dh = dhs_tm[s].addmm_(dgates[s + 1], W_hT)  # direct + through step s+1
            dc.addcmul_(dh, dh_to_dc[s])
            torch.mul(coef_gif[s], dc.unsqueeze(1), out=dgates_gif[s])
            torch.mul(dh, co[s], out=dgates_o[s])
            dc.mul_(f[s])  # dL/dc_{t-1} = dc * f
        flat = dgates.view(t * bsz, 4 * h)
        dW_x = x_tm.t() @ flat  # one GEMM over the whole sequence
        dW_h = hs[:-1].reshape(t * bsz, h).t() @ flat
        db = flat.sum(0)
        dx = (flat @ W_x.t()).view(t, bsz, d).transpose(0, 1)
        dh0 = dgates[0] @ W_hT
        return dx, dh0, dc, dW_x, dW_h, db


def fused_lstm(x, h0, c0, W_x, W_h, b):
    """Apply :class:`FusedLSTMFunction`; see its docstring for shapes."""
    return FusedLSTMFunction.apply(x, h0, c0, W_x, W_h, b)
