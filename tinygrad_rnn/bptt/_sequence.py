"""The sequence loop shared by the three cells: forward over time, backward through time (BPTT).

A cell gives its one-step functions
    step_forward(x_t, s, params) -> (s', step_cache)
    step_backward(ds', step_cache) -> (dx_t, ds, dparams_t)
where the state s is h (N, H) for the RNN and GRU and the pair (h, c) for the LSTM; everything
below acts on each part of s alike.

Forward. xs (T, N, D) time-major, s_{-1} = state0, and m_t[n] = 1[t < lengths[n]] says whether
row n still runs at step t (every row runs step 0, since lengths >= 1):

    s'_t = step_forward(x_t, s_{t-1})                       the cell's step, for every row
    s_t  = m_t * s'_t + (1 - m_t) * s_{t-1}                 a finished row keeps its state
    y_t  = m_t * h_t            (N, H)                      outputs; h_t is the hidden part of s_t
    final_state = s_{T-1}                                   each row's state at its own last step

Backward. Given dy_t = doutputs[t] (N, H) and dfinal_state = dL/ds_{T-1}, walk t from T-1 down
to 0 carrying g_t = dL/ds_t, the total gradient of the state after step t, which starts as
dfinal_state:

    g_t    += m_t * dy_t                            on the hidden part, through y_t
    ds'_t   = m_t * g_t                             into the cell's step; zero for a finished row
    (dx_t, ds_{t-1}, dparams_t) = step_backward(ds'_t, step_cache_t)
    g_{t-1} = ds_{t-1} + (1 - m_t) * g_t            a finished row's state passes through
    dstate0 = g_{-1}

The weights are tied: the same params act at every step, so by the multivariate chain rule their
gradient is the sum of each step's contribution, dparams = sum_t dparams_t. A finished row gets
ds'_t = 0 and so adds nothing to dparams_t and has dx_t = 0. The hidden part of g_t is dh[t] below:
the total dL/dh_t, the output's own gradient plus all that flows back from later steps (past a
row's end, the gradient of its frozen state).
"""
from dataclasses import dataclass
from typing import NamedTuple, Optional

import numpy as np

from ._checks import check_floating, check_lengths, check_sequence, check_state


@dataclass
class BPTTGrads:
    """What a sequence backward returns.

    dxs              (T, N, D)       dL/dxs
    dstate0          like state0     dL/dstate0: h (N, H), or (h, c) for the LSTM (for state0
                                     None, the gradient with respect to the zero state)
    dparams          dict            dL/dparam for each key of params (None where params has None)
    dparams_per_step dict or None    per_step only: (T, *param.shape), step t's share (summing
                                     over t gives dparams)
    dh               (T, N, H)       per_step only: total dL/dh_t for every t
    dc               (T, N, H)       per_step and LSTM only: total dL/dc_t for every t
    """

    dxs: np.ndarray
    dstate0: object
    dparams: dict
    dparams_per_step: Optional[dict] = None
    dh: Optional[np.ndarray] = None
    dc: Optional[np.ndarray] = None


class SequenceCache(NamedTuple):
    """What sequence_forward keeps for sequence_backward."""

    steps: list            # the T step caches
    running: np.ndarray    # (T, N) bool: m_t[n]
    final_state: object    # s_{T-1}
    params: dict


def _map_state(fn, *states):
    """fn applied part by part: to h itself, or to each of (h, c)."""
    if isinstance(states[0], tuple):
        return tuple(fn(*parts) for parts in zip(*states))
    return fn(*states)


def _hidden(state):
    """The hidden part h of a state h or (h, c)."""
    return state[0] if isinstance(state, tuple) else state


def _add_to_hidden(state, dh):
    """The state with dh added to its hidden part."""
    if isinstance(state, tuple):
        return (state[0] + dh,) + state[1:]
    return state + dh


def sequence_forward(step_forward, xs, state0, params, lengths=None):
    """Run step_forward over xs (T, N, D) from state0 (None: zeros), rows stopping at lengths (N,).

    Returns (outputs (T, N, H), final_state, cache); outputs past a row's length are zero.
    """
    steps, batch_size = check_sequence(xs)
    lengths = check_lengths(lengths, steps, batch_size)
    running = np.arange(steps)[:, None] < lengths[None, :]
    state, outputs, step_caches = state0, [], []
    for t in range(steps):
        new_state, step_cache = step_forward(xs[t], state, params)
        keep = running[t][:, None]
        if running[t].all():  # always so at t = 0, which is what lets state0 be None
            state = new_state
        else:
            state = _map_state(lambda new, old: np.where(keep, new, old), new_state, state)
        outputs.append(np.where(keep, _hidden(new_state), 0.0))
        step_caches.append(step_cache)
    return np.stack(outputs), state, SequenceCache(step_caches, running, state, params)


def sequence_backward(step_backward, doutputs, dfinal_state, cache, per_step=False):
    """Backward through time of sequence_forward (see the module docstring); returns BPTTGrads.

    doutputs (T, N, H); dfinal_state like the final state, or None for zeros. per_step=True also
    fills dparams_per_step, dh and (LSTM) dc.
    """
    if not isinstance(cache, SequenceCache):
        raise TypeError(f"cache must be the one returned by forward, got a {type(cache).__name__}")
    final_state = cache.final_state
    steps = len(cache.running)
    parts = len(final_state) if isinstance(final_state, tuple) else 1
    check_floating(doutputs, "doutputs")
    if doutputs.shape != (steps,) + _hidden(final_state).shape:
        raise ValueError(f"doutputs must have the outputs' shape "
                         f"{(steps,) + _hidden(final_state).shape}, got {doutputs.shape}")
    if dfinal_state is None:
        dstate = _map_state(np.zeros_like, final_state)
    else:
        dstate = check_state(dfinal_state, parts, _hidden(final_state).shape, "dfinal_state")

    dxs = [None] * steps
    dparams = {name: None if p is None else np.zeros_like(p) for name, p in cache.params.items()}
    dparams_per_step = dstates = None
    if per_step:
        dparams_per_step = {name: None if p is None else np.zeros((steps,) + p.shape, p.dtype)
                            for name, p in cache.params.items()}
        dstates = [None] * steps
    for t in reversed(range(steps)):
        keep = cache.running[t][:, None]
        dstate = _add_to_hidden(dstate, np.where(keep, doutputs[t], 0.0))  # g_t
        if per_step:
            dstates[t] = dstate
        dnew = _map_state(lambda g: np.where(keep, g, 0.0), dstate)
        dkept = _map_state(lambda g: np.where(keep, 0.0, g), dstate)
        dxs[t], dprev, dparams_t = step_backward(dnew, cache.steps[t])
        dstate = _map_state(np.add, dprev, dkept)  # g_{t-1}, before its dy term
        for name, grad in dparams_t.items():
            if grad is not None:
                dparams[name] += grad
                if per_step:
                    dparams_per_step[name][t] = grad

    grads = BPTTGrads(dxs=np.stack(dxs), dstate0=dstate, dparams=dparams)
    if per_step:
        grads.dparams_per_step = dparams_per_step
        grads.dh = np.stack([_hidden(g) for g in dstates])
        if parts == 2:
            grads.dc = np.stack([g[1] for g in dstates])
    return grads
