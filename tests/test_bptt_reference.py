"""The hand-derived BPTT references (tinygrad_rnn.bptt) against independent computations.

Every gradient is compared in float64 with central finite differences of a scalar loss
    L = sum(outputs * R) + sum(final_state * S)     (S has one part per state part)
so the backward gets doutputs = R and dfinal_state = S. The per-step contributions and the total
dL/dh_t are checked against a loop written here by hand, one row at a time over its own length,
with its own weights at every step and a perturbation ("kick") added to the state after each step.
"""
import contextlib
import functools
import warnings
from typing import NamedTuple

import numpy as np
import pytest
from hypothesis import assume, example, given, settings, strategies as st

from tinygrad_rnn import rel_error_norm
from tinygrad_rnn.bptt import BPTTGrads, gru, losses, lstm, rnn
from tinygrad_rnn.bptt._primitives import sigmoid
from tinygrad_rnn.bptt.sequence import state_of, state_parts

EPS = 1e-4          # finite-difference step (five-point stencil)
TOLERANCE = 1e-6    # relative error allowed against finite differences
FAST = settings(max_examples=12, deadline=None)


# ----------------------------------------------------------------------------- finite differences

def numerical_gradient(f, array):
    """Five-point central differences of the scalar f() with respect to every entry of `array`,
    which is perturbed in place and restored:
        f'(x) = (8 (f(x + h) - f(x - h)) - (f(x + 2h) - f(x - 2h))) / 12h + O(h^4),
    differences first, so that an entry f does not depend on gets exactly 0.
    With h = 1e-4 the truncation error is ~1e-16 and the rounding error ~1e-12 |f|, so even a
    small gradient is measured to ~1e-8 relative or better (plain central differences: ~1e-10 |f|).
    """
    grad = np.zeros_like(array)
    for index in np.ndindex(array.shape):
        saved = array[index]
        f_at = {}  # offset in steps of h -> f
        for offset in (-2, -1, 1, 2):
            array[index] = saved + offset * EPS
            f_at[offset] = f()
        array[index] = saved
        grad[index] = (8 * (f_at[1] - f_at[-1]) - (f_at[2] - f_at[-2])) / (12 * EPS)
    return grad


def assert_matches(analytic, numeric, what):
    error = rel_error_norm(analytic, numeric)
    assert error < TOLERANCE, f"{what}: relative error {error:.2e}"


@contextlib.contextmanager
def no_overflow():
    """Any warning, overflow, division by zero or invalid operation raises. Underflow is let be:
    exp(-1000) = 0 is the correctly rounded value, and stable formulas rely on it."""
    with warnings.catch_warnings(), np.errstate(over="raise", divide="raise", invalid="raise",
                                                under="ignore"):
        warnings.simplefilter("error")
        yield


# ----------------------------------------------------------------------------- cells and problems

class Cell(NamedTuple):
    name: str
    module: object
    gates: int
    state_parts: int       # 1: h; 2: (h, c)
    options: dict          # extra keywords of step_forward / forward

    def step(self, x, state, params):
        return self.module.step_forward(x, state, params, **self.options)

    def forward(self, xs, state0, params, lengths=None):
        return self.module.forward(xs, state0, params, lengths, **self.options)


CELLS = [
    Cell("rnn-tanh", rnn, 1, 1, {"nonlinearity": "tanh"}),
    Cell("rnn-relu", rnn, 1, 1, {"nonlinearity": "relu"}),
    Cell("rnn-sigmoid", rnn, 1, 1, {"nonlinearity": "sigmoid"}),
    Cell("lstm", lstm, 4, 2, {}),
    Cell("gru", gru, 3, 1, {}),
]
each_cell = pytest.mark.parametrize("cell", CELLS, ids=[cell.name for cell in CELLS])


class Problem(NamedTuple):
    batch: int
    steps: int
    input_size: int
    hidden_size: int
    bias: str              # "present", "absent" (no keys) or "none" (keys set to None)
    lengths: tuple
    seed: int


@st.composite
def problems(draw):
    batch, steps = draw(st.integers(1, 3)), draw(st.integers(1, 4))
    return Problem(batch, steps, draw(st.integers(1, 3)), draw(st.integers(1, 3)),
                   draw(st.sampled_from(["present", "absent", "none"])),
                   tuple(draw(st.lists(st.integers(1, steps), min_size=batch, max_size=batch))),
                   draw(st.integers(0, 2**32 - 1)))


# Always tried: a length-1 row among longer ones, and every row running the whole sequence.
SHORT_ROW = Problem(3, 4, 2, 3, "present", (1, 4, 2), 0)
ALL_EQUAL = Problem(2, 3, 2, 2, "absent", (3, 3), 1)


def for_each_cell_and_problem(test):
    """Run test(cell, problem) for every cell, on drawn problems and always on the two above."""
    test = given(problem=problems())(example(problem=ALL_EQUAL)(example(problem=SHORT_ROW)(test)))
    return each_cell(FAST(test))


class Arrays(NamedTuple):
    xs: np.ndarray         # (T, N, D)
    state0: object         # like the state
    params: dict
    R: np.ndarray          # (T, N, H) weights of the outputs in the loss
    S: object              # like the state: weights of the final state in the loss


def make_arrays(cell, problem):
    rng = np.random.default_rng(problem.seed)
    rows, hidden = cell.gates * problem.hidden_size, problem.hidden_size
    params = {"weight_ih": rng.normal(0, 0.6, (rows, problem.input_size)),
              "weight_hh": rng.normal(0, 0.6, (rows, hidden))}
    if problem.bias == "present":
        params["bias_ih"], params["bias_hh"] = rng.normal(0, 0.5, rows), rng.normal(0, 0.5, rows)
    elif problem.bias == "none":
        params["bias_ih"] = params["bias_hh"] = None
    state_shape = (problem.batch, hidden)
    state0 = state_of([rng.normal(size=state_shape) for _ in range(cell.state_parts)])
    S = state_of([rng.normal(size=state_shape) for _ in range(cell.state_parts)])
    xs = rng.normal(size=(problem.steps, problem.batch, problem.input_size))
    R = rng.normal(size=(problem.steps,) + state_shape)
    return Arrays(xs, state0, params, R, S)


def weighted_sum(state, weights):
    """sum over the parts of state * weights."""
    return sum(np.sum(p * w) for p, w in zip(state_parts(state), state_parts(weights)))


def sequence_loss(cell, arrays, lengths):
    outputs, final_state, _ = cell.forward(arrays.xs, arrays.state0, arrays.params, lengths)
    return np.sum(outputs * arrays.R) + weighted_sum(final_state, arrays.S)


def unrolled_loss(cell, arrays, lengths, step_params, kicks):
    """The sequence loss by hand: row n runs its own lengths[n] steps, unmasked, step t with
    step_params[t]; kicks[t, k] (N, H) is added to state part k after step t (past a row's end, to
    its frozen state), before the output is read."""
    total = 0.0
    for n, length in enumerate(lengths):
        parts = [part[n:n + 1] for part in state_parts(arrays.state0)]
        for t in range(len(step_params)):
            if t < length:
                new_state, _ = cell.step(arrays.xs[t, n:n + 1], state_of(parts), step_params[t])
                parts = state_parts(new_state)
            parts = [part + kicks[t, k, n] for k, part in enumerate(parts)]
            if t < length:
                total += np.sum(parts[0] * arrays.R[t, n])
        total += sum(np.sum(part * weights[n]) for part, weights in
                     zip(parts, state_parts(arrays.S)))
    return total


def far_from_relu_kinks(cell, arrays, lengths):
    """False when the relu RNN has a running row's pre-activation within 1e-2 of 0, where the
    finite differences (steps of at most 2e-4) could straddle the kink; True for any other cell."""
    if cell.options.get("nonlinearity") != "relu":
        return True
    params = arrays.params
    outputs, _, _ = cell.forward(arrays.xs, arrays.state0, params, lengths)
    h_before = np.concatenate([arrays.state0[None], outputs[:-1]])  # a running row's h_{t-1}
    pre = arrays.xs @ params["weight_ih"].T + h_before @ params["weight_hh"].T
    if params.get("bias_ih") is not None:
        pre = pre + params["bias_ih"] + params["bias_hh"]
    running = np.arange(len(pre))[:, None] < np.asarray(lengths)
    return np.abs(pre[running]).min() > 1e-2


# ----------------------------------------------------------------------------- steps

@for_each_cell_and_problem
def test_step_backward_matches_finite_differences(cell, problem):
    arrays = make_arrays(cell, problem)
    assume(far_from_relu_kinks(cell, arrays, (1,) * problem.batch))
    x, state = arrays.xs[0], arrays.state0

    def loss():
        new_state, _ = cell.step(x, state, arrays.params)
        return weighted_sum(new_state, arrays.S)

    _, cache = cell.step(x, state, arrays.params)
    dx, dstate, dparams = cell.module.step_backward(arrays.S, cache)
    assert_matches(dx, numerical_gradient(loss, x), "dx")
    for k, (part, dpart) in enumerate(zip(state_parts(state), state_parts(dstate))):
        assert_matches(dpart, numerical_gradient(loss, part), f"dstate part {k}")
    assert dparams.keys() == arrays.params.keys()
    for name, param in arrays.params.items():
        if param is None:
            assert dparams[name] is None
        else:
            assert_matches(dparams[name], numerical_gradient(loss, param), name)


# ----------------------------------------------------------------------------- sequences

@for_each_cell_and_problem
def test_sequence_backward_matches_finite_differences(cell, problem):
    arrays = make_arrays(cell, problem)
    assume(far_from_relu_kinks(cell, arrays, problem.lengths))
    loss = functools.partial(sequence_loss, cell, arrays, problem.lengths)
    _, _, cache = cell.forward(arrays.xs, arrays.state0, arrays.params, problem.lengths)
    grads = cell.module.backward(arrays.R, arrays.S, cache)

    assert isinstance(grads, BPTTGrads)
    assert grads.dparams_per_step is None and grads.dh is None and grads.dc is None
    assert_matches(grads.dxs, numerical_gradient(loss, arrays.xs), "dxs")
    for k, (part, dpart) in enumerate(zip(state_parts(arrays.state0),
                                          state_parts(grads.dstate0))):
        assert_matches(dpart, numerical_gradient(loss, part), f"dstate0 part {k}")
    assert grads.dparams.keys() == arrays.params.keys()
    for name, param in arrays.params.items():
        if param is None:
            assert grads.dparams[name] is None
        else:
            assert_matches(grads.dparams[name], numerical_gradient(loss, param), name)


@for_each_cell_and_problem
def test_per_step_contributions_and_dh_match_a_hand_unrolled_loop(cell, problem):
    arrays = make_arrays(cell, problem)
    assume(far_from_relu_kinks(cell, arrays, problem.lengths))
    _, _, cache = cell.forward(arrays.xs, arrays.state0, arrays.params, problem.lengths)
    grads = cell.module.backward(arrays.R, arrays.S, cache, per_step=True)

    step_params = [{name: None if p is None else p.copy() for name, p in arrays.params.items()}
                   for _ in range(problem.steps)]
    kicks = np.zeros((problem.steps, cell.state_parts, problem.batch, problem.hidden_size))
    loss = functools.partial(unrolled_loss, cell, arrays, problem.lengths, step_params, kicks)

    for name, param in arrays.params.items():
        if param is None:
            assert grads.dparams_per_step[name] is None
            continue
        per_step = grads.dparams_per_step[name]
        assert per_step.shape == (problem.steps,) + param.shape
        np.testing.assert_allclose(per_step.sum(axis=0), grads.dparams[name], rtol=1e-12, atol=1e-12)
        for t in range(problem.steps):
            assert_matches(per_step[t], numerical_gradient(loss, step_params[t][name]),
                           f"{name} at step {t}")

    expected = np.stack([grads.dh, grads.dc], axis=1) if cell.state_parts == 2 else grads.dh[:, None]
    if cell.state_parts == 1:
        assert grads.dc is None
    assert_matches(expected, numerical_gradient(loss, kicks), "dh (and dc) per step")


@for_each_cell_and_problem
def test_rows_stop_at_their_lengths(cell, problem):
    arrays = make_arrays(cell, problem)
    outputs, final_state, _ = cell.forward(arrays.xs, arrays.state0, arrays.params, problem.lengths)
    for n, length in enumerate(problem.lengths):
        row_state0 = state_of([part[n:n + 1] for part in state_parts(arrays.state0)])
        row_outputs, row_final, _ = cell.forward(arrays.xs[:length, n:n + 1], row_state0,
                                                 arrays.params)
        np.testing.assert_allclose(outputs[:length, n], row_outputs[:, 0], rtol=1e-13, atol=1e-15)
        assert np.all(outputs[length:, n] == 0.0)
        for part, row_part in zip(state_parts(final_state), state_parts(row_final)):
            np.testing.assert_allclose(part[n], row_part[0], rtol=1e-13, atol=1e-15)


@each_cell
def test_full_lengths_none_state0_and_none_dfinal_mean_the_defaults(cell):
    problem = ALL_EQUAL
    arrays = make_arrays(cell, problem)
    zeros = state_of([np.zeros_like(p) for p in state_parts(arrays.state0)])
    outputs, final_state, cache = cell.forward(arrays.xs, zeros, arrays.params, problem.lengths)
    default_outputs, default_final, default_cache = cell.forward(arrays.xs, None, arrays.params)
    np.testing.assert_array_equal(outputs, default_outputs)
    for part, default_part in zip(state_parts(final_state), state_parts(default_final)):
        np.testing.assert_array_equal(part, default_part)

    zero_dfinal = state_of([np.zeros_like(p) for p in state_parts(arrays.S)])
    grads = cell.module.backward(arrays.R, zero_dfinal, cache)
    default_grads = cell.module.backward(arrays.R, None, default_cache)
    np.testing.assert_array_equal(grads.dxs, default_grads.dxs)
    for part, default_part in zip(state_parts(grads.dstate0),
                                  state_parts(default_grads.dstate0)):
        np.testing.assert_array_equal(part, default_part)


# ----------------------------------------------------------------------------- losses

class ReadoutCase(NamedTuple):
    hs: np.ndarray
    W_hy: np.ndarray
    b_y: np.ndarray
    targets: np.ndarray    # (T, N)
    lengths: np.ndarray    # (N,)


@st.composite
def readout_cases(draw):
    steps, batch = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    hidden, classes = draw(st.integers(1, 3)), draw(st.integers(1, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return ReadoutCase(rng.normal(size=(steps, batch, hidden)), rng.normal(size=(classes, hidden)),
                       rng.normal(size=classes), rng.integers(0, classes, (steps, batch)),
                       rng.integers(1, steps + 1, batch))


def naive_cross_entropy(h, W_hy, b_y, target):
    """-log softmax(h W_hy^T + b_y)[target] for one state, straight from the definition."""
    scores = W_hy @ h + b_y
    return -np.log(np.exp(scores[target]) / np.exp(scores).sum())


@FAST
@given(case=readout_cases())
def test_many_to_many_loss_and_gradients(case):
    def loss():
        return losses.many_to_many_forward(case.hs, case.W_hy, case.b_y, case.targets)[0]

    expected = sum(naive_cross_entropy(case.hs[t, n], case.W_hy, case.b_y, case.targets[t, n])
                   for t, n in np.ndindex(case.targets.shape))
    np.testing.assert_allclose(loss(), expected, rtol=1e-12)
    _, cache = losses.many_to_many_forward(case.hs, case.W_hy, case.b_y, case.targets)
    dhs, dW_hy, db_y = losses.many_to_many_backward(cache)
    assert_matches(dhs, numerical_gradient(loss, case.hs), "dhs")
    assert_matches(dW_hy, numerical_gradient(loss, case.W_hy), "dW_hy")
    assert_matches(db_y, numerical_gradient(loss, case.b_y), "db_y")


@FAST
@given(case=readout_cases(), use_lengths=st.booleans())
def test_many_to_one_loss_and_gradients(case, use_lengths):
    targets = case.targets[0]
    lengths = case.lengths if use_lengths else None
    last_steps = case.lengths - 1 if use_lengths else np.full(len(targets), len(case.hs) - 1)

    def loss():
        return losses.many_to_one_forward(case.hs, case.W_hy, case.b_y, targets, lengths)[0]

    expected = sum(naive_cross_entropy(case.hs[last_steps[n], n], case.W_hy, case.b_y, targets[n])
                   for n in range(len(targets)))
    np.testing.assert_allclose(loss(), expected, rtol=1e-12)
    _, cache = losses.many_to_one_forward(case.hs, case.W_hy, case.b_y, targets, lengths)
    dhs, dW_hy, db_y = losses.many_to_one_backward(cache)
    assert_matches(dhs, numerical_gradient(loss, case.hs), "dhs")
    assert_matches(dW_hy, numerical_gradient(loss, case.W_hy), "dW_hy")
    assert_matches(db_y, numerical_gradient(loss, case.b_y), "db_y")


def test_losses_stay_finite_at_huge_scores():
    hs = np.array([[[1000.0, -1000.0]]])  # (T=1, N=1, H=2)
    W_hy, b_y = np.eye(2), np.zeros(2)
    with no_overflow():
        loss, cache = losses.many_to_many_forward(hs, W_hy, b_y, np.array([[1]]))
        dhs, _, _ = losses.many_to_many_backward(cache)
    assert loss == pytest.approx(2000.0)  # -log softmax = 1000 - (-1000) up to exp(-2000)
    np.testing.assert_allclose(dhs[0, 0], [1.0, -1.0])


# ----------------------------------------------------------------------------- stability


def test_sigmoid_is_exact_and_silent_at_the_extremes():
    with no_overflow():
        np.testing.assert_array_equal(sigmoid(np.array([-1000.0, 1000.0])), [0.0, 1.0])
        moderate = np.linspace(-30, 30, 61)
        np.testing.assert_allclose(sigmoid(moderate), 1 / (1 + np.exp(-moderate)), rtol=1e-15)


@each_cell
def test_cells_are_silent_at_huge_preactivations(cell):
    arrays = make_arrays(cell, SHORT_ROW)
    xs = 1000.0 * np.sign(arrays.xs)
    with no_overflow():
        outputs, _, cache = cell.forward(xs, arrays.state0, arrays.params, SHORT_ROW.lengths)
        grads = cell.module.backward(arrays.R, arrays.S, cache)
    assert np.all(np.isfinite(outputs)) and np.all(np.isfinite(grads.dxs))


# ----------------------------------------------------------------------------- bad input

def _bad_inputs():
    """name -> (call, error type, message pattern) for input that must be refused."""
    arrays = make_arrays(CELLS[0], SHORT_ROW)            # RNN: T = 4, N = 3, D = 2, H = 3
    xs, h0, params, R = arrays.xs, arrays.state0, arrays.params, arrays.R
    lstm_arrays = make_arrays(CELLS[3], SHORT_ROW)
    _, _, rnn_cache = rnn.forward(xs, h0, params)
    _, _, lstm_cache = lstm.forward(lstm_arrays.xs, None, lstm_arrays.params)
    W_hy, b_y = np.ones((2, 3)), np.zeros(2)             # C = 2 classes read from R as hs

    def rnn_with(**changes):
        return lambda: rnn.forward(xs, h0, {**params, **changes})

    return {
        "xs not 3-d": (lambda: rnn.forward(xs[0], h0, params),
                       ValueError, r"xs must have shape \(T, N, D\)"),
        "xs of ints": (lambda: rnn.forward(xs.astype(int), h0, params),
                       TypeError, "xs must be a floating"),
        "length 0": (lambda: rnn.forward(xs, h0, params, [0, 1, 1]),
                     ValueError, r"lengths must lie in 1\.\.4"),
        "length past T": (lambda: rnn.forward(xs, h0, params, [5, 1, 1]),
                          ValueError, r"got \[5\]"),
        "lengths count": (lambda: rnn.forward(xs, h0, params, [1, 1]),
                          ValueError, r"lengths must have shape \(3,\)"),
        "float lengths": (lambda: rnn.forward(xs, h0, params, [1.0, 2.0, 3.0]),
                          TypeError, "lengths must be integers"),
        "state0 shape": (lambda: rnn.forward(xs, h0[:2], params),
                         ValueError, r"state must have shape \(3, 3\)"),
        "lstm state0 not a pair": (
            lambda: lstm.forward(lstm_arrays.xs, lstm_arrays.state0[0], lstm_arrays.params),
            TypeError, "state must be a tuple of 2 arrays"),
        "missing weight": (rnn_with(weight_hh=None), ValueError, "needs 'weight_hh'"),
        "unknown key": (rnn_with(weight=params["weight_ih"]), ValueError, "unknown keys"),
        "input width": (rnn_with(weight_ih=params["weight_ih"][:, :1]),
                        ValueError, r"x must have shape \(N, 1\)"),
        "gate rows": (lambda: gru.forward(xs, None, params),
                      ValueError, r"weight_hh'\] must have shape \(3\*H, H\)"),
        "one bias": (rnn_with(bias_hh=None), ValueError, "both bias_ih and bias_hh"),
        "bias shape": (rnn_with(bias_hh=np.zeros(2)),
                       ValueError, r"bias_hh'\] must have shape \(3,\)"),
        "nonlinearity": (lambda: rnn.forward(xs, h0, params, nonlinearity="gelu"),
                         ValueError, "nonlinearity must be one of"),
        "doutputs shape": (lambda: rnn.backward(R[:2], None, rnn_cache),
                           ValueError, "doutputs must have the outputs' shape"),
        "dfinal shape": (lambda: rnn.backward(R, h0[:1], rnn_cache),
                         ValueError, r"dfinal_state must have shape \(3, 3\)"),
        "cache of another cell": (lambda: rnn.backward(lstm_arrays.R, None, lstm_cache),
                                  TypeError, "rnn.step_backward needs a cache from rnn.step_forward"),
        "not a cache": (lambda: rnn.backward(R, None, {}),
                        TypeError, "cache must be the one returned by forward"),
        "target out of range": (lambda: losses.many_to_many_forward(R, W_hy, b_y, np.full((4, 3), 2)),
                                ValueError, r"targets must lie in 0\.\.1"),
        "readout width": (lambda: losses.many_to_many_forward(R, W_hy[:, :2], b_y, np.zeros((4, 3), int)),
                          ValueError, r"W_hy must have shape \(C, 3\)"),
        "many-to-one lengths": (lambda: losses.many_to_one_forward(R, W_hy, b_y, [0, 0, 0], [1, 9, 1]),
                                ValueError, r"lengths must lie in 1\.\.4"),
    }


BAD_INPUTS = _bad_inputs()


@pytest.mark.parametrize("case", BAD_INPUTS, ids=list(BAD_INPUTS))
def test_bad_input_gets_a_clear_error(case):
    call, error, message = BAD_INPUTS[case]
    with pytest.raises(error, match=message):
        call()
