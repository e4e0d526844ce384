"""The cross-check of any recurrent cell: autograd vs a hand-derived reference vs finite differences.

``crosscheck(module, x, ...)`` checks an ``nn.Cell`` (one step), an ``nn.Recurrent`` over any cell
(a sequence, with ``lengths``) or a single-layer unidirectional RNN / LSTM / GRU. The module runs
by the autograd engine (the module itself); its cell's reference, the step derived by hand in
plain NumPy (``reference=``, an object with ``step_forward`` / ``step_backward`` as in
``bptt.sequence``; the built-in RNNCell, LSTMCell and GRUCell have theirs in bptt.rnn / lstm /
gru), runs through ``bptt.sequence_forward`` / ``sequence_backward``, the library's time loop, on
the cell's parameters by their own names. Without a reference (a custom cell, reference=None),
the check is two-way: autograd against finite differences, and the report says so. Both
differentiate the same scalar loss:

    "sum"           L = sum(outputs * R) + sum_k sum(final_state_k * S_k)
                    R (T, N, H) and S_k like the state's part k, drawn from the seed unless given;
                    a cell has no separate outputs, only its new state
    "many_to_many"  L = sum_t,n CE(h_t[n] W_hy^T + b_y, y_t[n])          y (T, N)
    "many_to_one"   L = sum_n CE(h_{len_n - 1}[n] W_hy^T + b_y, y[n])     y (N,)
                    (bptt.losses; a fixed random read-out W_hy (C, H), b_y (C,) and targets)

and finite differences of L give an independent answer for a random sample of the entries of
every parameter, the input x and the initial state (and, for the cross-entropy losses, the
read-out). Finite differences always run in float64 on a float64 copy of the data, whatever the
module's dtype (float32 has ~7 digits, too few to difference): the reference's forward when there
is one, else the module's own forward with its parameters swapped for float64 copies.

Where a row fails, the report says where (``CrosscheckRow.first_bad_step`` and ``where``). Both
sides have each time step's own contribution to a tied parameter's gradient: the reference's
``dparams_t`` (``sequence_backward(per_step=True)``), and autograd's through per-step aliases of
the parameters (``nn.recurrent.per_step_parameter_aliases``); for x, each step's row of dL/dx is
its own. ``first_bad_step`` is the last t (forward index: BPTT meets it first) whose contribution
disagrees. A derivation wrong in a parameter's step gradient disagrees from t = T-1 on; one wrong
only in the state gradient it passes back (dstate) is exact at T-1, and its error first shows at
t = T-2, in the step that receives that gradient. ``where`` names the gates whose blocks disagree
for the built-in cells (i, f, g, o / r, z, n) and otherwise the entries that disagree most.

Errors: each row compares two gradients g_a, g_b of one tensor (the FD ones on the sampled
entries only) by ``rel_error_norm``: the relative error of rel_error (cs231n), taken over the
tensor in the 2-norm rather than entry by entry:

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

Tolerances (every row, and with a reference the forward's outputs, final state and L, must be
within them for ``ok``):

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
from ..gradcheck import rel_error_norm
from ..nn.forward_recurrence import recurrence_of
from ..nn.recurrent import per_step_gradients, per_step_parameter_aliases
from ..tensor import Tensor, grad as autograd, no_grad
from . import gru, losses, lstm, rnn
from ._checks import check_lengths
from ._primitives import project
from .report import CrosscheckReport, CrosscheckRow
from .sequence import check_reference, sequence_backward, sequence_forward, state_of, state_parts

__all__ = ["CrosscheckReport", "CrosscheckRow", "LOSSES", "TOLERANCES", "crosscheck", "reference_of"]

LOSSES = ("sum", "many_to_many", "many_to_one")
TOLERANCES = {np.dtype(np.float64): (1e-10, 1e-6), np.dtype(np.float32): (1e-4, 1e-3)}
FD_STEP = 1e-4           # h of the five-point stencil, in float64
MIN_FD_STEP = 1e-9       # the smallest h, for a relu pre-activation (almost) at its kink
FD_ROUNDING = 4.0        # r = FD_ROUNDING * eps_64 * sum|terms of L| / h: one entry's resolution
                         # (the largest error measured over 450 random problems: 0.66 eps ... / h)
NUM_CLASSES = 4          # C of the cross-entropy read-out
STEP_FLOOR = 1e-3        # a step's contribution is judged against at least this share of the largest step's


# ============================================================================ what is checked

class _Target(NamedTuple):
    """What crosscheck needs to know about a module."""

    cell: object           # the nn.Cell whose step is checked
    recurrent: object      # the nn.Recurrent that unrolls it (None for a cell: one step)
    layer: bool            # a StackedRecurrent (RNN / LSTM / GRU): x and hx in its layout
    reference: object      # step_forward / step_backward, or None: a two-way check
    state_names: tuple     # the initial state's rows: ("h0",) or ("h0", "c0"); ("state0[0]", ...)
    state_shapes: tuple    # each state part's shape for N = 1, without the batch axis
    output_shape: tuple    # what cell.output gives per row (H'), without the batch axis
    param_names: dict      # module parameter name -> the cell's own name (the reference's key)
    gates: Optional[str]   # the built-in cells' gate blocks along a weight's rows ("ifgo", "rzn")

    @property
    def sequence(self):
        return self.recurrent is not None


# a built-in cell's hand-derived reference; the type must match exactly: a subclass may change the equations
_GATES = {nn.RNNCell: None, nn.LSTMCell: "ifgo", nn.GRUCell: "rzn"}


def reference_of(cell):
    """The hand-derived reference of a built-in cell (RNNCell with its nonlinearity, LSTMCell,
    GRUCell), or None for any other cell (a subclass included: it may change the equations)."""
    if type(cell) is nn.RNNCell:
        return rnn.reference(cell.nonlinearity)
    if type(cell) is nn.LSTMCell:
        return lstm.reference()
    if type(cell) is nn.GRUCell:
        return gru.reference()
    return None


def _target(module, reference):
    """The cell, the loop and the reference for ``module`` (a cell is checked as one step, the loop None);
    a clear error for anything unsupported."""
    name = type(module).__name__
    layer = isinstance(module, nn.StackedRecurrent)
    recurrent = recurrence_of(module, "crosscheck")
    cell = module if recurrent is None else recurrent.cell
    frozen = [key for key, param in module.named_parameters() if not param.requires_grad]
    if frozen:
        raise ValueError(f"crosscheck differentiates every parameter, but {frozen} of this {name} "
                         f"have requires_grad=False")
    if reference is None:
        reference = reference_of(cell)
    else:
        check_reference(reference)
        if type(cell).output is not nn.Cell.output:
            raise ValueError(f"{type(cell).__name__} overrides output(): a reference's outputs are its state's "
                             f"first part, so check this cell without a reference (two-way)")
    cell_names = {id(param): key for key, param in cell.named_parameters()}
    param_names = {key: cell_names[id(param)] for key, param in module.named_parameters()}
    with no_grad():
        first_state = cell.init_state(1)
        parts, output = state_parts(first_state), cell.output(first_state)
    if type(cell) in _GATES:
        state_names = ("h0", "c0")[:len(parts)]
    else:
        state_names = ("state0",) if len(parts) == 1 else tuple(f"state0[{k}]" for k in range(len(parts)))
    return _Target(cell, recurrent, layer, reference, state_names, tuple(p.shape[1:] for p in parts),
                   output.shape[1:], param_names, _GATES.get(type(cell)))


class _Problem(NamedTuple):
    """Everything the loss depends on besides the differentiated arrays."""

    target: _Target
    loss: str
    lengths: Optional[np.ndarray]   # (N,), or None: every row runs all T steps
    upstream: Optional[np.ndarray]  # R (T, N, H): the "sum" loss of a sequence, else None
    upstream_state: tuple           # S_k like state part k: the "sum" loss, else ()
    targets: Optional[np.ndarray]   # (T, N) many_to_many, (N,) many_to_one, else None
    readout: tuple                  # ("W_hy", "b_y") for the cross-entropy losses, else ()


# ============================================================================ the two derivations

def _reference_loss(problem, arrays, backward=True):
    """L by the hand-derived reference on ``arrays`` (name -> array in the reference's layout:
    x (T, N, D) time-major or (N, D) for a cell, each state part (N, ...)), in their dtype. A
    cell runs as a sequence of one step.

    Returns (L, outputs (T, N, H) (a cell: its new h as (1, N, H)), [final state part],
    sum|terms of L|, gradients name -> array and each step's own contributions name -> (T, ...)
    when ``backward``, else None and None).
    """
    target = problem.target
    outputs, final_parts, cache = _reference_forward(problem, arrays)
    loss, magnitude, loss_backward = _loss_on_outputs(problem, arrays, outputs, final_parts)
    if not backward:
        return loss, outputs, final_parts, magnitude, None, None
    doutputs, dfinal_parts, gradients = loss_backward()
    grads = sequence_backward(target.reference, doutputs, state_of(dfinal_parts), cache, per_step=True)
    steps = {}
    for name, key in target.param_names.items():
        gradients[name], steps[name] = grads.dparams[key], grads.dparams_per_step[key]
    gradients["x"] = grads.dxs if target.sequence else grads.dxs[0]
    steps["x"] = grads.dxs
    gradients.update(zip(target.state_names, state_parts(grads.dstate0)))
    return loss, outputs, final_parts, magnitude, gradients, steps


def _reference_forward(problem, arrays):
    """The reference's forward through ``sequence_forward``: (outputs (T, N, H) (a cell: its new h
    as (1, N, H)), [final state part], cache)."""
    target = problem.target
    params = {key: arrays[name] for name, key in target.param_names.items()}
    state0 = state_of([arrays[name] for name in target.state_names])
    xs = arrays["x"] if target.sequence else arrays["x"][None]
    outputs, final, cache = sequence_forward(target.reference, xs, state0, params, problem.lengths)
    return outputs, state_parts(final), cache


def _engine_forward(module, problem, arrays):
    """The module's own forward on ``arrays`` (reference layout), by the engine with no graph:
    (outputs (T, N, H), [final state part]) as arrays: the two-way check's finite differences."""
    with no_grad():
        outputs, final_parts = _run_module(module, problem, Tensor(arrays["x"]),
                                           [Tensor(arrays[name]) for name in problem.target.state_names])
    return outputs.data, [part.data for part in final_parts]


def _loss_on_outputs(problem, arrays, outputs, final_parts):
    """The loss on the outputs (T, N, H) and final state parts, in NumPy.

    Returns (L, sum|terms of L|, backward), backward() giving (dL/doutputs (T, N, H),
    [dL/dfinal part], {read-out name: gradient}).
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


def _run_module(module, problem, x, parts, step=None):
    """The module on x (reference layout: (T, N, D), or (N, D) for a cell) and the initial state
    parts (N, ...): -> (outputs (T, N, H') (a cell: (1, N, H')), [final state part]).

    ``step`` runs the sequence through ``Recurrent.run``'s per-step seam instead (op by op)."""
    target = problem.target
    if not target.sequence:
        final = module(x, state_of(parts))
        return target.cell.output(final).reshape((1,) + x.shape[:1] + (-1,)), state_parts(final)
    if step is not None:
        lengths = None if problem.lengths is None or np.all(problem.lengths == x.shape[0]) else problem.lengths
        outputs, final = target.recurrent.run(x, state_of(parts), lengths, step=step)
        return outputs, state_parts(final)
    batch_first = module.batch_first
    layer_x = x.transpose(0, 1) if batch_first else x
    if target.layer:
        hx = state_of([part.reshape((1,) + part.shape) for part in parts])
        outputs, final = module(layer_x, hx, lengths=problem.lengths)
        final_parts = [part.reshape(part.shape[1:]) for part in state_parts(final)]
    else:
        outputs, final = module(layer_x, state_of(parts), lengths=problem.lengths)
        final_parts = state_parts(final)
    return (outputs.transpose(0, 1) if batch_first else outputs), final_parts


def _loss_tensor(problem, leaves, outputs, final_parts):
    """L on the engine's outputs and final state parts (Tensors)."""
    if problem.loss == "sum":
        loss = sum((part * weight).sum() for part, weight in zip(final_parts, problem.upstream_state))
        if problem.upstream is not None:
            loss = loss + (outputs * problem.upstream).sum()
        return loss
    scored = outputs
    if problem.loss == "many_to_one":
        steps, batch = outputs.shape[:2]
        last = np.full(batch, steps - 1) if problem.lengths is None else problem.lengths - 1
        scored = outputs[last, np.arange(batch)]
    logits = scored @ leaves["W_hy"].T + leaves["b_y"]
    return cross_entropy(logits, problem.targets, reduction="sum")


def _autograd_loss(module, problem, arrays):
    """L by the autograd engine: the module's own forward on ``arrays`` (reference layout, turned
    into the module's by Tensor ops, so that the gradients come back in the reference's layout).

    Returns (L, outputs (T, N, H), [final state part], gradients name -> array).
    """
    target = problem.target
    own = dict(module.named_parameters())
    leaves = {name: own[name] for name in target.param_names}
    leaves.update((name, Tensor(array.copy(), requires_grad=True))
                  for name, array in arrays.items() if name not in leaves)
    outputs, final_parts = _run_module(module, problem, leaves["x"], [leaves[name] for name in target.state_names])
    loss = _loss_tensor(problem, leaves, outputs, final_parts)
    names = list(leaves)
    found = autograd(loss, [leaves[name] for name in names], allow_unused=True)
    gradients = {name: np.zeros(leaves[name].shape, leaves[name].dtype) if g is None else g.data
                 for name, g in zip(names, found)}
    return loss.item(), outputs.data, [part.data for part in final_parts], gradients


def _autograd_per_step(module, problem, arrays):
    """Each step's own contribution to every parameter's gradient, by autograd: the sequence run
    op by op through ``Recurrent.run``'s per-step seam with per-step aliases of the parameters
    (``per_step_parameter_aliases``). -> name -> (T, ...)."""
    target = problem.target
    leaves = {name: Tensor(array.copy()) for name, array in arrays.items() if name not in target.param_names}
    step, aliases = per_step_parameter_aliases(target.cell)
    outputs, final_parts = _run_module(module, problem, leaves["x"], [leaves[name] for name in target.state_names],
                                       step=step)
    loss = _loss_tensor(problem, leaves, outputs, final_parts)
    own = dict(module.named_parameters())
    per_step, _ = per_step_gradients(loss, aliases, [own[name] for name in target.param_names])
    return dict(zip(target.param_names, per_step))


# ============================================================================ finite differences

def _finite_difference_step(problem, arrays):
    """FD_STEP, or less for the built-in relu RNN whose running pre-activations a come near the kink
    at 0: min|a| / 50, so that the stencil's reach (2h) moves no a across 0 unless |da/d entry| > 25
    (smaller steps round more, which the resolution floor then accounts for)."""
    cell = problem.target.cell
    if type(cell) is not nn.RNNCell or cell.nonlinearity != "relu" or problem.target.reference is None:
        return FD_STEP
    _, _, cache = _reference_forward(problem, arrays)
    margin = min(np.abs(np.add(*project(step.x, step.h, step.params))[rows]).min()
                 for step, rows in zip(cache.steps, cache.running) if rows.any())
    return float(np.clip(margin / 50, MIN_FD_STEP, FD_STEP))


def _finite_differences(loss_of, arrays, name, entries, step):
    """dL/d arrays[name] at the flat indices ``entries``, by the five-point central stencil

        f'(a) = (8 (f(a + h) - f(a - h)) - (f(a + 2h) - f(a - 2h))) / 12h + O(h^4)

    on ``loss_of(arrays)`` (arrays are float64 and contiguous; each entry is perturbed in place and
    restored). Rounding: with f exact to delta, the stencil is exact to 1.5 delta / h.
    """
    flat = arrays[name].reshape(-1)
    grads = np.empty(len(entries))
    for k, index in enumerate(entries):
        saved = flat[index]
        f = {}
        for offset in (-2, -1, 1, 2):
            flat[index] = saved + offset * step
            f[offset] = loss_of(arrays)
        flat[index] = saved
        grads[k] = (8 * (f[1] - f[-1]) - (f[2] - f[-2])) / (12 * step)
    return grads


# ============================================================================ where a row goes wrong

def _first_bad_step(auto_steps, hand_steps, tolerance):
    """The last step t whose own contributions (auto_steps[t], hand_steps[t]) disagree by more than
    ``tolerance`` (rel_error_norm), each judged against its own size but at least STEP_FLOOR of the
    largest step's (so that rounding in a vanishing step's contribution is not a disagreement);
    None if none. A step holding a NaN or an infinity disagrees, and leaves no largest size to
    judge the others by: the last such step is the answer."""
    a = np.asarray(auto_steps, np.float64).reshape(len(auto_steps), -1)
    b = np.asarray(hand_steps, np.float64).reshape(len(hand_steps), -1)
    finite = np.isfinite(a).all(axis=1) & np.isfinite(b).all(axis=1)
    if not finite.all():
        return int(np.flatnonzero(~finite)[-1])
    largest = float((np.linalg.norm(a, axis=1) + np.linalg.norm(b, axis=1)).max())
    floor = min(STEP_FLOOR * largest, np.finfo(np.float64).max)  # a norm past ~1e154 overflows to inf
    bad = [t for t, (a_t, b_t) in enumerate(zip(a, b)) if not rel_error_norm(a_t, b_t, floor) <= tolerance]
    return bad[-1] if bad else None


def _where(name, auto, hand, gates, tolerance, is_parameter):
    """Where two gradients of one tensor disagree: the gates of a built-in cell's weight or bias
    (blocks of rows in i, f, g, o / r, z, n order) whose blocks disagree, worst first; otherwise
    the (at most three) entries that differ most."""
    difference = np.abs(np.asarray(auto, np.float64) - np.asarray(hand, np.float64))
    if gates and is_parameter and auto.ndim >= 1 and auto.shape[0] % len(gates) == 0:
        blocks = np.split(np.arange(auto.shape[0]), len(gates))
        errors = [rel_error_norm(auto[rows], hand[rows]) for rows in blocks]
        bad = sorted((error, gate) for error, gate in zip(errors, gates) if error > tolerance)[::-1]
        if bad:
            return ("gate " if len(bad) == 1 else "gates ") + ", ".join(gate for _, gate in bad)
    worst = np.argsort(difference.reshape(-1))[::-1][:3]
    worst = [index for index in worst if difference.reshape(-1)[index] > 0]
    if not worst:
        return ""
    entries = [str(tuple(int(i) for i in np.unravel_index(index, auto.shape))) for index in worst]
    return "entr" + ("y " if len(entries) == 1 else "ies ") + ", ".join(entries)


# ============================================================================ crosscheck

def crosscheck(module, x, state=None, lengths=None, upstream=None, finite_differences=True,
               loss="sum", samples=24, seed=0, reference=None):
    """Check ``module``'s autograd gradients against a hand-derived reference and finite
    differences (see the module docstring); returns a CrosscheckReport.

    module     any nn.Cell (one step), an nn.Recurrent over any cell (not reversed), or a
               single-layer unidirectional nn.RNN / LSTM / GRU
    x          a cell: (N, D); a sequence: (T, N, D), or (N, T, D) if module.batch_first;
               an ndarray or Tensor of the module's dtype (float32 or float64)
    state      the initial state, None for the cell's init_state (zeros); a cell or Recurrent:
               as the cell takes it (one (N, ...) array, or a tuple: LSTMCell (h, c));
               an RNN / LSTM / GRU layer: h0 (1, N, H), LSTM (h0, c0)
    lengths    a sequence only: (N,) ints in 1..T, each row's true length (None: all T)
    upstream   "sum" loss only, None to draw it from ``seed``: a cell: like its new state;
               a sequence: (R like the outputs, S like the final state; a layer's (1, N, H))
    loss       "sum", "many_to_many" or "many_to_one"
    samples    how many entries of each tensor the finite differences sample (all if fewer)
    seed       draws the upstream, the read-out and targets, and the sampled entries
    reference  the cell's step derived by hand (step_forward / step_backward, see bptt.sequence),
               with params keyed by the cell's own parameter names; None: the built-in cells'
               own, and for any other cell a two-way check (autograd vs finite differences)
    """
    given_reference = reference
    target = _target(module, reference)
    dtype = _module_dtype(module)
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {list(LOSSES)}, got {loss!r}")
    if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) or samples < 1:
        raise ValueError(f"samples must be a positive int, got {samples!r}")
    if target.reference is None and not finite_differences:
        raise ValueError(f"{type(target.cell).__name__} has no hand-derived reference, so finite differences "
                         f"are the only check: pass finite_differences=True, or a reference=")
    xs = _input(module, target, x, dtype)
    batch = xs.shape[-2]
    if not target.sequence and lengths is not None:
        raise ValueError(f"lengths apply to sequences; a {type(module).__name__} runs one step, "
                         f"so pass lengths=None")
    if lengths is not None:
        lengths = check_lengths(lengths, xs.shape[0], batch).astype(np.int64)
    state_shapes = [(batch,) + shape for shape in target.state_shapes]
    arrays = dict(module.state_dict())
    arrays["x"] = xs
    given = _state_parts(state, "state", state_shapes, dtype, target.layer)
    arrays.update(zip(target.state_names, given))
    rng = np.random.default_rng(seed)
    problem = _problem(module, target, loss, lengths, upstream, rng, xs, dtype, arrays, state_shapes)

    auto_loss, auto_outputs, auto_final, auto = _autograd_loss(module, problem, arrays)
    tolerances = TOLERANCES[dtype]
    names = [*target.param_names, "x", *target.state_names, *problem.readout]
    hand = steps = forward_error = None
    if target.reference is not None:
        hand_loss, hand_outputs, hand_final, _, hand, steps = _reference_loss(problem, arrays)
        forward_error = max(rel_error_norm(a, b) for a, b in
                            zip([auto_loss, auto_outputs, *auto_final], [hand_loss, hand_outputs, *hand_final]))
    if finite_differences:
        rows, fd_step = _rows_with_finite_differences(module, problem, arrays, names, auto, hand, samples, rng,
                                                      tolerances[1])
    else:
        rows = [CrosscheckRow(name, hand[name].shape, rel_error_norm(auto[name], hand[name]), None, None, 0)
                for name in names]
        fd_step = None
    if target.reference is not None:
        rows = _locate_failures(module, problem, arrays, rows, auto, hand, steps, tolerances[0])
    sizes = {"T": xs.shape[0]} if target.sequence else {}
    sizes.update(N=batch, D=xs.shape[-1], H=target.cell.hidden_size)
    return CrosscheckReport(_describe(module, target), dtype, sizes, loss,
                            None if lengths is None else tuple(int(n) for n in lengths),
                            forward_error, rows, tolerances, fd_step, _reference_name(target, given_reference))


def _reference_name(target, given):
    """How the report names the hand-derived side: "bptt.lstm", "yours: MyReference", None (two-way)."""
    if target.reference is None:
        return None
    if given is not None:
        return f"yours: {getattr(given, '__name__', type(given).__name__)}"
    return "bptt." + {nn.RNNCell: "rnn", nn.LSTMCell: "lstm", nn.GRUCell: "gru"}[type(target.cell)]


def _rows_with_finite_differences(module, problem, arrays, names, auto, hand, samples, rng, tolerance):
    """One CrosscheckRow per name, with finite differences on ``samples`` entries drawn by
    ``rng`` (all when fewer) in float64, of the reference's forward, or (no reference, ``hand``
    None) of the module's own with its parameters swapped for float64 copies; -> (rows, h)."""
    arrays64 = {name: np.array(array, dtype=np.float64) for name, array in arrays.items()}
    problem64 = _problem_as(problem, np.float64)
    params = dict(module.named_parameters())
    saved = {name: param.data for name, param in params.items()}
    try:
        if hand is None:  # the module itself in float64: its parameters are the arrays differenced
            for name, param in params.items():
                param.data = arrays64[name]

            def loss_of(values):
                outputs, final_parts = _engine_forward(module, problem64, values)
                return _loss_on_outputs(problem64, values, outputs, final_parts)[:2]
        else:
            def loss_of(values):
                return _reference_loss(problem64, values, backward=False)[::3][:2]
        magnitude = loss_of(arrays64)[1]
        step = _finite_difference_step(problem64, arrays64)
        resolution = FD_ROUNDING * np.finfo(np.float64).eps * magnitude / step
        rows = []
        for name in names:
            grad = auto[name] if hand is None else hand[name]
            count = min(samples, grad.size)
            entries = np.sort(rng.choice(grad.size, size=count, replace=False))
            fd = _finite_differences(lambda values: loss_of(values)[0], arrays64, name, entries, step)
            floor = resolution * np.sqrt(count) / tolerance
            floor = floor if np.isfinite(floor) else 0.0  # a NaN or infinite L: its differences fail anyway
            auto_fd = rel_error_norm(auto[name].reshape(-1)[entries], fd, floor)
            hand_fd = None if hand is None else rel_error_norm(grad.reshape(-1)[entries], fd, floor)
            unresolved = np.linalg.norm(grad.reshape(-1)[entries]) + np.linalg.norm(fd) < floor
            where = ""
            if hand is None and auto_fd > tolerance:  # two-way: the sampled entries that differ most
                sampled = np.zeros(grad.size)
                sampled[entries] = auto[name].reshape(-1)[entries] - fd
                where = _where(name, sampled.reshape(grad.shape), np.zeros(grad.shape), None, tolerance, False)
            rows.append(CrosscheckRow(name, grad.shape, None if hand is None else rel_error_norm(auto[name], grad),
                                      auto_fd, hand_fd, count, bool(unresolved), None, where))
    finally:
        for name, param in params.items():
            param.data = saved[name]
    return rows, step


def _locate_failures(module, problem, arrays, rows, auto, hand, steps, tolerance):
    """Rows whose autograd and reference disagree, with their first_bad_step and where; the
    per-step contributions of autograd are computed only when some parameter row needs them."""
    failing = [row for row in rows if row.autograd_vs_hand > tolerance]
    if not failing:
        return rows
    target = problem.target
    parameters = set(target.param_names)
    if not target.sequence:
        auto_steps = {name: auto[name][None] for name in parameters}
    elif parameters & {row.name for row in failing}:
        auto_steps = _autograd_per_step(module, problem, arrays)
    else:
        auto_steps = {}
    auto_steps["x"] = auto["x"] if target.sequence else auto["x"][None]
    located = []
    for row in rows:
        if row.autograd_vs_hand > tolerance:
            first = _first_bad_step(auto_steps[row.name], steps[row.name], tolerance) if row.name in steps else None
            row = row._replace(first_bad_step=first, where=_where(row.name, auto[row.name], hand[row.name],
                                                                   target.gates, tolerance, row.name in parameters))
        located.append(row)
    return located


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
    """x as a time-major (T, N, D) array for a sequence, (N, D) for a cell."""
    D, kind = getattr(target.cell, "input_size", None), type(module).__name__
    size = "D" if D is None else str(D)
    if not target.sequence:
        return _array(x, "x", dtype, (None, D), f"(N, {size}) for {kind} (a batch of one step)")
    layout = f"(N, T, {size}) for a batch_first {kind}" if module.batch_first else f"(T, N, {size}) for {kind}"
    xs = _array(x, "x", dtype, (None, None, D), layout)
    if 0 in xs.shape:
        raise ValueError(f"x must have at least one step and one row, got shape {xs.shape}")
    return np.ascontiguousarray(xs.transpose(1, 0, 2)) if module.batch_first else xs


def _state_parts(state, name, shapes, dtype, layer):
    """``state`` (one array, or a tuple of one array per part) as a list of arrays of ``shapes``
    (a layer's parts (1, N, H) are read as (N, H)); None gives zeros."""
    if state is None:
        return [np.zeros(shape, dtype) for shape in shapes]
    wanted = [(1,) + shape for shape in shapes] if layer else shapes
    if len(shapes) > 1 and not (isinstance(state, (tuple, list)) and len(state) == len(shapes)):
        pair = "a pair (h, c)" if len(shapes) == 2 else f"a tuple of {len(shapes)} arrays"
        raise TypeError(f"{name} must be {pair}, each of shape {wanted[0]}, got {type(state).__name__}")
    pieces = state if len(shapes) > 1 else [state]
    part_names = [f"{name}[{k}]" for k in range(len(shapes))] if len(shapes) > 1 else [name]
    return [_array(piece, piece_name, dtype, shape).reshape(plain)
            for piece, piece_name, shape, plain in zip(pieces, part_names, wanted, shapes)]


def _problem(module, target, loss, lengths, upstream, rng, xs, dtype, arrays, state_shapes):
    """The loss's fixed data, from ``upstream`` or drawn from ``rng``; adds the read-out
    W_hy (C, H), b_y (C,) to ``arrays`` for the cross-entropy losses."""
    steps, batch = (xs.shape[0], xs.shape[1]) if target.sequence else (1, xs.shape[0])
    if loss != "sum":
        if upstream is not None:
            raise ValueError(f"upstream is for the 'sum' loss; the {loss} loss has its own "
                             f"read-out and targets, so pass upstream=None")
        width = target.output_shape[-1]
        arrays["W_hy"] = rng.standard_normal((NUM_CLASSES, width)).astype(dtype)
        arrays["b_y"] = rng.standard_normal(NUM_CLASSES).astype(dtype)
        shape = (steps, batch) if loss == "many_to_many" else (batch,)
        targets = rng.integers(0, NUM_CLASSES, size=shape)
        return _Problem(target, loss, lengths, None, (), targets, ("W_hy", "b_y"))
    if upstream is None:
        R = rng.standard_normal((steps, batch) + target.output_shape).astype(dtype) if target.sequence else None
        S = [rng.standard_normal(shape).astype(dtype) for shape in state_shapes]
        return _Problem(target, loss, lengths, R, tuple(S), None, ())
    if target.sequence:
        if not (isinstance(upstream, (tuple, list)) and len(upstream) == 2):
            raise TypeError(f"upstream for a {'layer' if target.layer else 'sequence'} must be a pair "
                            f"(R like the outputs, S like the final state)")
        R, S = upstream
        output = target.output_shape
        output_shape = (batch, steps) + output if module.batch_first else (steps, batch) + output
        R = _array(R, "upstream[0] (like the outputs)", dtype, output_shape)
        R = np.ascontiguousarray(R.transpose(1, 0, 2)) if module.batch_first else R
        S = _state_parts(S, "upstream[1] (like the final state)", state_shapes, dtype, target.layer)
    else:
        R, S = None, _state_parts(upstream, "upstream (like the new state)", state_shapes, dtype, False)
    return _Problem(target, loss, lengths, R, tuple(S), None, ())


def _problem_as(problem, dtype):
    """The problem with its floating arrays cast to ``dtype`` (float32 -> float64 is exact)."""
    return problem._replace(
        upstream=None if problem.upstream is None else problem.upstream.astype(dtype),
        upstream_state=tuple(s.astype(dtype) for s in problem.upstream_state))


def _describe(module, target):
    """e.g. "LSTM(5, 6)", "RNNCell(5, 6, nonlinearity='relu', bias=False)", "Recurrent(MGUCell(3, 4))"."""
    cell = target.cell
    if type(cell) in _GATES:
        extras = [f"{cell.input_size}, {cell.hidden_size}"]
        if type(cell) is nn.RNNCell:
            extras.append(f"nonlinearity={cell.nonlinearity!r}")
        if cell.bias_ih is None:
            extras.append("bias=False")
        if target.layer and module.batch_first:
            extras.append("batch_first=True")
        described = f"{type(module if target.layer else cell).__name__}({', '.join(extras)})"
    else:
        described = f"{type(cell).__name__}({getattr(cell, 'input_size', '?')}, {cell.hidden_size})"
    if module is cell or target.layer:
        return described
    return f"Recurrent({described}{', batch_first=True' if module.batch_first else ''})"
