"""A user's cell, as ``tinygrad-rnn check --cell tests/user_cells/gated_unit.py:GatedUnit`` loads it.

A minimal gated unit: one gate f both resets the state read by the candidate and mixes it in,

    f  = sigmoid(x W_f^T + h U_f^T + b_f)
    h~ = tanh(x W^T + (f * h) U^T + b)
    h' = h + f * (h~ - h)

The command builds it as ``GatedUnit(input_size, hidden_size)``; its parameters come out float32
and the command casts them to --dtype (float64 by default).
"""
import numpy as np

import tinygrad_rnn.nn as nn


class GatedUnit(nn.Cell):
    """x (N, D), h (N, H) -> h' (N, H) by the equations of the module docstring."""

    def __init__(self, input_size, hidden_size, dtype=np.float32):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        shapes = {"W_f": (hidden_size, input_size), "U_f": (hidden_size, hidden_size), "b_f": (hidden_size,),
                  "W": (hidden_size, input_size), "U": (hidden_size, hidden_size), "b": (hidden_size,)}
        for name, shape in shapes.items():
            setattr(self, name, nn.init.recurrent_default_(nn.Parameter(np.empty(shape, dtype=dtype)), hidden_size))

    def forward(self, x, h):
        f = (x @ self.W_f.T + h @ self.U_f.T + self.b_f).sigmoid()
        candidate = (x @ self.W.T + (f * h) @ self.U.T + self.b).tanh()
        return h + f * (candidate - h)
