"""Jacobians through time: why gradients vanish or explode, as matrices.

One sequence x_0..x_{T-1} through a single-layer recurrent layer, s_t = cell(x_t, s_{t-1}) for
t = 0..T-1 from the initial state s_{-1}. The state s is a row vector of size S (as in docs/bptt.md
and the code: one sequence is one row): the state itself (S = H), or for a tuple state the
concatenation of its parts, each flattened, in order: for the LSTM s = (h, c), S = 2H. Jacobians
have a row per output and a column per input, J[i, j] = ∂out_i/∂in_j (the same matrices however
vectors are written; a gradient row g goes back through one as g J):

    steps[t]        = J_t = ∂s_t/∂s_{t-1}                   (S, S), J_0 w.r.t. the initial state
    through_time[t] = ∂s_{T-1}/∂s_t = J_{T-1} ⋯ J_{t+1}     (S, S), the identity for t = T-1

The chain rule gives the product; the 2-norm is submultiplicative, hence the bound

    ‖∂s_{T-1}/∂s_t‖₂ ≤ ∏_{k=t+1}^{T-1} ‖J_k‖₂                (the empty product, t = T-1, is 1)

which is tight only when each J_k's top right-singular vector meets the previous one's top
left-singular vector: the measured norm falls far below the bound when the directions turn.

Computed by the engine in reverse mode, all S rows of a Jacobian in one backward walk: the
sequence is replicated S times along the batch axis and row n's final state is seeded with the
basis row e_n, so the gradient the walk hands s_t in row n is e_n ∂s_{T-1}/∂s_t, row n of the
Jacobian (a hook on each step's state records it). The step Jacobians likewise come from one
cell call on all T·S rows (s_{t-1} and x_t repeated S times for each t) and a second walk; a
plain forward of the one sequence first gives the states s_{t-1} that call starts from.
"""
from dataclasses import dataclass

import numpy as np

from ..bptt.sequence import state_parts
from ..nn.cells import map_state, state_of
from ..nn.forward_recurrence import forward_recurrence, unroll_steps
from ..tensor import Tensor, grad
from .common import initial_state

__all__ = ["Jacobians", "jacobians"]


@dataclass
class Jacobians:
    """The Jacobians of one sequence's state through time (see the module docstring).

    through_time                  (T, S, S)  ∂s_{T-1}/∂s_t, the layer's dtype
    steps                         (T, S, S)  J_t = ∂s_t/∂s_{t-1}, the layer's dtype
    part_sizes                    tuple      the sizes of the state's parts, in the order they are
                                             concatenated into s (H for an RNN or GRU, (H, H) for (h, c))
    through_time_singular_values  (T, S)     float64, largest first
    step_singular_values          (T, S)     float64, largest first
    measured                      (T,)       ‖∂s_{T-1}/∂s_t‖₂, the largest singular value
    step_norms                    (T,)       ‖J_t‖₂
    bound                         (T,)       ∏_{k=t+1}^{T-1} ‖J_k‖₂ ≥ measured (inf if it overflows float64)
    """

    through_time: np.ndarray
    steps: np.ndarray
    part_sizes: tuple
    through_time_singular_values: np.ndarray
    step_singular_values: np.ndarray
    measured: np.ndarray
    step_norms: np.ndarray
    bound: np.ndarray


def jacobians(layer, x, state=None):
    """The Jacobians through time of one sequence (module docstring): a ``Jacobians``.

    layer: a single-layer, single-direction nn.RNN / LSTM / GRU, an nn.Recurrent (not reversed)
    over any cell, or a cell itself. x: one sequence, unbatched (T, D) or with a batch of one,
    (T, 1, D) ((1, T, D) if the layer is batch_first), a Tensor or ndarray. state: the initial
    state as the cell takes it, each part (1, H) (or (H,)); default the cell's ``init_state``.
    Nothing's ``.grad`` is touched. Cost: three forwards and two backward walks: a forward of the
    sequence (its states), a forward and a walk of the sequence with a batch of S, and one step
    with a batch of T·S and its walk. A Jacobian that overflows the dtype is a ValueError naming
    the step.
    """
    cell, xs, _ = forward_recurrence(layer, x, "jacobians")
    if xs.shape[1] != 1:
        raise ValueError(f"jacobians follows one sequence: x has a batch of {xs.shape[1]} (shape {tuple(x.shape)}); "
                         f"pass one row of it, or an unbatched (T, D) sequence")
    start = state_parts(initial_state(cell, xs, state))
    start = [part.reshape((1,) + part.shape) if part.ndim == 1 else part for part in start]
    if any(part.ndim == 0 or part.shape[0] != 1 for part in start):
        raise ValueError(f"jacobians follows one sequence: each part of state must be (1, H) or (H,), got shapes "
                         f"{[tuple(part.shape) for part in start]}")
    part_sizes = tuple(int(np.prod(part.shape[1:])) for part in start)
    states = _unrolled_states(cell, xs, start)
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow is reported below, as an error
        through_time = _through_time(cell, xs, start, part_sizes)
        steps = _step_jacobians(cell, xs, [[part.data for part in start]] + states[:-1], part_sizes)
    for name, found in (("∂s_{T-1}/∂s_t", through_time), ("J_t = ∂s_t/∂s_{t-1}", steps)):
        overflowed = np.flatnonzero(~np.isfinite(found).all(axis=(1, 2)))
        if overflowed.size:
            raise ValueError(f"jacobians: {name} is not finite from t = {overflowed.max()} back: it overflowed "
                             f"{found.dtype}; use a shorter sequence or smaller weights"
                             + ("" if found.dtype == np.float64 else ", or float64"))
    through_time_values, step_values = (np.linalg.svd(j.astype(np.float64), compute_uv=False)
                                        for j in (through_time, steps))
    return Jacobians(through_time, steps, part_sizes, through_time_values, step_values,
                     through_time_values[:, 0], step_values[:, 0], product_bound(step_values[:, 0]))


def product_bound(step_norms):
    """bound[t] = ∏_{k=t+1}^{T-1} step_norms[k] (bound[T-1] = 1), summed in logs: (T,) float64.

    A product beyond float64's range is inf (or 0), without a warning; a zero factor makes it 0.
    """
    with np.errstate(divide="ignore", over="ignore", under="ignore"):
        logs = np.log(np.asarray(step_norms, dtype=np.float64))
        after = np.concatenate([np.cumsum(logs[::-1])[::-1][1:], [0.0]])
        return np.exp(after)


def _unrolled_states(cell, xs, start):
    """The T states of the plain forward, each a list of parts (1, ...), as arrays."""
    states = unroll_steps(cell, xs, state_of(start, like=_structure(cell))).states
    return [[part.data for part in state_parts(s)] for s in states]


def _structure(cell):
    """A state of the cell's own structure (a tuple for a tuple state), for ``state_of``."""
    return cell.init_state(1)


def _replicated(parts, copies, requires_grad):
    """Each part (R, ...) repeated ``copies`` times along the batch, as fresh leaves: (R·copies, ...)."""
    return [Tensor(np.repeat(getattr(part, "data", part), copies, axis=0), requires_grad=requires_grad)
            for part in parts]


def _seeds(part_sizes, shapes, repeats, dtype):
    """The identity (S, S), tiled ``repeats`` times down the rows, cut into the parts' columns and shaped
    as the parts ((repeats·S, ...) each): row n of each block seeds the basis vector e_n."""
    identity = np.tile(np.eye(sum(part_sizes), dtype=dtype), (repeats, 1))
    columns = np.split(identity, np.cumsum(part_sizes)[:-1], axis=1)
    return [block.reshape(shape) for block, shape in zip(columns, shapes)]


def _through_time(cell, xs, start, part_sizes):
    """∂s_{T-1}/∂s_t for every t: (T, S, S), by one walk over the sequence replicated S times.

    Row block t < T-1 is read off the aliases of s_t that step t+1 consumes (``_alias_each_part``), so
    each part's gradient holds the other parts fixed; block T-1 is the identity.
    """
    size = sum(part_sizes)
    initial = _replicated(start, size, requires_grad=True)
    replicated_xs = Tensor(np.repeat(xs.data, size, axis=1))
    unrolled = unroll_steps(cell, replicated_xs, state_of(initial, like=_structure(cell)), enter=_alias_each_part)
    found = np.zeros((len(unrolled.states), size, size), dtype=initial[0].dtype)
    found[-1] = np.eye(size)
    offsets = np.concatenate([[0], np.cumsum(part_sizes)])
    for t, read in enumerate(unrolled.consumed[1:]):
        for k, part in enumerate(state_parts(read)):
            if part.requires_grad:
                part.register_hook(_row_recorder(found[t, :, offsets[k]:offsets[k + 1]]))
    final = state_parts(unrolled.states[-1])
    if not any(part.requires_grad for part in final):
        raise ValueError(f"{type(cell).__name__}: the final state depends on nothing that requires grad, so no "
                         f"Jacobian can be taken")
    seeds = _seeds(part_sizes, [part.shape for part in final], 1, found.dtype)
    roots = [(part, seed) for part, seed in zip(final, seeds) if part.requires_grad]
    grad([part for part, _ in roots], initial, [seed for _, seed in roots], allow_unused=True)
    return found


def _alias_each_part(t, state):
    """Step t reads each part p of s_{t-1} through its own alias reshape(p, p.shape): the gradient a walk
    hands the alias is ∂/∂s_{t-1} with the other parts held fixed (for an LSTM, c_{t-1}'s alias does not
    see the path c_{t-1} -> h_{t-1}, which s_{t-1}'s own c does)."""
    return map_state(lambda part: part.reshape(part.shape), state)


def _row_recorder(columns):
    """A hook writing the gradient (S, ...) of one state part into ``columns`` (S, its size)."""
    def record(gradient):
        columns[...] = gradient.reshape(columns.shape)
    return record


def _step_jacobians(cell, xs, previous, part_sizes):
    """J_t = ∂s_t/∂s_{t-1} for every t: (T, S, S), by one cell call on T·S rows and one walk.

    previous[t]: s_{t-1} as a list of arrays (1, ...), one per part. Rows t·S .. t·S+S-1 hold s_{t-1} and x_t.
    """
    size, steps = sum(part_sizes), xs.shape[0]
    stacked = [np.concatenate([state[k] for state in previous]) for k in range(len(part_sizes))]
    before = _replicated(stacked, size, requires_grad=True)
    inputs = Tensor(np.repeat(xs.data[:, 0], size, axis=0))
    after = [part for part in state_parts(cell(inputs, state_of(before, like=_structure(cell))))]
    seeds = _seeds(part_sizes, [part.shape for part in after], steps, before[0].dtype)
    roots = [(part, seed) for part, seed in zip(after, seeds) if part.requires_grad]
    found = grad([part for part, _ in roots], before, [seed for _, seed in roots], allow_unused=True)
    rows = [np.zeros((steps * size, n), before[0].dtype) if g is None else g.data.reshape(steps * size, n)
            for g, n in zip(found, part_sizes)]
    return np.concatenate(rows, axis=1).reshape(steps, size, size)
