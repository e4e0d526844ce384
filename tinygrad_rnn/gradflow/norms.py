"""Gradient flow through time, read off the engine: ‖∂L/∂h_t‖ for every step, and each step's share
of the tied weights' gradient.

Shapes: T steps, N batch, D input size, H hidden size; xs (T, N, D) time-major. The loop is
``nn.forward_recurrence.unroll_steps``'s:

- ∂L/∂h_t: a hook on each step's state tensor h_t (the state, or its first element: h of (h, c))
  records the norm of the gradient the backward walk hands it, which is the total
  ∂L/∂h_t = (direct term from the loss) + (everything flowing back from steps t+1..T-1).
- ∂L/∂W at step t: step t sees each parameter W as its own alias W_t = reshape(W, W.shape), an
  identity op made for that step. The gradient the walk gives W_t is step t's contribution, and
  the walk itself adds the T aliases' gradients into W: ∂L/∂W = Σ_t ∂L/∂W_t (tied weights).

A user's loss_fn is handed the outputs exactly as the layer returns them: (T, N, H') time-major,
(N, T, H') for a batch_first layer, (T, H') for an unbatched input (``time_major_loss``), so a loss
written for the layer's own output (``o[:, -1]`` batch_first) means the same here.

The default loss (loss_fn None) is many-to-one, L = Σ_n h_{T-1}[n] · v with the fixed unit vector
v = (1, ..., 1)/√H, ``last_output_loss`` of the time-major outputs whatever the layout: gradient
enters only at the last step, so ‖∂L/∂h_t‖ shows how much of it survives T-1-t steps back
(vanishing gradients). ‖∂L/∂h_{T-1}‖ = √N.
"""
from dataclasses import dataclass

import numpy as np

from ..nn.forward_recurrence import forward_recurrence, unroll_steps
from ..nn.recurrent import per_step_gradients, per_step_parameter_aliases
from .._checks import check_callable
from ..bptt.sequence import state_parts
from ..tensor import grad
from .common import check_tied_sum, hidden_of, initial_state, parameter_names, scalar_loss

__all__ = ["unit_readout", "last_output_loss", "time_major_loss", "hidden_grad_norms", "WeightGradContributions",
           "weight_grad_contributions"]


def unit_readout(hidden, dtype):
    """v = (1, ..., 1)/√H, (H,) of ``dtype``: the fixed unit direction the default losses read."""
    return np.full(hidden, 1.0 / np.sqrt(hidden), dtype=dtype)


def last_output_loss(outputs):
    """L = Σ_n outputs[T-1, n] · v, v = (1, ..., 1)/√H: many-to-one; outputs time-major (T, N, H) or
    unbatched (T, H) -> a scalar. The tools' default (loss_fn None; passing this function itself is
    the same): they apply it to the time-major outputs whatever the layer's layout. A batch_first
    layer's outputs (N, T, H) are not time-major: there, L is last_output_loss(outputs.transpose(0, 1)).
    """
    return (outputs[outputs.shape[0] - 1] * unit_readout(outputs.shape[-1], outputs.dtype)).sum()


def time_major_loss(loss_fn, layout, who):
    """The loss as a function of the time-major outputs (T, N, H'), which the tools unroll.

    loss_fn None (or ``last_output_loss`` itself): ``last_output_loss``, the last step's output · v
    for every layout. Any other callable: outputs -> loss_fn(layout(outputs)), so it receives the
    outputs as the layer returns them (``forward_recurrence``'s layout: (T, N, H'), (N, T, H')
    batch_first, (T, H') unbatched). ``who`` names the caller in the error for a non-callable.
    """
    if loss_fn is None or loss_fn is last_output_loss:
        return last_output_loss
    check_callable(who, "loss_fn", loss_fn)
    return lambda outputs: loss_fn(layout(outputs))


def hidden_grad_norms(module, x, loss_fn=None, state=None):
    """‖∂L/∂h_t‖ (Frobenius over (N, H)) for t = 0..T-1, by hooks on each step's state: (T,) float64.

    module: an nn.Cell (any, custom ones too), an nn.Recurrent (not reversed) or a single-layer,
    single-direction nn.RNN / LSTM / GRU. x: (T, N, D) (or (N, T, D) if the module is batch_first)
    or unbatched (T, D), a Tensor or ndarray. loss_fn(outputs) -> a one-element Tensor, outputs a
    Tensor exactly as the layer returns them: (T, N, H'), (N, T, H') if batch_first, (T, H') for an
    unbatched x; None (default): the last step's output · v (``last_output_loss``, for every layout).
    state: the initial state as the cell takes it, (N, H) per part also for a layer (not the layer's
    (1, N, H) hx, nor (H,) for an unbatched x); default the cell's ``init_state``; its graph is cut.

    The backward walk is ``tr.grad(L, initial state)``, so no parameter's ``.grad`` is touched.
    A step the loss does not reach gets 0, and so does one whose gradient underflows the dtype
    (float32 bottoms out near 1e-45: use float64 to follow a long sequence).
    """
    cell, xs, layout = forward_recurrence(module, x, "hidden_grad_norms")
    initial = initial_state(cell, xs, state, requires_grad=True)
    outputs, states, _ = unroll_steps(cell, xs, initial)
    loss = scalar_loss(time_major_loss(loss_fn, layout, "hidden_grad_norms"), outputs)
    norms = np.zeros(len(states))
    for t, step_state in enumerate(states):
        hidden = hidden_of(step_state)
        if not hidden.requires_grad:
            raise ValueError(f"{type(cell).__name__}: the state after step {t} depends on nothing that "
                             f"requires grad, so no gradient reaches it")
        hidden.register_hook(_norm_recorder(norms, t))
    grad(loss, state_parts(initial), allow_unused=True)
    return norms


def _norm_recorder(norms, t):
    def record(gradient):
        norms[t] = np.linalg.norm(np.asarray(gradient, dtype=np.float64))  # float32's squares overflow past 1.8e19
    return record


@dataclass
class WeightGradContributions:
    """Each time step's share of every parameter's gradient, by the module's parameter names.

    per_step  {name: (T, *shape)}   step t's contribution ∂L/∂W_t
    total     {name: shape}         ∂L/∂W, equal to the sum of per_step over t (tied weights)
    """

    per_step: dict
    total: dict

    def norms(self):
        """{name: (T,) float64}: the Frobenius norm of each step's contribution."""
        return {name: np.linalg.norm(c.reshape(len(c), -1).astype(np.float64), axis=1)
                for name, c in self.per_step.items()}


def weight_grad_contributions(module, x, loss_fn=None, state=None):
    """Per-step contributions to every parameter's gradient, by autograd through per-step aliases.

    Arguments as ``hidden_grad_norms`` (loss_fn receives the outputs as the layer returns them; None:
    the last step's output · v). Each step uses W_t = reshape(W, W.shape) in place of W (the
    cell's parameter attributes are swapped for that step only), and one ``tr.grad`` walk returns
    ∂L/∂W_t for every t together with ∂L/∂W itself; nothing's ``.grad`` is touched. Raises if the
    contributions do not add up to ∂L/∂W, which means the cell reached a parameter other than
    through its attribute. Frozen parameters (requires_grad False) are left out.
    """
    cell, xs, layout = forward_recurrence(module, x, "weight_grad_contributions")
    advance, aliases = per_step_parameter_aliases(cell)
    outputs = unroll_steps(cell, xs, initial_state(cell, xs, state), advance).outputs
    loss = scalar_loss(time_major_loss(loss_fn, layout, "weight_grad_contributions"), outputs)
    params = list(aliases[0])
    names = [parameter_names(module)[param] for param in params]
    per_step, total = (dict(zip(names, arrays)) for arrays in per_step_gradients(loss, aliases, params))
    for name in names:
        check_tied_sum(name, per_step[name], total[name])
    return WeightGradContributions(per_step, total)
