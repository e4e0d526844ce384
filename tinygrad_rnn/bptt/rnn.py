"""Vanilla RNN, derived by hand: one step forward and backward, and the sequence wrappers.

Shapes: x (N, D), h (N, H); params in PyTorch's layout with one gate block (G = 1):
weight_ih (H, D), weight_hh (H, H), bias_ih (H,), bias_hh (H,) (the biases may be absent / None).

Forward step:

    a  = x W_ih^T + b_ih + h W_hh^T + b_hh          (N, H)
    h' = act(a)                                      (N, H)     act: tanh, relu or sigmoid

Backward step, given dh' = dL/dh' (N, H):

    da    = dh' * act'(a)                            (N, H)     act' read from h':
                                                                tanh 1 - h'^2, relu 1[h' > 0],
                                                                sigmoid h'(1 - h')
    dx    = da W_ih                                  (N, D)
    dh    = da W_hh                                  (N, H)
    dW_ih = da^T x                                   (H, D)
    dW_hh = da^T h                                   (H, H)
    db_ih = db_hh = sum_n da                         (H,)

Through time, see sequence: the same step at every t, the weight gradients summed over t.
"""
import functools
from typing import NamedTuple

import numpy as np

from ._primitives import ACTIVATIONS, project, project_backward
from ._checks import check_state, check_step_inputs
from .sequence import StepReference, sequence_backward, sequence_forward


class RNNStepCache(NamedTuple):
    x: np.ndarray          # (N, D)
    h: np.ndarray          # (N, H) the state before the step
    h_new: np.ndarray      # (N, H) h' = act(a)
    params: dict
    nonlinearity: str


def _activation(nonlinearity):
    if nonlinearity not in ACTIVATIONS:
        raise ValueError(f"nonlinearity must be one of {sorted(ACTIVATIONS)}, got {nonlinearity!r}")
    return ACTIVATIONS[nonlinearity]


def step_forward(x, state, params, nonlinearity="tanh"):
    """h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh); returns (h' (N, H), cache).

    x (N, D); state h (N, H), None for zeros.
    """
    activation, _ = _activation(nonlinearity)
    h = check_step_inputs(x, state, params, gates=1, state_parts=1)
    p_x, p_h = project(x, h, params)
    h_new = activation(p_x + p_h)
    return h_new, RNNStepCache(x, h, h_new, params, nonlinearity)


def step_backward(dstate, cache):
    """Given dh' (N, H) and the step's cache, returns (dx (N, D), dh (N, H), dparams)."""
    if not isinstance(cache, RNNStepCache):
        raise TypeError(f"rnn.step_backward needs a cache from rnn.step_forward, "
                        f"got a {type(cache).__name__}")
    dh_new = check_state(dstate, 1, cache.h_new.shape, "dstate")
    _, activation_grad = _activation(cache.nonlinearity)
    da = dh_new * activation_grad(cache.h_new)
    return project_backward(da, da, cache.x, cache.h, cache.params)


def forward(xs, state0, params, lengths=None, nonlinearity="tanh"):
    """Run the RNN over xs (T, N, D) from state0 h (N, H) (None: zeros); lengths (N,) in 1..T.

    Returns (outputs (T, N, H), final h (N, H), cache); see sequence for the masking.
    """
    return sequence_forward(reference(nonlinearity), xs, state0, params, lengths)


def backward(doutputs, dfinal_state, cache, per_step=False):
    """BPTT for forward: doutputs (T, N, H), dfinal_state (N, H) or None; returns BPTTGrads."""
    return sequence_backward(reference(), doutputs, dfinal_state, cache, per_step)


def reference(nonlinearity="tanh"):
    """The RNN step with this nonlinearity as a reference (step_forward, step_backward) for
    bptt.sequence and crosscheck (step_backward reads the nonlinearity from the step's cache)."""
    _activation(nonlinearity)
    return StepReference(functools.partial(step_forward, nonlinearity=nonlinearity), step_backward)
