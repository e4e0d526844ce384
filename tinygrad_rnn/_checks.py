"""Checks of the arguments of public constructors and functions, written once and shared.

Each check returns the value in its plain form (a Python int, float or bool, a NumPy dtype) or
raises with a message that starts with the caller's name (``who``), names the argument and says
what came: TypeError for a value of the wrong kind, ValueError for a value out of range. Nothing
is coerced: a float is not an int, a bool is not a number, an int is not a bool.
"""
import functools
import inspect
import math
import numbers

import numpy as np

from .tensor import Tensor, get_default_dtype

__all__ = ["AxisOutOfRangeError", "IdOutOfRangeError", "describe", "is_int", "check_int", "check_real", "check_bool",
           "check_callable", "check_float_dtype", "check_tensor_input", "axis_or_dim"]


class IdOutOfRangeError(IndexError, ValueError):
    """An id (an embedding row, a class, a character) outside [0, n): an IndexError as in PyTorch,
    and a ValueError as it is also a bad value (NumPy's AxisError is both in the same way)."""


class AxisOutOfRangeError(IndexError, ValueError):
    """An axis (dim) outside [-ndim, ndim): an IndexError as in PyTorch ("Dimension out of range"),
    and a ValueError as NumPy's AxisError is."""


def describe(value):
    """A short description of a value for an error message: its type and, where short, the value."""
    if isinstance(value, (Tensor, np.ndarray)):
        return f"{type(value).__name__} of shape {value.shape} and dtype {value.dtype}"
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:37] + '...'}"


def is_int(value):
    """Whether ``value`` is an integer: a Python or NumPy int, never a bool, float, str or array."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_int(who, name, value, minimum=None):
    """``value`` as an int (``is_int``), at least ``minimum`` when given."""
    if not is_int(value):
        raise TypeError(f"{who}: {name} must be an int, got {describe(value)}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{who}: {name} must be at least {minimum}, got {value}")
    return int(value)


def check_real(who, name, value, high=None, high_open=False, low=0.0):
    """``value`` as a finite float in [low, high] ([low, high) with ``high_open``; no upper bound
    when ``high`` is None, no bound at all with low=-math.inf). A bool, str or array is a TypeError."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{who}: {name} must be a real number, got {describe(value)}")
    value = float(value)
    too_high = high is not None and (value >= high if high_open else value > high)
    if not math.isfinite(value) or value < low or too_high:
        if high is None:
            interval = "a finite number" if low == -math.inf else f">= {low:g}"
        else:
            interval = f"in [{low:g}, {high}{')' if high_open else ']'}"
        raise ValueError(f"{who}: {name} must be {interval}, got {value}")
    return value


def check_bool(who, name, value):
    """``value`` as a bool: True or False only (not 0, 1 or a string)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{who}: {name} must be True or False, got {describe(value)}")
    return bool(value)


def check_callable(who, name, value):
    if not callable(value):
        raise TypeError(f"{who}: {name} must be callable, got {describe(value)}")
    return value


def check_float_dtype(who, dtype):
    """``dtype`` (None: the default dtype) as a floating-point NumPy dtype."""
    if dtype is None:
        return np.dtype(get_default_dtype())
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{who}: dtype must be a floating-point dtype such as np.float32, "
                        f"got {describe(dtype)}") from None
    if resolved.kind != "f":
        raise TypeError(f"{who}: dtype must be a floating-point dtype such as np.float32, got {resolved}")
    return resolved


def check_tensor_input(who, name, x, dtype):
    """``x`` must be a Tensor of ``dtype`` (a layer's parameter dtype): no silent cast, as PyTorch."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{who}: {name} must be a Tensor, got {describe(x)}")
    if x.dtype != dtype:
        raise TypeError(f"{who}: {name} has dtype {x.dtype} but the layer's parameters have dtype "
                        f"{np.dtype(dtype)}; convert one of them (e.g. Tensor(x.numpy().astype(np.{np.dtype(dtype)})))")
    return x


def axis_or_dim(function):
    """``function`` (keywords ``axis`` and ``keepdims``, as NumPy's) taking PyTorch's ``dim`` and ``keepdim``
    as well. One argument given in both spellings is an error, never a choice between the two values.
    An empty ``dim`` (``dim=()``, or ``()`` given positionally) is an error too: PyTorch reduces every axis
    for it, NumPy none; ``axis=()``, NumPy's keyword, keeps NumPy's meaning."""
    axis_is_second = list(inspect.signature(function).parameters)[1:2] == ["axis"]

    @functools.wraps(function)
    def either_spelling(*args, **kwargs):
        for pytorch_name, numpy_name in (("dim", "axis"), ("keepdim", "keepdims")):
            if pytorch_name in kwargs:
                if numpy_name in kwargs:
                    raise TypeError(f"{function.__name__}: got both {numpy_name}= (NumPy's name) and {pytorch_name}= "
                                    f"(PyTorch's name) for the same argument; give one")
                if pytorch_name == "dim" and _is_empty_sequence(kwargs[pytorch_name]):
                    _refuse_empty_dim(function.__name__, kwargs[pytorch_name])
                kwargs[numpy_name] = kwargs.pop(pytorch_name)
        if axis_is_second and len(args) > 1 and _is_empty_sequence(args[1]):
            _refuse_empty_dim(function.__name__, args[1])
        return function(*args, **kwargs)
    return either_spelling


def _is_empty_sequence(value):
    return isinstance(value, (tuple, list)) and not value


def _refuse_empty_dim(who, dim):
    raise ValueError(f"{who}: dim={dim!r} reduces every axis in PyTorch but none in NumPy; write dim=None to "
                     f"reduce them all, or axis={dim!r} (NumPy's keyword) to reduce none")
