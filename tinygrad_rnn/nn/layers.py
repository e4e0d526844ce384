"""Linear, Embedding and Dropout, with PyTorch's parameter names, shapes and initialisation."""
import numpy as np

from .. import functional as F
from ..tensor import Tensor, get_default_dtype
from . import init
from .module import Module, Parameter

__all__ = ["Linear", "Embedding", "Dropout"]


def _check_features(layer, x, expected):
    if x.ndim == 0 or x.shape[-1] != expected:
        raise ValueError(f"{layer}: expected input with last dimension {expected}, got shape {x.shape}")


class Linear(Module):
    """y = x W^T + b.  x (..., in_features) -> y (..., out_features); W (out, in), b (out,).

    Initialised U(-1/sqrt(in), 1/sqrt(in)), as PyTorch.
    """

    def __init__(self, in_features, out_features, bias=True, dtype=None):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        dtype = dtype or get_default_dtype()
        bound = 1.0 / np.sqrt(in_features)
        self.weight = init.uniform_(Parameter(np.empty((out_features, in_features), dtype=dtype)), -bound, bound)
        self.register_parameter(
            "bias", init.uniform_(Parameter(np.empty(out_features, dtype=dtype)), -bound, bound) if bias else None)

    def forward(self, x):
        _check_features("Linear", x, self.in_features)
        flat = x.reshape(-1, self.in_features) if x.ndim != 2 else x
        y = F.linear(flat, self.weight, self.bias)
        return y.reshape(x.shape[:-1] + (self.out_features,)) if x.ndim != 2 else y

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Embedding(Module):
    """Rows of a table: ids (...) int -> weight[ids] (..., embedding_dim); weight ~ N(0, 1) as PyTorch.

    Repeated ids accumulate their gradients into the same row.
    """

    def __init__(self, num_embeddings, embedding_dim, dtype=None):
        super().__init__()
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        dtype = dtype or get_default_dtype()
        self.weight = init.normal_(Parameter(np.empty((num_embeddings, embedding_dim), dtype=dtype)))

    def forward(self, ids):
        ids = ids.data if isinstance(ids, Tensor) else np.asarray(ids)
        if ids.dtype.kind not in "iu":
            raise TypeError(f"Embedding: ids must be integers, got dtype {ids.dtype}")
        if ids.size and (ids.min() < 0 or ids.max() >= self.num_embeddings):
            bad = ids[(ids < 0) | (ids >= self.num_embeddings)].ravel()[0]
            raise IndexError(f"Embedding: id {bad} is out of range for {self.num_embeddings} embeddings")
        return self.weight[ids]

    def extra_repr(self):
        return f"{self.num_embeddings}, {self.embedding_dim}"


class Dropout(Module):
    """Inverted dropout with probability p while training; the identity in eval mode."""

    def __init__(self, p=0.5):
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x):
        return F.dropout(x, self.p, training=self.training)

    def extra_repr(self):
        return f"p={self.p}"
