"""Composites built from ops: softmax, log_softmax, cross_entropy, mse_loss, dropout, one_hot.

Nothing here writes a backward: each function is a few Tensor ops, so autograd differentiates it
(to any order, ``create_graph=True`` included). Shapes use ``*`` for any number of leading axes
and ``C`` for the number of classes.
"""
import numbers

import numpy as np

from ._checks import IdOutOfRangeError, check_bool, check_int
from .ops import linear, where
from .random import default_generator
from .tensor import Tensor, get_default_dtype

__all__ = ["linear", "softmax", "log_softmax", "cross_entropy", "mse_loss", "dropout", "one_hot"]

_REDUCTIONS = ("mean", "sum", "none")


# ===================================================================== softmax
def softmax(x, axis=-1):
    """softmax(x)_k = exp(x_k - m) / sum_j exp(x_j - m) along ``axis``, with m = max_j x_j.

    Shifting every logit by the same number leaves the softmax (and its gradient) unchanged, so
    m is taken as a constant (no gradient flows through it); every exponent is then <= 0 and
    nothing overflows at any scale.
    x: (*) floating Tensor; returns a Tensor of the same shape and dtype.
    """
    exps = _shifted(x, axis, "softmax").exp()
    return exps / exps.sum(axis=axis, keepdims=True)


def log_softmax(x, axis=-1):
    """log_softmax(x)_k = (x_k - m) - log sum_j exp(x_j - m) along ``axis``, with m = max_j x_j.

    The sum has a term exp(0) = 1, so its log is finite and >= 0: no overflow, no log(0), at any
    logits scale. x: (*) floating Tensor; returns a Tensor of the same shape and dtype.
    """
    shifted = _shifted(x, axis, "log_softmax")
    return shifted - shifted.exp().sum(axis=axis, keepdims=True).log()


def _shifted(x, axis, function):
    """x - max(x, axis), the max a constant, after checking x and ``axis``."""
    _check_floating_tensor(x, "x", function)
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"{function}: axis must be an int, got {axis!r}")
    if not -x.ndim <= axis < x.ndim:
        raise ValueError(f"{function}: axis {axis} is out of range for a tensor of shape {x.shape}")
    if x.shape[axis] == 0:
        raise ValueError(f"{function}: axis {axis} of a tensor of shape {x.shape} is empty")
    return x - x.data.max(axis=axis, keepdims=True)  # an ndarray: a constant, no graph node


# ===================================================================== losses
def cross_entropy(logits, targets, reduction="mean", ignore_index=None):
    """Softmax cross-entropy with integer targets, classes on the LAST axis.

        loss_i = -log softmax(logits_i)[y_i] = log sum_k exp(logits_ik) - logits_i,y_i

    logits: (N, C) or (T, N, C), in general (*, C), floating. The class axis is last because
    recurrent outputs are (T, N, C) and go straight in; PyTorch instead puts C at axis 1 for
    K-dimensional inputs (N, C, d1, ...), so move that axis last when porting such code.
    targets: (N,) or (T, N), in general (*): integer class ids in [0, C), as an ndarray or an
    integer Tensor; positions equal to ``ignore_index`` contribute no loss and no gradient.
    reduction: "none" gives the losses (*) (0 where ignored), "sum" their sum, "mean" their sum
    divided by the number of targets that are not ignored (PyTorch's rule; NaN if all are).
    """
    _check_reduction(reduction, "cross_entropy")
    _check_floating_tensor(logits, "logits", "cross_entropy")
    if logits.ndim == 0:
        raise ValueError("cross_entropy: logits must have a class axis (shape (*, C)), got a scalar")
    if ignore_index is not None and (isinstance(ignore_index, bool)
                                     or not isinstance(ignore_index, (int, np.integer))):
        raise TypeError(f"cross_entropy: ignore_index must be an int or None, got {ignore_index!r}")
    num_classes = logits.shape[-1]
    ids = _class_ids(targets, num_classes, "cross_entropy", "targets", ignore_index)
    if ids.shape != logits.shape[:-1]:
        raise ValueError(f"cross_entropy: targets of shape {ids.shape} do not match logits of shape "
                         f"{logits.shape}; targets need shape {logits.shape[:-1]} (classes are the "
                         f"last axis of logits)")
    log_probs = log_softmax(logits).reshape(-1, num_classes)
    flat_ids = ids.reshape(-1)
    if ignore_index is None:
        losses = -log_probs[np.arange(flat_ids.size), flat_ids]
        counted = flat_ids.size
    else:
        kept = flat_ids != ignore_index
        picked = log_probs[np.arange(flat_ids.size), np.where(kept, flat_ids, 0)]
        losses = where(kept, -picked, 0.0)
        counted = int(kept.sum())
    if reduction == "none":
        return losses.reshape(ids.shape)
    if reduction == "sum":
        return losses.sum()
    return _mean_of_sum(losses.sum(), counted)


def mse_loss(input, target, reduction="mean"):
    """Squared error (input - target)^2, elementwise, then reduced.

    input: (*) floating Tensor; target: a Tensor or ndarray of exactly the same shape and dtype
    (no broadcasting). reduction: "none" gives (*), "sum" the sum, "mean" the sum / input.size.
    """
    _check_reduction(reduction, "mse_loss")
    _check_floating_tensor(input, "input", "mse_loss")
    if not isinstance(target, (Tensor, np.ndarray)):
        raise TypeError(f"mse_loss: target must be a Tensor or an ndarray, got {type(target).__name__}")
    if target.shape != input.shape:
        raise ValueError(f"mse_loss: input has shape {input.shape} but target has shape "
                         f"{target.shape}; they must be equal (no broadcasting)")
    if target.dtype != input.dtype:
        raise TypeError(f"mse_loss: input has dtype {input.dtype} but target has dtype {target.dtype}; "
                        f"they must be equal (no silent cast)")
    difference = input - target
    squared = difference * difference
    if reduction == "none":
        return squared
    if reduction == "sum":
        return squared.sum()
    return _mean_of_sum(squared.sum(), squared.size)


def _mean_of_sum(total, count):
    """total / count, or NaN (as PyTorch) when nothing was counted."""
    return total / count if count else total * float("nan")


def _check_reduction(reduction, function):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{function}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")


# ===================================================================== dropout
def dropout(x, p=0.5, training=True, rng=None):
    """Inverted dropout: y = x * m / (1 - p), with m_i ~ Bernoulli(1 - p) drawn independently.

    Each unit is zeroed with probability p and the kept ones are scaled by 1 / (1 - p), so
    E[y] = x and evaluation needs no rescaling; dy/dx = m / (1 - p). Returns ``x`` itself when
    ``training`` is False or p == 0. x: (*) floating Tensor; y has its shape and dtype.
    p: a real number in [0, 1); training: True or False.
    rng: the ``np.random.Generator`` drawing the mask (default: the library's default generator,
    ``tinygrad_rnn.random.default_generator()``, which ``manual_seed`` reseeds).
    """
    _check_floating_tensor(x, "x", "dropout")
    training = check_bool("dropout", "training", training)
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0 <= p < 1:
        raise ValueError(f"dropout: p must be a probability in [0, 1), got {p!r}")
    if not training or p == 0:
        return x
    if rng is None:
        rng = default_generator()
    elif not isinstance(rng, np.random.Generator):
        raise TypeError(f"dropout: rng must be a numpy.random.Generator, got {type(rng).__name__}")
    kept = rng.random(x.shape, dtype=np.float32) >= p
    scale = kept.astype(x.dtype)
    scale *= 1.0 / (1.0 - float(p))
    return x * scale


# ===================================================================== class ids
def one_hot(ids, num_classes, dtype=None):
    """one_hot(ids)[..., k] = 1 if ids[...] == k else 0.

    ids: (*) integer class ids in [0, num_classes), as an ndarray, an integer Tensor or a list;
    returns a Tensor (*, num_classes) of ``dtype`` (default: the default dtype) needing no grad.
    """
    if check_int("one_hot", "num_classes", num_classes) < 1:
        raise ValueError(f"one_hot: num_classes must be a positive int, got {num_classes!r}")
    ids = _class_ids(ids, num_classes, "one_hot", "ids")
    return Tensor(ids[..., None] == np.arange(num_classes), dtype=dtype or get_default_dtype())


def _class_ids(ids, num_classes, function, name, ignore_index=None):
    """``ids`` as an integer ndarray, each in [0, num_classes) or equal to ``ignore_index`` (else an
    IdOutOfRangeError: an IndexError as in PyTorch, and a ValueError)."""
    array = ids.data if isinstance(ids, Tensor) else ids
    if isinstance(array, (list, tuple, int, np.integer)) and not isinstance(array, bool):
        array = np.asarray(array)
    if not isinstance(array, np.ndarray):
        raise TypeError(f"{function}: {name} must be an integer ndarray or Tensor, got {type(ids).__name__}")
    if array.dtype.kind not in "iu":
        raise TypeError(f"{function}: {name} must hold integer class ids, got dtype {array.dtype}")
    outside = (array < 0) | (array >= num_classes)
    if ignore_index is not None:
        outside &= array != ignore_index
    if outside.any():
        also = "" if ignore_index is None else f" (nor ignore_index {ignore_index})"
        raise IdOutOfRangeError(f"{function}: {name} holds {array[outside][0]}, which is not a class id in "
                         f"[0, {num_classes}){also}: C = {num_classes}")
    return array


def _check_floating_tensor(x, name, function):
    if not isinstance(x, Tensor):
        raise TypeError(f"{function}: {name} must be a Tensor, got {type(x).__name__}")
    if x.dtype.kind != "f":
        raise TypeError(f"{function}: {name} must be floating-point, got dtype {x.dtype}")
