"""Every op's gradient, and second derivatives, against finite differences in float64.

Two independent judges for first derivatives: ``tr.gradcheck`` compares the full analytical Jacobian
with central differences, and ``numeric_vjp`` below (written here, sharing no code with the library)
compares what ``backward(w)`` leaves in ``.grad`` with its own central differences of sum(f * w).
Forward values are compared with NumPy computing the same thing directly. Shapes come from
hypothesis (broadcasting, size-1 axes, 0-d, batches); values stay in each op's smooth domain.
"""
import warnings

import numpy as np
import pytest
from conftest import FAST, FEW, avoiding, broadcast_shapes, distinct, leaf, positive, seeds, shapes, smooth
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinygrad_rnn as tr


# ===================================================================== the independent judge
def as_tuple(result):
    return tuple(result) if isinstance(result, (tuple, list)) else (result,)


def numeric_vjp(fn, arrays, weights, eps=1e-6):
    """d/d(arrays[i]) of sum_k sum(fn(*arrays)[k] * weights[k]), by central differences on copies.

    ``fn`` takes ndarrays and returns an ndarray or a tuple of them.
    """
    def objective(values):
        return sum(float(np.sum(np.asarray(out, dtype=np.float64) * w))
                   for out, w in zip(as_tuple(fn(*values)), weights))

    grads = []
    for i, array in enumerate(arrays):
        grad = np.zeros(array.shape)
        for position in np.ndindex(array.shape):
            shifted = [a.copy() for a in arrays]
            shifted[i][position] = array[position] + eps
            plus = objective(shifted)
            shifted[i][position] = array[position] - eps
            grad[position] = (plus - objective(shifted)) / (2 * eps)
        grads.append(grad)
    return grads


def assert_gradients(fn, *arrays, expected=None, seed=0):
    """Check ``fn`` (Tensors in, a Tensor or tuple of Tensors out) at float64 ``arrays``.

    1. ``expected`` (NumPy, ndarrays in) gives the same forward values;
    2. ``tr.gradcheck`` passes (full Jacobians);
    3. ``backward(w)`` on every output leaves in each leaf's ``.grad`` what ``numeric_vjp`` finds.
    """
    arrays = [np.array(a, dtype=np.float64) for a in arrays]
    leaves = [leaf(a) for a in arrays]
    outputs = as_tuple(fn(*leaves))
    if expected is not None:
        for out, reference in zip(outputs, as_tuple(expected(*[a.copy() for a in arrays]))):
            assert out.shape == np.shape(reference)
            np.testing.assert_allclose(out.data, reference, rtol=1e-12, atol=1e-12)
    assert tr.gradcheck(fn, leaves)
    rng = np.random.default_rng(seed)
    weights = [rng.standard_normal(out.shape) for out in outputs]
    for out, w in zip(outputs, weights):
        if out.requires_grad:
            out.backward(w)
    numeric = numeric_vjp(lambda *xs: tuple(o.data for o in as_tuple(fn(*map(tr.Tensor, xs)))), arrays, weights)
    for x, want in zip(leaves, numeric):
        got = np.zeros(x.shape) if x.grad is None else x.grad
        assert got.shape == x.shape and got.dtype == np.float64
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


# ===================================================================== elementwise binary
BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "pow": lambda a, b: a ** b,
}


@pytest.mark.parametrize("op", sorted(BINARY))
@FAST
@given(pair=broadcast_shapes(), seed=seeds)
def test_binary_ops_broadcast(op, pair, seed):
    """+ - * / ** between two tensors whose shapes broadcast (size-1 axes, missing axes, 0-d)."""
    rng = np.random.default_rng(seed)
    a = positive(rng, pair[0]) if op == "pow" else smooth(rng, pair[0])
    b = positive(rng, pair[1]) if op in ("div", "pow") else smooth(rng, pair[1])
    assert_gradients(BINARY[op], a, b, expected=BINARY[op], seed=seed)


CONSTANT_OPERAND = {
    "x + 2.5": (lambda x: x + 2.5, lambda x: x + 2.5),
    "2.5 + x": (lambda x: 2.5 + x, lambda x: 2.5 + x),
    "x - 2": (lambda x: x - 2, lambda x: x - 2),
    "2 - x": (lambda x: 2 - x, lambda x: 2 - x),
    "3 * x": (lambda x: 3 * x, lambda x: 3 * x),
    "x / 4": (lambda x: x / 4, lambda x: x / 4),
    "1 / x": (lambda x: 1 / x, lambda x: 1 / x),
    "x * array": (lambda x: x * np.linspace(-1, 1, 3), lambda x: x * np.linspace(-1, 1, 3)),
    "array - x": (lambda x: np.linspace(-1, 1, 3) - x, lambda x: np.linspace(-1, 1, 3) - x),
    "-x": (lambda x: -x, lambda x: -x),
    "x ** 3": (lambda x: x ** 3, lambda x: x ** 3),
    "x ** 2.0": (lambda x: x ** 2.0, lambda x: x ** 2.0),
    "x ** 0.5": (lambda x: x ** 0.5, np.sqrt),
    "x ** -1.5": (lambda x: x ** -1.5, lambda x: x ** -1.5),
    "x ** 0": (lambda x: x ** 0, lambda x: x ** 0),
    "x ** np.float64(2)": (lambda x: x ** np.float64(2), lambda x: x ** 2),
    "2.0 ** x": (lambda x: 2.0 ** x, lambda x: 2.0 ** x),
    "x ** Tensor(3) (constant)": (lambda x: x ** tr.Tensor(np.array(3.0)), lambda x: x ** 3),
}


@pytest.mark.parametrize("case", sorted(CONSTANT_OPERAND))
@FEW
@given(shape=shapes(max_dims=2).filter(lambda s: s[-1:] in ((), (1,), (3,))), seed=seeds)
def test_ops_with_constant_operands(case, shape, seed):
    """Python numbers, ndarrays and constant Tensors on either side, and pow with a number exponent."""
    fn, expected = CONSTANT_OPERAND[case]
    assert_gradients(fn, positive(np.random.default_rng(seed), shape), expected=expected, seed=seed)


def test_pow_with_a_constant_exponent_tolerates_a_negative_base():
    """x ** c with c a constant Tensor needs no log(x): no NaN, no warning for x < 0."""
    x = leaf([-2.0, -0.5, 1.5])
    with np.errstate(all="raise"):
        (x ** tr.Tensor(np.array([2.0, 3.0, 2.0]))).sum().backward()
    np.testing.assert_allclose(x.grad, [2 * -2.0, 3 * 0.25, 2 * 1.5])


# ===================================================================== matmul
@st.composite
def matmul_shapes(draw):
    """Shapes of a @ b in every NumPy case: vector or matrix operands, broadcasting batch axes."""
    n, k, m = (draw(st.integers(1, 3)) for _ in range(3))
    batch_a, batch_b = draw(broadcast_shapes(max_dims=2))
    a_shape = (k,) if draw(st.booleans()) else batch_a + (n, k)
    b_shape = (k,) if draw(st.booleans()) else batch_b + (k, m)
    return a_shape, b_shape


@FAST
@given(pair=matmul_shapes(), seed=seeds)
def test_matmul(pair, seed):
    rng = np.random.default_rng(seed)
    assert_gradients(lambda a, b: a @ b, smooth(rng, pair[0]), smooth(rng, pair[1]), expected=np.matmul,
                     seed=seed)


@pytest.mark.parametrize("a_shape, b_shape", [((3,), (3,)), ((3,), (3, 2)), ((2, 3), (3,)),
                                              ((2, 3), (3, 4)), ((2, 1, 2, 3), (3, 3, 1)), ((3,), (2, 3, 2))])
def test_matmul_against_a_hand_loop(a_shape, b_shape):
    """d(sum(w * (a @ b)))/da, with a sum over every index written out by hand."""
    rng = np.random.default_rng(1)
    a, b = leaf(rng.standard_normal(a_shape)), leaf(rng.standard_normal(b_shape))
    out = a @ b
    w = rng.standard_normal(out.shape)
    out.backward(w)
    # promote vectors to (1, k) and (k, 1), pad the batch axes to two, then loop over every index
    a_matrix = (1,) + a_shape if a.ndim == 1 else a_shape
    b_matrix = b_shape + (1,) if b.ndim == 1 else b_shape
    a4 = a.data.reshape((1,) * (4 - len(a_matrix)) + a_matrix)
    b4 = b.data.reshape((1,) * (4 - len(b_matrix)) + b_matrix)
    batch = np.broadcast_shapes(a4.shape[:2], b4.shape[:2])
    w4 = w.reshape(batch + (a4.shape[2], b4.shape[3]))
    ga, gb = np.zeros(a4.shape), np.zeros(b4.shape)
    for i, j in np.ndindex(batch):
        ia, ib = (i % a4.shape[0], j % a4.shape[1]), (i % b4.shape[0], j % b4.shape[1])
        for r, c, s in np.ndindex(a4.shape[2], b4.shape[3], a4.shape[3]):
            ga[ia + (r, s)] += w4[i, j, r, c] * b4[ib + (s, c)]
            gb[ib + (s, c)] += w4[i, j, r, c] * a4[ia + (r, s)]
    np.testing.assert_allclose(a.grad, ga.reshape(a_shape), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(b.grad, gb.reshape(b_shape), rtol=1e-12, atol=1e-12)


# ===================================================================== elementwise unary
UNARY = {  # name: (op, NumPy reference, value generator)
    "exp": (lambda x: x.exp(), np.exp, smooth),
    "log": (lambda x: x.log(), np.log, positive),
    "sqrt": (lambda x: x.sqrt(), np.sqrt, positive),
    "tanh": (lambda x: x.tanh(), np.tanh, smooth),
    "sigmoid": (lambda x: x.sigmoid(), lambda x: 1 / (1 + np.exp(-x)), smooth),
    "relu": (lambda x: x.relu(), lambda x: np.maximum(x, 0), avoiding),
    "abs": (lambda x: x.abs(), np.abs, avoiding),
    "builtin abs": (abs, np.abs, avoiding),
    "clip(-0.5, 0.5)": (lambda x: x.clip(-0.5, 0.5), lambda x: np.clip(x, -0.5, 0.5),
                        lambda rng, shape: avoiding(rng, shape, kinks=(-0.5, 0.5))),
    "clip(low=-0.5)": (lambda x: x.clip(-0.5), lambda x: np.maximum(x, -0.5),
                       lambda rng, shape: avoiding(rng, shape, kinks=(-0.5,))),
    "clip(high=0.5)": (lambda x: x.clip(high=0.5), lambda x: np.minimum(x, 0.5),
                       lambda rng, shape: avoiding(rng, shape, kinks=(0.5,))),
    "astype(float64)": (lambda x: x.astype(np.float64), lambda x: x, smooth),
}


@pytest.mark.parametrize("name", sorted(UNARY))
@FAST
@given(shape=shapes(), seed=seeds)
def test_unary_ops(name, shape, seed):
    op, reference, values = UNARY[name]
    assert_gradients(op, values(np.random.default_rng(seed), shape), expected=reference, seed=seed)


def test_unary_gradients_at_the_kinks_are_zero():
    """relu and abs at exactly 0 pass no gradient (the documented subgradient choice)."""
    x = leaf([0.0, 0.0])
    (x.relu().sum() + x.abs().sum()).backward()
    np.testing.assert_array_equal(x.grad, [0.0, 0.0])


def test_clip_passes_gradient_only_inside_the_bounds():
    x = leaf([-2.0, -1.0, 0.3, 1.0, 2.0])
    x.clip(-1.0, 1.0).backward(np.full(5, 3.0))
    np.testing.assert_array_equal(x.grad, [0.0, 3.0, 3.0, 3.0, 0.0])


@FAST
@given(shape=shapes(), seed=seeds)
def test_astype_casts_the_gradient_back(shape, seed):
    """float32 -> float64: the float32 leaf gets w itself, in float32 (d(cast x)/dx = 1)."""
    rng = np.random.default_rng(seed)
    x = tr.Tensor(rng.standard_normal(shape).astype(np.float32), requires_grad=True)
    y = x.astype(np.float64)
    assert y.dtype == np.float64
    w = rng.standard_normal(shape)
    (y * w).sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_array_equal(x.grad, w.astype(np.float32))


# ===================================================================== reductions
@st.composite
def shape_and_axis(draw):
    """A shape and an axis argument: None, an int (maybe negative) or a tuple of distinct axes."""
    shape = draw(shapes())
    ndim = len(shape)
    options = [st.none()]
    if ndim:
        options.append(st.integers(-ndim, ndim - 1))
        options.append(st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True).map(tuple))
    return shape, draw(st.one_of(*options))


REDUCTIONS = {  # name: (NumPy reference, value generator); NumPy's max(axis) is amax here
    "sum": (np.sum, smooth),
    "mean": (np.mean, smooth),
    "amax": (np.max, distinct),
}


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
@FAST
@given(case=shape_and_axis(), keepdims=st.booleans(), seed=seeds)
def test_reductions(name, case, keepdims, seed):
    shape, axis = case
    reference, values = REDUCTIONS[name]
    assert_gradients(lambda x: getattr(x, name)(axis=axis, keepdims=keepdims),
                     values(np.random.default_rng(seed), shape),
                     expected=lambda x: reference(x, axis=axis, keepdims=keepdims), seed=seed)


@FAST
@given(case=shape_and_axis(), keepdims=st.booleans(), seed=seeds)
def test_max_shares_the_gradient_equally_between_ties(case, keepdims, seed):
    """Values from {0, 1, 2} tie often; each tied maximum gets w / (number of ties), by a hand loop."""
    shape, axis = case
    rng = np.random.default_rng(seed)
    x = leaf(rng.integers(0, 3, size=shape).astype(np.float64))
    out = x.amax(axis=axis, keepdims=keepdims)
    w = rng.standard_normal(out.shape)
    out.backward(w)
    axes = tuple(range(len(shape))) if axis is None else tuple(np.atleast_1d(axis) % max(len(shape), 1))
    kept = np.reshape(w, [1 if i in axes else n for i, n in enumerate(shape)])
    expected = np.zeros(shape)
    for position in np.ndindex(shape):
        group = tuple(slice(None) if i in axes else p for i, p in enumerate(position))
        members = x.data[group]
        if x.data[position] == members.max():
            kept_position = tuple(0 if i in axes else p for i, p in enumerate(position))
            expected[position] = kept[kept_position] / np.sum(members == members.max())
    np.testing.assert_allclose(x.grad, expected, rtol=1e-12)


# ===================================================================== shape ops
@st.composite
def shape_and_new_shape(draw):
    shape = draw(shapes())
    size = int(np.prod(shape, dtype=int))
    candidates = [(size,), (-1,), (1, size), (size, 1, 1), (-1, 1), tuple(reversed(shape))]
    return shape, draw(st.sampled_from(candidates + ([()] if size == 1 else [])))


@FAST
@given(case=shape_and_new_shape(), seed=seeds)
def test_reshape(case, seed):
    shape, new = case
    assert_gradients(lambda x: x.reshape(new), smooth(np.random.default_rng(seed), shape),
                     expected=lambda x: x.reshape(new), seed=seed)
    assert_gradients(lambda x: x.reshape(*new), smooth(np.random.default_rng(seed), shape),
                     expected=lambda x: x.reshape(new), seed=seed)


@st.composite
def shape_and_permutation(draw):
    """A permutation of the axes, each written as a positive or a negative axis."""
    shape = draw(shapes())
    permutation = draw(st.permutations(range(len(shape))))
    return shape, tuple(ax - len(shape) if draw(st.booleans()) else ax for ax in permutation)


@FAST
@given(case=shape_and_permutation(), seed=seeds)
def test_permute(case, seed):
    shape, axes = case
    values = smooth(np.random.default_rng(seed), shape)
    assert_gradients(lambda x: x.permute(axes), values, expected=lambda x: np.transpose(x, axes), seed=seed)
    assert_gradients(lambda x: x.permute(*axes), values, expected=lambda x: np.transpose(x, axes), seed=seed)
    assert_gradients(lambda x: x.T, values, expected=lambda x: x.T, seed=seed)


@st.composite
def shape_and_two_axes(draw):
    """A shape and two of its axes (positive or negative; possibly the same one); 0-d: axes 0 and -1."""
    shape = draw(shapes())
    nominal = max(len(shape), 1)
    return shape, draw(st.integers(-nominal, nominal - 1)), draw(st.integers(-nominal, nominal - 1))


@FAST
@given(case=shape_and_two_axes(), seed=seeds)
def test_transpose_swaps_two_axes_as_in_pytorch(case, seed):
    shape, dim0, dim1 = case
    values = smooth(np.random.default_rng(seed), shape)
    expected = (lambda x: np.swapaxes(x, dim0, dim1)) if shape else (lambda x: x)
    assert_gradients(lambda x: x.transpose(dim0, dim1), values, expected=expected, seed=seed)


def test_transpose_0_1_of_a_matrix_is_its_transpose_not_the_identity():
    """NumPy's ``a.transpose(0, 1)`` is the identity permutation; PyTorch's swaps the axes."""
    values = np.arange(6.0).reshape(2, 3)
    assert_gradients(lambda x: x.transpose(0, 1), values, expected=lambda x: x.T)
    assert_gradients(lambda x: x.transpose(1, 0), values, expected=lambda x: x.T)
    assert_gradients(lambda x: x.transpose(-1, -2), values, expected=lambda x: x.T)


@st.composite
def shape_and_broadcast_target(draw):
    shape = draw(shapes(max_dims=2))
    lead = draw(shapes(max_dims=1))
    target = lead + tuple(draw(st.integers(1, 3)) if n == 1 else n for n in shape)
    return shape, target


@FAST
@given(case=shape_and_broadcast_target(), seed=seeds)
def test_broadcast_to(case, seed):
    shape, target = case
    assert_gradients(lambda x: x.broadcast_to(target), smooth(np.random.default_rng(seed), shape),
                     expected=lambda x: np.broadcast_to(x, target), seed=seed)


# ===================================================================== indexing
@st.composite
def shape_and_basic_index(draw):
    shape = draw(shapes(min_dims=1))
    index = draw(hnp.basic_indices(shape, min_dims=0, allow_newaxis=True, allow_ellipsis=True))
    return shape, index


@FAST
@given(case=shape_and_basic_index(), seed=seeds)
def test_basic_indexing(case, seed):
    """Integers, slices with any step (negative too), None and Ellipsis."""
    shape, index = case
    assert_gradients(lambda x: x[index], smooth(np.random.default_rng(seed), shape),
                     expected=lambda x: x[index], seed=seed)


@st.composite
def integer_index(draw):
    """A shape, an integer-array index (repeats likely) as NumPy takes it, and as given to the Tensor:
    an ndarray, a list, an integer Tensor, a 2-d array, two arrays broadcast together, or an array
    next to a reversed slice."""
    shape = draw(shapes(min_dims=1))
    positions = np.array(draw(st.lists(st.integers(-shape[0], shape[0] - 1), min_size=1, max_size=6)))
    kinds = ["array", "list", "tensor", "2-d array"] + (["two arrays", "with a slice"] if len(shape) > 1 else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "list":
        return shape, positions, positions.tolist()
    if kind == "tensor":
        return shape, positions, tr.Tensor(positions)
    if kind == "2-d array":
        index = np.concatenate([positions, positions]).reshape(2, -1)
        return shape, index, index
    if kind == "two arrays":
        index = (positions[:, None], np.array([shape[1] - 1, 0, -1]))
        return shape, index, index
    if kind == "with a slice":
        index = (positions, slice(None, None, -1))
        return shape, index, index
    return shape, positions, positions


@FAST
@given(case=integer_index(), seed=seeds)
def test_integer_array_indexing_accumulates_repeated_indices(case, seed):
    shape, numpy_index, index = case
    assert_gradients(lambda x: x[index], smooth(np.random.default_rng(seed), shape),
                     expected=lambda x: x[numpy_index], seed=seed)


def test_repeated_indices_add_up_by_a_hand_count():
    """x[[0, 2, 0, 0]]: row 0 gets three rows of w, row 2 one, row 1 none."""
    x = leaf(np.arange(6.0).reshape(3, 2))
    w = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0]])
    x[np.array([0, 2, 0, 0])].backward(w)
    np.testing.assert_array_equal(x.grad, [[1 + 5 + 7, 2 + 6 + 8], [0, 0], [3, 4]])


@st.composite
def boolean_mask(draw):
    """A mask over the whole shape, over leading axes, or a boolean list on axis 0."""
    shape = draw(shapes(min_dims=1))
    lead = draw(st.integers(1, len(shape)))
    mask = np.array(draw(st.lists(st.booleans(), min_size=int(np.prod(shape[:lead])),
                                  max_size=int(np.prod(shape[:lead]))))).reshape(shape[:lead])
    return shape, mask


@FAST
@given(case=boolean_mask(), seed=seeds)
def test_boolean_mask_indexing(case, seed):
    shape, mask = case
    rng = np.random.default_rng(seed)
    values = smooth(rng, shape)
    assert_gradients(lambda x: x[mask], values, expected=lambda x: x[mask], seed=seed)
    x = leaf(values)
    out = x[mask]
    w = rng.standard_normal(out.shape)
    out.backward(w)
    expected = np.zeros(shape)
    expected[mask] = w
    np.testing.assert_array_equal(x.grad, expected)


# ===================================================================== split, chunk, concat, stack, where
@st.composite
def split_case(draw):
    """A shape, an axis (maybe negative), and a piece size, a list of sizes, or a chunk count."""
    shape = draw(shapes(min_dims=1, max_side=5))
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    length = shape[axis]
    kind = draw(st.sampled_from(["size", "sizes", "chunks"]))
    if kind == "sizes":
        cuts = sorted(draw(st.lists(st.integers(0, length), max_size=3)))
        return shape, axis, kind, [b - a for a, b in zip([0] + cuts, cuts + [length])]
    return shape, axis, kind, draw(st.integers(1, length + 1))


@FAST
@given(case=split_case(), seed=seeds)
def test_split_and_chunk(case, seed):
    """Pieces (uneven ones too) as torch makes them; each piece's gradient lands in its place."""
    shape, axis, kind, argument = case
    length = shape[axis]
    if kind == "sizes":
        sizes = argument
    else:
        size = -(-length // argument) if kind == "chunks" else argument
        sizes = [size] * (length // size) + ([length % size] if length % size else [])
    bounds = np.cumsum([0] + sizes)
    method = "chunk" if kind == "chunks" else "split"

    def pieces(x):
        return tuple(getattr(x, method)(argument, axis=axis))

    def reference(x):
        return tuple(np.take(x, range(start, stop), axis=axis) for start, stop in zip(bounds[:-1], bounds[1:]))

    assert_gradients(pieces, smooth(np.random.default_rng(seed), shape), expected=reference, seed=seed)


@st.composite
def concat_case(draw):
    """1-3 tensors that differ only along ``axis`` (maybe negative)."""
    shape = draw(shapes(min_dims=1))
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    lengths = draw(st.lists(st.integers(1, 3), min_size=1, max_size=3))
    return [shape[:axis % len(shape)] + (n,) + shape[axis % len(shape) + 1:] for n in lengths], axis


@FAST
@given(case=concat_case(), seed=seeds)
def test_concat(case, seed):
    shapes_, axis = case
    rng = np.random.default_rng(seed)
    assert_gradients(lambda *xs: tr.concat(xs, axis=axis), *[smooth(rng, s) for s in shapes_],
                     expected=lambda *xs: np.concatenate(xs, axis=axis), seed=seed)


@FAST
@given(shape=shapes(), count=st.integers(1, 3), data=st.data(), seed=seeds)
def test_stack(shape, count, data, seed):
    axis = data.draw(st.integers(-len(shape) - 1, len(shape)))
    rng = np.random.default_rng(seed)
    assert_gradients(lambda *xs: tr.stack(xs, axis=axis), *[smooth(rng, shape) for _ in range(count)],
                     expected=lambda *xs: np.stack(xs, axis=axis), seed=seed)


@FAST
@given(triple=broadcast_shapes(num_shapes=3), seed=seeds)
def test_where(triple, seed):
    """The condition, a and b broadcast together; each side gets the gradient where it was chosen."""
    cond_shape, a_shape, b_shape = triple
    rng = np.random.default_rng(seed)
    cond = rng.random(cond_shape) < 0.5
    assert_gradients(lambda a, b: tr.where(cond, a, b), smooth(rng, a_shape), smooth(rng, b_shape),
                     expected=lambda a, b: np.where(cond, a, b), seed=seed)
    assert_gradients(lambda a: tr.where(tr.Tensor(cond), a, 0.5), smooth(rng, a_shape),
                     expected=lambda a: np.where(cond, a, 0.5), seed=seed)


def test_where_between_two_numbers_is_a_constant_in_the_default_dtype():
    out = tr.where(np.array([True, False]), 2.0, -1.0)
    assert out.dtype == tr.get_default_dtype() and not out.requires_grad
    np.testing.assert_array_equal(out.data, [2.0, -1.0])


# ===================================================================== second derivatives
def lstm_step(x, h, c, w_ih, w_hh, b_ih, b_hh):
    """One LSTM step as equations: gates (N, 4H) = x W_ih^T + b_ih + h W_hh^T + b_hh, order i, f, g, o."""
    gates = x @ w_ih.T + b_ih + h @ w_hh.T + b_hh
    i, f, g, o = gates.chunk(4, axis=1)
    c_next = f.sigmoid() * c + i.sigmoid() * g.tanh()
    h_next = o.sigmoid() * c_next.tanh()
    return h_next, c_next


def lstm_step_numpy(x, h, c, w_ih, w_hh, b_ih, b_hh):
    """The same step in NumPy, for the forward values."""
    def sigma(z):
        return 1 / (1 + np.exp(-z))
    gates = x @ w_ih.T + b_ih + h @ w_hh.T + b_hh
    i, f, g, o = np.split(gates, 4, axis=1)
    c_next = sigma(f) * c + sigma(i) * np.tanh(g)
    return sigma(o) * np.tanh(c_next), c_next


SECOND_ORDER = {  # name: (function, shapes of its inputs, value generator)
    "tanh": (lambda x: x.tanh(), [(2, 3)], smooth),
    "sigmoid": (lambda x: x.sigmoid(), [(2, 3)], smooth),
    "exp": (lambda x: x.exp(), [(3,)], smooth),
    "log": (lambda x: x.log(), [(3,)], positive),
    "sqrt": (lambda x: x.sqrt(), [(3,)], positive),
    "pow scalar": (lambda x: x ** 3, [(3,)], positive),
    "pow tensor": (lambda a, b: a ** b, [(2, 1), (3,)], positive),
    "mul": (lambda a, b: a * b, [(2, 3), (3,)], smooth),
    "div": (lambda a, b: a / b, [(2, 3), (2, 1)], positive),
    "matmul": (lambda a, b: a @ b, [(2, 3), (3, 2)], smooth),
    "batched matmul": (lambda a, b: a @ b, [(2, 1, 3), (3,)], smooth),
    "mean of squares": (lambda x: (x * x).mean(axis=1), [(2, 3)], smooth),
    "slicing": (lambda x: x[1:, ::-1] * x[:1], [(3, 2)], smooth),
    "integer index": (lambda x: x[np.array([0, 2, 0])] * x[1], [(3, 2)], smooth),
    "chunk": (lambda x: (lambda a, b: a * b.tanh())(*x.chunk(2, axis=1)), [(2, 4)], smooth),
    "split uneven": (lambda x: tuple(p.sigmoid() for p in x.split(2)), [(3,)], smooth),
    "concat": (lambda a, b: tr.concat([a * b, b.exp()], axis=1), [(2, 1), (2, 2)], smooth),
    "stack": (lambda a, b: tr.stack([a * b, a.tanh()], axis=-1), [(2, 2), (2, 2)], smooth),
    "where and max": (lambda a: tr.where(a.data > 0.1, a * a, a.amax(axis=0)), [(2, 2)], distinct),
}


@pytest.mark.parametrize("name", sorted(SECOND_ORDER))
def test_second_derivatives(name):
    fn, input_shapes, values = SECOND_ORDER[name]
    rng = np.random.default_rng(3)
    assert tr.gradgradcheck(fn, [leaf(values(rng, s)) for s in input_shapes])


def test_lstm_step_first_and_second_derivatives():
    rng = np.random.default_rng(4)
    n, d, h = 2, 2, 2
    arrays = [rng.standard_normal(s) * 0.7 for s in [(n, d), (n, h), (n, h), (4 * h, d), (4 * h, h),
                                                      (4 * h,), (4 * h,)]]
    assert_gradients(lstm_step, *arrays, expected=lstm_step_numpy)
    assert tr.gradgradcheck(lstm_step, [leaf(a) for a in arrays])


@FAST
@given(case=shape_and_axis(), keepdim=st.booleans(), seed=seeds)
def test_max_dim_is_pytorchs_values_and_indices(case, keepdim, seed):
    """x.max(dim) -> (values, indices) as torch.max(x, dim): indices the first maximum (argmax), the
    gradient only to it; ties from {0, 1, 2} are frequent. Checked by a hand loop."""
    shape, axis = case
    if axis is None or isinstance(axis, tuple):
        return
    rng = np.random.default_rng(seed)
    x = leaf(rng.integers(0, 3, size=shape).astype(np.float64))
    values, indices = x.max(axis, keepdim)
    ax = axis % max(len(shape), 1)
    expected_indices = np.argmax(x.data, axis=ax) if shape else np.zeros((), np.int64)
    if keepdim and shape:
        expected_indices = np.expand_dims(expected_indices, ax)
    np.testing.assert_array_equal(indices.data, expected_indices)
    assert indices.dtype == np.int64 and not indices.requires_grad
    np.testing.assert_array_equal(values.data, x.data.max(axis=ax, keepdims=keepdim) if shape else x.data)
    w = rng.standard_normal(values.shape)
    values.backward(w)
    expected = np.zeros(shape)
    if shape:
        flat_w = w if keepdim else np.expand_dims(w, ax)
        np.put_along_axis(expected, np.expand_dims(np.argmax(x.data, axis=ax), ax), flat_w, axis=ax)
    else:
        expected = w
    np.testing.assert_array_equal(x.grad, expected)


def test_max_dim_matches_torch_first_and_second_order():
    torch = pytest.importorskip("torch")
    a = np.array([[1.0, 5.0, 5.0], [7.0, 2.0, 7.0]]) + np.array([[0.1, 0.0, 0.0], [0.0, 0.3, 0.0]])
    for dim in (0, 1, -1):
        x = leaf(a)
        values, indices = x.max(dim)
        (gx,) = tr.grad((values * values).sum(), x, create_graph=True)
        (ggx,) = tr.grad((gx * gx).sum(), x)
        t = torch.tensor(a, requires_grad=True)
        tv, ti = t.max(dim)
        (tg,) = torch.autograd.grad((tv * tv).sum(), t, create_graph=True)
        (tgg,) = torch.autograd.grad((tg * tg).sum(), t)
        np.testing.assert_array_equal(indices.data, ti.numpy())
        np.testing.assert_allclose(gx.data, tg.detach().numpy(), rtol=1e-15)
        np.testing.assert_allclose(ggx.data, tgg.numpy(), rtol=1e-15)


@pytest.mark.parametrize("exponent", [0.5, 1.0, 2.0, 3.5])
def test_pow_exponent_gradient_at_a_zero_base_is_its_limit_zero_without_warnings(exponent):
    """d(a^b)/db = a^b log a -> 0 as a -> 0+ for b > 0 (torch's value too); never 0 * log 0 = NaN."""
    base = np.array([0.0, 0.5, 2.0])
    b = tr.Tensor(np.full(3, exponent), requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        (tr.Tensor(base) ** b).sum().backward()
    closed_form = np.where(base == 0, 0.0, base ** exponent * np.log(np.where(base == 0, 1.0, base)))
    np.testing.assert_allclose(b.grad, closed_form, rtol=1e-15, atol=0)
