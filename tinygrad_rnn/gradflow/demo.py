"""The demo cells and data the ``gradflow`` commands measure: seeded, so every number reproduces.

Shapes: T steps, N batch, D input size, H hidden size; xs (T, N, D) drawn N(0, 1).

Every cell's parameters are drawn from the same seeded generator, PyTorch's default
U(-1/√H, 1/√H); then, as asked:

- init "identity" / "orthogonal": each gate's H×H block of weight_hh (rows g·H .. g·H+H-1) is set
  to scale·I, or to scale·Q with Q orthogonal (``nn.init.orthogonal_``, one draw per block);
- nonlinearity (RNN only): tanh or relu;
- forget_bias (LSTM only): added to the forget gate's slice H:2H of bias_hh, f = σ(... + forget_bias)
  (Jozefowicz et al. 2015 recommend 1).
"""
import numpy as np

from .._checks import check_int, check_real
from ..nn import init
from ..nn.cells import GRUCell, LSTMCell, RNNCell
from ..tensor import Tensor

__all__ = ["DEMO_CELLS", "DEMO_DEFAULTS", "INITS", "NONLINEARITIES", "demo_models", "describe_setup", "describe_init"]

DEMO_CELLS = {"rnn": RNNCell, "lstm": LSTMCell, "gru": GRUCell}
INITS = ("default", "identity", "orthogonal")
NONLINEARITIES = ("tanh", "relu")
_GATES = {"rnn": 1, "lstm": 4, "gru": 3}


DEMO_DEFAULTS = {"seq_len": 100, "hidden": 32, "input_size": 8, "batch": 1, "seed": 0, "nonlinearity": "tanh",
                 "init_name": "default", "scale": 1.0, "forget_bias": 0.0, "dtype": "float64"}


def demo_models(cells=("rnn", "lstm", "gru"), **setup):
    """(xs (T, N, D) Tensor, {name: cell}): the seeded demo cells (module docstring) and their input.

    cells: some of "rnn", "lstm", "gru" (a name or a sequence). setup: any of ``DEMO_DEFAULTS``'
    keys: seq_len, hidden, input_size, batch (positive ints), seed (an int >= 0), nonlinearity
    ("tanh" or "relu", other than tanh only with an "rnn" among the cells), init_name ("default",
    "identity", "orthogonal"), scale (> 0, other than 1 only with identity / orthogonal),
    forget_bias (a number, non-zero only with an "lstm"), dtype ("float32" or "float64").
    """
    unknown = sorted(set(setup) - set(DEMO_DEFAULTS))
    if unknown:
        raise TypeError(f"unknown demo settings {unknown}; the settings are {list(DEMO_DEFAULTS)}")
    settings = {**DEMO_DEFAULTS, **setup}
    return _build(cells, **settings)


def _build(cells, seq_len, hidden, input_size, batch, seed, nonlinearity, init_name, scale, forget_bias, dtype):
    cells = (cells,) if isinstance(cells, str) else tuple(cells)
    unknown = [name for name in cells if name not in DEMO_CELLS]
    if unknown or not cells:
        raise ValueError(f"cells must be some of {sorted(DEMO_CELLS)}, got {list(cells)}")
    for name, value in (("seq_len", seq_len), ("hidden", hidden), ("input_size", input_size), ("batch", batch)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    check_int("demo_models", "seed", seed, minimum=0)
    _check_choice("nonlinearity", nonlinearity, NONLINEARITIES)
    _check_choice("init", init_name, INITS)
    _check_choice("dtype", dtype, ("float32", "float64"))
    scale = check_real("demo_models", "scale", scale, low=-np.inf)  # any finite number: its range is checked next
    forget_bias = check_real("demo_models", "forget_bias", forget_bias, low=-np.inf)
    if scale <= 0:
        raise ValueError(f"demo_models: scale must be a finite number > 0, got {scale}")
    if init_name == "default" and scale != 1.0:
        raise ValueError(f"scale goes with init identity or orthogonal (the default init has none), got "
                         f"scale={scale} with init {init_name}")
    if forget_bias != 0.0 and "lstm" not in cells:
        raise ValueError(f"forget_bias is the LSTM's forget-gate bias, but the cells are {list(cells)}")
    if nonlinearity != "tanh" and "rnn" not in cells:
        raise ValueError(f"nonlinearity {nonlinearity!r} is the RNN's, but the cells are {list(cells)}")
    dtype = np.dtype(dtype)
    xs = Tensor(np.random.default_rng((seed, 0)).standard_normal((seq_len, batch, input_size)).astype(dtype))
    models = {}
    for name in cells:
        options = {"nonlinearity": nonlinearity} if name == "rnn" else {}
        cell = DEMO_CELLS[name](input_size, hidden, dtype=dtype, **options)
        rng = np.random.default_rng((seed, 1))
        for p in cell.parameters():
            init.recurrent_default_(p, hidden, rng)
        if init_name != "default":
            _set_recurrent_blocks(cell.weight_hh, _GATES[name], hidden, init_name, scale, rng)
        if name == "lstm":
            cell.bias_hh.data[hidden:2 * hidden] += forget_bias
        models[name] = cell
    return xs, models


def _check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")


def _set_recurrent_blocks(weight_hh, gates, hidden, init_name, scale, rng):
    """Each gate's (H, H) block of weight_hh (G·H, H) := scale·I or scale·Q (Q orthogonal, drawn per block)."""
    for gate in range(gates):
        block = Tensor(np.empty((hidden, hidden), dtype=weight_hh.dtype))
        if init_name == "identity":
            block.data[...] = scale * np.eye(hidden)
        else:
            init.orthogonal_(block, gain=scale, rng=rng)
        weight_hh.data[gate * hidden:(gate + 1) * hidden] = block.data


def describe_setup(**setup):
    """The demo's settings (``DEMO_DEFAULTS`` where not given) in one line, for the head of a table."""
    s = {**DEMO_DEFAULTS, **setup}
    return (f"T={s['seq_len']}, H={s['hidden']}, D={s['input_size']}, N={s['batch']}, seed {s['seed']}, "
            f"{describe_init(**setup)}, {s['dtype']}")


def describe_init(**setup):
    """The initialisation and nonlinearity in a few words, for a picture's title."""
    s = {**DEMO_DEFAULTS, **setup}
    words = "PyTorch default init" if s["init_name"] == "default" else f"W_hh = {s['scale']:g}·{s['init_name']}"
    if s["nonlinearity"] != "tanh":
        words += f", {s['nonlinearity']} RNN"
    if s["forget_bias"]:
        words += f", LSTM forget bias +{s['forget_bias']:g}"
    return words
