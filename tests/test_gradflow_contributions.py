"""gradflow.contribution_matrix: the (loss step t × use step k) split of ∂L/∂W, checked against a separate
backward per step loss through the layer's own forward, finite differences that perturb W at one use step
for one step loss, causality, and the full gradient; long_range_fraction against hand-summed matrices.
"""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinygrad_rnn as tr
import tinygrad_rnn.gradflow as gradflow
import tinygrad_rnn.nn as nn

FEW = settings(max_examples=8, deadline=None)


def target_loss(output_t, t):
    """L_t = Σ (output_t - y_t)² / 2 with a fixed target y_t = sin(t + j) per unit j: a step loss that reads t."""
    target = np.sin(t + np.arange(output_t.shape[-1]))
    return ((output_t - target) ** 2).sum() * 0.5


def separate_gradients(module, x, loss):
    """[∂L_t/∂W for each t] and ∂L/∂W, each by the module's own forward and a backward of that loss alone."""
    weight = dict(module.named_parameters())
    per_loss = []
    for t in range(x.shape[0]):
        module.zero_grad()
        output, _ = module(tr.Tensor(x))
        loss(output[t], t).backward()
        per_loss.append({name: p.grad.copy() for name, p in weight.items()})
    module.zero_grad()
    output, _ = module(tr.Tensor(x))
    sum(loss(output[t], t) for t in range(x.shape[0])).backward()
    return per_loss, {name: p.grad.copy() for name, p in weight.items()}


@FEW
@given(layer=st.sampled_from([nn.RNN, nn.LSTM, nn.GRU]), steps=st.integers(1, 6), batch=st.integers(1, 2),
       param=st.sampled_from(["weight_hh", "weight_ih_l0", "bias_hh"]), targets=st.booleans(), seed=st.integers(0, 99))
def test_rows_sum_to_each_step_losss_own_gradient(layer, steps, batch, param, targets, seed):
    tr.manual_seed(seed)
    module = layer(2, 3, dtype=np.float64)
    x = np.random.default_rng(seed).standard_normal((steps, batch, 2))
    loss = target_loss if targets else gradflow.every_step_loss
    got = gradflow.contribution_matrix(module, x, param, step_loss=loss)
    name = param if param.endswith("_l0") else param + "_l0"
    assert got.name == name and got.projection.shape == got.norms.shape == (steps, steps)
    per_loss, total = separate_gradients(module, x, loss)
    for t in range(steps):
        np.testing.assert_allclose(got.per_loss[t], per_loss[t][name], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(got.total, total[name], rtol=1e-9, atol=1e-12)
    # causality: nothing flows from a loss at step t through a use at a later step k > t
    above = np.triu(np.ones((steps, steps), bool), 1)
    assert np.all(got.projection[above] == 0) and np.all(got.norms[above] == 0)
    # signed projections on the full gradient's direction u: row t sums to <dL_t/dW, u>, the whole to ‖dL/dW‖
    size = np.linalg.norm(total[name])
    if size > 0:
        u = total[name] / size
        np.testing.assert_allclose(got.projection.sum(axis=1), [np.sum(per_loss[t][name] * u) for t in range(steps)],
                                   rtol=1e-9, atol=1e-12 * size)
        assert got.projection.sum() == pytest.approx(size, rel=1e-9)
        assert got.long_range_fraction(0) == pytest.approx(1.0)


def test_each_entry_against_finite_differences_at_one_use_step():
    cell = nn.RNNCell(1, 2, dtype=np.float64)
    rng = np.random.default_rng(3)
    for p in cell.parameters():
        p.data[...] = rng.uniform(-0.9, 0.9, p.shape)
    xs = rng.standard_normal((3, 1, 1))
    state = rng.standard_normal((1, 2))  # not zero: step 0's use of W_hh then counts too
    got = gradflow.contribution_matrix(cell, xs, "weight_hh", step_loss=target_loss, state=state)
    weight, eps = cell.weight_hh, 1e-6
    blocks = np.zeros((3, 3, 2, 2))
    for t in range(3):
        for k in range(3):
            for j in np.ndindex(weight.shape):
                losses = []
                for sign in (1, -1):
                    with tr.no_grad():
                        h = tr.Tensor(state)
                        for s in range(t + 1):
                            original = weight.data[j]
                            if s == k:
                                weight.data[j] = original + sign * eps  # only use step k sees the change
                            h = cell(tr.Tensor(xs[s]), h)
                            weight.data[j] = original
                        losses.append(target_loss(h, t).item())
                blocks[t, k][j] = (losses[0] - losses[1]) / (2 * eps)
    np.testing.assert_allclose(got.norms, np.linalg.norm(blocks.reshape(3, 3, -1), axis=2), rtol=1e-6, atol=1e-9)
    u = got.total.ravel() / np.linalg.norm(got.total)
    np.testing.assert_allclose(got.projection, blocks.reshape(3, 3, -1) @ u, rtol=1e-6, atol=1e-9)
    assert got.norms[0, 0] > 0


def test_step_zero_contributes_nothing_to_weight_hh_from_a_zero_state():
    got = gradflow.contribution_matrix(nn.GRU(2, 3, dtype=np.float64), np.ones((4, 2)))
    assert np.all(got.norms[:, 0] == 0) and np.all(got.norms[1:, 1] > 0)


def test_long_range_fraction_sums_the_entries_at_least_k_below_the_diagonal():
    matrix = np.array([[4.0, 0.0, 0.0],
                       [2.0, 1.0, 0.0],
                       [1.0, -0.5, 2.5]])  # total 10
    assert gradflow.long_range_fraction(matrix, 0) == 1.0
    assert gradflow.long_range_fraction(matrix, 1) == pytest.approx((2.0 - 0.5 + 1.0) / 10)
    assert gradflow.long_range_fraction(matrix, 2) == pytest.approx(0.1)
    assert gradflow.long_range_fraction(matrix, 3) == 0.0
    assert gradflow.long_range_fraction(np.zeros((2, 2)), 1) == 0.0


@pytest.mark.parametrize("call, error, message", [
    (lambda: gradflow.contribution_matrix(nn.RNN(2, 3), np.ones((3, 2), np.float32), "W"), ValueError,
     "weight_hh_l0"),
    (lambda: gradflow.contribution_matrix(nn.RNN(2, 3), np.ones((3, 2), np.float32), step_loss=lambda o, t: o),
     TypeError, "step_loss must return a one-element"),
    (lambda: gradflow.long_range_fraction(np.ones((2, 3)), 1), ValueError, "square"),
    (lambda: gradflow.long_range_fraction(np.ones((2, 2)), -1), ValueError, "min_distance"),
    (lambda: gradflow.long_range_fraction(np.ones((2, 2)), 1.5), ValueError, "min_distance"),
])
def test_bad_input_gets_a_clear_error(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_a_frozen_parameter_is_refused():
    cell = nn.RNNCell(2, 3)
    cell.weight_hh.requires_grad = False
    with pytest.raises(ValueError, match="does not require grad"):
        gradflow.contribution_matrix(cell, np.ones((3, 2), np.float32))
