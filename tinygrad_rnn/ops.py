"""Every differentiable primitive, one block per op: its name, forward, what backward reads, backward.

An ``Op`` is an op's ``forward(ctx, *arrays) -> array`` and ``backward(g, out, ctx, *inputs) -> one
gradient per input`` (None: nothing flows to that input), with ``reads``, the arrays backward reads:
(the output?, the indices of the inputs, or None for all). Only those are kept in the graph, so a
temporary that no backward reads is freed as soon as the program drops it. ``ctx`` holds what
forward and backward need that is not an array (axes, shapes, flags); it never depends on the data.

On the first-order path ``g``, ``out`` and the inputs are ndarrays; with ``create_graph=True`` they
are Tensors, and the same lines record the backward pass as a graph. So a backward is written only
with what both share (operators, ``sum``, ``reshape``, ``.T``, indexing), plus the few helpers below
that dispatch on type. Broadcasting follows NumPy; ``_unbroadcast`` sums a gradient back to its
input's shape.
"""
import builtins
import collections

import numpy as np

from ._checks import AxisOutOfRangeError, is_int
from ._indexing import normalise_index, refuse_numpy_only_meaning
from .tensor import IndexGrad, Tensor, add_at, read_values

# what a backward reads: (the output?, which inputs: a tuple of indices, or None for all)
NOTHING, OUTPUT, INPUTS, ALL = (False, ()), (True, ()), (False, None), (True, None)


class Op:
    """A primitive: its ``name``, ``forward``, ``backward`` (None: no gradient flows) and ``reads``."""

    __slots__ = ("name", "forward", "backward", "reads")

    def __init__(self, name, forward, backward, reads=ALL):
        self.name, self.forward, self.backward, self.reads = name, forward, backward, reads

    def __call__(self, ctx, *inputs, reads=None):
        """The op on Tensors: its forward on their arrays, as a Tensor with a node (``reads`` overrides)."""
        return Tensor.from_op(self.forward(ctx, *[t.data for t in inputs]), inputs, self, ctx, reads)

    def __repr__(self):
        return f"Op({self.name!r})"


# ===================================================================== helpers
CONSTANT = Op("constant", None, None)
CAST = Op("astype", lambda dtype, a: a.astype(dtype), None)


def _constant(value, like):
    """A non-differentiable operand as a Tensor, in ``like``'s dtype when ``like`` is floating."""
    if isinstance(value, Tensor):
        return value
    dtype = like.data.dtype if like.data.dtype.kind == "f" else None
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "f" and dtype is not None and value.dtype != dtype:
            raise TypeError(f"dtype mismatch: a {dtype} tensor combined with a {value.dtype} array; "
                            f"convert one of them explicitly")
        if value.dtype.kind not in "fiub":
            raise TypeError(f"cannot combine a Tensor with an array of dtype {value.dtype}")
    elif not isinstance(value, (int, float, bool, np.number, np.bool_, list, tuple)):
        raise TypeError(f"cannot combine a Tensor with {type(value).__name__}")
    return Tensor.from_op(np.asarray(value, dtype=dtype), (), CONSTANT)


def _operands(a, b, name):
    """Both operands as Tensors of a single dtype; mixed float dtypes are an error, never a cast."""
    if not isinstance(b, Tensor):
        b = _constant(b, a)
    elif not isinstance(a, Tensor):
        a = _constant(a, b)
    da, db = a.data.dtype, b.data.dtype
    if da != db:
        if da.kind == "f" and db.kind == "f":
            raise TypeError(f"{name}: dtype mismatch {da} vs {db}; convert one side with .astype()")
        if da.kind == "f":
            b = CAST(da, b)
        elif db.kind == "f":
            a = CAST(db, a)
    return a, b


def _binary(op, a, b, ctx=None, reads=None):
    """``op`` on two operands that broadcast together (numbers and arrays become constants)."""
    a, b = _operands(a, b, op.name)
    try:
        return op(ctx, a, b, reads=reads)
    except ValueError:
        raise ValueError(f"{op.name}: shapes {a.shape} and {b.shape} cannot be broadcast together") from None


def _needs(x):
    return isinstance(x, Tensor) and x.requires_grad


def _unbroadcast(g, shape):
    """Sum ``g`` over the axes broadcasting added or stretched, so that it has ``shape``."""
    if g.shape == shape:
        return g
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, n in enumerate(shape) if n == 1 and g.shape[lead + i] != 1)
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    return g.reshape(shape)


def _expand(g, shape):
    """Broadcast ``g`` to ``shape`` (a read-only view for ndarrays)."""
    return broadcast_to(g, shape) if type(g) is Tensor else np.broadcast_to(g, shape)


def _values(x):
    """The array of a Tensor or ndarray, for a backward's piecewise-constant factor (no graph through it)."""
    return x.data if type(x) is Tensor else x


def _on(x, op, ufunc):
    """``op(x)`` for a Tensor (recorded, under ``create_graph``), ``ufunc(x)`` for an ndarray: a backward's factor."""
    return op(x) if type(x) is Tensor else ufunc(x)


def _permuted(x, dims):
    """``x`` with its axes permuted (ndarrays call it ``transpose``, Tensors ``permute``)."""
    return permute(x, dims) if type(x) is Tensor else x.transpose(dims)


# ===================================================================== elementwise binary
def add(a, b):
    """a + b (broadcasting).  d/da = d/db = 1."""
    return _binary(ADD, a, b)


ADD = Op("add", lambda ctx, a, b: a + b, lambda g, out, ctx, a, b: (_unbroadcast(g, a.shape), _unbroadcast(g, b.shape)),
         NOTHING)


def sub(a, b):
    """a - b (broadcasting).  d/da = 1, d/db = -1."""
    return _binary(SUB, a, b)


SUB = Op("sub", lambda ctx, a, b: a - b, lambda g, out, ctx, a, b: (_unbroadcast(g, a.shape), _unbroadcast(-g, b.shape)),
         NOTHING)


def mul(a, b):
    """a * b (broadcasting).  d/da = b, d/db = a: each gradient reads the other operand, so only the
    operands whose partner needs a gradient are kept (``ctx``: which inputs need one)."""
    needs = (_needs(a), _needs(b))
    return _binary(MUL, a, b, needs, (False, (1,) if needs == (True, False) else (0,) if needs == (False, True) else None))


def _mul_backward(g, out, needs, a, b):
    return (_unbroadcast(g * b, a.shape) if needs[0] else None), (_unbroadcast(g * a, b.shape) if needs[1] else None)


MUL = Op("mul", lambda needs, a, b: a * b, _mul_backward)


def div(a, b):
    """a / b (broadcasting).  d/da = 1/b, d/db = -a/b^2."""
    return _binary(DIV, a, b)


DIV = Op("div", lambda ctx, a, b: a / b,
         lambda g, out, ctx, a, b: (_unbroadcast(g / b, a.shape), _unbroadcast(-g * a / (b * b), b.shape)), INPUTS)


def pow(a, b):
    """a ** b: a number exponent (d/da = p a^(p-1), zero for p = 0), or a tensor exponent
    (d/da = b a^(b-1), d/db = a^b log a, computed only where needed: log a is NaN for a < 0)."""
    if isinstance(a, Tensor) and type(b) in (int, float):  # not np.float64: it would upcast float32
        return POW_NUMBER(b, a)
    return _binary(POW, a, b, (_needs(a), _needs(b)))


def _pow_number_backward(g, out, exponent, a):
    return (g * 0,) if exponent == 0 else (g * (exponent * a ** (exponent - 1)),)


def _pow_backward(g, out, needs, a, b):
    """d/db = a^b log a is taken as 0 where a = 0 (its limit for b > 0): log is read at 1 there, not at 0."""
    a_or_one = a + (_values(a) == 0).astype(a.dtype)
    return (_unbroadcast(g * b * a ** (b - 1), a.shape) if needs[0] else None,
            _unbroadcast(g * out * _on(a_or_one, log, np.log), b.shape) if needs[1] else None)


POW_NUMBER = Op("pow", lambda exponent, a: a ** exponent, _pow_number_backward, INPUTS)
POW = Op("pow", lambda needs, a, b: a ** b, _pow_backward)


def neg(a):
    """-a."""
    return NEG(None, a)


NEG = Op("neg", lambda ctx, a: -a, lambda g, out, ctx, a: (-g,), NOTHING)


# ===================================================================== products
def matmul(a, b):
    """a @ b with NumPy's rules: 1-D operands are vectors, leading axes broadcast as batches.
    For matrices d/da = g b^T, d/db = a^T g."""
    a, b = _operands(a, b, "matmul")
    try:
        return MATMUL((a.requires_grad, b.requires_grad), a, b)
    except ValueError:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not match (inner sizes {a.shape[-1:]} and "
                         f"{b.shape[-2:-1] or b.shape}; batch axes must broadcast)") from None


def _matmul_backward(g, out, needs, a, b):
    need_a, need_b = needs
    if a.ndim == 2 and b.ndim == 2:  # the common case: (n, k) @ (k, m)
        return (g @ b.T if need_a else None), (a.T @ g if need_b else None)
    # vectors as matrices: a (k,) -> (1, k), b (k,) -> (k, 1); g gets the matching axes
    a2 = a.reshape((1,) + a.shape) if a.ndim == 1 else a
    b2 = b.reshape(b.shape + (1,)) if b.ndim == 1 else b
    g2 = g
    if a.ndim == 1:
        g2 = g2.reshape(g2.shape[:-1] + (1,) + g2.shape[-1:]) if b.ndim > 1 else g2.reshape((1,) + g2.shape)
    if b.ndim == 1:
        g2 = g2.reshape(g2.shape + (1,))
    ga = _unbroadcast(g2 @ _swap_last(b2), a2.shape).reshape(a.shape) if need_a else None
    gb = _unbroadcast(_swap_last(a2) @ g2, b2.shape).reshape(b.shape) if need_b else None
    return ga, gb


def _swap_last(x):
    return _permuted(x, tuple(range(x.ndim - 2)) + (x.ndim - 1, x.ndim - 2))


MATMUL = Op("matmul", lambda needs, a, b: a @ b, _matmul_backward, INPUTS)


def linear(x, weight, bias=None):
    """x W^T + b, as ``torch.nn.functional.linear``: x (N, in), W (out, in), b (out,) -> (N, out).
    dx = g W, dW = g^T x, db = the sum of g over the batch."""
    x, weight = _operands(x, weight, "linear")
    if x.ndim != 2 or weight.ndim != 2 or x.shape[1] != weight.shape[1]:
        raise ValueError(f"linear: input {x.shape} and weight {weight.shape} do not match: expected (N, in) and (out, in)")
    if bias is None:
        return LINEAR(x.requires_grad, x, weight)
    bias = _constant(bias, weight)
    if bias.shape != (weight.shape[0],) or bias.dtype != weight.dtype:
        raise ValueError(f"linear: bias {bias.shape} {bias.dtype} does not fit weight {weight.shape} {weight.dtype}")
    return LINEAR(x.requires_grad, x, weight, bias)


def _linear_forward(need_x, x, weight, bias=None):
    data = x @ weight.T
    if bias is not None:
        data += bias
    return data


def _linear_backward(g, out, need_x, x, weight, bias=None):
    gx = g @ weight if need_x else None
    return (gx, g.T @ x) if bias is None else (gx, g.T @ x, g.sum(axis=0))


LINEAR = Op("linear", _linear_forward, _linear_backward, (False, (0, 1)))


# ===================================================================== elementwise unary
def exp(a):
    """e^a.  d/da = e^a, the output."""
    return EXP(None, a)


EXP = Op("exp", lambda ctx, a: np.exp(a), lambda g, out, ctx, a: (g * out,), OUTPUT)


def log(a):
    """Natural logarithm.  d/da = 1/a."""
    return LOG(None, a)


LOG = Op("log", lambda ctx, a: np.log(a), lambda g, out, ctx, a: (g / a,), INPUTS)


def log1p(a):
    """log(1 + a), exact for small a where 1 + a would round.  d/da = 1 / (1 + a)."""
    return LOG1P(None, a)


LOG1P = Op("log1p", lambda ctx, a: np.log1p(a), lambda g, out, ctx, a: (g / (1 + a),), INPUTS)


def sin(a):
    """sin(a).  d/da = cos(a)."""
    return SIN(None, a)


SIN = Op("sin", lambda ctx, a: np.sin(a), lambda g, out, ctx, a: (g * _on(a, cos, np.cos),), INPUTS)


def cos(a):
    """cos(a).  d/da = -sin(a)."""
    return COS(None, a)


COS = Op("cos", lambda ctx, a: np.cos(a), lambda g, out, ctx, a: (-g * _on(a, sin, np.sin),), INPUTS)


def tanh(a):
    """tanh(a), no overflow at any input.  d/da = 1 - tanh(a)^2, from the output."""
    return TANH(None, a)


TANH = Op("tanh", lambda ctx, a: np.tanh(a), lambda g, out, ctx, a: (g * (1 - out * out),), OUTPUT)


def sigmoid(a):
    """σ(a) = 1 / (1 + e^-a).  d/da = σ(1 - σ), from the output. Where e^-a overflows (a < -88 in
    float32) it is inf and σ exactly 0, the correctly rounded value, so that overflow is not reported."""
    return SIGMOID(None, a)


def _sigmoid_forward(ctx, x):
    e = np.negative(x.reshape(1) if x.ndim == 0 else x)
    with np.errstate(over="ignore"):
        np.exp(e, out=e)
    e += 1
    np.reciprocal(e, out=e)
    return e.reshape(x.shape)


SIGMOID = Op("sigmoid", _sigmoid_forward, lambda g, out, ctx, a: (g * out * (1 - out),), OUTPUT)


def relu(a):
    """max(a, 0) (NaN stays NaN, as in PyTorch).  d/da = 1 where a > 0 (exactly where the output is > 0),
    else 0 (0 at a = 0)."""
    return RELU(None, a)


RELU = Op("relu", lambda ctx, a: np.maximum(a, a.dtype.type(0)), lambda g, out, ctx, a: (g * (_values(out) > 0),), OUTPUT)


def abs(a):
    """|a|.  d/da = sign(a) (0 at a = 0)."""
    return ABS(None, a)


ABS = Op("abs", lambda ctx, a: np.abs(a), lambda g, out, ctx, a: (g * np.sign(_values(a)),), INPUTS)


def sqrt(a):
    """√a.  d/da = 1 / (2√a), from the output."""
    return SQRT(None, a)


SQRT = Op("sqrt", lambda ctx, a: np.sqrt(a), lambda g, out, ctx, a: (g * 0.5 / out,), OUTPUT)


def clip(a, low=None, high=None):
    """a limited to [low, high] (either may be None).  d/da = 1 where low <= a <= high, else 0."""
    return CLIP((low, high), a)


def _clip_backward(g, out, bounds, a):
    (low, high), x = bounds, _values(a)
    inside = np.ones(x.shape, dtype=bool)
    if low is not None:
        inside &= x >= low
    if high is not None:
        inside &= x <= high
    return (g * inside,)


CLIP = Op("clip", lambda bounds, a: np.clip(a, *bounds), _clip_backward, INPUTS)


def astype(a, dtype):
    """A copy in another dtype; the gradient is cast back (none flows through a non-float result)."""
    dtype = np.dtype(dtype)
    return (ASTYPE if dtype.kind == "f" else CAST)(dtype, a)


ASTYPE = Op("astype", CAST.forward, lambda g, out, dtype, a: (g.astype(a.dtype),), NOTHING)  # CAST, differentiable


# ===================================================================== reductions
def _normalise_axis(axis, ndim):
    """``axis`` (None, an int or a sequence) as a sorted tuple of non-negative axes."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis) if isinstance(axis, (tuple, list)) else None
    if axes is None or not all(map(is_int, axes)):
        raise TypeError(f"axis must be an int or a tuple of ints, got {axis!r}")
    for ax in axes:
        if not -ndim <= ax < ndim:
            raise AxisOutOfRangeError(f"axis {ax} is out of range for a tensor with {ndim} dimensions")
    return tuple(sorted(int(ax) % ndim for ax in axes))


def _kept_axes(g, axes, keepdims, shape):
    """A reduction's gradient with the reduced axes back as size 1 (what ``keepdims`` would have kept)."""
    return g if keepdims else g.reshape(tuple(1 if i in axes else n for i, n in enumerate(shape)))


def sum(a, axis=None, keepdims=False):
    """Sum over ``axis`` (None: all axes).  d/da = 1 for every element summed."""
    return SUM((_normalise_axis(axis, a.ndim), keepdims, None), a)


def mean(a, axis=None, keepdims=False):
    """Mean over ``axis`` (None: all axes).  d/da = 1/count."""
    axes = _normalise_axis(axis, a.ndim)
    return MEAN((axes, keepdims, int(np.prod([a.shape[ax] for ax in axes]))), a)


def _sum_forward(ctx, a):
    """The sum over ``axes``, divided by ``count`` for a mean (count None: a sum)."""
    axes, keepdims, count = ctx
    total = a.sum(axis=axes, keepdims=keepdims)
    return total if count is None else total / count


def _sum_backward(g, out, ctx, a):
    axes, keepdims, count = ctx
    g = _expand(_kept_axes(g, axes, keepdims, a.shape), a.shape)
    return (g if count is None else g / count,)


SUM = Op("sum", _sum_forward, _sum_backward, NOTHING)
MEAN = Op("mean", _sum_forward, _sum_backward, NOTHING)


def amax(a, axis=None, keepdims=False):
    """Maximum over ``axis`` (None: all axes; an int or a tuple), as ``torch.amax`` / ``np.max``.
    d/da = 1/k at each of the k elements equal to the maximum (ties share it), else 0."""
    if a.data.size == 0:
        raise ValueError(f"amax: a tensor of shape {a.shape} has no elements to take the maximum of")
    return AMAX((_normalise_axis(axis, a.ndim), keepdims), a)


def _amax_backward(g, out, ctx, a):
    axes, keepdims = ctx
    is_top = _values(a) == _kept_axes(_values(out), axes, keepdims, a.shape)  # piecewise constant: no graph
    share = (is_top / is_top.sum(axis=axes, keepdims=True)).astype(a.dtype)
    return (_expand(_kept_axes(g, axes, keepdims, a.shape), a.shape) * share,)


AMAX = Op("amax", lambda ctx, a: a.max(axis=ctx[0], keepdims=ctx[1]), _amax_backward)
MaxResult = collections.namedtuple("MaxResult", ["values", "indices"])


def max(a, dim=None, keepdim=False, *, axis=None, keepdims=None):
    """``a.max()``: the largest element (ties share the gradient, as ``amax``). ``a.max(dim)``: as
    ``torch.max(a, dim)``, the pair (values, indices) along ``dim``; the gradient flows to the element
    each index points at (the first of equal ones). NumPy's ``max(axis=...)`` means the values alone,
    PyTorch's the pair: that spelling is refused (the values alone are ``amax(axis)``)."""
    if axis is not None or keepdims is not None:
        raise TypeError("max(axis=...) gives the values in NumPy but (values, indices) in PyTorch: write "
                        "amax(axis, keepdims) for the values, or max(dim, keepdim) for the pair")
    if dim is None:
        return amax(a, None, keepdim)
    if not is_int(dim):
        raise TypeError(f"max(dim) takes one integer dim, as in PyTorch, and returns (values, indices); got "
                        f"{dim!r}: for the maximum over several axes use amax(axis)")
    if a.data.size == 0:
        raise ValueError(f"max: a tensor of shape {a.shape} has no elements to take the maximum of")
    if a.ndim == 0:  # PyTorch takes dim 0 or -1 of a 0-d tensor: itself, at index 0
        _normalise_axis(dim, 1)
        return MaxResult(a.reshape(()), Tensor(np.zeros((), dtype=np.int64)))
    (axis,) = _normalise_axis(dim, a.ndim)
    indices = np.argmax(read_values(a, "max(dim)"), axis=axis)  # the first of equal maxima, as NumPy and PyTorch
    grid = list(np.indices(indices.shape, sparse=True))
    grid.insert(axis, indices)
    values = getitem(a, tuple(grid))
    if keepdim:
        values, indices = values.reshape(values.shape[:axis] + (1,) + values.shape[axis:]), np.expand_dims(indices, axis)
    return MaxResult(values, Tensor(indices))


# ===================================================================== shape
def reshape(a, *shape):
    """The same data in a new shape (``reshape(2, 3)`` or ``reshape((2, 3))``; one size may be -1)."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    if not all(map(is_int, shape)):
        raise TypeError(f"reshape: sizes must be ints, got {shape}")
    try:
        return RESHAPE(shape, a)
    except ValueError:
        raise ValueError(f"reshape: cannot reshape a tensor of shape {a.shape} ({a.data.size} elements) "
                         f"into {shape}") from None


RESHAPE = Op("reshape", lambda shape, a: a.reshape(shape), lambda g, out, shape, a: (g.reshape(a.shape),), NOTHING)


def permute(a, *dims):
    """The axes reordered, as ``torch.permute``: result axis i is input axis ``dims[i]``
    (``permute(2, 0, 1)`` or ``permute((2, 0, 1))``). The gradient moves its axes back."""
    if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
        dims = tuple(dims[0])
    if not all(map(is_int, dims)):
        raise TypeError(f"permute: dims must be integers, got {dims!r}")
    dims = tuple(int(d) + a.ndim if d < 0 else int(d) for d in dims)
    if sorted(dims) != list(range(a.ndim)):
        raise ValueError(f"permute: dims {dims} are not a permutation of the axes of a tensor of shape {a.shape}")
    return PERMUTE((dims, tuple(int(d) for d in np.argsort(dims))), a)  # ctx: the permutation and its inverse


PERMUTE = Op("permute", lambda ctx, a: a.transpose(ctx[0]), lambda g, out, ctx, a: (_permuted(g, ctx[1]),), NOTHING)


def transpose(a, *dims):
    """``a`` with axes ``dim0`` and ``dim1`` swapped, as ``torch.transpose(a, dim0, dim1)``.

    NumPy reads ``transpose(0, 1)`` as a full permutation (the identity, for a 2-D array): that
    meaning is refused here, not guessed. A full permutation is ``permute(*dims)``; all axes
    reversed is ``.T``.
    """
    if len(dims) != 2 or not all(map(is_int, dims)):
        raise TypeError(f"transpose(dim0, dim1) swaps two axes, as in PyTorch; got transpose{dims!r}. "
                        f"For a full permutation use permute(*dims); to reverse all axes use .T")
    nominal = builtins.max(a.ndim, 1)  # a 0-d tensor has axes 0 and -1 here, as in PyTorch
    for d in dims:
        if not -nominal <= d < nominal:
            raise AxisOutOfRangeError(f"transpose: axis {d} is out of range for a tensor of shape {a.shape}")
    order = list(range(a.ndim))
    if order:
        dim0, dim1 = (int(d) % a.ndim for d in dims)
        order[dim0], order[dim1] = order[dim1], order[dim0]
    return permute(a, order)


def reversed_axes(a):
    """``a.T``: every axis reversed (a 2-D transpose)."""
    return permute(a, tuple(range(a.ndim))[::-1])


def broadcast_to(a, shape):
    """``a`` repeated along broadcast axes to ``shape``; the gradient is summed back."""
    shape = tuple(shape)
    try:
        return BROADCAST_TO(shape, a)
    except ValueError:
        raise ValueError(f"broadcast_to: shape {a.shape} cannot be broadcast to {shape}") from None


BROADCAST_TO = Op("broadcast_to", lambda shape, a: np.broadcast_to(a, shape),
                  lambda g, out, shape, a: (_unbroadcast(g, a.shape),), NOTHING)


# ===================================================================== indexing
def getitem(a, index):
    """``a[index]``: basic slicing, integer arrays (repeated indices accumulate) and boolean masks.
    The gradient is ``g`` at ``index`` and zero elsewhere (an ``IndexGrad``, added in place)."""
    if type(index) is int and a.ndim:  # the per-time-step read x[t]
        if not -a.shape[0] <= index < a.shape[0]:
            raise IndexError(f"index {index} is out of range for axis 0 of a tensor of shape {a.shape}")
        return GETITEM((index, True), a)
    index, basic = normalise_index(index)
    if not basic:
        refuse_numpy_only_meaning(index if isinstance(index, tuple) else (index,), a.ndim)
    try:
        return GETITEM((index, basic), a)
    except IndexError as error:
        raise IndexError(f"index {index!r} into a tensor of shape {a.shape}: {error}") from None


def _getitem_backward(g, out, ctx, a):
    index, basic = ctx
    return (SCATTER((index, basic, a.shape), g),) if type(g) is Tensor else (IndexGrad(index, basic, g),)


def _scatter_forward(ctx, g):
    """zeros(shape) with ``g`` added at ``index``: getitem's backward as an op, for ``create_graph``."""
    index, basic, shape = ctx
    return add_at(np.zeros(shape, dtype=g.dtype), IndexGrad(index, basic, g))


GETITEM = Op("getitem", lambda ctx, a: a[ctx[0]], _getitem_backward, NOTHING)
SCATTER = Op("scatter", _scatter_forward, lambda g, out, ctx, source: (g[ctx[0]],), NOTHING)


def split(a, split_size_or_sections, axis=0):
    """Pieces along ``axis``: an int gives pieces of that size (the last may be smaller), a list gives the sizes."""
    length = _axis_length(a, axis, "split")
    if isinstance(split_size_or_sections, (int, np.integer)):
        if split_size_or_sections <= 0:
            raise ValueError(f"split: the piece size must be positive, got {split_size_or_sections}")
        sizes = [split_size_or_sections] * (length // split_size_or_sections)
        if length % split_size_or_sections:
            sizes.append(length % split_size_or_sections)
    else:
        sizes = list(split_size_or_sections)
        if builtins.sum(sizes) != length:
            raise ValueError(f"split: sizes {sizes} add up to {builtins.sum(sizes)}, "
                             f"but axis {axis} has length {length}")
    lead = (slice(None),) * (axis % a.ndim)
    ends = np.cumsum(sizes)
    return [GETITEM((lead + (slice(int(end) - size, int(end)),), True), a) for size, end in zip(sizes, ends)]


def chunk(a, chunks, axis=0):
    """``chunks`` pieces along ``axis`` of size ceil(length / chunks), as ``torch.chunk``."""
    length = _axis_length(a, axis, "chunk")
    if chunks <= 0:
        raise ValueError(f"chunk: the number of chunks must be positive, got {chunks}")
    return split(a, -(-length // chunks), axis)


def _axis_length(a, axis, name):
    """The length of ``a`` along ``axis``, or a clear error if there is no such axis."""
    if not -a.ndim <= axis < a.ndim:
        raise AxisOutOfRangeError(f"{name}: axis {axis} is out of range for a tensor of shape {a.shape}")
    return a.shape[axis]


# ===================================================================== joining
def concat(tensors, axis=0):
    """Join tensors along an existing axis; each gets its slice of the gradient."""
    tensors = _same_dtype(tensors, "concat")
    if tensors[0].ndim == 0:
        raise ValueError("concat: 0-d tensors have no axis to join along; use stack to make a new one")
    _axis_in_range(axis, tensors[0].ndim, "concat", tensors)
    axis %= tensors[0].ndim
    ends = tuple(int(end) for end in np.cumsum([t.shape[axis] for t in tensors]))
    try:
        return CONCAT((axis, ends), *tensors)
    except ValueError:
        raise ValueError(f"concat along axis {axis}: shapes {[t.shape for t in tensors]} do not match "
                         f"off that axis") from None


def _concat_backward(g, out, ctx, *inputs):
    axis, ends = ctx
    lead = (slice(None),) * axis
    return tuple(g[lead + (slice(end - x.shape[axis], end),)] for x, end in zip(inputs, ends))


CONCAT = Op("concat", lambda ctx, *arrays: np.concatenate(arrays, axis=ctx[0]), _concat_backward, NOTHING)


def stack(tensors, axis=0):
    """Join same-shaped tensors along a new axis; each gets its slice of the gradient."""
    tensors = _same_dtype(tensors, "stack")
    _axis_in_range(axis, tensors[0].ndim + 1, "stack", tensors)
    try:
        return STACK(axis % (tensors[0].ndim + 1), *tensors)
    except ValueError:
        raise ValueError(f"stack: all tensors need the same shape, got {[t.shape for t in tensors]}") from None


STACK = Op("stack", lambda axis, *arrays: np.stack(arrays, axis=axis),
           lambda g, out, axis, *inputs: tuple(g[(slice(None),) * axis + (i,)] for i in range(len(inputs))), NOTHING)


def _axis_in_range(axis, ndim, name, tensors):
    """A clear error for an ``axis`` outside [-ndim, ndim) of the result that ``name`` builds."""
    if not is_int(axis):
        raise TypeError(f"{name}: axis must be an integer, got {axis!r}")
    if not -ndim <= axis < ndim:
        raise AxisOutOfRangeError(f"{name}: axis {axis} is out of range for tensors of shape {tensors[0].shape} "
                                  f"(the axis must be in [{-ndim}, {ndim - 1}])")


def _same_dtype(tensors, name):
    tensors = list(tensors)
    if not tensors:
        raise ValueError(f"{name}: needs at least one tensor")
    for i, t in enumerate(tensors):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name}: item {i} is a {type(t).__name__}, not a Tensor")
    dtypes = {t.data.dtype for t in tensors}
    if len(dtypes) > 1:
        raise TypeError(f"{name}: tensors have different dtypes {sorted(map(str, dtypes))}")
    return tensors


def where(condition, a, b):
    """Elementwise ``a`` where ``condition`` else ``b`` (broadcasting): d/da = condition, d/db = not
    condition; the condition itself is not differentiated."""
    if not isinstance(condition, Tensor):
        condition = Tensor.from_op(np.asarray(condition), (), CONSTANT)
    if condition.dtype != bool:
        raise TypeError(f"where: the condition must be boolean, got dtype {condition.dtype}")
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        a = Tensor(a)  # two constants: a number takes the default dtype
    a, b = _operands(a, b, "where")
    try:
        return WHERE(None, condition, a, b)
    except ValueError:
        raise ValueError(f"where: condition {condition.shape}, {a.shape} and {b.shape} cannot be "
                         f"broadcast together") from None


def _where_backward(g, out, ctx, condition, a, b):
    condition = _values(condition)
    return None, _unbroadcast(g * condition, a.shape), _unbroadcast(g * ~condition, b.shape)


WHERE = Op("where", lambda ctx, condition, a, b: np.where(condition, a, b), _where_backward, (False, (0,)))


def detach(a):
    """A Tensor sharing ``a``'s data, cut off from the graph (no gradient flows through it)."""
    return DETACH(None, a)


DETACH = Op("detach", lambda ctx, a: a, None)


# ===================================================================== comparisons (no gradient)
def _comparison(ufunc):
    op = Op(ufunc.__name__, lambda ctx, a, b: ufunc(a, b), None)
    return lambda a, b: _binary(op, a, b)


# ===================================================================== the Tensor's operators and methods
def _repr(t):
    grad = ", requires_grad=True" if t.requires_grad else ""
    return f"Tensor({np.array2string(t.data, prefix='Tensor(')}, dtype={t.data.dtype}{grad})"


def _as_array(t, dtype=None, copy=None):
    """``np.asarray(t)`` shares the tensor's data; ``np.array(t)`` (copy=True) and a new dtype copy it."""
    data = read_values(t, "np.asarray(tensor)")
    return data.astype(dtype) if dtype is not None else data.copy() if copy else data


Tensor.__repr__, Tensor.__len__, Tensor.__array__ = _repr, lambda t: len(t.data), _as_array
Tensor.__bool__ = lambda t: bool(read_values(t, "bool(tensor)"))
Tensor.numpy = lambda t: read_values(t, "tensor.numpy()")  # the underlying ndarray (shared, not copied)
Tensor.item = lambda t: read_values(t, "tensor.item()").item()
Tensor.__add__, Tensor.__radd__ = add, lambda a, b: add(b, a)
Tensor.__sub__, Tensor.__rsub__ = sub, lambda a, b: sub(b, a)
Tensor.__mul__, Tensor.__rmul__ = mul, lambda a, b: mul(b, a)
Tensor.__truediv__, Tensor.__rtruediv__ = div, lambda a, b: div(b, a)
Tensor.__pow__, Tensor.__rpow__ = pow, lambda a, b: pow(_constant(b, a), a)
Tensor.__matmul__, Tensor.__rmatmul__ = matmul, lambda a, b: matmul(b, a)
Tensor.__neg__, Tensor.__abs__, Tensor.__getitem__ = neg, abs, getitem
Tensor.__lt__, Tensor.__le__ = _comparison(np.less), _comparison(np.less_equal)
Tensor.__gt__, Tensor.__ge__ = _comparison(np.greater), _comparison(np.greater_equal)
Tensor.__eq__, Tensor.__ne__ = _comparison(np.equal), _comparison(np.not_equal)
for _method in (exp, log, log1p, sin, cos, tanh, sigmoid, relu, abs, sqrt, clip, astype, sum, mean, max, amax,
                reshape, permute, transpose, broadcast_to, split, chunk, detach):
    setattr(Tensor, _method.__name__, _method)
Tensor.T = property(reversed_axes)
