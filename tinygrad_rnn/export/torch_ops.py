"""Every op of the engine as PyTorch: ``TORCH_OPS[op name](ctx) -> kernel(*torch tensors)``.

An op recorded by ``tensor.observers`` is ``(op, ctx, inputs)``; its name picks the entry, and the
entry turns the op's ``ctx`` (axes, shapes, exponents, indices, dtypes: never data) into a function
of torch tensors that computes what the op's ``forward`` computes and whose torch gradient is the
op's ``backward`` (same equation; the two agree to rounding). Shapes and broadcasting follow NumPy,
which PyTorch shares for every op here. ``constant`` has no entry: a constant is a value, not a
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


def _index(index):
    """A NumPy index (ints, slices, None, ..., int or bool arrays) as torch reads it; arrays become
    CPU tensors, moved to the indexed tensor's device when used. A negative slice step has no torch
    spelling: an error naming it."""
    items = index if isinstance(index, tuple) else (index,)
    converted = []
    for item in items:
        if isinstance(item, slice) and item.step is not None and item.step < 0:
            raise UnsupportedOpError(f"getitem with the negative-step slice {item} has no PyTorch counterpart "
                                     f"(torch slices step forward only); use flip in the cell instead")
        converted.append(torch.from_numpy(np.array(item)) if isinstance(item, np.ndarray) else item)
    has_arrays = any(isinstance(item, torch.Tensor) for item in converted)

    def on(device):
        moved = tuple(item.to(device) if isinstance(item, torch.Tensor) else item for item in converted)
        return moved if isinstance(index, tuple) else moved[0]
    return on, has_arrays


def _getitem(ctx):
    on, has_arrays = _index(ctx[0])
    if not has_arrays:
        fixed = on(None)
        return lambda a: a[fixed]
    return lambda a: a[on(a.device)]


def _scatter(ctx):
    """zeros(shape) with g added at ``index`` (repeated integer indices accumulate)."""
    index, basic, shape = ctx
    on, has_arrays = _index(index)

    def scatter(g):
        out = g.new_zeros(shape)
        where = on(g.device)
        if not has_arrays:
            out[where] = g
            return out
        if not all(isinstance(item, torch.Tensor) for item in (where if isinstance(where, tuple) else (where,))):
            raise UnsupportedOpError(f"scatter at the mixed index {index!r} has no PyTorch counterpart here")
        return out.index_put((where,) if isinstance(where, torch.Tensor) else where, g, accumulate=True)
    return scatter


def _same(fn):
    """An op whose kernel does not depend on its ctx."""
    return lambda ctx: fn


TORCH_OPS = {
    "add": _same(torch.add), "sub": _same(torch.sub), "mul": _same(torch.mul), "div": _same(torch.div),
    "pow": _pow, "neg": _same(torch.neg), "matmul": _same(torch.matmul), "linear": _same(F.linear),
    "exp": _same(torch.exp), "log": _same(torch.log), "log1p": _same(torch.log1p), "sin": _same(torch.sin),
    "cos": _same(torch.cos), "tanh": _same(torch.tanh), "sigmoid": _same(torch.sigmoid),
    "relu": _same(torch.relu), "abs": _same(torch.abs), "sqrt": _same(torch.sqrt), "clip": _clip,
    "astype": lambda dtype: (lambda a, to=torch_dtype(dtype): a.to(to)),
    "sum": _reduction(lambda a, axes, keepdims, count: a.sum(dim=axes, keepdim=keepdims)),
    "mean": _reduction(lambda a, axes, keepdims, count: a.sum(dim=axes, keepdim=keepdims) / count),
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
