"""The benchmarks' NumPy baseline (benchmarks/baseline_numpy.py) is exact.

Outputs are compared with a plain per-step loop written here from the equations; gradients (float64)
with central finite differences (tr.numerical_grad) of that loop's loss sum(outputs * R), for every
parameter and x.
"""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygrad_rnn as tr

_BASELINE_PATH = Path(__file__).resolve().parent.parent / "benchmarks" / "baseline_numpy.py"
_spec = importlib.util.spec_from_file_location("baseline_numpy", _BASELINE_PATH)
baseline_numpy = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(baseline_numpy)

CELLS = ("lstm", "rnn", "gru")


def sigmoid(a):
    """1 / (1 + exp(-a)) through exp(-|a|), which never overflows."""
    e = np.exp(-np.abs(a))
    return np.where(a >= 0, 1 / (1 + e), e / (1 + e))


def loop_forward(cell, x, params):
    """The cell's equations, one time step at a time, from h_0 = c_0 = 0: x (T, N, D) -> (T, N, H)."""
    w_ih, w_hh, b_ih, b_hh = (params[name] for name in baseline_numpy.PARAMETER_NAMES)
    H = w_hh.shape[1]
    h = np.zeros((x.shape[1], H), x.dtype)
    c = np.zeros_like(h)
    outputs = []
    for x_t in x:
        from_input = x_t @ w_ih.T + b_ih
        from_hidden = h @ w_hh.T + b_hh
        if cell == "rnn":
            h = np.tanh(from_input + from_hidden)
        elif cell == "lstm":
            a = from_input + from_hidden
            i, f, o = sigmoid(a[:, :H]), sigmoid(a[:, H:2 * H]), sigmoid(a[:, 3 * H:])
            g = np.tanh(a[:, 2 * H:3 * H])
            c = f * c + i * g
            h = o * np.tanh(c)
        else:
            r = sigmoid(from_input[:, :H] + from_hidden[:, :H])
            z = sigmoid(from_input[:, H:2 * H] + from_hidden[:, H:2 * H])
            n = np.tanh(from_input[:, 2 * H:] + r * from_hidden[:, 2 * H:])
            h = (1 - z) * n + z * h
        outputs.append(h)
    return np.stack(outputs)


def make_problem(cell, N, T, D, H, seed, dtype):
    rng = np.random.default_rng(seed)
    params = baseline_numpy.random_params(cell, D, H, rng, dtype)
    x = rng.standard_normal((T, N, D)).astype(dtype)
    R = rng.standard_normal((T, N, H)).astype(dtype)
    return x, params, R


sizes = st.tuples(st.integers(1, 3), st.integers(1, 5), st.integers(1, 3), st.integers(1, 4))


@pytest.mark.parametrize("cell", CELLS)
@settings(max_examples=25, deadline=None)
@given(sizes=sizes, seed=st.integers(0, 2**32 - 1))
def test_gradients_match_finite_differences(cell, sizes, seed):
    N, T, D, H = sizes
    x, params, R = make_problem(cell, N, T, D, H, seed, np.float64)
    baseline = baseline_numpy.BASELINES[cell](N, T, D, H, dtype=np.float64)
    outputs, grads, dx = baseline.step(x, params, R)

    np.testing.assert_allclose(outputs, loop_forward(cell, x, params), rtol=1e-12, atol=1e-14)
    names = baseline_numpy.PARAMETER_NAMES
    # numerical_grad perturbs the arrays in place, which the loop reads: its inputs are the arrays.
    numerical = tr.numerical_grad(lambda *_: tr.Tensor(loop_forward(cell, x, params)),
                                  [params[name] for name in names] + [x], grad_output=R)
    analytic = [grads[name] for name in names] + [dx]
    for name, got, expected in zip(names + ("x",), analytic, numerical):
        assert tr.rel_error_norm(got, expected) < 1e-6, name


@pytest.mark.parametrize("cell", CELLS)
def test_float32_outputs_match_the_loop_and_gradients_match_float64(cell):
    N, T, D, H = 4, 9, 5, 6
    x, params, R = make_problem(cell, N, T, D, H, 7, np.float64)
    _, grads64, dx64 = baseline_numpy.BASELINES[cell](N, T, D, H, dtype=np.float64).step(x, params, R)
    params32 = {name: value.astype(np.float32) for name, value in params.items()}
    x32, R32 = x.astype(np.float32), R.astype(np.float32)
    outputs, grads, dx = baseline_numpy.BASELINES[cell](N, T, D, H).step(x32, params32, R32)
    assert outputs.dtype == dx.dtype == np.float32
    np.testing.assert_allclose(outputs, loop_forward(cell, x32, params32), rtol=1e-5, atol=1e-6)
    for name in baseline_numpy.PARAMETER_NAMES:
        assert grads[name].dtype == np.float32
        assert tr.rel_error_norm(grads[name], grads64[name]) < 1e-5, name
    assert tr.rel_error_norm(dx, dx64) < 1e-5


@pytest.mark.parametrize("cell", CELLS)
def test_reused_buffers_give_the_same_answer_as_a_fresh_object(cell):
    N, T, D, H = 3, 5, 4, 3
    reused = baseline_numpy.BASELINES[cell](N, T, D, H, dtype=np.float64)
    reused.step(*make_problem(cell, N, T, D, H, 1, np.float64))
    second = make_problem(cell, N, T, D, H, 2, np.float64)
    outputs, grads, dx = reused.step(*second)
    fresh = baseline_numpy.BASELINES[cell](N, T, D, H, dtype=np.float64)
    fresh_outputs, fresh_grads, fresh_dx = fresh.step(*second)
    np.testing.assert_array_equal(outputs, fresh_outputs)
    np.testing.assert_array_equal(dx, fresh_dx)
    for name in baseline_numpy.PARAMETER_NAMES:
        np.testing.assert_array_equal(grads[name], fresh_grads[name])


def test_bad_input_is_named_in_the_error():
    N, T, D, H = 2, 3, 4, 5
    x, params, R = make_problem("lstm", N, T, D, H, 0, np.float32)
    baseline = baseline_numpy.LSTMBaseline(N, T, D, H)
    with pytest.raises(RuntimeError, match="before forward"):
        baseline.backward(R)
    with pytest.raises(ValueError, match=r"x must have shape \(3, 2, 4\)"):
        baseline.forward(x[:, :1], params)
    with pytest.raises(TypeError, match="x must have dtype float32, got float64"):
        baseline.forward(x.astype(np.float64), params)
    with pytest.raises(KeyError, match="bias_hh"):
        baseline.forward(x, {name: params[name] for name in ("weight_ih", "weight_hh", "bias_ih")})
    with pytest.raises(ValueError, match=r"params\['weight_hh'\] must have shape \(20, 5\)"):
        baseline.forward(x, dict(params, weight_hh=params["weight_hh"][:, :4]))
    baseline.forward(x, params)
    with pytest.raises(ValueError, match="doutputs must have shape"):
        baseline.backward(R[:2])
    with pytest.raises(ValueError, match="hidden_size must be a positive integer"):
        baseline_numpy.GRUBaseline(N, T, D, 0)
