"""Linear, Embedding and Dropout, with PyTorch's parameter names, shapes and initialisation."""
import numpy as np

from .. import functional as F
from .._checks import IdOutOfRangeError, check_bool, check_float_dtype, check_int, check_real, check_tensor_input
from ..tensor import Tensor
from . import init
from .module import Module, Parameter

__all__ = ["Linear", "Embedding", "Dropout"]


class Linear(Module):
    """y = x W^T + b.  x (..., in_features) -> y (..., out_features); W (out, in), b (out,).

    ``in_features``, ``out_features``: ints >= 0 (0 gives an empty layer, as in PyTorch: zero
    inputs give an output of bias values); ``bias``: True or False; ``dtype``: a floating dtype
    (default: the default dtype). The input must be a Tensor of the layer's dtype with at least
    one axis, its last of size in_features. Initialised U(-1/sqrt(in), 1/sqrt(in)), as PyTorch
    (the bias is zero when in_features is 0).
    """

    def __init__(self, in_features, out_features, bias=True, dtype=None):
        super().__init__()
        in_features = check_int("Linear", "in_features", in_features, minimum=0)
        out_features = check_int("Linear", "out_features", out_features, minimum=0)
        bias = check_bool("Linear", "bias", bias)
        dtype = check_float_dtype("Linear", dtype)
        self.in_features, self.out_features = in_features, out_features
        bound = 1.0 / np.sqrt(in_features) if in_features else 0.0
        self.weight = init.uniform_(Parameter(np.empty((out_features, in_features), dtype=dtype)), -bound, bound)
        self.register_parameter(
            "bias", init.uniform_(Parameter(np.empty(out_features, dtype=dtype)), -bound, bound) if bias else None)

    def forward(self, x):
        check_tensor_input("Linear", "input", x, self.weight.dtype)
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            raise ValueError(f"Linear: expected input with last dimension {self.in_features}, got shape {x.shape}")
        flat = x.reshape(-1, self.in_features) if x.ndim != 2 else x
        y = F.linear(flat, self.weight, self.bias)
        return y.reshape(x.shape[:-1] + (self.out_features,)) if x.ndim != 2 else y

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Embedding(Module):
    """Rows of a table: ids (...) int -> weight[ids] (..., embedding_dim); weight ~ N(0, 1) as PyTorch.

    ``num_embeddings``, ``embedding_dim``: ints >= 0; ``dtype`` a floating dtype. ``ids``: an
    integer ndarray, integer Tensor or nested list of ints, each in [0, num_embeddings) (an id
    outside is an IndexError, as in PyTorch). Repeated ids accumulate their gradients into the same row.
    """

    def __init__(self, num_embeddings, embedding_dim, dtype=None):
        super().__init__()
        self.num_embeddings = check_int("Embedding", "num_embeddings", num_embeddings, minimum=0)
        self.embedding_dim = check_int("Embedding", "embedding_dim", embedding_dim, minimum=0)
        dtype = check_float_dtype("Embedding", dtype)
        self.weight = init.normal_(Parameter(np.empty((num_embeddings, embedding_dim), dtype=dtype)))

    def forward(self, ids):
        if not isinstance(ids, (Tensor, np.ndarray, list, tuple)) and not isinstance(ids, (int, np.integer)):
            raise TypeError(f"Embedding: ids must be an integer ndarray or Tensor, got {type(ids).__name__}")
        ids = ids.data if isinstance(ids, Tensor) else np.asarray(ids)
        if ids.dtype.kind not in "iu":
            raise TypeError(f"Embedding: ids must be integers, got dtype {ids.dtype}")
        if ids.size and (ids.min() < 0 or ids.max() >= self.num_embeddings):
            bad = ids[(ids < 0) | (ids >= self.num_embeddings)].ravel()[0]
            raise IdOutOfRangeError(f"Embedding: id {bad} is out of range for {self.num_embeddings} embeddings")
        return self.weight[ids]

    def extra_repr(self):
        return f"{self.num_embeddings}, {self.embedding_dim}"


class Dropout(Module):
    """Inverted dropout with probability p while training; the identity in eval mode.

    ``p``: a real number in [0, 1) (p = 1 would zero everything and is refused).
    """

    def __init__(self, p=0.5):
        super().__init__()
        self.p = check_real("Dropout", "p", p, high=1.0, high_open=True)

    def forward(self, x):
        return F.dropout(x, self.p, training=self.training)

    def extra_repr(self):
        return f"p={self.p}"
