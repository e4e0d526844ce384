"""The one recurrence a layer runs, for tools that replay it step by step (``Recurrent.run(..., step=...)``).

A layer that is one forward recurrence h_t = cell(x_t, h_{t-1}), t = 0..T-1, is an nn.Cell, an
nn.Recurrent that is not reversed, or a single-layer, single-direction nn.RNN / LSTM / GRU.
``forward_recurrence`` gives its cell, the input time-major, and how to lay outputs out as the layer
returns them, so a tool can run ``Recurrent(cell).run(xs, state, None, step=...)`` and hand a loss
the outputs it expects.
"""
from typing import Callable, NamedTuple

import numpy as np

from .._checks import check_tensor_input, describe
from ..tensor import Tensor
from .cells import Cell
from .recurrent import Recurrent, StackedRecurrent

__all__ = ["ForwardRecurrence", "forward_recurrence"]


class ForwardRecurrence(NamedTuple):
    """cell: the nn.Cell stepped; xs: the input (T, N, D) time-major; layout(outputs (T, N, H')): the
    outputs as the layer returns them ((N, T, H') batch_first, (T, H') for an unbatched input)."""

    cell: Cell
    xs: Tensor
    layout: Callable


def forward_recurrence(layer, x, who):
    """``ForwardRecurrence`` of ``layer`` on ``x``; ``who`` names the caller in errors.

    x: (T, N, D) ((N, T, D) if the layer is batch_first) or unbatched (T, D), a Tensor or ndarray of
    the layer's dtype, at least one step. A clear error for any other layer, shape or dtype.
    """
    cell, batch_first = _cell_of(layer, who)
    if isinstance(x, np.ndarray):
        x = Tensor(x)
    params = cell.parameters()
    check_tensor_input(who, "x", x, params[0].dtype if params else x.dtype)
    if x.ndim not in (2, 3):
        raise ValueError(f"{who}: x must be {'(N, T, D)' if batch_first else '(T, N, D)'} or unbatched (T, D), "
                         f"got shape {x.shape}")
    steps = x.shape[1] if batch_first and x.ndim == 3 else x.shape[0]
    if steps == 0:
        raise ValueError(f"{who}: x of shape {x.shape} has no time steps")
    if x.ndim == 2:
        return ForwardRecurrence(cell, x.reshape(x.shape[0], 1, x.shape[1]),
                                 lambda outputs: outputs.reshape(outputs.shape[0], outputs.shape[2]))
    if batch_first:
        return ForwardRecurrence(cell, x.transpose(0, 1), lambda outputs: outputs.transpose(0, 1))
    return ForwardRecurrence(cell, x, lambda outputs: outputs)


def _cell_of(layer, who):
    """(cell, batch_first) of a layer that is one forward recurrence."""
    if isinstance(layer, Cell):
        return layer, False
    if isinstance(layer, Recurrent):
        if layer.reverse:
            raise ValueError(f"{who}: follows time forwards; a reversed Recurrent is not supported "
                             f"(the reverse direction is the same recurrence over the reversed sequence)")
        return layer.cell, layer.batch_first
    if isinstance(layer, StackedRecurrent):
        if layer.num_layers != 1 or layer.bidirectional:
            raise ValueError(f"{who}: needs a single-layer, single-direction {type(layer).__name__}, got "
                             f"num_layers={layer.num_layers}, bidirectional={layer.bidirectional}")
        ((run,),) = layer._layers
        return run.cell, layer.batch_first
    raise TypeError(f"{who}: layer must be an nn.Cell, an nn.Recurrent or a single-layer nn.RNN / LSTM / GRU, "
                    f"got {describe(layer)}")
