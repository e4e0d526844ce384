"""The one recurrence a layer runs, for tools that replay it step by step (``Recurrent.run(..., step=...)``).

A layer that is one forward recurrence s_t = cell(x_t, s_{t-1}), t = 0..T-1, is an nn.Cell, an
nn.Recurrent that is not reversed, or a single-layer, single-direction nn.RNN / LSTM / GRU.

- ``recurrence_of(layer, who)``: the nn.Recurrent that runs it (None for a cell), or a clear error
  naming what makes the layer something else (more layers, two directions, reversed, not a layer);
- ``forward_recurrence(layer, x, who)``: its cell, x time-major (T, N, D), and how to lay outputs
  out as the layer returns them;
- ``unroll_steps(cell, xs, state, advance, enter)``: the loop itself, one whole cell call per step
  (``Recurrent.run`` with a ``step``: no input projection of all T steps at once, no accelerator),
  keeping every step's state, so a tool can hook, alias or cut each step's tensors.

What a tool needs beyond that (one sequence, a batch of one, frozen parameters) is the tool's own check.
"""
from typing import Callable, NamedTuple

import numpy as np

from .._checks import check_tensor_input, describe
from ..tensor import Tensor
from .cells import Cell, state_parts
from .recurrent import Recurrent, StackedRecurrent

__all__ = ["recurrence_of", "ForwardRecurrence", "forward_recurrence", "UnrolledSteps", "unroll_steps"]

_SUPPORTED = ("one forward recurrence: an nn.Cell, an nn.Recurrent that is not reversed, or a single-layer, "
              "single-direction nn.RNN / LSTM / GRU")


def recurrence_of(layer, who):
    """The nn.Recurrent that runs ``layer``: the layer itself (an nn.Recurrent, not reversed), the one
    Recurrent of a single-layer, single-direction nn.RNN / LSTM / GRU, or None for an nn.Cell (one
    step; a caller may loop it with ``Recurrent(cell)``). ``who`` names the caller in the errors:
    a ValueError naming the setting to change (num_layers, bidirectional, reverse), a TypeError
    naming the type for anything else.
    """
    name = type(layer).__name__
    if isinstance(layer, Cell):
        return None
    if isinstance(layer, Recurrent):
        if layer.reverse:
            raise ValueError(f"{who}: the layer must be {_SUPPORTED}; this Recurrent runs in reverse: check "
                             f"Recurrent(cell) forwards (a reversed Recurrent is the same recurrence over the "
                             f"reversed sequence)")
        return layer
    if isinstance(layer, StackedRecurrent):
        sizes = f"{name}({layer.input_size}, {layer.hidden_size})"
        if layer.num_layers != 1:
            raise ValueError(f"{who}: the layer must be {_SUPPORTED}; this {name} has num_layers={layer.num_layers}: "
                             f"check one layer at a time, e.g. {sizes} (each layer is the same recurrence)")
        if layer.bidirectional:
            raise ValueError(f"{who}: the layer must be {_SUPPORTED}; this {name} is bidirectional: check a "
                             f"unidirectional {sizes} (the reverse direction is the same recurrence over the "
                             f"reversed sequence)")
        ((run,),) = layer.runs  # one layer, one direction
        return run
    raise TypeError(f"{who}: the layer must be {_SUPPORTED}; got a {name}")


class ForwardRecurrence(NamedTuple):
    """cell: the nn.Cell stepped; xs: the input (T, N, D) time-major; layout(outputs (T, N, H')): the
    outputs as the layer returns them ((N, T, H') batch_first, (T, H') for an unbatched input)."""

    cell: Cell
    xs: Tensor
    layout: Callable


def forward_recurrence(layer, x, who):
    """``ForwardRecurrence`` of ``layer`` (any layer ``recurrence_of`` accepts) on ``x``; ``who`` names
    the caller in errors.

    x: (T, N, D) ((N, T, D) if the layer is batch_first) or unbatched (T, D), a Tensor or ndarray of
    the layer's dtype, at least one step. A clear error for any other layer, type, shape or dtype.
    """
    recurrent = recurrence_of(layer, who)
    cell = layer if recurrent is None else recurrent.cell
    batch_first = False if recurrent is None else layer.batch_first
    if isinstance(x, np.ndarray):
        x = Tensor(x)
    if not isinstance(x, Tensor):
        raise TypeError(f"{who}: x must be a Tensor or ndarray, got {describe(x)}")
    if x.ndim not in (2, 3):
        raise ValueError(f"{who}: x must be {'(N, T, D)' if batch_first else '(T, N, D)'} or unbatched (T, D), "
                         f"got shape {x.shape}")
    steps = x.shape[1] if batch_first and x.ndim == 3 else x.shape[0]
    if steps == 0:
        raise ValueError(f"{who}: x of shape {x.shape} is a sequence of length 0; at least one step is needed")
    params = cell.parameters()
    check_tensor_input(who, "x", x, params[0].dtype if params else x.dtype)
    if x.ndim == 2:
        return ForwardRecurrence(cell, x.reshape(x.shape[0], 1, x.shape[1]),
                                 lambda outputs: outputs.reshape(outputs.shape[0], outputs.shape[2]))
    if batch_first:
        return ForwardRecurrence(cell, x.transpose(0, 1), lambda outputs: outputs.transpose(0, 1))
    return ForwardRecurrence(cell, x, lambda outputs: outputs)


class UnrolledSteps(NamedTuple):
    """What ``unroll_steps`` returns: T steps, N batch, H' the cell's output size.

    outputs   (T, N, H') Tensor   ``cell.output`` of each state, stacked
    states    [T]                 s_t, the state after step t (a Tensor or a tuple of them); s_{T-1} the final one
    consumed  [T]                 the state step t read, enter(t, s_{t-1}) (s_{-1} the initial state)
    """

    outputs: Tensor
    states: list
    consumed: list


def unroll_steps(cell, xs, state, advance=None, enter=None):
    """s_t = advance(t, x_t, enter(t, s_{t-1})) for t = 0..T-1 on xs (T, N, D), op by op: ``UnrolledSteps``.

    state: s_{-1} as the cell takes it ((N, H) parts; None: ``cell.init_state(N)``). advance(t, x_t,
    state) -> the new state, default ``cell.forward(x_t, state)`` (e.g. ``per_step_parameter_aliases``'s
    step, or one that watches the cell's ops). enter(t, state) -> the state step t reads, default the
    state itself (e.g. a detached one to cut the backward pass, or an alias of each part to hook).

    A state that is not finite (the forward overflowed, or x holds inf / NaN) is a ValueError naming the
    step, not a result: every gradient through it would be meaningless, and some would look plausible
    (a relu's mask turns NaN into an exactly-0 gradient: an explosion measured as vanishing).
    """
    states, consumed = [], []

    def step(t, x_t, state):
        consumed.append(state if enter is None else enter(t, state))
        with np.errstate(over="ignore", invalid="ignore"):  # an overflow is reported below, as an error
            states.append(cell.forward(x_t, consumed[-1]) if advance is None else advance(t, x_t, consumed[-1]))
        if not all(np.all(np.isfinite(part.data)) for part in state_parts(states[-1])):
            raise ValueError(f"{type(cell).__name__}: the state after step {t} is not finite (inf or NaN): the forward "
                             f"overflowed {xs.dtype} (or x holds inf / NaN), so no gradient through it means anything; "
                             f"use a shorter sequence or smaller weights or inputs"
                             + ("" if xs.dtype == np.float64 else ", or float64"))
        return states[-1]

    outputs, _ = Recurrent(cell).run(xs, state, None, step=step)
    return UnrolledSteps(outputs, states, consumed)
