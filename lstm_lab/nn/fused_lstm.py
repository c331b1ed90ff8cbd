"""A fused LSTM layer: the same function as the readable cell, computed the way cuDNN does.

Following Appleyard, Kocisky and Blunsom (2016), "Optimizing Performance of Recurrent
Neural Networks on GPUs":

- forward: the input projection ``x_t W_x + b`` of *all* time steps is one matrix multiply;
  each step then needs one matrix multiply ``h_{t-1} W_h`` for the four gates together and
  a few in-place elementwise operations;
- backward (hand-written, not autograd): each step costs one matrix multiply, for the
  gradient reaching h_{t-1}, and a dozen small elementwise operations on data that is still
  in the cache; the weight gradients dW_x and dW_h are then one matrix multiply over the
  whole sequence, and so are dx and the bias gradient. (Computing the elementwise factors
  for all steps at once before the loop was slower on a 2-core CPU: those passes over
  (t, b, h) arrays are bound by memory bandwidth.)

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
        # xh[s] = [x_s | h_{s-1}]: the inputs of step s side by side, so that the backward
        # pass gets dW_x and dW_h from one matrix multiply. Step s writes h_s into xh[s + 1].
        xh = x.new_empty(t + 1, bsz, d + h)
        xh[:t, :, :d] = x.transpose(0, 1)
        xh[0, :, d:] = h0
        gates = torch.addmm(b, xh[:t, :, :d].reshape(t * bsz, d), W_x).view(t, bsz, 4 * h)  # all steps
        W_hT = W_h.t().contiguous()  # (4h, h): the fastest layout for both directions
        cs = x.new_empty(t + 1, bsz, h)  # cs[0] = c0, cs[s + 1] = c after step s
        tanh_cs = x.new_empty(t, bsz, h)
        cs[0] = c0
        for s in range(t):
            a = gates[s]  # (b, 4h): becomes [g, i, f, o] in place
            a.addmm_(xh[s, :, d:], W_hT.t())  # + h_{t-1} W_h
            a[:, :h].tanh_()  # g                eq-lstm-candidate
            a[:, h:].sigmoid_()  # i, f, o       eq-lstm-input, eq-lstm-forget, eq-lstm-output
            g, i, f, o = a.split(h, dim=1)
            torch.mul(f, cs[s], out=cs[s + 1]).addcmul_(i, g)  # eq-lstm-cell
            torch.tanh(cs[s + 1], out=tanh_cs[s])
            torch.mul(o, tanh_cs[s], out=xh[s + 1, :, d:])  # eq-lstm-hidden
        ctx.save_for_backward(xh, W_x, W_hT, gates, cs, tanh_cs)
        ctx.shape = (bsz, t, d, h)
        hs = xh[1:, :, d:]  # (t, b, h)
        return hs.transpose(0, 1).contiguous(), hs[t - 1].clone(), cs[t].clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, dhs, dh_last, dc_last):
        xh, W_x, W_hT, gates, cs, tanh_cs = ctx.saved_tensors
        bsz, t, d, h = ctx.shape
        dgates = torch.empty_like(gates)  # (t, b, 4h): dL/d(pre-activations), [g, i, f, o]
        # (t, b, h), always a copy: the loop below updates it in place, and .contiguous() would
        # return dhs itself when b = 1 or t = 1 (autograd may share dhs with other users)
        dhs_tm = dhs.transpose(0, 1).clone(memory_format=torch.contiguous_format)
        dhs_tm[t - 1] += dh_last
        dh = dhs_tm[t - 1]
        dc = dc_last.clone()
        coef = gates.new_empty(bsz, 3, h)  # dL/d[g, i, f]_pre = dc * coef
        for s in reversed(range(t)):
            a = gates[s]
            g, i, f, o = a.split(h, dim=1)
            tc, dG = tanh_cs[s], dgates[s]
            if s < t - 1:
                dh = dhs_tm[s].addmm_(dgates[s + 1], W_hT)  # direct + through step s+1
            slope = torch.addcmul(a[:, h:], a[:, h:], a[:, h:], value=-1)  # sigma' = s - s^2 for i, f, o
            # through h_t = o_t tanh(c_t):
            torch.mul(dh, tc * slope[:, 2 * h :], out=dG[:, 3 * h :])  # do_pre
            dc.addcmul_(dh, torch.addcmul(o, o * tc, tc, value=-1))  # dc += dh o (1 - tanh^2 c)
            # through c_t = f_t c_{t-1} + i_t g_t:
            torch.addcmul(i, i * g, g, value=-1, out=coef[:, 0])  # dg_pre / dc = i (1 - g^2)
            torch.mul(g, slope[:, :h], out=coef[:, 1])  # di_pre / dc = g sigma'(i)
            torch.mul(cs[s], slope[:, h : 2 * h], out=coef[:, 2])  # df_pre / dc = c_{t-1} sigma'(f)
            torch.mul(coef, dc.unsqueeze(1), out=dG[:, : 3 * h].view(bsz, 3, h))
            dc.mul_(f)  # dL/dc_{t-1} = dc * f
        flat = dgates.view(t * bsz, 4 * h)
        dW_xh = xh[:t].reshape(t * bsz, d + h).t() @ flat  # (d + h, 4h): dW_x and dW_h in one GEMM
        db = flat.sum(0)
        need_x, need_h0, need_c0 = ctx.needs_input_grad[:3]
        dx = (flat @ W_x.t()).view(t, bsz, d).transpose(0, 1) if need_x else None  # (t b, 4h) @ (4h, d) -> (b, t, d)
        dh0 = dgates[0] @ W_hT if need_h0 else None  # (b, 4h) @ (4h, h)
        return dx, dh0, (dc if need_c0 else None), dW_xh[:d], dW_xh[d:], db


def fused_lstm(x, h0, c0, W_x, W_h, b):
    """Apply :class:`FusedLSTMFunction`; see its docstring for shapes."""
    return FusedLSTMFunction.apply(x, h0, c0, W_x, W_h, b)
