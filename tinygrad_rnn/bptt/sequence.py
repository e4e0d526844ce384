"""The sequence loop of hand-derived BPTT, for any cell: forward over time, backward through time.

A cell's reference is any object with its one-step functions in plain NumPy (the protocol every
built-in reference follows too: ``rnn.reference()``, ``lstm.reference()``, ``gru.reference()``):

    step_forward(x_t, s, params) -> (s', step_cache)
    step_backward(ds', step_cache) -> (dx_t, ds, dparams_t)

where x_t is (N, D), the state s is one array (N, ...) or a tuple of them (the LSTM's (h, c)),
``params`` a dict of arrays by the cell's parameter names, and ``dparams_t`` a dict with some of
those names (a name left out or None: no gradient from this step). Everything below acts on
each part of s alike; the outputs are the state's first part (h of (h, c)).

Forward. xs (T, N, D) time-major, s_{-1} = state0, and m_t[n] = 1[t < lengths[n]] says whether
row n still runs at step t (every row runs step 0, since lengths >= 1):

    s'_t = step_forward(x_t, s_{t-1})                       the cell's step, for every row
    s_t  = m_t * s'_t + (1 - m_t) * s_{t-1}                 a finished row keeps its state
    y_t  = m_t * h_t            (N, H)                      outputs; h_t is the first part of s_t
    final_state = s_{T-1}                                   each row's state at its own last step

Backward. Given dy_t = doutputs[t] (N, H) and dfinal_state = dL/ds_{T-1}, walk t from T-1 down
to 0 carrying g_t = dL/ds_t, the total gradient of the state after step t, which starts as
dfinal_state:

    g_t    += m_t * dy_t                            on the first part, through y_t
    ds'_t   = m_t * g_t                             into the cell's step; zero for a finished row
    (dx_t, ds_{t-1}, dparams_t) = step_backward(ds'_t, step_cache_t)
    g_{t-1} = ds_{t-1} + (1 - m_t) * g_t            a finished row's state passes through
    dstate0 = g_{-1}

The weights are tied: the same params act at every step, so by the multivariate chain rule their
gradient is the sum of each step's contribution, dparams = sum_t dparams_t; the loop does that
sum, so a reference only ever derives one step. A finished row gets ds'_t = 0 and so adds nothing
to dparams_t and has dx_t = 0. The first part of g_t is dh[t] below: the total dL/dh_t, the
output's own gradient plus all that flows back from later steps (past a row's end, the gradient
of its frozen state).

What a reference returns is checked at every step (structure, shapes and dtypes of the new
state, of dx_t, ds and each dparams_t entry), so a wrong derivation's shape error names the
gradient, the step and both shapes instead of failing somewhere inside NumPy.
"""
from dataclasses import dataclass
from typing import NamedTuple, Optional

import numpy as np

from ..nn.cells import state_of, state_parts
from ._checks import check_floating, check_lengths, check_sequence, check_state

__all__ = ["BPTTGrads", "SequenceCache", "StepReference", "check_reference", "sequence_backward", "sequence_forward",
           "state_of", "state_parts"]


class StepReference(NamedTuple):
    """A cell's one-step forward and backward in plain NumPy, as the module docstring describes."""

    step_forward: object
    step_backward: object


@dataclass
class BPTTGrads:
    """What a sequence backward returns.

    dxs              (T, N, D)       dL/dxs
    dstate0          like state0     dL/dstate0: h (N, H), or (h, c) for the LSTM (for state0
                                     None, the gradient with respect to the zero state)
    dparams          dict            dL/dparam for each key of params (None where params has None)
    dparams_per_step dict or None    per_step only: (T, *param.shape), step t's share (summing
                                     over t gives dparams)
    dh               (T, N, H)       per_step only: total dL/dh_t for every t (the state's first part)
    dc               (T, N, H)       per_step and a two-part state only: total dL/dc_t for every t
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
    input_shape: tuple     # (N, D): the shape of every x_t
    input_dtype: np.dtype  # and its dtype


def _map_state(fn, *states):
    """fn applied part by part: to h itself, or to each of (h, c)."""
    if isinstance(states[0], tuple):
        return tuple(fn(*parts) for parts in zip(*states))
    return fn(*states)


def _hidden(state):
    """The first part h of a state h or (h, c)."""
    return state[0] if isinstance(state, tuple) else state


def _where_running(rows, a, b):
    """``a`` in the rows still running at this step (``rows`` (N,) bool), ``b`` in the others;
    a and b are (N, ...) arrays or numbers."""
    return np.where(rows.reshape((-1,) + (1,) * (max(np.ndim(a), np.ndim(b)) - 1)), a, b)


def _add_to_hidden(state, dh):
    """The state with dh added to its first part."""
    if isinstance(state, tuple):
        return (state[0] + dh,) + state[1:]
    return state + dh


def check_reference(reference):
    """Raise a TypeError naming what ``reference`` lacks of the protocol (step_forward, step_backward)."""
    missing = [name for name in ("step_forward", "step_backward") if not callable(getattr(reference, name, None))]
    if missing:
        raise TypeError(f"a reference needs the methods step_forward(x_t, state, params) -> (new_state, cache) "
                        f"and step_backward(dnew_state, cache) -> (dx_t, dstate, dparams); "
                        f"this {type(reference).__name__} lacks {', '.join(missing)}")


def _check_like(value, like, what):
    """``value`` must have the structure (one array or a tuple), shapes and dtypes of ``like``."""
    if isinstance(like, tuple):
        if not isinstance(value, (tuple, list)) or len(value) != len(like):
            raise ValueError(f"{what} must be a tuple of {len(like)} arrays like the state, got "
                             f"{type(value).__name__}" + (f" of {len(value)}" if isinstance(value, (tuple, list)) else ""))
        return tuple(_check_like(v, part, f"{what}[{k}]") for k, (v, part) in enumerate(zip(value, like)))
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{what} must be an ndarray of shape {like.shape}, got {type(value).__name__}")
    if value.shape != like.shape:
        raise ValueError(f"{what} has shape {value.shape}, expected {like.shape}")
    if value.dtype != like.dtype:
        raise TypeError(f"{what} has dtype {value.dtype}, expected {like.dtype}")
    return value


def sequence_forward(reference, xs, state0, params, lengths=None):
    """Run ``reference.step_forward`` over xs (T, N, D) from state0 (None: the reference's own zeros),
    rows stopping at lengths (N,) (see the module docstring).

    Returns (outputs (T, N, H), final_state, cache); outputs past a row's length are zero.
    """
    check_reference(reference)
    steps, batch_size = check_sequence(xs)
    lengths = check_lengths(lengths, steps, batch_size)
    running = np.arange(steps)[:, None] < lengths[None, :]
    state, outputs, step_caches = state0, [], []
    for t in range(steps):
        new_state, step_cache = reference.step_forward(xs[t], state, params)
        if state is not None:
            new_state = _check_like(new_state if not isinstance(new_state, list) else tuple(new_state), state,
                                    f"step_forward's new state at t={t}")
        rows = running[t]
        if rows.all():  # always so at t = 0, which is what lets state0 be None
            state = new_state
        else:
            state = _map_state(lambda new, old: _where_running(rows, new, old), new_state, state)
        outputs.append(_where_running(rows, _hidden(new_state), 0.0))
        step_caches.append(step_cache)
    return np.stack(outputs), state, SequenceCache(step_caches, running, state, params, xs.shape[1:], xs.dtype)


def sequence_backward(reference, doutputs, dfinal_state, cache, per_step=False):
    """Backward through time of sequence_forward (see the module docstring); returns BPTTGrads.

    doutputs like the outputs (T, N, H); dfinal_state like the final state, or None for zeros.
    per_step=True also fills dparams_per_step, dh and (a two-part state) dc.
    """
    check_reference(reference)
    if not isinstance(cache, SequenceCache):
        raise TypeError(f"cache must be the one returned by forward (sequence_forward), got a {type(cache).__name__}")
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
    params = cache.params
    dparams = {name: None if p is None else np.zeros_like(p) for name, p in params.items()}
    dparams_per_step = dstates = None
    if per_step:
        dparams_per_step = {name: None if p is None else np.zeros((steps,) + p.shape, p.dtype)
                            for name, p in params.items()}
        dstates = [None] * steps
    for t in reversed(range(steps)):
        rows = cache.running[t]
        dstate = _add_to_hidden(dstate, _where_running(rows, doutputs[t], 0.0))  # g_t
        if per_step:
            dstates[t] = dstate
        dnew = _map_state(lambda g: _where_running(rows, g, 0.0), dstate)
        dkept = _map_state(lambda g: _where_running(rows, 0.0, g), dstate)
        returned = reference.step_backward(dnew, cache.steps[t])
        if not isinstance(returned, (tuple, list)) or len(returned) != 3:
            raise TypeError(f"step_backward must return (dx_t, dstate, dparams), got {type(returned).__name__}"
                            + (f" of {len(returned)}" if isinstance(returned, (tuple, list)) else ""))
        dxs[t], dprev, dparams_t = returned
        _check_step_gradients(dxs[t], dprev, dparams_t, params, dstate, cache.input_shape, cache.input_dtype, t)
        dstate = _map_state(np.add, tuple(dprev) if isinstance(dprev, list) else dprev, dkept)  # g_{t-1}
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


def _check_step_gradients(dx, dstate, dparams, params, like_state, input_shape, input_dtype, t):
    """What step_backward returned at step t: dx_t a floating array (N, D), dstate like the state,
    dparams a dict of arrays shaped like the params they name."""
    who = f"step_backward at t={t}"
    if not isinstance(dx, np.ndarray) or dx.dtype.kind != "f":
        raise TypeError(f"{who}: dx_t must be a floating-point ndarray, got {type(dx).__name__}")
    if dx.shape != input_shape:
        raise ValueError(f"{who}: dx_t has shape {dx.shape}, expected {input_shape} (the shape of x_t)")
    if dx.dtype != input_dtype:
        raise TypeError(f"{who}: dx_t has dtype {dx.dtype}, expected {input_dtype} (the dtype of x_t)")
    _check_like(tuple(dstate) if isinstance(dstate, list) else dstate, like_state, f"{who}: dstate")
    if not isinstance(dparams, dict):
        raise TypeError(f"{who}: dparams must be a dict of gradients by parameter name, got {type(dparams).__name__}")
    for name, grad in dparams.items():
        if name not in params:
            raise ValueError(f"{who}: dparams has a gradient for {name!r}, which is not a parameter "
                             f"(the parameters are {sorted(params)})")
        if grad is not None:
            if not isinstance(grad, np.ndarray):
                raise TypeError(f"{who}: the gradient of {name!r} must be an ndarray, got {type(grad).__name__}")
            if grad.shape != params[name].shape:
                raise ValueError(f"{who}: the gradient of {name!r} has shape {grad.shape}, expected "
                                 f"{params[name].shape} (the shape of params[{name!r}])")
            if grad.dtype != params[name].dtype:
                raise TypeError(f"{who}: the gradient of {name!r} has dtype {grad.dtype}, expected "
                                f"{params[name].dtype} (the dtype of params[{name!r}])")
