"""What every gradflow measurement shares around its loop (``nn.forward_recurrence.unroll_steps``): the
initial state, the loss check, the parameters' names and the gradients' bookkeeping.

Shapes: T steps, N batch, H hidden size; xs (T, N, D) time-major.
"""
import numpy as np

from ..tensor import Tensor

__all__ = ["initial_state", "parameter_names", "scalar_loss", "hidden_of", "check_tied_sum"]


def initial_state(cell, xs, state, requires_grad=False):
    """A fresh leaf copy of ``state`` (default ``cell.init_state(N)``), each part (N, H)."""
    if state is None:
        state = cell.init_state(xs.shape[1])
    if isinstance(state, (Tensor, np.ndarray)):
        return Tensor(np.array(getattr(state, "data", state)), requires_grad=requires_grad)
    if not isinstance(state, (tuple, list)):
        raise TypeError(f"state must be a Tensor, an ndarray or a tuple of them, got {type(state).__name__}")
    return tuple(initial_state(cell, xs, part, requires_grad) for part in state)


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


def check_tied_sum(name, per_step, total):
    """Raise unless Σ_t per_step[t] equals total up to rounding (bounded by √eps Σ_t |per_step[t]|)."""
    bound = np.sqrt(np.finfo(total.dtype).eps) * np.abs(per_step).sum(axis=0) + np.finfo(total.dtype).tiny
    if np.any(np.abs(per_step.sum(axis=0) - total) > bound):
        raise RuntimeError(f"the per-step contributions to {name} do not add up to its gradient: the cell "
                           f"uses {name} other than through its attribute, which the per-step alias replaces")
