"""The three-way cross-check: autograd vs the hand-derived BPTT reference vs finite differences.

``crosscheck(module, x, ...)`` runs a built-in cell (one step) or a single-layer unidirectional
RNN / LSTM / GRU (a sequence) twice on the same weights and data: by the autograd engine (the
module itself) and by its NumPy reference here in bptt (rnn, lstm or gru, on
``module.state_dict()`` with the ``_l0`` suffix stripped). Both differentiate the same scalar loss:

    "sum"           L = sum(outputs * R) + sum_k sum(final_state_k * S_k)
                    R (T, N, H) and S_k (N, H) drawn from the seed unless given; a cell has no
                    separate outputs, only its new state (h', or (h', c') for the LSTM)
    "many_to_many"  L = sum_t,n CE(h_t[n] W_hy^T + b_y, y_t[n])          y (T, N)
    "many_to_one"   L = sum_n CE(h_{len_n - 1}[n] W_hy^T + b_y, y[n])     y (N,)
                    (bptt.losses; a fixed random read-out W_hy (C, H), b_y (C,) and targets)

and finite differences of L give a third, independent answer for a random sample of the entries
of every parameter, the input x and the initial state (and, for the cross-entropy losses, the
read-out). Finite differences always run the reference forward in float64, on a float64 copy
of the data, whatever the module's dtype: float32 has ~7 digits, too few to difference.

Errors: each row compares two gradients g_a, g_b of one tensor (the FD ones on the sampled
entries only) by the relative error of rel_error (cs231n), taken over the tensor in the 2-norm
rather than entry by entry:

    error = ||g_a - g_b|| / max(||g_a|| + ||g_b||, floor)

Entry by entry, a gradient entry that is small because terms cancel carries a rounding error
relative to the terms, not to itself, and fails any tight tolerance by chance; the norm weighs
each entry by its size. The floor is 0 for autograd vs hand-derived (0 when both are exactly 0).
Against finite differences it plays the part of rel_error's 1e-8: finite differences of L
resolve a gradient entry only to about r = 4 eps_64 sum|terms of L| / h (rounding; the stencil's
truncation error is far smaller), so a gradient of norm below r sqrt(k) / tolerance (k sampled
entries) is measured against that norm instead of its own; e.g. the tiny dL/dh0 of a sigmoid
RNN after many steps, which no difference of L can resolve.

Finite differences use the five-point central stencil with h = 1e-4 (truncation O(h^4), far
below the rounding above). A relu RNN's loss has kinks where a pre-activation a crosses 0; when
a running one lies near its kink, h shrinks to min|a| / 50 (and r grows with 1 / h).

Tolerances (every row, and the forward's outputs, final state and L, must be within them for
``ok``):

    float64   1e-10 autograd vs hand-derived     1e-6 against finite differences
    float32   1e-4  autograd vs hand-derived     1e-3 against finite differences

In float64 two correct derivations differ only by rounding: measured ~1e-16, and the finite
differences agree to ~1e-9 (T = 64, H = 32). In float32 both sides round to ~6e-8 per operation
and that grows with T and H: measured up to ~1e-6, autograd vs hand-derived and against the
float64 finite differences alike, at T = 400, H = 64. The float32 bounds leave room for longer
sequences and still catch a gradient off by 0.1% (autograd vs hand-derived) or 1% (finite
differences).
"""
from typing import NamedTuple, Optional

import numpy as np

from .. import nn
from ..functional import cross_entropy
from ..tensor import Tensor, grad as autograd
from . import gru, losses, lstm, rnn
from ._checks import check_lengths
from ._primitives import project

__all__ = ["CELL_NAMES", "CrosscheckReport", "CrosscheckRow", "LOSSES", "crosscheck", "reference_of",
           "run_check"]

LOSSES = ("sum", "many_to_many", "many_to_one")
TOLERANCES = {np.dtype(np.float64): (1e-10, 1e-6), np.dtype(np.float32): (1e-4, 1e-3)}
FD_STEP = 1e-4           # h of the five-point stencil, in float64
MIN_FD_STEP = 1e-9       # the smallest h, for a relu pre-activation (almost) at its kink
FD_ROUNDING = 4.0        # r = FD_ROUNDING * eps_64 * sum|terms of L| / h: one entry's resolution
                         # (the largest error measured over 450 random problems: 0.66 eps ... / h)
NUM_CLASSES = 4          # C of the cross-entropy read-out


# ============================================================================ what is checked

class _Target(NamedTuple):
    """What crosscheck needs to know about a module."""

    reference: object      # the bptt module: rnn, lstm or gru
    options: dict          # extra keywords of its forward / step_forward (RNN: nonlinearity)
    sequence: bool         # True: a layer over (T, N, D); False: a cell, one step over (N, D)
    state_names: tuple     # ("h0",) or ("h0", "c0")
    param_names: dict      # module parameter name -> reference params key


# a built-in cell's hand-derived reference; the type must match exactly: a subclass may change the equations
_REFERENCES = {nn.RNNCell: rnn, nn.LSTMCell: lstm, nn.GRUCell: gru}


def reference_of(cell):
    """(the bptt module for ``cell``, the extra keywords of its forward / step_forward), or None
    for a cell without a hand-derived reference (only RNNCell, LSTMCell and GRUCell have one)."""
    reference = _REFERENCES.get(type(cell))
    if reference is None:
        return None
    return reference, ({"nonlinearity": cell.nonlinearity} if reference is rnn else {})


def _target(module):
    """The reference and layout for ``module``; a clear error for anything unsupported."""
    supported = ("crosscheck supports nn.RNNCell, nn.LSTMCell, nn.GRUCell and single-layer "
                 "unidirectional nn.RNN, nn.LSTM, nn.GRU")
    name = type(module).__name__
    sequence = isinstance(module, nn.StackedRecurrent)
    if sequence and module.num_layers != 1:
        raise ValueError(f"{supported}; this {name} has num_layers={module.num_layers}: check "
                         f"one layer at a time, e.g. {name}({module.input_size}, "
                         f"{module.hidden_size}) (each layer is the same recurrence)")
    if sequence and module.bidirectional:
        raise ValueError(f"{supported}; this {name} is bidirectional: check a unidirectional "
                         f"{name}({module.input_size}, {module.hidden_size}) (the reverse "
                         f"direction is the same recurrence over the reversed sequence)")
    found = reference_of(module._layers[0][0].cell if sequence else module)
    if found is None:
        raise TypeError(f"{supported}; got a {name}")
    frozen = [key for key, param in module.named_parameters() if not param.requires_grad]
    if frozen:
        raise ValueError(f"crosscheck differentiates every parameter, but {frozen} of this {name} "
                         f"have requires_grad=False")
    reference, options = found
    suffix = "_l0" if sequence else ""
    param_names = {key + suffix: key for key in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
                   if getattr(module, key + suffix, None) is not None}
    state_names = ("h0", "c0") if reference is lstm else ("h0",)
    return _Target(reference, options, sequence, state_names, param_names)


class _Problem(NamedTuple):
    """Everything the loss depends on besides the differentiated arrays."""

    target: _Target
    loss: str
    lengths: Optional[np.ndarray]   # (N,), or None: every row runs all T steps
    upstream: Optional[np.ndarray]  # R (T, N, H): the "sum" loss of a layer, else None
    upstream_state: tuple           # S_k (N, H) per state part: the "sum" loss, else ()
    targets: Optional[np.ndarray]   # (T, N) many_to_many, (N,) many_to_one, else None
    readout: tuple                  # ("W_hy", "b_y") for the cross-entropy losses, else ()


# ============================================================================ the two derivations

def _reference_loss(problem, arrays, backward=True):
    """L by the hand-derived reference on ``arrays`` (name -> array in the reference's layout:
    x (T, N, D) time-major or (N, D) for a cell, each state part (N, H)), in their dtype.

    Returns (L, outputs (T, N, H) (a cell: its new h as (1, N, H)), [final state part (N, H)],
    sum|terms of L|, gradients name -> array when ``backward``, else None).
    """
    target = problem.target
    reference = target.reference
    outputs, final_parts, cache = _reference_forward(problem, arrays)
    loss, magnitude, loss_backward = _loss_on_outputs(problem, arrays, outputs, final_parts)
    if not backward:
        return loss, outputs, final_parts, magnitude, None
    doutputs, dfinal_parts, gradients = loss_backward()
    if target.sequence:
        grads = reference.backward(doutputs, _as_state(dfinal_parts), cache)
        dx, dstate0, dparams = grads.dxs, grads.dstate0, grads.dparams
    else:
        dfinal_parts[0] = dfinal_parts[0] + doutputs[0]  # a cell's output is its new h
        dx, dstate0, dparams = reference.step_backward(_as_state(dfinal_parts), cache)
    gradients.update((name, dparams[key]) for name, key in target.param_names.items())
    gradients["x"] = dx
    gradients.update(zip(target.state_names, _as_parts(dstate0)))
    return loss, outputs, final_parts, magnitude, gradients


def _reference_forward(problem, arrays):
    """The reference's forward: (outputs (T, N, H) (a cell: its new h as (1, N, H)),
    [final state part (N, H)], cache)."""
    target = problem.target
    params = {key: arrays[name] for name, key in target.param_names.items()}
    state0 = _as_state([arrays[name] for name in target.state_names])
    if target.sequence:
        outputs, final, cache = target.reference.forward(arrays["x"], state0, params,
                                                         problem.lengths, **target.options)
        return outputs, _as_parts(final), cache
    final, cache = target.reference.step_forward(arrays["x"], state0, params, **target.options)
    final_parts = _as_parts(final)
    return final_parts[0][None], final_parts, cache


def _loss_on_outputs(problem, arrays, outputs, final_parts):
    """The loss on the reference's outputs (T, N, H) and final state parts.

    Returns (L, sum|terms of L|, backward), backward() giving (dL/doutputs (T, N, H),
    [dL/dfinal part (N, H)], {read-out name: gradient}).
    """
    if problem.loss == "sum":
        terms = [part * weight for part, weight in zip(final_parts, problem.upstream_state)]
        doutputs = np.zeros_like(outputs)
        if problem.upstream is not None:
            terms.append(outputs * problem.upstream)
            doutputs = problem.upstream
        loss = sum(np.sum(t) for t in terms)
        magnitude = sum(np.sum(np.abs(t)) for t in terms)
        return loss, magnitude, lambda: (doutputs, list(problem.upstream_state), {})
    W_hy, b_y = arrays["W_hy"], arrays["b_y"]
    if problem.loss == "many_to_many":
        loss, cache = losses.many_to_many_forward(outputs, W_hy, b_y, problem.targets)
        scored, loss_backward = outputs, losses.many_to_many_backward
    else:
        loss, cache = losses.many_to_one_forward(outputs, W_hy, b_y, problem.targets,
                                                 problem.lengths)
        scored, loss_backward = cache.scored.hs, losses.many_to_one_backward
    magnitude = loss + np.sum(np.abs(scored @ W_hy.T + b_y))  # log-sum-exp rounds like its scores

    def backward():
        doutputs, dW_hy, db_y = loss_backward(cache)
        return doutputs, [np.zeros_like(part) for part in final_parts], {"W_hy": dW_hy, "b_y": db_y}

    return loss, magnitude, backward


def _autograd_loss(module, problem, arrays):
    """L by the autograd engine: the module's own forward on ``arrays`` (reference layout, turned
    into the module's by Tensor ops, so that the gradients come back in the reference's layout).

    Returns (L, outputs (T, N, H), [final state part (N, H)], gradients name -> array).
    """
    target = problem.target
    own = dict(module.named_parameters())
    leaves = {name: own[name] for name in target.param_names}
    leaves.update((name, Tensor(array.copy(), requires_grad=True))
                  for name, array in arrays.items() if name not in leaves)
    x, parts = leaves["x"], [leaves[name] for name in target.state_names]
    if target.sequence:
        layer_x = x.transpose(0, 1) if module.batch_first else x
        hx = _as_state([part.reshape((1,) + part.shape) for part in parts])
        outputs, final = module(layer_x, hx, lengths=problem.lengths)
        outputs = outputs.transpose(0, 1) if module.batch_first else outputs
        final_parts = [part.reshape(part.shape[1:]) for part in _as_parts(final)]
    else:
        final_parts = _as_parts(module(x, _as_state(parts)))
        outputs = final_parts[0].reshape((1,) + final_parts[0].shape)
    if problem.loss == "sum":
        loss = sum((part * weight).sum() for part, weight in zip(final_parts, problem.upstream_state))
        if problem.upstream is not None:
            loss = loss + (outputs * problem.upstream).sum()
    else:
        scored = outputs
        if problem.loss == "many_to_one":
            steps, batch = outputs.shape[:2]
            last = np.full(batch, steps - 1) if problem.lengths is None else problem.lengths - 1
            scored = outputs[last, np.arange(batch)]
        logits = scored @ leaves["W_hy"].T + leaves["b_y"]
        loss = cross_entropy(logits, problem.targets, reduction="sum")
    names = list(leaves)
    found = autograd(loss, [leaves[name] for name in names], allow_unused=True)
    gradients = {name: np.zeros(leaves[name].shape, leaves[name].dtype) if g is None else g.data
                 for name, g in zip(names, found)}
    return loss.item(), outputs.data, [part.data for part in final_parts], gradients


def _as_parts(state):
    """A state h or (h, c) as a list of its parts."""
    return list(state) if isinstance(state, tuple) else [state]


def _as_state(parts):
    """A list of state parts as the state itself: h, or (h, c)."""
    return tuple(parts) if len(parts) == 2 else parts[0]


# ============================================================================ finite differences

def _finite_difference_step(problem, arrays):
    """FD_STEP, or less for a relu RNN whose running pre-activations a come near the kink at 0:
    min|a| / 50, so that the stencil's reach (2h) moves no a across 0 unless |da/d entry| > 25
    (smaller steps round more, which the resolution floor then accounts for)."""
    if problem.target.options.get("nonlinearity") != "relu":
        return FD_STEP
    _, _, cache = _reference_forward(problem, arrays)
    if problem.target.sequence:
        step_caches, running = cache.steps, cache.running
    else:
        step_caches, running = [cache], np.ones((1, len(cache.x)), dtype=bool)
    margin = min(np.abs(np.add(*project(step.x, step.h, step.params))[rows]).min()
                 for step, rows in zip(step_caches, running) if rows.any())
    return float(np.clip(margin / 50, MIN_FD_STEP, FD_STEP))


def _finite_differences(problem, arrays, name, entries, step):
    """dL/d arrays[name] at the flat indices ``entries``, by the five-point central stencil

        f'(a) = (8 (f(a + h) - f(a - h)) - (f(a + 2h) - f(a - 2h))) / 12h + O(h^4)

    on the reference forward (arrays are float64 and contiguous; each entry is perturbed in
    place and restored). Rounding: with f exact to delta, the stencil is exact to 1.5 delta / h.
    """
    flat = arrays[name].reshape(-1)
    grads = np.empty(len(entries))
    for k, index in enumerate(entries):
        saved = flat[index]
        f = {}
        for offset in (-2, -1, 1, 2):
            flat[index] = saved + offset * step
            f[offset] = _reference_loss(problem, arrays, backward=False)[0]
        flat[index] = saved
        grads[k] = (8 * (f[1] - f[-1]) - (f[2] - f[-2])) / (12 * step)
    return grads


def _relative_error(a, b, floor=0.0):
    """||a - b|| / max(||a|| + ||b||, floor) in the 2-norm (0 when both are 0): rel_error's measure
    over a whole tensor; see the module docstring."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = max(np.linalg.norm(a) + np.linalg.norm(b), floor)
    return float(np.linalg.norm(a - b) / scale) if scale > 0 else 0.0


# ============================================================================ the report

class CrosscheckRow(NamedTuple):
    """One differentiated tensor: its name, shape and the three relative errors (the FD ones None
    when finite differences were not run)."""

    name: str
    shape: tuple
    autograd_vs_hand: float
    autograd_vs_fd: Optional[float]
    hand_vs_fd: Optional[float]
    fd_entries: int          # how many entries the finite differences sampled (0: none)
    fd_unresolved: bool = False  # the gradient is below what finite differences resolve: its
                                 # FD errors are measured against that resolution (the floor)


class CrosscheckReport(NamedTuple):
    """What ``crosscheck`` found; ``str(report)`` is an aligned table with a header and verdict."""

    module: str              # e.g. "LSTM(5, 6)"
    dtype: np.dtype
    sizes: dict              # T (layers only), N, D, H
    loss: str
    lengths: Optional[tuple]
    forward_error: float     # outputs, final state and L: autograd vs hand-derived
    rows: list               # CrosscheckRow, one per parameter, x, initial state part, read-out
    tolerances: tuple        # (autograd vs hand-derived, against finite differences)
    fd_step: Optional[float]  # h of the finite differences, None when they were not run

    @property
    def max_error(self):
        """The largest autograd-vs-hand-derived gradient error."""
        return max(row.autograd_vs_hand for row in self.rows)

    def row_ok(self, row):
        hand, fd = self.tolerances
        return (row.autograd_vs_hand <= hand
                and all(error is None or error <= fd for error in (row.autograd_vs_fd, row.hand_vs_fd)))

    @property
    def ok(self):
        """Whether the forward and every row are within the tolerances."""
        return self.forward_error <= self.tolerances[0] and all(map(self.row_ok, self.rows))

    def __str__(self):
        sizes = " ".join(f"{key}={value}" for key, value in self.sizes.items())
        lengths = "" if self.lengths is None else f"  lengths {list(self.lengths)}"
        verdict = "OK" if self.ok else "FAILED"
        lines = [f"{self.module}  {self.dtype}  {sizes}{lengths}  loss {self.loss}: {verdict}",
                 f"forward (outputs, final state, loss) autograd vs hand-derived: "
                 f"{self.forward_error:.1e}"]
        header = ("gradient", "shape", "autograd vs hand", "autograd vs FD", "hand vs FD",
                  "FD entries")
        table, marks = [header], [""]
        for row in self.rows:
            star = "*" if row.fd_unresolved else ""
            fd_errors = ("-" if e is None else f"{e:.1e}{star}"
                         for e in (row.autograd_vs_fd, row.hand_vs_fd))
            entries = f"{row.fd_entries} of {int(np.prod(row.shape))}" if row.fd_entries else "-"
            table.append((row.name, str(row.shape), f"{row.autograd_vs_hand:.1e}", *fd_errors, entries))
            marks.append("" if self.row_ok(row) else "<- FAIL")
        widths = [max(len(cells[k]) for cells in table) for k in range(len(header))]
        for cells, mark in zip(table, marks):
            line = "  ".join(cell.ljust(width) for cell, width in zip(cells, widths))
            lines.append(f"{line}  {mark}".rstrip())
        hand, fd = self.tolerances
        lines.append(f"tolerances ({self.dtype}, relative errors in the 2-norm): {hand:.0e} "
                     f"autograd vs hand-derived, {fd:.0e} against finite differences")
        if self.fd_step is not None:
            lines.append(f"finite differences: five-point stencil in float64, h = {self.fd_step:.1e}")
        if any(row.fd_unresolved for row in self.rows):
            lines.append("* a gradient smaller than finite differences can resolve at this h: "
                         "measured against that resolution instead of its own size")
        return "\n".join(lines)


# ============================================================================ crosscheck

def crosscheck(module, x, state=None, lengths=None, upstream=None, finite_differences=True,
               loss="sum", samples=24, seed=0):
    """Check ``module``'s autograd gradients against its hand-derived reference and finite
    differences (see the module docstring); returns a CrosscheckReport.

    module    nn.RNNCell / LSTMCell / GRUCell, or a single-layer unidirectional nn.RNN / LSTM / GRU
    x         a cell: (N, D); a layer: (T, N, D), or (N, T, D) if module.batch_first;
              an ndarray or Tensor of the module's dtype (float32 or float64)
    state     the initial state, None for zeros; a cell: h (N, H), LSTMCell (h, c);
              a layer: h0 (1, N, H), LSTM (h0, c0)
    lengths   a layer only: (N,) ints in 1..T, each row's true length (None: all T)
    upstream  "sum" loss only, None to draw it from ``seed``: a cell: like its new state;
              a layer: (R like the outputs, S like h_n (1, N, H) or (h_n, c_n))
    loss      "sum", "many_to_many" or "many_to_one"
    samples   how many entries of each tensor the finite differences sample (all if fewer)
    seed      draws the upstream, the read-out and targets, and the sampled entries
    """
    target = _target(module)
    dtype = _module_dtype(module)
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {list(LOSSES)}, got {loss!r}")
    if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) or samples < 1:
        raise ValueError(f"samples must be a positive int, got {samples!r}")
    xs = _input(module, target, x, dtype)
    batch, hidden = xs.shape[-2], module.hidden_size
    if not target.sequence and lengths is not None:
        raise ValueError(f"lengths apply to sequences; a {type(module).__name__} runs one step, "
                         f"so pass lengths=None")
    if lengths is not None:
        lengths = check_lengths(lengths, xs.shape[0], batch).astype(np.int64)
    state_shape = (1, batch, hidden) if target.sequence else (batch, hidden)
    arrays = dict(module.state_dict())
    arrays["x"] = xs
    for name, part in zip(target.state_names,
                          _state_parts(state, "state", len(target.state_names), state_shape, dtype)):
        arrays[name] = part.reshape(batch, hidden)
    rng = np.random.default_rng(seed)
    problem = _problem(module, target, loss, lengths, upstream, rng, xs, dtype, arrays)

    hand_loss, hand_outputs, hand_final, _, hand = _reference_loss(problem, arrays)
    auto_loss, auto_outputs, auto_final, auto = _autograd_loss(module, problem, arrays)
    forward_error = max(_relative_error(a, b) for a, b in
                        zip([auto_loss, auto_outputs, *auto_final],
                            [hand_loss, hand_outputs, *hand_final]))
    tolerances = TOLERANCES[dtype]
    names = [*target.param_names, "x", *target.state_names, *problem.readout]
    if finite_differences:
        rows, fd_step = _rows_with_finite_differences(problem, arrays, names, auto, hand, samples,
                                                      rng, tolerances[1])
    else:
        rows = [CrosscheckRow(name, hand[name].shape, _relative_error(auto[name], hand[name]),
                              None, None, 0) for name in names]
        fd_step = None
    sizes = {"T": xs.shape[0]} if target.sequence else {}
    sizes.update(N=batch, D=xs.shape[-1], H=hidden)
    return CrosscheckReport(_describe(module, target), dtype, sizes, loss,
                            None if lengths is None else tuple(int(n) for n in lengths),
                            forward_error, rows, tolerances, fd_step)


def _rows_with_finite_differences(problem, arrays, names, auto, hand, samples, rng, tolerance):
    """One CrosscheckRow per name, with finite differences on ``samples`` entries drawn by
    ``rng`` (all when fewer) in float64; returns (rows, the step h)."""
    arrays64 = {name: np.array(array, dtype=np.float64) for name, array in arrays.items()}
    problem64 = _problem_as(problem, np.float64)
    magnitude = _reference_loss(problem64, arrays64, backward=False)[3]
    step = _finite_difference_step(problem64, arrays64)
    resolution = FD_ROUNDING * np.finfo(np.float64).eps * magnitude / step
    rows = []
    for name in names:
        grad = hand[name]
        count = min(samples, grad.size)
        entries = np.sort(rng.choice(grad.size, size=count, replace=False))
        fd = _finite_differences(problem64, arrays64, name, entries, step)
        floor = resolution * np.sqrt(count) / tolerance
        auto_fd, hand_fd = (_relative_error(g.reshape(-1)[entries], fd, floor)
                            for g in (auto[name], grad))
        unresolved = np.linalg.norm(grad.reshape(-1)[entries]) + np.linalg.norm(fd) < floor
        rows.append(CrosscheckRow(name, grad.shape, _relative_error(auto[name], grad), auto_fd,
                                  hand_fd, count, bool(unresolved)))
    return rows, step


# ============================================================================ inputs

def _module_dtype(module):
    dtypes = {param.dtype for param in module.parameters()}
    if len(dtypes) != 1:
        raise TypeError(f"crosscheck needs a module whose parameters share one dtype, got "
                        f"{sorted(map(str, dtypes))}")
    dtype = np.dtype(dtypes.pop())
    if dtype not in TOLERANCES:
        raise TypeError(f"crosscheck supports float32 and float64 modules, got {dtype}")
    return dtype


def _array(value, name, dtype, shape, layout=None):
    """``value`` (ndarray or Tensor) as a fresh ndarray of ``dtype`` and ``shape`` (None in
    ``shape``: any size; ``layout`` names the shape in errors), or a clear error."""
    data = value.data if isinstance(value, Tensor) else value
    if not isinstance(data, np.ndarray):
        raise TypeError(f"{name} must be an ndarray or Tensor, got {type(value).__name__}")
    if data.dtype != dtype:
        raise TypeError(f"{name} has dtype {data.dtype} but the module's parameters are {dtype}; "
                        f"convert one of them")
    if data.ndim != len(shape) or any(want not in (None, got) for got, want in zip(data.shape, shape)):
        layout = layout or "(" + ", ".join("?" if s is None else str(s) for s in shape) + ")"
        raise ValueError(f"{name} must have shape {layout}, got {data.shape}")
    return np.array(data)


def _input(module, target, x, dtype):
    """x as a time-major (T, N, D) array for a layer, (N, D) for a cell."""
    D, kind = module.input_size, type(module).__name__
    if not target.sequence:
        return _array(x, "x", dtype, (None, D), f"(N, {D}) for {kind} (a batch of one step)")
    layout = f"(N, T, {D}) for a batch_first {kind}" if module.batch_first else f"(T, N, {D}) for {kind}"
    xs = _array(x, "x", dtype, (None, None, D), layout)
    if 0 in xs.shape:
        raise ValueError(f"x must have at least one step and one row, got shape {xs.shape}")
    return np.ascontiguousarray(xs.transpose(1, 0, 2)) if module.batch_first else xs


def _state_parts(state, name, parts, shape, dtype):
    """``state`` (one array, or a tuple of ``parts`` arrays) as a list of arrays of ``shape``;
    None gives zeros."""
    if state is None:
        return [np.zeros(shape, dtype) for _ in range(parts)]
    if parts == 2 and not (isinstance(state, (tuple, list)) and len(state) == 2):
        raise TypeError(f"{name} must be a pair (h, c), each of shape {shape}, "
                        f"got {type(state).__name__}")
    pieces = state if parts == 2 else [state]
    part_names = [f"{name}[{k}]" for k in range(parts)] if parts == 2 else [name]
    return [_array(piece, piece_name, dtype, shape) for piece, piece_name in zip(pieces, part_names)]


def _problem(module, target, loss, lengths, upstream, rng, xs, dtype, arrays):
    """The loss's fixed data, from ``upstream`` or drawn from ``rng``; adds the read-out
    W_hy (C, H), b_y (C,) to ``arrays`` for the cross-entropy losses."""
    steps, batch = (xs.shape[0], xs.shape[1]) if target.sequence else (1, xs.shape[0])
    hidden, parts = module.hidden_size, len(target.state_names)
    state_shape = (1, batch, hidden) if target.sequence else (batch, hidden)
    if loss != "sum":
        if upstream is not None:
            raise ValueError(f"upstream is for the 'sum' loss; the {loss} loss has its own "
                             f"read-out and targets, so pass upstream=None")
        arrays["W_hy"] = rng.standard_normal((NUM_CLASSES, hidden)).astype(dtype)
        arrays["b_y"] = rng.standard_normal(NUM_CLASSES).astype(dtype)
        shape = (steps, batch) if loss == "many_to_many" else (batch,)
        targets = rng.integers(0, NUM_CLASSES, size=shape)
        return _Problem(target, loss, lengths, None, (), targets, ("W_hy", "b_y"))
    if upstream is None:
        R = rng.standard_normal((steps, batch, hidden)).astype(dtype) if target.sequence else None
        S = [rng.standard_normal((batch, hidden)).astype(dtype) for _ in range(parts)]
        return _Problem(target, loss, lengths, R, tuple(S), None, ())
    if target.sequence:
        if not (isinstance(upstream, (tuple, list)) and len(upstream) == 2):
            raise TypeError("upstream for a layer must be a pair (R like the outputs, S like h_n)")
        R, S = upstream
        output_shape = (batch, steps, hidden) if module.batch_first else (steps, batch, hidden)
        R = _array(R, "upstream[0] (like the outputs)", dtype, output_shape)
        R = np.ascontiguousarray(R.transpose(1, 0, 2)) if module.batch_first else R
        S = _state_parts(S, "upstream[1] (like the final state)", parts, state_shape, dtype)
    else:
        R, S = None, _state_parts(upstream, "upstream (like the new state)", parts, state_shape,
                                  dtype)
    return _Problem(target, loss, lengths, R, tuple(s.reshape(batch, hidden) for s in S), None, ())


def _problem_as(problem, dtype):
    """The problem with its floating arrays cast to ``dtype`` (float32 -> float64 is exact)."""
    return problem._replace(
        upstream=None if problem.upstream is None else problem.upstream.astype(dtype),
        upstream_state=tuple(s.astype(dtype) for s in problem.upstream_state))


def _describe(module, target):
    """e.g. "LSTM(5, 6)", "RNNCell(5, 6, nonlinearity='relu', bias=False)"."""
    extras = [f"{module.input_size}, {module.hidden_size}"]
    extras += [f"{key}={value!r}" for key, value in target.options.items()]
    if "bias_ih" not in target.param_names.values():
        extras.append("bias=False")
    if getattr(module, "batch_first", False):
        extras.append("batch_first=True")
    return f"{type(module).__name__}({', '.join(extras)})"


# ============================================================================ the CLI's check

CELL_NAMES = ("rnn", "rnn_relu", "rnn_sigmoid", "lstm", "gru")
_LAYER_OF = {"rnn": (nn.RNN, {"nonlinearity": "tanh"}), "rnn_relu": (nn.RNN, {"nonlinearity": "relu"}),
             "rnn_sigmoid": (nn.RNN, {"nonlinearity": "sigmoid"}), "lstm": (nn.LSTM, {}),
             "gru": (nn.GRU, {})}


def run_check(cells=("rnn", "lstm", "gru"), dtype="float64", seq_len=8, hidden=6, input_size=5,
              batch=3, seed=0, loss="sum", samples=24):
    """Cross-check single-layer layers on random data; what ``tinygrad-rnn check`` prints.

    cells: names from CELL_NAMES, one name, or "all". Each layer gets weights drawn from ``seed``
    (PyTorch's U(-1/sqrt(H), 1/sqrt(H))), x (T, N, D), a random initial state and lengths with a
    full row first and a short one (about T/3) last. Returns (text, ok): the reports' tables and
    a last line with the verdict; ok is True when every report is.
    """
    names = CELL_NAMES if cells == "all" else tuple(cells) if isinstance(cells, (tuple, list)) else (cells,)
    unknown = [name for name in names if name not in _LAYER_OF]
    if unknown or not names:
        raise ValueError(f"cells must be names from {list(CELL_NAMES)} or 'all', got {cells!r}")
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be float32 or float64, got {dtype!r}") from None
    if dtype not in TOLERANCES:
        raise TypeError(f"dtype must be float32 or float64, got {dtype}")
    sizes = {"seq_len": seq_len, "hidden": hidden, "input_size": input_size, "batch": batch}
    bad = {key: value for key, value in sizes.items()
           if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1}
    if bad:
        raise ValueError(f"sizes must be positive ints, got {bad}")
    reports = []
    for name in names:
        rng = np.random.default_rng(seed)
        layer, options = _LAYER_OF[name]
        module = layer(input_size, hidden, dtype=dtype, **options)
        bound = 1.0 / np.sqrt(hidden)
        module.load_state_dict({key: rng.uniform(-bound, bound, value.shape)
                                for key, value in module.state_dict().items()})
        x = rng.standard_normal((seq_len, batch, input_size)).astype(dtype)
        lengths = rng.integers(1, seq_len + 1, size=batch)
        lengths[0] = seq_len
        if batch > 1:
            lengths[-1] = max(1, seq_len // 3)
        parts = 2 if layer is nn.LSTM else 1
        state = [rng.standard_normal((1, batch, hidden)).astype(dtype) for _ in range(parts)]
        reports.append(crosscheck(module, x, _as_state(state), lengths, loss=loss, samples=samples,
                                  seed=seed))
    failed = [name for name, report in zip(names, reports) if not report.ok]
    verdict = (f"all {len(reports)} cross-check{'s' * (len(reports) > 1)} OK" if not failed
               else f"FAILED: {', '.join(failed)} ({len(failed)} of {len(reports)})")
    return "\n\n".join(map(str, reports)) + "\n\n" + verdict, not failed
