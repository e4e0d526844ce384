"""0-d tensors and random expression graphs with fan-out: values, first and second derivatives.

A full reduction (``out.sum()``) gives a 0-d tensor. NumPy computes 0-d results as NumPy scalars,
not arrays, and a 0-d gradient that the backward walk adds into in place then silently loses a
contribution (``x.grad`` 1.7043 instead of 1.0780 below) or crashes (``clip``, ``where``, ``abs``
of a 0-d value). This file pins that down three ways:

1. the exact former failures, against closed forms derived by hand;
2. every op's result, and every gradient, holds an ``np.ndarray`` (0-d included), over shapes
   including ();
3. random DAGs of ops over 1-3 leaves (shapes including ()), in which intermediate values are
   reused by several later ops (fan-out: the case that lost a contribution), full reductions are
   combined again with other nodes, and partial reductions, reshapes, indexing, broadcasting,
   ``where``/``stack``/``concat`` and matmul mix. A graph is a small list of instructions,
   interpreted three times: with NumPy arrays (the independent judge: central finite differences
   written here, sharing no code with the library), with tinygrad_rnn Tensors, and with torch
   float64 tensors when torch is installed. First-order gradients (``backward`` and ``tr.grad``),
   second-order ones (``tr.grad`` twice, a Hessian-vector product) and retained 0-d
   intermediates' gradients are all checked against finite differences, and against torch to 1e-10.

The graph builder evaluates each new node in NumPy as it draws it and keeps only ops whose
operand is in a smooth region (at least ``GAP`` from the kink of abs/relu/clip/where, a unique max
by ``GAP``, moderate magnitudes), so finite differences are a valid judge at every example.
"""
import types

import numpy as np
import pytest
from conftest import FAST, FEW, avoiding, broadcast_shapes, distinct, leaf, positive, seeds, shapes, smooth
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygrad_rnn as tr

GAP = 0.05          # how far a kink (abs/relu/clip/where/max ties) stays from every operand value
EPS = 1e-6          # central-difference step
LIMIT = 50.0        # largest magnitude a node may take (finite differences stay accurate)
GRAPHS = settings(max_examples=50, deadline=None)


def is_array(value):
    return type(value) is np.ndarray


# ===================================================================== 1. the former failures
def closed_form_tanh_graph(x):
    """d/dx of f = 0.7 t + 0.9 t / (|t| + 0.3), t = tanh(x).

    d/dt [t / (|t| + c)] = ((|t| + c) - t sign(t)) / (|t| + c)^2 = c / (|t| + c)^2, and
    dt/dx = 1 - t^2, so f'(x) = (0.7 + 0.9 * 0.3 / (|t| + 0.3)^2) (1 - t^2).
    """
    t = np.tanh(x)
    value = 0.7 * t + 0.9 * t / (abs(t) + 0.3)
    return value, (0.7 + 0.27 / (abs(t) + 0.3) ** 2) * (1 - t * t)


def test_the_lost_contribution_tanh_abs_div_on_a_0d_leaf():
    """The reported case: 1.0780 (the closed form), not 1.7043."""
    x = tr.Tensor(np.array(0.41), requires_grad=True)
    t = x.tanh()
    out = t * 0.7 + t / (t.abs() + 0.3) * 0.9
    assert out.shape == () and is_array(out.data)
    out.backward()
    value, slope = closed_form_tanh_graph(0.41)
    assert is_array(x.grad) and x.grad.shape == () and x.grad.dtype == np.float64
    np.testing.assert_allclose(out.data, value, rtol=1e-14)
    np.testing.assert_allclose(x.grad, slope, rtol=1e-13)
    np.testing.assert_allclose(x.grad, 1.0780260396390648, rtol=1e-13)
    assert abs(x.grad - 1.7043) > 0.5


@pytest.mark.parametrize("through", ["0-d leaf", "full sum of a vector", "full mean of a matrix"])
@pytest.mark.parametrize("x0", [-1.3, -0.41, 0.05, 0.41, 2.0])
def test_the_lost_contribution_at_several_points_and_through_full_reductions(through, x0):
    """The same graph where x itself comes out of a full reduction (the 0-d tensor a loss is)."""
    if through == "0-d leaf":
        source, weights = leaf(np.array(x0)), np.ones(())
        x = source
    elif through == "full sum of a vector":  # x = 0.5 * 2 x0 - 0.25 + 2 * 0.125 = x0
        weights = np.array([0.5, -1.0, 2.0])
        source = leaf(np.array([2 * x0, 0.25, 0.125]))
        x = (source * weights).sum()
    else:
        weights = np.full((2, 3), 1 / 6)
        source = leaf(np.full((2, 3), x0))
        x = source.mean()
    assert x.shape == () and is_array(x.data)
    x_value = float(x.data)
    np.testing.assert_allclose(x_value, x0, rtol=1e-14)
    t = x.tanh()
    out = t * 0.7 + t / (t.abs() + 0.3) * 0.9
    out.backward()
    value, slope = closed_form_tanh_graph(x_value)
    np.testing.assert_allclose(out.data, value, rtol=1e-13)
    assert is_array(source.grad) and source.grad.shape == source.shape
    np.testing.assert_allclose(source.grad, slope * weights, rtol=1e-12, atol=1e-15)


# each former crash on a 0-d s = (w * x).sum(): (the op on Tensors, its value, its derivative in s)
FORMER_CRASHES = {
    "s.clip(0, 0.3)": (lambda s: s.clip(0, 0.3), lambda s: np.clip(s, 0, 0.3), lambda s: float(0 <= s <= 0.3)),
    "tr.where(s > 0, s, 0.0)": (lambda s: tr.where(s > 0, s, 0.0), lambda s: max(s, 0.0), lambda s: float(s > 0)),
    "s * s.abs()": (lambda s: s * s.abs(), lambda s: s * abs(s), lambda s: 2 * abs(s)),
    "(s + s).abs()": (lambda s: (s + s).abs(), lambda s: abs(2 * s), lambda s: 2 * np.sign(s)),
}


@pytest.mark.parametrize("case", sorted(FORMER_CRASHES))
@pytest.mark.parametrize("s0", [-0.7, 0.2, 0.41, 1.1])
@pytest.mark.parametrize("source", ["0-d leaf", "full sum"])
def test_the_former_crashes_forward_and_backward(case, s0, source):
    op, value, slope = FORMER_CRASHES[case]
    if source == "0-d leaf":
        x, w = leaf(np.array(s0)), np.ones(())
    else:  # s = sum(w * x) over a vector, with s = s0
        w = np.array([1.0, -2.0, 0.5])
        x = leaf(np.array([s0, 0.25, 1.0]))
    s = (x * w).sum() if source == "full sum" else x
    assert s.shape == () and is_array(s.data)
    out = op(s)
    assert out.shape == () and is_array(out.data) and out.dtype == np.float64
    np.testing.assert_allclose(out.data, value(s0), rtol=1e-14)
    out.backward()
    assert is_array(x.grad) and x.grad.shape == x.shape and x.grad.dtype == np.float64
    np.testing.assert_allclose(x.grad, slope(s0) * w, rtol=1e-14)
    # and again with create_graph, the gradient a Tensor over an ndarray
    (g,) = tr.grad(op(s), x, create_graph=True)
    assert isinstance(g, tr.Tensor) and is_array(g.data) and g.shape == x.shape
    np.testing.assert_allclose(g.data, slope(s0) * w, rtol=1e-14)


def test_the_former_crashes_combined_in_one_graph_with_fan_out():
    """All four on one 0-d s, each reusing s, summed: every contribution arrives."""
    x = leaf(np.array(0.2))
    s = x * 1.25
    out = s.clip(0, 0.3) + tr.where(s > 0, s, 0.0) + s * s.abs() + (s + s).abs()
    out.backward()
    s0 = 0.25
    expected = 1.25 * (1 + 1 + 2 * s0 + 2)
    assert is_array(x.grad)
    np.testing.assert_allclose(x.grad, expected, rtol=1e-14)


# ===================================================================== 2. every result an ndarray
def central_differences(value_at, base, eps=EPS):
    """d value_at(x) / dx at x = ``base`` (an ndarray), entry by entry: (f(x + eps) - f(x - eps)) / 2 eps,
    every evaluation on a fresh copy of ``base``."""
    g = np.zeros(base.shape)
    for position in np.ndindex(base.shape):
        total = []
        for sign in (1, -1):
            shifted = base.copy()
            shifted[position] += sign * eps
            total.append(float(value_at(shifted)))
        g[position] = (total[0] - total[1]) / (2 * eps)
    return g


def _check_result_and_gradients(fn, reference, arrays, seed):
    """``fn`` on float64 leaves: ndarray ``.data`` of the reference's shape and values; then
    ``backward(w)`` leaves ndarray gradients equal to central differences of sum(reference * w)."""
    arrays = [np.array(a, dtype=np.float64) for a in arrays]
    leaves = [leaf(a) for a in arrays]
    out = fn(*leaves)
    want = np.asarray(reference(*[a.copy() for a in arrays]))
    assert is_array(out.data), type(out.data)
    assert out.shape == want.shape and out.dtype == want.dtype
    np.testing.assert_allclose(out.data, want, rtol=1e-12, atol=1e-14)
    if not out.requires_grad:
        return
    w = np.random.default_rng(seed).standard_normal(out.shape)
    out.backward(w)
    for i, (x, a) in enumerate(zip(leaves, arrays)):
        assert is_array(x.grad), type(x.grad)
        assert x.grad.shape == a.shape and x.grad.dtype == np.float64
        if out.dtype != np.float64:  # a float32 result: finite differences would measure its rounding
            continue
        numeric = central_differences(lambda shifted: np.sum(np.asarray(
            reference(*[shifted if j == i else b.copy() for j, b in enumerate(arrays)]), dtype=np.float64) * w), a)
        np.testing.assert_allclose(x.grad, numeric, rtol=1e-5, atol=1e-7)


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


UNARY = {  # name: (on a Tensor, in NumPy, value generator)
    "exp": (lambda x: x.exp(), np.exp, smooth),
    "log": (lambda x: x.log(), np.log, positive),
    "tanh": (lambda x: x.tanh(), np.tanh, smooth),
    "sigmoid": (lambda x: x.sigmoid(), _sigmoid, smooth),
    "relu": (lambda x: x.relu(), lambda x: np.maximum(x, 0), avoiding),
    "abs": (lambda x: x.abs(), np.abs, avoiding),
    "abs()": (lambda x: abs(x), np.abs, avoiding),
    "sqrt": (lambda x: x.sqrt(), np.sqrt, positive),
    "clip(-0.5, 0.5)": (lambda x: x.clip(-0.5, 0.5), lambda x: np.clip(x, -0.5, 0.5),
                        lambda rng, shape: avoiding(rng, shape, kinks=(-0.5, 0.5))),
    "clip(None, 0.3)": (lambda x: x.clip(None, 0.3), lambda x: np.clip(x, None, 0.3),
                        lambda rng, shape: avoiding(rng, shape, kinks=(0.3,))),
    "neg": (lambda x: -x, np.negative, smooth),
    "x ** 3": (lambda x: x ** 3, lambda x: x ** 3, smooth),
    "x ** 0.5": (lambda x: x ** 0.5, np.sqrt, positive),
    "astype(float64)": (lambda x: x.astype(np.float64), lambda x: x.astype(np.float64), smooth),
    "astype(float32)": (lambda x: x.astype(np.float32), lambda x: x.astype(np.float32), smooth),
    "astype(int64)": (lambda x: (x * 3).astype(np.int64), lambda x: (x * 3).astype(np.int64), smooth),
    "astype(bool)": (lambda x: x.astype(bool), lambda x: x.astype(bool), avoiding),
    "detach": (lambda x: x.detach(), lambda x: x, smooth),
    ".T": (lambda x: x.T, lambda x: x.T, smooth),
    "reshape(-1)": (lambda x: x.reshape(-1), lambda x: x.reshape(-1), smooth),
    "x[()]": (lambda x: x[()], lambda x: x[()], smooth),
    "x[x > 0] (mask)": (lambda x: x[x > 0], lambda x: x[x > 0], avoiding),
    "stack([x, x])": (lambda x: tr.stack([x, x]), lambda x: np.stack([x, x]), smooth),
    "stack([x, x * 2], axis=-1)": (lambda x: tr.stack([x, x * 2], axis=-1), lambda x: np.stack([x, x * 2], axis=-1),
                                   smooth),
    "where(x > 0, x, 0.0)": (lambda x: tr.where(x > 0, x, 0.0), lambda x: np.where(x > 0, x, 0.0), avoiding),
    "where(x > 0, 1.0, x)": (lambda x: tr.where(x > 0, 1.0, x), lambda x: np.where(x > 0, 1.0, x), avoiding),
}


@pytest.mark.parametrize("name", sorted(UNARY))
@FEW
@given(shape=shapes(), seed=seeds)
def test_unary_results_are_ndarrays(name, shape, seed):
    fn, reference, values = UNARY[name]
    _check_result_and_gradients(fn, reference, [values(np.random.default_rng(seed), shape)], seed)


BINARY = {  # name: (on Tensors, in NumPy, generator of the right operand)
    "a + b": (lambda a, b: a + b, smooth),
    "a - b": (lambda a, b: a - b, smooth),
    "a * b": (lambda a, b: a * b, smooth),
    "a / b": (lambda a, b: a / b, positive),
    "a ** b": (None, positive),  # the left operand made positive below
    "a < b": (lambda a, b: a < b, smooth),
    "a <= b": (lambda a, b: a <= b, smooth),
    "a > b": (lambda a, b: a > b, smooth),
    "a >= b": (lambda a, b: a >= b, smooth),
    "a == b": (lambda a, b: a == b, smooth),
    "a != b": (lambda a, b: a != b, smooth),
    "where(a > b, a, b)": (None, smooth),
    "stack([a * b, b * a])": (None, smooth),
}


def _binary(name):
    if name == "a ** b":
        return (lambda a, b: (a * a + 0.5) ** b), (lambda a, b: (a * a + 0.5) ** b)
    if name == "where(a > b, a, b)":
        return (lambda a, b: tr.where(a > b, a, b)), (lambda a, b: np.where(a > b, a, b))
    if name == "stack([a * b, b * a])":
        return (lambda a, b: tr.stack([a * b, b * a])), (lambda a, b: np.stack([a * b, b * a]))
    fn = BINARY[name][0]
    return fn, fn


@pytest.mark.parametrize("name", sorted(BINARY))
@FEW
@given(pair=broadcast_shapes(), seed=seeds)
def test_binary_results_are_ndarrays(name, pair, seed):
    """Two tensors whose shapes broadcast (one or both may be 0-d)."""
    rng = np.random.default_rng(seed)
    a, b = smooth(rng, pair[0]), BINARY[name][1](rng, pair[1])
    if name.startswith("where") and b.shape == np.broadcast_shapes(a.shape, b.shape):
        b = a + avoiding(rng, b.shape)  # a - b away from 0: the condition does not flip under a small step
    if name.startswith("where") and np.min(np.abs(np.subtract(a, b)), initial=1.0) < GAP:
        return
    fn, reference = _binary(name)
    _check_result_and_gradients(fn, reference, [a, b], seed)


SCALAR_OPERAND = {
    "x + 1.5": lambda x: x + 1.5, "1.5 + x": lambda x: 1.5 + x, "x - 2": lambda x: x - 2,
    "2 - x": lambda x: 2 - x, "0.7 * x": lambda x: 0.7 * x, "x * 0.7": lambda x: x * 0.7,
    "x / 4": lambda x: x / 4, "1 / (x * x + 0.5)": lambda x: 1 / (x * x + 0.5),
    "2.0 ** x": lambda x: 2.0 ** x, "x * np.float64(3)": lambda x: x * np.float64(3),
    "x > 0.1": lambda x: x > 0.1, "x == x": lambda x: x == x,
}


@pytest.mark.parametrize("name", sorted(SCALAR_OPERAND))
@FEW
@given(shape=shapes(), seed=seeds)
def test_results_with_a_scalar_operand_are_ndarrays(name, shape, seed):
    fn = SCALAR_OPERAND[name]
    _check_result_and_gradients(fn, fn, [smooth(np.random.default_rng(seed), shape)], seed)


@FAST
@given(n=st.integers(1, 3), m=st.integers(1, 3), form=st.sampled_from(["v@v", "M@v", "v@M", "M@M", "B@v"]),
       seed=seeds)
def test_matmul_results_are_ndarrays(n, m, form, seed):
    """1-D @ 1-D is 0-d; the others reduce to 1-D or 2-D (and a batch)."""
    left, right = {"v@v": ((n,), (n,)), "M@v": ((m, n), (n,)), "v@M": ((n,), (n, m)),
                   "M@M": ((m, n), (n, 2)), "B@v": ((2, m, n), (n,))}[form]
    rng = np.random.default_rng(seed)
    _check_result_and_gradients(lambda a, b: a @ b, lambda a, b: a @ b, [smooth(rng, left), smooth(rng, right)], seed)


@st.composite
def reductions(draw):
    """(shape, op, axis, keepdims): axis None, an int or a tuple (possibly empty) of valid axes."""
    shape = draw(shapes())
    op = draw(st.sampled_from(["sum", "mean", "max"]))
    ndim = len(shape)
    kinds = ["none", "tuple"] + (["int", "negative int"] if ndim else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "none":
        axis = None
    elif kind == "int":
        axis = draw(st.integers(0, ndim - 1))
    elif kind == "negative int":
        axis = draw(st.integers(-ndim, -1))
    else:
        axis = tuple(draw(st.lists(st.integers(0, ndim - 1), unique=True, max_size=ndim))) if ndim else ()
    return shape, op, axis, draw(st.booleans())


@FAST
@given(case=reductions(), seed=seeds)
def test_reduction_results_are_ndarrays(case, seed):
    """sum/mean/max over None, an int, a tuple (empty included) of axes, with and without keepdims."""
    shape, op, axis, keepdims = case
    rng = np.random.default_rng(seed)
    x = distinct(rng, shape) if op == "max" else smooth(rng, shape)
    reference = {"sum": np.sum, "mean": np.mean, "max": np.max}[op]
    method = "amax" if op == "max" else op  # NumPy's max(axis) is amax here (max(dim) is PyTorch's pair)
    _check_result_and_gradients(lambda t: getattr(t, method)(axis=axis, keepdims=keepdims),
                                lambda a: reference(a, axis=axis, keepdims=keepdims), [x], seed)
    # and the 0-d result of a full reduction, combined again with the tensor it came from
    _check_result_and_gradients(lambda t: t * getattr(t, op)() + getattr(t, op)().tanh(),
                                lambda a: a * reference(a) + np.tanh(reference(a)), [x], seed)


INDEXING = {  # name: (index, minimum number of dimensions)
    "x[0]": (0, 1), "x[-1]": (-1, 1), "x[()]": ((), 0), "x[..., 0]": ((Ellipsis, 0), 1),
    "x[0, 0]": ((0, 0), 2), "x[0, ..., -1]": ((0, Ellipsis, -1), 2), "x[[0, 0]]": ([0, 0], 1),
    "x[np.array(0)]": (np.array(0), 1), "x[np.int64(0)]": (np.int64(0), 1), "x[:1]": (slice(0, 1), 1),
    "x[None]": (None, 0),
}


@pytest.mark.parametrize("name", sorted(INDEXING))
@FEW
@given(shape=shapes(), seed=seeds)
def test_indexing_results_are_ndarrays(name, shape, seed):
    """Indexing that yields 0-d (x[0] of a 1-D, x[()] of a 0-d, x[0, 0] of a 2-D ...) and more."""
    index, min_dims = INDEXING[name]
    if len(shape) < min_dims:
        shape = (2,) * min_dims
    x = smooth(np.random.default_rng(seed), shape)
    index_np = list(index) if isinstance(index, list) else index
    _check_result_and_gradients(lambda t: t[index], lambda a: a[index_np], [x], seed)
    # the same element read twice (fan-out through indexing) and combined with a full reduction
    _check_result_and_gradients(lambda t: t[index] * t[index] + t.sum() * t[index],
                                lambda a: a[index_np] * a[index_np] + a.sum() * a[index_np], [x], seed)


@FAST
@given(shape=shapes(max_dims=2), seed=seeds)
def test_reshape_to_and_from_0d_gives_ndarrays(shape, seed):
    x = smooth(np.random.default_rng(seed), shape)
    size1 = int(np.prod(shape, dtype=int)) == 1
    if size1:
        _check_result_and_gradients(lambda t: t.reshape(()), lambda a: a.reshape(()), [x], seed)
        _check_result_and_gradients(lambda t: t.reshape(()).reshape(1, 1, 1), lambda a: a.reshape(1, 1, 1), [x], seed)
    _check_result_and_gradients(lambda t: t.sum().reshape(1), lambda a: a.sum().reshape(1), [x], seed)
    _check_result_and_gradients(lambda t: t.sum().reshape(1, 1).reshape(()) * t,
                                lambda a: a.sum() * a, [x], seed)


@FAST
@given(n=st.integers(1, 3), shape=shapes(max_dims=2), seed=seeds)
def test_stack_and_concat_of_0d_and_1d_pieces_give_ndarrays(n, shape, seed):
    """stack of 0-d tensors (full reductions, x[()] reads) and of n-d ones; concat of 1-d pieces."""
    rng = np.random.default_rng(seed)
    arrays = [smooth(rng, shape) for _ in range(n)]
    _check_result_and_gradients(lambda *ts: tr.stack([t.sum() for t in ts] + [ts[0].mean()]),
                                lambda *a: np.stack([b.sum() for b in a] + [a[0].mean()]), arrays, seed)
    _check_result_and_gradients(lambda *ts: tr.stack(list(ts), axis=-1), lambda *a: np.stack(a, axis=-1), arrays, seed)
    _check_result_and_gradients(lambda *ts: tr.concat([t.reshape(-1) for t in ts] + [ts[0].sum().reshape(1)]),
                                lambda *a: np.concatenate([b.reshape(-1) for b in a] + [a[0].sum().reshape(1)]),
                                arrays, seed)
    _check_result_and_gradients(lambda *ts: tr.concat([tr.stack([t.sum(), t.max()]) for t in ts]).sum(),
                                lambda *a: np.concatenate([np.stack([b.sum(), b.max()]) for b in a]).sum(),
                                [distinct(rng, shape) + i * 10 for i, _ in enumerate(arrays)], seed)


@FAST
@given(shape=shapes(), split=st.integers(1, 3), seed=seeds)
def test_split_and_chunk_of_a_full_reduction_gives_ndarrays(shape, split, seed):
    x = smooth(np.random.default_rng(seed), shape)
    _check_result_and_gradients(lambda t: tr.stack([p.sum() * p[0] for p in t.reshape(-1).split(split)]),
                                lambda a: np.stack([p.sum() * p[0] for p in np.split(a.reshape(-1), range(
                                    split, a.size, split))]), [x], seed)
    _check_result_and_gradients(lambda t: tr.concat(t.sum().reshape(1).chunk(split)),
                                lambda a: a.sum().reshape(1), [x], seed)


# ===================================================================== 3. random expression graphs
# A program: leaves (arrays), instructions (op, input node indices, parameters) each appending one
# node, the sinks (nodes no op differentiates through) and a constant weight array per sink. The
# output is sum over sinks of (node * weight).sum(): a 0-d value built from 0-d values.
def _np_backend():
    return types.SimpleNamespace(
        name="numpy", tanh=np.tanh, sigmoid=_sigmoid, exp=np.exp, log=np.log, sqrt=np.sqrt, abs=np.abs,
        relu=lambda x: np.maximum(x, 0.0), clip=lambda x, lo, hi: np.clip(x, lo, hi),
        sum=lambda x, axis, keepdims: np.sum(x, axis=axis, keepdims=keepdims),
        mean=lambda x, axis, keepdims: np.mean(x, axis=axis, keepdims=keepdims),
        max=lambda x, axis, keepdims: np.max(x, axis=axis, keepdims=keepdims),
        reshape=lambda x, shape: np.reshape(x, shape), transpose=np.transpose,
        where=np.where, stack=np.stack, concat=np.concatenate, const=lambda a: a,
        index=lambda x, index: x[index], total=np.sum, asarray=np.asarray)


def _tr_backend():
    return types.SimpleNamespace(
        name="tinygrad_rnn", tanh=lambda x: x.tanh(), sigmoid=lambda x: x.sigmoid(), exp=lambda x: x.exp(),
        log=lambda x: x.log(), sqrt=lambda x: x.sqrt(), abs=lambda x: x.abs(), relu=lambda x: x.relu(),
        clip=lambda x, lo, hi: x.clip(lo, hi),
        sum=lambda x, axis, keepdims: x.sum(axis=axis, keepdims=keepdims),
        mean=lambda x, axis, keepdims: x.mean(axis=axis, keepdims=keepdims),
        max=lambda x, axis, keepdims: x.amax(axis=axis, keepdims=keepdims),
        reshape=lambda x, shape: x.reshape(shape), transpose=lambda x: x.T,
        where=tr.where, stack=tr.stack, concat=tr.concat, const=lambda a: a,
        index=lambda x, index: x[index], total=lambda x: x.sum(), asarray=lambda x: x.data)


def _torch_backend(torch):
    def dims(x, axis):
        return tuple(range(x.ndim)) if axis is None else axis

    def index(x, index):
        if isinstance(index, list):
            return x[torch.tensor(index)]
        return x[index]

    return types.SimpleNamespace(
        name="torch", tanh=torch.tanh, sigmoid=torch.sigmoid, exp=torch.exp, log=torch.log, sqrt=torch.sqrt,
        abs=torch.abs, relu=torch.relu, clip=lambda x, lo, hi: torch.clamp(x, lo, hi),
        sum=lambda x, axis, keepdims: torch.sum(x, dim=dims(x, axis), keepdim=keepdims),
        mean=lambda x, axis, keepdims: torch.mean(x, dim=dims(x, axis), keepdim=keepdims),
        max=lambda x, axis, keepdims: torch.amax(x, dim=dims(x, axis), keepdim=keepdims),
        reshape=lambda x, shape: x.reshape(shape), transpose=lambda x: x.permute(*reversed(range(x.ndim))),
        where=torch.where, stack=torch.stack, concat=torch.cat, const=torch.from_numpy,
        index=index, total=lambda x: x.sum(), asarray=lambda x: x.detach().numpy())


NP = _np_backend()
TR = _tr_backend()


# The ops: name -> fn(backend, params, *inputs). Composite ops keep to smooth domains by
# construction (log/sqrt of x*x + 0.5), and each reuses its operand (x * x: fan-out inside the op).
OPS = {
    "tanh": lambda B, p, x: B.tanh(x),
    "sigmoid": lambda B, p, x: B.sigmoid(x),
    "exp": lambda B, p, x: B.exp(x),                                   # only where x <= 2
    "log": lambda B, p, x: B.log(x * x + 0.5),
    "sqrt": lambda B, p, x: B.sqrt(x * x + 0.5),
    "abs": lambda B, p, x: B.abs(x),                                   # only away from 0
    "relu": lambda B, p, x: B.relu(x),                                 # only away from 0
    "clip": lambda B, p, x: B.clip(x, *p),                             # only away from the bounds
    "neg": lambda B, p, x: -x,
    "square": lambda B, p, x: x ** 2,
    "cube": lambda B, p, x: x ** 3,
    "rsqrt": lambda B, p, x: (x * x + 0.5) ** -0.5,
    "affine": lambda B, p, x: x * p[0] + p[1],                         # Python numbers on the right
    "rsub": lambda B, p, x: p[0] - x,
    "rdiv": lambda B, p, x: p[0] / (x * x + 0.5),
    "tanh_abs_div": lambda B, p, x: x * 0.7 + x / (B.abs(x) + 0.3) * 0.9,   # the reported case's shape
    "add": lambda B, p, a, b: a + b,
    "sub": lambda B, p, a, b: a - b,
    "mul": lambda B, p, a, b: a * b,
    "div_square": lambda B, p, a, b: a / (b * b + 0.5),
    "div_abs": lambda B, p, a, b: a / (B.abs(b) + 0.3),                # only b away from 0
    "pow": lambda B, p, a, b: (a * a + 0.5) ** B.tanh(b),
    "matmul": lambda B, p, a, b: a @ b,
    "where": lambda B, p, c, a, b: B.where(c > 0, a, b),               # only c away from 0
    "where_zero": lambda B, p, c, a: B.where(c > 0, a, 0.0),           # only c away from 0
    "stack": lambda B, p, a, b: B.stack([a, b]),
    "concat": lambda B, p, a, b: B.concat([a, b]),
    "sum": lambda B, p, x: B.sum(x, *p),
    "mean": lambda B, p, x: B.mean(x, *p),
    "max": lambda B, p, x: B.max(x, *p),                               # only a unique max by GAP
    "reshape": lambda B, p, x: B.reshape(x, p),
    "transpose": lambda B, p, x: B.transpose(x),
    "index": lambda B, p, x: B.index(x, p),
}
UNARY_OPS = ["tanh", "sigmoid", "exp", "log", "sqrt", "abs", "relu", "clip", "neg", "square", "cube", "rsqrt",
             "affine", "rsub", "rdiv", "tanh_abs_div"]
BINARY_OPS = ["add", "sub", "mul", "div_square", "div_abs", "pow", "matmul", "stack", "concat"]
SHAPE_OPS = ["sum", "mean", "max", "reshape", "transpose", "index"]
#: how often each kind is drawn: full and partial reductions and binary ops dominate
KINDS = ["unary"] * 3 + ["binary"] * 4 + ["reduce"] * 3 + ["shape"] * 1 + ["where"] * 1


class Program:
    """A random expression graph, with everything needed to interpret and check it."""

    def __init__(self, leaves, instructions, weights, sinks, directions):
        self.leaves, self.instructions, self.weights = leaves, instructions, weights
        self.sinks, self.directions = sinks, directions

    def __repr__(self):
        lines = [f"leaf {i} = np.array({a.tolist()!r})" for i, a in enumerate(self.leaves)]  # exact values
        n = len(self.leaves)
        lines += [f"node {n + k} = {op}{tuple(ins)} {params!r}"
                  for k, (op, ins, params) in enumerate(self.instructions)]
        lines.append(f"out = sum over sinks {self.sinks} of (node * weight).sum()")
        return "Program(\n  " + "\n  ".join(lines) + ")"

    @property
    def n_ops(self):
        return len(self.instructions)


def run(program, B, leaves, override=None):
    """Interpret ``program`` with backend ``B`` on ``leaves``; returns (output, every node's value).

    ``override`` (NumPy only) replaces a node's value by (index, array): the finite differences of
    an intermediate's gradient.
    """
    values = list(leaves)
    for op, inputs, params in program.instructions:
        values.append(OPS[op](B, params, *[values[i] for i in inputs]))
        if override is not None and override[0] == len(values) - 1:
            values[-1] = override[1]
    if override is not None and override[0] < len(leaves):
        raise ValueError("override a leaf by changing the leaves instead")
    out = None
    for i in program.sinks:
        term = B.total(values[i] * B.const(program.weights[i]))
        out = term if out is None else out + term
    return out, values


def _min_gap_to_max(x, axis):
    """The smallest (largest - second largest) over the reduced groups (inf for one element)."""
    x = np.asarray(x)
    axes = tuple(range(x.ndim)) if axis is None else ((axis,) if isinstance(axis, int) else tuple(axis))
    axes = tuple(a % x.ndim for a in axes) if x.ndim else ()
    kept = [a for a in range(x.ndim) if a not in axes]
    groups = np.transpose(x, kept + list(axes)).reshape(int(np.prod([x.shape[a] for a in kept], dtype=int)), -1)
    if groups.shape[1] < 2:
        return np.inf
    top2 = np.sort(groups, axis=1)[:, -2:]
    return float(np.min(top2[:, 1] - top2[:, 0]))


def _smooth_at(op, params, inputs, value):
    """Whether the new node is away from every kink and of moderate magnitude."""
    if not np.all(np.isfinite(value)) or np.max(np.abs(value), initial=0.0) > LIMIT:
        return False
    far = lambda a, at=0.0: np.min(np.abs(np.asarray(a) - at), initial=np.inf) >= GAP
    if op in ("abs", "relu", "tanh_abs_div"):
        return far(inputs[0])
    if op == "div_abs":
        return far(inputs[1])
    if op in ("where", "where_zero"):
        return far(inputs[0])
    if op == "clip":
        return all(bound is None or far(inputs[0], bound) for bound in params)
    if op == "exp":
        return np.max(inputs[0], initial=-np.inf) <= 2.0
    if op == "max":
        return _min_gap_to_max(inputs[0], params[0]) >= GAP
    return True


def _broadcastable(*shapes_):
    try:
        np.broadcast_shapes(*shapes_)
        return True
    except ValueError:
        return False


@st.composite
def programs(draw, max_leaves=3, max_ops=10, leaf_shapes=None, max_dims=3):
    """A random DAG over 1-3 leaves whose shapes broadcast together (including ()), with fan-out."""
    if leaf_shapes is None:
        n_leaves = draw(st.integers(1, max_leaves))
        leaf_shapes = draw(broadcast_shapes(n_leaves, max_dims=max_dims))
    rng = np.random.default_rng(draw(seeds))
    leaves = [rng.uniform(-1.5, 1.5, size=shape) for shape in leaf_shapes]
    values = list(leaves)
    instructions = []
    node = st.integers(0, 10**6)

    def pick(candidates):
        """One of the candidate node indices, favouring recent ones and reusing older ones."""
        if draw(st.booleans()):  # the most recent candidate: long chains
            return candidates[-1]
        return candidates[draw(node) % len(candidates)]

    def draw_op(x, every):
        """One op on node ``x`` (and partners among ``every``): (op, inputs, params), or None."""
        shape = np.shape(values[x])
        kind = draw(st.sampled_from(KINDS))
        op, inputs, params = "tanh", (x,), None
        if kind == "unary":
            op = draw(st.sampled_from(UNARY_OPS))
            if op == "clip":
                params = draw(st.sampled_from([(-0.5, 0.5), (0.0, 0.3), (None, 0.4), (-0.2, None)]))
            elif op == "affine":
                params = (draw(st.sampled_from([0.7, -1.3, 2.0])), draw(st.sampled_from([0.0, 0.25, -0.6])))
            elif op in ("rsub", "rdiv"):
                params = (draw(st.sampled_from([1.0, -0.5, 2.5])),)
            inputs = (x,)
        elif kind == "binary":
            op = draw(st.sampled_from(BINARY_OPS))
            if op == "matmul":
                partners = [i for i in every if shape and np.ndim(values[i]) >= 1
                            and _matmul_ok(shape, np.shape(values[i]))]
            elif op == "stack":
                partners = [i for i in every if np.shape(values[i]) == shape and len(shape) < 3]
            elif op == "concat":
                partners = [i for i in every if shape and np.ndim(values[i]) == len(shape)
                            and np.shape(values[i])[1:] == shape[1:]]
            else:
                partners = [i for i in every if _broadcastable(shape, np.shape(values[i]))]
            if not partners:
                return None
            inputs = (x, pick(partners))
        elif kind == "where":
            partners = [i for i in every if _broadcastable(shape, np.shape(values[i]))]
            a = pick(partners)
            b = [i for i in partners if _broadcastable(shape, np.shape(values[a]), np.shape(values[i]))]
            if draw(st.booleans()):
                op, inputs = "where", (x, a, pick(b))
            else:
                op, inputs = "where_zero", (x, a)
        elif kind == "reduce":
            op = draw(st.sampled_from(["sum", "mean", "max"]))
            ndim = len(shape)
            axis_kind = draw(st.sampled_from(["none", "none", "int", "tuple"])) if ndim else "none"
            if axis_kind == "none":
                axis = None
            elif axis_kind == "int":
                axis = draw(st.integers(-ndim, ndim - 1))
            else:
                axis = tuple(sorted(draw(st.lists(st.integers(0, ndim - 1), unique=True, min_size=1, max_size=ndim))))
            params = (axis, draw(st.booleans()))
            inputs = (x,)
        else:
            op = draw(st.sampled_from(SHAPE_OPS[3:]))
            size = int(np.prod(shape, dtype=int))
            if op == "reshape":
                targets = [(size,), shape + (1,) if len(shape) < 3 else (size,)]
                if size == 1:
                    targets += [(), (1, 1)]
                if len(shape) >= 2:
                    targets.append((shape[0], -1))
                params = draw(st.sampled_from(targets))
            elif op == "transpose" and len(shape) < 2:
                return None
            else:
                indices = [()]
                if shape:
                    indices += [0, -1, (Ellipsis, 0), [0, 0]]
                    if shape[0] >= 2:
                        indices.append(slice(1, None))
                if len(shape) >= 2:
                    indices.append((0, 0))
                params = draw(st.sampled_from(indices))
            inputs = (x,)
        return op, inputs, params

    for _ in range(draw(st.integers(1, max_ops))):
        every = list(range(len(values)))
        x = pick(every)
        for attempt in range(4):  # an op at a kink, too large or without a partner: draw again
            drawn = draw_op(x, every)
            if drawn is None:
                continue
            op, inputs, params = drawn
            value = np.asarray(OPS[op](NP, params, *[values[i] for i in inputs]))
            small = value.ndim <= 4 and value.size <= 54
            if small and _smooth_at(op, params, [values[i] for i in inputs], value):
                break
        else:
            op, inputs, params = "tanh", (x,), None
            value = np.tanh(values[x])
        instructions.append((op, inputs, params))
        values.append(value)

    used = set()
    for op, inputs, params in instructions:
        used.update(inputs[1:] if op.startswith("where") else inputs)
    sinks = [i for i in range(len(values)) if i not in used]
    weights = {i: rng.uniform(-1.0, 1.0, size=np.shape(values[i])) for i in sinks}
    directions = [rng.standard_normal(a.shape) for a in leaves]
    return Program(leaves, instructions, weights, sinks, directions)


def _matmul_ok(a, b):
    try:
        np.matmul(np.zeros(a), np.zeros(b))
        return True
    except ValueError:
        return False


# ---- the independent judge: central differences in NumPy, written here
def numeric_gradients(program, leaves=None, eps=EPS):
    """d out / d leaf by central differences of the NumPy interpretation."""
    leaves = program.leaves if leaves is None else leaves
    return [central_differences(lambda shifted: run(program, NP, [shifted if j == i else b.copy()
                                                                  for j, b in enumerate(leaves)])[0], a, eps)
            for i, a in enumerate(leaves)]


def numeric_node_gradient(program, index, eps=EPS):
    """d out / d node[index] (an intermediate), by central differences with the node's value replaced."""
    base = np.asarray(run(program, NP, program.leaves)[1][index], dtype=np.float64)
    return central_differences(lambda shifted: run(program, NP, program.leaves, override=(index, shifted))[0],
                               base, eps)


def engine_gradients(program, arrays):
    """First-order gradients from tinygrad_rnn's backward() at ``arrays`` (ndarrays)."""
    leaves = [leaf(a) for a in arrays]
    out, _ = run(program, TR, leaves)
    out.backward()
    return [x.grad for x in leaves]


def numeric_hessian_vector(program, eps=EPS):
    """H v = d/dt grad(x + t v) at t = 0, by central differences of the engine's first-order gradient
    (the Hessian is symmetric, so this is the gradient of sum(grad(x) * v))."""
    plus = engine_gradients(program, [a + eps * v for a, v in zip(program.leaves, program.directions)])
    minus = engine_gradients(program, [a - eps * v for a, v in zip(program.leaves, program.directions)])
    return [(p - m) / (2 * eps) for p, m in zip(plus, minus)]


def engine_hessian_vector(program, leaves):
    """d/dx of sum(grad(out, x) * v), by ``tr.grad`` twice with create_graph=True."""
    out, _ = run(program, TR, leaves)
    first = tr.grad(out, leaves, create_graph=True)
    h = None
    for g, v in zip(first, program.directions):
        assert isinstance(g, tr.Tensor) and is_array(g.data)
        term = (g * v).sum()
        h = term if h is None else h + term
    if not h.requires_grad:  # the gradient does not depend on x (a graph linear in every leaf)
        return [np.zeros(a.shape) for a in program.leaves], first
    second = tr.grad(h, leaves, create_graph=True, allow_unused=True)
    return [np.zeros(x.shape) if g is None else g.data for g, x in zip(second, leaves)], first


def assert_close_fd(got, want, scale=1.0):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6 * scale)


def check_program_against_finite_differences(program):
    """(a) backward(), (b) tr.grad(create_graph=True), (c) second order, all vs finite differences;
    every node's and every gradient's data an ndarray."""
    leaves = [leaf(a) for a in program.leaves]
    out, nodes = run(program, TR, leaves)
    want_out, want_nodes = run(program, NP, program.leaves)
    assert out.shape == () and is_array(out.data)
    for node, want in zip(nodes, want_nodes):
        assert is_array(node.data), type(node.data)
        assert node.shape == np.shape(want)
        np.testing.assert_allclose(node.data, want, rtol=1e-12, atol=1e-12)
    numeric = numeric_gradients(program)
    scale = 1.0 + max(float(np.max(np.abs(v), initial=0.0)) for v in want_nodes)

    out.backward()  # (a)
    for x, want in zip(leaves, numeric):
        assert is_array(x.grad) and x.grad.shape == x.shape and x.grad.dtype == np.float64
        assert_close_fd(x.grad, want, scale)

    fresh = [leaf(a) for a in program.leaves]  # (b)
    grads = tr.grad(run(program, TR, fresh)[0], fresh, create_graph=True)
    for g, want in zip(grads, numeric):
        assert isinstance(g, tr.Tensor) and is_array(g.data) and g.shape == want.shape
        assert_close_fd(g.data, want, scale)
    assert all(x.grad is None for x in fresh)

    fresh = [leaf(a) for a in program.leaves]  # (c)
    hv, _ = engine_hessian_vector(program, fresh)
    for got, want in zip(hv, numeric_hessian_vector(program)):
        assert is_array(got) and got.shape == want.shape
        assert_close_fd(got, want, scale)


def check_program_against_torch(program, torch):
    """The same graph in torch float64: equal values, gradients, Hessian-vector products (1e-10)."""
    T = _torch_backend(torch)
    leaves = [leaf(a) for a in program.leaves]
    t_leaves = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in program.leaves]
    out, nodes = run(program, TR, leaves)
    t_out, t_nodes = run(program, T, t_leaves)
    for node, t_node in zip(nodes, t_nodes):
        assert node.shape == tuple(t_node.shape)
        np.testing.assert_allclose(node.data, t_node.detach().numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(out.data, t_out.detach().numpy(), rtol=1e-10, atol=1e-10)
    first = tr.grad(out, leaves, create_graph=True)
    t_first = torch.autograd.grad(t_out, t_leaves, create_graph=True)
    for g, t_g in zip(first, t_first):
        np.testing.assert_allclose(g.data, t_g.detach().numpy(), rtol=1e-10, atol=1e-10)
    run(program, TR, leaves)[0].backward()  # the first-order walk (ndarray gradients, added into in place)
    for x, t_g in zip(leaves, t_first):
        assert is_array(x.grad)
        np.testing.assert_allclose(x.grad, t_g.detach().numpy(), rtol=1e-10, atol=1e-10)
    hv, _ = engine_hessian_vector(program, [leaf(a) for a in program.leaves])
    t_h = sum((t_g * torch.from_numpy(v)).sum() for t_g, v in zip(t_first, program.directions))
    if t_h.requires_grad:
        t_hv = torch.autograd.grad(t_h, t_leaves, allow_unused=True)
        t_hv = [np.zeros(a.shape) if g is None else g.numpy(force=True) for g, a in zip(t_hv, program.leaves)]
    else:
        t_hv = [np.zeros(a.shape) for a in program.leaves]
    for got, want in zip(hv, t_hv):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


@GRAPHS
@given(program=programs())
def test_random_graphs_first_and_second_order_against_finite_differences(program):
    check_program_against_finite_differences(program)


@GRAPHS
@given(program=programs(leaf_shapes=((), (), ())))
def test_random_graphs_over_0d_leaves_against_finite_differences(program):
    """Every leaf 0-d: every gradient the walk accumulates is 0-d (the lost-contribution case)."""
    check_program_against_finite_differences(program)


@GRAPHS
@given(program=programs())
def test_random_graphs_against_torch(program):
    torch = pytest.importorskip("torch")
    check_program_against_torch(program, torch)


@GRAPHS
@given(program=programs(leaf_shapes=((), ())))
def test_random_graphs_over_0d_leaves_against_torch(program):
    torch = pytest.importorskip("torch")
    check_program_against_torch(program, torch)


@settings(max_examples=15, deadline=None)
@given(program=programs(max_ops=6, max_dims=2))
def test_random_graphs_pass_gradcheck_and_gradgradcheck(program):
    """The library's own judges agree too (full Jacobians, of the output and of every node)."""
    def fn(*leaves):
        out, nodes = run(program, TR, leaves)
        return (out, nodes[-1])

    leaves = [leaf(a) for a in program.leaves]
    assert tr.gradcheck(fn, leaves)
    assert tr.gradgradcheck(lambda *xs: fn(*xs)[0], leaves)


# ===================================================================== 4. accumulation and retain_grad
def test_a_0d_leaf_accumulates_across_two_backward_calls():
    x = leaf(np.array(0.41))
    t = x.tanh()
    out = t * 0.7 + t / (t.abs() + 0.3) * 0.9
    out.backward()
    first = x.grad
    assert is_array(first)
    out.backward()  # the same graph again
    assert is_array(x.grad) and x.grad.shape == ()
    np.testing.assert_allclose(x.grad, 2 * closed_form_tanh_graph(0.41)[1], rtol=1e-13)
    t = x.tanh()  # and a fresh graph: three times now
    (t * 0.7 + t / (t.abs() + 0.3) * 0.9).backward()
    np.testing.assert_allclose(x.grad, 3 * closed_form_tanh_graph(0.41)[1], rtol=1e-13)


def test_retain_grad_on_0d_intermediates_of_the_reported_graph():
    """t = tanh(x) and s = |t| + 0.3 retained: d out/dt = 0.7 + 0.9 * 0.3 / s^2, d out/ds = -0.9 t / s^2."""
    x = leaf(np.array(0.41))
    t = x.tanh()
    s = t.abs() + 0.3
    t.retain_grad()
    s.retain_grad()
    (t * 0.7 + t / s * 0.9).backward()
    t0 = np.tanh(0.41)
    s0 = abs(t0) + 0.3
    for node, want in ((t, 0.7 + 0.27 / s0 ** 2), (s, -0.9 * t0 / s0 ** 2)):
        assert is_array(node.grad) and node.grad.shape == () and node.grad.dtype == np.float64
        np.testing.assert_allclose(node.grad, want, rtol=1e-13)
    np.testing.assert_allclose(x.grad, closed_form_tanh_graph(0.41)[1], rtol=1e-13)


@GRAPHS
@given(program=programs(max_leaves=2, max_dims=2))
def test_random_graphs_accumulate_across_two_backward_calls(program):
    """backward() twice on one graph, then once on a rebuilt one: the gradients triple."""
    leaves = [leaf(a) for a in program.leaves]
    out, _ = run(program, TR, leaves)
    out.backward()
    once = [x.grad.copy() for x in leaves]
    out.backward()
    run(program, TR, leaves)[0].backward()
    numeric = numeric_gradients(program)
    for x, g, want in zip(leaves, once, numeric):
        assert is_array(x.grad) and x.grad.shape == x.shape
        np.testing.assert_allclose(x.grad, 3 * g, rtol=1e-12, atol=1e-12)
        assert_close_fd(g, want, 10.0)


@GRAPHS
@given(program=programs(max_leaves=2, max_dims=2))
def test_retain_grad_on_0d_intermediates_of_random_graphs(program):
    """Every 0-d intermediate retained: its .grad an ndarray equal to finite differences of the output
    with that node's value moved (and to torch's retained gradient)."""
    leaves = [leaf(a) for a in program.leaves]
    out, nodes = run(program, TR, leaves)
    n = len(program.leaves)
    retained = [i for i in range(n, len(nodes)) if nodes[i].shape == () and nodes[i].requires_grad]
    for i in retained:
        nodes[i].retain_grad()
    out.backward()
    numeric_leaves = numeric_gradients(program)
    for x, want in zip(leaves, numeric_leaves):
        assert is_array(x.grad)
        assert_close_fd(x.grad, want, 10.0)
    for i in retained:
        assert is_array(nodes[i].grad) and nodes[i].grad.shape == (), (i, type(nodes[i].grad))
        assert_close_fd(nodes[i].grad, numeric_node_gradient(program, i), 10.0)
