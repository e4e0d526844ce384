"""LSTM, derived by hand: one step forward and backward, and the sequence wrappers.

Shapes: x (N, D), state (h, c) with h, c (N, H); params in PyTorch's layout with four gate blocks
(G = 4) in the order i, f, g, o: weight_ih (4H, D), weight_hh (4H, H), bias_ih (4H,), bias_hh (4H,)
(the biases may be absent / None).

Forward step:

    a  = x W_ih^T + b_ih + h W_hh^T + b_hh          (N, 4H), split into a_i, a_f, a_g, a_o (N, H)
    i  = sigmoid(a_i)     input gate
    f  = sigmoid(a_f)     forget gate
    g  = tanh(a_g)        candidate
    o  = sigmoid(a_o)     output gate
    c' = f * c + i * g                               (N, H)
    h' = o * tanh(c')                                (N, H)

Backward step, given dh' and dc' (N, H). c' reaches the loss directly (dc') and through h':

    do   = dh' * tanh(c')
    dc'~ = dc' + dh' * o * (1 - tanh(c')^2)          the total gradient of c'
    di   = dc'~ * g          df = dc'~ * c          dg = dc'~ * i
    dc   = dc'~ * f                                  (N, H)     to the previous cell state
    da_i = di * i (1 - i)    da_f = df * f (1 - f)   da_g = dg * (1 - g^2)    da_o = do * o (1 - o)
    da   = [da_i, da_f, da_g, da_o]                  (N, 4H)
    dx    = da W_ih   (N, D)      dW_ih = da^T x   (4H, D)      db_ih = sum_n da   (4H,)
    dh    = da W_hh   (N, H)      dW_hh = da^T h   (4H, H)      db_hh = sum_n da   (4H,)

Through time, see sequence: the same step at every t, the weight gradients summed over t.
"""
from typing import NamedTuple

import numpy as np

from ._primitives import project, project_backward, sigmoid, sigmoid_grad, tanh_grad
from ._checks import check_state, check_step_inputs
from .sequence import StepReference, sequence_backward, sequence_forward


class LSTMStepCache(NamedTuple):
    x: np.ndarray          # (N, D)
    h: np.ndarray          # (N, H) the state before the step
    c: np.ndarray          # (N, H)
    i: np.ndarray          # (N, H) the four gates
    f: np.ndarray
    g: np.ndarray
    o: np.ndarray
    tanh_c_new: np.ndarray  # (N, H) tanh(c')
    params: dict


def step_forward(x, state, params):
    """One LSTM step; returns ((h', c'), cache).

    x (N, D); state (h, c), each (N, H), or None for zeros.
    """
    h, c = check_step_inputs(x, state, params, gates=4, state_parts=2)
    p_x, p_h = project(x, h, params)
    a_i, a_f, a_g, a_o = np.split(p_x + p_h, 4, axis=1)
    i, f, g, o = sigmoid(a_i), sigmoid(a_f), np.tanh(a_g), sigmoid(a_o)
    c_new = f * c + i * g
    tanh_c_new = np.tanh(c_new)
    h_new = o * tanh_c_new
    return (h_new, c_new), LSTMStepCache(x, h, c, i, f, g, o, tanh_c_new, params)


def step_backward(dstate, cache):
    """Given (dh', dc'), each (N, H), and the step's cache.

    Returns (dx (N, D), (dh, dc) each (N, H), dparams).
    """
    if not isinstance(cache, LSTMStepCache):
        raise TypeError(f"lstm.step_backward needs a cache from lstm.step_forward, "
                        f"got a {type(cache).__name__}")
    dh_new, dc_new = check_state(dstate, 2, cache.h.shape, "dstate")
    x, h, c, i, f, g, o, tanh_c_new, params = cache
    do = dh_new * tanh_c_new
    dc_total = dc_new + dh_new * o * tanh_grad(tanh_c_new)
    di, df, dg = dc_total * g, dc_total * c, dc_total * i
    dc = dc_total * f
    da = np.concatenate(
        [di * sigmoid_grad(i), df * sigmoid_grad(f), dg * tanh_grad(g), do * sigmoid_grad(o)],
        axis=1)
    dx, dh, dparams = project_backward(da, da, x, h, params)
    return dx, (dh, dc), dparams


def forward(xs, state0, params, lengths=None):
    """Run the LSTM over xs (T, N, D) from state0 (h, c) (None: zeros); lengths (N,) in 1..T.

    Returns (outputs (T, N, H) the h's, final (h, c), cache); see sequence for the masking.
    """
    return sequence_forward(reference(), xs, state0, params, lengths)


def backward(doutputs, dfinal_state, cache, per_step=False):
    """BPTT for forward: doutputs (T, N, H), dfinal_state (dh, dc) or None; returns BPTTGrads
    (with per_step, dh and dc are the total dL/dh_t and dL/dc_t)."""
    return sequence_backward(reference(), doutputs, dfinal_state, cache, per_step)


def reference():
    """The LSTM step as a reference (step_forward, step_backward) for bptt.sequence and crosscheck."""
    return StepReference(step_forward, step_backward)
