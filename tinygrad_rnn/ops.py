"""Every differentiable primitive: its forward and its backward side by side.

An op computes its output with its forward kernel, ``forward(ctx, *input arrays) -> data``, and
hands ``Tensor._result`` the inputs (the tensors the gradient flows to), the backward function,
``ctx`` (what forward and backward need that is not an array: axes, shapes, flags), ``save`` (which
of the output and the inputs the backward reads) and the kernel itself, so that ``tape`` can replay
the op on other arrays. Only the arrays backward reads are kept; the others are passed to it as a
``Meta`` (their shape and dtype), so a temporary no backward reads is freed after the forward.
A kernel computes everything from its arrays and ``ctx``: nothing in ``ctx`` depends on the data.

Every backward has the signature ``backward(g, out, ctx, *inputs) -> one gradient per input``.
On the first-order path ``g``, ``out`` and ``inputs`` are ndarrays (or Metas); with
``create_graph=True`` they are Tensors, and the same lines then record the backward pass as a graph. So a backward is
written only with what ndarrays and Tensors share (operators, ``sum``, ``reshape``,
``transpose``, indexing) plus the few helpers below that dispatch on type. A ``None`` gradient
means "nothing flows to this input".

Broadcasting follows NumPy; ``_unbroadcast`` sums a gradient back to its input's shape.
"""
import builtins
import collections

import numpy as np

from ._checks import AxisOutOfRangeError, is_int
from .tensor import SAVE_ALL, IndexGrad, ProductGrad, Tensor

_result = Tensor._result
# What a backward reads (``save=`` of ``Tensor._result``): the output, and which inputs.
_NOTHING = (False, ())
_OUTPUT = (True, ())
_INPUTS = (False, None)
_X_AND_WEIGHT = (False, (0, 1))


# ===================================================================== helpers
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
    return _result(np.asarray(value, dtype=dtype), (), None)


def _astype_forward(dtype, a):
    return a.astype(dtype)


def _operands(a, b, name):
    """Both operands as Tensors of a single dtype; mixed float dtypes are an error, never a cast."""
    if type(b) is not Tensor:
        b = _constant(b, a)
    elif type(a) is not Tensor:
        a = _constant(a, b)
    da, db = a.data.dtype, b.data.dtype
    if da != db:
        fa, fb = da.kind == "f", db.kind == "f"
        if fa and fb:
            raise TypeError(f"{name}: dtype mismatch {da} vs {db}; convert one side with .astype()")
        if fa:
            b = _result(_astype_forward(da, b.data), (b,), None, da, _NOTHING, _astype_forward)
        elif fb:
            a = _result(_astype_forward(db, a.data), (a,), None, db, _NOTHING, _astype_forward)
    return a, b


def _broadcast_error(name, a, b):
    return ValueError(f"{name}: shapes {a.shape} and {b.shape} cannot be broadcast together")


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
    if type(g) is Tensor:
        return broadcast_to(g, shape)
    return np.broadcast_to(g, shape)


def op_name_of(function):
    """An op's name from its forward or backward function's: ``_mul_backward`` -> "mul"."""
    name = getattr(function, "__name__", "?").lstrip("_")
    for suffix in ("_backward", "_forward"):
        if name.endswith(suffix):
            return name[:-len(suffix)]
    return name


def _log(x):
    return x.log() if isinstance(x, Tensor) else np.log(x)


# ===================================================================== elementwise binary
def add(a, b):
    """a + b (broadcasting)."""
    a, b = _operands(a, b, "add")
    try:
        data = _add_forward(None, a.data, b.data)
    except ValueError:
        raise _broadcast_error("add", a, b) from None
    return _result(data, (a, b), _add_backward, None, _NOTHING, _add_forward)


def _add_forward(ctx, a, b):
    return a + b


def _add_backward(g, out, ctx, a, b):
    return _unbroadcast(g, a.shape), _unbroadcast(g, b.shape)


def sub(a, b):
    """a - b (broadcasting)."""
    a, b = _operands(a, b, "sub")
    try:
        data = _sub_forward(None, a.data, b.data)
    except ValueError:
        raise _broadcast_error("sub", a, b) from None
    return _result(data, (a, b), _sub_backward, None, _NOTHING, _sub_forward)


def _sub_forward(ctx, a, b):
    return a - b


def _sub_backward(g, out, ctx, a, b):
    return _unbroadcast(g, a.shape), _unbroadcast(-g, b.shape)


def mul(a, b):
    """a * b (broadcasting)."""
    a, b = _operands(a, b, "mul")
    try:
        data = _mul_forward(None, a.data, b.data)
    except ValueError:
        raise _broadcast_error("mul", a, b) from None
    needs = (a.requires_grad, b.requires_grad)  # g * b is a's gradient, g * a b's: compute and keep only those needed
    return _result(data, (a, b), _mul_backward, needs, (False, (1,) if needs == (True, False) else
                                                       (0,) if needs == (False, True) else None), _mul_forward)


def _mul_forward(needs, a, b):
    return a * b


def _mul_backward(g, out, needs, a, b):
    return (_unbroadcast(g * b, a.shape) if needs[0] else None), (_unbroadcast(g * a, b.shape) if needs[1] else None)


def div(a, b):
    """a / b (broadcasting)."""
    a, b = _operands(a, b, "div")
    try:
        data = _div_forward(None, a.data, b.data)
    except ValueError:
        raise _broadcast_error("div", a, b) from None
    return _result(data, (a, b), _div_backward, None, _INPUTS, _div_forward)


def _div_forward(ctx, a, b):
    return a / b


def _div_backward(g, out, ctx, a, b):
    # d(a/b)/da = 1/b, d(a/b)/db = -a/b^2
    return _unbroadcast(g / b, a.shape), _unbroadcast(-g * a / (b * b), b.shape)


def pow(a, b):
    """a ** b: a number exponent, or a tensor exponent (then a must be positive where b needs grad)."""
    if isinstance(a, Tensor) and type(b) in (int, float):  # not np.float64: it would upcast float32
        return _result(_pow_scalar_forward(b, a.data), (a,), _pow_scalar_backward, b, _INPUTS, _pow_scalar_forward)
    a, b = _operands(a, b, "pow")
    try:
        data = _pow_forward(None, a.data, b.data)
    except ValueError:
        raise _broadcast_error("pow", a, b) from None
    return _result(data, (a, b), _pow_backward, (a.requires_grad, b.requires_grad), SAVE_ALL, _pow_forward)


def _pow_scalar_forward(exponent, a):
    return a ** exponent


def _pow_forward(ctx, a, b):
    return a ** b


def _pow_scalar_backward(g, out, exponent, a):
    # d(a^p)/da = p a^(p-1)  (zero for p = 0, also where a = 0)
    if exponent == 0:
        return (g * 0,)
    return (g * (exponent * a ** (exponent - 1)),)


def _pow_backward(g, out, needs, a, b):
    # d(a^b)/da = b a^(b-1);  d(a^b)/db = a^b log(a)  (only where needed: log(a) is NaN for a < 0)
    need_a, need_b = needs
    ga = _unbroadcast(g * b * a ** (b - 1), a.shape) if need_a else None
    gb = _unbroadcast(g * out * _log(a), b.shape) if need_b else None
    return ga, gb


def neg(a):
    """-a."""
    return _result(_neg_forward(None, a.data), (a,), _neg_backward, None, _NOTHING, _neg_forward)


def _neg_forward(ctx, a):
    return -a


def _neg_backward(g, out, ctx, a):
    return (-g,)


# ===================================================================== matmul
def matmul(a, b):
    """a @ b with NumPy's rules: 1-D operands are vectors, leading axes broadcast as batches."""
    a, b = _operands(a, b, "matmul")
    try:
        data = _matmul_forward(None, a.data, b.data)
    except ValueError:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not match "
                         f"(inner sizes {a.shape[-1:]} and {b.shape[-2:-1] or b.shape}; "
                         f"batch axes must broadcast)") from None
    return _result(data, (a, b), _matmul_backward, (a.requires_grad, b.requires_grad), _INPUTS, _matmul_forward)


def _matmul_forward(ctx, a, b):
    return a @ b


def _matmul_backward(g, out, needs, a, b):
    need_a, need_b = needs
    if a.ndim == 2 and b.ndim == 2:  # the common case: (n, k) @ (k, m)
        gb = None
        if need_b:  # a^T g; first order: left as factors, so a weight used at T steps gets one product
            gb = ProductGrad(a, g) if type(g) is np.ndarray else a.T @ g
        return (g @ b.T if need_a else None), gb
    # promote vectors to matrices: a (k,) -> (1, k), b (k,) -> (k, 1); g gets the matching axes
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


def linear(x, weight, bias=None):
    """x W^T + b, as ``torch.nn.functional.linear``: x (N, in), W (out, in), b (out,) -> (N, out).

    One op instead of a transpose, a matmul and an add; W's gradient g^T x stays factored
    (``ProductGrad``), so a weight applied at every time step gets its gradient in one product.
    """
    x, weight = _operands(x, weight, "linear")
    if x.ndim != 2 or weight.ndim != 2 or x.shape[1] != weight.shape[1]:
        raise ValueError(f"linear: input {x.shape} and weight {weight.shape} do not match: expected "
                         f"(N, in) and (out, in)")
    if bias is None:
        return _result(_linear_forward(None, x.data, weight.data), (x, weight), _linear_backward, x.requires_grad,
                       _INPUTS, _linear_forward)
    bias = _constant(bias, weight)
    if bias.shape != (weight.shape[0],) or bias.dtype != weight.dtype:
        raise ValueError(f"linear: bias {bias.shape} {bias.dtype} does not fit weight {weight.shape} {weight.dtype}")
    return _result(_linear_forward(None, x.data, weight.data, bias.data), (x, weight, bias), _linear_backward,
                   x.requires_grad, _X_AND_WEIGHT, _linear_forward)


def _linear_forward(ctx, x, weight, bias=None):
    data = x @ weight.T
    if bias is not None:
        data += bias
    return data


def _linear_backward(g, out, need_x, x, weight, bias=None):
    # dx = g W;  dW = g^T x (first order: left as factors);  db = sum over the batch of g
    gw = ProductGrad(g, x) if type(g) is np.ndarray else g.T @ x
    gx = g @ weight if need_x else None
    return (gx, gw) if bias is None else (gx, gw, g.sum(axis=0))


def _swap_last(x):
    return _permuted(x, tuple(range(x.ndim - 2)) + (x.ndim - 1, x.ndim - 2))


# ===================================================================== elementwise unary
def exp(a):
    """e^a."""
    return _result(_exp_forward(None, a.data), (a,), _exp_backward, None, _OUTPUT, _exp_forward)


def _exp_forward(ctx, a):
    return np.exp(a)


def _exp_backward(g, out, ctx, a):
    return (g * out,)


def log(a):
    """Natural logarithm."""
    return _result(_log_forward(None, a.data), (a,), _log_backward, None, _INPUTS, _log_forward)


def _log_forward(ctx, a):
    return np.log(a)


def _log_backward(g, out, ctx, a):
    return (g / a,)


def tanh(a):
    """tanh(a); no overflow at any input."""
    return _result(_tanh_forward(None, a.data), (a,), _tanh_backward, None, _OUTPUT, _tanh_forward)


def _tanh_forward(ctx, a):
    return np.tanh(a)


def _tanh_backward(g, out, ctx, a):
    return (g * (1 - out * out),)


def sigmoid(a):
    """σ(a) = 1 / (1 + e^-a). Where e^-a overflows (a < -88 in float32) it is inf and σ exactly 0,
    the correctly rounded value, so that overflow is expected and not reported."""
    return _result(_sigmoid_forward(None, a.data), (a,), _sigmoid_backward, None, _OUTPUT, _sigmoid_forward)


def _sigmoid_forward(ctx, x):
    e = np.negative(x.reshape(1) if x.ndim == 0 else x)
    with np.errstate(over="ignore"):
        np.exp(e, out=e)
    e += 1
    np.reciprocal(e, out=e)
    return e.reshape(x.shape)


def _sigmoid_backward(g, out, ctx, a):
    return (g * out * (1 - out),)


def relu(a):
    """max(a, 0); the gradient at 0 is 0."""
    return _result(_relu_forward(None, a.data), (a,), _relu_backward, None, _OUTPUT, _relu_forward)


def _relu_forward(ctx, a):
    return a * (a > 0)


def _relu_backward(g, out, ctx, a):
    return (g * (out > 0),)  # out > 0 exactly where a > 0


def abs(a):
    """|a|; the gradient at 0 is 0."""
    return _result(_abs_forward(None, a.data), (a,), _abs_backward, None, _INPUTS, _abs_forward)


def _abs_forward(ctx, a):
    return np.abs(a)


def _abs_backward(g, out, ctx, a):
    sign = Tensor(np.sign(a.data)) if type(a) is Tensor else np.sign(a)  # piecewise constant: no graph
    return (g * sign,)


def sqrt(a):
    """√a."""
    return _result(_sqrt_forward(None, a.data), (a,), _sqrt_backward, None, _OUTPUT, _sqrt_forward)


def _sqrt_forward(ctx, a):
    return np.sqrt(a)


def _sqrt_backward(g, out, ctx, a):
    return (g * 0.5 / out,)


def clip(a, low=None, high=None):
    """a limited to [low, high] (either bound may be None); the gradient flows where low <= a <= high."""
    bounds = (low, high)
    return _result(_clip_forward(bounds, a.data), (a,), _clip_backward, bounds, _INPUTS, _clip_forward)


def _clip_forward(bounds, a):
    return np.clip(a, *bounds)


def _clip_backward(g, out, bounds, a):
    low, high = bounds
    x = a.data if type(a) is Tensor else a  # the mask is piecewise constant: no graph
    inside = np.ones(x.shape, dtype=bool)
    if low is not None:
        inside &= x >= low
    if high is not None:
        inside &= x <= high
    return (g * inside,)


def astype(a, dtype):
    """A copy in another dtype; the gradient is cast back (none flows through a non-float result)."""
    dtype = np.dtype(dtype)
    backward = _astype_backward if dtype.kind == "f" else None
    return _result(_astype_forward(dtype, a.data), (a,), backward, dtype, _NOTHING, _astype_forward)


def _astype_backward(g, out, ctx, a):
    return (g.astype(a.dtype),)


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


def sum(a, axis=None, keepdims=False):
    """Sum over ``axis`` (None: all axes)."""
    ctx = (_normalise_axis(axis, a.ndim), keepdims, None)
    return _result(_sum_forward(ctx, a.data), (a,), _sum_backward, ctx, _NOTHING, _sum_forward)


def mean(a, axis=None, keepdims=False):
    """Mean over ``axis`` (None: all axes)."""
    axes = _normalise_axis(axis, a.ndim)
    ctx = (axes, keepdims, int(np.prod([a.shape[ax] for ax in axes])))
    return _result(_sum_forward(ctx, a.data), (a,), _sum_backward, ctx, _NOTHING, _sum_forward)


def _sum_forward(ctx, a):
    """The sum over ``axes``, divided by ``count`` for a mean (count None: a sum)."""
    axes, keepdims, count = ctx
    total = a.sum(axis=axes, keepdims=keepdims)
    return total if count is None else total / count


def _sum_backward(g, out, ctx, a):
    axes, keepdims, count = ctx
    if not keepdims:
        g = g.reshape(tuple(1 if i in axes else n for i, n in enumerate(a.shape)))
    g = _expand(g, a.shape)
    return (g if count is None else g / count,)


def amax(a, axis=None, keepdims=False):
    """Maximum over ``axis`` (None: all axes; an int or a tuple), as ``torch.amax`` / ``np.max``:
    ties share the gradient equally."""
    axes = _normalise_axis(axis, a.ndim)
    if a.data.size == 0:
        raise ValueError(f"amax: a tensor of shape {a.shape} has no elements to take the maximum of")
    top = a.data.max(axis=axes, keepdims=True)
    is_top = a.data == top
    share = is_top / is_top.sum(axis=axes, keepdims=True).astype(a.dtype)
    data = top if keepdims else top.reshape(tuple(n for i, n in enumerate(a.shape) if i not in axes))
    return _result(data, (a,), _max_backward, (axes, keepdims, share.astype(a.dtype)), _NOTHING)


MaxResult = collections.namedtuple("MaxResult", ["values", "indices"])


def max(a, dim=None, keepdim=False, *, axis=None, keepdims=None):
    """``a.max()``: the largest element (ties share the gradient, as ``amax``). ``a.max(dim)``: as
    ``torch.max(a, dim)``, the pair (values, indices) of the maximum along ``dim``; the gradient
    flows to the element each index points at (the first of equal ones).

    NumPy's ``max(axis=...)`` returns the values alone, PyTorch's the pair: that spelling is refused,
    and the values alone are ``amax(axis)``.
    """
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
    indices = np.argmax(a.data, axis=axis)  # the first of equal maxima, as NumPy and PyTorch's CPU kernel
    grid = list(np.indices(indices.shape, sparse=True))
    grid.insert(axis, indices)
    values = getitem(a, tuple(grid))
    if keepdim:
        values, indices = values.reshape(values.shape[:axis] + (1,) + values.shape[axis:]), np.expand_dims(indices, axis)
    return MaxResult(values, Tensor(indices))


def _max_backward(g, out, ctx, a):
    axes, keepdims, share = ctx
    if not keepdims:
        g = g.reshape(tuple(1 if i in axes else n for i, n in enumerate(a.shape)))
    return (_expand(g, a.shape) * share,)


# ===================================================================== shape
def reshape(a, *shape):
    """The same data in a new shape (``reshape(2, 3)`` or ``reshape((2, 3))``; one size may be -1)."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    if not all(map(is_int, shape)):
        raise TypeError(f"reshape: sizes must be ints, got {shape}")
    try:
        data = _reshape_forward(shape, a.data)
    except ValueError:
        raise ValueError(f"reshape: cannot reshape a tensor of shape {a.shape} ({a.size} elements) "
                         f"into {shape}") from None
    return _result(data, (a,), _reshape_backward, shape, _NOTHING, _reshape_forward)


def _reshape_forward(shape, a):
    return a.reshape(shape)


def _reshape_backward(g, out, ctx, a):
    return (g.reshape(a.shape),)


def permute(a, *dims):
    """The axes reordered, as ``torch.permute``: result axis i is input axis ``dims[i]``
    (``permute(2, 0, 1)`` or ``permute((2, 0, 1))``; negative axes count from the end)."""
    if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
        dims = tuple(dims[0])
    if not all(map(is_int, dims)):
        raise TypeError(f"permute: dims must be integers, got {dims!r}")
    dims = tuple(int(d) + a.ndim if d < 0 else int(d) for d in dims)  # non-negative, for the inverse below
    if sorted(dims) != list(range(a.ndim)):
        raise ValueError(f"permute: dims {dims} are not a permutation of the axes of a tensor of shape {a.shape}")
    ctx = (dims, tuple(int(d) for d in np.argsort(dims)))
    return _result(_permute_forward(ctx, a.data), (a,), _permute_backward, ctx, _NOTHING, _permute_forward)


def _permute_forward(ctx, a):
    """``ctx = (dims, their inverse permutation)``."""
    return a.transpose(ctx[0])


def _permute_backward(g, out, ctx, a):
    # the gradient moves its axes back: the inverse permutation
    return (_permuted(g, ctx[1]),)


_permute_backward.passes_product_grad = True  # a weight's gradient stays factored through W.T


def _permuted(x, dims):
    """``x`` with its axes permuted, for an ndarray, a factored gradient or a Tensor (create_graph)."""
    return permute(x, dims) if type(x) is Tensor else x.transpose(dims)


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
        data = _broadcast_to_forward(shape, a.data)
    except ValueError:
        raise ValueError(f"broadcast_to: shape {a.shape} cannot be broadcast to {shape}") from None
    return _result(data, (a,), _broadcast_to_backward, shape, _NOTHING, _broadcast_to_forward)


def _broadcast_to_forward(shape, a):
    return np.broadcast_to(a, shape)


def _broadcast_to_backward(g, out, ctx, a):
    return (_unbroadcast(g, a.shape),)


# ===================================================================== indexing
def _normalise_index(index):
    """Indices as NumPy takes them (Tensors and lists to arrays) and whether they are all basic."""
    items = index if isinstance(index, tuple) else (index,)
    basic = True
    out = []
    for item in items:
        if isinstance(item, Tensor):
            item = item.data
        if isinstance(item, list):
            try:
                item = np.asarray(item)
            except ValueError:
                raise IndexError(f"the index list {item!r} is ragged: its rows have different lengths") from None
        if isinstance(item, np.ndarray):
            if item.dtype.kind not in "iub":
                raise IndexError(f"index arrays must be integer or bool, got dtype {item.dtype}")
            basic = False
        elif not (item is None or item is Ellipsis or isinstance(item, (slice, int, np.integer))):
            raise IndexError(f"unsupported index {item!r} of type {type(item).__name__}")
        out.append(item)
    return (tuple(out) if isinstance(index, tuple) else out[0]), basic


def _refuse_numpy_only_meaning(items, ndim):
    """Refuse an index that NumPy and PyTorch read differently: an integer and an index array apart
    (separated by a slice, ``...`` or None), as in ``x[3, 2:, [1, 3]]``.

    NumPy counts the integer as an advanced index and, the two being apart, puts the index axes
    first: shape (2, n). PyTorch applies the integer first (it drops that axis) and places the index
    axes where the arrays stand among the rest, after the axes before them: shape (n, 2). The two
    agree only when no result axis comes before the arrays in PyTorch's reading (or its arrays are
    apart too, which puts them first in both); otherwise one spelling means two things: an error.
    """
    advanced = [k for k, item in enumerate(items) if isinstance(item, (int, np.integer, np.ndarray))]
    integers = [k for k in advanced if not isinstance(items[k], np.ndarray)]
    arrays = [k for k in advanced if isinstance(items[k], np.ndarray)]
    if not integers or not arrays or advanced[-1] - advanced[0] + 1 == len(advanced):
        return  # no integer, no array, or all together: both libraries keep the index axes in place
    rest = [item for item in items if not isinstance(item, (int, np.integer)) or isinstance(item, np.ndarray)]
    positions = [k for k, item in enumerate(rest) if isinstance(item, np.ndarray)]
    if positions[-1] - positions[0] + 1 != len(positions):
        return  # the arrays are apart in PyTorch's reading too: index axes first in both
    consumed = builtins.sum(1 if not isinstance(item, np.ndarray) or item.dtype != bool else item.ndim
                            for item in items if item is not None and item is not Ellipsis)
    before = builtins.sum(ndim - consumed if item is Ellipsis else 1 for item in rest[:positions[0]])
    if before:
        raise IndexError("an integer and an index array separated by a slice, ... or None are read by different "
                         "rules in NumPy and PyTorch (x[3, 2:, [1, 3]] is (2, n) in one, (n, 2) in the other). "
                         "Write it unambiguously: index in two steps (x[3][2:, [1, 3]]), or make the integer "
                         "an index array too (x[[3], 2:, [1, 3]]: both libraries put the index axes first)")


def getitem(a, index):
    """``a[index]``: basic slicing, integer arrays (repeated indices accumulate) and boolean masks."""
    if type(index) is int and a.ndim:  # the per-time-step read x[t]
        if not -a.shape[0] <= index < a.shape[0]:
            raise IndexError(f"index {index} is out of range for axis 0 of a tensor of shape {a.shape}")
        return _result(a.data[index], (a,), _getitem_backward, (index, True), _NOTHING, _getitem_forward)
    tensor_index = any(isinstance(item, Tensor) for item in (index if isinstance(index, tuple) else (index,)))
    index, basic = _normalise_index(index)
    if not basic:
        _refuse_numpy_only_meaning(index if isinstance(index, tuple) else (index,), a.ndim)
    try:
        data = a.data[index]
    except IndexError as error:
        raise IndexError(f"index {index!r} into a tensor of shape {a.shape}: {error}") from None
    # a tensor used as an index is read as values: such a read cannot be replayed
    return _result(data, (a,), _getitem_backward, (index, basic), _NOTHING, None if tensor_index else _getitem_forward)


def _getitem_forward(ctx, a):
    return a[ctx[0]]


def _getitem_backward(g, out, ctx, a):
    index, basic = ctx
    if type(g) is Tensor:
        return (_scatter(g, index, basic, a.shape),)
    return (IndexGrad(index, basic, g),)


def _scatter(g, index, basic, shape):
    """zeros(shape) with ``g`` added at ``index``: the graph-recording form of getitem's backward."""
    return _result(IndexGrad(index, basic, g.data).dense(shape), (g,), _scatter_backward, index, _NOTHING)


def _scatter_backward(g, out, index, source):
    return (g[index],)


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
    pieces, start = [], 0
    for size in sizes:
        index = lead + (slice(start, start + size),)
        pieces.append(_result(a.data[index], (a,), _getitem_backward, (index, True), _NOTHING, _getitem_forward))
        start += size
    return pieces


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


def concat(tensors, axis=0):
    """Join tensors along an existing axis."""
    tensors = _same_dtype(tensors, "concat")
    if tensors[0].ndim == 0:
        raise ValueError("concat: 0-d tensors have no axis to join along; use stack to make a new one")
    _axis_in_range(axis, tensors[0].ndim, "concat", tensors)
    try:
        data = np.concatenate([t.data for t in tensors], axis=axis)
    except ValueError:
        raise ValueError(f"concat along axis {axis}: shapes {[t.shape for t in tensors]} do not match "
                         f"off that axis") from None
    ends = tuple(int(end) for end in np.cumsum([t.shape[axis] for t in tensors]))
    return _result(data, tuple(tensors), _concat_backward, (axis % data.ndim, ends), _NOTHING, _concat_forward)


def _concat_forward(ctx, *arrays):
    return np.concatenate(arrays, axis=ctx[0])


def _concat_backward(g, out, ctx, *inputs):
    axis, ends = ctx
    lead = (slice(None),) * axis
    return tuple(g[lead + (slice(end - x.shape[axis], end),)] for x, end in zip(inputs, ends))


def stack(tensors, axis=0):
    """Join same-shaped tensors along a new axis."""
    tensors = _same_dtype(tensors, "stack")
    _axis_in_range(axis, tensors[0].ndim + 1, "stack", tensors)
    try:
        data = np.stack([t.data for t in tensors], axis=axis)
    except ValueError:
        raise ValueError(f"stack: all tensors need the same shape, got {[t.shape for t in tensors]}") from None
    return _result(data, tuple(tensors), _stack_backward, axis % data.ndim, _NOTHING, _stack_forward)


def _stack_forward(axis, *arrays):
    return np.stack(arrays, axis=axis)


def _stack_backward(g, out, axis, *inputs):
    lead = (slice(None),) * axis
    return tuple(g[lead + (i,)] for i in range(len(inputs)))


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
    """Elementwise ``a`` where ``condition`` else ``b`` (broadcasting); the condition is not differentiated."""
    if not isinstance(condition, Tensor):
        condition = _result(np.asarray(condition), (), None)
    if condition.dtype != bool:
        raise TypeError(f"where: the condition must be boolean, got dtype {condition.dtype}")
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        a = Tensor(a)  # two constants: a number takes the default dtype
    a, b = _operands(a, b, "where")
    try:
        data = _where_forward(None, condition.data, a.data, b.data)
    except ValueError:
        raise ValueError(f"where: condition {condition.shape}, {a.shape} and {b.shape} cannot be "
                         f"broadcast together") from None
    return _result(data, (condition, a, b), _where_backward, None, (False, (0,)), _where_forward)


def _where_forward(ctx, cond, a, b):
    return np.where(cond, a, b)


def _where_backward(g, out, ctx, cond, a, b):
    cond = cond.data if type(cond) is Tensor else cond  # never differentiated
    return None, _unbroadcast(g * cond, a.shape), _unbroadcast(g * ~cond, b.shape)


# ===================================================================== comparisons (no gradient)
def _comparison(ufunc):
    def compare(a, b):
        a, b = _operands(a, b, ufunc.__name__)
        try:
            return _result(ufunc(a.data, b.data), (a, b), None, ufunc, _NOTHING, _compare_forward)
        except ValueError:
            raise _broadcast_error(ufunc.__name__, a, b) from None
    return compare


def _compare_forward(ufunc, a, b):
    return ufunc(a, b)


# ===================================================================== the Tensor's operators and methods
Tensor.__add__ = add
Tensor.__radd__ = lambda a, b: add(b, a)
Tensor.__sub__ = sub
Tensor.__rsub__ = lambda a, b: sub(b, a)
Tensor.__mul__ = mul
Tensor.__rmul__ = lambda a, b: mul(b, a)
Tensor.__truediv__ = div
Tensor.__rtruediv__ = lambda a, b: div(b, a)
Tensor.__pow__ = pow
Tensor.__rpow__ = lambda a, b: pow(_constant(b, a), a)
Tensor.__matmul__ = matmul
Tensor.__rmatmul__ = lambda a, b: matmul(b, a)
Tensor.__neg__ = neg
Tensor.__lt__ = _comparison(np.less)
Tensor.__le__ = _comparison(np.less_equal)
Tensor.__gt__ = _comparison(np.greater)
Tensor.__ge__ = _comparison(np.greater_equal)
Tensor.__eq__ = _comparison(np.equal)
Tensor.__ne__ = _comparison(np.not_equal)
Tensor.__getitem__ = getitem
Tensor.exp = exp
Tensor.log = log
Tensor.tanh = tanh
Tensor.sigmoid = sigmoid
Tensor.relu = relu
Tensor.abs = abs
Tensor.__abs__ = abs
Tensor.sqrt = sqrt
Tensor.clip = clip
Tensor.astype = astype
Tensor.sum = sum
Tensor.mean = mean
Tensor.max = max
Tensor.amax = amax
Tensor.reshape = reshape
Tensor.permute = permute
Tensor.transpose = transpose
Tensor.T = property(reversed_axes)
Tensor.broadcast_to = broadcast_to
Tensor.split = split
Tensor.chunk = chunk
