"""PyTorch's names, in one place: the Tensor methods and the constructors a PyTorch user types without looking.

Why this file exists: the core (``tensor.py``, ``ops.py``) is written to be read, with one name per op and
NumPy's keywords. A PyTorch user reaches for ``x.size()``, ``x.view(2, -1)``, ``x.sum(dim=1, keepdim=True)``,
``tr.zeros(2, 3)`` or ``tr.cat(xs, dim=1)``. Each of those only forwards to an op that exists, so none is new
machinery: they are attached to Tensor here, from the outside, and the core stays as small as it was.
Importing ``tinygrad_rnn`` runs this file. docs/pytorch.md lists every name and the differences kept on purpose.

The rule where NumPy and PyTorch spell one thing two ways: PyTorch's meaning wins, or the call is an error,
never a silent third meaning. So ``x.size`` is PyTorch's method (NumPy's attribute is ``x.numel()``),
``x.squeeze(d)`` leaves an axis whose length is not 1 alone (NumPy raises), ``x.flatten(1)`` flattens from
axis 1 (NumPy's argument is the memory order), ``tr.tensor([1, 2])`` is int64 (``Tensor([1, 2])`` takes the
default dtype), ``tr.arange(5, 0)`` is an error (NumPy gives an empty array), ``x.sum(dim=())`` is an error
(PyTorch reduces every axis, NumPy none), and giving one argument as both ``axis=`` and ``dim=`` is an error.
"""
import collections
import math
import numbers

import numpy as np

from . import functional, ops
from ._checks import AxisOutOfRangeError, axis_or_dim, describe, is_int
from .random import default_generator
from .tensor import Tensor, get_default_dtype, no_grad, read_values

__all__ = ["tensor", "zeros", "ones", "randn", "rand", "arange", "from_numpy", "zeros_like", "ones_like", "cat",
           "concat", "stack", "float32", "float64", "int32", "int64", "double", "long"]

# dtypes under PyTorch's names (torch.float, torch.int and torch.bool would shadow Python's float, int, bool)
float32, float64, int32, int64 = np.float32, np.float64, np.int32, np.int64
double, long = float64, int64

MinResult = collections.namedtuple("MinResult", ["values", "indices"])  # as torch.return_types.min


def as_dtype(who, dtype):
    """``dtype`` as a NumPy dtype: a NumPy dtype or type (``tr.float64`` is ``np.float64``), a NumPy name
    ('float64'), a Python type (float: float64, as in both libraries) or a torch dtype (``torch.float64``)."""
    if dtype is None:  # np.dtype(None) would be float64
        raise TypeError(f"{who}: dtype must be given, got None")
    if type(dtype).__module__ == "torch":  # torch.float64 prints as "torch.float64"; torch is never imported here
        dtype = str(dtype).removeprefix("torch.")
    if isinstance(dtype, str) and dtype in ("float", "int"):
        raise TypeError(f"{who}: the dtype name {dtype!r} means 64 bits in NumPy but 32 in PyTorch; write "
                        f"'{dtype}32' or '{dtype}64'")
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{who}: {describe(dtype)} is not a dtype; use e.g. tr.float64 or 'float64'") from None
    if resolved.kind not in "fiub":
        raise TypeError(f"{who}: tensors hold numbers or bools, got dtype {resolved}")
    return resolved


def _dim(who, dim, ndim, shape):
    """``dim`` as an axis in [0, ndim) (a negative one counts from the end), or a clear error."""
    if not is_int(dim):
        raise TypeError(f"{who}: dim must be an int, got {describe(dim)}")
    if not -ndim <= dim < ndim:
        raise AxisOutOfRangeError(f"{who}: dim {dim} is out of range for a tensor of shape {shape} "
                                  f"(dims run from {-ndim} to {ndim - 1})" if ndim else
                                  f"{who}: dim {dim} is out of range: a tensor of shape () has no dims")
    return int(dim) % ndim


# ===================================================================== shape
def size(x, dim=None):
    """``x.size()``: the shape, a tuple; ``x.size(d)``: the length of axis d (as ``torch.Tensor.size``)."""
    return x.shape if dim is None else x.shape[_dim("size", dim, x.ndim, x.shape)]


def unsqueeze(x, dim):
    """``x`` with a new axis of length 1 at ``dim``, in [-ndim - 1, ndim] (as ``torch.unsqueeze``)."""
    axis = _dim("unsqueeze", dim, x.ndim + 1, x.shape)
    return x.reshape(x.shape[:axis] + (1,) + x.shape[axis:])


def squeeze(x, dim=None):
    """``x`` without its axes of length 1: all of them, or those among ``dim`` (an int or a tuple). As in
    PyTorch, a ``dim`` whose length is not 1 is left as it is (NumPy raises)."""
    dims = range(x.ndim) if dim is None else dim if isinstance(dim, (tuple, list)) else (dim,)
    axes = [_dim("squeeze", d, max(x.ndim, 1), x.shape) for d in dims]  # a 0-d tensor has dim 0, as in PyTorch
    if len(set(axes)) < len(axes):
        raise ValueError(f"squeeze: dims {tuple(dims)} name an axis twice (a tensor of shape {x.shape})")
    return x.reshape(tuple(n for axis, n in enumerate(x.shape) if n != 1 or axis not in axes))


def flatten(x, start_dim=0, end_dim=-1):
    """``x`` with axes ``start_dim`` .. ``end_dim`` (both included) merged into one (as ``torch.flatten``;
    a 0-d tensor becomes shape (1,)). NumPy's ``flatten(order)`` takes a memory order: refused (not an int)."""
    ndim = max(x.ndim, 1)
    start, end = _dim("flatten", start_dim, ndim, x.shape), _dim("flatten", end_dim, ndim, x.shape)
    if start > end:
        raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim} in a tensor of shape {x.shape}")
    shape = x.shape or (1,)
    return x.reshape(shape[:start] + (math.prod(shape[start:end + 1]),) + shape[end + 1:])


def t(x):
    """The transpose of a matrix; a 0-d or 1-d tensor unchanged (as ``torch.Tensor.t``)."""
    if x.ndim > 2:
        raise ValueError(f"t() transposes tensors of at most 2 dimensions, got shape {x.shape}; "
                         f"use transpose(dim0, dim1) or permute(*dims)")
    return x.T


# ===================================================================== values
def clone(x):
    """A copy of ``x`` (new memory); the gradient flows through it unchanged."""
    return x.astype(x.dtype)


def tolist(x):
    """The values as nested Python lists (a number for a 0-d tensor)."""
    return read_values(x, "tensor.tolist()").tolist()


def _scalar(x, python_type):
    if x.data.size != 1:
        raise TypeError(f"only a one-element tensor converts to a Python {python_type.__name__}, got shape {x.shape}")
    return python_type(read_values(x, f"{python_type.__name__}(tensor)").item())


def to(x, dtype):
    """``x`` in ``dtype`` (see ``as_dtype``; a Tensor: its dtype), or ``x`` itself if it has it already, as
    PyTorch. The device 'cpu' is accepted and changes nothing; the gradient is cast back to ``x``'s dtype.
    NaN, inf or a value beyond the range of an integer ``dtype`` is an error (NumPy warns, torch gives garbage)."""
    if isinstance(dtype, Tensor):
        dtype = dtype.dtype
    elif str(dtype) == "cpu":  # the string or torch.device("cpu"): the only device there is
        return x
    dtype = as_dtype("to", dtype)
    if dtype == x.dtype:
        return x
    try:
        with np.errstate(invalid="raise", over="raise"):  # NaN, inf or a value beyond dtype's range
            return x.astype(dtype)
    except FloatingPointError:
        raise ValueError(f"to: a tensor of dtype {x.dtype} holds values (NaN, inf or beyond the range) that "
                         f"have no {dtype} value") from None


def masked_fill(x, mask, value):
    """``value`` where ``mask`` is True, else ``x`` (as ``torch.Tensor.masked_fill``): d/dx = not mask, and
    d/dvalue = the number of places filled for a 0-d Tensor value. mask: bool, broadcasts to ``x``'s shape.
    The result keeps ``x``'s dtype: a number ``value`` must be exact in it (2.5 into an int64 tensor, or
    1e40 into a float32 one, is an error; torch would truncate or raise)."""
    mask = mask if isinstance(mask, Tensor) else np.asarray(mask)
    if mask.dtype != bool:
        raise TypeError(f"masked_fill: mask must be boolean, got dtype {mask.dtype}")
    try:
        fits = np.broadcast_shapes(mask.shape, x.shape) == x.shape
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(f"masked_fill: mask of shape {mask.shape} does not broadcast to the tensor's shape {x.shape}")
    if isinstance(value, Tensor) and value.ndim:
        raise ValueError(f"masked_fill: value must be a number or a 0-d Tensor, got shape {value.shape}")
    if not isinstance(value, Tensor):
        value = _number_in("masked_fill", "value", value, x.dtype)
    return ops.where(mask, value, x)


def _number_in(who, name, value, dtype):
    """The number ``value`` (the argument ``name``) as a 0-d array of ``dtype``, or a clear error where that would
    change it: a fraction or an out-of-range integer for an integer dtype, a finite number beyond a float dtype's
    range (NumPy would warn and give inf)."""
    if isinstance(value, (bool, np.bool_)) and dtype != bool or not isinstance(value, (numbers.Real, np.bool_)):
        raise TypeError(f"{who}: {name} must be a number, got {describe(value)}")
    try:
        with np.errstate(all="ignore"):  # the check below names what went wrong
            converted = np.array(value, dtype=dtype)
        fits = converted == value if dtype.kind in "iub" else not np.isinf(converted) or math.isinf(value)
    except (OverflowError, ValueError):  # a Python int beyond int64 (or every float), NaN for an integer dtype
        fits = False
    if not fits:
        raise ValueError(f"{who}: {name} {describe(value)} does not fit a tensor of dtype {dtype} without changing; "
                         f"convert the tensor first (e.g. x.to(tr.float64))")
    return converted


# ===================================================================== reductions
@axis_or_dim
def amin(x, axis=None, keepdims=False):
    """Minimum over ``axis`` (as ``torch.amin``): -amax(-x), so ties share the gradient as in ``amax``."""
    return -ops.amax(-_signed("amin", x), axis, keepdims)


def tensor_min(x, dim=None, keepdim=False, *, axis=None, keepdims=None):
    """``x.min()``: the smallest element; ``x.min(dim)``: the pair (values, indices), as ``torch.min``
    (the first of equal minima). Computed as ``max`` of -x, so the gradients are ``max``'s."""
    if axis is not None or keepdims is not None:
        raise TypeError("min(axis=...) gives the values in NumPy but (values, indices) in PyTorch: write "
                        "amin(axis, keepdims) for the values, or min(dim, keepdim) for the pair")
    result = ops.max(-_signed("min", x), dim, keepdim)
    return -result if dim is None else MinResult(-result.values, result.indices)


def _signed(who, x):
    """``x``, whose negation must be exact: unsigned and bool tensors are refused."""
    if x.dtype.kind in "ub":
        raise TypeError(f"{who}: not supported for dtype {x.dtype}; convert first, e.g. x.to(tr.int64)")
    return x


@axis_or_dim
def argmax(x, axis=None, keepdims=False):
    """The index of the largest element (the first of equal ones) along ``axis``, as int64 with no gradient;
    ``axis`` None: the index into the flattened tensor (as ``torch.argmax``)."""
    return _index_of(ops.max, "argmax", x, axis, keepdims)


@axis_or_dim
def argmin(x, axis=None, keepdims=False):
    """As ``argmax``, for the smallest element."""
    return _index_of(tensor_min, "argmin", x, axis, keepdims)


def _index_of(pair, who, x, axis, keepdims):
    """The indices of ``pair(x, dim, keepdim)`` (``max`` or ``min``), over the flattened ``x`` for ``axis`` None."""
    if x.data.size == 0:
        raise ValueError(f"{who}: a tensor of shape {x.shape} has no elements")
    with no_grad():
        if axis is not None:
            return pair(x, axis, keepdims).indices
        index = pair(x.reshape(-1), 0).indices
        return index.reshape((1,) * x.ndim) if keepdims else index


# ===================================================================== clamping
def clamp(x, min=None, max=None):
    """``x`` limited to [min, max] (either may be None, not both): ``clip`` under PyTorch's name.
    d/dx = 1 where min <= x <= max, else 0."""
    for name, bound in (("min", min), ("max", max)):
        if bound is not None and (isinstance(bound, (bool, np.bool_)) or not isinstance(bound, numbers.Real)):
            raise TypeError(f"clamp: {name} must be a number or None, got {describe(bound)}")
    if min is None and max is None:
        raise ValueError("clamp: give min, max or both")
    for name, bound in (("min", min), ("max", max)):
        if bound is not None and x.dtype.kind == "f":  # beyond the dtype's range NumPy's cast would overflow
            _number_in("clamp", name, bound, x.dtype)
    return ops.clip(x, min, max)


def clamp_min(x, min):
    """max(x, min), as ``torch.clamp_min``."""
    return clamp(x, min, None)


def clamp_max(x, max):
    """min(x, max), as ``torch.clamp_max``."""
    return clamp(x, None, max)


# ===================================================================== constructors
def tensor(data, dtype=None, requires_grad=False):
    """A new Tensor holding a copy of ``data``, as ``torch.tensor``. Without ``dtype`` (see ``as_dtype``), each
    number counts with a dtype: a Python float the default dtype, a Python int int64, a bool bool, a NumPy
    number, ndarray or Tensor its own; the result has their promotion, a floating one winning over the
    integers (``[1, 2.5]`` is float32, ``[np.float64(1), 2.0]`` float64). ``Tensor(data)`` instead gives
    Python numbers the default dtype. Numbers beyond the result's range are an error, not inf."""
    if isinstance(data, Tensor):
        raise TypeError("tensor(data) got a Tensor; for a copy write x.clone().detach() (as PyTorch advises)")
    if dtype is not None:
        dtype = as_dtype("tensor", dtype)
    elif not isinstance(data, (np.ndarray, np.generic)):
        dtype = _promoted(data)
    try:
        with np.errstate(over="raise"):  # 1e40 in float32
            array = np.array(data, dtype=dtype)
    except FloatingPointError:
        raise ValueError(f"tensor: {describe(data)} holds numbers beyond the range of {dtype}; "
                         f"give dtype=tr.float64") from None
    except OverflowError:
        raise ValueError(f"tensor: the integers in {describe(data)} do not fit in {dtype}") from None
    except (TypeError, ValueError) as error:
        raise TypeError(f"tensor: cannot make a tensor from {describe(data)}: {error}") from None
    return Tensor(array, requires_grad=requires_grad)


def _promoted(data):
    """torch.tensor's dtype for the numbers in ``data`` (see ``tensor``); None (NumPy decides) if it holds none."""
    found = set()
    _add_dtypes(data, found)
    floating = [dtype for dtype in found if dtype.kind == "f"]
    return np.result_type(*floating) if floating else np.result_type(*found) if found else None


def _add_dtypes(data, found):
    """Add to ``found`` the dtype of each number in ``data`` (nested lists and tuples), as ``tensor`` counts it."""
    if isinstance(data, (list, tuple)):
        if not data:
            found.add(get_default_dtype())  # torch.tensor([]) is float
        types = set(map(type, data))  # Python numbers by their type at once: a list of 10^6 floats stays fast
        for python_type in types & {bool, int, float}:
            _add_dtypes(python_type(), found)
        for item in data if types - {bool, int, float} else ():
            if type(item) not in (bool, int, float):
                _add_dtypes(item, found)
    elif isinstance(data, (np.ndarray, np.generic, Tensor)):
        found.add(data.dtype)
    elif isinstance(data, bool):
        found.add(np.dtype(bool))
    elif isinstance(data, numbers.Integral):
        found.add(np.dtype(np.int64))
    elif isinstance(data, numbers.Real):
        found.add(get_default_dtype())


def _shape(who, size):
    """``size`` (ints, or one tuple or list of them) as a shape tuple of non-negative ints."""
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    for n in size:
        if not is_int(n):
            raise TypeError(f"{who}: sizes must be ints, got {describe(n)} in {size}")
        if n < 0:
            raise ValueError(f"{who}: sizes must be non-negative, got {size}")
    return tuple(int(n) for n in size)


def _dtype_or_default(who, dtype):
    return get_default_dtype() if dtype is None else as_dtype(who, dtype)


def zeros(*size, dtype=None, requires_grad=False):
    """A tensor of zeros: ``zeros(2, 3)`` or ``zeros((2, 3))``; dtype: the default dtype unless given."""
    return Tensor(np.zeros(_shape("zeros", size), _dtype_or_default("zeros", dtype)), requires_grad=requires_grad)


def ones(*size, dtype=None, requires_grad=False):
    """A tensor of ones, as ``zeros``."""
    return Tensor(np.ones(_shape("ones", size), _dtype_or_default("ones", dtype)), requires_grad=requires_grad)


def _random(who, draw, size, dtype, requires_grad):
    """``draw(shape, dtype)`` from the library's default generator (``tr.manual_seed`` repeats it)."""
    dtype = _dtype_or_default(who, dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"{who}: draws float32 or float64 tensors, got dtype {dtype}")
    return Tensor(draw(default_generator(), _shape(who, size), dtype), requires_grad=requires_grad)


def randn(*size, dtype=None, requires_grad=False):
    """Independent N(0, 1) draws, from the library's generator (``tr.manual_seed`` repeats them)."""
    return _random("randn", np.random.Generator.standard_normal, size, dtype, requires_grad)


def rand(*size, dtype=None, requires_grad=False):
    """Independent U[0, 1) draws (never 1, in float32 too), from the library's generator."""
    return _random("rand", np.random.Generator.random, size, dtype, requires_grad)


def arange(start, end=None, step=1, dtype=None, requires_grad=False):
    """start, start + step, ... up to ``end`` (excluded), as ``torch.arange``: ``arange(end)`` starts at 0.
    All integers: int64; else the default dtype; ``dtype`` overrides. Value i is start + i * step, computed
    in float64 (as PyTorch; NumPy's arange adds a rounded step instead); the count is ceil((end - start) / step)."""
    if end is None:
        start, end = 0, start
    for name, value in (("start", start), ("end", end), ("step", step)):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
            raise TypeError(f"arange: {name} must be a number, got {describe(value)}")
        if not math.isfinite(value):
            raise ValueError(f"arange: {name} must be finite, got {value}")
    if step == 0 or (end - start) * step < 0:
        raise ValueError(f"arange: step {step} never leads from start {start} to end {end}")
    if all(map(is_int, (start, end, step))):
        values = np.arange(start, end, step, dtype=np.int64)
    else:
        values = start + step * np.arange(math.ceil((end - start) / step), dtype=np.float64)
    if dtype is not None:
        dtype = as_dtype("arange", dtype)
    elif values.dtype != np.int64:
        dtype = get_default_dtype()
    return Tensor(values if dtype is None else values.astype(dtype), requires_grad=requires_grad)


def from_numpy(array):
    """A Tensor sharing ``array``'s memory and dtype (writes to one show in the other), as ``torch.from_numpy``."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy: expected an ndarray, got {describe(array)}")
    return Tensor(array)


def zeros_like(x, dtype=None, requires_grad=False):
    """Zeros of ``x``'s shape and (unless given) dtype."""
    return zeros(x.shape, dtype=x.dtype if dtype is None else dtype, requires_grad=requires_grad)


def ones_like(x, dtype=None, requires_grad=False):
    """Ones of ``x``'s shape and (unless given) dtype."""
    return ones(x.shape, dtype=x.dtype if dtype is None else dtype, requires_grad=requires_grad)


concat, stack = axis_or_dim(ops.concat), axis_or_dim(ops.stack)
cat = concat


# ===================================================================== attached to Tensor
for _name, _method in {
    "size": size, "numel": lambda x: x.data.size, "dim": lambda x: x.ndim, "view": ops.reshape,
    "unsqueeze": unsqueeze, "squeeze": squeeze, "flatten": flatten, "t": t,
    "clone": clone, "tolist": tolist, "to": to, "masked_fill": masked_fill,
    "float": lambda x: to(x, np.float32), "double": lambda x: to(x, np.float64), "long": lambda x: to(x, np.int64),
    "__float__": lambda x: _scalar(x, float), "__int__": lambda x: _scalar(x, int),
    "pow": ops.pow, "matmul": ops.matmul, "min": tensor_min, "amin": amin, "argmax": argmax, "argmin": argmin,
    "clamp": clamp, "clamp_min": clamp_min, "clamp_max": clamp_max,
    "softmax": functional.softmax, "log_softmax": functional.log_softmax,
    **{name: axis_or_dim(getattr(ops, name)) for name in ("sum", "mean", "amax", "split", "chunk")},
}.items():
    setattr(Tensor, _name, _method)
