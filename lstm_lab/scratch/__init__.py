"""NumPy implementations written from scratch, one line of code per equation in the book.

These run on the CPU only and favour readability over speed: they are what a student
reads to see every step of a forward pass and every gradient of a backward pass.

A forward function takes ``x`` of shape (b, t, d), a ``params`` dict keyed by the book's
symbols and optional initial state(s), and returns ``(hs, cache)`` with ``hs`` of shape
(b, t, h). The matching backward takes ``dhs`` (the shape of ``hs``) and the cache and
returns a dict with a gradient for every parameter, for ``x`` (key ``"x"``) and for the
initial state(s). The selective SSM (``scratch.ssm``) takes its inputs one by one, as its
PyTorch twin :func:`lstm_lab.nn.ssm.selective_scan` does, and its backward returns a gradient
for each of them.
"""

from lstm_lab.scratch.activations import dsigmoid, dtanh, sigmoid, tanh
from lstm_lab.scratch.gates import gate, gate_backward, gated_memory
from lstm_lab.scratch.gru import gru_backward, gru_forward, init_gru_params
from lstm_lab.scratch.lstm import init_lstm_params, lstm_backward, lstm_forward
from lstm_lab.scratch.rnn import init_rnn_params, rnn_backward, rnn_forward
from lstm_lab.scratch.ssm import selective_scan, selective_scan_backward

__all__ = [
    "sigmoid", "dsigmoid", "tanh", "dtanh",
    "gate", "gate_backward", "gated_memory",
    "rnn_forward", "rnn_backward", "init_rnn_params",
    "lstm_forward", "lstm_backward", "init_lstm_params",
    "gru_forward", "gru_backward", "init_gru_params",
    "selective_scan", "selective_scan_backward",
]
