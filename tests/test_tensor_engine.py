"""The backward walk and the Tensor's contract: accumulation, hooks, no_grad, detach, grad(),
create_graph, aliasing, per-step indexing, and dtypes.

Every expected gradient is computed independently: by hand in NumPy (a loop, a closed form), never
by the engine itself.
"""
import numpy as np
import pytest
from conftest import FAST, FEW, leaf, positive, seeds, smooth
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_rnn as tr


# ===================================================================== fan-in and accumulation
def test_a_tensor_used_several_times_in_one_expression():
    """y = x + x + x * x: dy/dx = 2 + 2x, every use contributes."""
    x = leaf([-1.0, 0.5, 2.0])
    (x + x + x * x).backward(np.ones(3))
    np.testing.assert_allclose(x.grad, 2 + 2 * x.data)


@FAST
@given(steps=st.integers(1, 6), seed=seeds)
def test_a_weight_shared_over_time_steps_gets_the_sum_of_its_uses(steps, seed):
    """h_t = tanh(x_t W_x + h_{t-1} W_h): autograd against backpropagation through time by hand."""
    rng = np.random.default_rng(seed)
    n, d, h = 2, 3, 2
    xs = rng.standard_normal((steps, n, d))
    w_x, w_h = leaf(rng.standard_normal((d, h)) * 0.5), leaf(rng.standard_normal((h, h)) * 0.5)
    upstream = rng.standard_normal((n, h))
    state = tr.Tensor(np.zeros((n, h)))
    for t in range(steps):
        state = (tr.Tensor(xs[t]) @ w_x + state @ w_h).tanh()
    state.backward(upstream)

    hs = [np.zeros((n, h))]
    for t in range(steps):
        hs.append(np.tanh(xs[t] @ w_x.data + hs[-1] @ w_h.data))
    d_wx, d_wh, d_h = np.zeros((d, h)), np.zeros((h, h)), upstream
    for t in reversed(range(steps)):
        d_pre = d_h * (1 - hs[t + 1] ** 2)
        d_wx += xs[t].T @ d_pre
        d_wh += hs[t].T @ d_pre
        d_h = d_pre @ w_h.data.T
    np.testing.assert_allclose(w_x.grad, d_wx, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(w_h.grad, d_wh, rtol=1e-10, atol=1e-12)


def test_leaves_accumulate_across_backward_calls():
    x = leaf([1.0, 2.0])
    (x * 3).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad, 3 + 2 * x.data)
    x.grad = None
    (x * 3).sum().backward()
    np.testing.assert_allclose(x.grad, [3.0, 3.0])


def test_non_leaves_keep_no_grad_unless_retained():
    x = leaf([1.0, -2.0])
    y = x * 2
    z = y * y
    retained = z.exp()
    retained.retain_grad()
    retained.sum().backward()
    assert y.grad is None and z.grad is None
    assert not y.is_leaf and x.is_leaf
    np.testing.assert_allclose(retained.grad, [1.0, 1.0])
    np.testing.assert_allclose(x.grad, np.exp(4 * x.data ** 2) * 8 * x.data)


def test_two_leaves_fed_by_one_add_get_separate_gradient_arrays():
    """The add passes its upstream gradient on unchanged; the leaves must not share it."""
    a, b = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    (a + b).backward(np.array([5.0, 6.0]))
    a.grad *= 0
    np.testing.assert_array_equal(b.grad, [5.0, 6.0])
    a.grad[0] = 1.0
    (a + b).backward(np.array([1.0, 1.0]))
    np.testing.assert_array_equal(a.grad, [2.0, 1.0])
    np.testing.assert_array_equal(b.grad, [6.0, 7.0])


def test_the_root_gradient_passed_in_is_neither_stored_nor_changed():
    x = leaf([1.0, 2.0])
    upstream = np.array([3.0, 4.0])
    (x + 0).backward(upstream)
    (x + 0).backward(upstream)
    np.testing.assert_array_equal(upstream, [3.0, 4.0])
    np.testing.assert_array_equal(x.grad, [6.0, 8.0])


@FAST
@given(steps=st.integers(1, 8), seed=seeds)
def test_a_sequence_read_one_step_at_a_time(steps, seed):
    """sum_t w_t * tanh(X[t]) plus sum(X): each X[t] slice and the whole-tensor use add into X.grad."""
    rng = np.random.default_rng(seed)
    values = rng.standard_normal((steps, 2, 3))
    weights = rng.standard_normal((steps, 2, 3))
    x = leaf(values)
    loss = x.sum()
    for t in range(steps):
        loss = loss + (x[t].tanh() * weights[t]).sum()
    loss.backward()
    np.testing.assert_allclose(x.grad, 1 + weights * (1 - np.tanh(values) ** 2), rtol=1e-12)


def test_per_step_slices_of_a_non_leaf_and_a_zero_dimensional_tensor():
    """Index gradients meeting ordinary ones, in either order, on a non-leaf and on a 0-d leaf."""
    x = leaf([1.0, 2.0, 3.0])
    y = x * 2
    (y[0] * y[2] + y.sum() + y[np.array([1, 1])].sum()).backward()
    # dL/dy = (y2 + 1, 1 + 2, y0 + 1) = (7, 3, 3), and dy/dx = 2
    np.testing.assert_allclose(x.grad, [14.0, 6.0, 6.0])
    s = leaf(np.array(2.0))
    (s[None].sum() + s * 3).backward()
    (s * 3 + s[None].sum()).backward()
    np.testing.assert_allclose(s.grad, 8.0)


# ===================================================================== hooks
def test_a_hook_sees_the_gradient_and_its_replacement_flows_on():
    x = leaf([1.0, 2.0])
    y = x * 2
    seen = []

    def times_ten(g):
        seen.append(np.array(g))
        return g * 10

    y.register_hook(times_ten)
    (y * 3).sum().backward()
    np.testing.assert_array_equal(seen[0], [3.0, 3.0])
    np.testing.assert_array_equal(x.grad, [60.0, 60.0])


def test_a_hook_on_a_leaf_fires_once_with_the_total_and_its_result_is_stored():
    x = leaf([1.0, 2.0])
    calls = []

    def record_and_halve(g):
        calls.append(np.array(g))
        return g / 2

    x.register_hook(record_and_halve)
    (x * 2 + x * x + x).sum().backward()
    assert len(calls) == 1
    np.testing.assert_allclose(calls[0], 3 + 2 * x.data)
    np.testing.assert_allclose(x.grad, (3 + 2 * x.data) / 2)


def test_a_hook_returning_none_leaves_the_gradient_and_remove_unregisters():
    x = leaf([1.0, 2.0])
    calls = []
    handle = x.register_hook(lambda g: calls.append(1))
    (x * 4).sum().backward()
    np.testing.assert_array_equal(x.grad, [4.0, 4.0])
    handle.remove()
    handle.remove()  # a second remove is harmless
    (x * 4).sum().backward()
    assert len(calls) == 1
    np.testing.assert_array_equal(x.grad, [8.0, 8.0])


def test_the_array_a_hook_kept_is_not_changed_by_later_accumulation():
    x = leaf([1.0, 2.0])
    kept = []
    x.register_hook(kept.append)
    (x * x).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_array_equal(kept[0], [2.0, 4.0])
    np.testing.assert_array_equal(x.grad, [4.0, 8.0])


def test_hooks_run_with_create_graph_and_their_replacement_is_differentiable():
    x = leaf([1.0, 2.0])
    y = x * x
    handle = y.register_hook(lambda g: g * y)  # dy/dx = 2x, so x.grad = (1 * y) * 2x = 2x^3
    y.sum().backward(create_graph=True)
    np.testing.assert_allclose(x.grad.data, 2 * x.data ** 3)
    handle.remove()  # or it would act on the second pass through y too
    (second,) = tr.grad(x.grad.sum(), x)
    np.testing.assert_allclose(second.data, 6 * x.data ** 2)


# ===================================================================== no_grad and detach
def test_no_grad_as_a_context_manager_records_nothing_and_nests():
    x = leaf([1.0, 2.0])
    with tr.no_grad():
        y = x * 2
        with tr.no_grad():
            z = y + x
        w = z * x
    after = x * 2
    assert not y.requires_grad and not z.requires_grad and not w.requires_grad
    assert after.requires_grad
    np.testing.assert_array_equal(w.data, (x.data * 2 + x.data) * x.data)


def test_no_grad_restores_the_mode_after_an_exception():
    x = leaf([1.0])
    with pytest.raises(ZeroDivisionError):
        with tr.no_grad():
            1 / 0
    assert (x * 2).requires_grad


def test_no_grad_as_a_decorator():
    x = leaf([1.0, 2.0])

    @tr.no_grad()
    def double(t):
        """Doubles."""
        return t * 2

    assert not double(x).requires_grad
    assert double.__name__ == "double" and double.__doc__ == "Doubles."
    assert (x * 2).requires_grad


def test_detach_shares_the_data_and_cuts_the_graph():
    x = leaf([1.0, 3.0])
    d = x.detach()
    assert not d.requires_grad and d.is_leaf and np.shares_memory(d.data, x.data)
    (d * x).sum().backward()
    np.testing.assert_array_equal(x.grad, x.data)


# ===================================================================== grad() and create_graph
def test_grad_returns_gradients_without_touching_dot_grad():
    a, b = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    y = a * b
    y.retain_grad()
    ga, gb = tr.grad(y.sum(), [a, b])
    np.testing.assert_array_equal(ga.data, b.data)
    np.testing.assert_array_equal(gb.data, a.data)
    assert a.grad is None and b.grad is None and y.grad is None
    assert isinstance(ga, tr.Tensor) and not ga.requires_grad


def test_grad_results_are_writable_and_not_aliased():
    a, b = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    upstream = np.array([5.0, 6.0])
    ga, gb = tr.grad(a + b, [a, b], upstream)
    ga.data[0] = 0.0
    np.testing.assert_array_equal(gb.data, [5.0, 6.0])
    np.testing.assert_array_equal(upstream, [5.0, 6.0])
    (gs,) = tr.grad(a.sum(), a)
    gs.data[0] = 7.0  # would fail on a read-only broadcast view


def test_grad_of_an_unreachable_input():
    a, b = leaf([1.0]), leaf([2.0])
    assert tr.grad((a * 2).sum(), [a, b], allow_unused=True)[1] is None
    with pytest.raises(RuntimeError, match="not reachable"):
        tr.grad((a * 2).sum(), [a, b])


def test_backward_with_create_graph_gives_a_differentiable_grad():
    """d/dx of d(x^3)/dx = 6x."""
    x = leaf([-1.5, 0.5, 2.0])
    (x ** 3).sum().backward(create_graph=True)
    assert isinstance(x.grad, tr.Tensor) and x.grad.requires_grad
    np.testing.assert_allclose(x.grad.data, 3 * x.data ** 2)
    first = x.grad
    x.grad = None
    first.sum().backward()
    np.testing.assert_allclose(x.grad, 6 * x.data)


def test_third_derivative_by_nested_grad():
    """d^3/dx^3 sin-free closed form: f = x^2 exp(x), f''' = (x^2 + 6x + 6) exp(x)."""
    x = leaf([-0.5, 0.3, 1.2])
    (d1,) = tr.grad((x * x * x.exp()).sum(), x, create_graph=True)
    (d2,) = tr.grad(d1.sum(), x, create_graph=True)
    (d3,) = tr.grad(d2.sum(), x)
    np.testing.assert_allclose(d3.data, (x.data ** 2 + 6 * x.data + 6) * np.exp(x.data), rtol=1e-12)


def test_a_first_order_backward_after_a_create_graph_one_accumulates_into_an_array():
    x = leaf([1.0, 2.0])
    (x * x).sum().backward(create_graph=True)
    (x * 3).sum().backward()
    assert isinstance(x.grad, np.ndarray)
    np.testing.assert_allclose(x.grad, 2 * x.data + 3)


# ===================================================================== dtypes
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.int32, np.int64, np.bool_])
def test_an_ndarray_keeps_its_dtype(dtype):
    assert tr.Tensor(np.zeros(2, dtype=dtype)).dtype == dtype
    assert tr.Tensor(np.zeros(2, dtype=dtype), dtype=np.float64).dtype == np.float64


@pytest.mark.parametrize("default", [np.float32, np.float64])
def test_scalars_and_lists_take_the_default_dtype(default, restore_default_dtype):
    tr.set_default_dtype(default)
    assert tr.get_default_dtype() == default
    for value in (2.5, 3, True, [1, 2], [[1.0], [2.0]]):
        assert tr.Tensor(value).dtype == default
    assert tr.Tensor(2.5, dtype=np.float16).dtype == np.float16
    assert (tr.Tensor(np.ones(2, np.float16)) * 2.5).dtype == np.float16


def test_the_default_dtype_is_float32():
    assert tr.get_default_dtype() == np.float32


def test_the_default_dtype_must_be_floating(restore_default_dtype):
    with pytest.raises(TypeError, match="int64"):
        tr.set_default_dtype(np.int64)
    assert tr.get_default_dtype() == np.float32


FLOAT32_OPS = {  # name: f(x (n, m), y (m,)), both positive float32 leaves
    "add": lambda x, y: x + y,
    "sub": lambda x, y: x - y,
    "mul": lambda x, y: x * y,
    "div": lambda x, y: x / y,
    "pow tensor": lambda x, y: x ** y,
    "pow number": lambda x, y: x ** 2 + y ** 0.5 + x ** np.float64(3),
    "rpow": lambda x, y: 2.0 ** x,
    "numbers and arrays": lambda x, y: (2.5 - x) * 3 / (1 + y) + np.ones(y.shape, np.float32) + np.arange(
        y.shape[0]) + np.float64(1.5),
    "neg": lambda x, y: -x,
    "matmul": lambda x, y: x @ y,
    "exp": lambda x, y: x.exp(),
    "log": lambda x, y: x.log(),
    "sqrt": lambda x, y: x.sqrt(),
    "tanh": lambda x, y: x.tanh(),
    "sigmoid": lambda x, y: x.sigmoid(),
    "relu": lambda x, y: (x - 1.1).relu(),
    "abs": lambda x, y: (x - 1.1).abs(),
    "clip": lambda x, y: x.clip(0.8, 1.6),
    "astype": lambda x, y: x.astype(np.float64).astype(np.float32),
    "sum": lambda x, y: x.sum(axis=0),
    "mean": lambda x, y: x.mean(axis=1, keepdims=True) + y.mean(),
    "max": lambda x, y: x.amax(axis=-1) + y.max(),
    "reshape": lambda x, y: x.reshape(-1),
    "transpose": lambda x, y: x.T + x.transpose(1, 0),
    "broadcast_to": lambda x, y: y.broadcast_to(x.shape),
    "slice": lambda x, y: x[::-1, 1:],
    "integer index": lambda x, y: x[np.array([0, 0, -1])],
    "mask": lambda x, y: x[x.data > 1.2],
    "split": lambda x, y: tr.concat(x.split(2, axis=1)[::-1], axis=1),
    "chunk": lambda x, y: tr.stack(y.chunk(2)[:1] * 2),
    "concat": lambda x, y: tr.concat([x, y.reshape(1, -1)]),
    "stack": lambda x, y: tr.stack([x[0], y], axis=1),
    "where": lambda x, y: tr.where(x.data > 1.2, x, y),
}


@pytest.mark.parametrize("name", sorted(FLOAT32_OPS))
@FEW
@given(n=st.integers(1, 3), m=st.integers(1, 3), seed=seeds)
def test_float32_stays_float32_through_every_op_and_gradient(name, n, m, seed):
    rng = np.random.default_rng(seed)
    x = tr.Tensor(positive(rng, (n, m)).astype(np.float32), requires_grad=True)
    y = tr.Tensor(positive(rng, (m,)).astype(np.float32), requires_grad=True)
    out = FLOAT32_OPS[name](x, y)
    assert out.dtype == np.float32
    upstream = np.ones(out.shape, dtype=np.float32)
    out.backward(upstream)
    for t in (x, y):
        assert t.grad is None or t.grad.dtype == np.float32
    firsts = tr.grad(out, [x, y], upstream, create_graph=True, allow_unused=True)
    for first in firsts:
        assert first is None or first.dtype == np.float32
        if first is not None and first.requires_grad:
            for second in tr.grad(first.sum(), [x, y], allow_unused=True):
                assert second is None or second.dtype == np.float32


def test_integer_and_bool_tensors_cannot_require_grad():
    for data in (np.arange(3), np.array([True, False])):
        with pytest.raises(TypeError, match=str(data.dtype)):
            tr.Tensor(data, requires_grad=True)
        with pytest.raises(TypeError, match=str(data.dtype)):
            tr.Tensor(data).requires_grad_()
    x = leaf([1.5, 2.5])
    assert not x.astype(np.int64).requires_grad
    assert not (x > 2).requires_grad and (x > 2).dtype == np.bool_


@pytest.mark.parametrize("name", ["add", "sub", "mul", "div", "pow", "matmul", "where", "concat", "stack",
                                  "less"])
def test_mixing_float32_and_float64_raises_naming_both(name):
    a = tr.Tensor(np.ones(2, np.float32), requires_grad=True)
    b = tr.Tensor(np.ones(2, np.float64), requires_grad=True)
    ops = {
        "add": lambda: a + b, "sub": lambda: a - b, "mul": lambda: a * b, "div": lambda: a / b,
        "pow": lambda: a ** b, "matmul": lambda: a @ b, "where": lambda: tr.where(np.ones(2, bool), a, b),
        "concat": lambda: tr.concat([a, b]), "stack": lambda: tr.stack([a, b]), "less": lambda: a < b,
    }
    with pytest.raises(TypeError, match=r"float32.*float64|float64.*float32"):
        ops[name]()


def test_a_float64_array_operand_on_a_float32_tensor_raises():
    a = tr.Tensor(np.ones(2, np.float32))
    with pytest.raises(TypeError, match=r"float32.*float64"):
        a + np.ones(2)
    with pytest.raises(TypeError, match=r"float32.*float64"):
        np.ones(2) * a


def test_integer_operands_take_the_float_tensor_dtype():
    a = tr.Tensor(np.ones(2, np.float32), requires_grad=True)
    out = a * np.arange(2) + tr.Tensor(np.array([1, 2]))
    assert out.dtype == np.float32
    out.sum().backward()
    np.testing.assert_array_equal(a.grad, [0.0, 1.0])


@FAST
@given(seed=seeds)
def test_operators_with_an_ndarray_on_the_left_return_tensors(seed):
    x = leaf(smooth(np.random.default_rng(seed), (2, 2)))
    w = np.arange(4.0).reshape(2, 2)
    results = [w + x, w - x, w * x, w / (x * x + 1), w @ x]
    assert all(isinstance(r, tr.Tensor) and r.requires_grad for r in results)
    (w @ x).sum().backward()
    np.testing.assert_allclose(x.grad, w.T @ np.ones((2, 2)))


def test_no_grad_as_a_decorator_is_reentrant():
    """A recursive function decorated once: every exit restores what its own entry found."""
    @tr.no_grad()
    def depth(n):
        return depth(n - 1) if n else (leaf([1.0]) * 2).requires_grad

    assert depth(3) is False
    assert (leaf([1.0]) * 2).requires_grad and tr.is_grad_enabled()


def test_requires_grad_again_on_a_leaf_keeps_its_hooks():
    x = leaf([1.0, 2.0])
    x.register_hook(lambda g: g * 3)
    x.requires_grad_()
    (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad, [6.0, 12.0])


def test_a_number_on_the_left_of_a_parameter():
    p = tr.nn.Parameter(np.array([1.0, 2.0]))
    for result, expected, slope in [(2.0 * p, [2.0, 4.0], 2.0), (1 - p, [0.0, -1.0], -1.0), (3.0 / p, [3.0, 1.5], None)]:
        np.testing.assert_array_equal(result.data, expected)
        p.grad = None
        result.sum().backward()
        np.testing.assert_array_equal(p.grad, np.full(2, slope) if slope is not None else -3.0 / p.data ** 2)


def test_np_array_of_a_tensor_is_a_copy_and_np_asarray_shares():
    t = tr.Tensor(np.array([1.0, 2.0]))
    copied = np.array(t)
    copied[0] = 5.0
    assert t.data[0] == 1.0
    assert np.asarray(t) is t.data


def test_relu_at_infinities_nan_and_zeros_as_pytorch():
    x = leaf([-np.inf, -1.0, -0.0, 0.0, 2.0, np.inf])
    y = x.relu()
    np.testing.assert_array_equal(y.data, [0.0, 0.0, 0.0, 0.0, 2.0, np.inf])
    assert not np.signbit(y.data).any()
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 0.0, 0.0, 0.0, 1.0, 1.0])
    assert np.isnan(tr.Tensor(np.array([np.nan])).relu().data[0])


def test_a_parameter_given_new_data_gets_a_gradient_of_the_new_shape_and_dtype():
    """A backward that reads only an input's shape and dtype reads them from the input as the op saw it."""
    p = tr.nn.Parameter(np.ones((2, 3), np.float32))
    p.data = np.ones((4, 3), np.float64)
    (p.sum() + p.reshape(3, 4).sum()).backward()
    assert p.grad.shape == (4, 3) and p.grad.dtype == np.float64
    np.testing.assert_array_equal(p.grad, np.full((4, 3), 2.0))


def test_a_custom_op_that_reads_no_input_still_gets_arrays_of_its_inputs_shape():
    """A user's Op with reads=NOTHING: its backward gets ndarrays of the inputs' shapes and dtypes."""
    seen = []

    def backward(g, out, ctx, x):
        seen.append((type(x), x.shape, x.dtype))
        return (g * np.ones_like(x),)

    double = tr.ops.Op("double", lambda ctx, x: 2 * x, backward, tr.ops.NOTHING)
    w = tr.Tensor(np.array([[1.0, 2.0, 3.0]], np.float32), requires_grad=True)
    double(None, w).sum().backward()
    assert seen == [(np.ndarray, (1, 3), np.float32)]
    assert w.grad.dtype == np.float32
