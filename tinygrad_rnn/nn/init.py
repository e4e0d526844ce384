"""Initialisers, in place on a Parameter's array, drawing from ``tinygrad_rnn.random``.

- ``uniform_(p, -k, k)`` with k = 1/sqrt(H): PyTorch's default for every recurrent weight and bias.
- ``xavier_uniform_``: U(-a, a), a = gain * sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio, 2010).
- ``orthogonal_``: the Q factor of a Gaussian matrix's QR decomposition, signs fixed by diag(R)
  (Saxe et al., 2014); for a (G*H, H) recurrent weight it orthogonalises the whole stacked matrix.
"""
import math

import numpy as np

from .._checks import check_int, check_real, describe
from ..random import default_generator
from ..tensor import Tensor

__all__ = ["uniform_", "normal_", "zeros_", "xavier_uniform_", "orthogonal_", "recurrent_default_"]


def _checked(who, param, rng):
    """Every initialiser takes a floating Tensor (a Parameter) and an optional np.random.Generator."""
    if not isinstance(param, Tensor) or param.dtype.kind != "f":
        raise TypeError(f"{who}: param must be a floating-point Tensor (a Parameter), got {describe(param)}")
    if rng is None:
        return default_generator()
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"{who}: rng must be a numpy.random.Generator, got {type(rng).__name__}")
    return rng


def uniform_(param, low, high, rng=None):
    """Fill ``param`` with U(low, high); low <= high, both finite."""
    rng = _checked("uniform_", param, rng)
    low, high = (check_real("uniform_", name, value, low=-math.inf) for name, value in (("low", low), ("high", high)))
    if low > high:
        raise ValueError(f"uniform_: low must be <= high, got low={low} and high={high}")
    param.data[...] = rng.uniform(low, high, size=param.shape)
    return param


def normal_(param, mean=0.0, std=1.0, rng=None):
    """Fill ``param`` with N(mean, std^2); std >= 0."""
    rng = _checked("normal_", param, rng)
    mean, std = check_real("normal_", "mean", mean, low=-math.inf), check_real("normal_", "std", std)
    param.data[...] = rng.normal(mean, std, size=param.shape)
    return param


def zeros_(param):
    _checked("zeros_", param, None)
    param.data[...] = 0
    return param


def recurrent_default_(param, hidden_size, rng=None):
    """U(-1/sqrt(H), 1/sqrt(H)), as PyTorch initialises RNN, LSTM and GRU weights and biases (H >= 1)."""
    bound = 1.0 / np.sqrt(check_int("recurrent_default_", "hidden_size", hidden_size, minimum=1))
    return uniform_(param, -bound, bound, rng)


def xavier_uniform_(param, gain=1.0, rng=None):
    """U(-a, a), a = gain sqrt(6 / (fan_in + fan_out)); param has at least 2 dimensions, gain >= 0."""
    _checked("xavier_uniform_", param, rng)
    gain = check_real("xavier_uniform_", "gain", gain)
    if param.ndim < 2:
        raise ValueError(f"xavier_uniform_ needs a tensor with at least 2 dimensions, got shape {param.shape}")
    fan_out, fan_in = param.shape[0], int(np.prod(param.shape[1:]))
    if fan_in + fan_out == 0:
        return param
    bound = gain * np.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(param, -bound, bound, rng)


def orthogonal_(param, gain=1.0, rng=None):
    """A (semi-)orthogonal matrix times gain; param has at least 2 dimensions, gain >= 0."""
    rng = _checked("orthogonal_", param, rng)
    gain = check_real("orthogonal_", "gain", gain)
    if param.ndim < 2:
        raise ValueError(f"orthogonal_ needs a tensor with at least 2 dimensions, got shape {param.shape}")
    rows, cols = param.shape[0], int(np.prod(param.shape[1:]))
    gaussian = rng.standard_normal((max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(gaussian)
    q *= np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    param.data[...] = gain * q.reshape(param.shape)
    return param
