"""Initialisers, in place on a Parameter's array, drawing from ``tinygrad_rnn.random``.

- ``uniform_(p, -k, k)`` with k = 1/sqrt(H): PyTorch's default for every recurrent weight and bias.
- ``xavier_uniform_``: U(-a, a), a = gain * sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio, 2010).
- ``orthogonal_``: the Q factor of a Gaussian matrix's QR decomposition, signs fixed by diag(R)
  (Saxe et al., 2014); for a (G*H, H) recurrent weight it orthogonalises the whole stacked matrix.
"""
import numpy as np

from ..random import default_generator

__all__ = ["uniform_", "normal_", "zeros_", "xavier_uniform_", "orthogonal_", "recurrent_default_"]


def uniform_(param, low, high, rng=None):
    rng = rng or default_generator()
    param.data[...] = rng.uniform(low, high, size=param.shape)
    return param


def normal_(param, mean=0.0, std=1.0, rng=None):
    rng = rng or default_generator()
    param.data[...] = rng.normal(mean, std, size=param.shape)
    return param


def zeros_(param):
    param.data[...] = 0
    return param


def recurrent_default_(param, hidden_size, rng=None):
    """U(-1/sqrt(H), 1/sqrt(H)), as PyTorch initialises RNN, LSTM and GRU weights and biases."""
    bound = 1.0 / np.sqrt(hidden_size)
    return uniform_(param, -bound, bound, rng)


def xavier_uniform_(param, gain=1.0, rng=None):
    if param.ndim < 2:
        raise ValueError(f"xavier_uniform_ needs a tensor with at least 2 dimensions, got shape {param.shape}")
    fan_out, fan_in = param.shape[0], int(np.prod(param.shape[1:]))
    bound = gain * np.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(param, -bound, bound, rng)


def orthogonal_(param, gain=1.0, rng=None):
    if param.ndim < 2:
        raise ValueError(f"orthogonal_ needs a tensor with at least 2 dimensions, got shape {param.shape}")
    rng = rng or default_generator()
    rows, cols = param.shape[0], int(np.prod(param.shape[1:]))
    gaussian = rng.standard_normal((max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(gaussian)
    q *= np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    param.data[...] = gain * q.reshape(param.shape)
    return param
