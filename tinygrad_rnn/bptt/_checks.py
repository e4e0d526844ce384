"""Checks of what the references are given, so that every bad input gets one clear error.

Each check raises TypeError (wrong kind or dtype) or ValueError (wrong shape or value) with a
message naming the argument, what was expected and what came; the references then compute on
inputs known to fit, never on a silent broadcast.
"""
from collections.abc import Mapping

import numpy as np

PARAM_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def _describe(value):
    if isinstance(value, np.ndarray):
        return f"an array of dtype {value.dtype} and shape {value.shape}"
    return f"a {type(value).__name__}"


def check_floating(array, name):
    """`array` must be an np.ndarray of a floating dtype."""
    if not isinstance(array, np.ndarray) or not np.issubdtype(array.dtype, np.floating):
        raise TypeError(f"{name} must be a floating-point np.ndarray, got {_describe(array)}")


def check_params(params, gates):
    """Check params against the layout of a cell with `gates` blocks; return (D, H).

    Layout: weight_ih (gates*H, D), weight_hh (gates*H, H), and either both of bias_ih and
    bias_hh (gates*H,) or neither (absent or None).
    """
    if not isinstance(params, Mapping):
        raise TypeError(f"params must be a dict of arrays, got {_describe(params)}")
    unknown = sorted(set(params) - set(PARAM_NAMES))
    if unknown:
        raise ValueError(f"params has unknown keys {unknown}; the keys are {list(PARAM_NAMES)}")
    for name in PARAM_NAMES:
        if name in params and params[name] is not None:
            check_floating(params[name], f"params['{name}']")
    for name in ("weight_ih", "weight_hh"):
        if params.get(name) is None:
            raise ValueError(f"params needs '{name}'")
    weight_ih, weight_hh = params["weight_ih"], params["weight_hh"]
    if weight_hh.ndim != 2 or weight_hh.shape[0] != gates * weight_hh.shape[1]:
        raise ValueError(
            f"params['weight_hh'] must have shape ({gates}*H, H), got {weight_hh.shape}")
    hidden_size = weight_hh.shape[1]
    if weight_ih.ndim != 2 or weight_ih.shape[0] != gates * hidden_size:
        raise ValueError(f"params['weight_ih'] must have shape ({gates * hidden_size}, D) "
                         f"to match weight_hh {weight_hh.shape}, got {weight_ih.shape}")
    biases = [name for name in ("bias_ih", "bias_hh") if params.get(name) is not None]
    if len(biases) == 1:
        raise ValueError(f"params has {biases[0]} but not the other bias: "
                         "a cell has both bias_ih and bias_hh, or neither")
    for name in biases:
        if params[name].shape != (gates * hidden_size,):
            raise ValueError(f"params['{name}'] must have shape ({gates * hidden_size},), "
                             f"got {params[name].shape}")
    return weight_ih.shape[1], hidden_size


def check_state(state, parts, shape, name):
    """`state` must be one array (parts == 1) or a tuple/list of `parts` arrays, each floating of
    `shape`; return it as the array or as a tuple."""
    if parts == 1:
        pieces = (state,)
    elif isinstance(state, (tuple, list)) and len(state) == parts:
        pieces = tuple(state)
    else:
        raise TypeError(f"{name} must be a tuple of {parts} arrays of shape {shape}, "
                        f"got {_describe(state)}")
    for k, piece in enumerate(pieces):
        piece_name = name if parts == 1 else f"{name}[{k}]"
        check_floating(piece, piece_name)
        if piece.shape != shape:
            raise ValueError(f"{piece_name} must have shape {shape}, got {piece.shape}")
    return pieces[0] if parts == 1 else pieces


def check_step_inputs(x, state, params, gates, state_parts):
    """Check one step's x (N, D), state and params; return the state, zeros when it is None.

    The state is h (N, H) when state_parts == 1, the pair (h, c) when it is 2.
    """
    input_size, hidden_size = check_params(params, gates)
    check_floating(x, "x")
    if x.ndim != 2 or x.shape[1] != input_size:
        raise ValueError(f"x must have shape (N, {input_size}) to match params['weight_ih'], "
                         f"got {x.shape}")
    shape = (x.shape[0], hidden_size)
    if state is None:
        dtype = np.result_type(x, params["weight_hh"])
        zeros = tuple(np.zeros(shape, dtype=dtype) for _ in range(state_parts))
        return zeros[0] if state_parts == 1 else zeros
    return check_state(state, state_parts, shape, "state")


def check_sequence(xs):
    """xs must be a floating (T, N, D) array with T >= 1; return (T, N)."""
    check_floating(xs, "xs")
    if xs.ndim != 3 or xs.shape[0] < 1:
        raise ValueError(f"xs must have shape (T, N, D) with T >= 1 (time-major), got {xs.shape}")
    return xs.shape[:2]


def check_lengths(lengths, steps, batch_size):
    """lengths: None (every row runs all `steps`) or (N,) integers in 1..steps; return them as an
    int array."""
    if lengths is None:
        return np.full(batch_size, steps)
    try:
        lengths = np.asarray(lengths)
    except ValueError:
        raise ValueError(f"lengths must be one int per row, got the ragged {lengths!r}") from None
    if not np.issubdtype(lengths.dtype, np.integer):
        raise TypeError(f"lengths must be integers, got dtype {lengths.dtype}")
    if lengths.shape != (batch_size,):
        raise ValueError(f"lengths must have shape ({batch_size},), one per row of the batch, "
                         f"got {lengths.shape}")
    bad = lengths[(lengths < 1) | (lengths > steps)]
    if bad.size:
        raise ValueError(f"lengths must lie in 1..{steps} (the number of steps), "
                         f"got {bad.tolist()}")
    return lengths


def check_targets(targets, shape, num_classes):
    """targets must be integers of `shape` in 0..num_classes-1; return them as an int array."""
    targets = np.asarray(targets)
    if not np.issubdtype(targets.dtype, np.integer):
        raise TypeError(f"targets must be integer class indices, got dtype {targets.dtype}")
    if targets.shape != shape:
        raise ValueError(f"targets must have shape {shape}, got {targets.shape}")
    bad = targets[(targets < 0) | (targets >= num_classes)]
    if bad.size:
        raise ValueError(f"targets must lie in 0..{num_classes - 1}, got {bad.tolist()}")
    return targets
