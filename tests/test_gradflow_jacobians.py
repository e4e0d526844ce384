"""gradflow.jacobians: ∂s_{T-1}/∂s_t and J_t = ∂s_t/∂s_{t-1} by the engine's reverse mode, checked against
central differences through the cell's own step (built-in cells and the minimal gated unit of
examples/custom_cell.py), the chain rule, the product bound, and the closed form W^(T-1-t) of a linear cell.
"""
import importlib.util
import os
import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinygrad_rnn as tr
import tinygrad_rnn.gradflow as gradflow
import tinygrad_rnn.nn as nn

FEW = settings(max_examples=12, deadline=None)
EXAMPLE = os.path.join(os.path.dirname(__file__), os.pardir, "examples", "custom_cell.py")


def minimal_gated_unit(input_size, hidden_size):
    spec = importlib.util.spec_from_file_location("custom_cell_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.MinimalGatedUnit(input_size, hidden_size, dtype=np.float64)


def make_cell(kind, input_size, hidden_size, seed):
    """A float64 cell with weights U(-0.9, 0.9) from ``seed`` (large enough to leave tanh's linear range)."""
    if kind == "mgu":
        cell = minimal_gated_unit(input_size, hidden_size)
    elif kind.startswith("rnn"):
        cell = nn.RNNCell(input_size, hidden_size, nonlinearity=kind[4:] or "tanh", dtype=np.float64)
    else:
        cell = {"lstm": nn.LSTMCell, "gru": nn.GRUCell}[kind](input_size, hidden_size, dtype=np.float64)
    rng = np.random.default_rng(seed)
    for param in cell.parameters():
        param.data[...] = rng.uniform(-0.9, 0.9, param.shape)
    return cell


def as_parts(vector, sizes):
    """A state vector (S,) Tensor as the cell's state: one part (1, H), or a tuple of them."""
    parts, start = [], 0
    for size in sizes:
        parts.append(vector[start:start + size].reshape(1, size))
        start += size
    return parts[0] if len(parts) == 1 else tuple(parts)


def as_vector(state):
    parts = [state] if isinstance(state, tr.Tensor) else list(state)
    return tr.concat([part.reshape(-1) for part in parts])


def run(cell, xs, first, last, vector, sizes):
    """The state after steps first..last-1 from the state ``vector`` (S,), as a vector (S,)."""
    state = as_parts(vector, sizes)
    for t in range(first, last):
        state = cell(tr.Tensor(xs[t]), state)
    return as_vector(state)


def finite_difference_jacobian(cell, xs, first, last, point, sizes):
    """∂(state after step last-1)/∂(state before step first) at ``point`` (S,), row by row by tr.numerical_grad."""
    size = len(point)
    rows = []
    for i in range(size):
        (row,) = tr.numerical_grad(lambda v: run(cell, xs, first, last, v, sizes), [tr.Tensor(point.copy())],
                                   grad_output=np.eye(size)[i])
        rows.append(row)
    return np.array(rows)


def forward_states(cell, xs, start, sizes):
    """[s_{-1}, s_0, ..., s_{T-1}] as vectors (S,), by the cell called step by step."""
    with tr.no_grad():
        vectors = [start]
        for t in range(len(xs)):
            vectors.append(run(cell, xs, t, t + 1, tr.Tensor(vectors[-1]), sizes).data)
    return vectors


def sizes_of(cell):
    """The sizes of the state's parts, from the cell's own init_state: (H,), or (H, H) for (h, c)."""
    state = cell.init_state(1)
    return tuple(part.shape[1] for part in ([state] if isinstance(state, tr.Tensor) else state))


@pytest.mark.parametrize("kind", ["rnn", "rnn-relu", "lstm", "gru", "mgu"])
def test_jacobians_equal_central_differences(kind):
    cell = make_cell(kind, 2, 3, seed=5)
    sizes = sizes_of(cell)
    rng = np.random.default_rng(6)
    xs = rng.standard_normal((4, 1, 2))
    start = rng.uniform(-0.5, 0.5, sum(sizes))
    state = as_parts(tr.Tensor(start), sizes)
    got = gradflow.jacobians(nn.Recurrent(cell), xs, state=state)
    assert got.part_sizes == sizes
    assert got.through_time.shape == got.steps.shape == (4, sum(sizes), sum(sizes))
    states = forward_states(cell, xs, start, sizes)  # states[t + 1] = s_t
    for t in range(4):
        np.testing.assert_allclose(got.steps[t], finite_difference_jacobian(cell, xs, t, t + 1, states[t], sizes),
                                   rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(got.through_time[t],
                                   finite_difference_jacobian(cell, xs, t + 1, 4, states[t + 1], sizes),
                                   rtol=1e-6, atol=1e-8)


@FEW
@given(kind=st.sampled_from(["rnn", "rnn-relu", "lstm", "gru"]), steps=st.integers(1, 8), hidden=st.integers(1, 4),
       seed=st.integers(0, 2**16))
def test_chain_rule_singular_values_and_the_bound(kind, steps, hidden, seed):
    cell = make_cell(kind, 2, hidden, seed)
    xs = np.random.default_rng(seed).standard_normal((steps, 2))
    got = gradflow.jacobians(cell, xs)
    size = got.steps.shape[1]
    product = np.eye(size)
    for t in range(steps - 1, -1, -1):  # ∂s_{T-1}/∂s_t = J_{T-1} ⋯ J_{t+1}
        np.testing.assert_allclose(got.through_time[t], product, rtol=1e-10, atol=1e-13)
        product = product @ got.steps[t]
    for jacobian, values, norm in ((got.through_time, got.through_time_singular_values, got.measured),
                                   (got.steps, got.step_singular_values, got.step_norms)):
        np.testing.assert_allclose(values, [np.linalg.svd(j, compute_uv=False) for j in jacobian], rtol=1e-12,
                                   atol=1e-15)
        np.testing.assert_allclose(norm, [np.linalg.norm(j, 2) for j in jacobian], rtol=1e-12, atol=1e-15)
    expected_bound = [np.prod(got.step_norms[t + 1:]) for t in range(steps)]
    np.testing.assert_allclose(got.bound, expected_bound, rtol=1e-12)
    assert np.all(got.measured <= got.bound * (1 + 1e-12))


class LinearCell(nn.Cell):
    """h' = W h + U x (column vectors): x (N, D), h (N, H), W (H, H), U (H, D)."""

    def __init__(self, W, U):
        super().__init__()
        self.hidden_size = W.shape[0]
        self.W, self.U = nn.Parameter(W), nn.Parameter(U)

    def forward(self, x, h):
        return h @ self.W.T + x @ self.U.T


def test_a_linear_cell_has_the_closed_form_w_to_the_power_t_minus_1_minus_t():
    rng = np.random.default_rng(7)
    W = rng.standard_normal((3, 3)) * 0.6
    cell = LinearCell(W, rng.standard_normal((3, 2)))
    got = gradflow.jacobians(nn.Recurrent(cell, batch_first=True), rng.standard_normal((1, 6, 2)))  # (N=1, T, D)
    for t in range(6):
        np.testing.assert_allclose(got.steps[t], W, rtol=1e-14, atol=1e-15)
        np.testing.assert_allclose(got.through_time[t], np.linalg.matrix_power(W, 5 - t), rtol=1e-12, atol=1e-14)
    assert got.part_sizes == (3,)


def test_the_lstms_state_is_h_then_c():
    lstm = nn.LSTM(2, 3, dtype=np.float64)
    x = np.random.default_rng(8).standard_normal((5, 1, 2))
    got = gradflow.jacobians(lstm, x)
    assert got.part_sizes == (3, 3)
    # ∂c_t/∂c_{t-1} = diag(f_t): the lower-right block of J_t is diagonal with entries in (0, 1)
    for step in got.steps:
        block = step[3:, 3:]
        assert np.all(block[~np.eye(3, dtype=bool)] == 0)
        assert np.all((np.diag(block) > 0) & (np.diag(block) < 1))


def test_product_bound_is_summed_in_logs_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_allclose(gradflow.product_bound([5.0, 2.0, 3.0, 0.5]), [3.0, 1.5, 0.5, 1.0])
        huge = gradflow.product_bound(np.full(400, 1e3))
        assert huge[0] == np.inf and huge[-1] == 1.0
        assert gradflow.product_bound([1.0, 0.0, 2.0])[0] == 0.0


def test_float32_layers_keep_their_dtype():
    got = gradflow.jacobians(nn.GRU(2, 3), np.ones((4, 2), np.float32))
    assert got.through_time.dtype == got.steps.dtype == np.float32
    assert got.measured.dtype == np.float64


@pytest.mark.parametrize("call, error, message", [
    (lambda: gradflow.jacobians(nn.RNN(2, 3), np.ones((4, 2, 2), np.float32)), ValueError, "one sequence"),
    (lambda: gradflow.jacobians(nn.RNNCell(2, 3), np.ones((4, 2), np.float32), state=np.zeros((2, 3), np.float32)),
     ValueError, "one sequence"),
    (lambda: gradflow.jacobians(nn.RNN(2, 3, num_layers=2), np.ones((4, 2), np.float32)), ValueError, "single-layer"),
    (lambda: gradflow.jacobians(nn.GRU(2, 3, bidirectional=True), np.ones((4, 2), np.float32)), ValueError,
     "single-direction"),
    (lambda: gradflow.jacobians(nn.Linear(2, 3), np.ones((4, 2), np.float32)), TypeError, "nn.Cell"),
    (lambda: gradflow.jacobians(nn.RNNCell(2, 3), np.ones((0, 2), np.float32)), ValueError, "length 0"),
])
def test_bad_input_gets_a_clear_error(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_jacobians_that_overflow_are_refused_clearly():
    """The linear cell at W = 2·I from a zero state on zero inputs: every state is 0 (finite), but
    ∂s_{T-1}/∂s_t = 2^(T-1-t) I passes float64's range 1100 steps back. Refused with the step named, not
    NumPy's "SVD did not converge" on inf and NaN, and without NumPy's warnings."""
    cell = LinearCell(2.0 * np.eye(2), np.zeros((2, 1)))
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        with pytest.raises(ValueError, match=r"∂s_\{T-1\}/∂s_t is not finite from t = \d+ back.*float64"):
            gradflow.jacobians(cell, np.zeros((1100, 1)))
