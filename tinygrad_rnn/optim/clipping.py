"""Gradient clipping, in place: by the gradients' joint norm or entry by entry (PyTorch's
``torch.nn.utils.clip_grad_norm_`` / ``clip_grad_value_``; ``tr.nn.utils`` holds these same functions)."""
import math
import numbers

import numpy as np

from .._checks import check_bool, check_real
from .gradients import gradients_of

__all__ = ["clip_grad_norm_", "clip_grad_value_"]


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False):
    """Scale all gradients jointly so that their total norm is at most ``max_norm``; return the
    total norm before clipping (a float, computed in float64).

        total = (sum_i sum_j |g_ij|^q)^(1/q)   (q = norm_type; q = inf: max_ij |g_ij|)

    Every g is multiplied in place by c = max_norm / (total + 1e-6) when c < 1 (PyTorch's formula).
    A non-finite total (an inf or NaN gradient) leaves the gradients as they are (PyTorch would
    scale them into NaN); check the returned value to skip such a step, or pass
    ``error_if_nonfinite=True`` to get a RuntimeError. ``parameters``: a Tensor or an iterable of
    Tensors; those without ``.grad`` are skipped.
    """
    grads = gradients_of(parameters, "clip_grad_norm_")
    max_norm = check_real("clip_grad_norm_", "max_norm", max_norm)
    error_if_nonfinite = check_bool("clip_grad_norm_", "error_if_nonfinite", error_if_nonfinite)
    if isinstance(norm_type, bool) or not isinstance(norm_type, numbers.Real) \
            or math.isnan(norm_type) or norm_type <= 0:
        raise ValueError(f"clip_grad_norm_: norm_type must be a positive number or inf, got {norm_type!r}")
    norms = [np.linalg.norm(g.astype(np.float64, copy=False).ravel(), norm_type) for g in grads if g.size]
    total = float(np.linalg.norm(norms, norm_type)) if norms else 0.0
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(f"clip_grad_norm_: the total norm of order {norm_type} of the gradients is {total}; "
                           f"the gradients were left unchanged")
    coefficient = max_norm / (total + 1e-6)
    if math.isfinite(total) and coefficient < 1:
        for g in grads:
            g *= coefficient
    return total


def clip_grad_value_(parameters, clip_value):
    """Clamp every gradient entry to [-clip_value, clip_value], in place.

    ``parameters``: a Tensor or an iterable of Tensors; those without ``.grad`` are skipped.
    """
    clip_value = check_real("clip_grad_value_", "clip_value", clip_value)
    for g in gradients_of(parameters, "clip_grad_value_"):
        np.clip(g, -clip_value, clip_value, out=g)
