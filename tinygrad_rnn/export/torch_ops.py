"""Every op of the engine as PyTorch: ``TORCH_OPS[op name](ctx) -> kernel(*torch tensors)``.

An op recorded by ``tensor.observers`` is ``(op, ctx, inputs)``; its name picks the entry, and the
entry turns the op's ``ctx`` (axes, shapes, exponents, indices, dtypes: never data) into a function
of torch tensors that computes what the op's ``forward`` computes and whose torch gradient is the
op's ``backward`` (same equation; the two agree to rounding). Shapes and broadcasting follow NumPy,
which PyTorch shares for every op here; where the two differ it is NumPy's meaning that is
computed: integers divide in float64 (``div``, an integer ``mean``), a slice stepping backward reads
its axis flipped (``getitem``, ``scatter``). ``constant`` has no entry: a constant is a value, not a
computation (the trace holds its array). Imported only by ``to_torch`` (it imports torch).
"""
import numpy as np
import torch
import torch.nn.functional as F

from .errors import UnsupportedOpError

__all__ = ["TORCH_OPS", "torch_kernel", "torch_dtype"]


def torch_dtype(dtype):
    """The torch dtype of a NumPy dtype (float64 -> torch.float64, bool -> torch.bool, ...)."""
    return torch.from_numpy(np.zeros(0, dtype=dtype)).dtype


def _pow(ctx):
    """``a ** p`` with a number p (ctx the exponent, one input) or ``a ** b`` (ctx which inputs need a gradient)."""
    if isinstance(ctx, tuple):
        return lambda a, b: a ** b
    return lambda a: a ** ctx


def _true_divide(a, b):
    """a / b as NumPy divides: integers (and bools) in float64, where torch would use its default dtype."""
    if not (a.is_floating_point() or b.is_floating_point()):
        a, b = a.to(torch.float64), b.to(torch.float64)
    return a / b


def _mean(a, axes, keepdims, count):
    """The sum over ``axes`` divided by ``count``, as the op's forward: an integer sum divides in float64."""
    total = a.sum(dim=axes, keepdim=keepdims)
    return (total if total.is_floating_point() else total.to(torch.float64)) / count


def _clip(bounds):
    """clamp(a, low, high); neither bound set: a copy of a (gradient 1 everywhere)."""
    low, high = (None if bound is None else bound.item() if isinstance(bound, np.generic) else bound
                 for bound in bounds)
    if low is None and high is None:
        return torch.clone
    return lambda a: torch.clamp(a, low, high)


def _reduction(reduce):
    """sum / mean / amax over ``axes`` (ctx (axes, keepdims[, count])); no axes (a 0-d tensor, count 1): a copy."""
    def make(ctx):
        axes, keepdims = ctx[0], ctx[1]
        if not axes:
            return torch.clone
        return lambda a: reduce(a, axes, keepdims, ctx[2] if len(ctx) == 3 else None)
    return make


def _index(index, shape):
    """A NumPy index (ints, slices, None, ..., int or bool arrays) into a tensor of ``shape``, as torch
    reads it: -> (the axes to flip first, ``on(device)`` -> the index, whether it has arrays). Arrays
    become CPU tensors, moved to the indexed tensor's device when used. Torch slices step forward
    only, so a slice start:stop:-k reads its axis flipped, by the positive slice that takes the same
    elements in the same order (``shape`` is read only then)."""
    items = index if isinstance(index, tuple) else (index,)
    converted, flips, axis, backward = [], [], 0, any(map(_steps_backward, items))
    for item in items:
        if _steps_backward(item):
            flips.append(axis)
            item = _forward_slice(item, shape[axis])
        converted.append(torch.from_numpy(np.array(item)) if isinstance(item, np.ndarray) else item)
        axis += _axes_read(item, items, len(shape)) if backward else 0
    has_arrays = any(isinstance(item, torch.Tensor) for item in converted)

    def on(device):
        moved = tuple(item.to(device) if isinstance(item, torch.Tensor) else item for item in converted)
        return moved if isinstance(index, tuple) else moved[0]
    return flips, on, has_arrays


def _steps_backward(item):
    return isinstance(item, slice) and item.step is not None and item.step < 0


def _axes_read(item, items, ndim):
    """How many axes of the indexed tensor ``item`` (one of ``items``) reads: None none, a bool array
    its ndim, ... the axes the others leave, anything else one."""
    if item is None:
        return 0
    if item is Ellipsis:
        return ndim - sum(_axes_read(other, items, ndim) for other in items if other is not Ellipsis)
    return item.ndim if isinstance(item, np.ndarray) and item.dtype == bool else 1


def _forward_slice(backward, length):
    """The slice that reads, from an axis of ``length`` flipped, what ``backward`` (step < 0) reads from it."""
    taken = range(length)[backward]
    if not taken:
        return slice(0, 0)
    first = length - 1 - taken[0]
    return slice(first, first + (len(taken) - 1) * -taken.step + 1, -taken.step)


def _getitem(ctx):
    """``a[index]``; an index with a slice stepping backward is resolved against a's shape at each call."""
    index = ctx[0]
    if not any(map(_steps_backward, index if isinstance(index, tuple) else (index,))):
        _, on, has_arrays = _index(index, ())
        fixed = None if has_arrays else on(None)
        return (lambda a: a[on(a.device)]) if has_arrays else (lambda a: a[fixed])

    def read(a):
        flips, on, _ = _index(index, tuple(a.shape))
        return a.flip(flips)[on(a.device)]
    return read


def _scatter(ctx):
    """zeros(shape) with g added at ``index`` (repeated integer indices accumulate)."""
    index, basic, shape = ctx
    flips, on, has_arrays = _index(index, shape)

    def scatter(g):
        out = g.new_zeros(shape)
        where = on(g.device)
        if not has_arrays:
            out[where] = g
        elif all(isinstance(item, torch.Tensor) for item in (where if isinstance(where, tuple) else (where,))):
            out = out.index_put((where,) if isinstance(where, torch.Tensor) else where, g, accumulate=True)
        else:
            raise UnsupportedOpError(f"scatter at the mixed index {index!r} has no PyTorch counterpart here")
        return out.flip(flips) if flips else out
    return scatter


def _same(fn):
    """An op whose kernel does not depend on its ctx."""
    return lambda ctx: fn


TORCH_OPS = {
    "add": _same(torch.add), "sub": _same(torch.sub), "mul": _same(torch.mul), "div": _same(_true_divide),
    "pow": _pow, "neg": _same(torch.neg), "matmul": _same(torch.matmul), "linear": _same(F.linear),
    "exp": _same(torch.exp), "log": _same(torch.log), "log1p": _same(torch.log1p), "sin": _same(torch.sin),
    "cos": _same(torch.cos), "tanh": _same(torch.tanh), "sigmoid": _same(torch.sigmoid),
    "relu": _same(torch.relu), "abs": _same(torch.abs), "sqrt": _same(torch.sqrt), "clip": _clip,
    "astype": lambda dtype: (lambda a, to=torch_dtype(dtype): a.to(to)),
    "sum": _reduction(lambda a, axes, keepdims, count: a.sum(dim=axes, keepdim=keepdims)),
    "mean": _reduction(_mean),
    "amax": _reduction(lambda a, axes, keepdims, count: torch.amax(a, dim=axes, keepdim=keepdims)),
    "reshape": lambda shape: (lambda a: a.reshape(shape)),
    "permute": lambda ctx: (lambda a: a.permute(ctx[0])),
    "broadcast_to": lambda shape: (lambda a: a.expand(shape)),
    "getitem": _getitem, "scatter": _scatter,
    "concat": lambda ctx: (lambda *tensors: torch.cat(tensors, dim=ctx[0])),
    "stack": lambda axis: (lambda *tensors: torch.stack(tensors, dim=axis)),
    "where": _same(torch.where), "detach": _same(torch.Tensor.detach),
    "less": _same(torch.lt), "less_equal": _same(torch.le), "greater": _same(torch.gt),
    "greater_equal": _same(torch.ge), "equal": _same(torch.eq), "not_equal": _same(torch.ne),
}


def torch_kernel(op, ctx, who):
    """The torch function computing ``op`` with ``ctx``; an ``UnsupportedOpError`` naming the op
    (and ``who`` uses it) when it has no counterpart."""
    make = TORCH_OPS.get(op.name)
    if make is None:
        raise UnsupportedOpError(f"{who} uses the op {op.name!r}, which has no PyTorch counterpart in "
                                 f"tinygrad_rnn.export (known: {', '.join(sorted(TORCH_OPS))})")
    return make(ctx)
