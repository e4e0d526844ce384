"""PyTorch's names (tinygrad_rnn/pytorch_names.py, the new ops sin/cos/log1p, functional's losses).

Each name is checked twice: side by side with torch in float64, values and gradients (the ``*_torch``
tests, skipped cleanly without torch), and against an independent computation that needs no torch:
NumPy's closed forms and finite differences (tr.numerical_grad, tr.gradcheck). The error cases are
checked for the message that names what was wrong.
"""
import re
import warnings

import numpy as np
import pytest
from hypothesis import given, strategies as st

import tinygrad_rnn as tr
import tinygrad_rnn.nn as nn
from tinygrad_rnn import functional as F
from tinygrad_rnn.viz import graph_counts

from conftest import FAST, FEW, distinct, leaf, positive, seeds, shapes, smooth

TIGHT = dict(rtol=1e-12, atol=1e-14)
esc = re.escape


def need_torch():
    return pytest.importorskip("torch")


def sigma(x):
    """The logistic function 1 / (1 + e^-x), accurate in its tails (σ(-40) = 4.2e-18, not 0)."""
    return np.exp(-np.logaddexp(0, -x))


# ===================================================================== helpers
def as_list(result):
    return list(result) if isinstance(result, (tuple, list)) else [result]


def against_torch(ours_fn, torch_fn, arrays, seed, tolerance=TIGHT):
    """ours_fn on float64 leaves and torch_fn on torch leaves of the same arrays: every output (a Tensor or a
    tuple/list of them) equal in shape, dtype kind and value, and, for a random upstream on the
    floating outputs, every input's gradient equal."""
    torch = need_torch()
    ours = [leaf(a) for a in arrays]
    theirs = [torch.tensor(np.array(a, dtype=np.float64), requires_grad=True) for a in arrays]
    outs, refs = as_list(ours_fn(*ours)), as_list(torch_fn(*theirs))
    assert len(outs) == len(refs)
    rng = np.random.default_rng(seed)
    ours_loss = theirs_loss = None
    for out, ref in zip(outs, refs):
        assert out.shape == tuple(ref.shape), (out.shape, ref.shape)
        assert out.dtype == np.dtype(str(ref.dtype).removeprefix("torch.")), (out.dtype, ref.dtype)
        np.testing.assert_allclose(out.numpy(), ref.detach().numpy(), **tolerance)
        if ref.requires_grad:
            assert out.requires_grad
            upstream = rng.standard_normal(out.shape).astype(out.dtype)
            ours_term, theirs_term = (out * upstream).sum(), (ref * torch.tensor(upstream)).sum()
            ours_loss = ours_term if ours_loss is None else ours_loss + ours_term
            theirs_loss = theirs_term if theirs_loss is None else theirs_loss + theirs_term
    if ours_loss is not None:
        ours_loss.backward()
        theirs_loss.backward()
        for mine, other in zip(ours, theirs):
            expected = np.zeros(mine.shape) if other.grad is None else other.grad.numpy()
            np.testing.assert_allclose(np.zeros(mine.shape) if mine.grad is None else mine.grad, expected, **tolerance)


def against_numpy(ours_fn, numpy_fn, arrays, seed):
    """ours_fn's value equals numpy_fn's (a closed form) and its gradients equal central differences."""
    ours = [leaf(a) for a in arrays]
    out = ours_fn(*ours)
    np.testing.assert_allclose(out.numpy(), numpy_fn(*arrays), **TIGHT)
    upstream = np.random.default_rng(seed).standard_normal(out.shape)
    out.backward(upstream)
    numerical = tr.numerical_grad(ours_fn, [tr.Tensor(np.array(a, dtype=np.float64)) for a in arrays], upstream)
    for x, expected in zip(ours, numerical):
        np.testing.assert_allclose(x.grad, expected, rtol=1e-6, atol=1e-8)


@st.composite
def shape_and_dim(draw, min_dims=1, extra=0):
    """A shape (sides 1..3) and a dim in [-ndim - extra, ndim + extra)."""
    shape = draw(shapes(min_dims=min_dims))
    n = max(len(shape) + extra, 1)  # a 0-d tensor has dims 0 and -1, as in PyTorch
    return shape, draw(st.integers(-n, n - 1))


# ===================================================================== sin, cos, log1p: new ops
@pytest.mark.parametrize("name", ["sin", "cos", "log1p"])
@FAST
@given(shape=shapes(), seed=seeds)
def test_new_ops_match_closed_forms_and_finite_differences(name, shape, seed):
    x = (positive if name == "log1p" else smooth)(np.random.default_rng(seed), shape)
    against_numpy(lambda t: getattr(t, name)(), getattr(np, name), [x], seed)
    assert tr.gradgradcheck(lambda t: getattr(t, name)(), (leaf(x),))


def test_new_ops_derivatives_are_the_closed_forms():
    x = leaf(np.linspace(-3, 3, 7))
    (x.sin() + x.cos()).sum().backward()
    np.testing.assert_allclose(x.grad, np.cos(x.data) - np.sin(x.data), **TIGHT)
    y = leaf(np.array([1e-20, 0.5, 3.0]))
    y.log1p().sum().backward()
    np.testing.assert_allclose(y.log1p().data[0], 1e-20, rtol=1e-15)  # log(1 + 1e-20) would be 0
    np.testing.assert_allclose(y.grad, 1 / (1 + y.data), **TIGHT)


@pytest.mark.parametrize("name", ["sin", "cos", "log1p"])
@FEW
@given(shape=shapes(), seed=seeds)
def test_new_ops_torch(name, shape, seed):
    x = (positive if name == "log1p" else smooth)(np.random.default_rng(seed), shape)
    against_torch(lambda t: getattr(t, name)(), lambda t: getattr(t, name)(), [x], seed)


class SineCell(nn.Cell):
    """h' = sin(x W^T) * cos(h U^T): a cell built on the new ops, for the accelerator's replay."""

    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.hidden_size = hidden_size
        rng = np.random.default_rng(7)
        self.W = nn.Parameter(rng.uniform(-1, 1, (hidden_size, input_size)))
        self.U = nn.Parameter(rng.uniform(-1, 1, (hidden_size, hidden_size)))

    def forward(self, x, h):
        return (x @ self.W.T).sin() * (h @ self.U.T).cos() + (h * h).log1p().clamp(max=0.5)


def test_a_cell_using_the_new_ops_runs_the_same_with_the_accelerator_on_and_off():
    def run():
        cell = SineCell(3, 4)
        x = leaf(np.random.default_rng(3).uniform(-1, 1, (5, 2, 3)))
        outputs, final = nn.Recurrent(cell)(x, leaf(np.full((2, 4), 0.3)))
        loss = (outputs * np.arange(40.0).reshape(5, 2, 4)).sum() + final.sum()
        grads = tr.grad(loss, [x, cell.W, cell.U])
        return [outputs.data, final.data] + [g.data for g in grads], graph_counts(loss).ops["recurrent_loop"]

    with tr.fast(True):
        fast, loops = run()
    core, no_loops = tr.fast(False)(run)()
    assert (loops, no_loops) == (1, 0)  # the accelerator did run the loop
    for a, b in zip(fast, core):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


# ===================================================================== dim= / keepdim= beside axis= / keepdims=
REDUCTIONS = {"sum": np.sum, "mean": np.mean, "amax": np.max, "amin": np.min}


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
@FAST
@given(shape=shapes(), keepdim=st.booleans(), use_dim=st.booleans(), data=st.data(), seed=seeds)
def test_reductions_take_dim_and_keepdim(name, shape, keepdim, use_dim, data, seed):
    dim = data.draw(st.integers(-len(shape), len(shape) - 1)) if shape and use_dim else None
    x = distinct(np.random.default_rng(seed), shape)
    fn = lambda t: getattr(t, name)(dim=dim, keepdim=keepdim)  # noqa: E731
    against_numpy(fn, lambda a: REDUCTIONS[name](a, axis=dim, keepdims=keepdim), [x], seed)


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
@FEW
@given(shape=shapes(), keepdim=st.booleans(), use_dim=st.booleans(), data=st.data(), seed=seeds)
def test_reductions_torch(name, shape, keepdim, use_dim, data, seed):
    dim = data.draw(st.integers(-len(shape), len(shape) - 1)) if shape and use_dim else None
    x = distinct(np.random.default_rng(seed), shape)
    every = dim if dim is not None else tuple(range(len(shape)))  # torch's amax/amin take no dim=None
    against_torch(lambda t: getattr(t, name)(dim=dim, keepdim=keepdim),
                  lambda t: getattr(t, name)(dim=every, keepdim=keepdim), [x], seed)


@FAST
@given(shape_dim=shape_and_dim(), seed=seeds)
def test_softmax_and_log_softmax_take_dim(shape_dim, seed):
    shape, dim = shape_dim
    x = smooth(np.random.default_rng(seed), shape)
    exps = np.exp(x - x.max(axis=dim, keepdims=True))
    softmax = exps / exps.sum(axis=dim, keepdims=True)
    against_numpy(lambda t: F.softmax(t, dim=dim), lambda a: softmax, [x], seed)
    against_numpy(lambda t: t.log_softmax(dim), lambda a: np.log(softmax), [x], seed)


@FEW
@given(shape_dim=shape_and_dim(), seed=seeds)
def test_softmax_and_log_softmax_torch(shape_dim, seed):
    shape, dim = shape_dim
    x = smooth(np.random.default_rng(seed), shape)
    against_torch(lambda t: F.softmax(t, dim=dim), lambda t: t.softmax(dim=dim), [x], seed)
    against_torch(lambda t: t.log_softmax(dim), lambda t: need_torch().nn.functional.log_softmax(t, dim), [x], seed)


@FEW
@given(shape_dim=shape_and_dim(), pieces=st.integers(1, 3), seed=seeds)
def test_joining_and_splitting_take_dim(shape_dim, pieces, seed):
    shape, dim = shape_dim
    rng = np.random.default_rng(seed)
    arrays = [smooth(rng, shape) for _ in range(pieces)]
    against_numpy(lambda *ts: tr.cat(ts, dim=dim), lambda *a: np.concatenate(a, axis=dim), arrays, seed)
    against_numpy(lambda *ts: tr.concat(ts, dim=dim), lambda *a: np.concatenate(a, axis=dim), arrays, seed)
    against_numpy(lambda *ts: tr.stack(ts, dim=dim), lambda *a: np.stack(a, axis=dim), arrays, seed)
    length, chunk_size = shape[dim], -(-shape[dim] // pieces)  # torch.chunk: pieces of ceil(length / chunks)
    for pieces_of, size in ((lambda t: t.split(pieces, dim=dim), pieces),
                            (lambda t: t.chunk(pieces, dim=dim), chunk_size)):
        against_numpy(lambda t: tr.stack([p.sum() * (i + 1) for i, p in enumerate(pieces_of(t))]),
                      lambda a: np.array([p.sum() * (i + 1) for i, p in enumerate(np.split(a, range(size, length, size),
                                                                                         axis=dim))]), arrays[:1], seed)


@FEW
@given(shape_dim=shape_and_dim(), pieces=st.integers(1, 3), seed=seeds)
def test_joining_and_splitting_torch(shape_dim, pieces, seed):
    torch = need_torch()
    shape, dim = shape_dim
    rng = np.random.default_rng(seed)
    arrays = [smooth(rng, shape) for _ in range(pieces)]
    against_torch(lambda *ts: tr.cat(ts, dim=dim), lambda *ts: torch.cat(ts, dim=dim), arrays, seed)
    against_torch(lambda *ts: tr.stack(ts, dim=dim), lambda *ts: torch.stack(ts, dim=dim), arrays, seed)
    against_torch(lambda t: t.split(pieces, dim=dim), lambda t: t.split(pieces, dim=dim), arrays[:1], seed)
    against_torch(lambda t: t.chunk(pieces, dim=dim), lambda t: t.chunk(pieces, dim=dim), arrays[:1], seed)


def test_one_argument_in_both_spellings_is_an_error():
    x = tr.zeros(2, 3)
    for call in (lambda: x.sum(axis=0, dim=1), lambda: x.mean(keepdims=True, keepdim=True),
                 lambda: tr.cat([x, x], axis=0, dim=0), lambda: F.softmax(x, axis=0, dim=1),
                 lambda: x.argmax(axis=0, dim=0), lambda: x.split(1, axis=0, dim=1)):
        with pytest.raises(TypeError, match=r"got both (axis|keepdims)= \(NumPy's name\) and (dim|keepdim)="):
            call()
    with pytest.raises(TypeError, match="multiple values"):
        x.sum(0, dim=1)


# ===================================================================== max, min, argmax, argmin
@FAST
@given(shape_dim=shape_and_dim(min_dims=0, extra=0), keepdim=st.booleans(), seed=seeds)
def test_max_and_min_pairs_and_the_indices(shape_dim, keepdim, seed):
    shape, dim = shape_dim
    dim = dim if shape else 0
    x = distinct(np.random.default_rng(seed), shape)
    for name, pick, arg in (("max", np.max, np.argmax), ("min", np.min, np.argmin)):
        pair = getattr(leaf(x), name)(dim, keepdim)
        assert pair.indices.dtype == np.int64 and not pair.indices.requires_grad
        assert (pair.values.numpy() == pick(x, axis=dim if shape else None, keepdims=keepdim)).all()
        expected = arg(x, axis=dim, keepdims=keepdim) if shape else np.zeros((), np.int64)
        assert (pair.indices.numpy() == expected).all() and pair.indices.shape == expected.shape
        assert (getattr(leaf(x), f"arg{name}")(dim, keepdim).numpy() == expected).all()
        assert (getattr(leaf(x), f"arg{name}")().numpy() == arg(x)).all()
        assert getattr(leaf(x), f"arg{name}")(keepdim=True).shape == (1,) * len(shape)
        against_numpy(lambda t: getattr(t, name)(dim, keepdim).values,
                      lambda a: pick(a, axis=dim if shape else None, keepdims=keepdim), [x], seed)
        against_numpy(lambda t: getattr(t, name)(), lambda a: pick(a), [x], seed)


@FEW
@given(shape_dim=shape_and_dim(), keepdim=st.booleans(), seed=seeds)
def test_max_min_argmax_argmin_torch(shape_dim, keepdim, seed):
    torch = need_torch()
    shape, dim = shape_dim
    x = distinct(np.random.default_rng(seed), shape)
    for name in ("max", "min"):
        against_torch(lambda t: getattr(t, name)(dim, keepdim), lambda t: getattr(t, name)(dim, keepdim), [x], seed)
        against_torch(lambda t: getattr(t, name)(dim=dim), lambda t: getattr(t, name)(dim=dim), [x], seed)
        against_torch(lambda t: getattr(t, name)(), lambda t: getattr(t, name)(), [x], seed)
        ours, theirs = getattr(tr.tensor(x), name)(dim), getattr(torch.tensor(x), name)(dim)
        assert np.array_equal(ours.values.numpy(), theirs.values.numpy())
        assert np.array_equal(ours.indices.numpy(), theirs.indices.numpy())
        for arg in (f"arg{name}",):
            against_torch(lambda t: getattr(t, arg)(dim, keepdim), lambda t: getattr(t, arg)(dim, keepdim), [x], seed)
            against_torch(lambda t: getattr(t, arg)(), lambda t: getattr(t, arg)(), [x], seed)
            against_torch(lambda t: getattr(t, arg)(keepdim=True), lambda t: getattr(t, arg)(keepdim=True), [x], seed)


def test_ties_share_the_gradient_in_min_as_in_amin():
    x = leaf(np.array([[1.0, 1.0, 2.0], [3.0, 0.5, 0.5]]))
    x.min().backward()
    np.testing.assert_allclose(x.grad, [[0, 0, 0], [0, 0.5, 0.5]])
    y = leaf(np.array([[1.0, 1.0, 2.0]]))
    y.min(1).values.sum().backward()
    np.testing.assert_allclose(y.grad, [[1, 0, 0]])  # the first of equal minima, as PyTorch


# ===================================================================== shape
@FAST
@given(shape=shapes(), seed=seeds, data=st.data())
def test_shape_names_match_numpy(shape, seed, data):
    x = smooth(np.random.default_rng(seed), shape)
    t = leaf(x)
    assert t.size() == shape and t.numel() == x.size and t.dim() == x.ndim and callable(t.size)
    if shape:
        d = data.draw(st.integers(-len(shape), len(shape) - 1))
        assert t.size(d) == shape[d]
    d = data.draw(st.integers(-len(shape) - 1, len(shape)))
    against_numpy(lambda t: t.unsqueeze(d), lambda a: np.expand_dims(a, d), [x], seed)
    against_numpy(lambda t: t.view(-1), lambda a: a.reshape(-1), [x], seed)
    against_numpy(lambda t: t.squeeze(), np.squeeze, [x], seed)
    if shape:
        d = data.draw(st.integers(-len(shape), len(shape) - 1))
        squeezed = np.squeeze(x, d) if shape[d] == 1 else x  # PyTorch's rule: a longer axis stays
        against_numpy(lambda t: t.squeeze(d), lambda a: squeezed, [x], seed)
        start = data.draw(st.integers(0, len(shape) - 1))
        end = data.draw(st.integers(start, len(shape) - 1))
        flat = x.reshape(shape[:start] + (-1,) + shape[end + 1:])
        against_numpy(lambda t: t.flatten(start, end), lambda a: flat, [x], seed)
    against_numpy(lambda t: t.flatten(), lambda a: a.reshape(-1), [x], seed)
    if len(shape) <= 2:
        against_numpy(lambda t: t.t(), lambda a: a.T, [x], seed)


@FEW
@given(shape=shapes(), seed=seeds, data=st.data())
def test_shape_names_torch(shape, seed, data):
    x = smooth(np.random.default_rng(seed), shape)
    d = data.draw(st.integers(-len(shape) - 1, len(shape)))
    against_torch(lambda t: t.unsqueeze(d), lambda t: t.unsqueeze(d), [x], seed)
    against_torch(lambda t: t.view(-1), lambda t: t.view(-1), [x], seed)
    against_torch(lambda t: t.squeeze(), lambda t: t.squeeze(), [x], seed)
    against_torch(lambda t: t.flatten(), lambda t: t.flatten(), [x], seed)
    ndim = max(len(shape), 1)
    d = data.draw(st.integers(-ndim, ndim - 1))
    against_torch(lambda t: t.squeeze(d), lambda t: t.squeeze(d), [x], seed)
    dims = tuple(data.draw(st.lists(st.integers(-ndim, ndim - 1), max_size=3, unique_by=lambda d: d % ndim)))
    against_torch(lambda t: t.squeeze(dims), lambda t: t.squeeze(dims), [x], seed)
    start = data.draw(st.integers(-ndim, ndim - 1))
    end = data.draw(st.integers(start % ndim, ndim - 1))
    against_torch(lambda t: t.flatten(start, end), lambda t: t.flatten(start, end), [x], seed)
    order = data.draw(st.permutations(range(len(shape))))
    against_torch(lambda t: t.permute(*order), lambda t: t.permute(tuple(order)), [x], seed)
    if len(shape) <= 2:
        against_torch(lambda t: t.t(), lambda t: t.t(), [x], seed)
    torch = need_torch()
    assert leaf(x).size() == tuple(torch.tensor(x).size()) and leaf(x).numel() == torch.tensor(x).numel()
    assert leaf(x).dim() == torch.tensor(x).dim()


def test_shape_errors_name_the_dim_and_the_shape():
    x = tr.zeros(2, 3)
    with pytest.raises(IndexError, match=esc("size: dim 2 is out of range for a tensor of shape (2, 3)")):
        x.size(2)
    with pytest.raises(IndexError, match=esc("size: dim 0 is out of range: a tensor of shape () has no dims")):
        tr.tensor(1.0).size(0)
    with pytest.raises(TypeError, match="size: dim must be an int, got float 1.0"):
        x.size(1.0)
    with pytest.raises(IndexError, match=esc("unsqueeze: dim 3 is out of range")):
        x.unsqueeze(3)
    with pytest.raises(ValueError, match="unsqueeze: dim 3 is out of range") as error:
        x.unsqueeze(3)
    assert "(dims run from -3 to 2)" in str(error.value)
    with pytest.raises(IndexError, match="squeeze: dim -3 is out of range"):
        x.squeeze((0, -3))
    with pytest.raises(ValueError, match=esc("squeeze: dims (1, -1) name an axis twice (a tensor of shape")):
        x.squeeze((1, -1))  # as PyTorch: an error, not the set of the two
    with pytest.raises(ValueError, match="flatten: start_dim 1 comes after end_dim 0"):
        x.flatten(1, 0)
    with pytest.raises(TypeError, match="flatten: dim must be an int, got str 'F'"):
        x.flatten("F")  # NumPy's memory order: not PyTorch's meaning, refused
    with pytest.raises(ValueError, match=esc("t() transposes tensors of at most 2 dimensions, got shape (1, 2")):
        tr.zeros(1, 2, 3).t()
    with pytest.raises(IndexError, match="axis 2 is out of range for a tensor with 2 dimensions"):
        x.argmax(2)
    with pytest.raises(ValueError, match=esc("argmax: a tensor of shape (0, 3) has no elements")):
        tr.zeros(0, 3).argmax()
    with pytest.raises(TypeError, match=esc("min(axis=...) gives the values in NumPy but (values, indices)")):
        x.min(axis=0)
    with pytest.raises(TypeError, match="amin: not supported for dtype bool"):
        tr.tensor([True]).amin()


# ===================================================================== values, dtypes, conversions
@FAST
@given(shape=shapes(), seed=seeds)
def test_clone_tolist_and_dtype_conversions(shape, seed):
    x = smooth(np.random.default_rng(seed), shape)
    t = leaf(x)
    copy = t.clone()
    assert copy.data is not t.data and not np.shares_memory(copy.data, t.data) and (copy.data == x).all()
    against_numpy(lambda t: t.clone() * 3, lambda a: a * 3, [x], seed)
    assert t.tolist() == x.tolist()
    for convert, dtype in ((lambda t: t.float(), np.float32), (lambda t: t.to("float32"), np.float32),
                           (lambda t: t.to(tr.float32), np.float32),
                           (lambda t: t.to(np.dtype(np.float32)), np.float32)):
        converted = convert(leaf(x))
        assert converted.dtype == dtype and np.array_equal(converted.numpy(), x.astype(dtype))
    assert t.double() is t and t.to(tr.float64) is t and t.to("cpu") is t  # already so: itself, as PyTorch
    assert t.long().dtype == np.int64 and t.to(tr.int32).dtype == np.int32 and not t.long().requires_grad
    same = leaf(x)
    same.float().sum().backward()  # the gradient is cast back to the input's dtype
    assert same.grad.dtype == np.float64 and (same.grad == 1).all()


def test_python_numbers_from_one_element_tensors():
    assert float(tr.tensor([[2.5]])) == 2.5 and int(tr.tensor(2.7)) == 2 and int(tr.tensor([-3])) == -3
    assert isinstance(float(tr.tensor(1)), float) and isinstance(int(tr.tensor(1.0)), int)
    loss = leaf(np.array([1.0, 2.0])).sum()
    assert float(loss) == 3.0
    with pytest.raises(TypeError, match=esc("only a one-element tensor converts to a Python float, got shape (2,")):
        float(tr.zeros(2))
    with pytest.raises(TypeError, match=esc("only a one-element tensor converts to a Python int, got shape (0,")):
        int(tr.zeros(0))


def test_dtype_spellings():
    assert (tr.float32, tr.float64, tr.int32, tr.int64, tr.double, tr.long) == \
        (np.float32, np.float64, np.int32, np.int64, np.float64, np.int64)
    x = tr.zeros(2)
    with pytest.raises(TypeError, match="'float' means 64 bits in NumPy but 32 in PyTorch"):
        x.to("float")
    with pytest.raises(TypeError, match="to: str 'cuda' is not a dtype"):
        x.to("cuda")
    with pytest.raises(TypeError, match="tensors hold numbers or bools, got dtype complex128"):
        x.to(np.complex128)


def test_to_accepts_torch_dtypes_and_devices():
    torch = need_torch()
    x = tr.zeros(2)
    assert x.to(torch.float64).dtype == np.float64 and x.to(torch.int64).dtype == np.int64
    assert x.to(torch.device("cpu")) is x
    assert tr.zeros(2, dtype=torch.float64).dtype == np.float64


@FEW
@given(shape=shapes(), seed=seeds)
def test_values_and_conversions_torch(shape, seed):
    torch = need_torch()
    x = smooth(np.random.default_rng(seed), shape)
    against_torch(lambda t: t.clone(), lambda t: t.clone(), [x], seed)
    against_torch(lambda t: t.float(), lambda t: t.float(), [x], seed, dict(rtol=0, atol=0))
    against_torch(lambda t: t.to(tr.float32).double(), lambda t: t.to(torch.float32).double(), [x], seed)
    assert tr.tensor(x).tolist() == torch.tensor(x).tolist()
    if x.size == 1:
        assert float(tr.tensor(x)) == float(torch.tensor(x)) and int(tr.tensor(x * 10)) == int(torch.tensor(x * 10))


# ===================================================================== clamp, masked_fill, pow, matmul
@FAST
@given(shape=shapes(), seed=seeds)
def test_clamp_masked_fill_pow_matmul_against_closed_forms(shape, seed):
    rng = np.random.default_rng(seed)
    x = smooth(rng, shape)
    x = np.where(np.abs(x - 0.2) < 0.05, 0.4, np.where(np.abs(x + 0.3) < 0.05, -0.5, x))  # off the kinks
    against_numpy(lambda t: t.clamp(-0.3, 0.2), lambda a: np.clip(a, -0.3, 0.2), [x], seed)
    against_numpy(lambda t: t.clamp(min=-0.3), lambda a: np.maximum(a, -0.3), [x], seed)
    against_numpy(lambda t: t.clamp(max=0.2), lambda a: np.minimum(a, 0.2), [x], seed)
    against_numpy(lambda t: t.clamp_min(-0.3), lambda a: np.maximum(a, -0.3), [x], seed)
    against_numpy(lambda t: t.clamp_max(0.2), lambda a: np.minimum(a, 0.2), [x], seed)
    mask = rng.random(shape) < 0.5
    against_numpy(lambda t: t.masked_fill(mask, -7.0), lambda a: np.where(mask, -7.0, a), [x], seed)
    against_numpy(lambda t, v: t.masked_fill(tr.tensor(mask), v), lambda a, v: np.where(mask, v, a),
                  [x, np.array(0.5)], seed)
    against_numpy(lambda t: t.pow(3), lambda a: a ** 3, [x], seed)
    against_numpy(lambda t, p: t.pow(p), lambda a, p: a ** p, [positive(rng, shape), smooth(rng, shape)], seed)
    if shape:
        against_numpy(lambda t, w: t.matmul(w), lambda a, w: a @ w, [x, smooth(rng, shape[-1:] + (2,))], seed)


@FEW
@given(shape=shapes(min_dims=1), seed=seeds)
def test_clamp_masked_fill_pow_matmul_torch(shape, seed):
    rng = np.random.default_rng(seed)
    x = smooth(rng, shape)
    x = np.where(np.abs(x - 0.2) < 0.05, 0.4, np.where(np.abs(x + 0.3) < 0.05, -0.5, x))
    against_torch(lambda t: t.clamp(-0.3, 0.2), lambda t: t.clamp(-0.3, 0.2), [x], seed)
    against_torch(lambda t: t.clamp(min=-0.3), lambda t: t.clamp(min=-0.3), [x], seed)
    against_torch(lambda t: t.clamp_max(0.2), lambda t: t.clamp_max(0.2), [x], seed)
    against_torch(lambda t: t.clamp(0.5, -0.5), lambda t: t.clamp(0.5, -0.5), [x], seed)  # min > max: max everywhere
    mask = rng.random(shape[-1:]) < 0.5  # broadcast over the leading axes
    torch = need_torch()
    against_torch(lambda t, v: t.masked_fill(mask, v), lambda t, v: t.masked_fill(torch.tensor(mask), v),
                  [x, np.array(0.25)], seed)
    against_torch(lambda t, p: t.pow(p), lambda t, p: t.pow(p), [positive(rng, shape), smooth(rng, shape)], seed)
    against_torch(lambda t: t.pow(2), lambda t: t.pow(2), [x], seed)
    against_torch(lambda t, w: t.matmul(w), lambda t, w: t.matmul(w), [x, smooth(rng, shape[-1:] + (2,))], seed)


def test_clamp_and_masked_fill_errors():
    x = tr.zeros(2, 3)
    with pytest.raises(ValueError, match="clamp: give min, max or both"):
        x.clamp()
    with pytest.raises(TypeError, match="clamp: min must be a number or None, got Tensor"):
        x.clamp(tr.zeros(1))
    with pytest.raises(TypeError, match="masked_fill: mask must be boolean, got dtype int64"):
        x.masked_fill(np.zeros((2, 3), np.int64), 1.0)
    with pytest.raises(ValueError, match=esc("masked_fill: mask of shape (4, 2, 3) does not broadcast to "
                                                   "the tensor's shape (2, 3)")):
        x.masked_fill(np.zeros((4, 2, 3), bool), 1.0)
    with pytest.raises(ValueError, match=esc("masked_fill: value must be a number or a 0-d Tensor, got shape (1")):
        x.masked_fill(np.zeros((2, 3), bool), tr.zeros(1))


# ===================================================================== constructors
def test_tensor_infers_dtypes_as_pytorch(restore_default_dtype):
    assert tr.tensor([1, 2]).dtype == np.int64 and tr.tensor(3).dtype == np.int64
    assert tr.tensor([1.0, 2]).dtype == np.float32 and tr.tensor([True, False]).dtype == bool
    assert tr.tensor(np.arange(3, dtype=np.int32)).dtype == np.int32 and tr.tensor(np.float64(1)).dtype == np.float64
    assert tr.tensor([1, 2], dtype=tr.float64).dtype == np.float64
    tr.set_default_dtype(np.float64)
    assert tr.tensor([0.5]).dtype == tr.zeros(1).dtype == tr.arange(0.5).dtype == np.float64
    source = np.array([1.0, 2.0])
    copy = tr.tensor(source, requires_grad=True)
    source[0] = 9.0
    assert copy.requires_grad and copy.data[0] == 1.0  # a copy, as torch.tensor
    with pytest.raises(TypeError, match=esc("tensor(data) got a Tensor; for a copy write x.clone().detach()")):
        tr.tensor(tr.zeros(1))
    with pytest.raises(TypeError, match="tensor: cannot make a tensor from list"):
        tr.tensor([[1, 2], [3]])
    with pytest.raises(ValueError, match="tensor: the integers in list .* do not fit in int64"):
        tr.tensor([2 ** 63])
    with pytest.raises(TypeError, match="only floating-point tensors can require gradients"):
        tr.tensor([1, 2], requires_grad=True)


def test_tensor_dtypes_torch(restore_default_dtype):
    torch = need_torch()
    for data in ([1, 2], [1.5, 2], [True], 3, 2.5, np.arange(3, dtype=np.int32), np.float64(2), [[1, 2], [3, 4]]):
        assert str(tr.tensor(data).dtype) == str(torch.tensor(data).dtype).removeprefix("torch.")
        assert tr.tensor(data).tolist() == torch.tensor(data).tolist()


def test_zeros_ones_and_like():
    for make, fill in ((tr.zeros, 0), (tr.ones, 1)):
        for args in ((2, 3), ((2, 3),), ([2, 3],)):
            t = make(*args)
            assert t.shape == (2, 3) and t.dtype == tr.get_default_dtype() and (t.data == fill).all()
        assert make().shape == () and make(0, 2).shape == (0, 2)
        t = make(2, dtype=tr.float64, requires_grad=True)
        assert t.dtype == np.float64 and t.requires_grad and t.is_leaf
        assert make(2, dtype="int64").dtype == np.int64
    x = tr.tensor(np.zeros((2, 1), np.float64))
    for like, fill in ((tr.zeros_like, 0), (tr.ones_like, 1)):
        t = like(x)
        assert t.shape == (2, 1) and t.dtype == np.float64 and (t.data == fill).all() and t.data is not x.data
        assert like(x, dtype=tr.int64).dtype == np.int64 and like(x, requires_grad=True).requires_grad
    with pytest.raises(ValueError, match=esc("zeros: sizes must be non-negative, got (2, -1)")):
        tr.zeros(2, -1)
    with pytest.raises(TypeError, match=esc("ones: sizes must be ints, got float 2.0 in (2.0,)")):
        tr.ones(2.0)


def test_zeros_ones_torch():
    torch = need_torch()
    for args in ((2, 3), ((2, 3),), ([2, 3],), ((),), (0,)):
        assert tr.zeros(*args).shape == tuple(torch.zeros(*args).shape)
        assert tr.ones(*args, dtype=tr.float64).tolist() == torch.ones(*args, dtype=torch.float64).tolist()


def test_randn_and_rand_repeat_under_manual_seed():
    tr.manual_seed(5)
    a, u = tr.randn(3, 4), tr.rand((3, 4), dtype=tr.float64)
    tr.manual_seed(5)
    b, v = tr.randn(3, 4), tr.rand(3, 4, dtype=tr.float64)
    assert np.array_equal(a.data, b.data) and np.array_equal(u.data, v.data)
    assert a.dtype == np.float32 and u.dtype == np.float64 and tr.randn(2, requires_grad=True).requires_grad
    tr.manual_seed(5)
    draws = tr.rand(200_000).data  # float32: every draw below 1, none rounded up to it
    assert draws.dtype == np.float32 and draws.min() >= 0 and draws.max() < 1
    assert abs(draws.mean() - 0.5) < 0.01
    normal = tr.randn(200_000, dtype=tr.float64).data
    assert abs(normal.mean()) < 0.01 and abs(normal.std() - 1) < 0.01
    with pytest.raises(TypeError, match="randn: draws float32 or float64 tensors, got dtype int64"):
        tr.randn(2, dtype=tr.int64)


ARANGES = [((5,), {}), ((2, 7), {}), ((7, 2, -2), {}), ((0, 1, 0.1), {}), ((0.1, 1.0, 0.2), {"dtype": "float64"}),
           ((-1.5, 2.25, 0.75), {}), ((1, 5), {"dtype": "float64"}), ((3, 3), {}), ((1, 2.5, 0.5), {})]


@pytest.mark.parametrize("args, kwargs", ARANGES)
def test_arange_is_start_plus_i_step(args, kwargs):
    start, end, step = (0, args[0], 1) if len(args) == 1 else (args + (1,))[:3]
    count = int(np.ceil((end - start) / step))
    t = tr.arange(*args, **kwargs)
    integers = all(isinstance(v, int) for v in (start, end, step))
    expected_dtype = np.dtype(kwargs.get("dtype", np.int64 if integers else tr.get_default_dtype()))
    assert t.dtype == expected_dtype and t.shape == (count,)
    assert np.array_equal(t.data, (start + step * np.arange(count, dtype=np.float64)).astype(expected_dtype))


@pytest.mark.parametrize("args, kwargs", ARANGES)
def test_arange_torch(args, kwargs):
    torch = need_torch()
    theirs = torch.arange(*args, **{k: getattr(torch, v) for k, v in kwargs.items()})
    ours = tr.arange(*args, **kwargs)
    assert str(ours.dtype) == str(theirs.dtype).removeprefix("torch.")
    assert np.array_equal(ours.data, theirs.numpy())


def test_arange_errors():
    with pytest.raises(ValueError, match="arange: step 1 never leads from start 5 to end 0"):
        tr.arange(5, 0)  # NumPy: an empty array; PyTorch: an error
    with pytest.raises(ValueError, match="arange: step 0 never leads"):
        tr.arange(0, 3, 0)
    with pytest.raises(ValueError, match="arange: end must be finite, got inf"):
        tr.arange(0, float("inf"))
    with pytest.raises(TypeError, match="arange: start must be a number, got str"):
        tr.arange("0", 3)


def test_from_numpy_shares_memory_and_dtype():
    array = np.arange(6, dtype=np.int32).reshape(2, 3)
    t = tr.from_numpy(array)
    array[0, 0] = 42
    assert t.dtype == np.int32 and t.data[0, 0] == 42 and np.shares_memory(t.data, array)
    with pytest.raises(TypeError, match="from_numpy: expected an ndarray, got list"):
        tr.from_numpy([1, 2])


def test_from_numpy_torch():
    torch = need_torch()
    array = np.arange(6.0).reshape(2, 3)
    assert str(tr.from_numpy(array).dtype) == str(torch.from_numpy(array).dtype).removeprefix("torch.")


# ===================================================================== functional: activations
@pytest.mark.parametrize("name", ["relu", "tanh", "sigmoid"])
@FEW
@given(shape=shapes(), seed=seeds)
def test_activations_torch(name, shape, seed):
    torch = need_torch()
    x = distinct(np.random.default_rng(seed), shape) + 0.125  # never exactly 0 (relu's kink)
    against_torch(getattr(F, name), getattr(torch.nn.functional, name) if name == "relu" else getattr(torch, name),
                  [x], seed)


def test_activations_closed_forms():
    x = np.array([-2.0, -0.5, 0.5, 2.0])
    against_numpy(F.relu, lambda a: np.maximum(a, 0), [x], 0)
    against_numpy(F.tanh, np.tanh, [x], 0)
    against_numpy(F.sigmoid, sigma, [x], 0)


# ===================================================================== functional: class losses
def reference_nll(log_probs, targets, reduction, ignore_index=None):
    """The closed form: -log_probs at each target, 0 where ignored; mean over the kept ones."""
    kept = np.ones(targets.shape, bool) if ignore_index is None else targets != ignore_index
    picked = np.take_along_axis(log_probs, np.where(kept, targets, 0)[..., None], axis=-1)[..., 0]
    losses = np.where(kept, -picked, 0.0)
    return {"none": losses, "sum": losses.sum(), "mean": losses.sum() / kept.sum()}[reduction]


def log_softmax_np(x):
    shifted = x - x.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def class_problem(seed, lead_shape, classes):
    rng = np.random.default_rng(seed)
    logits = smooth(rng, lead_shape + (classes,)) * 2
    targets = rng.integers(0, classes, lead_shape)
    ignored = np.asarray(rng.random(lead_shape) < 0.3)
    ignored.flat[0] = False  # at least one kept
    return logits, targets, np.where(ignored, -100, targets)


lead_shapes = st.sampled_from([(), (3,), (2, 3)])


@FAST
@given(lead=lead_shapes, classes=st.integers(1, 4), reduction=st.sampled_from(["mean", "sum", "none"]),
       ignore=st.booleans(), seed=seeds)
def test_nll_loss_is_the_closed_form(lead, classes, reduction, ignore, seed):
    logits, targets, with_ignored = class_problem(seed, lead, classes)
    log_probs = log_softmax_np(logits)
    targets, ignore_index = (with_ignored, -100) if ignore else (targets, None)
    against_numpy(lambda lp: F.nll_loss(lp, targets, reduction, ignore_index=ignore_index),
                  lambda lp: reference_nll(lp, targets, reduction, ignore_index), [log_probs], seed)
    against_numpy(lambda x: F.cross_entropy(x, targets, reduction, ignore_index),  # = nll_loss of log_softmax
                  lambda x: reference_nll(log_softmax_np(x), targets, reduction, ignore_index), [logits], seed)


@FAST
@given(lead=lead_shapes, classes=st.integers(1, 4), smoothing=st.sampled_from([0.0, 0.1, 0.5, 1.0]),
       reduction=st.sampled_from(["mean", "sum", "none"]), ignore=st.booleans(), seed=seeds)
def test_label_smoothing_is_pytorchs_definition(lead, classes, smoothing, reduction, ignore, seed):
    logits, targets, with_ignored = class_problem(seed, lead, classes)
    targets, ignore_index = (with_ignored, -100) if ignore else (targets, None)

    def reference(x):  # -sum_k q_k log p_k with q = (1 - ε) one_hot(y) + ε / C, 0 where ignored
        log_p = log_softmax_np(x)
        kept = np.ones(targets.shape, bool) if ignore_index is None else targets != ignore_index
        q = (1 - smoothing) * (np.arange(classes) == np.where(kept, targets, 0)[..., None]) + smoothing / classes
        losses = np.where(kept, -(q * log_p).sum(axis=-1), 0.0)
        return {"none": losses, "sum": losses.sum(), "mean": losses.sum() / kept.sum()}[reduction]

    against_numpy(lambda x: F.cross_entropy(x, targets, reduction, ignore_index, label_smoothing=smoothing),
                  reference, [logits], seed)


@FEW
@given(lead=st.sampled_from([(4,), (3, 2)]), classes=st.integers(2, 4), smoothing=st.sampled_from([0.0, 0.2]),
       reduction=st.sampled_from(["mean", "sum", "none"]), seed=seeds)
def test_class_losses_torch(lead, classes, smoothing, reduction, seed):
    """Ours take (*, C), classes last; torch's take (N, C, d): a (T, N, C) input is moved to (T, C, N) for torch."""
    torch = need_torch()
    TF = torch.nn.functional
    logits, _, targets = class_problem(seed, lead, classes)
    to_torch = (lambda t: t) if len(lead) == 1 else (lambda t: t.permute(0, 2, 1))
    y = torch.tensor(targets)
    against_torch(lambda x: F.cross_entropy(x, targets, reduction, ignore_index=-100, label_smoothing=smoothing),
                  lambda x: TF.cross_entropy(to_torch(x), y, reduction=reduction, label_smoothing=smoothing),
                  [logits], seed)
    against_torch(lambda x: F.nll_loss(F.log_softmax(x, dim=-1), targets, reduction, ignore_index=-100),
                  lambda x: TF.nll_loss(to_torch(TF.log_softmax(x, dim=-1)), y, reduction=reduction),
                  [logits], seed)


def test_class_loss_errors():
    log_probs = tr.zeros(2, 3)
    with pytest.raises(IndexError, match=esc("nll_loss: targets holds -100, which is not a class id in [0, 3)")):
        F.nll_loss(log_probs, np.array([0, -100]))  # PyTorch ignores -100 by default; here it is asked for
    with pytest.raises(ValueError, match=esc("nll_loss: targets of shape (3,) do not match log_probs of shape (2,")):
        F.nll_loss(log_probs, np.array([0, 1, 2]))
    with pytest.raises(ValueError, match=r"nll_loss: reduction must be one of .* got ndarray of shape \(3,\)"):
        F.nll_loss(log_probs, np.array([0, 1]), np.ones(3))  # PyTorch's third argument (weight): refused
    with pytest.raises(ValueError, match=esc("cross_entropy: label_smoothing must be in [0, 1.0], got 1.5")):
        F.cross_entropy(log_probs, np.array([0, 1]), label_smoothing=1.5)


# ===================================================================== functional: binary losses
def binary_problem(seed, shape):
    rng = np.random.default_rng(seed)
    return rng.uniform(0.05, 0.95, shape), rng.uniform(0, 1, shape), rng.uniform(0.5, 2, shape[-1:])


@FAST
@given(shape=shapes(), weighted=st.booleans(), reduction=st.sampled_from(["mean", "sum", "none"]), seed=seeds)
def test_binary_cross_entropy_is_the_closed_form(shape, weighted, reduction, seed):
    p, y, w = binary_problem(seed, shape)
    w = w if weighted else np.ones(shape[-1:])
    reduce = {"none": lambda v: v, "sum": np.sum, "mean": np.mean}[reduction]
    against_numpy(lambda t: F.binary_cross_entropy(t, y, w if weighted else None, reduction),
                  lambda a: reduce(-w * (y * np.log(a) + (1 - y) * np.log(1 - a))), [p], seed)


def test_binary_cross_entropy_clamps_the_log_at_minus_100():
    for dtype in (np.float32, np.float64):
        p, y = tr.tensor(np.array([0.0, 1.0, 0.0, 1.0], dtype), requires_grad=True), np.array([1, 0, 0, 1], dtype)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no log(0) warning
            losses = F.binary_cross_entropy(p, y, reduction="none")
            losses.sum().backward()
        assert losses.tolist() == [100.0, 100.0, 0.0, 0.0] and np.isfinite(p.grad).all()
    with pytest.raises(ValueError, match=r"binary_cross_entropy: input must hold probabilities in \[0, 1\], got 1.5"):
        F.binary_cross_entropy(tr.tensor([0.5, 1.5]), np.zeros(2, np.float32))


@FAST
@given(shape=shapes(), weighted=st.booleans(), positive_weight=st.booleans(),
       reduction=st.sampled_from(["mean", "sum", "none"]), seed=seeds)
def test_binary_cross_entropy_with_logits_is_the_closed_form(shape, weighted, positive_weight, reduction, seed):
    x, y, w = binary_problem(seed, shape)
    x = (x - 0.5) * 8
    pw = np.flip(w) * 1.5 if positive_weight else np.ones(shape[-1:])
    w = w if weighted else np.ones(shape[-1:])
    reduce = {"none": lambda v: v, "sum": np.sum, "mean": np.mean}[reduction]
    closed = lambda a: reduce(w * (pw * y * np.logaddexp(0, -a) + (1 - y) * np.logaddexp(0, a)))  # noqa: E731
    against_numpy(lambda t: F.binary_cross_entropy_with_logits(t, y, w if weighted else None,
                                                               pw if positive_weight else None, reduction),
                  closed, [x], seed)


def test_binary_cross_entropy_with_logits_is_stable_and_exact_at_zero():
    x = np.array([-1e4, -40.0, 0.0, 0.0, 40.0, 1e4])
    y = np.array([1.0, 0.0, 1.0, 0.3, 1.0, 0.0])
    for dtype in (np.float32, np.float64):
        t = tr.tensor(x.astype(dtype), requires_grad=True)
        with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):
            warnings.simplefilter("error")
            losses = F.binary_cross_entropy_with_logits(t, y.astype(dtype), reduction="none")
            losses.sum().backward()
        expected = np.logaddexp(0, -x) * y + np.logaddexp(0, x) * (1 - y)  # 1e4, 4.2e-18, log 2, ..., 1e4
        np.testing.assert_allclose(losses.data, expected, rtol=1e-6 if dtype == np.float32 else 1e-14, atol=0)
        gradient = (1 - y) * sigma(x) - y * sigma(-x)  # σ(x) - y, without its rounding: -4.2e-18 at x = 40, y = 1
        np.testing.assert_allclose(t.grad, gradient, rtol=1e-6, atol=0)  # and σ(0) - y at x = 0, not -y


def test_the_losses_have_second_derivatives():
    x, y, w = binary_problem(3, (2, 3))
    logits, _, targets = class_problem(3, (2,), 3)
    assert tr.gradgradcheck(lambda t: F.binary_cross_entropy_with_logits(t, y, w, np.flip(w)), (leaf((x - 0.5) * 6),))
    assert tr.gradgradcheck(lambda t: F.binary_cross_entropy(t, y, w), (leaf(x),))
    assert tr.gradgradcheck(lambda t: F.cross_entropy(t, targets, ignore_index=-100, label_smoothing=0.2), (leaf(logits),))


@FEW
@given(shape=shapes(min_dims=1), weighted=st.booleans(), positive_weight=st.booleans(),
       reduction=st.sampled_from(["mean", "sum", "none"]), seed=seeds)
def test_binary_losses_torch(shape, weighted, positive_weight, reduction, seed):
    torch = need_torch()
    TF = torch.nn.functional
    p, y, w = binary_problem(seed, shape)
    x = (p - 0.5) * 8
    x.flat[0] = 0.0
    pw = np.flip(w) * 1.5
    ours_w, theirs_w = (w, torch.tensor(w)) if weighted else (None, None)
    ours_pw, theirs_pw = (pw, torch.tensor(pw)) if positive_weight else (None, None)
    against_torch(lambda t: F.binary_cross_entropy(t, y, ours_w, reduction),
                  lambda t: TF.binary_cross_entropy(t, torch.tensor(y), theirs_w, reduction=reduction), [p], seed)
    against_torch(lambda t: F.binary_cross_entropy_with_logits(t, y, ours_w, ours_pw, reduction),
                  lambda t: TF.binary_cross_entropy_with_logits(t, torch.tensor(y), theirs_w, reduction=reduction,
                                                                pos_weight=theirs_pw), [x], seed)
    extreme = np.array([-1e4, -40.0, 0.0, 40.0, 1e4])
    targets = np.array([1.0, 0.0, 0.5, 1.0, 0.0])
    against_torch(lambda t: F.binary_cross_entropy_with_logits(t, targets, reduction="none"),
                  lambda t: TF.binary_cross_entropy_with_logits(t, torch.tensor(targets), reduction="none"),
                  [extreme], seed, dict(rtol=1e-12, atol=1e-16))


def test_binary_loss_errors():
    x = tr.zeros(2, 3)
    with pytest.raises(ValueError, match=esc("binary_cross_entropy_with_logits: input has shape (2, 3) but "
                                                   "target has shape (3,)")):
        F.binary_cross_entropy_with_logits(x, np.zeros(3, np.float32))
    with pytest.raises(ValueError, match=esc("pos_weight of shape (2,) does not broadcast to the input's shape (2,")):
        F.binary_cross_entropy_with_logits(x, np.zeros((2, 3), np.float32), pos_weight=np.ones(2, np.float32))
    with pytest.raises(TypeError, match="weight has dtype float64 but input has dtype float32"):
        F.binary_cross_entropy(x, np.zeros((2, 3), np.float32), weight=np.ones(3))
    with pytest.raises(TypeError, match="weight must be None, a number, an ndarray or a Tensor, got str"):
        F.binary_cross_entropy(x, np.zeros((2, 3), np.float32), weight="balanced")


@pytest.mark.parametrize("loss", [F.cross_entropy, lambda x, y: F.nll_loss(F.log_softmax(x), y)])
def test_torchs_padding_id_without_ignore_index_is_refused_with_the_way_out(loss):
    """-100 is torch's default ignore_index; here it must be asked for, and the error says how."""
    logits = tr.Tensor(np.zeros((2, 3)))
    with pytest.raises(IndexError, match=r"holds -100.*pass ignore_index=-100"):
        loss(logits, np.array([0, -100]))
    with pytest.raises(IndexError, match=r"holds 7, which is not a class id in \[0, 3\): C = 3$"):
        loss(logits, np.array([0, 7]))


# ===================================================================== spellings whose meanings differ, found in review
@pytest.mark.parametrize("name", ["sum", "mean", "amax", "amin"])
def test_an_empty_dim_is_refused_as_torch_reduces_every_axis_for_it(name):
    """torch reads dim=() as every axis, NumPy's axis=() as none: the PyTorch spelling is an error, NumPy's
    keyword keeps NumPy's meaning (the tensor unchanged)."""
    x = leaf(np.array([[1.0, 3.0], [2.0, 5.0]]))
    for call in (lambda: getattr(x, name)(dim=()), lambda: getattr(x, name)(dim=[]), lambda: getattr(x, name)(())):
        with pytest.raises(ValueError, match=esc(f"{name}: dim=") + r".* reduces every axis in PyTorch but none"):
            call()
    assert np.array_equal(getattr(x, name)(axis=()).numpy(), x.data)
    torch = need_torch()
    assert getattr(torch.tensor(x.data), name)(dim=()).shape == ()  # why: torch reduces them all


@pytest.mark.parametrize("smoothing", [0.0, 0.3])
def test_a_mean_loss_with_every_target_ignored_is_nan_with_zero_gradients(smoothing):
    """As torch: the loss is NaN, but no NaN reaches the gradients (an all-padding batch must not poison a model)."""
    logits = leaf(np.array([[0.5, -1.0, 2.0], [1.0, 0.0, -3.0]]))
    targets = np.array([-100, -100])
    for loss in (F.cross_entropy(logits, targets, ignore_index=-100, label_smoothing=smoothing),
                 F.nll_loss(F.log_softmax(logits), targets, ignore_index=-100)):
        logits.grad = None
        loss.backward()
        assert np.isnan(loss.item()) and np.array_equal(logits.grad, np.zeros((2, 3)))
    torch = need_torch()
    theirs = torch.tensor(logits.data, requires_grad=True)
    torch.nn.functional.cross_entropy(theirs, torch.tensor(targets), label_smoothing=smoothing).backward()
    assert np.array_equal(theirs.grad.numpy(), np.zeros((2, 3)))


def test_masked_fill_keeps_the_dtype_and_refuses_a_value_it_cannot_hold():
    ids = tr.tensor([[1, 2, 3]])
    filled = ids.masked_fill(np.array([True, False, True]), 0)
    assert filled.dtype == np.int64 and filled.tolist() == [[0, 2, 0]]
    assert ids.masked_fill(np.array([False, True, False]), 7.0).tolist() == [[1, 7, 3]]
    with pytest.raises(ValueError, match=esc("masked_fill: value float 2.5 does not fit a tensor of dtype int64")):
        ids.masked_fill(np.array([True, False, True]), 2.5)  # torch would write 2
    for too_big in (np.nan, 2**70):
        with pytest.raises(ValueError, match="does not fit a tensor of dtype int64"):
            ids.masked_fill(np.array([True, False, True]), too_big)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=esc("masked_fill: value float 1e+40 does not fit a tensor of dtype float32")):
            tr.zeros(2).masked_fill(np.array([True, False]), 1e40)
        with pytest.raises(ValueError, match=esc("clamp: max float 1e+40 does not fit a tensor of dtype float32")):
            tr.zeros(2).clamp(max=1e40)
        assert tr.zeros(2, dtype=tr.float64).clamp(max=1e40).tolist() == [0.0, 0.0]


def test_casts_and_constructors_refuse_values_they_cannot_hold_without_warnings(restore_default_dtype):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for bad in (np.nan, np.inf, 1e30):
            with pytest.raises(ValueError, match="to: a tensor of dtype float64 holds values .* no int64 value"):
                tr.tensor(np.array([1.0, bad])).long()
        with pytest.raises(ValueError, match=esc(
                "tensor: list [1.0, 1e+40] holds numbers beyond the range of float32;")):
            tr.tensor([1.0, 1e40])  # torch gives inf
        with pytest.raises(ValueError, match="beyond the range of float32"):
            tr.tensor(np.array([1e40]), dtype=tr.float32)
        with pytest.raises(ValueError, match="do not fit in int64"):
            tr.tensor([1, -2**63 - 1])
        assert tr.tensor([1e40], dtype=tr.float64).tolist() == [1e40] and np.isinf(tr.tensor(np.inf).item())


def test_tensor_keeps_the_dtype_of_numpy_numbers_in_a_list(restore_default_dtype):
    """[np.float64(x), ...] (e.g. losses gathered from NumPy) stays float64, as torch, not the default float32:
    each number counts with its dtype (a Python float the default one), a floating dtype beats the integers."""
    cases = [([np.float64(0.1), 2.0], np.float64), ([np.float32(1)], np.float32), ([np.float16(1)], np.float16),
             ([np.float16(1), 2.0], np.float32), ([np.int32(1)], np.int32), ([np.int32(1), 2], np.int64),
             ([np.int8(1), 2.5], np.float32), ([[np.float64(1)], [2.0]], np.float64), ([1.0, 2.0], np.float32),
             ([tr.tensor(1.0, dtype=tr.float64), 2.0], np.float64), ([np.float64(1), np.float32(2)], np.float64)]
    for data, dtype in cases:
        made = tr.tensor(data)
        assert made.dtype == dtype, (data, made.dtype)
        assert made.tolist() == np.array(data, dtype=dtype).tolist()
    assert tr.tensor([np.float64(0.1)]).item() == 0.1  # not rounded through float32
    torch = need_torch()
    for data, _ in cases[:-2]:
        assert str(tr.tensor(data).dtype) == str(torch.tensor(data).dtype).removeprefix("torch."), data
