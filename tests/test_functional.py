"""Tests of tinygrad_rnn.functional against float64 NumPy computations written here, closed-form
gradients and finite differences (gradcheck)."""
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygrad_rnn as tr
from tinygrad_rnn import functional as F
from tinygrad_rnn import random as tr_random


def reference_log_softmax(x, axis):
    """log p = x - log sum exp x in float64, by NumPy's pairwise logaddexp reduction."""
    x = np.asarray(x, dtype=np.float64)
    return x - np.logaddexp.reduce(x, axis=axis, keepdims=True)


@st.composite
def logits_and_axis(draw, max_dims=3, max_side=4):
    shape = tuple(draw(st.lists(st.integers(1, max_side), min_size=1, max_size=max_dims)))
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    scale = draw(st.sampled_from([1e-3, 1.0, 30.0, 1e4]))
    seed = draw(st.integers(0, 2**32 - 1))
    return np.random.default_rng(seed).standard_normal(shape) * scale, axis


@st.composite
def class_logits_and_targets(draw):
    """Logits (N, C) or (T, N, C), targets of their leading shape, some set to -100 (ignored)."""
    lead = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=2)))
    classes = draw(st.integers(1, 5))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    logits = rng.standard_normal(lead + (classes,)) * 3
    targets = rng.integers(0, classes, size=lead)
    targets[rng.random(lead) < draw(st.sampled_from([0.0, 0.3]))] = -100
    return logits, targets


def closed_form_grad(logits, targets, reduction):
    """d loss / d logits = (softmax - one_hot(target)) at counted positions, / count for "mean"."""
    probs = np.exp(reference_log_softmax(logits, -1))
    kept = targets != -100
    one_hot = np.arange(logits.shape[-1]) == targets[..., None]
    grad = (probs - one_hot) * kept[..., None]
    return grad / kept.sum() if reduction == "mean" else grad


# ===================================================================== softmax / log_softmax
@settings(max_examples=60, deadline=None)
@given(logits_and_axis(), st.sampled_from([np.float32, np.float64]))
def test_log_softmax_and_softmax_match_float64_logsumexp(case, dtype):
    x, axis = case
    x = x.astype(dtype)
    expected = reference_log_softmax(x, axis)
    log_p = F.log_softmax(tr.Tensor(x), axis=axis)
    p = F.softmax(tr.Tensor(x), axis=axis)
    assert log_p.dtype == dtype and p.dtype == dtype and log_p.shape == x.shape
    tolerance = 8 * np.finfo(dtype).eps * (1 + np.abs(x).max())
    np.testing.assert_allclose(log_p.data, expected, rtol=0, atol=tolerance)
    np.testing.assert_allclose(p.data, np.exp(expected), rtol=0, atol=tolerance)
    np.testing.assert_allclose(p.data.sum(axis=axis), 1.0, atol=20 * np.finfo(dtype).eps)


@settings(max_examples=25, deadline=None)
@given(logits_and_axis(max_side=3))
def test_softmax_and_log_softmax_gradients_match_finite_differences(case):
    x, axis = case
    x = x / np.abs(x).max()  # finite differences need moderate logits
    weight = np.random.default_rng(0).standard_normal(x.shape)
    inputs = (tr.Tensor(x, requires_grad=True),)
    assert tr.gradcheck(lambda t: F.log_softmax(t, axis=axis), inputs)
    assert tr.gradcheck(lambda t: F.softmax(t, axis=axis) * weight, inputs)


def test_log_softmax_second_derivatives_match_finite_differences():
    x = tr.Tensor(np.random.default_rng(1).standard_normal((2, 4)), requires_grad=True)
    assert tr.gradgradcheck(F.log_softmax, (x,))
    assert tr.gradgradcheck(F.softmax, (x,))


def test_extreme_logits_give_no_nan_and_no_warning():
    x = np.array([[1e4, -1e4, 0.0], [3e4, 3e4, -3e4], [-1e30, 1e30, 0.0]], dtype=np.float32)
    logits = tr.Tensor(x, requires_grad=True)
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):
        warnings.simplefilter("error")
        p = F.softmax(logits)
        log_p = F.log_softmax(logits)
        loss = F.cross_entropy(logits, np.array([1, 0, 1]))
        loss.backward()
    assert np.all(np.isfinite(log_p.data)) and np.all(np.isfinite(logits.grad))
    np.testing.assert_allclose(p.data, [[1, 0, 0], [0.5, 0.5, 0], [0, 1, 0]], atol=1e-7)
    np.testing.assert_allclose(log_p.data[0], [0.0, -2e4, -1e4], rtol=1e-6)
    # loss rows: 2e4 (the target is 2e4 below the max), log 2, 0
    np.testing.assert_allclose(loss.data, (2e4 + np.log(2)) / 3, rtol=1e-6)
    assert logits.grad.dtype == np.float32


def test_softmax_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="axis 2 is out of range"):
        F.softmax(tr.Tensor(np.zeros((2, 3))), axis=2)
    with pytest.raises(ValueError, match="empty"):
        F.log_softmax(tr.Tensor(np.zeros((2, 0))))
    with pytest.raises(TypeError, match="floating-point"):
        F.softmax(tr.Tensor(np.arange(3)))
    with pytest.raises(TypeError, match="must be a Tensor"):
        F.log_softmax(np.zeros(3))


# ===================================================================== cross_entropy
def test_cross_entropy_hand_values_for_each_reduction():
    logits = tr.Tensor(np.array([[1.0, 2.0, 3.0], [1.0, 1.0, 1.0]]))
    targets = np.array([2, 0])
    first = np.log(np.e + np.e**2 + np.e**3) - 3
    np.testing.assert_allclose(F.cross_entropy(logits, targets, reduction="none").data, [first, np.log(3)])
    np.testing.assert_allclose(F.cross_entropy(logits, targets, reduction="sum").data, first + np.log(3))
    np.testing.assert_allclose(F.cross_entropy(logits, targets).data, (first + np.log(3)) / 2)
    ignored = F.cross_entropy(logits, np.array([2, -100]), ignore_index=-100)
    np.testing.assert_allclose(ignored.data, first)  # the mean is over the one counted target
    np.testing.assert_allclose(F.cross_entropy(logits, np.array([-1, 0]), reduction="none",
                                               ignore_index=-1).data, [0.0, np.log(3)])


@settings(max_examples=60, deadline=None)
@given(class_logits_and_targets(), st.sampled_from(["mean", "sum", "none"]), st.booleans(),
       st.sampled_from([np.float32, np.float64]))
def test_cross_entropy_matches_numpy_loop_and_closed_form_gradient(case, reduction, as_tensor, dtype):
    logits, targets = case
    counted = targets != -100
    if reduction == "mean" and not counted.any():
        targets[(0,) * targets.ndim] = 0
        counted = targets != -100
    log_p = reference_log_softmax(logits, -1)
    losses = np.zeros(targets.shape)
    for position in np.ndindex(targets.shape):
        if targets[position] != -100:
            losses[position] = -log_p[position + (targets[position],)]
    expected = losses if reduction == "none" else losses.sum()
    if reduction == "mean":
        expected = expected / counted.sum()

    x = tr.Tensor(logits.astype(dtype), requires_grad=True)
    target_arg = tr.Tensor(targets) if as_tensor else targets
    loss = F.cross_entropy(x, target_arg, reduction=reduction, ignore_index=-100)
    assert loss.dtype == dtype and loss.shape == np.shape(expected)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(loss.data, expected, rtol=rtol, atol=rtol)
    loss.backward(np.ones(loss.shape, dtype=dtype))
    assert x.grad.dtype == dtype
    np.testing.assert_allclose(x.grad, closed_form_grad(logits, targets, reduction), rtol=rtol, atol=rtol)


@settings(max_examples=20, deadline=None)
@given(class_logits_and_targets(), st.sampled_from(["mean", "sum", "none"]))
def test_cross_entropy_gradient_matches_finite_differences(case, reduction):
    logits, targets = case
    targets.flat[0] = 0  # at least one counted target, so the mean is defined
    x = tr.Tensor(logits, requires_grad=True)
    assert tr.gradcheck(lambda t: F.cross_entropy(t, targets, reduction, ignore_index=-100), (x,))


def test_cross_entropy_second_derivatives_match_finite_differences():
    x = tr.Tensor(np.random.default_rng(2).standard_normal((3, 4)), requires_grad=True)
    assert tr.gradgradcheck(lambda t: F.cross_entropy(t, np.array([1, -100, 3]), ignore_index=-100), (x,))


def test_cross_entropy_with_every_target_ignored():
    logits = tr.Tensor(np.zeros((2, 3)), requires_grad=True)
    targets = np.array([-100, -100])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isnan(F.cross_entropy(logits, targets, ignore_index=-100).item())  # as PyTorch
    total = F.cross_entropy(logits, targets, reduction="sum", ignore_index=-100)
    total.backward()
    assert total.item() == 0.0 and np.all(logits.grad == 0)


def test_cross_entropy_bad_inputs_raise_clear_errors():
    logits = tr.Tensor(np.zeros((2, 3)))
    with pytest.raises(TypeError, match="integer class ids, got dtype float64"):
        F.cross_entropy(logits, np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"targets of shape \(3,\).*logits of shape \(2, 3\)"):
        F.cross_entropy(logits, np.array([0, 1, 2]))
    with pytest.raises(ValueError, match=r"holds 3, .*C = 3"):
        F.cross_entropy(logits, np.array([0, 3]))
    with pytest.raises(ValueError, match=r"holds -1"):
        F.cross_entropy(logits, np.array([-1, 0]), ignore_index=-100)
    with pytest.raises(ValueError, match="reduction must be one of"):
        F.cross_entropy(logits, np.array([0, 1]), reduction="avg")
    with pytest.raises(TypeError, match="floating-point"):
        F.cross_entropy(tr.Tensor(np.zeros((2, 3), dtype=np.int64)), np.array([0, 1]))
    with pytest.raises(TypeError, match="ignore_index must be an int"):
        F.cross_entropy(logits, np.array([0, 1]), ignore_index=1.5)


# ===================================================================== mse_loss
@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(1, 4), min_size=0, max_size=3), st.sampled_from(["mean", "sum", "none"]),
       st.integers(0, 2**32 - 1))
def test_mse_loss_matches_numpy_and_closed_form_gradient(shape, reduction, seed):
    rng = np.random.default_rng(seed)
    x_data, target = rng.standard_normal(shape), rng.standard_normal(shape)
    squared = (x_data - target) ** 2
    expected = {"none": squared, "sum": squared.sum(), "mean": squared.mean()}[reduction]
    x = tr.Tensor(x_data, requires_grad=True)
    loss = F.mse_loss(x, target, reduction=reduction)
    np.testing.assert_allclose(loss.data, expected, rtol=1e-12)
    loss.backward(np.ones(loss.shape))
    grad = 2 * (x_data - target)
    np.testing.assert_allclose(x.grad, grad / squared.size if reduction == "mean" else grad, rtol=1e-12)
    assert tr.gradcheck(lambda t: F.mse_loss(t, target, reduction), (tr.Tensor(x_data, requires_grad=True),))


def test_mse_loss_flows_to_a_tensor_target_and_checks_shapes():
    x = tr.Tensor(np.array([1.0, 2.0], dtype=np.float32), requires_grad=True)
    y = tr.Tensor(np.array([0.0, 4.0], dtype=np.float32), requires_grad=True)
    loss = F.mse_loss(x, y)
    loss.backward()
    assert loss.dtype == np.float32 and loss.item() == pytest.approx(2.5)
    np.testing.assert_allclose(y.grad, [-1.0, 2.0])
    with pytest.raises(ValueError, match=r"input has shape \(2,\) but target has shape \(1, 2\)"):
        F.mse_loss(x, np.zeros((1, 2), dtype=np.float32))
    with pytest.raises(TypeError, match="target must be a Tensor or an ndarray"):
        F.mse_loss(x, [0.0, 1.0])
    with pytest.raises(ValueError, match="reduction"):
        F.mse_loss(x, y, reduction="mea")


# ===================================================================== dropout
@settings(max_examples=20, deadline=None)
@given(st.sampled_from([0.1, 0.5, 0.9]), st.sampled_from([np.float32, np.float64]), st.integers(0, 1000))
def test_dropout_drops_at_rate_p_scales_kept_units_and_passes_gradient_through_the_mask(p, dtype, seed):
    x_data = np.random.default_rng(seed).uniform(1.0, 2.0, size=(50, 400)).astype(dtype)  # nonzero
    x = tr.Tensor(x_data, requires_grad=True)
    y = F.dropout(x, p, rng=np.random.default_rng(seed))
    kept = y.data != 0
    n = x_data.size
    assert abs((~kept).mean() - p) < 5 * np.sqrt(p * (1 - p) / n)  # 5 standard deviations
    assert y.dtype == dtype
    scale = 1 / (1 - p)
    np.testing.assert_allclose(y.data[kept], x_data[kept] * scale, rtol=1e-6)
    upstream = np.random.default_rng(seed + 1).standard_normal(x_data.shape).astype(dtype)
    y.backward(upstream)
    np.testing.assert_allclose(x.grad, upstream * kept * scale, rtol=1e-6)


def test_dropout_is_identity_in_eval_or_at_zero_and_repeats_with_a_seeded_generator():
    x = tr.Tensor(np.ones((3, 4)), requires_grad=True)
    assert F.dropout(x, 0.5, training=False) is x
    assert F.dropout(x, 0.0) is x
    first = F.dropout(x, 0.3, rng=np.random.default_rng(7)).data
    again = F.dropout(x, 0.3, rng=np.random.default_rng(7)).data
    np.testing.assert_array_equal(first, again)
    tr_random.manual_seed(3)  # the library's default generator, when no rng is given
    seeded = F.dropout(x, 0.3).data
    tr_random.manual_seed(3)
    np.testing.assert_array_equal(F.dropout(x, 0.3).data, seeded)


@pytest.mark.parametrize("p", [1.0, -0.1, 2, "0.5", True])
def test_dropout_rejects_a_bad_probability(p):
    with pytest.raises(ValueError, match=r"p must be a probability in \[0, 1\)"):
        F.dropout(tr.Tensor(np.ones(3)), p)


def test_dropout_rejects_a_bad_generator():
    with pytest.raises(TypeError, match="numpy.random.Generator"):
        F.dropout(tr.Tensor(np.ones(3)), 0.5, rng=np.random.RandomState(0))


# ===================================================================== one_hot
def test_one_hot_values_dtype_and_errors():
    ids = np.array([[0, 2], [1, 1]])
    out = F.one_hot(ids, 3)
    expected = np.zeros((2, 2, 3))
    for position in np.ndindex(ids.shape):
        expected[position + (ids[position],)] = 1
    np.testing.assert_array_equal(out.data, expected)
    assert out.dtype == tr.get_default_dtype() and not out.requires_grad
    assert F.one_hot(tr.Tensor(np.array([1])), 2, dtype=np.float64).dtype == np.float64
    with pytest.raises(ValueError, match=r"holds 3, .*C = 3"):
        F.one_hot([0, 3], 3)
    with pytest.raises(ValueError, match="num_classes must be a positive int"):
        F.one_hot([0], 0)
