"""The parameters an optimizer, a clipping function or ``zero_grad`` is given, and their gradients.

Checked once here for all of them: ``parameter_list`` turns what the caller passed into a list of
Tensors, ``checked_gradient`` reads one parameter's ``.grad`` as an ndarray of the parameter's
shape and dtype, ``zero_grads`` forgets (or zeroes) the gradients as PyTorch's ``zero_grad`` does.
"""
from collections.abc import Mapping

import numpy as np

from .._checks import check_bool
from ..tensor import Tensor

__all__ = ["parameter_list", "checked_gradient", "gradients_of", "zero_grads"]


def parameter_list(params, who, first_index=0):
    """``params`` (a Tensor or an ordered iterable of Tensors) as a list of Tensors.

    A set is refused as PyTorch refuses it (its order, hence the optimizer state's order, changes
    between runs). Errors name the parameter by its position, counted from ``first_index``.
    """
    if isinstance(params, Tensor):
        return [params]
    if isinstance(params, (set, frozenset)):
        raise TypeError(f"{who}: parameters must be an ordered collection (a list), not a set: a set's order "
                        f"changes between runs")
    try:
        params = list(params)
    except TypeError:
        raise TypeError(f"{who}: params must be a Tensor or an iterable of Tensors, "
                        f"got {type(params).__name__}") from None
    for i, p in enumerate(params, start=first_index):
        if isinstance(p, Mapping):
            raise TypeError(f"{who}: parameter {i} is a dict; parameter groups are given as a list of dicts "
                            f"only (not mixed with Tensors), each with a 'params' entry")
        if not isinstance(p, Tensor):
            raise TypeError(f"{who}: parameter {i} is a {type(p).__name__}, not a Tensor")
    return params


def checked_gradient(param, index, who):
    """``param.grad`` as an ndarray (None if absent), checked against the parameter's shape and dtype."""
    grad = param.grad
    if grad is None:
        return None
    if isinstance(grad, Tensor):  # left by backward(create_graph=True)
        grad = grad.data
    if not isinstance(grad, np.ndarray):
        raise TypeError(f"{who}: the .grad of parameter {index} is a {type(grad).__name__}, not an ndarray")
    if grad.shape != param.shape:
        raise ValueError(f"{who}: the .grad of parameter {index} has shape {grad.shape} but the "
                         f"parameter has shape {param.shape}")
    if grad.dtype != param.dtype:
        raise TypeError(f"{who}: the .grad of parameter {index} has dtype {grad.dtype} but the "
                        f"parameter has dtype {param.dtype}")
    return grad


def gradients_of(params, who):
    """The gradients (ndarrays, checked) of the parameters in ``params`` that have one."""
    grads = (checked_gradient(p, i, who) for i, p in enumerate(parameter_list(params, who)))
    return [g for g in grads if g is not None]


def zero_grads(params, set_to_none, who):
    """PyTorch's ``zero_grad``: with ``set_to_none`` (True or False) every ``.grad`` becomes None (the next
    backward allocates it afresh); without, each existing gradient becomes zeros of its shape and dtype
    (written in place when it is an ndarray; a Tensor left by ``create_graph`` is replaced)."""
    set_to_none = check_bool(who, "set_to_none", set_to_none)
    for p in params:
        if set_to_none or p.grad is None:
            p.grad = None
        elif isinstance(p.grad, Tensor):
            p.grad = np.zeros(p.shape, p.dtype)
        else:
            p.grad[...] = 0
