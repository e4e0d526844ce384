"""GRU, derived by hand: one step forward and backward, and the sequence wrappers.

Shapes: x (N, D), h (N, H); params in PyTorch's layout with three gate blocks (G = 3) in the order
r, z, n: weight_ih (3H, D), weight_hh (3H, H), bias_ih (3H,), bias_hh (3H,) (the biases may be
absent / None). The input and state projections are kept apart, because r gates only the state's
part of the candidate n:

    P_x = x W_ih^T + b_ih = [P_xr, P_xz, P_xn]       (N, 3H)
    P_h = h W_hh^T + b_hh = [P_hr, P_hz, P_hn]       (N, 3H)

Forward step:

    r  = sigmoid(P_xr + P_hr)       reset gate       (N, H)
    z  = sigmoid(P_xz + P_hz)       update gate      (N, H)
    n  = tanh(P_xn + r * P_hn)      candidate        (N, H)
    h' = (1 - z) * n + z * h                         (N, H)

Backward step, given dh' (N, H). h reaches h' directly (through z * h) and through P_h:

    dn    = dh' * (1 - z)           dz = dh' * (h - n)
    da_n  = dn * (1 - n^2)                           the gradient of n's pre-activation
    dr    = da_n * P_hn             dP_hn = da_n * r
    da_r  = dr * r (1 - r)          da_z  = dz * z (1 - z)
    dP_x  = [da_r, da_z, da_n]      dP_h  = [da_r, da_z, dP_hn]          (N, 3H)
    dx    = dP_x W_ih                                (N, D)
    dh    = dh' * z + dP_h W_hh                      (N, H)
    dW_ih = dP_x^T x  (3H, D)      dW_hh = dP_h^T h  (3H, H)
    db_ih = sum_n dP_x  (3H,)      db_hh = sum_n dP_h  (3H,)

Through time, see sequence: the same step at every t, the weight gradients summed over t.
"""
from typing import NamedTuple

import numpy as np

from ._primitives import project, project_backward, sigmoid, sigmoid_grad, tanh_grad
from ._checks import check_state, check_step_inputs
from .sequence import StepReference, sequence_backward, sequence_forward


class GRUStepCache(NamedTuple):
    x: np.ndarray          # (N, D)
    h: np.ndarray          # (N, H) the state before the step
    r: np.ndarray          # (N, H) reset gate
    z: np.ndarray          # (N, H) update gate
    n: np.ndarray          # (N, H) candidate
    p_hn: np.ndarray       # (N, H) W_hn h + b_hn, the part that r gates
    params: dict


def step_forward(x, state, params):
    """One GRU step; returns (h' (N, H), cache).

    x (N, D); state h (N, H), None for zeros.
    """
    h = check_step_inputs(x, state, params, gates=3, state_parts=1)
    p_x, p_h = project(x, h, params)
    p_xr, p_xz, p_xn = np.split(p_x, 3, axis=1)
    p_hr, p_hz, p_hn = np.split(p_h, 3, axis=1)
    r = sigmoid(p_xr + p_hr)
    z = sigmoid(p_xz + p_hz)
    n = np.tanh(p_xn + r * p_hn)
    h_new = (1.0 - z) * n + z * h
    return h_new, GRUStepCache(x, h, r, z, n, p_hn, params)


def step_backward(dstate, cache):
    """Given dh' (N, H) and the step's cache, returns (dx (N, D), dh (N, H), dparams)."""
    if not isinstance(cache, GRUStepCache):
        raise TypeError(f"gru.step_backward needs a cache from gru.step_forward, "
                        f"got a {type(cache).__name__}")
    dh_new = check_state(dstate, 1, cache.h.shape, "dstate")
    x, h, r, z, n, p_hn, params = cache
    dn = dh_new * (1.0 - z)
    dz = dh_new * (h - n)
    da_n = dn * tanh_grad(n)
    dr = da_n * p_hn
    dp_hn = da_n * r
    da_r = dr * sigmoid_grad(r)
    da_z = dz * sigmoid_grad(z)
    dp_x = np.concatenate([da_r, da_z, da_n], axis=1)
    dp_h = np.concatenate([da_r, da_z, dp_hn], axis=1)
    dx, dh_through_projection, dparams = project_backward(dp_x, dp_h, x, h, params)
    return dx, dh_new * z + dh_through_projection, dparams


def forward(xs, state0, params, lengths=None):
    """Run the GRU over xs (T, N, D) from state0 h (N, H) (None: zeros); lengths (N,) in 1..T.

    Returns (outputs (T, N, H), final h (N, H), cache); see sequence for the masking.
    """
    return sequence_forward(reference(), xs, state0, params, lengths)


def backward(doutputs, dfinal_state, cache, per_step=False):
    """BPTT for forward: doutputs (T, N, H), dfinal_state (N, H) or None; returns BPTTGrads."""
    return sequence_backward(reference(), doutputs, dfinal_state, cache, per_step)


def reference():
    """The GRU step as a reference (step_forward, step_backward) for bptt.sequence and crosscheck."""
    return StepReference(step_forward, step_backward)
