"""Activation functions as modules (PyTorch's ``nn.Tanh``, ``nn.ReLU``, ``nn.Sigmoid``, ``nn.Identity``),
for ``Sequential``: each forwards to its ``tinygrad_rnn.functional`` function, elementwise on any shape."""
from .. import functional as F
from .._checks import check_bool
from .module import Module

__all__ = ["Tanh", "ReLU", "Sigmoid", "Identity"]


class Tanh(Module):
    """y = tanh(x), any shape."""

    def forward(self, input):
        return F.tanh(input)


class ReLU(Module):
    """y = max(x, 0), any shape. ``inplace`` (True or False) is accepted for PyTorch's code and changes
    nothing: the result is always a new Tensor (the values and gradients are the same)."""

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = check_bool("ReLU", "inplace", inplace)

    def forward(self, input):
        return F.relu(input)

    def extra_repr(self):
        return "inplace=True" if self.inplace else ""


class Sigmoid(Module):
    """y = 1 / (1 + exp(-x)), any shape."""

    def forward(self, input):
        return F.sigmoid(input)


class Identity(Module):
    """y = x (the same Tensor). Any constructor arguments are ignored, as in PyTorch (a placeholder
    that keeps a model's signature when a layer is swapped out)."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, input):
        return input
