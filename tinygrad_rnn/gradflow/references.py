"""The numbers of norms.py from the hand-derived references (bptt/) instead of the engine: the
cross-check that ‖∂L/∂h_t‖ and the per-step weight shares are what the derivation says.

Built-in cells only (RNNCell, LSTMCell, GRUCell, or layers of them). The reference runs the
forward and the backward through time in plain NumPy; autograd computes only ∂L/∂outputs, the
loss's own derivative, which seeds the reference's backward.
"""
import numpy as np

from ..bptt._checks import PARAM_NAMES
from ..bptt.crosscheck import reference_of
from ..bptt.sequence import sequence_backward, sequence_forward
from ..nn.forward_recurrence import forward_recurrence
from ..nn.recurrent import array_or_zeros
from ..tensor import Tensor, grad
from .norms import WeightGradContributions, time_major_loss
from .common import initial_state, parameter_names, scalar_loss

__all__ = ["reference_hidden_grad_norms", "reference_weight_grad_contributions"]


def reference_hidden_grad_norms(module, x, loss_fn=None, state=None):
    """``hidden_grad_norms`` from the hand-derived reference (bptt/): ‖dh[t]‖ of backward(per_step=True).
    Arguments as there: loss_fn receives the outputs as the layer returns them (None: the last step's · v)."""
    cell, xs, layout = forward_recurrence(module, x, "reference_hidden_grad_norms")
    grads = _reference_grads(cell, xs, state, time_major_loss(loss_fn, layout, "reference_hidden_grad_norms"))
    return np.linalg.norm(grads.dh.reshape(len(grads.dh), -1).astype(np.float64), axis=1)


def reference_weight_grad_contributions(module, x, loss_fn=None, state=None):
    """``weight_grad_contributions`` from the hand-derived reference: its dparams_per_step and dparams.
    Arguments as there: loss_fn receives the outputs as the layer returns them (None: the last step's · v)."""
    cell, xs, layout = forward_recurrence(module, x, "reference_weight_grad_contributions")
    grads = _reference_grads(cell, xs, state,
                             time_major_loss(loss_fn, layout, "reference_weight_grad_contributions"))
    names = parameter_names(module)
    per_step, total = {}, {}
    for key, shares in grads.dparams_per_step.items():
        param = getattr(cell, key)
        if param is not None and param.requires_grad:
            per_step[names[param]], total[names[param]] = shares, grads.dparams[key]
    return WeightGradContributions(per_step, total)


def _reference_grads(cell, xs, state, loss_fn):
    """The reference's BPTTGrads (per_step) for the cell's weights, xs (T, N, D) and the loss, a function of
    the time-major outputs (T, N, H) (``time_major_loss``)."""
    reference = reference_of(cell)
    if reference is None:
        raise TypeError(f"{type(cell).__name__} has no hand-derived reference (only RNNCell, LSTMCell and "
                        f"GRUCell do); hidden_grad_norms and weight_grad_contributions work for any cell")
    params = {name: None if getattr(cell, name) is None else getattr(cell, name).data for name in PARAM_NAMES}
    state0 = initial_state(cell, xs, state)
    state0 = state0.data if isinstance(state0, Tensor) else tuple(part.data for part in state0)
    outputs, _, cache = sequence_forward(reference, xs.data, state0, params)
    seen = Tensor(outputs, requires_grad=True)
    (doutputs,) = grad(scalar_loss(loss_fn, seen), seen, allow_unused=True)
    return sequence_backward(reference, array_or_zeros(doutputs, seen), None, cache, per_step=True)
