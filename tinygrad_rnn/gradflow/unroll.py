"""The unrolled loop every gradflow measurement runs on, and the checks around it.

Shapes: T steps, N batch, D input size, H hidden size; xs (T, N, D) time-major.

The loop is the recurrence ``nn.Recurrent`` unrolls, s_t = cell(x_t, s_{t-1}) for t = 0..T-1 (no
lengths, no reversal), run through ``Recurrent.run(step=...)`` one whole cell call per step
(``Recurrent`` itself would project all T inputs in one product first, or hand the loop to the
accelerator) so that every step's state tensors, and its own use of every parameter, are at hand.
"""
from typing import NamedTuple

import numpy as np

from ..nn.cells import Cell, map_state
from ..nn.recurrent import Recurrent, StackedRecurrent, per_step_parameter_aliases
from ..tensor import Tensor

__all__ = ["prepare", "cell_of", "initial_state", "Unrolled", "unroll", "parameter_names", "scalar_loss", "hidden_of",
           "array_or_zeros", "check_tied_sum"]


def prepare(module, x):
    """(cell, xs): the cell the module unrolls and x as a time-major Tensor (T, N, D)."""
    cell, batch_first = cell_of(module)
    if isinstance(x, np.ndarray):
        x = Tensor(x)
    elif not isinstance(x, Tensor):
        raise TypeError(f"x must be a Tensor or ndarray, got {type(x).__name__}")
    if x.ndim == 2:
        x = x.reshape(x.shape[0], 1, x.shape[1])
    elif x.ndim == 3:
        x = x.transpose(0, 1) if batch_first else x
    else:
        layout = "(N, T, D)" if batch_first else "(T, N, D)"
        raise ValueError(f"x must be {layout} or unbatched (T, D), got shape {x.shape}")
    if x.shape[0] == 0:
        raise ValueError("x is a sequence of length 0; gradient flow needs at least one step")
    return cell, x


def cell_of(module):
    """(cell, batch_first) of what one forward loop over a cell can mirror."""
    if isinstance(module, Cell):
        return module, False
    if isinstance(module, Recurrent):
        if module.reverse:
            raise ValueError("gradflow follows time forwards; a reverse Recurrent is not supported")
        return module.cell, module.batch_first
    if isinstance(module, StackedRecurrent):
        if module.num_layers != 1 or module.bidirectional:
            raise ValueError(f"gradflow needs a single-layer, single-direction {type(module).__name__}, got "
                             f"num_layers={module.num_layers}, bidirectional={module.bidirectional}")
        ((run,),) = module._layers
        return run.cell, module.batch_first
    raise TypeError(f"gradflow needs an nn.Cell, an nn.Recurrent or a single-layer nn.RNN / LSTM / GRU, "
                    f"got {type(module).__name__}")


def initial_state(cell, xs, state, requires_grad=False):
    """A fresh leaf copy of ``state`` (default ``cell.init_state(N)``), each part (N, H)."""
    if state is None:
        state = cell.init_state(xs.shape[1])
    if isinstance(state, (Tensor, np.ndarray)):
        return Tensor(np.array(getattr(state, "data", state)), requires_grad=requires_grad)
    if not isinstance(state, (tuple, list)):
        raise TypeError(f"state must be a Tensor, an ndarray or a tuple of them, got {type(state).__name__}")
    return tuple(initial_state(cell, xs, part, requires_grad) for part in state)


class Unrolled(NamedTuple):
    """What ``unroll`` returns: T steps, N batch, H' the cell's output size.

    outputs   (T, N, H') Tensor   ``cell.output`` of each state, stacked
    states    [T]                 s_t, the state after step t (a Tensor or a tuple of them)
    aliases   [T] {param: alias}  with ``alias_parameters``: each parameter's alias step t used; else {}
    consumed  [T]                 the state step t read: its own alias of s_{t-1} with ``alias_states``
                                  (so that a hook on it sees only what flows through step t), else s_{t-1}
    """

    outputs: Tensor
    states: list
    aliases: list
    consumed: list


def unroll(cell, xs, state, alias_parameters=False, alias_states=False):
    """s_t = cell(x_t, s_{t-1}) for t = 0..T-1 on xs (T, N, D): ``Recurrent``'s loop, op by op: an ``Unrolled``.

    With ``alias_parameters``, step t sees each parameter W that requires grad as its own alias
    W_t = reshape(W, W.shape) (``per_step_parameter_aliases``). With ``alias_states``, step t reads
    each part p of s_{t-1} through its own alias reshape(p, p.shape): the gradient a walk hands the
    alias is then ∂/∂s_{t-1} with the other parts held fixed (for an LSTM, c_{t-1}'s alias does not
    see the path c_{t-1} -> h_{t-1}, which s_{t-1}'s own c does).
    """
    if alias_parameters:
        advance, aliases = per_step_parameter_aliases(cell)
    else:
        advance, aliases = (lambda t, x_t, state: cell.forward(x_t, state)), [{} for _ in range(xs.shape[0])]
    states, consumed = [], []

    def step(t, x_t, state):
        consumed.append(map_state(lambda part: part.reshape(part.shape), state) if alias_states else state)
        states.append(advance(t, x_t, consumed[-1]))
        return states[-1]

    outputs, _ = Recurrent(cell).run(xs, state, None, step=step)
    return Unrolled(outputs, states, aliases, consumed)


def parameter_names(module):
    """{parameter: its name in ``module.named_parameters()``} (weight_hh, or weight_hh_l0 for a layer)."""
    return {param: name for name, param in module.named_parameters()}


def scalar_loss(loss_fn, outputs, who="loss_fn"):
    """loss_fn(outputs), checked to be a one-element Tensor (``who`` names the function in the error)."""
    loss = loss_fn(outputs)
    if not isinstance(loss, Tensor) or loss.data.size != 1:
        described = f"shape {loss.shape}" if isinstance(loss, Tensor) else type(loss).__name__
        raise TypeError(f"{who} must return a one-element Tensor, got {described}")
    return loss


def hidden_of(state):
    """h of a state h or (h, c, ...)."""
    return state if isinstance(state, Tensor) else state[0]


def array_or_zeros(gradient, param):
    """A gradient from ``grad(..., allow_unused=True)`` as an array: zeros where nothing reached ``param``."""
    return np.zeros(param.shape, param.dtype) if gradient is None else gradient.data


def check_tied_sum(name, per_step, total):
    """Raise unless Σ_t per_step[t] equals total up to rounding (bounded by √eps Σ_t |per_step[t]|)."""
    bound = np.sqrt(np.finfo(total.dtype).eps) * np.abs(per_step).sum(axis=0) + np.finfo(total.dtype).tiny
    if np.any(np.abs(per_step.sum(axis=0) - total) > bound):
        raise RuntimeError(f"the per-step contributions to {name} do not add up to its gradient: the cell "
                           f"uses {name} other than through its attribute, which the per-step alias replaces")
