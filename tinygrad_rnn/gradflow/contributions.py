"""The (loss step × use step) contribution matrix: Seed 003's double sum, entry by entry.

With a loss at every step, L = Σ_t L_t (L_t reads the output of step t), and a tied weight W
used once per step, BPTT's gradient is a double sum over the step t whose loss is differentiated
and the step k ≤ t whose use of W the gradient flows through:

    ∂L/∂W = Σ_t ∂L_t/∂W = Σ_t Σ_{k≤t} G[t, k],     G[t, k] = ∂L_t/∂W_k

where W_k is step k's own alias of W (``per_step_parameter_aliases``): G[t, k] is the part of
∂L_t/∂W that flows through use step k. Causality makes G[t, k] = 0 for k > t (step k runs after
the output of step t is read); here the engine finds that zero, it is not assumed.

The T×T matrix reports each G[t, k] (shaped like W) by a number:

    projection[t, k] = ⟨G[t, k], u⟩,  u = ∂L/∂W / ‖∂L/∂W‖   (signed; Σ_{t,k} projection = ‖∂L/∂W‖)
    norms[t, k]      = ‖G[t, k]‖_F

The projection measures how much each (t, k) pushes along the step the gradient actually takes;
its entries add up like the matrices do, so row t sums to ⟨∂L_t/∂W, u⟩ and the whole matrix to
‖∂L/∂W‖, and a part of the matrix is a fraction of the gradient (``long_range_fraction``).
Computed by T + 1 backward walks: one for ∂L/∂W, then one per L_t (walk t visits steps 0..t only),
each row reduced to its T numbers at once (T·|W| floats held at a time, not T²·|W|).
"""
from dataclasses import dataclass

import numpy as np

from ..nn.forward_recurrence import forward_recurrence, unroll_steps
from ..nn.recurrent import array_or_zeros, per_step_parameter_aliases
from ..tensor import grad
from .norms import unit_readout
from .common import check_tied_sum, initial_state, parameter_names, scalar_loss

__all__ = ["ContributionMatrix", "contribution_matrix", "every_step_loss", "long_range_fraction"]


def every_step_loss(output_t, t):
    """L_t = Σ_n output_t[n] · v, v = (1, ..., 1)/√H: the step-t loss of the default many-to-many
    loss; output_t (N, H), or (H,) for an unbatched input, -> a scalar (the same for every t)."""
    return (output_t * unit_readout(output_t.shape[-1], output_t.dtype)).sum()


@dataclass
class ContributionMatrix:
    """The contribution matrix of one parameter (see the module docstring); T steps, W's shape.

    name         the parameter's name in the module
    projection   (T, T) float64  ⟨G[t, k], u⟩, u the unit direction of ∂L/∂W; 0 above the diagonal
    norms        (T, T) float64  ‖G[t, k]‖_F
    per_loss     (T, *shape)     ∂L_t/∂W = Σ_k G[t, k] (as matrices)
    total        shape           ∂L/∂W = Σ_t ∂L_t/∂W
    """

    name: str
    projection: np.ndarray
    norms: np.ndarray
    per_loss: np.ndarray
    total: np.ndarray

    def long_range_fraction(self, min_distance):
        """``long_range_fraction(self.projection, min_distance)``."""
        return long_range_fraction(self.projection, min_distance)


def contribution_matrix(module, x, param="weight_hh", step_loss=every_step_loss, state=None):
    """The (loss step × use step) contributions to ∂L/∂param, L = Σ_t step_loss(output_t, t): a
    ``ContributionMatrix``.

    module, x, state as ``hidden_grad_norms`` (any batch; the losses sum over it). param: the
    parameter's name in the module (``weight_hh_l0``) or in its cell (``weight_hh``); it must
    require grad. step_loss(output_t, t) -> a one-element Tensor, output_t step t's output as the layer
    returns it: (N, H') in every layout (batch_first too), (H',) for an unbatched x (T, D). Nothing's
    ``.grad`` is touched. Raises if a row's contributions do not add up to its ∂L_t/∂W.
    """
    cell, xs, _ = forward_recurrence(module, x, "contribution_matrix")
    weight, name = _parameter(module, cell, param)
    advance, aliases = per_step_parameter_aliases(cell)
    states = unroll_steps(cell, xs, initial_state(cell, xs, state), advance).states
    # an unbatched x (T, D) runs as a batch of one; the layer returns its step outputs as (H',)
    as_returned = (lambda output: output.reshape(output.shape[1:])) if x.ndim == 2 else (lambda output: output)
    losses = [scalar_loss(lambda output: step_loss(as_returned(output), t), cell.output(s), "step_loss")
              for t, s in enumerate(states)]
    reached = [loss for loss in losses if loss.requires_grad]
    (total,) = grad(sum(reached[1:], reached[0]), weight, allow_unused=True) if reached else (None,)
    total = array_or_zeros(total, weight)
    size = np.linalg.norm(total.astype(np.float64))
    direction = total.ravel().astype(np.float64) / size if size > 0 else np.zeros(total.size)
    steps, uses = len(states), [step_aliases[weight] for step_aliases in aliases]
    projection, norms = np.zeros((steps, steps)), np.zeros((steps, steps))
    per_loss = np.zeros((steps,) + weight.shape, dtype=weight.dtype)
    for t, loss in enumerate(losses):
        if not loss.requires_grad:
            continue  # a step loss that depends on no parameter: its row is zero
        found = grad(loss, [weight] + uses, allow_unused=True)
        per_loss[t] = array_or_zeros(found[0], weight)
        blocks = np.stack([array_or_zeros(g, weight) for g in found[1:]])
        check_tied_sum(name, blocks, per_loss[t])
        flat = blocks.reshape(steps, -1).astype(np.float64)
        projection[t], norms[t] = flat @ direction, np.linalg.norm(flat, axis=1)
    check_tied_sum(name, per_loss, total)
    return ContributionMatrix(name, projection, norms, per_loss, total)


def _parameter(module, cell, param):
    """(the Parameter, its name in ``module``) for its name in the module or in its cell."""
    module_names = parameter_names(module)
    found = dict(module.named_parameters())
    found.update({name: p for name, p in cell.named_parameters() if name not in found})
    if not isinstance(param, str) or param not in found:
        raise ValueError(f"param must name one of the module's parameters {sorted(found)}, got {param!r}")
    weight = found[param]
    if not weight.requires_grad:
        raise ValueError(f"param {param} does not require grad: it has no gradient to split")
    return weight, module_names.get(weight, param)


def long_range_fraction(matrix, min_distance):
    """The fraction of the gradient carried by dependencies at least ``min_distance`` steps long:

        Σ_{t-k ≥ min_distance} M[t, k]  /  Σ_{t, k} M[t, k]

    matrix: a (T, T) array M (``ContributionMatrix.projection``, whose sum is ‖∂L/∂W‖, so this is
    the share of the gradient's norm along its own direction; parts may be negative, the shares of
    all distances add up to 1), or a ``ContributionMatrix``. min_distance: an int >= 0 (0 gives 1).
    0.0 when the whole matrix sums to 0.
    """
    matrix = matrix.projection if isinstance(matrix, ContributionMatrix) else matrix
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"long_range_fraction needs a square (T, T) matrix, got shape {matrix.shape}")
    if isinstance(min_distance, bool) or not isinstance(min_distance, (int, np.integer)) or min_distance < 0:
        raise ValueError(f"min_distance must be an int >= 0, got {min_distance!r}")
    total = matrix.sum()
    if total == 0:
        return 0.0
    t, k = np.indices(matrix.shape)
    return float(matrix[t - k >= min_distance].sum() / total)
