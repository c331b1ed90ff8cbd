"""NumPy implementations written from scratch, one line of code per equation in the book.

These run on the CPU only and favour readability over speed: they are what a student
reads to see every step of a forward pass and every gradient of a backward pass.
"""

from lstm_lab.scratch.activations import dsigmoid, dtanh, sigmoid, tanh
from lstm_lab.scratch.gates import gate, gate_backward, gated_memory

__all__ = ["sigmoid", "dsigmoid", "tanh", "dtanh", "gate", "gate_backward", "gated_memory"]
