"""Composites built from ops: softmax, log_softmax, the losses, dropout, one_hot; and the ops PyTorch
keeps in ``torch.nn.functional`` (linear, relu, tanh, sigmoid) under the same names.

Nothing here writes a backward: each function is a few Tensor ops, so autograd differentiates it
(to any order, ``create_graph=True`` included). Shapes use ``*`` for any number of leading axes
and ``C`` for the number of classes. An axis is ``axis=`` or PyTorch's ``dim=``.
"""
import numbers

import numpy as np

from ._checks import IdOutOfRangeError, axis_or_dim, check_bool, check_int, check_real, describe
from .ops import linear, relu, sigmoid, tanh, where
from .random import default_generator
from .tensor import Tensor, get_default_dtype

__all__ = ["linear", "relu", "tanh", "sigmoid", "softmax", "log_softmax", "cross_entropy", "nll_loss",
           "binary_cross_entropy", "binary_cross_entropy_with_logits", "mse_loss", "dropout", "one_hot"]

_REDUCTIONS = ("mean", "sum", "none")


# ===================================================================== softmax
@axis_or_dim
def softmax(x, axis=-1):
    """softmax(x)_k = exp(x_k - m) / sum_j exp(x_j - m) along ``axis``, with m = max_j x_j.

    Shifting every logit by the same number leaves the softmax (and its gradient) unchanged, so
    m is taken as a constant (no gradient flows through it); every exponent is then <= 0 and
    nothing overflows at any scale.
    x: (*) floating Tensor; returns a Tensor of the same shape and dtype.
    """
    exps = _shifted(x, axis, "softmax").exp()
    return exps / exps.sum(axis=axis, keepdims=True)


@axis_or_dim
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
    return x - x.detach().amax(axis=axis, keepdims=True)  # detached: a constant for the gradient


# ===================================================================== losses
def cross_entropy(logits, targets, reduction="mean", ignore_index=None, label_smoothing=0.0):
    """Softmax cross-entropy with integer targets, classes on the LAST axis.

        loss_i = -log softmax(logits_i)[y_i] = log sum_k exp(logits_ik) - logits_i,y_i

    With ``label_smoothing`` ε in [0, 1] (PyTorch's definition), the target is (1 - ε) on y_i plus
    ε / C on every class: loss_i = (1 - ε) (-log p_i,y_i) + ε (-(1/C) sum_k log p_ik).

    logits: (N, C) or (T, N, C), in general (*, C), floating. The class axis is last because
    recurrent outputs are (T, N, C) and go straight in; PyTorch instead puts C at axis 1 for
    K-dimensional inputs (N, C, d1, ...), so move that axis last when porting such code.
    targets: (N,) or (T, N), in general (*): integer class ids in [0, C), as an ndarray or an
    integer Tensor; positions equal to ``ignore_index`` contribute no loss and no gradient.
    reduction: "none" gives the losses (*) (0 where ignored), "sum" their sum, "mean" their sum
    divided by the number of targets that are not ignored (PyTorch's rule; NaN if all are).
    """
    ids = _checked_class_targets("cross_entropy", "logits", logits, targets, reduction, ignore_index)
    smoothing = check_real("cross_entropy", "label_smoothing", label_smoothing, high=1.0)
    log_probs = log_softmax(logits)
    losses, kept = _picked(log_probs, ids, ignore_index)
    if smoothing:
        uniform = -log_probs.mean(axis=-1).reshape(-1)
        losses = (1 - smoothing) * losses + smoothing * (uniform if ignore_index is None else where(kept, uniform, 0.0))
    return _reduced(losses, reduction, int(kept.sum()), ids.shape)


def nll_loss(log_probs, targets, reduction="mean", ignore_index=None):
    """Negative log-likelihood of integer targets, classes on the LAST axis as in ``cross_entropy``.

        loss_i = -log_probs_i,y_i        (cross_entropy(x, y) = nll_loss(log_softmax(x), y))

    log_probs: (*, C) floating, e.g. ``log_softmax(logits)``; targets: (*) integer class ids in
    [0, C) (ndarray or integer Tensor); ``ignore_index`` and ``reduction`` as ``cross_entropy``.
    """
    ids = _checked_class_targets("nll_loss", "log_probs", log_probs, targets, reduction, ignore_index)
    losses, kept = _picked(log_probs, ids, ignore_index)
    return _reduced(losses, reduction, int(kept.sum()), ids.shape)


def _checked_class_targets(function, name, scores, targets, reduction, ignore_index):
    """The targets of a (*, C) ``scores`` Tensor as an integer ndarray of shape (*), all arguments checked."""
    _check_reduction(reduction, function)
    _check_floating_tensor(scores, name, function)
    if scores.ndim == 0:
        raise ValueError(f"{function}: {name} must have a class axis (shape (*, C)), got a scalar")
    if ignore_index is not None and (isinstance(ignore_index, bool)
                                     or not isinstance(ignore_index, (int, np.integer))):
        raise TypeError(f"{function}: ignore_index must be an int or None, got {ignore_index!r}")
    ids = _class_ids(targets, scores.shape[-1], function, "targets", ignore_index)
    if ids.shape != scores.shape[:-1]:
        raise ValueError(f"{function}: targets of shape {ids.shape} do not match {name} of shape "
                         f"{scores.shape}; targets need shape {scores.shape[:-1]} (classes are the "
                         f"last axis of {name})")
    return ids


def _picked(log_probs, ids, ignore_index):
    """-log_probs at each target, flattened to (M,) and 0 where ignored; and the (M,) mask of the targets kept."""
    log_probs, flat_ids = log_probs.reshape(-1, log_probs.shape[-1]), ids.reshape(-1)
    if ignore_index is None:
        return -log_probs[np.arange(flat_ids.size), flat_ids], np.ones(flat_ids.shape, dtype=bool)
    kept = flat_ids != ignore_index
    picked = log_probs[np.arange(flat_ids.size), np.where(kept, flat_ids, 0)]
    return where(kept, -picked, 0.0), kept


def binary_cross_entropy(input, target, weight=None, reduction="mean"):
    """Binary cross-entropy of probabilities, elementwise, then reduced:

        loss = -w (y log p + (1 - y) log(1 - p)),   each log clamped at -100 as in PyTorch

    so p = 0 or 1 gives a finite loss (a clamped log passes no gradient). input p: (*) floating
    Tensor with values in [0, 1]; target y: a Tensor or ndarray of the same shape and dtype;
    weight w: None, a number, an ndarray or a Tensor that broadcasts to (*); reduction as ``mse_loss``.
    """
    function = "binary_cross_entropy"
    _check_reduction(reduction, function)
    _check_floating_tensor(input, "input", function)
    _check_target(function, input, target)
    weight = _checked_weight(function, "weight", weight, input)
    outside = (input.data < 0) | (input.data > 1)
    if outside.any():
        raise ValueError(f"{function}: input must hold probabilities in [0, 1], got {input.data[outside][0]}; "
                         f"for logits use binary_cross_entropy_with_logits")
    losses = -(target * _clamped_log(input) + (1 - target) * _clamped_log(1 - input))
    return _reduced(losses if weight is None else losses * weight, reduction, input.data.size)


def _clamped_log(p):
    """max(log p, -100) for p in [0, 1], without log(0): p is first raised to the smallest subnormal."""
    return p.clip(np.finfo(p.dtype).smallest_subnormal).log().clip(-100)


def binary_cross_entropy_with_logits(input, target, weight=None, pos_weight=None, reduction="mean"):
    """Binary cross-entropy of logits x with targets y, PyTorch's definition, stable at any |x|:

        loss = -w (p y log σ(x) + (1 - y) log(1 - σ(x))) = w (p y softplus(-x) + (1 - y) softplus(x))

    as -log σ(x) = softplus(-x) = log(1 + e^-x); p = pos_weight (1 if None). For y in [0, 1] both terms
    are >= 0, so nothing cancels: the loss keeps its digits even where it is 1e-18 (for p = 1 it is
    max(x, 0) - x y + log1p(e^-|x|)). d loss/dx = w ((1 - y) σ(x) - p y σ(-x)), σ(x) - y for w = p = 1.
    input x: (*) floating Tensor; target y: a Tensor or ndarray of the same shape and dtype; weight w
    and pos_weight p: None, a number, an ndarray or a Tensor that broadcasts to (*) (p usually (C,):
    one per class, on the last axis).
    """
    function = "binary_cross_entropy_with_logits"
    _check_reduction(reduction, function)
    _check_floating_tensor(input, "input", function)
    _check_target(function, input, target)
    weight = _checked_weight(function, "weight", weight, input)
    pos_weight = _checked_weight(function, "pos_weight", pos_weight, input)
    positive = target * _softplus(-input)
    losses = (positive if pos_weight is None else pos_weight * positive) + (1 - target) * _softplus(input)
    return _reduced(losses if weight is None else losses * weight, reduction, input.data.size)


def _checked_weight(function, name, weight, input):
    """``weight``: None, a number, an ndarray or a Tensor (a list becomes an ndarray) that broadcasts to ``input``."""
    if isinstance(weight, (list, tuple)):
        weight = np.asarray(weight)
    if weight is None:
        return None
    if isinstance(weight, (bool, np.bool_)) or not isinstance(weight, (numbers.Real, np.ndarray, Tensor)):
        raise TypeError(f"{function}: {name} must be None, a number, an ndarray or a Tensor, got {describe(weight)}")
    shape = () if isinstance(weight, numbers.Real) else weight.shape
    try:
        fits = np.broadcast_shapes(shape, input.shape) == input.shape
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(f"{function}: {name} of shape {shape} does not broadcast to the input's shape {input.shape}")
    if not isinstance(weight, numbers.Real) and weight.dtype != input.dtype:
        raise TypeError(f"{function}: {name} has dtype {weight.dtype} but input has dtype {input.dtype}; "
                        f"they must be equal (no silent cast)")
    return weight


def _softplus(x):
    """log(1 + e^x) = m + log1p(e^(x - 2m)) with m = max(x, 0), so x - 2m = -|x| <= 0: no overflow. Its
    gradient is σ(x) at every x, 0 included: clip and x - 2m take the same side there (right-hand)."""
    m = x.clip(0)
    return m + (x - 2 * m).exp().log1p()


def mse_loss(input, target, reduction="mean"):
    """Squared error (input - target)^2, elementwise, then reduced.

    input: (*) floating Tensor; target: a Tensor or ndarray of exactly the same shape and dtype
    (no broadcasting). reduction: "none" gives (*), "sum" the sum, "mean" the sum / input.numel().
    """
    _check_reduction(reduction, "mse_loss")
    _check_floating_tensor(input, "input", "mse_loss")
    _check_target("mse_loss", input, target)
    difference = input - target
    return _reduced(difference * difference, reduction, input.data.size)


def _check_target(function, input, target):
    """``target`` must be a Tensor or an ndarray of ``input``'s shape and dtype (no broadcasting, no cast)."""
    if not isinstance(target, (Tensor, np.ndarray)):
        raise TypeError(f"{function}: target must be a Tensor or an ndarray, got {type(target).__name__}")
    if target.shape != input.shape:
        raise ValueError(f"{function}: input has shape {input.shape} but target has shape "
                         f"{target.shape}; they must be equal (no broadcasting)")
    if target.dtype != input.dtype:
        raise TypeError(f"{function}: input has dtype {input.dtype} but target has dtype {target.dtype}; "
                        f"they must be equal (no silent cast)")


def _reduced(losses, reduction, count, shape=None):
    """``losses`` (in ``shape`` if given) for "none", their sum for "sum", the sum / ``count`` for "mean".
    When nothing was counted (every target ignored), the mean is NaN with a zero gradient, as PyTorch's:
    the NaN is added as a constant, so no NaN reaches the parameters' gradients."""
    if reduction == "none":
        return losses if shape is None else losses.reshape(shape)
    total = losses.sum()
    if reduction == "sum":
        return total
    return total / count if count else total * 0.0 + float("nan")


def _check_reduction(reduction, function):
    if not isinstance(reduction, str) or reduction not in _REDUCTIONS:
        got = repr(reduction) if isinstance(reduction, str) else describe(reduction)
        raise ValueError(f"{function}: reduction must be one of {_REDUCTIONS}, got {got}")


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
        first = array[outside][0]
        also = "" if ignore_index is None else f" (nor ignore_index {ignore_index})"
        hint = (" (to skip padding marked -100, as torch's default does, pass ignore_index=-100)"
                if first == -100 and ignore_index is None else "")
        raise IdOutOfRangeError(f"{function}: {name} holds {first}, which is not a class id in "
                                f"[0, {num_classes}){also}: C = {num_classes}{hint}")
    return array


def _check_floating_tensor(x, name, function):
    if not isinstance(x, Tensor):
        raise TypeError(f"{function}: {name} must be a Tensor, got {type(x).__name__}")
    if x.dtype.kind != "f":
        raise TypeError(f"{function}: {name} must be floating-point, got dtype {x.dtype}")
