"""Loss functions as modules, PyTorch's names and keywords: each forwards ``(input, target)`` to its
``tinygrad_rnn.functional`` function with the options given at construction.

Classes are on the LAST axis of the scores, as in ``functional.cross_entropy`` (recurrent outputs
(T, N, C) go straight in); for (N, C) inputs that is PyTorch's layout too.
"""
from .. import functional as F
from .._checks import describe
from .module import Module

__all__ = ["CrossEntropyLoss", "NLLLoss", "MSELoss", "BCELoss", "BCEWithLogitsLoss"]


def _no_class_weights(who, weight):
    if weight is not None:
        raise ValueError(f"{who}: per-class weights are not supported (weight must be None), got {describe(weight)}")


class CrossEntropyLoss(Module):
    """``CrossEntropyLoss(weight=None, *, ignore_index=-100, reduction="mean", label_smoothing=0.0)``:
    ``forward(input (*, C), target (*) ints)`` = ``F.cross_entropy`` (softmax cross-entropy, targets
    equal to ``ignore_index`` left out, with label smoothing ε: (1 - ε) one-hot + ε / C)."""

    def __init__(self, weight=None, *, ignore_index=-100, reduction="mean", label_smoothing=0.0):
        super().__init__()
        _no_class_weights("CrossEntropyLoss", weight)
        self.ignore_index, self.reduction, self.label_smoothing = ignore_index, reduction, label_smoothing

    def forward(self, input, target):
        return F.cross_entropy(input, target, reduction=self.reduction, ignore_index=self.ignore_index,
                               label_smoothing=self.label_smoothing)


class NLLLoss(Module):
    """``NLLLoss(weight=None, *, ignore_index=-100, reduction="mean")``: ``forward(input (*, C) log-probabilities,
    target (*) ints)`` = ``F.nll_loss`` (-input at each target)."""

    def __init__(self, weight=None, *, ignore_index=-100, reduction="mean"):
        super().__init__()
        _no_class_weights("NLLLoss", weight)
        self.ignore_index, self.reduction = ignore_index, reduction

    def forward(self, input, target):
        return F.nll_loss(input, target, reduction=self.reduction, ignore_index=self.ignore_index)


class MSELoss(Module):
    """``MSELoss(*, reduction="mean")``: ``forward(input, target)`` = ``F.mse_loss`` ((input - target)^2,
    the same shapes)."""

    def __init__(self, *, reduction="mean"):
        super().__init__()
        self.reduction = reduction

    def forward(self, input, target):
        return F.mse_loss(input, target, reduction=self.reduction)


class BCELoss(Module):
    """``BCELoss(weight=None, *, reduction="mean")``: ``forward(input probabilities, target)`` =
    ``F.binary_cross_entropy`` (-w (y log p + (1 - y) log(1 - p)), each log clamped at -100 as PyTorch)."""

    def __init__(self, weight=None, *, reduction="mean"):
        super().__init__()
        self.weight, self.reduction = weight, reduction

    def forward(self, input, target):
        return F.binary_cross_entropy(input, target, weight=self.weight, reduction=self.reduction)


class BCEWithLogitsLoss(Module):
    """``BCEWithLogitsLoss(weight=None, *, reduction="mean", pos_weight=None)``: ``forward(input logits, target)`` =
    ``F.binary_cross_entropy_with_logits`` (sigmoid and binary cross-entropy in one, stable at any logit)."""

    def __init__(self, weight=None, *, reduction="mean", pos_weight=None):
        super().__init__()
        self.weight, self.reduction, self.pos_weight = weight, reduction, pos_weight

    def forward(self, input, target):
        return F.binary_cross_entropy_with_logits(input, target, weight=self.weight, pos_weight=self.pos_weight,
                                                  reduction=self.reduction)
