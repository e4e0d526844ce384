"""gradcheck itself: it passes on right gradients, fails loudly on wrong ones, and its pieces
(numerical_grad, rel_error) agree with hand values and closed forms.

The wrong ops are custom ops made in this file with ``tr.ops.Op(name, forward, backward)``.
"""
import warnings

import numpy as np
import pytest
from conftest import FAST, leaf, seeds, shapes, smooth
from hypothesis import given

import tinygrad_rnn as tr
from tinygrad_rnn import GradcheckError


def sine_with_backward(backward):
    """sin(x) as a custom op with the given backward(g, out, ctx, x)."""
    sine = tr.ops.Op("sine", lambda ctx, x: np.sin(x), backward)
    return lambda x: sine(None, x)


def value_of(t):
    """The array behind a backward argument (an ndarray, or a Tensor when create_graph=True)."""
    return t.data if isinstance(t, tr.Tensor) else t


#: d sin(x)/dx scaled by 1.1: wrong everywhere cos(x) is not 0
sine_scaled_wrongly = sine_with_backward(lambda g, out, ctx, x: (g * np.cos(value_of(x)) * 1.1,))
#: the right first derivative, but cos(x) taken as a constant: second derivatives are wrong
sine_with_constant_derivative = sine_with_backward(lambda g, out, ctx, x: (g * np.cos(value_of(x)),))


#: the identity as a custom op whose backward reverses g (it reads no array: reads NOTHING)
REVERSED_IDENTITY = tr.ops.Op("reversed_identity", lambda ctx, x: x.copy(), lambda g, out, ctx, x: (g[::-1],),
                              tr.ops.NOTHING)


def reversed_identity(x):
    """The identity as a custom op whose backward reverses g: right for g = ones, wrong as a Jacobian."""
    return REVERSED_IDENTITY(None, x)


# ===================================================================== passes on right gradients
@FAST
@given(shape=shapes(min_dims=1), seed=seeds)
def test_passes_on_right_gradients(shape, seed):
    rng = np.random.default_rng(seed)
    a, b = leaf(smooth(rng, shape)), leaf(smooth(rng, shape))
    assert tr.gradcheck(lambda a, b: (a * b).tanh() + a.exp() / (1 + b * b), [a, b])
    def three_outputs(a, b):
        return a.sigmoid(), a.reshape(-1) @ b.reshape(-1), a.reshape(-1, 1) @ b.reshape(1, -1)

    assert tr.gradcheck(three_outputs, [a, b])


def _sine_backward(g, out, ctx, x):
    """d sin(x)/dx = cos(x) = sin(x + pi/2): with create_graph, the op itself records the derivative."""
    return (g * (SINE(None, x + np.pi / 2) if isinstance(x, tr.Tensor) else np.cos(x)),)


SINE = tr.ops.Op("sine", lambda ctx, x: np.sin(x), _sine_backward)


def test_passes_on_a_right_custom_op_at_both_orders():
    """The control for the wrong custom ops below: made the same way, but right."""
    x = leaf([0.3, 0.9, -1.4])
    np.testing.assert_array_equal(SINE(None, x).data, np.sin(x.data))
    assert tr.gradcheck(lambda t: SINE(None, t), [x])
    # gradgradcheck differentiates the create_graph first derivative: check that one against cos too
    (first,) = tr.grad(SINE(None, x).sum(), x, create_graph=True)
    np.testing.assert_allclose(first.data, np.cos(x.data), rtol=1e-15)
    assert tr.gradgradcheck(lambda t: SINE(None, t), [x])
    assert tr.gradgradcheck(lambda t: SINE(None, t * t).sum(), [x])


def test_passes_with_an_unused_input_and_a_constant_input():
    x, unused, constant = leaf([1.0, 2.0]), leaf([3.0]), tr.Tensor(np.array([0.5, 0.25]))
    assert tr.gradcheck(lambda x, u, c: x * c, [x, unused, constant])


def test_leaves_the_inputs_as_they_were():
    values = np.array([[0.3, -1.2], [2.0, 0.7]])
    x = leaf(values)
    tr.gradcheck(lambda t: t.exp().sum(axis=1), [x])
    tr.gradgradcheck(lambda t: t.exp().sum(axis=1), [x])
    np.testing.assert_array_equal(x.data, values)
    assert x.grad is None


def test_accepts_a_single_tensor_and_ndarray_arguments():
    x = leaf([0.5, 1.5])
    assert tr.gradcheck(lambda t: t * t, x)
    assert tr.gradcheck(lambda t, w: t * w, (x, np.array([2.0, 3.0])))


# ===================================================================== fails on wrong gradients
def test_fails_naming_the_output_and_the_input():
    a, b = leaf([0.3, 0.9]), leaf([0.2, -0.4, 1.1])
    with pytest.raises(GradcheckError, match=r"output 1 with respect to input 1 \(shape \(3,\)\)"):
        tr.gradcheck(lambda a, b: (a * 2, sine_scaled_wrongly(b)), [a, b])
    with pytest.raises(GradcheckError, match=r"output 0 with respect to input 0 \(shape \(2,\)\)"):
        tr.gradcheck(lambda a, b: sine_scaled_wrongly(a) + b.sum(), [a, b])


def test_the_failure_report_lists_the_worst_entries_with_both_values():
    x = leaf([0.0, 1.0])
    with pytest.raises(GradcheckError) as failure:
        tr.gradcheck(sine_scaled_wrongly, [x])
    report = str(failure.value)
    assert "2 of 4 entries differ" in report
    # the worst entry: d out[0] / d in[0] = cos(0) = 1, analytical 1.1
    assert "d out[0] / d in[0]: analytical 1.1, numerical 1" in report


def test_compares_full_jacobians_not_one_product():
    """Reversing the gradient is invisible to backward(ones) but not to the Jacobian."""
    x = leaf([1.0, 2.0, 3.0])
    reversed_identity(x).backward(np.ones(3))
    np.testing.assert_array_equal(x.grad, np.ones(3))
    with pytest.raises(GradcheckError, match="output 0 with respect to input 0"):
        tr.gradcheck(reversed_identity, [x])


def test_raise_exception_false_returns_false():
    x = leaf([0.3, 0.9])
    assert tr.gradcheck(sine_scaled_wrongly, [x], raise_exception=False) is False
    assert tr.gradgradcheck(sine_with_constant_derivative, [x], raise_exception=False) is False
    assert tr.gradcheck(lambda t: t.tanh(), [x], raise_exception=False) is True


def test_gradgradcheck_passes_first_order_right_but_second_order_wrong_ops_only_at_first_order():
    x = leaf([0.3, 0.9, -1.4])
    assert tr.gradcheck(sine_with_constant_derivative, [x])
    with pytest.raises(GradcheckError, match="input 0"):
        tr.gradgradcheck(sine_with_constant_derivative, [x])


def _sine_shifted_when_recorded(g, out, ctx, x):
    """Right on arrays (cos x); with create_graph (x a Tensor) it records sin(x + 0.1): a wrong first
    derivative whose own derivative is consistent with it, so only a comparison with the plain
    backward (which gradcheck checks) can see it."""
    if isinstance(x, tr.Tensor):
        return (g * sine_with_constant_derivative(x + 0.1),)
    return (g * np.cos(x),)


def test_gradgradcheck_refuses_a_recorded_first_derivative_that_differs_from_the_plain_one():
    sine = sine_with_backward(_sine_shifted_when_recorded)
    x = leaf([0.3, -0.7, 1.2])
    assert tr.gradcheck(sine, [x])
    with pytest.raises(GradcheckError, match=r"create_graph=True differs from the plain backward's .* input 0"):
        tr.gradgradcheck(sine, [x])
    assert tr.gradgradcheck(sine, [x], raise_exception=False) is False


def test_gradgradcheck_with_given_upstream_gradients():
    x = leaf([0.3, 0.9])
    v = tr.Tensor(np.array([1.0, -2.0]), requires_grad=True)
    assert tr.gradgradcheck(lambda t: t.exp() * t, [x], grad_outputs=[v])
    assert tr.gradgradcheck(lambda t: t.exp() * t, [x], grad_outputs=[np.array([1.0, -2.0])])


def test_tolerances_decide():
    """An analytical derivative 0.01 too large passes with atol 0.1 and fails with the defaults."""
    off = sine_with_backward(lambda g, out, ctx, x: (g * (np.cos(value_of(x)) + 0.01),))
    x = leaf([0.5])
    assert tr.gradcheck(off, [x], atol=0.1)
    assert not tr.gradcheck(off, [x], raise_exception=False)


# ===================================================================== warnings and dtypes
def test_warns_on_float32_inputs():
    x = tr.Tensor(np.array([0.5, 1.0], np.float32), requires_grad=True)
    with pytest.warns(UserWarning, match="input 0 is float32.*float64"):
        tr.gradcheck(lambda t: t * 2, [x], eps=1e-2, atol=1e-3, rtol=1e-3)


def test_no_warning_on_float64_inputs():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert tr.gradcheck(lambda t: t * 2, [leaf([0.5, 1.0])])


# ===================================================================== numerical_grad and rel_error
@FAST
@given(shape=shapes(), seed=seeds)
def test_numerical_grad_matches_a_closed_form(shape, seed):
    """d/dx sum(w * x^2 * y) = 2 x y w and d/dy = x^2 w."""
    rng = np.random.default_rng(seed)
    x, y, w = smooth(rng, shape), smooth(rng, shape), smooth(rng, shape)
    gx, gy = tr.numerical_grad(lambda a, b: a * a * b, [tr.Tensor(x.copy()), tr.Tensor(y.copy())], grad_output=w)
    np.testing.assert_allclose(gx, 2 * x * y * w, atol=1e-8)
    np.testing.assert_allclose(gy, x * x * w, atol=1e-8)
    # ndarray inputs reach fn as they are
    (g_sum,) = tr.numerical_grad(lambda a: (tr.Tensor(a) ** 2).sum(), [x.copy()])
    np.testing.assert_allclose(g_sum, 2 * x, atol=1e-8)


@pytest.mark.parametrize("x, y, expected", [
    ([1.0, 2.0], [1.0, 2.5], 0.5 / 4.5),
    ([3.0], [-3.0], 1.0),
    ([0.0, 0.0], [0.0, 0.0], 0.0),
    ([1e-9], [0.0], 1e-9 / 1e-8),  # the denominator's floor
    ([[2.0, 4.0]], [[1.0, 4.0]], 1.0 / 3.0),
    ([], [], 0.0),
    (5.0, 5.0, 0.0),
])
def test_rel_error_on_hand_values(x, y, expected):
    """rel_error = max |x - y| / max(1e-8, |x| + |y|)."""
    assert tr.rel_error(np.array(x), np.array(y)) == pytest.approx(expected, rel=1e-12)


def test_rel_error_is_symmetric_and_takes_tensors_and_float32():
    a, b = np.array([1.0, -2.0, 3.0], np.float32), np.array([1.5, -2.0, 2.0], np.float32)
    assert tr.rel_error(a, b) == tr.rel_error(b, a) == pytest.approx(0.5 / 2.5)
    assert tr.rel_error(tr.Tensor(a), b) == tr.rel_error(a, b)


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning", "ignore:invalid value:RuntimeWarning")
def test_a_nan_gradient_never_passes():
    """d sqrt(sum x^2) at x = 0 is NaN by the chain rule (0 * inf): gradcheck must not call it a match."""
    x = tr.Tensor(np.zeros(3), requires_grad=True)
    assert tr.gradcheck(lambda a: (a * a).sum().sqrt(), (x,), raise_exception=False) is False
    with pytest.raises(GradcheckError):
        tr.gradcheck(lambda a: (a * a).sum().sqrt(), (x,))
