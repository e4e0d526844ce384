"""Gradient clipping, compared: norm clipping keeps the gradient's direction, value clipping does not.

With g the gradient of every parameter, concatenated (the vector an optimizer steps along), and
a threshold τ > 0 (the library's own clipping, ``tr.optim``):

    norm   (clip_grad_norm_)   g' = g · τ / (‖g‖₂ + 1e-6)  when that factor is < 1, else g
    value  (clip_grad_value_)  g'_i = min(max(g_i, -τ), τ)  entry by entry

Norm clipping multiplies the whole vector by one positive number, so cos(g', g) = 1: the step
is shorter but goes the same way. Value clipping shortens the large entries only, so the step
turns towards the small ones (towards the corners of the cube [-τ, τ]^P); when every entry is
clipped, g' = τ·sign(g). The cosine measures the turn:

    cos(g', g) = ⟨g', g⟩ / (‖g'‖ ‖g‖)
"""
from dataclasses import dataclass

import numpy as np

from ..nn.forward_recurrence import forward_recurrence, unroll_steps
from ..nn.recurrent import array_or_zeros
from ..optim import clip_grad_norm_, clip_grad_value_
from ..tensor import Tensor, grad
from .norms import time_major_loss
from .common import initial_state, parameter_names, scalar_loss

__all__ = ["CLIPPINGS", "ClippingComparison", "compare_clipping", "cosine"]

CLIPPINGS = {"norm": clip_grad_norm_, "value": clip_grad_value_}


@dataclass
class ClippingComparison:
    """One gradient and its clipped versions; P = the number of gradient entries in all.

    threshold     τ
    gradient      {name: array}            ∂L/∂W for every parameter that requires grad
    clipped       {method: {name: array}}  the same after clipping ("norm", "value")
    norm          float                    ‖g‖₂ before clipping (float64)
    clipped_norm  {method: float}          ‖g'‖₂
    cosine        {method: float}          cos(g', g); 1 for norm clipping
    changed       {method: float}          the fraction of the P entries clipping changed
    """

    threshold: float
    gradient: dict
    clipped: dict
    norm: float
    clipped_norm: dict
    cosine: dict
    changed: dict


def compare_clipping(module, x, threshold=1.0, methods=("norm", "value"), loss_fn=None, state=None):
    """∂L/∂W for every parameter, clipped each way in ``methods`` at ``threshold``: a ``ClippingComparison``.

    module, x, loss_fn, state as ``hidden_grad_norms``: loss_fn(outputs) receives the outputs exactly as
    the layer returns them ((T, N, H'), (N, T, H') batch_first, (T, H') unbatched), None (default) is
    the last step's output · v; threshold > 0; methods: some of "norm", "value". The gradient comes
    from ``tr.grad``, so nothing's ``.grad`` is touched; the clipping is ``tr.optim.clip_grad_norm_`` /
    ``clip_grad_value_``, run on copies.
    """
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.floating)) \
            or not np.isfinite(threshold) or threshold <= 0:
        raise ValueError(f"threshold must be a finite number > 0, got {threshold!r}")
    methods = (methods,) if isinstance(methods, str) else tuple(methods)
    unknown = [m for m in methods if m not in CLIPPINGS]
    if unknown or not methods:
        raise ValueError(f"methods must be some of {list(CLIPPINGS)}, got {list(methods)}")
    cell, xs, layout = forward_recurrence(module, x, "compare_clipping")
    loss = time_major_loss(loss_fn, layout, "compare_clipping")
    outputs = unroll_steps(cell, xs, initial_state(cell, xs, state)).outputs
    names = parameter_names(module)
    params = [p for p in cell.parameters() if p.requires_grad]
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow is reported below, as an error
        found = grad(scalar_loss(loss, outputs), params, allow_unused=True)
    gradient = {names[p]: array_or_zeros(g, p) for p, g in zip(params, found)}
    whole = _flat(gradient)
    if not np.all(np.isfinite(whole)):
        raise ValueError(f"the gradient is not finite (it overflowed {xs.dtype}): nothing to compare; use a shorter "
                         f"sequence or a smaller scale" + ("" if xs.dtype == np.float64 else ", or float64"))
    clipped, clipped_norm, cosines, changed = {}, {}, {}, {}
    for method in methods:
        holders = [Tensor(np.zeros_like(g)) for g in gradient.values()]
        for holder, g in zip(holders, gradient.values()):
            holder.grad = g.copy()
        CLIPPINGS[method](holders, threshold)
        clipped[method] = {name: holder.grad for name, holder in zip(gradient, holders)}
        after = _flat(clipped[method])
        clipped_norm[method], cosines[method] = float(np.linalg.norm(after)), cosine(after, whole)
        changed[method] = float(np.mean(after != whole)) if whole.size else 0.0
    return ClippingComparison(float(threshold), gradient, clipped, float(np.linalg.norm(whole)), clipped_norm,
                              cosines, changed)


def _flat(arrays):
    """The arrays of a {name: array} one after the other, as one float64 vector."""
    return np.concatenate([a.ravel() for a in arrays.values()]).astype(np.float64) if arrays else np.zeros(0)


def cosine(a, b):
    """⟨a, b⟩ / (‖a‖ ‖b‖) of two finite vectors, float64, in [-1, 1]; 0 when either is zero. Computed on copies
    scaled by their largest entries, so that entries near float64's range neither overflow nor underflow."""
    a, b = (np.asarray(v, dtype=np.float64).ravel() for v in (a, b))
    scales = [np.max(np.abs(v), initial=0.0) for v in (a, b)]
    if min(scales) == 0:
        return 0.0
    a, b = a / scales[0], b / scales[1]
    return float(np.clip(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)), -1.0, 1.0))  # rounding aside
